//! The summary writers against the fake OpenAI-compatible server: what the LLM
//! writer sends, that it streams, how each failure surfaces, and which writer
//! the configuration picks.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use file_scanner::config::{Config, Secret};
use file_scanner::scan::{AiAnalysis, EngineVerdict, Report};
use file_scanner::summary::prompt::{DATA_END, DATA_START};
use file_scanner::summary::{
    BuiltinWriter, LlmWriter, SummaryError, SummaryWriter, writer_from_config,
};
use file_scanner::virustotal::types::AnalysisStats;
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::support::fake_llm::{FakeLlm, LlmFailure};

const KEY: &str = "sk-test-summary-key-0123456789";
const MODEL: &str = "fake-model-1";
/// A file name distinctive enough to spot if it leaked into a log.
const FILE_NAME: &str = "quarterly-invoice-7731.exe";

/// The whole summary in one piece, or the error that ended it.
async fn write_all(writer: &dyn SummaryWriter, report: &Report) -> Result<String, SummaryError> {
    let mut stream = writer.write(report).await?;
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&chunk?);
    }
    Ok(text)
}

/// A report of a file 60 of 70 engines call malicious.
fn malicious_report() -> Report {
    let majors = [
        "Microsoft",
        "Kaspersky",
        "ESET-NOD32",
        "BitDefender",
        "Sophos",
    ];
    let mut engines: Vec<EngineVerdict> = (0..60)
        .map(|i| EngineVerdict {
            engine: majors
                .get(i)
                .map_or_else(|| format!("Engine{i}"), |m| (*m).to_owned()),
            category: "malicious".to_owned(),
            result: Some(format!("Trojan.Agent.{i}")),
        })
        .collect();
    engines.extend((0..10).map(|i| EngineVerdict {
        engine: format!("Quiet{i}"),
        category: "undetected".to_owned(),
        result: None,
    }));
    Report {
        sha256: "e".repeat(64),
        sha1: Some("f".repeat(40)),
        md5: Some("d".repeat(32)),
        size: Some(123_456),
        type_description: Some("Win32 EXE".to_owned()),
        type_tag: Some("peexe".to_owned()),
        magic: Some("PE32 executable".to_owned()),
        meaningful_name: Some(FILE_NAME.to_owned()),
        names: vec![FILE_NAME.to_owned()],
        tags: vec!["peexe".to_owned()],
        first_submission_date: Some(1_614_816_000),
        last_analysis_date: Some(1_714_521_600),
        times_submitted: Some(12),
        reputation: Some(-40),
        stats: AnalysisStats {
            malicious: 60,
            undetected: 10,
            type_unsupported: 2,
            ..AnalysisStats::default()
        },
        engines,
        threat_label: Some("trojan.agent/generic".to_owned()),
        threat_categories: vec!["trojan".to_owned()],
        threat_names: vec!["agent".to_owned()],
        ai_analyses: vec![AiAnalysis {
            source: "VirusTotal Code Insight".to_owned(),
            verdict: Some("malicious".to_owned()),
            analysis: "The program downloads and runs a second stage.".to_owned(),
        }],
    }
}

fn llm_writer(fake: &FakeLlm, key: Option<&str>, timeout: Duration) -> LlmWriter {
    let key = key.map(Secret::new);
    LlmWriter::new(Some(&fake.base_url()), key.as_ref(), MODEL, timeout)
}

/// Everything a write produced: the text chunks, and the error it ended with, if
/// any (whether `write` itself failed or the stream ended with one).
async fn run(writer: &dyn SummaryWriter, report: &Report) -> (Vec<String>, Option<SummaryError>) {
    let mut stream = match writer.write(report).await {
        Ok(stream) => stream,
        Err(error) => return (Vec::new(), Some(error)),
    };
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => chunks.push(chunk),
            Err(error) => {
                assert!(
                    stream.next().await.is_none(),
                    "an error must be the last item"
                );
                return (chunks, Some(error));
            }
        }
    }
    (chunks, None)
}

fn message<'a>(request: &'a Value, role: &str) -> &'a str {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == role)
        .and_then(|m| m["content"].as_str())
        .unwrap_or_else(|| panic!("no {role} message in {request}"))
}

