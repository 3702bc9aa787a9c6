//! One log line per request, inside the request's span (which carries its id).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

pub async fn log_request<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().clone();
    // The path only: queries can hold what someone typed.
    let path = request.path().to_owned();
    let response = next.call(request).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
    match &response {
        Ok(res) => {
            tracing::info!(%method, path, status = res.status().as_u16(), elapsed_us, "request")
        }
        Err(error) => tracing::warn!(%method, path, %error, elapsed_us, "request failed"),
    }
    response
}
