//! The scan page, its status fragment for htmx, and the report as JSON.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::browser::BrowserId;
use super::error::AppError;
use super::pages::{ConfirmDeletePage, Layout, html, render};
use super::rate_limit::RateLimits;
use super::view::ScanView;
use crate::scan::{Mode, Report, Scan, ScanState, StoredSummary, Subject};

/// htmx stops polling when it gets this status.
const STOP_POLLING: u16 = 286;

/// Fastest and slowest automatic refresh a person can ask for, in seconds.
const MIN_REFRESH: u32 = 2;
const MAX_REFRESH: u32 = 60;

pub fn routes(cfg: &mut web::ServiceConfig, limits: &RateLimits) {
    let reanalysis = web::resource("/scans/{id}/reanalyse").wrap(limits.new_scans());
    cfg.route("/scans/{id}.json", web::get().to(report_json))
        .route("/scans/{id}/status", web::get().to(status))
        .route("/scans/{id}/delete", web::get().to(confirm_delete))
        .route("/scans/{id}/delete", web::post().to(delete))
        .service(reanalysis.route(web::post().to(reanalyse)))
        .route("/scans/{id}", web::get().to(show));
}

#[derive(Template)]
#[template(path = "scan.html")]
pub(super) struct ScanPage {
    layout: Layout,
    title: String,
    view: ScanView,
    refresh: Option<u32>,
    /// Whether this browser started the scan (and so may delete it).
    is_owner: bool,
    /// Why the summary just asked for could not be written.
    summary_error: Option<&'static str>,
    /// Names what the status area shows, for the poller.
    status_version: String,
}

/// What htmx swaps in when the status changed: the next poller, the status
/// area, and once final the report.
#[derive(Template)]
#[template(path = "partials/scan_update.html")]
struct StatusUpdate {
    view: ScanView,
    /// Always none here: the fragment only ever shows a fresh summary area.
    summary_error: Option<&'static str>,
    status_version: String,
}

/// The status area on its own, to tell whether it changed.
#[derive(Template)]
#[template(path = "partials/scan_status.html")]
struct StatusArea<'a> {
    view: &'a ScanView,
}

#[derive(Deserialize)]
struct ShowQuery {
    refresh: Option<u32>,
}

#[derive(Deserialize)]
struct StatusQuery {
    /// The version of the status area the poller's page shows.
    seen: Option<String>,
}

/// A short name for what the status area of `view` shows: equal names, equal areas.
fn status_version(view: &ScanView) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    render(&StatusArea { view }).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

async fn show(
    state: web::Data<AppState>,
    browser: BrowserId,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, AppError> {
    let id = super::scan_id(&id)?;
    let page = scan_page(&state, &browser, id, query.refresh, None).await?;
    Ok(html(StatusCode::OK, &page))
}

/// The scan page as `browser` sees it, with a summary failure to report if any.
pub(super) async fn scan_page(
    state: &AppState,
    browser: &BrowserId,
    id: Uuid,
    refresh: Option<u32>,
    summary_error: Option<&'static str>,
) -> Result<ScanPage, AppError> {
    let scan = state
        .scanner
        .find(id)
        .await?
        .ok_or(AppError::ScanNotFound)?;
    let is_owner = scan.owner.as_deref() == Some(browser.as_str());
    let view = ScanView::new(&scan);
    // Reloading is only ever what the person asked for, and stops once final.
    let refresh = refresh
        .filter(|_| !view.is_final)
        .map(|s| s.clamp(MIN_REFRESH, MAX_REFRESH));
    Ok(ScanPage {
        layout: state.layout(),
        title: view.heading.clone(),
        // Only a page still in progress has a poller to tell it.
        status_version: if view.is_final {
            String::new()
        } else {
            status_version(&view)
        },
        view,
        refresh,
        is_owner,
        summary_error,
    })
}

/// The status for htmx's poller: `204` while it is what the poller's page
/// shows already, else the update, with `286` once final so polling stops.
async fn status(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, AppError> {
    let scan = load(&state, &id).await?;
    let view = ScanView::new(&scan);
    let version = status_version(&view);
    if !view.is_final && query.seen.as_deref() == Some(version.as_str()) {
        return Ok(HttpResponse::NoContent()
            .insert_header(("Cache-Control", "no-store"))
            .finish());
    }
    let code = if view.is_final { STOP_POLLING } else { 200 };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let body = render(&StatusUpdate {
        view,
        summary_error: None,
        status_version: version,
    });
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

async fn report_json(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let scan = load(&state, &id).await?;
    let file_name = format!("scan-{}.json", scan.id);
    Ok(HttpResponse::Ok()
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{file_name}\""),
        ))
        .json(PublicScan::from(&scan)))
}

/// A scan as anyone with its link may download it: everything but the owner's
/// browser id, which would let them read the owner's history.
#[derive(Serialize)]
struct PublicScan<'a> {
    id: Uuid,
    mode: Mode,
    subject: &'a Subject,
    state: &'a ScanState,
    created_at: i64,
    updated_at: i64,
    report: Option<&'a Report>,
    report_fetched_at: Option<i64>,
    summary: Option<&'a StoredSummary>,
}

impl<'a> From<&'a Scan> for PublicScan<'a> {
    fn from(scan: &'a Scan) -> Self {
        Self {
            id: scan.id,
            mode: scan.mode,
            subject: &scan.subject,
            state: &scan.state,
            created_at: scan.created_at,
            updated_at: scan.updated_at,
            report: scan.report.as_ref(),
            report_fetched_at: scan.report_fetched_at,
            summary: scan.summary.as_ref(),
        }
    }
}

/// Asks whether to delete a scan this browser started.
async fn confirm_delete(
    state: web::Data<AppState>,
    browser: BrowserId,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let scan = load(&state, &id).await?;
    // Anyone else is told there is no such scan, as `delete` would.
    if scan.owner.as_deref() != Some(browser.as_str()) {
        return Err(AppError::ScanNotFound);
    }
    let view = ScanView::new(&scan);
    let page = ConfirmDeletePage {
        layout: state.layout(),
        title: "Delete this scan?",
        what: format!("{}, started {}.", view.heading, view.created),
        many: false,
        action: format!("/scans/{}/delete", scan.id),
        confirm_label: "Delete this scan",
        back: format!("/scans/{}", scan.id),
    };
    Ok(html(StatusCode::OK, &page))
}

/// Removes a scan this browser started, then shows the history.
async fn delete(
    state: web::Data<AppState>,
    browser: BrowserId,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = super::scan_id(&id)?;
    state.scanner.delete(id, browser.as_str()).await?;
    Ok(super::see_other("/history"))
}

/// Starts a new scan in which VirusTotal analyses the file again.
async fn reanalyse(
    state: web::Data<AppState>,
    browser: BrowserId,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = super::scan_id(&id)?;
    let new_id = state
        .scanner
        .reanalyse(id, Some(browser.as_str().to_owned()))
        .await?;
    Ok(super::see_other(&format!("/scans/{new_id}")))
}

/// A scan by the id in the path; a malformed id is as unknown as a missing one.
async fn load(state: &AppState, id: &str) -> Result<Scan, AppError> {
    let id = super::scan_id(id)?;
    state.scanner.find(id).await?.ok_or(AppError::ScanNotFound)
}