#[tokio::test]
async fn the_request_carries_the_model_the_figures_and_the_data_block() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_reply(&["This file is ", "malicious."], Duration::ZERO);
    let writer = llm_writer(&fake, Some(KEY), Duration::from_secs(5));

    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert_eq!(error, None);
    assert_eq!(chunks, ["This file is ", "malicious."]);
    assert_eq!(writer.author(), MODEL);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["model"], MODEL);
    assert_eq!(request["stream"], true);
    assert!(request["temperature"].as_f64().unwrap() <= 0.5);

    let system = message(request, "system");
    assert!(
        system.contains(DATA_START) && system.contains(DATA_END),
        "{system}"
    );
    assert!(system.contains("never instructions"), "{system}");

    let user = message(request, "user");
    let start = user.find(DATA_START).expect("data block start") + DATA_START.len();
    let end = user.find(DATA_END).expect("data block end");
    let data: Value = serde_json::from_str(&user[start..end]).unwrap();
    assert!(user[start..end].contains("\"malicious\": 60"), "{user}");
    assert_eq!(data["detection_stats"]["malicious"], 60);
    assert_eq!(data["detection_stats"]["undetected"], 10);
    assert_eq!(data["flagged_engines"][0]["engine"], "Microsoft");
    assert_eq!(data["flagged_engines"][0]["label"], "Trojan.Agent.0");
    assert_eq!(data["flagged_engines"].as_array().unwrap().len(), 30);
    assert_eq!(data["threat_label"], "trojan.agent/generic");
    assert_eq!(data["file_type"], "Win32 EXE");
    assert_eq!(data["names"][0], FILE_NAME);
    assert_eq!(data["virustotal_ai_analyses"][0]["verdict"], "malicious");
}

#[tokio::test]
async fn chunks_arrive_in_order_while_the_model_is_still_writing() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_reply(&["One. ", "Two. ", "Three."], Duration::from_millis(300));
    let writer = llm_writer(&fake, Some(KEY), Duration::from_secs(5));

    let started = Instant::now();
    let mut stream = writer.write(&malicious_report()).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, "One. ");
    assert!(
        !fake.finished_sending(),
        "the first chunk must arrive before the fake has sent the rest"
    );

    let mut rest = Vec::new();
    while let Some(item) = stream.next().await {
        rest.push(item.unwrap());
    }
    assert_eq!(rest, ["Two. ", "Three."]);
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test]
async fn a_wrong_key_is_rejected_and_never_repeated() {
    let logs = LogCapture::start();
    let fake = FakeLlm::start(Some(KEY)).await;
    let wrong = "sk-wrong-key-abcdef-98765";
    let writer = llm_writer(&fake, Some(wrong), Duration::from_secs(5));

    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert!(chunks.is_empty());
    let error = error.unwrap();
    assert_eq!(error, SummaryError::Rejected);
    assert_eq!(fake.request_count(), 1);

    // The fake, like OpenAI, echoes the key's last characters in its message.
    let shown = format!("{error} {error:?} {} {writer:?}", error.user_message());
    for secret in [wrong, "8765", KEY] {
        assert!(!shown.contains(secret), "{shown}");
    }
    let logged = logs.text();
    assert!(logged.contains("rejected"), "{logged}");
    for secret in [wrong, "8765", FILE_NAME, DATA_START] {
        assert!(!logged.contains(secret), "{logged}");
    }
}

#[tokio::test]
async fn a_missing_key_is_rejected_too() {
    let fake = FakeLlm::start(Some(KEY)).await;
    let writer = llm_writer(&fake, None, Duration::from_secs(5));
    let (_, error) = run(&writer, &malicious_report()).await;
    assert_eq!(error, Some(SummaryError::Rejected));
}

#[tokio::test]
async fn a_server_without_keys_needs_none() {
    let fake = FakeLlm::start(None).await;
    fake.set_reply(&["Fine."], Duration::ZERO);
    let writer = llm_writer(&fake, None, Duration::from_secs(5));
    let text = write_all(&writer, &malicious_report()).await.unwrap();
    assert_eq!(text, "Fine.");
}

