//! A fake VirusTotal API v3 server for integration tests.
//!
//! It is a real HTTP server on `127.0.0.1` (ephemeral port) that follows the contract in
//! `VT_API.md` (§1–7, §9, §11): `x-apikey` authentication, file reports by md5/sha1/sha256,
//! direct uploads (≤ 32,000,000 bytes of file), single-use upload URLs, analyses that walk a
//! scripted timeline, re-analysis, per-minute/daily quotas and injectable failures.
//!
//! Runtime: the server runs on its own thread with its own actix system, so tests may use
//! `#[tokio::test]` (either flavor) or `#[actix_web::test]`. Dropping [`FakeVirusTotal`] stops
//! the server and joins that thread, so the port is released when the value goes away.
//!
//! Links inside served objects (`links.self`, `links.item`) point at the fake itself, so a
//! client that follows them stays inside the test.

// Journey tests each use a different subset of this module.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_multipart::Multipart;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use futures_util::StreamExt as _;
use md5::Md5;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use rand::Rng as _;
use serde_json::{Map, Value, json};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// Largest file VirusTotal accepts on `POST /files` (VT's own tooling says 32,000,000 bytes).
pub const DIRECT_UPLOAD_LIMIT: usize = 32_000_000;
/// Largest file accepted through an upload URL (650 MiB, see VT_API.md §9.9).
pub const UPLOAD_URL_LIMIT: usize = 650 * 1024 * 1024;

const API_PREFIX: &str = "/api/v3";
const UPLOAD_PREFIX: &str = "/_ah/upload/";
const REAL_VT_BASE: &str = "https://www.virustotal.com/api/v3";
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const DEFAULT_UNDETECTED: u32 = 64;

/// Engines in the fixed order in which they flag files. Lesser-known engines come first, so a
/// file with one to three detections is flagged only by them (the shape of a likely false
/// positive); the well-known engines follow and join in as the count grows.
const ENGINES: [&str; 72] = [
    "Bkav",
    "MaxSecure",
    "Jiangmin",
    "Zillya",
    "Antiy-AVL",
    "TACHYON",
    "VirIT",
    "Zoner",
    "Microsoft",
    "Kaspersky",
    "ESET-NOD32",
    "BitDefender",
    "Sophos",
    "CrowdStrike",
    "Avast",
    "AVG",
    "Malwarebytes",
    "Symantec",
    "TrendMicro",
    "McAfee",
    "Fortinet",
    "DrWeb",
    "F-Secure",
    "Avira",
    "GData",
    "Emsisoft",
    "SentinelOne",
    "Panda",
    "ClamAV",
    "Google",
    "Ikarus",
    "Webroot",
    "Elastic",
    "Cylance",
    "Paloalto",
    "DeepInstinct",
    "Cybereason",
    "Acronis",
    "AhnLab-V3",
    "ALYac",
    "Arcabit",
    "Baidu",
    "Lionic",
    "CAT-QuickHeal",
    "CMC",
    "CTX",
    "Cynet",
    "Alibaba",
    "K7AntiVirus",
    "K7GW",
    "Kingsoft",
    "MicroWorld-eScan",
    "NANO-Antivirus",
    "Rising",
    "Sangfor",
    "SUPERAntiSpyware",
    "Skyhigh",
    "Tencent",
    "tehtris",
    "TrendMicro-HouseCall",
    "VBA32",
    "VIPRE",
    "Varist",
    "ViRobot",
    "Xcitium",
    "Yandex",
    "ZoneAlarm",
    "huorong",
    "McAfeeD",
    "Trustlook",
    "SecureAge",
    "Gridinsoft",
];

/// The eight analysis categories, in the order VirusTotal lists them.
const CATEGORIES: [&str; 8] = [
    "malicious",
    "suspicious",
    "undetected",
    "harmless",
    "timeout",
    "confirmed-timeout",
    "failure",
    "type-unsupported",
];

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// The three hashes of a file, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHashes {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Upper-case HTTP method, e.g. "GET".
    pub method: String,
    /// The full, percent-decoded path as received, e.g. "/api/v3/files/<hash>" or
    /// "/_ah/upload/<token>/" (no query string).
    pub path: String,
    /// The path exactly as sent, before percent-decoding.
    pub raw_path: String,
    /// The `x-apikey` header, if one was sent.
    pub api_key: Option<String>,
    /// Status answered; 0 while the answer is still pending (e.g. a [`Failure::Hang`]).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// How an upload reached the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadVia {
    /// `POST /api/v3/files`.
    Direct,
    /// `POST` to a URL handed out by `GET /api/v3/files/upload_url`.
    UploadUrl,
}

/// A file the fake accepted (answered with an analysis descriptor). Uploads refused for size,
/// a bad password, a malformed body or an injected failure are not listed here; they still
/// appear in [`FakeVirusTotal::requests`].
#[derive(Debug, Clone)]
pub struct ReceivedUpload {
    pub via: UploadVia,
    /// The `filename` of the `file` part's Content-Disposition.
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
    /// The optional `password` part.
    pub password: Option<String>,
}

/// Which requests an injected failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v3/files/{hash}`.
    FileReport,
    /// `POST /api/v3/files`.
    UploadDirect,
    /// `GET /api/v3/files/upload_url`.
    UploadUrl,
    /// `POST` to an upload URL (`/_ah/upload/{token}/`).
    UploadToUrl,
    /// `GET /api/v3/analyses/{id}`.
    Analysis,
    /// `GET /api/v3/analyses/{id}/item`.
    AnalysisItem,
    /// `POST /api/v3/files/{hash}/analyse`.
    Reanalyse,
    /// Every request, whatever its path.
    Any,
}

/// A failure to inject with [`FakeVirusTotal::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A documented JSON error: status and code, e.g. (503, "TransientError"),
    /// (401, "WrongCredentialsError"), (429, "QuotaExceededError").
    Error(u16, &'static str),
    /// A non-JSON body (text/html) with this status, as VT's front ends sometimes send.
    NonJson(u16),
    /// 200 with a JSON body that is not the documented shape.
    Malformed,
    /// Holds the request for this long, then answers 504 DeadlineExceededError (JSON). A client
    /// whose timeout is shorter than the duration sees a timeout; the connection is not closed
    /// early. The server's own shutdown on drop is not delayed by a pending hang.
    Hang(Duration),
}

