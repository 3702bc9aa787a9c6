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

/// The first event of a fresh stream: it says a summary is being written, and
/// empties the summary area, which may hold text from a stream that broke off.
const START: &str = "<p class=\"hint\">Writing a summary…</p>\
    <div id=\"summary\" hx-swap-oob=\"innerHTML\"></div>";

/// The stream is left to the limit on every request: it starts a writer at
/// most once per completed scan, and the scans are limited where they start.
/// A refused stream would only leave the summary area blank.
pub fn routes(cfg: &mut web::ServiceConfig, limits: &RateLimits) {
    let write_resource = web::resource("/scans/{id}/summary").wrap(limits.new_scans());
    cfg.route("/scans/{id}/summary/stream", web::get().to(stream))
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
    let (tx, rx) = mpsc::channel(64);
    match state.scanner.summary_feed(id, false).await {
        Ok(feed) => {
            let resume_from = resume_point(&request, &feed.run);
            actix_web::rt::spawn(forward(feed, tx, id.to_string(), resume_from));
        }
        // Answered as an end event: an error status would make the browser
        // reconnect again and again, with nothing on the page to say why.
        Err(error) => {
            let message = match AppError::from(error) {
                AppError::ScanNotFound => "This scan no longer exists.",
                AppError::InvalidRequest(message) => message,
                other => {
                    tracing::error!(error = %other, "summary stream failed");
                    "The summary could not be started. Try again."
                }
            };
            let _ = tx.try_send(end_event(&id.to_string(), Err(message)).into());
        }
    }
    Ok(Sse::from_infallible_receiver(rx).with_keep_alive(KEEP_ALIVE))
}

/// How much of this run's text a reconnecting browser already shows, from the
/// `Last-Event-ID` it sends (`run.offset`); nothing for a fresh stream or one
/// of another run, whose text the start event clears.
fn resume_point(request: &HttpRequest, run: &str) -> usize {
    request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('.'))
        .filter(|(seen_run, _)| *seen_run == run)
        .and_then(|(_, offset)| offset.parse().ok())
        .unwrap_or(0)
}

/// Sends a viewer's feed as SSE events until the summary ends or the viewer
/// leaves. Chunk events carry as id the run and the length of its text sent
/// so far, so a reconnecting browser gets only what it has not shown yet.
async fn forward(feed: SummaryFeed, tx: mpsc::Sender<sse::Event>, id: String, resume_from: usize) {
    if resume_from == 0
        && tx
            .send(sse::Data::new(START).event("start").into())
            .await
            .is_err()
    {
        return;
    }
    let run = feed.run;
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
                        .id(format!("{run}.{sent}")),
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
