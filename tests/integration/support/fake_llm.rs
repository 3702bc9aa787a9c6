//! A fake OpenAI-compatible chat completions server for integration tests.
//!
//! It is a real HTTP server on `127.0.0.1` (ephemeral port) that answers
//! `POST /v1/chat/completions` with `stream: true` the way OpenAI does: server-sent
//! events, one `chat.completion.chunk` object per `data:` line, the first carrying
//! `delta.role`, the last carrying `finish_reason`, then `data: [DONE]`. Chunks are
//! produced one by one with a configurable delay, so a test can tell a client that
//! streams from one that waits for the whole answer. It checks
//! `Authorization: Bearer <key>` when started with a key, answering 401 with
//! OpenAI's error object otherwise, and can be told to fail in the ways a real
//! server does (an HTTP status, a dropped connection, no answer, a content filter).
//!
//! Runtime: like the fake VirusTotal, the server runs on its own thread with its
//! own actix system, so tests may use `#[tokio::test]` or `#[actix_web::test]`.
//! Dropping [`FakeLlm`] stops the server and joins that thread.

// Journey tests each use a different subset of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use serde_json::{Value, json};

/// A way for the fake to misbehave on the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmFailure {
    /// Answer normally.
    None,
    /// Answer with this HTTP status and OpenAI's error object.
    Status(u16),
    /// Stream this many content chunks, then drop the connection mid-body.
    CutAfter(usize),
    /// Accept the request and never answer.
    Hang,
    /// Stream the first content chunk, then stop with `finish_reason: "content_filter"`.
    ContentFilter,
    /// Stream the first content chunk, then stop with `finish_reason: "length"`,
    /// as a server does when the answer reached its token limit.
    Length,
}

/// The fake server; it stops when dropped.
pub struct FakeLlm {
    shared: Arc<Shared>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl FakeLlm {
    /// Starts on 127.0.0.1:0. With a key, requests must carry `Bearer <key>`.
    #[allow(clippy::expect_used)] // Setup failures should abort the test loudly.
    pub async fn start(api_key: Option<&str>) -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake LLM: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("fake LLM: bound socket has no local address")
            .port();
        let shared = Arc::new(Shared {
            api_key: api_key.map(str::to_owned),
            base_url: format!("http://127.0.0.1:{port}/v1"),
            finished: AtomicBool::new(false),
            state: Mutex::new(State {
                chunks: vec!["This is a summary from the fake model.".to_owned()],
                delay: Duration::ZERO,
                failure: LlmFailure::None,
                requests: Vec::new(),
            }),
        });

        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/v1/chat/completions", web::post().to(chat_completions))
                .default_service(web::to(not_found))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("fake LLM: cannot listen")
        .run();
        let handle = server.handle();

        // Its own thread and actix system, so the test may use any async runtime.
        let thread = std::thread::Builder::new()
            .name(format!("fake-llm-{port}"))
            .spawn(move || {
                if let Err(error) = actix_web::rt::System::new().block_on(server) {
                    eprintln!("fake LLM stopped with an error: {error}");
                }
            })
            .expect("fake LLM: cannot spawn server thread");
        FakeLlm {
            shared,
            handle,
            thread: Some(thread),
        }
    }

    /// e.g. "http://127.0.0.1:PORT/v1" (what the app gets as OPENAI_BASE_URL).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The content chunks of the next answers, and the pause between two of them.
    pub fn set_reply(&self, chunks: &[&str], delay_between_chunks: Duration) {
        let mut state = self.shared.lock();
        state.chunks = chunks.iter().map(|c| (*c).to_owned()).collect();
        state.delay = delay_between_chunks;
    }

    /// How the next requests fail; [`LlmFailure::None`] to answer normally again.
    pub fn set_failure(&self, failure: LlmFailure) {
        self.shared.lock().failure = failure;
    }

    /// The JSON bodies received, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Whether the fake has produced every chunk of the current answer (for tests
    /// that prove streaming: the client had the first chunk before this was true).
    pub fn finished_sending(&self) -> bool {
        self.shared.finished.load(Ordering::SeqCst)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        // `stop` sends the command right away; its future only waits for completion,
        // which the join below does instead.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _joined = thread.join();
        }
    }
}

