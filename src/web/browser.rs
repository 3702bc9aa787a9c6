//! The anonymous browser id: a random value in an HttpOnly cookie that ties a
//! browser to its own scans, without accounts.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use rand::Rng;

use super::AppState;
use super::error::AppError;

const COOKIE_NAME: &str = "browser_id";

/// Random bytes in an id: 128 bits, unguessable.
const ID_BYTES: usize = 16;

/// This browser's id, as the middleware found or made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserId(String);

impl BrowserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn generate() -> Self {
        let bytes: [u8; ID_BYTES] = rand::rng().random();
        Self(hex::encode(bytes))
    }

    /// Only ids of the exact form we issue are accepted back.
    fn parse(value: &str) -> Option<Self> {
        let well_formed = value.len() == ID_BYTES * 2
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self(value.to_owned()))
    }
}

/// Finds the browser id in the request's cookie, or issues one and sets the cookie.
pub async fn browser_id<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let existing = request
        .cookie(COOKIE_NAME)
        .and_then(|c| BrowserId::parse(c.value()));
    let is_new = existing.is_none();
    let id = existing.unwrap_or_else(BrowserId::generate);
    // Secure when the browser came over HTTPS, which only a trusted
    // TLS-terminating proxy can tell.
    let secure = request
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.proxies.is_https(&request));
    request.extensions_mut().insert(id.clone());

    let mut response = next.call(request).await?;
    if is_new {
        let cookie = Cookie::build(COOKIE_NAME, id.0)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(CookieDuration::days(365))
            .finish();
        response.response_mut().add_cookie(&cookie)?;
    }
    Ok(response)
}

impl FromRequest for BrowserId {
    type Error = AppError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = request.extensions().get::<BrowserId>().cloned();
        ready(id.ok_or_else(|| AppError::Internal("browser id middleware missing".to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_issued_ids_are_accepted() {
        let id = BrowserId::generate();
        assert_eq!(BrowserId::parse(id.as_str()), Some(id));
        assert!(BrowserId::parse("short").is_none());
        assert!(BrowserId::parse(&"G".repeat(32)).is_none());
        assert!(BrowserId::parse(&"a".repeat(33)).is_none());
    }
}
