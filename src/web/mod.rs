//! The HTTP surface: routes by page, middleware, and error pages.
//! Handlers parse, call the scan layer, and render; nothing more.

mod assets;
mod browser;
mod error;
mod health;
mod history;
mod home;
mod pages;
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

/// What handlers share.
pub struct AppState {
    pub scanner: Scanner,
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

/// Registers every route, the security middleware and the error pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(home::routes)
        .configure(upload::routes)
        .configure(scans::routes)
        .configure(history::routes)
        .configure(summary::routes)
        .configure(health::routes)
        .configure(assets::routes);
}

pub use browser::browser_id;
pub use error::{error_pages, not_found};
pub use request_log::log_request;
pub use security::{headers as security_headers, reject_cross_site};

/// `303 See Other`, the answer to a form post that created something.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location))
        .finish()
}
