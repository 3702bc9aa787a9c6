//! Per-client rate limits. The client is the connecting address, unless that
//! address is a trusted proxy: then the nearest untrusted address in
//! `X-Forwarded-For` is. Headers from anyone else are ignored, so a client
//! cannot escape its limit by inventing addresses.

use std::net::IpAddr;

use actix_governor::governor::NotUntil;
use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::{Governor, GovernorConfig, GovernorConfigBuilder, KeyExtractor};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpResponse, HttpResponseBuilder};
use askama::Template;

use super::error::AppError;
use super::pages::{Layout, render};
use super::proxies::TrustedProxies;
use crate::config::Config;

/// The limits of one deployment, shared by every worker thread.
#[derive(Clone)]
pub struct RateLimits {
    every_request: GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>,
    new_scans: GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>,
}

/// A limit of zero requests, which would lock everyone out.
#[derive(Debug, thiserror::Error)]
#[error("rate limits must allow at least one request a minute")]
pub struct InvalidRateLimit;

impl RateLimits {
    pub fn new(config: &Config) -> Result<Self, InvalidRateLimit> {
        let client = ClientIp {
            proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            layout: Layout {
                vt_configured: config.vt_configured(),
            },
        };
        Ok(Self {
            every_request: per_minute(client.clone(), config.rate_limit_per_minute)?,
            new_scans: per_minute(client, config.scan_rate_limit_per_minute)?,
        })
    }

    /// For every request: keeps one client from flooding the server.
    pub fn every_request(&self) -> Governor<ClientIp, NoOpMiddleware<QuantaInstant>> {
        Governor::new(&self.every_request)
    }

    /// For requests that start work against VirusTotal or the summary writer.
    pub fn new_scans(&self) -> Governor<ClientIp, NoOpMiddleware<QuantaInstant>> {
        Governor::new(&self.new_scans)
    }
}

/// `limit` requests a minute, refilled evenly, with bursts of up to a quarter of it.
fn per_minute(
    client: ClientIp,
    limit: u32,
) -> Result<GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>, InvalidRateLimit> {
    if limit == 0 {
        return Err(InvalidRateLimit);
    }
    let interval_ms = (60_000 / u64::from(limit)).max(1);
    GovernorConfigBuilder::default()
        .milliseconds_per_request(interval_ms)
        .burst_size((limit / 4).max(1))
        .key_extractor(client)
        .finish()
        .ok_or(InvalidRateLimit)
}

/// Finds the client's address, trusting forwarding headers only from proxies.
#[derive(Clone)]
pub struct ClientIp {
    proxies: TrustedProxies,
    layout: Layout,
}

#[derive(Template)]
#[template(path = "rate_limited.html")]
struct RateLimitedPage {
    layout: Layout,
    title: &'static str,
    wait_seconds: u64,
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = AppError;

    fn extract(&self, request: &ServiceRequest) -> Result<IpAddr, AppError> {
        self.proxies
            .client_of(request)
            .ok_or_else(|| AppError::Internal("request without a peer address".to_owned()))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait_seconds = negative
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1);
        tracing::warn!(wait_seconds, "rate limit reached");
        let page = RateLimitedPage {
            layout: self.layout,
            title: "Too many requests",
            wait_seconds,
        };
        response
            .insert_header(("Retry-After", wait_seconds.to_string()))
            .content_type("text/html; charset=utf-8")
            .body(render(&page))
    }
}
