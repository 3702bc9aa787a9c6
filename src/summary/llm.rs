//! The LLM summary writer: a streamed chat completion from any OpenAI-compatible
//! server, through `async-openai`.
//!
//! Every way the exchange can fail ends in one [`SummaryError`] variant: the
//! HTTP status before the stream starts (401/403, 429, 5xx, other 4xx), no
//! first words or no next chunk in time, a content filter or an empty answer,
//! an answer cut off at the length limit, and a stream that stops before the
//! model says it is done. Failures are
//! logged once, as warnings, with the model and the kind of failure only: never
//! the key, the prompt, or the server's error text (OpenAI's 401 message
//! repeats part of the key).

use std::fmt;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::{OPENAI_API_BASE, OpenAIConfig};
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, ChatCompletionResponseStream, CreateChatCompletionRequest,
    FinishReason,
};
use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokio::time::{Instant, timeout_at};

use super::{SummaryError, SummaryStream, SummaryWriter, prompt};
use crate::config::Secret;
use crate::scan::Report;

/// Sampling temperature: low, so the same report reads much the same each time.
const TEMPERATURE: f32 = 0.2;

/// Upper bound on the answer's length in tokens; 200 words need about 300.
const MAX_COMPLETION_TOKENS: u32 = 600;

/// Sent as the key to servers that need none (Ollama, llama.cpp), because the
/// client always sends an `Authorization` header. It is not a secret.
const NO_KEY_PLACEHOLDER: &str = "no-key";

/// Longest answer accepted, in bytes, in case a server ignores the token limit;
/// a longer one counts as cut off.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// The whole answer must arrive within this many timeouts, so a server that
/// trickles text forever cannot hold a page open forever.
const WHOLE_ANSWER_TIMEOUTS: u32 = 10;

/// Longest wait for the TCP (and TLS) connection.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes summaries with a model on an OpenAI-compatible server.
pub struct LlmWriter {
    /// `Err` when the writer cannot work at all (a key that cannot be sent);
    /// every `write` then fails the same way.
    client: Result<Client<OpenAIConfig>, SummaryError>,
    model: String,
    timeout: Duration,
}

impl fmt::Debug for LlmWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmWriter")
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LlmWriter {
    /// A writer asking `model` at `base_url` (OpenAI's API when `None`).
    /// `timeout` bounds the wait for the first words and then for each next chunk.
    pub fn new(
        base_url: Option<&str>,
        api_key: Option<&Secret>,
        model: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            client: build_client(base_url, api_key, timeout),
            model: model.trim().to_owned(),
            timeout,
        }
    }

    fn request(&self, report: &Report) -> CreateChatCompletionRequest {
        let system = ChatCompletionRequestSystemMessage {
            content: prompt::system_message().into(),
            name: None,
        };
        let user = ChatCompletionRequestUserMessage {
            content: prompt::user_message(report).into(),
            name: None,
        };
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatCompletionRequestMessage::System(system),
                ChatCompletionRequestMessage::User(user),
            ],
            stream: Some(true),
            temperature: Some(TEMPERATURE),
            max_completion_tokens: Some(MAX_COMPLETION_TOKENS),
            n: Some(1),
            ..CreateChatCompletionRequest::default()
        }
    }
}

fn build_client(
    base_url: Option<&str>,
    api_key: Option<&Secret>,
    timeout: Duration,
) -> Result<Client<OpenAIConfig>, SummaryError> {
    let key = api_key.map_or(NO_KEY_PLACEHOLDER, Secret::expose);
    // async-openai builds the header with `unwrap`; a key it cannot put in a
    // header would panic there, so it is refused here instead.
    if reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err() {
        tracing::warn!("OPENAI_API_KEY contains characters that cannot be sent in a header");
        return Err(SummaryError::Rejected);
    }

    let base_url = base_url.unwrap_or(OPENAI_API_BASE).trim_end_matches('/');
    // Organisation and project are set empty so that stray OPENAI_ORG_ID or
    // OPENAI_PROJECT_ID variables, which this app does not read, change nothing.
    let config = OpenAIConfig::new()
        .with_api_base(base_url)
        .with_api_key(key)
        .with_org_id("")
        .with_project_id("");

    let http = reqwest::Client::builder()
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .build()
        .map_err(|_| {
            tracing::warn!("could not build the HTTP client for the summary service");
            SummaryError::Unavailable("the HTTP client could not be built".to_owned())
        })?;
    Ok(Client::build(http, config))
}

