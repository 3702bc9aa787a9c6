//! The scan page, its status fragment for htmx, and the report as JSON.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::error::AppError;
use super::pages::{Layout, html, render};
use super::view::ScanView;
use crate::scan::Scan;

/// htmx stops polling when it gets this status.
const STOP_POLLING: u16 = 286;

/// Fastest and slowest automatic refresh a person can ask for, in seconds.
const MIN_REFRESH: u32 = 2;
const MAX_REFRESH: u32 = 60;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/scans/{id}.json", web::get().to(report_json))
        .route("/scans/{id}/status", web::get().to(status))
        .route("/scans/{id}", web::get().to(show));
}

#[derive(Template)]
#[template(path = "scan.html")]
struct ScanPage {
    layout: Layout,
    title: String,
    view: ScanView,
    refresh: Option<u32>,
}

#[derive(Template)]
#[template(path = "partials/scan_update.html")]
struct StatusFragment {
    view: ScanView,
}

#[derive(Deserialize)]
struct ShowQuery {
    refresh: Option<u32>,
}

async fn show(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, AppError> {
    let scan = load(&state, &id).await?;
    let view = ScanView::new(&scan);
    // Reloading is only ever what the person asked for, and stops once final.
    let refresh = query
        .refresh
        .filter(|_| !view.is_final)
        .map(|s| s.clamp(MIN_REFRESH, MAX_REFRESH));
    let page = ScanPage {
        layout: state.layout(),
        title: view.heading.clone(),
        view,
        refresh,
    };
    Ok(html(StatusCode::OK, &page))
}

async fn status(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let scan = load(&state, &id).await?;
    let view = ScanView::new(&scan);
    let code = if view.is_final { STOP_POLLING } else { 200 };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let body = render(&StatusFragment { view });
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
        .json(&scan))
}

/// A scan by the id in the path; a malformed id is as unknown as a missing one.
async fn load(state: &AppState, id: &str) -> Result<Scan, AppError> {
    let id = Uuid::parse_str(id).map_err(|_| AppError::ScanNotFound)?;
    state.scanner.find(id).await?.ok_or(AppError::ScanNotFound)
}
