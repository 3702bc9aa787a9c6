//! What every page shares: the layout data, rendering, and formatting helpers.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

/// Data the base template needs on every page.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// False shows the notice that `VT_API_KEY` is not set.
    pub vt_configured: bool,
}

/// The step before deleting, so nothing is deleted by one stray click.
#[derive(Template)]
#[template(path = "confirm_delete.html")]
pub struct ConfirmDeletePage {
    pub layout: Layout,
    pub title: &'static str,
    /// What would be deleted, in a sentence.
    pub what: String,
    /// Whether more than one scan would go.
    pub many: bool,
    pub action: String,
    pub confirm_label: &'static str,
    /// Where "keep" leads back to.
    pub back: String,
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

pub use crate::format::{date_time as format_date, human_size};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape_html("<img src=x onerror='a()'> & \"b\""),
            "&lt;img src=x onerror=&#39;a()&#39;&gt; &amp; &quot;b&quot;"
        );
    }
}
