//! Plain-language summaries of a report, behind one interface with two writers.
//!
//! [`LlmWriter`] asks any OpenAI-compatible server (OpenAI, Ollama, vLLM,
//! llama.cpp) and streams its answer; [`BuiltinWriter`] explains the report
//! itself when no model is configured. Both hand back a stream of plain-text
//! chunks, so the web layer treats them alike and escapes whatever arrives.
//! A stream that ends without an error carries a complete summary; anything
//! short of that ends with a [`SummaryError`] as its last item.

mod builtin;
mod facts;
mod llm;
pub mod prompt;

use std::sync::Arc;

use async_trait::async_trait;

pub use builtin::BuiltinWriter;
pub use llm::LlmWriter;

use crate::config::Config;
use crate::scan::Report;

/// A chunk stream of plain text (not HTML: the web layer escapes it).
pub type SummaryStream = futures_util::stream::BoxStream<'static, Result<String, SummaryError>>;

/// Something that can write a summary of a report.
#[async_trait]
pub trait SummaryWriter: Send + Sync {
    /// "built-in" or the model name, shown on the page as who wrote the summary.
    fn author(&self) -> String;

    /// Starts writing; chunks arrive as the writer produces them. The stream
    /// ends normally only when the summary is complete.
    async fn write(&self, report: &Report) -> Result<SummaryStream, SummaryError>;
}

/// Why a summary could not be written, or not to the end. Neither the message
/// nor `Debug` ever contains the API key or text from the prompt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    /// The server refused the API key (HTTP 401 or 403), or the key cannot be sent.
    #[error("the summary service refused the API key")]
    Rejected,
    /// Too many requests, or the account's quota is used up (HTTP 429).
    #[error("the summary service is rate limiting requests")]
    RateLimited,
    /// No first words, or no next chunk, within the timeout.
    #[error("the summary service did not answer in time")]
    Timeout,
    /// The model declined, a content filter stopped it, or the answer was empty.
    #[error("the model refused or returned an empty summary")]
    Refused,
    /// The answer stopped before the model said it was finished.
    #[error("the summary stream ended before the summary was complete")]
    Interrupted,
    /// The answer reached the length limit before it was complete.
    #[error("the summary was cut off at the length limit")]
    CutOff,
    /// The server could not be reached or failed (connection errors, HTTP 5xx).
    #[error("the summary service is unavailable: {0}")]
    Unavailable(String),
    /// The server did not accept the request (another HTTP 4xx), which usually
    /// means the configured model does not exist there.
    #[error("the summary service did not accept the request (HTTP {0})")]
    BadRequest(u16),
}

impl SummaryError {
    /// A short, plain sentence for the page; it names no secret.
    pub fn user_message(&self) -> &'static str {
        match self {
            Self::Rejected => {
                "The summary service refused access: its API key is missing or wrong."
            }
            Self::RateLimited => {
                "The summary service is busy or over its usage limit. Try again later."
            }
            Self::Timeout => "The summary service did not answer in time.",
            Self::Refused => "The summary service declined to write a summary for this file.",
            Self::Interrupted => {
                "The connection to the summary service was lost before the summary was complete."
            }
            Self::CutOff => "The summary grew too long and was cut off. Try again.",
            Self::Unavailable(_) => "The summary service could not be reached.",
            Self::BadRequest(_) => {
                "The summary service did not accept the request; the configured model may be wrong."
            }
        }
    }

    /// A stable name for logs and markup, e.g. `"timeout"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::Refused => "refused",
            Self::Interrupted => "interrupted",
            Self::CutOff => "cut_off",
            Self::Unavailable(_) => "unavailable",
            Self::BadRequest(_) => "bad_request",
        }
    }
}

/// The LLM writer when `OPENAI_MODEL` is set (`OPENAI_BASE_URL` defaulting to
/// OpenAI's), else the built-in one.
pub fn writer_from_config(config: &Config) -> Arc<dyn SummaryWriter> {
    let model = config
        .openai_model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    match model {
        Some(model) => {
            tracing::info!(model, "summaries are written by an LLM");
            Arc::new(LlmWriter::new(
                config.openai_base_url.as_deref(),
                config.openai_api_key.as_ref(),
                model,
                config.llm_timeout,
            ))
        }
        None if config.openai_api_key.is_some() || config.openai_base_url.is_some() => {
            tracing::warn!(
                "OPENAI_API_KEY or OPENAI_BASE_URL is set but OPENAI_MODEL is not: summaries \
                 are written by the built-in explainer until a model is named"
            );
            Arc::new(BuiltinWriter)
        }
        None => {
            tracing::info!(
                "OPENAI_MODEL is not set: summaries are written by the built-in explainer"
            );
            Arc::new(BuiltinWriter)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    #[test]
    fn without_a_model_the_builtin_writer_is_used() {
        let mut config = Config::with_data_dir("unused");
        config.openai_base_url = Some("http://127.0.0.1:9/v1".to_owned());
        assert_eq!(writer_from_config(&config).author(), "built-in");

        config.openai_model = Some("  ".to_owned());
        assert_eq!(writer_from_config(&config).author(), "built-in");

        config.openai_model = Some("llama3.2".to_owned());
        assert_eq!(writer_from_config(&config).author(), "llama3.2");
    }

    #[test]
    fn user_messages_are_short_and_distinct() {
        let all = [
            SummaryError::Rejected,
            SummaryError::RateLimited,
            SummaryError::Timeout,
            SummaryError::Refused,
            SummaryError::Interrupted,
            SummaryError::CutOff,
            SummaryError::Unavailable("HTTP 503".to_owned()),
            SummaryError::BadRequest(404),
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(a.user_message().len() < 100, "{}", a.user_message());
            for b in &all[i + 1..] {
                assert_ne!(a.user_message(), b.user_message());
                assert_ne!(a.kind(), b.kind());
            }
        }
    }

    #[tokio::test]
    async fn the_builtin_stream_carries_the_whole_summary() {
        let report = builtin::tests::report_flagged_by(&[], &[]);
        let mut stream = BuiltinWriter.write(&report).await.unwrap();
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            text.push_str(&chunk.unwrap());
        }
        assert_eq!(text, BuiltinWriter.compose(&report));
    }
}