/// Builder for a realistic file object (VT_API.md §2).
#[derive(Debug, Clone)]
pub struct FileFixture {
    md5: String,
    sha1: String,
    sha256: String,
    size: u64,
    malicious: u32,
    suspicious: u32,
    undetected: u32,
    harmless: u32,
    names: Option<Vec<String>>,
    threat_label: Option<String>,
    type_description: String,
    type_tag: Option<String>,
    overrides: Map<String, Value>,
    removed: Vec<String>,
    first_submission_date: i64,
    last_submission_date: i64,
    last_analysis_date: i64,
    times_submitted: u64,
    unique_sources: u64,
}

impl FileFixture {
    /// A clean file (0 of 72 engines flag it, 64 undetected, the rest type-unsupported or
    /// timeout), typed "Win32 EXE", with hashes and size computed from `content`.
    pub fn new(content: &[u8]) -> Self {
        let now = unix_now();
        let hashes = hash_content(content);
        FileFixture {
            md5: hashes.md5,
            sha1: hashes.sha1,
            sha256: hashes.sha256,
            size: content.len() as u64,
            malicious: 0,
            suspicious: 0,
            undetected: DEFAULT_UNDETECTED,
            harmless: 0,
            names: None,
            threat_label: None,
            type_description: "Win32 EXE".to_owned(),
            type_tag: None,
            overrides: Map::new(),
            removed: Vec::new(),
            first_submission_date: now - 90 * 86_400,
            last_submission_date: now - 2 * 86_400,
            last_analysis_date: now - 2 * 86_400,
            times_submitted: 3,
            unique_sources: 2,
        }
    }

    /// Sets the verdict counts. The engine table is built to match exactly: the first
    /// `malicious` engines of the fixed order are malicious, the next `suspicious` suspicious,
    /// and so on. Engines left over are "type-unsupported" or "timeout" (null result), as real
    /// data has; if the counts exceed the 72 named engines, extra engines are invented.
    pub fn detections(
        mut self,
        malicious: u32,
        suspicious: u32,
        undetected: u32,
        harmless: u32,
    ) -> Self {
        self.malicious = malicious;
        self.suspicious = suspicious;
        self.undetected = undetected;
        self.harmless = harmless;
        self
    }

    /// Sets `names`; `meaningful_name` is the first. An empty list means `names: []` and no
    /// `meaningful_name` key at all. Without this call the file gets one default name (for an
    /// upload: the uploaded file name).
    pub fn names(mut self, names: &[&str]) -> Self {
        self.names = Some(names.iter().map(|n| (*n).to_owned()).collect());
        self
    }

    /// Adds `popular_threat_classification` with this `suggested_threat_label` (e.g.
    /// "trojan.orcusrat/msil") plus category and name lists derived from it. Absent unless set.
    pub fn threat_label(mut self, label: &str) -> Self {
        self.threat_label = Some(label.to_owned());
        self
    }

    /// Sets `type_description` (default "Win32 EXE"). `type_tag`, `type_tags`, `magic` and the
    /// default name's extension follow it for the common types (JavaScript, PDF, ZIP, Text,
    /// ELF, Win32 DLL, PowerShell, Android).
    pub fn type_description(mut self, description: &str) -> Self {
        self.type_description = description.to_owned();
        self
    }

    /// Overrides `type_tag` (otherwise derived from the type description).
    pub fn type_tag(mut self, tag: &str) -> Self {
        self.type_tag = Some(tag.to_owned());
        self
    }

    /// Sets a raw attribute, replacing a generated one of the same name (e.g.
    /// `crowdsourced_ai_results`, `reputation`, `total_votes`, `sandbox_verdicts`).
    pub fn with_attribute(mut self, key: &str, value: Value) -> Self {
        self.removed.retain(|k| k != key);
        self.overrides.insert(key.to_owned(), value);
        self
    }

    /// Removes a generated attribute entirely (to model fields missing on old data).
    pub fn without_attribute(mut self, key: &str) -> Self {
        self.overrides.remove(key);
        self.removed.push(key.to_owned());
        self
    }

    /// The file's hashes.
    pub fn hashes(&self) -> KnownHashes {
        KnownHashes {
            sha256: self.sha256.clone(),
            sha1: self.sha1.clone(),
            md5: self.md5.clone(),
        }
    }

    /// The whole `{"data":{...}}` body of `GET /files/{id}`, with `links.self` on the real
    /// VirusTotal host. (The server itself links to its own address instead.)
    pub fn report_json(&self) -> Value {
        self.report_json_at(REAL_VT_BASE)
    }

    fn report_json_at(&self, base: &str) -> Value {
        json!({
            "data": {
                "type": "file",
                "id": self.sha256,
                "links": { "self": format!("{base}/files/{}", self.sha256) },
                "attributes": self.attributes(),
            }
        })
    }

    /// Replaces hashes and size with those of `content` (used for uploads).
    fn with_content(mut self, content: &[u8], hashes: &KnownHashes) -> Self {
        self.md5.clone_from(&hashes.md5);
        self.sha1.clone_from(&hashes.sha1);
        self.sha256.clone_from(&hashes.sha256);
        self.size = content.len() as u64;
        self
    }

    fn kind(&self) -> FileKind {
        let mut kind = FileKind::for_description(&self.type_description);
        if let Some(tag) = &self.type_tag {
            kind.tag.clone_from(tag);
        }
        kind
    }

    fn effective_names(&self) -> Vec<String> {
        match &self.names {
            Some(names) => names.clone(),
            None => vec![format!("sample.{}", self.kind().extension)],
        }
    }

