//! Starts the file scanner: configuration, logging, then the server until a
//! stop signal, after which in-flight requests finish.

use std::io::IsTerminal;
use std::net::TcpListener;

use anyhow::Context;
use file_scanner::config::Config;
use tracing_subscriber::EnvFilter;

/// What is logged unless `RUST_LOG` says otherwise. The OpenAI client logs the
/// bodies of error answers, which can repeat part of a key: only its errors.
const DEFAULT_LOG: &str = "info,async_openai=error";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is normal outside development.
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        // Colours only for a person at a terminal, not for log collectors.
        .with_ansi(std::io::stdout().is_terminal())
        .init();

    let config = Config::from_env()?;
    let listener =
        TcpListener::bind(&config.bind).with_context(|| format!("binding BIND={}", config.bind))?;
    tracing::info!(address = %config.bind, "file scanner listening");
    file_scanner::serve(config, listener).await?.await?;
    tracing::info!("stopped");
    Ok(())
}
