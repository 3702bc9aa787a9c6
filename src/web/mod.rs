//! The HTTP surface: routes by page, middleware, and error pages.
//! Handlers parse, call the scan layer, and render; nothing more.

mod assets;
mod browser;
mod error;
mod health;
mod history;
mod home;
mod pages;
mod proxies;
mod rate_limit;
mod request_log;
mod scans;
mod security;
mod summary;
mod upload;
mod view;

use std::path::PathBuf;

use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, web};

use crate::scan::Scanner;
pub use error::AppError;
use pages::Layout;
pub use proxies::TrustedProxies;

/// What handlers share.
pub struct AppState {
    pub scanner: Scanner,
    /// Reverse proxies whose forwarding headers are believed.
    pub proxies: TrustedProxies,
    pub upload_dir: PathBuf,
    pub max_upload_bytes: u64,
}

impl AppState {
    fn layout(&self) -> Layout {
        Layout {
            vt_configured: self.scanner.vt_configured(),
        }
    }
}

/// Registers every route; those that start work get the stricter rate limit.
pub fn routes(limits: RateLimits) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        home::routes(cfg, &limits);
        upload::routes(cfg, &limits);
        scans::routes(cfg, &limits);
        summary::routes(cfg, &limits);
        history::routes(cfg);
        health::routes(cfg);
        assets::routes(cfg);
    }
}

pub use browser::browser_id;
pub use error::{error_pages, not_found};
pub use rate_limit::{InvalidRateLimit, RateLimits};
pub use request_log::{RequestSpan, log_request};
pub use security::{headers as security_headers, reject_cross_site};

/// The scan id in a path; a malformed one is as unknown as a missing one.
fn scan_id(raw: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(raw).map_err(|_| AppError::ScanNotFound)
}

/// `303 See Other`, the answer to a form post that created something.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish()
}