    /// The engine table, in the fixed engine order.
    fn engine_results(&self) -> Vec<EngineResult> {
        let named = ENGINES.len();
        let wanted = [
            ("malicious", self.malicious),
            ("suspicious", self.suspicious),
            ("undetected", self.undetected),
            ("harmless", self.harmless),
        ];
        let assigned: usize = wanted.iter().map(|(_, n)| *n as usize).sum();
        let total = assigned.max(named);
        let label = ThreatName::parse(self.threat_label.as_deref());
        let mut categories = wanted
            .iter()
            .flat_map(|(category, n)| std::iter::repeat_n(*category, *n as usize));
        (0..total)
            .map(|index| {
                let name = ENGINES
                    .get(index)
                    .map_or_else(|| format!("ExtraEngine{}", index + 1), |n| (*n).to_owned());
                // Leftover engines: mostly unsupported type, every fourth one timed out.
                let category = categories.next().unwrap_or_else(|| {
                    if (index - assigned) % 4 == 3 {
                        "timeout"
                    } else {
                        "type-unsupported"
                    }
                });
                let result = match category {
                    "malicious" => Some(label.engine_label(index)),
                    "suspicious" => Some(suspicious_label(index)),
                    _ => None,
                };
                EngineResult {
                    engine_version: engine_version(&name, index, self.last_analysis_date),
                    engine_update: yyyymmdd(self.last_analysis_date - (index as i64 % 2) * 86_400),
                    name,
                    category,
                    result,
                }
            })
            .collect()
    }

    fn attributes(&self) -> Value {
        let kind = self.kind();
        let engines = self.engine_results();
        let stats = stats_json(&engines);
        let names = self.effective_names();
        let mut tags = vec![kind.tag.clone()];
        if self.malicious > 0 {
            tags.extend([
                "detect-debug-environment".to_owned(),
                "long-sleeps".to_owned(),
            ]);
        }
        let mut attributes = json!({
            "md5": self.md5,
            "sha1": self.sha1,
            "sha256": self.sha256,
            "size": self.size,
            "type_description": self.type_description,
            "type_tag": kind.tag,
            "type_tags": kind.tags,
            "type_extension": kind.extension,
            "magic": kind.magic,
            "magika": kind.magika,
            "trid": [{ "file_type": self.type_description, "probability": 100.0 }],
            "names": names,
            "tags": tags,
            "first_submission_date": self.first_submission_date,
            "last_submission_date": self.last_submission_date,
            "last_analysis_date": self.last_analysis_date,
            "last_modification_date": self.last_analysis_date,
            "times_submitted": self.times_submitted,
            "unique_sources": self.unique_sources,
            "reputation": 0,
            "total_votes": { "harmless": 0, "malicious": 0 },
            "last_analysis_stats": stats,
            "last_analysis_results": results_json(&engines),
            "threat_severity": self.threat_severity(),
        });
        let Some(map) = attributes.as_object_mut() else {
            return attributes;
        };
        if let Some(first) = names.first() {
            map.insert("meaningful_name".to_owned(), json!(first));
        }
        if let Some(label) = &self.threat_label {
            map.insert(
                "popular_threat_classification".to_owned(),
                ThreatName::parse(Some(label)).classification(label, self.malicious),
            );
        }
        for (key, value) in &self.overrides {
            map.insert(key.clone(), value.clone());
        }
        for key in &self.removed {
            map.remove(key);
        }
        attributes
    }

    fn threat_severity(&self) -> Value {
        let (level, description) = match self.malicious {
            0 => ("SEVERITY_NONE", "No severity score data"),
            1..=3 => (
                "SEVERITY_LOW",
                "Severity LOW because it has few detections.",
            ),
            4..=9 => (
                "SEVERITY_MEDIUM",
                "Severity MEDIUM because it has some detections.",
            ),
            _ => (
                "SEVERITY_HIGH",
                "Severity HIGH because it has many detections.",
            ),
        };
        json!({
            "version": 5,
            "threat_severity_level": level,
            "threat_severity_data": {
                "num_gav_detections": self.malicious.min(3),
                "type_tag": self.kind().tag,
            },
            // Real data sends this one date as a string of digits (VT_API.md §1).
            "last_analysis_date": self.last_analysis_date.to_string(),
            "level_description": description,
        })
    }
}

