//! A self-hostable web app that checks files against VirusTotal and explains
//! the answer. `serve` builds the whole app; `main` and the tests both call it.

pub mod config;
pub mod format;
pub mod scan;
pub mod store;
pub mod summary;
pub mod upload;
pub mod virustotal;
pub mod web;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web as actix};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::scan::{Scanner, Timing};
use crate::store::{EmbeddedStore, RedisStore, ScanStore};
use crate::virustotal::VirusTotal;
use crate::web::AppState;

/// How long to wait for an instance that is still shutting down to let go of
/// the embedded database file, as in a quick restart.
const EMBEDDED_OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long in-flight requests may take to finish after a stop signal.
const SHUTDOWN_GRACE_SECONDS: u64 = 30;

/// Prepares storage and clients, starts the worker that drives unfinished
/// scans, and returns the server bound to `listener`, ready to be awaited.
pub async fn serve(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
    let upload_dir = upload::prepare_dir(&config.upload_dir)
        .with_context(|| format!("creating UPLOAD_DIR {}", config.upload_dir.display()))?;
    let leftovers = upload::remove_leftovers(&upload_dir)
        .with_context(|| format!("cleaning UPLOAD_DIR {}", upload_dir.display()))?;
    if leftovers > 0 {
        tracing::info!(files = leftovers, "removed uploads left by an earlier run");
    }

    let store = open_store(&config).await?;
    let vt = VirusTotal::new(&config).context("building the VirusTotal client")?;
    if !vt.has_api_key() {
        tracing::warn!("VT_API_KEY is not set: pages work, scans are refused");
    }
    let writer = summary::writer_from_config(&config);
    let scanner = Scanner::new(store, vt, writer, Timing::from_config(&config));
    scanner.start_worker();

    let state = actix::Data::new(AppState {
        scanner,
        proxies: web::TrustedProxies::new(config.trusted_proxies.clone()),
        upload_dir,
        max_upload_bytes: config.max_upload_bytes,
    });
    let limits = web::RateLimits::new(&config)?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(web::routes(limits.clone()))
            .default_service(actix::to(web::not_found))
            .wrap(from_fn(web::reject_cross_site))
            .wrap(from_fn(web::browser_id))
            .wrap(limits.every_request())
            .wrap(web::error_pages())
            .wrap(web::security_headers())
            .wrap(from_fn(web::log_request))
            .wrap(TracingLogger::<web::RequestSpan>::new())
    })
    .shutdown_timeout(SHUTDOWN_GRACE_SECONDS)
    .listen(listener)
    .context("listening")?
    .run();
    Ok(server)
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ScanStore>> {
    if let Some(url) = &config.redis_url {
        let store = RedisStore::connect(url.expose(), &config.redis_key_prefix)
            .await
            .context("connecting to REDIS_URL")?;
        tracing::info!(prefix = %config.redis_key_prefix, "using Redis");
        return Ok(Arc::new(store));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating DATA_DIR {}", config.data_dir.display()))?;
    let path = config.data_dir.join("scans.redb");
    let store = EmbeddedStore::open_waiting(&path, EMBEDDED_OPEN_PATIENCE)
        .await
        .with_context(|| format!("opening the embedded store at {}", path.display()))?;
    tracing::info!(path = %path.display(), "using the embedded store");
    Ok(Arc::new(store))
}
