//! The summary area: streamed over SSE as the writer produces it, or written
//! in one go for a browser without JavaScript.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, Responder, web};
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
use crate::scan::SummaryEvent;

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
    id: web::Path<String>,
) -> Result<impl Responder, AppError> {
    let id = super::scan_id(&id)?;
    let feed = state.scanner.summary_feed(id, false).await?;
    let (tx, rx) = mpsc::channel(64);

    actix_web::rt::spawn(async move {
        let id = id.to_string();
        let started = sse::Data::new("<p class=\"hint\">Writing a summary…</p>").event("start");
        if tx.send(started.into()).await.is_err() {
            return;
        }
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
            let last = !matches!(event, SummaryEvent::Chunk(_));
            // A viewer who went away does not stop the writer: the summary is
            // still stored for the next view.
            if tx.send(to_sse(&id, event).into()).await.is_err() || last {
                return;
            }
        }
    });

    Ok(Sse::from_infallible_receiver(rx).with_keep_alive(KEEP_ALIVE))
}

fn to_sse(id: &str, event: SummaryEvent) -> sse::Data {
    match event {
        SummaryEvent::Chunk(text) => sse::Data::new(escape_html(&text)).event("chunk"),
        SummaryEvent::Done { author } => {
            let end = SummaryEnd {
                id,
                author: Some(author_label(&author)),
                failure: None,
            };
            sse::Data::new(render(&end)).event("end")
        }
        SummaryEvent::Failed(message) => {
            let end = SummaryEnd {
                id,
                author: None,
                failure: Some(message),
            };
            sse::Data::new(render(&end)).event("end")
        }
    }
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
