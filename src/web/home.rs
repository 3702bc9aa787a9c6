//! The home page (upload and hash search forms) and the hash search.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::browser::BrowserId;
use super::error::AppError;
use super::pages::{Layout, html, human_size};
use super::rate_limit::RateLimits;
use crate::scan::HashQuery;

/// Longest search text echoed back into the form.
const MAX_ECHOED_QUERY: usize = 200;

pub fn routes(cfg: &mut web::ServiceConfig, limits: &RateLimits) {
    cfg.route("/", web::get().to(index)).service(
        web::resource("/search")
            .wrap(limits.new_scans())
            .route(web::get().to(search)),
    );
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    layout: Layout,
    title: &'static str,
    max_upload: String,
    upload_selected: bool,
    upload_error: Option<String>,
    search_error: Option<String>,
    query: String,
}

impl IndexPage {
    fn new(state: &AppState) -> Self {
        Self {
            layout: state.layout(),
            title: "Check a file",
            max_upload: human_size(state.max_upload_bytes),
            upload_selected: false,
            upload_error: None,
            search_error: None,
            query: String::new(),
        }
    }

    /// The form again, with a message about what was wrong with the upload.
    pub fn with_upload_error(layout: Layout, state: &AppState, message: String) -> Self {
        Self {
            layout,
            upload_error: Some(message),
            ..Self::new(state)
        }
    }
}

#[derive(Deserialize)]
struct IndexQuery {
    mode: Option<String>,
}

async fn index(state: web::Data<AppState>, query: web::Query<IndexQuery>) -> HttpResponse {
    let page = IndexPage {
        upload_selected: query.mode.as_deref() == Some("upload"),
        ..IndexPage::new(&state)
    };
    html(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(
    state: web::Data<AppState>,
    browser: BrowserId,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, AppError> {
    let hash = match HashQuery::parse(&query.q) {
        Ok(hash) => hash,
        Err(_) => {
            let message = if query.q.trim().is_empty() {
                "Enter a hash to search for."
            } else {
                "That is not a hash. Paste an MD5 (32 characters), SHA-1 (40) or SHA-256 (64), \
                 using only the digits 0-9 and letters a-f."
            };
            let page = IndexPage {
                search_error: Some(message.to_owned()),
                query: query.q.chars().take(MAX_ECHOED_QUERY).collect(),
                ..IndexPage::new(&state)
            };
            return Ok(html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let id = state
        .scanner
        .submit_hash(hash, Some(browser.as_str().to_owned()))
        .await?;
    Ok(super::see_other(&format!("/scans/{id}")))
}
