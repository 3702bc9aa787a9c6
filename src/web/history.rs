//! This browser's history: its scans, newest first, and removing them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::AppState;
use super::browser::BrowserId;
use super::error::AppError;
use super::pages::{ConfirmDeletePage, Layout, format_date, html};
use crate::scan::verdict::Verdict;
use crate::scan::{Scan, ScanState, Subject};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/history", web::get().to(show))
        .route("/history/clear", web::get().to(confirm_clear))
        .route("/history/clear", web::post().to(clear));
}

/// One line of the history table.
struct HistoryRow {
    id: String,
    name: String,
    mode: &'static str,
    outcome: String,
    date: String,
}

impl HistoryRow {
    fn new(scan: &Scan) -> Self {
        let name = match &scan.subject {
            Subject::File {
                name: Some(name), ..
            } => name.clone(),
            Subject::File { name: None, .. } => "Uploaded file".to_owned(),
            Subject::Hash { hash } => hash.clone(),
        };
        let outcome = match (&scan.state, &scan.report) {
            (ScanState::Completed, Some(report)) => {
                let s = &report.stats;
                let verdict = Verdict::from_stats(s);
                format!(
                    "{}: {} of {}",
                    verdict.label(),
                    s.malicious + s.suspicious,
                    report.engines_with_verdict()
                )
            }
            (ScanState::NotFound, _) => "Not known to VirusTotal".to_owned(),
            (ScanState::Failed { reason }, _) => format!("Failed: {}", reason.title()),
            _ => "In progress".to_owned(),
        };
        Self {
            id: scan.id.to_string(),
            name,
            mode: scan.mode.label(),
            outcome,
            date: format_date(scan.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    layout: Layout,
    title: &'static str,
    rows: Vec<HistoryRow>,
}

async fn show(state: web::Data<AppState>, browser: BrowserId) -> Result<HttpResponse, AppError> {
    let scans = state.scanner.history(browser.as_str()).await?;
    let page = HistoryPage {
        layout: state.layout(),
        title: "Your scans",
        rows: scans.iter().map(HistoryRow::new).collect(),
    };
    Ok(html(StatusCode::OK, &page))
}

/// Asks whether to delete all of this browser's scans.
async fn confirm_clear(
    state: web::Data<AppState>,
    browser: BrowserId,
) -> Result<HttpResponse, AppError> {
    let listed = state.scanner.history(browser.as_str()).await?.len();
    if listed == 0 {
        return Ok(super::see_other("/history"));
    }
    let what = if listed == 1 {
        "Your one scan will be deleted.".to_owned()
    } else {
        format!("All {listed} scans listed in Your scans will be deleted.")
    };
    let page = ConfirmDeletePage {
        layout: state.layout(),
        title: "Delete all your scans?",
        what,
        many: listed > 1,
        action: "/history/clear".to_owned(),
        confirm_label: "Delete all your scans",
        back: "/history".to_owned(),
    };
    Ok(html(StatusCode::OK, &page))
}

async fn clear(state: web::Data<AppState>, browser: BrowserId) -> Result<HttpResponse, AppError> {
    state.scanner.clear_history(browser.as_str()).await?;
    Ok(super::see_other("/history"))
}