/// A running fake VirusTotal. Dropping it stops the server.
pub struct FakeVirusTotal {
    shared: Arc<Shared>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl FakeVirusTotal {
    /// Starts on 127.0.0.1:0, accepting exactly this API key.
    #[allow(clippy::expect_used)] // Setup failures should abort the test loudly.
    pub async fn start(api_key: &str) -> FakeVirusTotal {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("fake VirusTotal: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("fake VirusTotal: bound socket has no local address")
            .port();
        let origin = format!("http://127.0.0.1:{port}");
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            base_url: format!("{origin}{API_PREFIX}"),
            origin,
            state: Mutex::new(State::new()),
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(serve))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("fake VirusTotal: cannot listen")
        .run();
        let handle = server.handle();
        // Its own thread and actix system, so the test may use any async runtime.
        let thread = std::thread::Builder::new()
            .name(format!("fake-virustotal-{port}"))
            .spawn(move || {
                if let Err(error) = actix_web::rt::System::new().block_on(server) {
                    eprintln!("fake VirusTotal stopped with an error: {error}");
                }
            })
            .expect("fake VirusTotal: cannot spawn server thread");
        FakeVirusTotal {
            shared,
            handle,
            thread: Some(thread),
        }
    }

    /// e.g. "http://127.0.0.1:PORT/api/v3" (what the app gets as VT_BASE_URL).
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Makes a file known: GET /files/{md5|sha1|sha256} answers its report (data.id is always
    /// the sha256). Replaces an earlier fixture for the same content.
    pub fn add_known_file(&self, fixture: FileFixture) -> KnownHashes {
        let hashes = fixture.hashes();
        self.shared.lock().insert_file(fixture);
        hashes
    }

    /// What an upload of unknown content turns into once its analysis completes (default:
    /// clean, 0 malicious of 72 engines). Hashes and size come from the upload itself, and so
    /// do the names unless the template sets them. Applies to uploads made from now on.
    pub fn set_upload_outcome(&self, fixture_template: FileFixture) {
        self.shared.lock().upload_outcome = fixture_template;
    }

    /// Analysis timeline for analyses created from now on: polls answering 404 NotFoundError
    /// first, then queued, then in-progress, then completed. Default (0, 2, 2). Only polls
    /// that reach the analysis (not rejected for auth, quota or an injected failure) advance it.
    pub fn set_analysis_timeline(
        &self,
        not_found_polls: u32,
        queued_polls: u32,
        in_progress_polls: u32,
    ) {
        self.shared.lock().timeline = Timeline {
            not_found: not_found_polls,
            queued: queued_polls,
            in_progress: in_progress_polls,
        };
    }

    /// Makes every analysis started so far complete at its next poll.
    pub fn finish_pending_analyses(&self) {
        let mut state = self.shared.lock();
        for analysis in state.analyses.values_mut() {
            analysis.timeline = Timeline {
                not_found: 0,
                queued: 0,
                in_progress: 0,
            };
        }
    }

    /// Makes the next `times` requests matching `route` fail with `failure`. Injections are
    /// consumed in the order they were made and take precedence over everything else (auth,
    /// quota, routing); injected answers do not count against the quotas.
    pub fn inject(&self, route: Route, failure: Failure, times: u32) {
        if times > 0 {
            self.shared.lock().injections.push(Injection {
                route,
                failure,
                remaining: times,
            });
        }
    }

    /// Sliding 60-second window limit per key; above it: 429 QuotaExceededError. None =
    /// unlimited (default). Upload-URL POSTs are not counted.
    /// Makes every upload take `pause` longer to be answered, as a slow link would.
    pub fn set_upload_pause(&self, pause: Duration) {
        self.shared.lock().upload_pause = pause;
    }

    pub fn set_per_minute_quota(&self, limit: Option<u32>) {
        self.shared.lock().per_minute = limit;
    }

    /// Shortens the sliding window of the per-minute quota, so a test can show a burst
    /// held under the limit without waiting minutes.
    pub fn set_quota_window(&self, window: Duration) {
        self.shared.lock().quota_window = window;
    }

    /// Daily limit per key (resets 00:00 UTC); above it 429 QuotaExceededError whose message
    /// mentions the daily quota. None = unlimited (default).
    pub fn set_daily_quota(&self, limit: Option<u32>) {
        self.shared.lock().daily = limit;
    }

    /// Moves the fake's clock forward: quota windows and the timestamps it hands out from now
    /// on see this much more time passed. Lets tests expire the per-minute window instantly.
    pub fn advance_clock(&self, by: Duration) {
        let mut state = self.shared.lock();
        state.clock_offset = state.clock_offset.saturating_add(by);
    }

    /// Changes the size limits for file bytes (defaults [`DIRECT_UPLOAD_LIMIT`] and
    /// [`UPLOAD_URL_LIMIT`]), so tests can reach the upload-URL ceiling without 650 MiB.
    pub fn set_size_limits(&self, direct: usize, upload_url: usize) {
        let mut state = self.shared.lock();
        state.direct_limit = direct;
        state.upload_url_limit = upload_url;
    }

    /// Every request received, in order of arrival (including rejected ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every file accepted through POST /files or an upload URL, in order.
    pub fn uploads(&self) -> Vec<ReceivedUpload> {
        self.shared.lock().uploads.clone()
    }

    /// Count of requests with this method whose path starts with `path_prefix` after
    /// "/api/v3", e.g. "/files/", "/analyses/". Upload-URL paths are matched as they are
    /// ("/_ah/upload/").
    /// Waits (up to 10 s, else panics saying `what` never happened) until at
    /// least `at_least` requests matching `method` and `path_prefix` arrived.
    pub async fn wait_for_calls(
        &self,
        method: &str,
        path_prefix: &str,
        at_least: usize,
        what: &str,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count(method, path_prefix) < at_least {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .filter(|r| {
                r.path
                    .strip_prefix(API_PREFIX)
                    .unwrap_or(&r.path)
                    .starts_with(path_prefix)
            })
            .count()
    }

    /// Number of 429 answers given (quota rejections and injected 429s).
    pub fn quota_rejections(&self) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.status == 429)
            .count()
    }
}

impl Drop for FakeVirusTotal {
    fn drop(&mut self) {
        // `stop` sends the command right away; its future only waits for completion, which
        // the join below does instead (the server future ends once it has stopped).
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _joined = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

struct Shared {
    api_key: String,
    /// "http://127.0.0.1:PORT".
    origin: String,
    /// "http://127.0.0.1:PORT/api/v3".
    base_url: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not make every later request fail too.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Clone, Copy)]
struct Timeline {
    not_found: u32,
    queued: u32,
    in_progress: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotFound,
    Queued,
    InProgress,
    Completed,
}

impl Timeline {
    fn phase(self, poll: u32) -> Phase {
        let queued_end = self.not_found.saturating_add(self.queued);
        let in_progress_end = queued_end.saturating_add(self.in_progress);
        if poll < self.not_found {
            Phase::NotFound
        } else if poll < queued_end {
            Phase::Queued
        } else if poll < in_progress_end {
            Phase::InProgress
        } else {
            Phase::Completed
        }
    }
}

#[derive(Debug, Clone)]
struct Analysis {
    date: i64,
    outcome: FileFixture,
    is_upload: bool,
    timeline: Timeline,
    polls: u32,
    completed: bool,
}

struct Injection {
    route: Route,
    failure: Failure,
    remaining: u32,
}

struct State {
    files: HashMap<String, FileFixture>,
    /// md5 and sha1 -> sha256.
    aliases: HashMap<String, String>,
    analyses: HashMap<String, Analysis>,
    /// Upload URL token -> already used.
    upload_tokens: HashMap<String, bool>,
    upload_outcome: FileFixture,
    timeline: Timeline,
    injections: Vec<Injection>,
    per_minute: Option<u32>,
    /// The sliding window `per_minute` applies to; a minute unless a test shortens it.
    quota_window: Duration,
    daily: Option<u32>,
    minute_windows: HashMap<String, VecDeque<Instant>>,
    /// Key -> (UTC day number, requests counted that day).
    daily_counts: HashMap<String, (i64, u32)>,
    clock_offset: Duration,
    direct_limit: usize,
    upload_url_limit: usize,
    requests: Vec<RecordedRequest>,
    uploads: Vec<ReceivedUpload>,
    /// How long an upload takes to be answered once its body has arrived, as
    /// a slow link would make it.
    upload_pause: Duration,
}

impl State {
    fn new() -> Self {
        State {
            files: HashMap::new(),
            aliases: HashMap::new(),
            analyses: HashMap::new(),
            upload_tokens: HashMap::new(),
            upload_outcome: FileFixture::new(b""),
            timeline: Timeline {
                not_found: 0,
                queued: 2,
                in_progress: 2,
            },
            injections: Vec::new(),
            upload_pause: Duration::ZERO,
            per_minute: None,
            quota_window: Duration::from_secs(60),
            daily: None,
            minute_windows: HashMap::new(),
            daily_counts: HashMap::new(),
            clock_offset: Duration::ZERO,
            direct_limit: DIRECT_UPLOAD_LIMIT,
            upload_url_limit: UPLOAD_URL_LIMIT,
            requests: Vec::new(),
            uploads: Vec::new(),
        }
    }