struct Shared {
    api_key: Option<String>,
    base_url: String,
    finished: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not make every later request fail too.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State {
    chunks: Vec<String>,
    delay: Duration,
    failure: LlmFailure,
    requests: Vec<Value>,
}

/// One step of a streamed answer.
enum Step {
    Send(Bytes),
    Pause(Duration),
    /// Fail the body, which makes the server drop the connection mid-response.
    Cut,
}

async fn chat_completions(
    request: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    shared.finished.store(false, Ordering::SeqCst);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let (chunks, delay, failure) = {
        let mut state = shared.lock();
        state.requests.push(parsed.clone().unwrap_or(Value::Null));
        (state.chunks.clone(), state.delay, state.failure)
    };

    if let Some(expected) = &shared.api_key {
        let sent = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(expected.as_str()) {
            return invalid_key(sent);
        }
    }

    let Some(body) = parsed else {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        );
    };
    if body["stream"] != json!(true) {
        return error(
            400,
            "This fake only answers streamed requests.",
            "invalid_request_error",
            None,
        );
    }
    let model = body["model"].as_str().unwrap_or("").to_owned();
    if model.is_empty() {
        return error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        );
    }

    let plan = match failure {
        LlmFailure::Status(code) => return status_error(code, &model),
        LlmFailure::Hang => {
            std::future::pending::<()>().await;
            return HttpResponse::InternalServerError().finish();
        }
        LlmFailure::None => plan(&model, &chunks, delay, None, "stop"),
        LlmFailure::CutAfter(n) => plan(&model, &chunks, delay, Some(n), "stop"),
        LlmFailure::ContentFilter => plan(
            &model,
            &chunks[..chunks.len().min(1)],
            delay,
            None,
            "content_filter",
        ),
        LlmFailure::Length => plan(
            &model,
            &chunks[..chunks.len().min(1)],
            delay,
            None,
            "length",
        ),
    };

    let shared = shared.into_inner();
    let body = futures_util::stream::unfold(plan, move |mut plan| {
        let shared = shared.clone();
        async move {
            loop {
                let step = plan.pop_front()?;
                if plan.is_empty() {
                    shared.finished.store(true, Ordering::SeqCst);
                }
                match step {
                    Step::Pause(delay) => actix_web::rt::time::sleep(delay).await,
                    Step::Send(bytes) => return Some((Ok(bytes), plan)),
                    Step::Cut => {
                        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut");
                        return Some((Err(cut), plan));
                    }
                }
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

/// The steps of one answer: a role chunk, the content chunks with pauses between
/// them, then the finish chunk and `[DONE]`, or a cut after `cut_after` chunks.
fn plan(
    model: &str,
    chunks: &[String],
    delay: Duration,
    cut_after: Option<usize>,
    finish_reason: &str,
) -> VecDeque<Step> {
    let id = format!("chatcmpl-fake{}", now());
    let event = |delta: Value, finish: Value| {
        let chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": now(),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish,
            }],
        });
        Step::Send(Bytes::from(format!("data: {chunk}\n\n")))
    };

    let mut steps = VecDeque::new();
    steps.push_back(event(
        json!({ "role": "assistant", "content": "", "refusal": null }),
        Value::Null,
    ));
    for (i, text) in chunks.iter().enumerate() {
        if cut_after == Some(i) {
            push_cut(&mut steps);
            return steps;
        }
        if i > 0 && !delay.is_zero() {
            steps.push_back(Step::Pause(delay));
        }
        steps.push_back(event(json!({ "content": text }), Value::Null));
    }
    if cut_after.is_some() {
        push_cut(&mut steps);
        return steps;
    }
    steps.push_back(event(json!({}), json!(finish_reason)));
    steps.push_back(Step::Send(Bytes::from_static(b"data: [DONE]\n\n")));
    steps
}

/// A cut after a short pause: actix drops whatever it has not yet written when
/// the body fails, and the chunks before the cut must reach the client.
fn push_cut(steps: &mut VecDeque<Step>) {
    steps.push_back(Step::Pause(Duration::from_millis(100)));
    steps.push_back(Step::Cut);
}

/// OpenAI's answer to a wrong key; like OpenAI, it repeats the key partly masked.
fn invalid_key(sent: Option<&str>) -> HttpResponse {
    let message = match sent {
        Some(key) if !key.is_empty() => {
            let head: String = key.chars().take(3).collect();
            let tail: String = {
                let chars: Vec<char> = key.chars().collect();
                chars[chars.len().saturating_sub(4)..].iter().collect()
            };
            format!(
                "Incorrect API key provided: {head}****{tail}. You can find your API key at \
                 https://platform.openai.com/account/api-keys."
            )
        }
        _ => "You didn't provide an API key. You need to provide your API key in an \
              Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            .to_owned(),
    };
    error(
        401,
        &message,
        "invalid_request_error",
        Some("invalid_api_key"),
    )
}

fn status_error(code: u16, model: &str) -> HttpResponse {
    match code {
        401 => invalid_key(None),
        404 => error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => error(
            429,
            "Rate limit reached for requests. Please try again in 20s.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500..=599 => error(
            code,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        _ => error(
            code,
            "The request was not accepted.",
            "invalid_request_error",
            None,
        ),
    }
}

/// OpenAI's error object with `status`.
fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({
        "error": {
            "message": message,
            "type": kind,
            "param": null,
            "code": code,
        }
    }))
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    error(
        404,
        &format!("Invalid URL ({} {})", request.method(), request.path()),
        "invalid_request_error",
        None,
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