#[async_trait]
impl SummaryWriter for LlmWriter {
    fn author(&self) -> String {
        self.model.clone()
    }

    async fn write(&self, report: &Report) -> Result<SummaryStream, SummaryError> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let started = Instant::now();
        let first_words_by = started + self.timeout;

        let chat = client.chat();
        let opened = timeout_at(first_words_by, chat.create_stream(self.request(report)));
        let inner = match opened.await {
            Ok(Ok(inner)) => inner,
            Ok(Err(error)) => {
                let failure = classify(&error);
                log_failure(&self.model, &failure, Some(&error));
                return Err(failure);
            }
            Err(_elapsed) => {
                log_failure(&self.model, &SummaryError::Timeout, None);
                return Err(SummaryError::Timeout);
            }
        };

        let state = Completion {
            inner,
            model: self.model.clone(),
            first_words_by,
            give_up_by: started + self.timeout.saturating_mul(WHOLE_ANSWER_TIMEOUTS),
            idle: self.timeout,
            bytes: 0,
            end: None,
            done: false,
        };
        Ok(futures_util::stream::unfold(state, Completion::next).boxed())
    }
}

/// A completion being received: turns the server's chunks into text chunks and
/// decides how the stream ends.
struct Completion {
    inner: ChatCompletionResponseStream,
    model: String,
    first_words_by: Instant,
    give_up_by: Instant,
    idle: Duration,
    /// Text received so far, in bytes; zero means no words yet.
    bytes: usize,
    /// How to end once the text already taken has been passed on.
    end: Option<Result<(), SummaryError>>,
    done: bool,
}

impl Completion {
    async fn next(mut self) -> Option<(Result<String, SummaryError>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(end) = self.end.take() {
                return self.finish(end);
            }

            let deadline = if self.bytes == 0 {
                self.first_words_by
            } else {
                (Instant::now() + self.idle).min(self.give_up_by)
            };
            let chunk = match timeout_at(deadline, self.inner.next()).await {
                Err(_elapsed) => return self.finish(Err(SummaryError::Timeout)),
                // The server closed the stream without saying the answer was done.
                Ok(None) => return self.finish(Err(SummaryError::Interrupted)),
                Ok(Some(Err(error))) => {
                    log_failure(&self.model, &SummaryError::Interrupted, Some(&error));
                    self.done = true;
                    return Some((Err(SummaryError::Interrupted), self));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };

            // Only one choice is asked for; a chunk without it (e.g. usage) carries no text.
            let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
                continue;
            };
            let mut text = choice.delta.content.unwrap_or_default();
            let refused = choice.delta.refusal.is_some_and(|r| !r.trim().is_empty());

            if self.bytes + text.len() > MAX_ANSWER_BYTES {
                let mut cut = MAX_ANSWER_BYTES.saturating_sub(self.bytes);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                self.end = Some(Err(SummaryError::CutOff));
            }
            if refused {
                self.end = Some(Err(SummaryError::Refused));
            } else if let Some(reason) = choice.finish_reason {
                let has_words = self.bytes > 0 || !text.trim().is_empty();
                self.end = Some(match reason {
                    FinishReason::Stop if has_words => Ok(()),
                    // Stopped by the token limit: the text ends mid-way.
                    FinishReason::Length if has_words => Err(SummaryError::CutOff),
                    // An empty answer, a content filter, or a tool call nobody asked for.
                    _ => Err(SummaryError::Refused),
                });
            }

            if !text.is_empty() {
                self.bytes += text.len();
                return Some((Ok(text), self));
            }
        }
    }

    /// Ends the stream: quietly when the summary is complete, else with the error.
    fn finish(
        mut self,
        end: Result<(), SummaryError>,
    ) -> Option<(Result<String, SummaryError>, Self)> {
        self.done = true;
        match end {
            Ok(()) => None,
            Err(error) => {
                log_failure(&self.model, &error, None);
                Some((Err(error), self))
            }
        }
    }
}

