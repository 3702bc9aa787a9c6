//! Contract tests for the fake VirusTotal in `support::fake_vt`: they drive it over HTTP with
//! reqwest and check that it behaves as VT_API.md describes, so the app's journey tests can
//! trust it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::fake_vt::{
    DIRECT_UPLOAD_LIMIT, Failure, FakeVirusTotal, FileFixture, Route, UploadVia,
};

const KEY: &str = "contract-test-key";

/// What a test needs from one answer.
struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn error_code(&self) -> String {
        assert!(
            self.content_type.starts_with("application/json"),
            "error without JSON content type: {}",
            self.content_type
        );
        self.json()["error"]["code"].as_str().unwrap().to_owned()
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    Answer {
        status,
        content_type,
        text,
    }
}

async fn get(vt: &FakeVirusTotal, path: &str) -> Answer {
    let url = format!("{}{path}", vt.base_url());
    answer(
        reqwest::Client::new()
            .get(url)
            .header("x-apikey", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post(vt: &FakeVirusTotal, path: &str) -> Answer {
    let url = format!("{}{path}", vt.base_url());
    answer(
        reqwest::Client::new()
            .post(url)
            .header("x-apikey", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn file_form(bytes: &[u8], file_name: &str) -> Form {
    Form::new().part(
        "file",
        Part::bytes(bytes.to_vec()).file_name(file_name.to_owned()),
    )
}

async fn post_form(url: &str, form: Form) -> Answer {
    let request = reqwest::Client::new()
        .post(url)
        .header("x-apikey", KEY)
        .multipart(form);
    answer(request.send().await.unwrap()).await
}

async fn upload(vt: &FakeVirusTotal, bytes: &[u8], file_name: &str) -> Answer {
    post_form(
        &format!("{}/files", vt.base_url()),
        file_form(bytes, file_name),
    )
    .await
}

/// Percent-encodes an analysis id for a path, as the client must.
fn encode(id: &str) -> String {
    id.replace('=', "%3D")
}

fn analysis_id(descriptor: &Answer) -> String {
    assert_eq!(descriptor.status, 200, "{}", descriptor.text);
    let body = descriptor.json();
    assert_eq!(body["data"]["type"], "analysis");
    body["data"]["id"].as_str().unwrap().to_owned()
}

fn stats_sum(stats: &Value) -> u64 {
    stats
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

const STAT_KEYS: [&str; 8] = [
    "malicious",
    "suspicious",
    "undetected",
    "harmless",
    "timeout",
    "confirmed-timeout",
    "failure",
    "type-unsupported",
];

#[tokio::test(flavor = "multi_thread")]
async fn missing_key_is_authentication_required() {
    let vt = FakeVirusTotal::start(KEY).await;
    let url = format!("{}/files/{}", vt.base_url(), "0".repeat(64));
    let reply = answer(reqwest::Client::new().get(url).send().await.unwrap()).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error_code(), "AuthenticationRequiredError");
    let requests = vt.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].api_key, None);
    assert_eq!(requests[0].status, 401);
    assert_eq!(
        requests[0].path,
        format!("/api/v3/files/{}", "0".repeat(64))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_is_rejected_and_header_name_is_case_insensitive() {
    let vt = FakeVirusTotal::start(KEY).await;
    let hashes = vt.add_known_file(FileFixture::new(b"hello"));
    let url = format!("{}/files/{}", vt.base_url(), hashes.sha256);
    let client = reqwest::Client::new();

    let wrong = answer(
        client
            .get(&url)
            .header("x-apikey", "other")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_code(), "WrongCredentialsError");

    let right = answer(
        client
            .get(&url)
            .header("X-Apikey", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(right.status, 200);
    assert_eq!(vt.requests()[0].api_key.as_deref(), Some("other"));
}

#[tokio::test(flavor = "multi_thread")]
async fn known_file_is_found_by_any_hash_and_id_is_sha256() {
    let vt = FakeVirusTotal::start(KEY).await;
    let fixture = FileFixture::new(b"MZ\x90\x00 not really a PE").detections(3, 1, 60, 0);
    let hashes = vt.add_known_file(fixture.clone());
    assert_eq!(hashes.md5.len(), 32);
    assert_eq!(hashes.sha1.len(), 40);
    assert_eq!(hashes.sha256.len(), 64);

    for id in [
        hashes.md5.clone(),
        hashes.sha1.clone(),
        hashes.sha256.clone(),
        hashes.sha256.to_ascii_uppercase(),
    ] {
        let reply = get(&vt, &format!("/files/{id}")).await;
        assert_eq!(reply.status, 200, "lookup by {id}");
        assert!(reply.content_type.starts_with("application/json"));
        let body = reply.json();
        assert_eq!(body["data"]["id"], hashes.sha256.as_str());
        assert_eq!(body["data"]["type"], "file");
        assert_eq!(
            body["data"]["links"]["self"],
            format!("{}/files/{}", vt.base_url(), hashes.sha256)
        );
        assert_eq!(
            body["data"]["attributes"],
            fixture.report_json()["data"]["attributes"]
        );
    }
    assert_eq!(vt.count("GET", "/files/"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_report_has_the_documented_shape() {
    let vt = FakeVirusTotal::start(KEY).await;
    let flagged = FileFixture::new(b"flagged")
        .detections(2, 1, 60, 1)
        .names(&["C:\\Users\\x\\invoice.exe", "invoice.exe"])
        .threat_label("trojan.orcusrat/msil")
        .with_attribute("reputation", json!(-41));
    let hashes = vt.add_known_file(flagged);
    let body = get(&vt, &format!("/files/{}", hashes.sha256)).await.json();
    let data = body["data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["attributes", "id", "links", "type"]);

    let attributes = &body["data"]["attributes"];
    for key in [
        "md5",
        "sha1",
        "sha256",
        "size",
        "type_description",
        "type_tag",
        "type_tags",
        "magic",
        "names",
        "tags",
        "first_submission_date",
        "last_submission_date",
        "last_analysis_date",
        "last_modification_date",
        "times_submitted",
        "unique_sources",
        "reputation",
        "total_votes",
    ] {
        assert!(attributes.get(key).is_some(), "missing {key}");
    }
    assert_eq!(attributes["size"], 7);
    assert_eq!(attributes["type_description"], "Win32 EXE");
    assert_eq!(attributes["type_tag"], "peexe");
    assert_eq!(attributes["reputation"], -41);
    assert_eq!(attributes["meaningful_name"], "C:\\Users\\x\\invoice.exe");
    assert_eq!(
        attributes["popular_threat_classification"]["suggested_threat_label"],
        "trojan.orcusrat/msil"
    );
    assert!(attributes["threat_severity"]["last_analysis_date"].is_string());

    let stats = &attributes["last_analysis_stats"];
    for key in STAT_KEYS {
        assert!(stats[key].is_u64(), "stats key {key}");
    }
    assert_eq!(stats["malicious"], 2);
    assert_eq!(stats["suspicious"], 1);
    assert_eq!(stats["undetected"], 60);
    assert_eq!(stats["harmless"], 1);
    let results = attributes["last_analysis_results"].as_object().unwrap();
    assert!(
        (70..=80).contains(&results.len()),
        "{} engines",
        results.len()
    );
    assert_eq!(stats_sum(stats), results.len() as u64);

    // Few detections come from lesser-known engines; the big names stay undetected.
    let malicious: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r["category"] == "malicious")
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(malicious.len(), 2);
    for big in [
        "Microsoft",
        "Kaspersky",
        "ESET-NOD32",
        "BitDefender",
        "Sophos",
        "CrowdStrike",
    ] {
        assert_eq!(results[big]["category"], "undetected", "{big}");
        assert!(!malicious.contains(&big));
    }
    for (name, entry) in results {
        assert_eq!(entry["engine_name"], name.as_str());
        assert_eq!(entry["method"], "blacklist");
        assert_eq!(entry["engine_update"].as_str().unwrap().len(), 8);
        let flagged = entry["category"] == "malicious" || entry["category"] == "suspicious";
        assert_eq!(entry["result"].is_string(), flagged, "{name}");
        assert!(entry["result"].is_string() || entry["result"].is_null());
    }
    assert!(results["Elastic"]["engine_version"].is_null());
    assert_eq!(results["Kingsoft"]["engine_version"], "None");
    assert!(
        results
            .values()
            .any(|r| r["category"] == "type-unsupported")
    );

    // A clean, nameless file: no meaningful_name, no threat classification.
    let nameless = FileFixture::new(b"nameless")
        .names(&[])
        .type_description("JavaScript")
        .with_attribute(
            "crowdsourced_ai_results",
            json!([{ "category": "code_insight" }]),
        );
    let hashes = vt.add_known_file(nameless);
    let body = get(&vt, &format!("/files/{}", hashes.md5)).await.json();
    let attributes = &body["data"]["attributes"];
    assert_eq!(attributes["names"], json!([]));
    assert!(attributes.get("meaningful_name").is_none());
    assert!(attributes.get("popular_threat_classification").is_none());
    assert_eq!(attributes["type_tag"], "javascript");
    assert_eq!(attributes["last_analysis_stats"]["malicious"], 0);
    assert_eq!(
        attributes["crowdsourced_ai_results"][0]["category"],
        "code_insight"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_detections_include_well_known_engines() {
    let fixture = FileFixture::new(b"bad").detections(40, 2, 20, 0);
    let body = fixture.report_json();
    let results = body["data"]["attributes"]["last_analysis_results"]
        .as_object()
        .unwrap();
    for big in [
        "Microsoft",
        "Kaspersky",
        "ESET-NOD32",
        "BitDefender",
        "Sophos",
        "CrowdStrike",
    ] {
        assert_eq!(results[big]["category"], "malicious", "{big}");
    }
    // More verdicts than named engines: extra engines keep the sums exact.
    let body = FileFixture::new(b"x")
        .detections(10, 0, 80, 0)
        .report_json();
    let attributes = &body["data"]["attributes"];
    let results = attributes["last_analysis_results"].as_object().unwrap();
    assert_eq!(results.len(), 90);
    assert_eq!(stats_sum(&attributes["last_analysis_stats"]), 90);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_hash_is_not_found() {
    let vt = FakeVirusTotal::start(KEY).await;
    let reply = get(&vt, &format!("/files/{}", "a".repeat(64))).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "NotFoundError");
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_upload_is_recorded_and_its_analysis_walks_the_timeline() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.set_analysis_timeline(1, 1, 1);
    vt.set_upload_outcome(
        FileFixture::new(b"ignored")
            .detections(5, 0, 60, 0)
            .threat_label("trojan.agent/win32"),
    );
    let content = b"MZ\x00\x01 uploaded bytes \xff\xfe".to_vec();
    let expected = FileFixture::new(&content).hashes();

    let id = analysis_id(&upload(&vt, &content, "payload.exe").await);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&id)
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    let (md5, ts) = decoded.split_once(':').unwrap();
    assert_eq!(md5, expected.md5);
    assert!(ts.parse::<i64>().unwrap() > 1_600_000_000);

    let uploads = vt.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].via, UploadVia::Direct);
    assert_eq!(uploads[0].bytes, content);
    assert_eq!(uploads[0].file_name.as_deref(), Some("payload.exe"));
    assert_eq!(uploads[0].password, None);

    // Not known until its analysis completes.
    assert_eq!(
        get(&vt, &format!("/files/{}", expected.sha256))
            .await
            .status,
        404
    );

    let path = format!("/analyses/{}", encode(&id));
    let first = get(&vt, &path).await;
    assert_eq!(first.status, 404);
    assert_eq!(first.error_code(), "NotFoundError");

    let check_meta = |body: &Value| {
        let info = &body["meta"]["file_info"];
        assert_eq!(info["sha256"], expected.sha256.as_str());
        assert_eq!(info["sha1"], expected.sha1.as_str());
        assert_eq!(info["md5"], expected.md5.as_str());
        assert_eq!(info["size"], content.len());
        assert_eq!(body["data"]["id"], id.as_str());
        assert_eq!(body["data"]["type"], "analysis");
    };

    let queued = get(&vt, &path).await.json();
    check_meta(&queued);
    let attributes = &queued["data"]["attributes"];
    assert_eq!(attributes["status"], "queued");
    assert_eq!(stats_sum(&attributes["stats"]), 0);
    for key in STAT_KEYS {
        assert_eq!(attributes["stats"][key], 0, "{key}");
    }
    assert_eq!(attributes["results"], json!({}));
    assert!(
        queued["data"]["links"]["self"]
            .as_str()
            .unwrap()
            .ends_with("%3D%3D")
    );

    let in_progress = get(&vt, &path).await.json();
    check_meta(&in_progress);
    let attributes = &in_progress["data"]["attributes"];
    assert_eq!(attributes["status"], "in-progress");
    let partial = attributes["results"].as_object().unwrap().len();
    assert!(partial > 0 && partial < 70, "{partial} partial results");
    assert_eq!(stats_sum(&attributes["stats"]), partial as u64);

    let completed = get(&vt, &path).await.json();
    check_meta(&completed);
    let attributes = &completed["data"]["attributes"];
    assert_eq!(attributes["status"], "completed");
    assert_eq!(attributes["stats"]["malicious"], 5);
    let results = attributes["results"].as_object().unwrap();
    assert_eq!(stats_sum(&attributes["stats"]), results.len() as u64);

    // It stays completed, and the file is now known under all its hashes.
    let again = get(&vt, &path).await.json();
    assert_eq!(again["data"]["attributes"]["status"], "completed");
    let item = get(&vt, &format!("{path}/item")).await.json();
    assert_eq!(item["data"]["id"], expected.sha256.as_str());
    let report = get(&vt, &format!("/files/{}", expected.md5)).await.json();
    let attributes = &report["data"]["attributes"];
    assert_eq!(report["data"]["id"], expected.sha256.as_str());
    assert_eq!(attributes["last_analysis_stats"]["malicious"], 5);
    assert_eq!(attributes["size"], content.len());
    assert_eq!(attributes["meaningful_name"], "payload.exe");
    assert_eq!(
        attributes["popular_threat_classification"]["suggested_threat_label"],
        "trojan.agent/win32"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn default_timeline_is_two_queued_then_two_in_progress() {
    let vt = FakeVirusTotal::start(KEY).await;
    let id = analysis_id(&upload(&vt, b"default timeline", "a.txt").await);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let body = get(&vt, &format!("/analyses/{}", encode(&id))).await.json();
        seen.push(
            body["data"]["attributes"]["status"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        seen,
        [
            "queued",
            "queued",
            "in-progress",
            "in-progress",
            "completed"
        ]
    );
    // Default outcome: clean.
    let body = get(&vt, &format!("/analyses/{}", encode(&id))).await.json();
    assert_eq!(body["data"]["attributes"]["stats"]["malicious"], 0);
    assert_eq!(body["data"]["attributes"]["stats"]["undetected"], 64);
    assert_eq!(vt.count("GET", "/analyses/"), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_fields_may_come_in_any_order_and_password_needs_a_zip() {
    let vt = FakeVirusTotal::start(KEY).await;
    let url = format!("{}/files", vt.base_url());
    let zip = b"PK\x03\x04 pretend zip".to_vec();
    let form = Form::new()
        .text("password", "infected")
        .part("file", Part::bytes(zip.clone()).file_name("sample.zip"));
    let reply = post_form(&url, form).await;
    analysis_id(&reply);
    let uploads = vt.uploads();
    assert_eq!(uploads[0].bytes, zip);
    assert_eq!(uploads[0].password.as_deref(), Some("infected"));

    let not_zip = file_form(b"plain text", "a.txt").text("password", "infected");
    let reply = post_form(&url, not_zip).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "BadRequestError");

    let no_file = Form::new().text("password", "infected");
    assert_eq!(
        post_form(&url, no_file).await.error_code(),
        "BadRequestError"
    );
    assert_eq!(vt.uploads().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn trailing_slash_on_upload_is_not_found() {
    let vt = FakeVirusTotal::start(KEY).await;
    let reply = post_form(
        &format!("{}/files/", vt.base_url()),
        file_form(b"x", "x.bin"),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert!(vt.uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_url_works_once() {
    let vt = FakeVirusTotal::start(KEY).await;
    let reply = get(&vt, "/files/upload_url").await;
    assert_eq!(reply.status, 200);
    let url = reply.json()["data"].as_str().unwrap().to_owned();
    let origin = vt.base_url().trim_end_matches("/api/v3").to_owned();
    assert!(url.starts_with(&format!("{origin}/_ah/upload/")), "{url}");
    assert!(url.ends_with('/'));

    let content = b"large file, pretend".to_vec();
    let id = analysis_id(&post_form(&url, file_form(&content, "big.iso")).await);
    assert!(!id.is_empty());

    let second = post_form(&url, file_form(&content, "big.iso")).await;
    assert_eq!(second.status, 400);
    assert!(
        second.content_type.starts_with("text/html"),
        "{}",
        second.content_type
    );

    let uploads = vt.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].via, UploadVia::UploadUrl);
    assert_eq!(uploads[0].bytes, content);
    assert_eq!(vt.count("POST", "/_ah/upload/"), 2);
    assert_eq!(vt.count("GET", "/files/upload_url"), 1);

    // A fresh URL works again.
    let url = get(&vt, "/files/upload_url").await.json()["data"]
        .as_str()
        .unwrap()
        .to_owned();
    analysis_id(&post_form(&url, file_form(b"other", "o.bin")).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_upload_over_32_mb_is_413_without_json() {
    let vt = FakeVirusTotal::start(KEY).await;
    let reply = upload(&vt, &vec![0x41; DIRECT_UPLOAD_LIMIT + 1], "huge.bin").await;
    assert_eq!(reply.status, 413);
    assert!(
        reply.content_type.starts_with("text/html"),
        "{}",
        reply.content_type
    );
    assert!(serde_json::from_str::<Value>(&reply.text).is_err());
    assert!(vt.uploads().is_empty());
    assert_eq!(vt.requests()[0].status, 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn size_limits_are_exact_and_upload_url_ceiling_is_not_json() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.set_size_limits(10, 20);
    analysis_id(&upload(&vt, &[1; 10], "ten.bin").await);
    assert_eq!(upload(&vt, &[1; 11], "eleven.bin").await.status, 413);

    let url = get(&vt, "/files/upload_url").await.json()["data"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = post_form(&url, file_form(&[2; 21], "big.bin")).await;
    assert_eq!(reply.status, 413);
    assert!(reply.content_type.starts_with("text/html"));
    assert_eq!(vt.uploads().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn analysis_ids_are_percent_decoded() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.set_analysis_timeline(0, 0, 0);
    let id = analysis_id(&upload(&vt, b"padding please", "p.bin").await);
    assert!(id.ends_with('='), "{id}");

    let encoded = get(&vt, &format!("/analyses/{}", encode(&id))).await;
    assert_eq!(encoded.status, 200);
    assert_eq!(encoded.json()["data"]["id"], id.as_str());
    let raw = get(&vt, &format!("/analyses/{id}")).await;
    assert_eq!(raw.status, 200);
    let requests = vt.requests();
    assert_eq!(requests[1].path, format!("/api/v3/analyses/{id}"));

    let unknown = get(&vt, "/analyses/bm90LWFuLWFuYWx5c2lz%3D").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "NotFoundError");
}

#[tokio::test(flavor = "multi_thread")]
async fn reanalyse_gives_a_new_analysis_of_the_known_file() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.set_analysis_timeline(0, 1, 0);
    let hashes = vt.add_known_file(FileFixture::new(b"known").detections(7, 0, 50, 0));
    let reply = post(&vt, &format!("/files/{}/analyse", hashes.sha1)).await;
    let id = analysis_id(&reply);
    let path = format!("/analyses/{}", encode(&id));
    let queued = get(&vt, &path).await.json();
    assert_eq!(queued["data"]["attributes"]["status"], "queued");
    assert_eq!(
        queued["meta"]["file_info"]["sha256"],
        hashes.sha256.as_str()
    );
    let completed = get(&vt, &path).await.json();
    assert_eq!(completed["data"]["attributes"]["status"], "completed");
    assert_eq!(completed["data"]["attributes"]["stats"]["malicious"], 7);
    assert!(vt.uploads().is_empty());

    let unknown = post(&vt, &format!("/files/{}/analyse", "b".repeat(64))).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "NotFoundError");
    assert_eq!(vt.count("POST", "/files/"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_failures_come_first_in_order_and_run_out() {
    let vt = FakeVirusTotal::start(KEY).await;
    let hashes = vt.add_known_file(FileFixture::new(b"target"));
    let path = format!("/files/{}", hashes.sha256);
    vt.inject(
        Route::Analysis,
        Failure::Error(504, "DeadlineExceededError"),
        1,
    );
    vt.inject(Route::FileReport, Failure::Error(503, "TransientError"), 2);
    vt.inject(Route::FileReport, Failure::NonJson(502), 1);
    vt.inject(Route::Any, Failure::Malformed, 1);

    for _ in 0..2 {
        let reply = get(&vt, &path).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.error_code(), "TransientError");
    }
    let html = get(&vt, &path).await;
    assert_eq!(html.status, 502);
    assert!(html.content_type.starts_with("text/html"));
    let malformed = get(&vt, &path).await;
    assert_eq!(malformed.status, 200);
    assert!(malformed.json()["data"]["attributes"].is_string());
    let normal = get(&vt, &path).await;
    assert_eq!(normal.status, 200);
    assert_eq!(normal.json()["data"]["id"], hashes.sha256.as_str());

    // Injections win even over authentication; the Analysis one is still waiting.
    vt.inject(
        Route::UploadDirect,
        Failure::Error(429, "QuotaExceededError"),
        1,
    );
    let url = format!("{}/files", vt.base_url());
    let form = file_form(b"never stored", "n.bin");
    let reply = answer(
        reqwest::Client::new()
            .post(url)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.error_code(), "QuotaExceededError");
    assert!(vt.uploads().is_empty());
    assert_eq!(vt.quota_rejections(), 1);
    let reply = get(&vt, "/analyses/whatever").await;
    assert_eq!(reply.error_code(), "DeadlineExceededError");
}

#[tokio::test(flavor = "multi_thread")]
async fn hang_outlasts_a_short_client_timeout_then_answers_504() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.inject(
        Route::FileReport,
        Failure::Hang(Duration::from_millis(600)),
        1,
    );
    vt.inject(
        Route::FileReport,
        Failure::Hang(Duration::from_millis(200)),
        1,
    );
    let url = format!("{}/files/{}", vt.base_url(), "c".repeat(64));

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let error = impatient
        .get(&url)
        .header("x-apikey", KEY)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let started = Instant::now();
    let reply = answer(
        reqwest::Client::new()
            .get(&url)
            .header("x-apikey", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(reply.status, 504);
    assert_eq!(reply.error_code(), "DeadlineExceededError");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_minute_quota_answers_429_and_slides() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.set_per_minute_quota(Some(2));
    let path = format!("/files/{}", "d".repeat(64));
    assert_eq!(get(&vt, &path).await.status, 404);
    assert_eq!(get(&vt, &path).await.status, 404);
    let third = get(&vt, &path).await;
    assert_eq!(third.status, 429);
    assert_eq!(third.error_code(), "QuotaExceededError");
    assert!(
        !third.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily")
    );
    assert_eq!(vt.quota_rejections(), 1);
    assert_eq!(vt.requests().len(), 3);
    assert_eq!(vt.requests()[2].status, 429);

    vt.advance_clock(Duration::from_secs(61));
    assert_eq!(get(&vt, &path).await.status, 404);
    vt.set_per_minute_quota(None);
    for _ in 0..3 {
        assert_eq!(get(&vt, &path).await.status, 404);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn daily_quota_answers_429_mentioning_the_daily_quota() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.set_daily_quota(Some(3));
    for _ in 0..3 {
        assert_eq!(get(&vt, "/files/upload_url").await.status, 200);
    }
    let over = get(&vt, "/files/upload_url").await;
    assert_eq!(over.status, 429);
    assert_eq!(over.error_code(), "QuotaExceededError");
    assert!(
        over.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily quota")
    );

    vt.advance_clock(Duration::from_secs(86_400));
    assert_eq!(get(&vt, "/files/upload_url").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_url_posts_do_not_count_against_the_quota() {
    let vt = FakeVirusTotal::start(KEY).await;
    vt.set_per_minute_quota(Some(1));
    let url = get(&vt, "/files/upload_url").await.json()["data"]
        .as_str()
        .unwrap()
        .to_owned();
    analysis_id(&post_form(&url, file_form(b"via url", "u.bin")).await);
    assert_eq!(get(&vt, "/files/upload_url").await.status, 429);
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    let vt = FakeVirusTotal::start(KEY).await;
    let hashes = vt.add_known_file(FileFixture::new(b"ct"));
    assert_eq!(
        get(&vt, &format!("/files/{}", hashes.sha1)).await.status,
        200
    );
}

#[actix_web::test]
async fn works_on_the_actix_runtime() {
    let vt = FakeVirusTotal::start(KEY).await;
    let hashes = vt.add_known_file(FileFixture::new(b"actix"));
    assert_eq!(
        get(&vt, &format!("/files/{}", hashes.md5)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_stops_when_dropped() {
    let vt = FakeVirusTotal::start(KEY).await;
    let url = format!("{}/files/upload_url", vt.base_url());
    assert_eq!(get(&vt, "/files/upload_url").await.status, 200);
    drop(vt);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let error = client
        .get(&url)
        .header("x-apikey", KEY)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect() || error.is_request(), "{error}");
}
