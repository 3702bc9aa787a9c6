//! Static files, compiled into the binary so the app runs from any directory.

use actix_web::{HttpResponse, web};

/// Path, content type and content of each file served under `/static/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../static/favicon.svg"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "vendor/htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx.min.js"),
    ),
    (
        "vendor/sse.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/sse.min.js"),
    ),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{path:.+}", web::get().to(serve));
}

async fn serve(path: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(name, _, _)| *name == path.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header(("Cache-Control", "public, max-age=3600"))
            .body(*body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found\n"),
    }
}
