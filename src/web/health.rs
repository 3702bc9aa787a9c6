//! Liveness and readiness probes for orchestrators and load balancers.

use actix_web::{HttpResponse, web};

use super::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(live))
        .route("/readyz", web::get().to(ready));
}

/// The process is up and serving.
async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// The process can serve scans: its storage answers.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.scanner.storage_ready().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed: storage unreachable");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("storage unavailable\n")
        }
    }
}
