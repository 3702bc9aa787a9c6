//! Response headers that lock pages down, and the refusal of cross-site posts.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{DefaultHeaders, Next};

use super::error::AppError;

/// Only our own scripts, styles and connections; no framing; forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Headers added to every response.
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        // Scan addresses are unguessable links: never leak them to other sites.
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
}

/// Refuses what a browser says another site asked for: any form post, and
/// any fetch that is not the person following a link or submitting a form.
///
/// Browsers send `Sec-Fetch-Site` (and `Origin`) on form posts, which other sites
/// cannot forge; requests without either (scripts, curl) are not cross-site
/// browser requests and pass. Refusing cross-site fetches keeps another site's
/// page from spending this server's VirusTotal quota or summary writer with an
/// image pointing at a search, say.
pub async fn reject_cross_site<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let refused = if is_unsafe(request.method()) {
        is_cross_site(&request)
    } else {
        is_cross_site_fetch(&request)
    };
    if refused {
        tracing::warn!(path = request.path(), "refused a cross-site request");
        // As a response carrying the error, so the error page middleware renders it.
        return Ok(request
            .error_response(AppError::CrossSite)
            .map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

/// A request for a resource (an image, a script, an event stream) that a page
/// of another site made, as opposed to a navigation to this one.
fn is_cross_site_fetch(request: &ServiceRequest) -> bool {
    let header = |name| header(request, name);
    let from_elsewhere =
        header("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none");
    let navigation = header("sec-fetch-mode") == Some("navigate")
        && !matches!(header("sec-fetch-dest"), Some("object" | "embed"));
    from_elsewhere && !navigation
}

/// A request header as text, if it is present and readable.
fn header<'a>(request: &'a ServiceRequest, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_cross_site(request: &ServiceRequest) -> bool {
    let header = |name| header(request, name);
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (header("origin"), header("host")) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}