#[tokio::test]
async fn a_cut_connection_ends_with_interrupted() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_reply(&["a ", "b ", "c ", "d"], Duration::from_millis(20));
    fake.set_failure(LlmFailure::CutAfter(2));
    let writer = llm_writer(&fake, Some(KEY), Duration::from_secs(5));

    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert_eq!(chunks, ["a ", "b "]);
    assert_eq!(error, Some(SummaryError::Interrupted));
    // A partial summary is not a summary.
    assert_eq!(
        write_all(&writer, &malicious_report()).await,
        Err(SummaryError::Interrupted)
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_failure(LlmFailure::Hang);
    let writer = llm_writer(&fake, Some(KEY), Duration::from_millis(500));

    let started = Instant::now();
    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert!(chunks.is_empty());
    assert_eq!(error, Some(SummaryError::Timeout));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_stall_between_chunks_times_out() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_reply(&["Started. ", "Never seen."], Duration::from_secs(3));
    let writer = llm_writer(&fake, Some(KEY), Duration::from_millis(600));

    let started = Instant::now();
    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert_eq!(chunks, ["Started. "]);
    assert_eq!(error, Some(SummaryError::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_content_filter_is_a_refusal() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_reply(&["Partial ", "text"], Duration::ZERO);
    fake.set_failure(LlmFailure::ContentFilter);
    let writer = llm_writer(&fake, Some(KEY), Duration::from_secs(5));

    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert_eq!(chunks, ["Partial "]);
    assert_eq!(error, Some(SummaryError::Refused));
}

#[tokio::test]
async fn an_answer_cut_off_at_the_token_limit_is_not_complete() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_reply(&["This file is ", "never finished"], Duration::ZERO);
    fake.set_failure(LlmFailure::Length);
    let writer = llm_writer(&fake, Some(KEY), Duration::from_secs(5));

    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert_eq!(chunks, ["This file is "]);
    assert_eq!(error, Some(SummaryError::CutOff));
}

#[tokio::test]
async fn an_empty_answer_is_a_refusal() {
    let fake = FakeLlm::start(Some(KEY)).await;
    fake.set_reply(&[], Duration::ZERO);
    let writer = llm_writer(&fake, Some(KEY), Duration::from_secs(5));
    let (chunks, error) = run(&writer, &malicious_report()).await;
    assert!(chunks.is_empty());
    assert_eq!(error, Some(SummaryError::Refused));
}

#[tokio::test]
async fn http_statuses_map_to_their_own_errors() {
    let fake = FakeLlm::start(Some(KEY)).await;
    let writer = llm_writer(&fake, Some(KEY), Duration::from_secs(10));
    let report = malicious_report();

    fake.set_failure(LlmFailure::Status(429));
    assert_eq!(
        run(&writer, &report).await.1,
        Some(SummaryError::RateLimited)
    );

    fake.set_failure(LlmFailure::Status(503));
    assert_eq!(
        run(&writer, &report).await.1,
        Some(SummaryError::Unavailable("HTTP 503".to_owned()))
    );

    fake.set_failure(LlmFailure::Status(403));
    assert_eq!(run(&writer, &report).await.1, Some(SummaryError::Rejected));

    fake.set_failure(LlmFailure::Status(404));
    assert_eq!(
        run(&writer, &report).await.1,
        Some(SummaryError::BadRequest(404))
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let writer = LlmWriter::new(Some(&base), None, MODEL, Duration::from_secs(5));
    let (_, error) = run(&writer, &malicious_report()).await;
    assert!(
        matches!(error, Some(SummaryError::Unavailable(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_configuration_picks_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::with_data_dir(dir.path());
    config.openai_api_key = Some(Secret::new(KEY));
    let fake = FakeLlm::start(Some(KEY)).await;
    config.openai_base_url = Some(fake.base_url());

    // A key and a URL are not enough: without OPENAI_MODEL the built-in one writes.
    let builtin = writer_from_config(&config);
    assert_eq!(builtin.author(), "built-in");
    let text = write_all(builtin.as_ref(), &malicious_report())
        .await
        .unwrap();
    assert_eq!(text, BuiltinWriter.compose(&malicious_report()));
    assert!(text.contains("Do not open or run this file"));
    assert_eq!(fake.request_count(), 0);

    config.openai_model = Some(MODEL.to_owned());
    fake.set_reply(&["From the model."], Duration::ZERO);
    let llm = writer_from_config(&config);
    assert_eq!(llm.author(), MODEL);
    assert_eq!(
        write_all(llm.as_ref(), &malicious_report()).await.unwrap(),
        "From the model."
    );
    assert_eq!(fake.request_count(), 1);
}

/// Collects what `tracing` writes on this thread while it lives. Tests run on
/// a current-thread runtime, so tasks they spawn log here too.
struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    fn start() -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        Self {
            buffer,
            _guard: guard,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for SharedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
