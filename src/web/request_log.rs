//! One log line per request, inside the request's span (which carries its id).
//!
//! The span holds the method, the path and the request id only. Query strings
//! can hold what someone typed (a searched hash), user agents identify people,
//! and forwarding headers can be forged by anyone, so none of them is logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// Builds the span `TracingLogger` opens for each request.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = request.path(),
            %request_id,
        )
    }

    /// The outcome is logged by `log_request`, and a failure's cause by the
    /// error pages: nothing to add to the span.
    fn on_request_end<B: MessageBody>(_span: Span, _outcome: &Result<ServiceResponse<B>, Error>) {}
}

pub async fn log_request<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let response = next.call(request).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
    match &response {
        Ok(res) => tracing::info!(status = res.status().as_u16(), elapsed_us, "request"),
        Err(error) => tracing::warn!(%error, elapsed_us, "request failed"),
    }
    response
}