/// The variant for an error from `async-openai`.
fn classify(error: &OpenAIError) -> SummaryError {
    match error {
        OpenAIError::ApiError(response) => {
            let code = response.api_error.code.as_deref().unwrap_or("");
            let kind = response.api_error.r#type.as_deref().unwrap_or("");
            from_status(response.status_code.as_u16(), code, kind)
        }
        OpenAIError::Reqwest(error) if error.is_timeout() => SummaryError::Timeout,
        OpenAIError::Reqwest(error) if error.is_connect() => {
            SummaryError::Unavailable("could not connect".to_owned())
        }
        OpenAIError::Reqwest(error) if error.is_builder() => {
            SummaryError::Unavailable("the base URL cannot be used".to_owned())
        }
        OpenAIError::Reqwest(error) => match error.status() {
            Some(status) => from_status(status.as_u16(), "", ""),
            None => SummaryError::Unavailable("the connection failed".to_owned()),
        },
        // A 4xx whose body is not OpenAI's error object: the status is lost on
        // the way, so all that is known is that the server is not answering as
        // an OpenAI-compatible one would.
        OpenAIError::JSONDeserialize(..) => {
            SummaryError::Unavailable("the answer was not in the expected format".to_owned())
        }
        OpenAIError::StreamError(_) => SummaryError::Interrupted,
        _ => SummaryError::Unavailable("the request could not be made".to_owned()),
    }
}

fn from_status(status: u16, code: &str, kind: &str) -> SummaryError {
    let filtered = |s: &str| s.contains("content_filter") || s.contains("content_policy");
    match status {
        401 | 403 => SummaryError::Rejected,
        429 => SummaryError::RateLimited,
        408 => SummaryError::Timeout,
        500..=599 => SummaryError::Unavailable(format!("HTTP {status}")),
        _ if filtered(code) || filtered(kind) => SummaryError::Refused,
        _ => SummaryError::BadRequest(status),
    }
}

/// One warning per failure, with what is safe to log: no key, prompt or
/// server-written text.
fn log_failure(model: &str, failure: &SummaryError, cause: Option<&OpenAIError>) {
    let (status, api_type, api_code, transport) = match cause {
        Some(OpenAIError::ApiError(response)) => (
            Some(response.status_code.as_u16()),
            response.api_error.r#type.as_deref(),
            response.api_error.code.as_deref(),
            None,
        ),
        Some(OpenAIError::Reqwest(error)) => (
            error.status().map(|s| s.as_u16()),
            None,
            None,
            Some(transport_kind(error)),
        ),
        Some(OpenAIError::JSONDeserialize(..)) => (None, None, None, Some("unexpected body")),
        Some(OpenAIError::StreamError(_)) => (None, None, None, Some("event stream broken")),
        _ => (None, None, None, None),
    };
    tracing::warn!(
        model,
        failure = failure.kind(),
        status,
        api_type,
        api_code,
        transport,
        "summary by LLM failed"
    );
}

fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else if error.is_builder() {
        "builder"
    } else {
        "request"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_distinct_failures() {
        assert_eq!(
            from_status(401, "invalid_api_key", ""),
            SummaryError::Rejected
        );
        assert_eq!(from_status(403, "", ""), SummaryError::Rejected);
        assert_eq!(
            from_status(429, "", "insufficient_quota"),
            SummaryError::RateLimited
        );
        assert_eq!(from_status(408, "", ""), SummaryError::Timeout);
        assert_eq!(
            from_status(503, "", ""),
            SummaryError::Unavailable("HTTP 503".to_owned())
        );
        assert_eq!(
            from_status(400, "content_filter", ""),
            SummaryError::Refused
        );
        assert_eq!(
            from_status(404, "model_not_found", ""),
            SummaryError::BadRequest(404)
        );
    }

    #[test]
    fn a_key_that_cannot_be_sent_is_refused_up_front() {
        let writer = LlmWriter::new(
            Some("http://127.0.0.1:9/v1"),
            Some(&Secret::new("bad\nkey")),
            "m",
            Duration::from_secs(1),
        );
        assert_eq!(writer.client.as_ref().err(), Some(&SummaryError::Rejected));
        assert!(!format!("{writer:?}").contains("bad"));
    }

    #[test]
    fn the_request_streams_with_bounded_sampling() {
        let writer = LlmWriter::new(None, None, " gpt-test ", Duration::from_secs(1));
        let report = crate::summary::builtin::tests::report_flagged_by(&["Bkav"], &[]);
        let request = serde_json::to_value(writer.request(&report)).unwrap();
        assert_eq!(request["model"], "gpt-test");
        assert_eq!(request["stream"], true);
        assert_eq!(request["max_completion_tokens"], MAX_COMPLETION_TOKENS);
        assert_eq!(request["messages"][0]["role"], "system");
        assert_eq!(request["messages"][1]["role"], "user");
        assert!(request["temperature"].as_f64().unwrap() < 0.5);
        assert_eq!(writer.author(), "gpt-test");
    }
}
