//! The summary area: streamed over SSE as the writer produces it, or written
//! in one go for a browser without JavaScript.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, Responder, web};
use actix_web_lab::sse::{self, Sse};
use askama::Template;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::AppState;
use super::browser::BrowserId;
use super::error::AppError;
use super::pages::{escape_html, html, render};
use super::rate_limit::RateLimits;
use super::scans::scan_page;
use super::view::author_label;
use crate::scan::{SummaryEvent, SummaryFeed};

/// Comments sent while the writer is quiet, so proxies keep the stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes(cfg: &mut web::ServiceConfig, limits: &RateLimits) {
    let stream_resource = web::resource("/scans/{id}/summary/stream").wrap(limits.new_scans());
    let write_resource = web::resource("/scans/{id}/summary").wrap(limits.new_scans());
    cfg.service(stream_resource.route(web::get().to(stream)))
        .service(write_resource.route(web::post().to(write)));
}

/// What replaces the status line when the stream ends: who wrote the summary,
/// or why there is none, with a way to write it again.
#[derive(Template)]
#[template(path = "partials/summary_end.html")]
struct SummaryEnd<'a> {
    id: &'a str,
    /// Who wrote the summary, as a phrase.
    author: Option<String>,
    failure: Option<&'a str>,
}

async fn stream(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<impl Responder, AppError> {
    let id = super::scan_id(&id)?;
    let feed = state.scanner.summary_feed(id, false).await?;
    // A browser reconnecting after a dropped stream says how far it got.
    let resume_from = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel(64);
    actix_web::rt::spawn(forward(feed, tx, id.to_string(), resume_from));
    Ok(Sse::from_infallible_receiver(rx).with_keep_alive(KEEP_ALIVE))
}

/// Sends a viewer's feed as SSE events until the summary ends or the viewer
/// leaves. Chunk events carry as id the length of the text sent so far, so a
/// reconnecting browser gets only what it has not shown yet.
async fn forward(feed: SummaryFeed, tx: mpsc::Sender<sse::Event>, id: String, resume_from: usize) {
    if resume_from == 0 {
        let started = sse::Data::new("<p class=\"hint\">Writing a summary…</p>").event("start");
        if tx.send(started.into()).await.is_err() {
            return;
        }
    }
    let mut sent = 0;
    let mut live = feed.live;
    let mut pending = feed.backlog.into_iter();
    loop {
        let event = match pending.next() {
            Some(event) => event,
            None => match live.as_mut() {
                Some(receiver) => match receiver.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(_)) => SummaryEvent::Failed(
                        "This page fell behind the summary. Reload the page to read it.",
                    ),
                    Err(broadcast::error::RecvError::Closed) => {
                        SummaryEvent::Failed("The summary stopped unexpectedly. Try again.")
                    }
                },
                None => return,
            },
        };
        let message = match event {
            SummaryEvent::Chunk(text) => {
                let start = sent;
                sent += text.len();
                // Whatever of this chunk the browser already has is left out.
                let unseen = resume_from.saturating_sub(start);
                match text.get(unseen..).filter(|rest| !rest.is_empty()) {
                    Some(rest) => sse::Data::new(escape_html(rest))
                        .event("chunk")
                        .id(sent.to_string()),
                    None => continue,
                }
            }
            SummaryEvent::Done { author } => {
                // A viewer who went away does not stop the writer: the summary
                // is still stored for the next view.
                let _ = tx.send(end_event(&id, Ok(&author)).into()).await;
                return;
            }
            SummaryEvent::Failed(message) => {
                let _ = tx.send(end_event(&id, Err(message)).into()).await;
                return;
            }
        };
        if tx.send(message.into()).await.is_err() {
            return;
        }
    }
}

/// The event that closes the stream: who wrote the summary, or why it failed.
fn end_event(id: &str, outcome: Result<&str, &str>) -> sse::Data {
    let end = match outcome {
        Ok(author) => SummaryEnd {
            id,
            author: Some(author_label(author)),
            failure: None,
        },
        Err(message) => SummaryEnd {
            id,
            author: None,
            failure: Some(message),
        },
    };
    sse::Data::new(render(&end)).event("end")
}

#[derive(Deserialize)]
struct WriteForm {
    /// Present when a stored summary should be replaced by a new one.
    again: Option<String>,
}

/// Writes the summary on the server, then shows the scan page with it.
async fn write(
    state: web::Data<AppState>,
    browser: BrowserId,
    id: web::Path<String>,
    form: web::Form<WriteForm>,
) -> Result<HttpResponse, AppError> {
    let id = super::scan_id(&id)?;
    let again = form.again.is_some();
    match state.scanner.write_summary(id, again).await? {
        Ok(_) => Ok(super::see_other(&format!("/scans/{id}#summary-heading"))),
        Err(message) => {
            let page = scan_page(&state, &browser, id, None, Some(message)).await?;
            Ok(html(StatusCode::BAD_GATEWAY, &page))
        }
    }
}
