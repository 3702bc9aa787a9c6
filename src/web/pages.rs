//! What every page shares: the layout data, rendering, and formatting helpers.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;
use time::OffsetDateTime;
use time::macros::format_description;

/// Data the base template needs on every page.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// False shows the notice that `VT_API_KEY` is not set.
    pub vt_configured: bool,
}

/// Renders a template, or a plain apology if the template itself fails (which
/// would be a bug, not an input problem).
pub fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|error| {
        tracing::error!(%error, "template failed to render");
        "<!doctype html><title>Error</title><p>This page could not be shown.</p>".to_owned()
    })
}

/// An HTML response with the given status.
pub fn html(status: StatusCode, template: &impl Template) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(render(template))
}

/// Text made safe to place inside HTML, for fragments built outside templates.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// "1.5 MB" style sizes, in decimal units as file managers show them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return if bytes == 1 {
            "1 byte".to_owned()
        } else {
            format!("{bytes} bytes")
        };
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A Unix time as "2024-05-01 14:03 UTC".
pub fn format_date(unix_seconds: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "unknown date".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(1_500_000), "1.5 MB");
        assert_eq!(human_size(681_574_400), "681.6 MB");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape_html("<img src=x onerror='a()'> & \"b\""),
            "&lt;img src=x onerror=&#39;a()&#39;&gt; &amp; &quot;b&quot;"
        );
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(format_date(1_657_036_044), "2022-07-05 15:47 UTC");
    }
}