    fn now_instant(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    fn now_unix(&self) -> i64 {
        unix_now().saturating_add(i64::try_from(self.clock_offset.as_secs()).unwrap_or(i64::MAX))
    }

    fn insert_file(&mut self, fixture: FileFixture) {
        self.aliases
            .insert(fixture.md5.clone(), fixture.sha256.clone());
        self.aliases
            .insert(fixture.sha1.clone(), fixture.sha256.clone());
        self.files.insert(fixture.sha256.clone(), fixture);
    }

    fn find_file(&self, hash: &str) -> Option<&FileFixture> {
        let hash = hash.to_ascii_lowercase();
        let sha256 = self.aliases.get(&hash).unwrap_or(&hash);
        self.files.get(sha256)
    }

    fn take_injection(&mut self, route: Option<Route>) -> Option<Failure> {
        let index = self
            .injections
            .iter()
            .position(|i| i.route == Route::Any || Some(i.route) == route)?;
        let injection = self.injections.get_mut(index)?;
        let failure = injection.failure;
        injection.remaining = injection.remaining.saturating_sub(1);
        if injection.remaining == 0 {
            self.injections.remove(index);
        }
        Some(failure)
    }

    /// Counts one request against the key's quotas, or says why it is refused.
    fn charge_quota(&mut self, key: &str) -> Result<(), String> {
        let now = self.now_instant();
        let day = self.now_unix().div_euclid(86_400);
        if let Some(limit) = self.daily {
            let used = match self.daily_counts.get(key) {
                Some((counted_day, used)) if *counted_day == day => *used,
                _ => 0,
            };
            if used >= limit {
                return Err(format!(
                    "Quota exceeded: you have used your daily quota of {limit} requests; it \
                     resets at 00:00 UTC"
                ));
            }
        }
        let window = self.minute_windows.entry(key.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.quota_window)
        {
            window.pop_front();
        }
        if let Some(limit) = self.per_minute
            && window.len() >= limit as usize
        {
            return Err(format!(
                "Quota exceeded: more than {limit} requests per minute"
            ));
        }
        window.push_back(now);
        let entry = self.daily_counts.entry(key.to_owned()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        Ok(())
    }

    /// Creates an analysis with a unique id of the documented form base64("<md5>:<ts>").
    fn create_analysis(&mut self, outcome: FileFixture, is_upload: bool) -> String {
        let mut date = self.now_unix();
        let mut id = analysis_id(&outcome.md5, date);
        // Same content twice within a second: move on to the next second rather than merge.
        while self.analyses.contains_key(&id) {
            date += 1;
            id = analysis_id(&outcome.md5, date);
        }
        let analysis = Analysis {
            date,
            outcome,
            is_upload,
            timeline: self.timeline,
            polls: 0,
            completed: false,
        };
        self.analyses.insert(id.clone(), analysis);
        id
    }

    /// Makes the analysed file known (or refreshes it) once its analysis completes.
    fn complete(&mut self, analysis: &Analysis) {
        let now = self.now_unix();
        let sha256 = analysis.outcome.sha256.clone();
        match self.files.get_mut(&sha256) {
            Some(file) => {
                file.last_analysis_date = now;
                if analysis.is_upload {
                    file.last_submission_date = analysis.date;
                    file.times_submitted = file.times_submitted.saturating_add(1);
                }
            }
            None => {
                let mut file = analysis.outcome.clone();
                file.last_analysis_date = now;
                self.insert_file(file);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP handling
// ---------------------------------------------------------------------------------------------

enum Endpoint {
    FileReport(String),
    UploadDirect,
    UploadUrl,
    UploadToUrl(String),
    Analysis(String),
    AnalysisItem(String),
    Reanalyse(String),
    UnknownApi,
    Unknown,
}

impl Endpoint {
    fn parse(method: &str, path: &str) -> Endpoint {
        if let Some(rest) = path.strip_prefix(API_PREFIX) {
            if !rest.is_empty() && !rest.starts_with('/') {
                return Endpoint::Unknown;
            }
            let segments: Vec<&str> = rest.split('/').skip(1).collect();
            return match (method, segments.as_slice()) {
                // Exact path only: "/files/" (trailing slash) is a 404 on the real service.
                ("POST", ["files"]) => Endpoint::UploadDirect,
                ("GET", ["files", "upload_url"]) => Endpoint::UploadUrl,
                ("GET", ["files", id]) if !id.is_empty() => Endpoint::FileReport((*id).to_owned()),
                ("POST", ["files", id, "analyse"]) if !id.is_empty() => {
                    Endpoint::Reanalyse((*id).to_owned())
                }
                ("GET", ["analyses", id]) if !id.is_empty() => Endpoint::Analysis((*id).to_owned()),
                ("GET", ["analyses", id, "item"]) if !id.is_empty() => {
                    Endpoint::AnalysisItem((*id).to_owned())
                }
                _ => Endpoint::UnknownApi,
            };
        }
        if method == "POST"
            && let Some(token) = path.strip_prefix(UPLOAD_PREFIX)
        {
            let token = token.strip_suffix('/').unwrap_or(token);
            if !token.is_empty() && !token.contains('/') {
                return Endpoint::UploadToUrl(token.to_owned());
            }
        }
        Endpoint::Unknown
    }

    fn route(&self) -> Option<Route> {
        match self {
            Endpoint::FileReport(_) => Some(Route::FileReport),
            Endpoint::UploadDirect => Some(Route::UploadDirect),
            Endpoint::UploadUrl => Some(Route::UploadUrl),
            Endpoint::UploadToUrl(_) => Some(Route::UploadToUrl),
            Endpoint::Analysis(_) => Some(Route::Analysis),
            Endpoint::AnalysisItem(_) => Some(Route::AnalysisItem),
            Endpoint::Reanalyse(_) => Some(Route::Reanalyse),
            Endpoint::UnknownApi | Endpoint::Unknown => None,
        }
    }

    fn is_api(&self) -> bool {
        !matches!(self, Endpoint::UploadToUrl(_) | Endpoint::Unknown)
    }
}

/// The single handler: records the request, then answers it.
async fn serve(req: HttpRequest, payload: web::Payload, shared: web::Data<Shared>) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = percent_decode_str(req.path())
        .decode_utf8_lossy()
        .into_owned();
    let api_key = req
        .headers()
        .get("x-apikey")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let endpoint = Endpoint::parse(&method, &path);
    let slot = {
        let mut state = shared.lock();
        state.requests.push(RecordedRequest {
            method,
            path,
            raw_path: req.path().to_owned(),
            api_key: api_key.clone(),
            status: 0,
            at: Instant::now(),
        });
        state.requests.len() - 1
    };
    let response = answer(&req, payload, &shared, endpoint, api_key.as_deref()).await;
    if let Some(record) = shared.lock().requests.get_mut(slot) {
        record.status = response.status().as_u16();
    }
    response
}

async fn answer(
    req: &HttpRequest,
    mut payload: web::Payload,
    shared: &Shared,
    endpoint: Endpoint,
    api_key: Option<&str>,
) -> HttpResponse {
    if let Some(refusal) = refuse_early(shared, &endpoint, api_key) {
        // Read what the client sends so it sees our answer rather than a reset connection.
        drain(&mut payload).await;
        return match refusal {
            Refusal::Injected(failure) => injected_response(failure).await,
            Refusal::Answer(response) => response,
        };
    }
    match endpoint {
        Endpoint::FileReport(hash) => {
            let state = shared.lock();
            match state.find_file(&hash) {
                Some(file) => json_response(200, &file.report_json_at(&shared.base_url)),
                None => not_found("File", &hash),
            }
        }
        Endpoint::UploadDirect => upload(req, payload, shared, UploadVia::Direct).await,
        Endpoint::UploadUrl => {
            let token = random_token();
            shared.lock().upload_tokens.insert(token.clone(), false);
            json_response(
                200,
                &json!({ "data": format!("{}{UPLOAD_PREFIX}{token}/", shared.origin) }),
            )
        }
        Endpoint::UploadToUrl(token) => {
            let known = shared
                .lock()
                .upload_tokens
                .get_mut(&token)
                .map(|used| std::mem::replace(used, true));
            match known {
                Some(false) => upload(req, payload, shared, UploadVia::UploadUrl).await,
                Some(true) => {
                    drain(&mut payload).await;
                    html_response(400, "Bad Request", "This upload URL has already been used.")
                }
                None => {
                    drain(&mut payload).await;
                    html_response(
                        404,
                        "Not Found",
                        "The requested URL was not found on this server.",
                    )
                }
            }
        }
        Endpoint::Analysis(id) => poll_analysis(shared, &id),
        Endpoint::AnalysisItem(id) => {
            let state = shared.lock();
            let file = state
                .analyses
                .get(&id)
                .and_then(|analysis| state.files.get(&analysis.outcome.sha256));
            match file {
                Some(file) => json_response(200, &file.report_json_at(&shared.base_url)),
                None => not_found("Analysis item", &id),
            }
        }
        Endpoint::Reanalyse(hash) => {
            let mut state = shared.lock();
            match state.find_file(&hash).cloned() {
                Some(file) => {
                    let id = state.create_analysis(file, false);
                    json_response(200, &descriptor(&id))
                }
                None => not_found("File", &hash),
            }
        }
        Endpoint::UnknownApi => {
            drain(&mut payload).await;
            vt_error(
                404,
                "NotFoundError",
                &format!("Resource \"{}\" not found", req.path()),
            )
        }
        Endpoint::Unknown => {
            drain(&mut payload).await;
            html_response(
                404,
                "Not Found",
                "The requested URL was not found on this server.",
            )
        }
    }
}

enum Refusal {
    Injected(Failure),
    Answer(HttpResponse),
}

/// Injected failures first, then authentication and quota for /api/v3 requests.
fn refuse_early(shared: &Shared, endpoint: &Endpoint, api_key: Option<&str>) -> Option<Refusal> {
    let mut state = shared.lock();
    if let Some(failure) = state.take_injection(endpoint.route()) {
        return Some(Refusal::Injected(failure));
    }
    if !endpoint.is_api() {
        return None;
    }
    let response = match api_key {
        None => vt_error(
            401,
            "AuthenticationRequiredError",
            "X-Apikey header is missing",
        ),
        Some(key) if key != shared.api_key => {
            vt_error(401, "WrongCredentialsError", "Wrong API key")
        }
        Some(key) => match state.charge_quota(key) {
            Ok(()) => return None,
            Err(message) => vt_error(429, "QuotaExceededError", &message),
        },
    };
    Some(Refusal::Answer(response))
}

async fn injected_response(failure: Failure) -> HttpResponse {
    match failure {
        Failure::Error(status, code) => {
            vt_error(status, code, &format!("Injected failure: {code}"))
        }
        Failure::NonJson(status) => {
            html_response(status, "Error", "The server encountered an error.")
        }
        Failure::Malformed => json_response(
            200,
            &json!({ "data": { "id": 12345, "type": null, "attributes": "not an object" } }),
        ),
        Failure::Hang(duration) => {
            actix_web::rt::time::sleep(duration).await;
            vt_error(504, "DeadlineExceededError", "Deadline exceeded")
        }
    }
}

fn poll_analysis(shared: &Shared, id: &str) -> HttpResponse {
    let mut state = shared.lock();
    let Some(analysis) = state.analyses.get_mut(id) else {
        return not_found("Analysis", id);
    };
    let phase = analysis.timeline.phase(analysis.polls);
    analysis.polls = analysis.polls.saturating_add(1);
    let newly_completed = phase == Phase::Completed && !analysis.completed;
    if newly_completed {
        analysis.completed = true;
    }
    let analysis = analysis.clone();
    if newly_completed {
        state.complete(&analysis);
    }
    match phase {
        Phase::NotFound => not_found("Analysis", id),
        _ => json_response(200, &analysis_json(&shared.base_url, id, &analysis, phase)),
    }
}

async fn upload(
    req: &HttpRequest,
    payload: web::Payload,
    shared: &Shared,
    via: UploadVia,
) -> HttpResponse {
    let limit = {
        let state = shared.lock();
        match via {
            UploadVia::Direct => state.direct_limit,
            UploadVia::UploadUrl => state.upload_url_limit,
        }
    };
    let received = match receive_multipart(req, payload, limit).await {
        Ok(received) => received,
        Err(UploadError::TooLarge) => {
            return html_response(
                413,
                "Request Entity Too Large",
                "Your client issued a request that was too large.",
            );
        }
        Err(UploadError::Malformed(message)) => return vt_error(400, "BadRequestError", &message),
    };
    if received.password.is_some() && !received.bytes.starts_with(ZIP_MAGIC) {
        return vt_error(
            400,
            "BadRequestError",
            "A password was given but the file is not a password-protected ZIP",
        );
    }
    let pause = shared.lock().upload_pause;
    tokio::time::sleep(pause).await;
    // Hash outside the lock: uploads can be large.
    let hashes = hash_content(&received.bytes);
    let mut state = shared.lock();
    let outcome = match state.files.get(&hashes.sha256) {
        Some(known) => known.clone(),
        None => {
            let mut outcome = state
                .upload_outcome
                .clone()
                .with_content(&received.bytes, &hashes);
            if outcome.names.is_none() {
                outcome.names = received.file_name.clone().map(|name| vec![name]);
            }
            let date = state.now_unix();
            outcome.first_submission_date = date;
            outcome.last_submission_date = date;
            outcome.last_analysis_date = date;
            outcome.times_submitted = 1;
            outcome.unique_sources = 1;
            outcome
        }
    };
    let id = state.create_analysis(outcome, true);
    state.uploads.push(ReceivedUpload {
        via,
        file_name: received.file_name,
        bytes: received.bytes,
        password: received.password,
    });
    json_response(200, &descriptor(&id))
}

struct Received {
    file_name: Option<String>,
    bytes: Vec<u8>,
    password: Option<String>,
}

enum UploadError {
    TooLarge,
    Malformed(String),
}

/// Reads the multipart body (fields in any order). Past `limit` file bytes it stops keeping
/// data but reads on, so the client gets the 413 instead of a reset connection.
async fn receive_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Received, UploadError> {
    let mut multipart = Multipart::new(req.headers(), payload);
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    let mut password: Option<String> = None;
    let mut too_large = false;
    while let Some(field) = multipart.next().await {
        let mut field = match field {
            Ok(field) => field,
            Err(_) if too_large => return Err(UploadError::TooLarge),
            Err(error) => {
                return Err(UploadError::Malformed(format!(
                    "Malformed multipart body: {error}"
                )));
            }
        };
        let name = field.name().map(str::to_owned);
        let file_name = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        let keep = match name.as_deref() {
            Some("file") => file.is_none(),
            Some("password") => password.is_none(),
            _ => false,
        };
        let field_limit = if name.as_deref() == Some("file") {
            limit
        } else {
            4096
        };
        let mut bytes = Vec::new();
        let mut over = false;
        while let Some(chunk) = field.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(_) if too_large || over => return Err(UploadError::TooLarge),
                Err(error) => {
                    return Err(UploadError::Malformed(format!(
                        "Malformed multipart body: {error}"
                    )));
                }
            };
            if !keep || over {
                continue;
            }
            if bytes.len() + chunk.len() > field_limit {
                over = true;
                bytes = Vec::new();
                continue;
            }
            bytes.extend_from_slice(&chunk);
        }
        if !keep {
            continue;
        }
        match name.as_deref() {
            Some("file") if over => too_large = true,
            Some("file") => file = Some((file_name, bytes)),
            Some("password") if over => {
                return Err(UploadError::Malformed(
                    "The password is too long".to_owned(),
                ));
            }
            _ => password = Some(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
    if too_large {
        return Err(UploadError::TooLarge);
    }
    match file {
        Some((file_name, bytes)) => Ok(Received {
            file_name,
            bytes,
            password,
        }),
        None => Err(UploadError::Malformed(
            "No \"file\" part in the multipart body".to_owned(),
        )),
    }
}

async fn drain(payload: &mut web::Payload) {
    while let Some(chunk) = payload.next().await {
        if chunk.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Response bodies
// ---------------------------------------------------------------------------------------------

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(status_code(status))
        .content_type("application/json")
        .body(body.to_string())
}

fn vt_error(status: u16, code: &str, message: &str) -> HttpResponse {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

fn not_found(kind: &str, id: &str) -> HttpResponse {
    vt_error(404, "NotFoundError", &format!("{kind} \"{id}\" not found"))
}

/// A Google-front-end style HTML error page (what VT's upload host and proxies send).
fn html_response(status: u16, title: &str, text: &str) -> HttpResponse {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n\
         <title>Error {status} ({title})!!1</title>\n\
         <p><b>{status}.</b> <ins>That's an error.</ins>\n\
         <p>{text} <ins>That's all we know.</ins>\n"
    );
    HttpResponse::build(status_code(status))
        .content_type("text/html; charset=UTF-8")
        .body(body)
}

fn descriptor(id: &str) -> Value {
    json!({ "data": { "type": "analysis", "id": id } })
}

fn analysis_json(base: &str, id: &str, analysis: &Analysis, phase: Phase) -> Value {
    let file = &analysis.outcome;
    let engines = file.engine_results();
    let (status, reported): (&str, Vec<EngineResult>) = match phase {
        Phase::NotFound | Phase::Queued => ("queued", Vec::new()),
        // Half of the engines have answered; which half varies along the fixed order.
        Phase::InProgress => ("in-progress", engines.into_iter().step_by(2).collect()),
        Phase::Completed => ("completed", engines),
    };
    let encoded_id = utf8_percent_encode(id, NON_ALPHANUMERIC).to_string();
    json!({
        "meta": {
            "file_info": {
                "sha256": file.sha256,
                "sha1": file.sha1,
                "md5": file.md5,
                "size": file.size,
            }
        },
        "data": {
            "type": "analysis",
            "id": id,
            "links": {
                "self": format!("{base}/analyses/{encoded_id}"),
                "item": format!("{base}/files/{}", file.sha256),
            },
            "attributes": {
                "date": analysis.date,
                "status": status,
                "stats": stats_json(&reported),
                "results": results_json(&reported),
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Engine table helpers
// ---------------------------------------------------------------------------------------------

struct EngineResult {
    name: String,
    category: &'static str,
    result: Option<String>,
    engine_version: Value,
    engine_update: String,
}

fn stats_json(engines: &[EngineResult]) -> Value {
    let stats: Map<String, Value> = CATEGORIES
        .iter()
        .map(|category| {
            let n = engines.iter().filter(|e| e.category == *category).count();
            ((*category).to_owned(), json!(n))
        })
        .collect();
    Value::Object(stats)
}

fn results_json(engines: &[EngineResult]) -> Value {
    let results: Map<String, Value> = engines
        .iter()
        .map(|e| {
            let entry = json!({
                "category": e.category,
                "engine_name": e.name,
                "engine_version": e.engine_version,
                "result": e.result,
                "method": "blacklist",
                "engine_update": e.engine_update,
            });
            (e.name.clone(), entry)
        })
        .collect();
    Value::Object(results)
}

/// Real data has null versions for some engines, the string "None" for Kingsoft and a Unix
/// timestamp string for Google (VT_API.md §2.4).
fn engine_version(name: &str, index: usize, analysis_date: i64) -> Value {
    match name {
        "tehtris" | "Cybereason" | "Elastic" | "VBA32" | "Skyhigh" => Value::Null,
        "Kingsoft" => json!("None"),
        "Google" => json!((analysis_date - 3_600).to_string()),
        _ => json!(format!(
            "{}.{}.{}.{}",
            1 + index % 9,
            (index * 7) % 30,
            index % 4,
            1000 + index * 37
        )),
    }
}

fn suspicious_label(index: usize) -> String {
    const LABELS: [&str; 4] = [
        "Suspicious",
        "malicious (moderate confidence)",
        "Static AI - Suspicious PE",
        "Generic.ml",
    ];
    LABELS[index % LABELS.len()].to_owned()
}

/// A threat label such as "trojan.orcusrat/msil", split into its parts.
struct ThreatName {
    category: String,
    family: String,
    platform: String,
}

impl ThreatName {
    fn parse(label: Option<&str>) -> ThreatName {
        let label = label.unwrap_or("trojan.agent/win32");
        let (head, platform) = label.split_once('/').unwrap_or((label, "win32"));
        let (category, family) = head.split_once('.').unwrap_or(("trojan", head));
        ThreatName {
            category: capitalise(category),
            family: capitalise(family),
            platform: platform.to_ascii_uppercase(),
        }
    }

    /// One engine's label for this threat; engines word the same threat differently.
    fn engine_label(&self, index: usize) -> String {
        let ThreatName {
            category,
            family,
            platform,
        } = self;
        match index % 6 {
            0 => format!("{category}.{family}.A"),
            1 => format!("{category}:{platform}/{family}.B!MTB"),
            2 => format!("Gen:Variant.{family}.{}", 10 + index),
            3 => format!("{platform}/{family}.gen"),
            4 => format!("HEUR:{category}.{platform}.{family}.gen"),
            _ => format!("{category}/{platform}.{family}.{}", 100 + index),
        }
    }

    fn classification(&self, label: &str, malicious: u32) -> Value {
        let count = malicious.max(1);
        json!({
            "suggested_threat_label": label,
            "popular_threat_category": [
                { "value": self.category.to_ascii_lowercase(), "count": count }
            ],
            "popular_threat_name": [
                { "value": self.family.to_ascii_lowercase(), "count": count },
                { "value": self.platform.to_ascii_lowercase(), "count": count.div_ceil(2) }
            ],
        })
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Type-dependent attributes for the common file types.
struct FileKind {
    tag: String,
    tags: Vec<String>,
    extension: &'static str,
    magic: &'static str,
    magika: &'static str,
}

impl FileKind {
    fn for_description(description: &str) -> FileKind {
        let (tag, tags, extension, magic, magika): (&str, &[&str], _, _, _) = match description {
            "Win32 EXE" => (
                "peexe",
                &["executable", "windows", "win32", "pe", "peexe"],
                "exe",
                "PE32 executable (GUI) Intel 80386, for MS Windows",
                "PEBIN",
            ),
            "Win32 DLL" => (
                "pedll",
                &["executable", "windows", "win32", "pe", "pedll"],
                "dll",
                "PE32 executable (DLL) (GUI) Intel 80386, for MS Windows",
                "PEBIN",
            ),
            "JavaScript" => (
                "javascript",
                &["javascript"],
                "js",
                "ASCII text, with very long lines",
                "JAVASCRIPT",
            ),
            "PDF" => ("pdf", &["pdf"], "pdf", "PDF document, version 1.7", "PDF"),
            "ZIP" => (
                "zip",
                &["zip"],
                "zip",
                "Zip archive data, at least v2.0 to extract",
                "ZIP",
            ),
            "Text" => ("text", &["text"], "txt", "ASCII text", "TXT"),
            "ELF" => (
                "elf",
                &["executable", "linux", "elf"],
                "elf",
                "ELF 64-bit LSB executable, x86-64",
                "ELF",
            ),
            "PowerShell" => (
                "powershell",
                &["powershell"],
                "ps1",
                "ASCII text, with CRLF line terminators",
                "POWERSHELL",
            ),
            "Android" => (
                "android",
                &["android", "apk"],
                "apk",
                "Zip archive data, at least v2.0 to extract",
                "APK",
            ),
            _ => ("", &[], "bin", "data", "UNKNOWN"),
        };
        let tag = if tag.is_empty() {
            description
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        } else {
            tag.to_owned()
        };
        let tags = if tags.is_empty() {
            vec![tag.clone()]
        } else {
            tags.iter().map(|t| (*t).to_owned()).collect()
        };
        FileKind {
            tag,
            tags,
            extension,
            magic,
            magika,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_content(content: &[u8]) -> KnownHashes {
    KnownHashes {
        sha256: hex(&Sha256::digest(content)),
        sha1: hex(&Sha1::digest(content)),
        md5: hex(&Md5::digest(content)),
    }
}

fn analysis_id(md5: &str, date: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{md5}:{date}"))
}

fn random_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect()
}

/// "YYYYMMDD" (UTC) for a Unix timestamp, as in `engine_update`.
fn yyyymmdd(unix: i64) -> String {
    // Civil-from-days (proleptic Gregorian), avoiding a date crate for one format.
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}
