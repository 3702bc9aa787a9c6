//! The core journeys, walked over HTTP against the real app and a fake
//! VirusTotal: lookups, full scans, hash search, the live scan page, and what
//! happens on bad input and on each VirusTotal failure.

use std::time::{Duration, Instant};

use crate::support::app::{
    TestApp, client, count, get_page, noscript, post_upload, scan_location, spooled_files,
    status_attr, text_of, wait_until_final,
};
use crate::support::fake_vt::{Failure, FakeVirusTotal, FileFixture, Route, UploadVia};

use crate::support::app::{Browser, VT_KEY};

fn malware() -> Vec<u8> {
    b"MZ pretend this is a dangerous program".to_vec()
}

#[tokio::test]
async fn home_page_offers_both_modes_with_the_sharing_notice() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    let (status, page) = get_page(&app, "/").await;

    assert_eq!(status, 200);
    assert_eq!(
        count(
            &page,
            "form[action='/scans'][method='post'] input[type=file][name=file]"
        ),
        1
    );
    assert_eq!(count(&page, "input[name=mode][value=lookup][checked]"), 1);
    assert_eq!(count(&page, "input[name=mode][value=upload]"), 1);
    assert_eq!(count(&page, "input[name=password]"), 1);
    assert_eq!(count(&page, "form[action='/search'] input[name=q]"), 1);
    let notice = text_of(&page, "#mode-upload-hint").unwrap();
    assert!(
        notice.contains("shared with VirusTotal's security community"),
        "{notice}"
    );
    let private = text_of(&page, "#mode-lookup-hint").unwrap();
    assert!(private.contains("stays here"), "{private}");
    assert_eq!(count(&page, "#config-notice"), 0);
}

#[tokio::test]
async fn without_a_key_every_page_says_so_and_scans_are_refused() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start_with(&vt, |c| c.vt_api_key = None).await;

    for path in [
        "/",
        "/scans/00000000-0000-4000-8000-000000000000",
        "/nowhere",
    ] {
        let (_, page) = get_page(&app, path).await;
        let notice = text_of(&page, "#config-notice").unwrap_or_default();
        assert!(
            notice.contains("VT_API_KEY is not set"),
            "{path}: {notice:?}"
        );
    }

    let response = post_upload(&app, &malware(), "a.exe", Some("lookup"), None).await;
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("VT_API_KEY"));
    let search = client()
        .get(app.at(&format!("/search?q={}", "a".repeat(64))))
        .send()
        .await;
    assert_eq!(search.unwrap().status(), 503);
    assert!(vt.requests().is_empty());
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn lookup_of_a_known_file_shows_the_report_and_never_uploads() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let known = vt.add_known_file(
        FileFixture::new(&malware())
            .detections(60, 2, 8, 0)
            .names(&["invoice.exe", "setup.exe"])
            .threat_label("trojan.emotet/agent"),
    );
    let app = TestApp::start(&vt).await;

    let response = post_upload(&app, &malware(), "invoice.exe", Some("lookup"), None).await;
    let location = scan_location(&response);
    let page = wait_until_final(&app, &location).await;

    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed")
    );
    assert_eq!(status_attr(&page, "data-malicious").as_deref(), Some("60"));
    assert_eq!(status_attr(&page, "data-suspicious").as_deref(), Some("2"));
    assert_eq!(status_attr(&page, "data-undetected").as_deref(), Some("8"));
    assert_eq!(status_attr(&page, "data-harmless").as_deref(), Some("0"));
    let headline = text_of(&page, "#scan-status").unwrap();
    assert!(
        headline.contains("62 of 70 engines flag this file"),
        "{headline}"
    );
    assert!(headline.contains("Malicious"), "{headline}");
    let details = text_of(&page, "table.details").unwrap();
    assert!(
        details.contains(&known.sha256) && details.contains(&known.md5),
        "{details}"
    );
    assert!(details.contains("Win32 EXE"), "{details}");
    assert!(text_of(&page, ".names").unwrap().contains("setup.exe"));
    assert!(
        text_of(&page, ".threat-label")
            .unwrap()
            .contains("trojan.emotet/agent")
    );
    assert_eq!(
        count(&page, "table.engines tbody tr.category-malicious"),
        60
    );
    assert_eq!(
        text_of(&page, "table.engines thead").unwrap(),
        "Engine Category Result"
    );

    assert!(vt.uploads().is_empty(), "lookup mode must not upload");
    let calls: Vec<String> = vt.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(calls, vec![format!("/api/v3/files/{}", known.sha256)]);
    assert!(
        vt.requests()
            .iter()
            .all(|r| r.api_key.as_deref() == Some(VT_KEY))
    );
    assert_eq!(
        spooled_files(&app),
        0,
        "the file must be deleted after hashing"
    );
}

#[tokio::test]
async fn lookup_of_an_unknown_file_says_so_and_offers_a_full_scan() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    let response = post_upload(&app, b"never seen before", "notes.txt", None, None).await;
    let page = wait_until_final(&app, &scan_location(&response)).await;

    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("not_found")
    );
    assert!(
        text_of(&page, "#scan-status")
            .unwrap()
            .contains("VirusTotal has not seen this file")
    );
    assert_eq!(count(&page, "a[href='/?mode=upload']"), 1);
    // The person still learns the file's fingerprint.
    let sha256 = FileFixture::new(b"never seen before").hashes().sha256;
    let details = text_of(&page, "table.details").unwrap();
    assert!(details.contains(&sha256), "{details}");
    assert!(vt.uploads().is_empty());
    assert_eq!(vt.count("POST", "/files"), 0);
    assert_eq!(spooled_files(&app), 0);

    let (_, home) = get_page(&app, "/?mode=upload").await;
    assert_eq!(count(&home, "input[name=mode][value=upload][checked]"), 1);
}

#[tokio::test]
async fn full_scan_of_a_known_file_reuses_its_report() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.add_known_file(FileFixture::new(&malware()).detections(5, 0, 65, 0));
    let app = TestApp::start(&vt).await;

    let response = post_upload(&app, &malware(), "a.exe", Some("upload"), None).await;
    let page = wait_until_final(&app, &scan_location(&response)).await;

    assert_eq!(status_attr(&page, "data-malicious").as_deref(), Some("5"));
    assert!(vt.uploads().is_empty());
    assert_eq!(vt.requests().len(), 1, "a known file costs one call");
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn full_scan_uploads_an_unknown_file_and_follows_the_analysis() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(1, 12, 12);
    vt.set_upload_outcome(FileFixture::new(b"").detections(3, 1, 66, 0));
    let app = TestApp::start(&vt).await;
    let content = b"#!/bin/sh\necho brand new script\n".to_vec();

    let response = post_upload(
        &app,
        &content,
        "r\u{e9}sum\u{e9} \"v2\".sh",
        Some("upload"),
        None,
    )
    .await;
    let location = scan_location(&response);

    // Straight after the redirect the scan is still under way.
    let (_, first) = get_page(&app, &location).await;
    let early = status_attr(&first, "data-status").unwrap();
    assert!(["queued", "running"].contains(&early.as_str()), "{early}");
    assert_eq!(count(&noscript(&first), "a[href$='?refresh=5']"), 1);

    let page = wait_until_final(&app, &location).await;
    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed")
    );
    assert_eq!(status_attr(&page, "data-malicious").as_deref(), Some("3"));
    assert!(
        text_of(&page, "#scan-status")
            .unwrap()
            .contains("4 of 70 engines flag this file")
    );
    assert!(text_of(&page, "h1").unwrap().contains("résumé \"v2\".sh"));

    let uploads = vt.uploads();
    assert_eq!(uploads.len(), 1, "{:?}", vt.requests());
    assert_eq!(uploads[0].via, UploadVia::Direct);
    assert_eq!(
        uploads[0].bytes, content,
        "VirusTotal must receive the exact bytes"
    );
    assert_eq!(uploads[0].file_name.as_deref(), Some("r_sum___v2_.sh"));
    assert_eq!(uploads[0].password, None);
    // One 404, twelve queued, twelve in progress, one completed: each poll made once.
    assert_eq!(
        vt.count("GET", "/analyses/"),
        26,
        "the analysis is followed to the end"
    );
    // Analysis ids end in base64 padding, which must travel percent-encoded.
    let poll = vt
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/api/v3/analyses/"))
        .unwrap();
    assert!(poll.path.ends_with('='), "{}", poll.path);
    assert!(poll.raw_path.ends_with("%3D"), "{}", poll.raw_path);
    // Then the file's report, for the details the analysis does not carry.
    let requests = vt.requests();
    let last = requests.last().unwrap();
    assert_eq!(last.method, "GET");
    assert!(last.path.starts_with("/api/v3/files/"), "{}", last.path);
    let details = text_of(&page, "table.details").unwrap();
    assert!(details.contains("Type"), "{details}");
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn large_files_go_through_an_upload_url_streamed_from_disk() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 1, 1);
    let app = TestApp::start(&vt).await;
    // Just over the 30 MiB direct-upload threshold.
    let content: Vec<u8> = (0..31 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();

    let response = post_upload(&app, &content, "disk.img", Some("upload"), None).await;
    let page = wait_until_final(&app, &scan_location(&response)).await;

    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed")
    );
    let uploads = vt.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].via, UploadVia::UploadUrl);
    assert!(
        uploads[0].bytes == content,
        "the upload URL must receive the exact bytes"
    );
    assert_eq!(vt.count("GET", "/files/upload_url"), 1);
    assert_eq!(
        vt.count("POST", "/files"),
        0,
        "no direct POST for a large file"
    );
    let to_url: Vec<_> = vt
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/_ah/upload/"))
        .collect();
    assert_eq!(to_url.len(), 1);
    assert_eq!(
        to_url[0].api_key.as_deref(),
        Some(VT_KEY),
        "the key goes to the upload URL too"
    );
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn an_upload_may_take_longer_than_an_api_call() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 0, 0);
    vt.set_upload_pause(Duration::from_millis(2500));
    let app = TestApp::start_with(&vt, |c| c.vt_request_timeout = Duration::from_secs(1)).await;
    let content: Vec<u8> = (0..1024 * 1024).map(|i| (i % 241) as u8).collect();

    let response = post_upload(&app, &content, "slow.bin", Some("upload"), None).await;
    let page = wait_until_final(&app, &scan_location(&response)).await;

    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed"),
        "{}",
        text_of(&page, "#scan-status").unwrap_or_default()
    );
    assert_eq!(vt.uploads().len(), 1, "sent once, not retried");
}

#[tokio::test]
async fn archive_password_is_sent_with_the_upload() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 0, 1);
    let app = TestApp::start(&vt).await;
    let zip = b"PK\x03\x04 encrypted archive body".to_vec();

    let response = post_upload(&app, &zip, "sample.zip", Some("upload"), Some("infected")).await;
    wait_until_final(&app, &scan_location(&response)).await;

    assert_eq!(vt.uploads()[0].password.as_deref(), Some("infected"));
}

#[tokio::test]
async fn a_rejected_archive_password_fails_with_advice() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    // The fake, like VirusTotal, answers 400 to a password with a file that is not a ZIP.
    let response = post_upload(&app, b"not a zip", "x.bin", Some("upload"), Some("pw")).await;
    let page = wait_until_final(&app, &scan_location(&response)).await;

    assert_eq!(status_attr(&page, "data-status").as_deref(), Some("failed"));
    let text = text_of(&page, "#scan-status").unwrap();
    assert!(
        text.contains("VirusTotal rejected the upload") && text.contains("password"),
        "{text}"
    );
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn search_by_any_hash_in_any_case_finds_the_report() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let known = vt.add_known_file(FileFixture::new(&malware()).detections(10, 0, 60, 0));
    let app = TestApp::start(&vt).await;

    for query in [
        known.md5.to_uppercase(),
        format!("  {}\n", known.sha1),
        known.sha256.clone(),
    ] {
        let response = client()
            .get(app.at("/search"))
            .query(&[("q", &query)])
            .send()
            .await;
        let page = wait_until_final(&app, &scan_location(&response.unwrap())).await;
        assert_eq!(
            status_attr(&page, "data-malicious").as_deref(),
            Some("10"),
            "{query}"
        );
        assert!(
            text_of(&page, "table.details")
                .unwrap()
                .contains(&known.sha256)
        );
    }
    let asked: Vec<String> = vt.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        asked.contains(&format!("/api/v3/files/{}", known.md5)),
        "{asked:?}"
    );
}

#[tokio::test]
async fn search_for_an_unknown_hash_says_not_found() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    let response = client()
        .get(app.at(&format!("/search?q={}", "ab".repeat(16))))
        .send()
        .await;
    let page = wait_until_final(&app, &scan_location(&response.unwrap())).await;

    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("not_found")
    );
}

#[tokio::test]
async fn malformed_searches_show_the_form_again_with_an_error() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    for query in [
        "",
        "hello",
        &"z".repeat(64),
        &"a".repeat(63),
        "<script>alert(1)</script>",
    ] {
        let response = client()
            .get(app.at("/search"))
            .query(&[("q", query)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query:?}");
        let html = response.text().await.unwrap();
        assert!(!html.contains("<script>alert(1)"), "input must be escaped");
        let page = scraper::Html::parse_document(&html);
        assert!(text_of(&page, "#q-error").is_some(), "{query:?}");
        assert_eq!(count(&page, "input#q[aria-invalid=true]"), 1);
    }
    assert!(vt.requests().is_empty());
}

#[tokio::test]
async fn status_fragment_polls_until_final_then_answers_286() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 1000, 0);
    let app = TestApp::start(&vt).await;

    let response = post_upload(&app, b"fresh content", "f.bin", Some("upload"), None).await;
    let location = scan_location(&response);
    vt.wait_for_calls("GET", "/analyses/", 1, "never started analysing")
        .await;
    let (_, page) = get_page(&app, &location).await;
    let poller = scraper::Selector::parse("#scan-poller[hx-get]").unwrap();
    let poll_url = page
        .select(&poller)
        .next()
        .and_then(|e| e.value().attr("hx-get"))
        .expect("a page still in progress polls")
        .to_owned();
    assert!(
        poll_url.starts_with(&format!("{location}/status?seen=")),
        "{poll_url}"
    );
    assert_eq!(
        count(&page, "#scan-live[hx-get]"),
        0,
        "the live region is not the poller"
    );

    // While nothing changes, the poller gets nothing to swap.
    let unchanged = client().get(app.at(&poll_url)).send().await.unwrap();
    assert_eq!(unchanged.status(), 204);
    assert!(unchanged.text().await.unwrap().is_empty());

    // A poller that has seen something else gets the status and its next self.
    let fresh = client()
        .get(app.at(&format!("{location}/status")))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    let html = scraper::Html::parse_fragment(&fresh.text().await.unwrap());
    assert_eq!(
        count(
            &html,
            "#scan-live[hx-swap-oob=innerHTML] > #scan-status[data-status=running]"
        ),
        1
    );
    assert_eq!(
        count(&html, &format!("#scan-poller[hx-get='{poll_url}']")),
        1
    );

    vt.finish_pending_analyses();
    wait_until_final(&app, &location).await;
    let done = client().get(app.at(&poll_url)).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 286);
    let html = scraper::Html::parse_fragment(&done.text().await.unwrap());
    assert_eq!(
        status_attr(&html, "data-status").as_deref(),
        Some("completed")
    );
    assert_eq!(
        count(&html, "#scan-report[hx-swap-oob=true] table.engines"),
        1
    );
    assert_eq!(count(&html, "#scan-poller"), 0, "the poller goes away");

    let (_, final_page) = get_page(&app, &location).await;
    assert_eq!(
        count(&final_page, "#scan-poller"),
        0,
        "a final page does not poll"
    );
}

#[tokio::test]
async fn without_javascript_refresh_happens_only_when_asked() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 40, 0);
    let app = TestApp::start(&vt).await;

    let response = post_upload(&app, b"slow one", "slow.bin", Some("upload"), None).await;
    let location = scan_location(&response);

    let (_, page) = get_page(&app, &location).await;
    assert_eq!(
        count(&page, "meta[http-equiv=refresh]"),
        0,
        "no reload unless asked"
    );
    let controls = noscript(&page);
    assert_eq!(
        text_of(&controls, &format!("a[href='{location}']")).unwrap(),
        "Check again"
    );
    assert_eq!(
        count(&controls, &format!("a[href='{location}?refresh=5']")),
        1
    );

    let (_, refreshing) = get_page(&app, &format!("{location}?refresh=5")).await;
    assert_eq!(
        count(&refreshing, "meta[http-equiv=refresh][content='5']"),
        1
    );
    let controls = noscript(&refreshing);
    assert_eq!(
        text_of(&controls, &format!("a[href='{location}']")).unwrap(),
        "Stop refreshing"
    );
    let again = text_of(&controls, &format!("a[href='{location}?refresh=5']")).unwrap();
    assert_eq!(again, "Check again");

    let final_page = wait_until_final(&app, &format!("{location}?refresh=5")).await;
    assert_eq!(
        count(&final_page, "meta[http-equiv=refresh]"),
        0,
        "stops once final"
    );
    let controls = noscript(&final_page);
    assert_eq!(
        count(&controls, "a[href*='refresh']"),
        0,
        "no refresh offered once final"
    );
    assert!(!controls.html().contains("Check again"));
}

#[tokio::test]
async fn unknown_and_malformed_scan_ids_get_a_404_page() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    for path in [
        "/scans/6b1c6f5e-3f7a-4c2e-9d7e-1a2b3c4d5e6f",
        "/scans/not-an-id",
        "/scans/6b1c6f5e-3f7a-4c2e-9d7e-1a2b3c4d5e6f/status",
        "/scans/../../etc/passwd",
    ] {
        let (status, page) = get_page(&app, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            text_of(&page, "h1").is_some_and(|h| h.contains("no")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_report_downloads_as_json() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let known = vt.add_known_file(FileFixture::new(&malware()).detections(1, 0, 69, 0));
    let app = TestApp::start(&vt).await;
    let location = scan_location(&post_upload(&app, &malware(), "a.exe", None, None).await);
    wait_until_final(&app, &location).await;

    let response = client()
        .get(app.at(&format!("{location}.json")))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["report"]["sha256"], known.sha256.as_str());
    assert_eq!(json["report"]["stats"]["malicious"], 1);
}

#[tokio::test]
async fn bad_uploads_get_a_400_page_that_says_what_to_do() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    let empty = post_upload(&app, b"", "empty.txt", Some("lookup"), None).await;
    assert_eq!(empty.status(), 400);
    assert!(empty.text().await.unwrap().contains("The file is empty"));

    let no_file_chosen = post_upload(&app, b"", "", Some("lookup"), None).await;
    assert_eq!(no_file_chosen.status(), 400);
    assert!(
        no_file_chosen
            .text()
            .await
            .unwrap()
            .contains("No file was chosen")
    );

    let form = reqwest::multipart::Form::new().text("mode", "lookup");
    let missing = client()
        .post(app.at("/scans"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let page = scraper::Html::parse_document(&missing.text().await.unwrap());
    assert!(
        text_of(&page, "#upload-error")
            .unwrap()
            .contains("Choose a file")
    );
    assert_eq!(
        count(&page, "form[action='/scans']"),
        1,
        "the form is shown again"
    );

    let bad_mode = post_upload(&app, b"data", "a.txt", Some("everything"), None).await;
    assert_eq!(bad_mode.status(), 400);

    let malformed = client()
        .post(app.at("/scans"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(
        malformed
            .text()
            .await
            .unwrap()
            .contains("cut off or malformed")
    );

    let not_multipart = client()
        .post(app.at("/scans"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("mode=lookup")
        .send()
        .await
        .unwrap();
    assert_eq!(not_multipart.status(), 400);

    assert!(vt.requests().is_empty());
    assert_eq!(spooled_files(&app), 0, "nothing is left on disk");
}

#[tokio::test]
async fn files_over_the_limit_are_refused_while_they_arrive() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start_with(&vt, |c| c.max_upload_bytes = 1000).await;

    // Declared too large: refused before the body is read.
    let too_big = post_upload(&app, &vec![7u8; 200_000], "big.bin", Some("lookup"), None).await;
    assert_eq!(too_big.status(), 413);
    let page = scraper::Html::parse_document(&too_big.text().await.unwrap());
    assert!(
        text_of(&page, "#upload-error")
            .unwrap()
            .contains("larger than 1000 bytes")
    );

    // Within the declared slack but over the limit: cut off while streaming.
    let over = post_upload(&app, &vec![7u8; 1001], "big.bin", Some("lookup"), None).await;
    assert_eq!(over.status(), 413);

    let exact = post_upload(&app, &vec![7u8; 1000], "ok.bin", Some("lookup"), None).await;
    assert_eq!(exact.status(), 303);
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn a_rejected_api_key_fails_the_scan_with_a_clear_reason() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start_with(&vt, |c| {
        c.vt_api_key = Some(file_scanner::config::Secret::new("wrong-key"));
    })
    .await;

    let page = wait_until_final(
        &app,
        &scan_location(&post_upload(&app, &malware(), "a.exe", None, None).await),
    )
    .await;

    assert_eq!(status_attr(&page, "data-status").as_deref(), Some("failed"));
    let text = text_of(&page, "#scan-status").unwrap();
    assert!(
        text.contains("VirusTotal rejected this server's API key"),
        "{text}"
    );
    assert!(text.contains("VT_API_KEY"), "{text}");
    assert!(
        !page.html().contains("wrong-key"),
        "the key never appears on a page"
    );
    assert_eq!(vt.requests().len(), 1, "a bad key is not retried");
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_scan_completes() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.add_known_file(FileFixture::new(&malware()).detections(7, 0, 63, 0));
    vt.inject(Route::FileReport, Failure::Error(503, "TransientError"), 1);
    vt.inject(Route::FileReport, Failure::NonJson(502), 1);
    vt.inject(
        Route::FileReport,
        Failure::Error(429, "QuotaExceededError"),
        1,
    );
    let app = TestApp::start(&vt).await;

    let page = wait_until_final(
        &app,
        &scan_location(&post_upload(&app, &malware(), "a.exe", None, None).await),
    )
    .await;

    assert_eq!(status_attr(&page, "data-malicious").as_deref(), Some("7"));
    assert_eq!(vt.count("GET", "/files/"), 4);
}

#[tokio::test]
async fn each_persistent_failure_ends_in_a_page_that_says_what_happened() {
    let cases: [(Failure, &str); 5] = [
        (
            Failure::Error(429, "QuotaExceededError"),
            "used up its VirusTotal quota",
        ),
        (
            Failure::Error(503, "TransientError"),
            "VirusTotal could not be reached",
        ),
        (
            Failure::Error(504, "DeadlineExceededError"),
            "VirusTotal could not be reached",
        ),
        (Failure::Error(403, "ForbiddenError"), "does not allow"),
        (Failure::Malformed, "could not read"),
    ];
    for (failure, expected) in cases {
        let vt = FakeVirusTotal::start(VT_KEY).await;
        vt.inject(Route::FileReport, failure, 100);
        let app = TestApp::start(&vt).await;

        let location = scan_location(&post_upload(&app, &malware(), "a.exe", None, None).await);
        let page = wait_until_final(&app, &location).await;

        assert_eq!(
            status_attr(&page, "data-status").as_deref(),
            Some("failed"),
            "{failure:?}"
        );
        let text = text_of(&page, "#scan-status").unwrap();
        assert!(text.contains(expected), "{failure:?}: {text}");
        assert_eq!(count(&page, "a.button[href='/']"), 1, "a way to try again");
    }
}

#[tokio::test]
async fn failures_while_uploading_or_analysing_end_in_a_page_that_says_what_happened() {
    let cases: [(Route, Failure, &str); 3] = [
        (
            Route::UploadDirect,
            Failure::Error(503, "TransientError"),
            "VirusTotal could not be reached",
        ),
        (
            Route::Analysis,
            Failure::Error(401, "WrongCredentialsError"),
            "rejected this server's API key",
        ),
        (
            Route::Analysis,
            Failure::Error(404, "NotFoundError"),
            "lost track of the file or its analysis",
        ),
    ];
    for (route, failure, expected) in cases {
        let vt = FakeVirusTotal::start(VT_KEY).await;
        vt.inject(route, failure, 100);
        let app = TestApp::start(&vt).await;

        let location = scan_location(
            &post_upload(&app, b"never seen before", "new.bin", Some("upload"), None).await,
        );
        let page = wait_until_final(&app, &location).await;

        assert_eq!(
            status_attr(&page, "data-status").as_deref(),
            Some("failed"),
            "{route:?} {failure:?}"
        );
        let text = text_of(&page, "#scan-status").unwrap();
        assert!(text.contains(expected), "{route:?} {failure:?}: {text}");
        assert_eq!(spooled_files(&app), 0);
    }
}

#[tokio::test]
async fn an_analysis_resumed_after_its_deadline_is_asked_about_once_more() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 40, 0);
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::app::test_config(&vt, dir.path());
    config.analysis_deadline = Duration::from_secs(1);

    let mut first = TestApp::start_config(config.clone());
    let scan = scan_location(
        &post_upload(
            &first,
            b"analysed while down",
            "c.bin",
            Some("upload"),
            None,
        )
        .await,
    );
    vt.wait_for_calls("GET", "/analyses/", 1, "never started analysing")
        .await;
    first.stop();
    // Down for longer than the deadline, while VirusTotal finishes the analysis.
    vt.finish_pending_analyses();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let second = TestApp::start_config(config);
    let page = wait_until_final(&second, &scan).await;
    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed"),
        "{}",
        text_of(&page, "#scan-status").unwrap_or_default()
    );
}

#[tokio::test]
async fn an_unreachable_virustotal_fails_the_scan_instead_of_hanging() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.inject(
        Route::FileReport,
        Failure::Hang(Duration::from_secs(5)),
        100,
    );
    let app = TestApp::start_with(&vt, |c| c.vt_request_timeout = Duration::from_millis(200)).await;

    let location = scan_location(&post_upload(&app, &malware(), "a.exe", None, None).await);
    let page = wait_until_final(&app, &location).await;

    assert!(
        text_of(&page, "#scan-status")
            .unwrap()
            .contains("could not be reached")
    );
}

#[tokio::test]
async fn a_virustotal_that_refuses_connections_fails_the_scan_with_advice() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = TestApp::start_with(&vt, |c| {
        c.vt_base_url = format!("http://127.0.0.1:{port}/api/v3");
    })
    .await;

    let location = scan_location(&post_upload(&app, &malware(), "a.exe", None, None).await);
    let page = wait_until_final(&app, &location).await;

    assert_eq!(status_attr(&page, "data-status").as_deref(), Some("failed"));
    let text = text_of(&page, "#scan-status").unwrap();
    assert!(text.contains("could not be reached"), "{text}");
    assert!(text.contains("Try again in a few minutes"), "{text}");
}

#[tokio::test]
async fn a_file_virustotal_refuses_as_too_large_fails_with_that_reason() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_size_limits(100, 1000);
    let app = TestApp::start(&vt).await;

    let location =
        scan_location(&post_upload(&app, &[1u8; 500], "big.bin", Some("upload"), None).await);
    let page = wait_until_final(&app, &location).await;

    assert!(
        text_of(&page, "#scan-status")
            .unwrap()
            .contains("too large")
    );
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn cross_site_form_posts_are_refused() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    let part = reqwest::multipart::Part::bytes(malware()).file_name("a.exe");
    let form = reqwest::multipart::Form::new().part("file", part);
    let refused = client()
        .post(app.at("/scans"))
        .header("sec-fetch-site", "cross-site")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("another site"));

    let part = reqwest::multipart::Part::bytes(malware()).file_name("a.exe");
    let form = reqwest::multipart::Form::new().part("file", part);
    let other_origin = client()
        .post(app.at("/scans"))
        .header("origin", "http://attacker.invalid")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(other_origin.status(), 403);
    assert!(vt.requests().is_empty());
    assert_eq!(spooled_files(&app), 0);
}

#[tokio::test]
async fn another_sites_page_cannot_start_a_search_but_a_link_can() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let hashes = vt.add_known_file(FileFixture::new(&malware()).detections(9, 0, 61, 0));
    let app = TestApp::start(&vt).await;
    let search = |mode: &'static str, dest: &'static str| {
        client()
            .get(app.at("/search"))
            .query(&[("q", hashes.sha256.as_str())])
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", mode)
            .header("sec-fetch-dest", dest)
            .send()
    };

    // An <img> on another site pointing at a search.
    let image = search("no-cors", "image").await.unwrap();
    assert_eq!(image.status(), 403);
    assert!(vt.requests().is_empty(), "no VirusTotal call for it");

    // Someone following a link from another site.
    let link = search("navigate", "document").await.unwrap();
    assert_eq!(link.status(), 303);
    wait_until_final(&app, &scan_location(&link)).await;
    assert_eq!(vt.requests().len(), 1);
}

#[tokio::test]
async fn pages_carry_a_strict_content_security_policy() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    let response = client().get(app.at("/")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let html = response.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
}

#[tokio::test]
async fn names_from_uploads_and_virustotal_are_escaped() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.add_known_file(
        FileFixture::new(&malware())
            .detections(4, 0, 66, 0)
            .names(&["<img src=x onerror=alert(2)>.exe", "b.exe"]),
    );
    let app = TestApp::start(&vt).await;

    let location = scan_location(
        &post_upload(
            &app,
            &malware(),
            "<img src=x onerror=alert(1)>.exe",
            None,
            None,
        )
        .await,
    );
    let page = wait_until_final(&app, &location).await;

    let html = page.html();
    assert!(
        !html.contains("<img src=x"),
        "markup from names must be escaped"
    );
    assert!(
        text_of(&page, "h1")
            .unwrap()
            .contains("<img src=x onerror=alert(1)>.exe")
    );
    assert!(
        text_of(&page, ".names")
            .unwrap()
            .contains("onerror=alert(2)")
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            client().get(app.at(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    let css = client()
        .get(app.at("/static/vendor/htmx.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
}

#[tokio::test]
async fn scans_survive_a_restart_and_unfinished_ones_resume() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.add_known_file(FileFixture::new(&malware()).detections(9, 0, 61, 0));
    vt.set_analysis_timeline(0, 60, 0);
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::app::test_config(&vt, dir.path());

    let mut first = TestApp::start_config(config.clone());
    let done = scan_location(&post_upload(&first, &malware(), "a.exe", None, None).await);
    wait_until_final(&first, &done).await;
    let pending = scan_location(
        &post_upload(&first, b"still analysing", "b.bin", Some("upload"), None).await,
    );
    wait_for_status(&first, &pending, "running").await;
    // Stopped while analysing, not while uploading.
    vt.wait_for_calls("GET", "/analyses/", 1, "never started analysing")
        .await;
    first.stop();
    // A crash can leave a half-spooled upload behind.
    std::fs::write(
        dir.path().join("uploads").join("upload-leftover"),
        b"partial",
    )
    .unwrap();

    let calls_before = vt.requests().len();
    let second = TestApp::start_config(config);
    let (status, page) = get_page(&second, &done).await;
    assert_eq!(status, 200);
    assert_eq!(status_attr(&page, "data-malicious").as_deref(), Some("9"));
    assert_eq!(
        spooled_files(&second),
        0,
        "leftover uploads are removed at start"
    );

    let resumed = wait_until_final(&second, &pending).await;
    assert_eq!(
        status_attr(&resumed, "data-status").as_deref(),
        Some("completed")
    );
    assert_eq!(vt.uploads().len(), 1, "the file is not uploaded twice");
    // The resumed scan only follows its analysis, then fetches the report.
    let after: Vec<_> = vt.requests()[calls_before..].to_vec();
    assert!(
        after
            .iter()
            .all(|r| r.method == "GET" && r.path.starts_with("/api/v3/")),
        "{after:?}"
    );
    let (report, polls): (Vec<_>, Vec<_>) = after
        .iter()
        .partition(|r| r.path.starts_with("/api/v3/files/"));
    assert!(!polls.is_empty());
    assert!(
        polls
            .iter()
            .all(|r| r.path.starts_with("/api/v3/analyses/"))
    );
    assert_eq!(report.len(), 1, "{after:?}");
}

async fn wait_for_status(app: &TestApp, location: &str, wanted: &str) {
    for _ in 0..200 {
        let (_, page) = get_page(app, location).await;
        if status_attr(&page, "data-status").as_deref() == Some(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("scan never reached {wanted}");
}

#[tokio::test]
async fn one_client_cannot_start_scans_without_limit() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start_with(&vt, |c| c.scan_rate_limit_per_minute = 4).await;
    let search = |forwarded: Option<&'static str>| {
        let mut request = client()
            .get(app.at("/search"))
            .query(&[("q", "ab".repeat(16))]);
        if let Some(address) = forwarded {
            request = request.header("x-forwarded-for", address);
        }
        request.send()
    };

    assert_eq!(search(None).await.unwrap().status(), 303);
    let limited = search(None).await.unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15).contains(&wait), "{wait}");
    let page = scraper::Html::parse_document(&limited.text().await.unwrap());
    assert_eq!(text_of(&page, "h1").as_deref(), Some("Too many requests"));
    // Inventing a forwarding address does not help a client that is not a proxy.
    assert_eq!(search(Some("198.51.100.1")).await.unwrap().status(), 429);
    // Reading pages is not held back by the limit on new scans.
    assert_eq!(
        client().get(app.at("/")).send().await.unwrap().status(),
        200
    );
    assert_eq!(vt.requests().len(), 1);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start_with(&vt, |c| {
        c.scan_rate_limit_per_minute = 4;
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
    })
    .await;
    let search = |forwarded: &'static str| {
        client()
            .get(app.at("/search"))
            .query(&[("q", "cd".repeat(16))])
            .header("x-forwarded-for", forwarded)
            .send()
    };

    assert_eq!(search("198.51.100.1").await.unwrap().status(), 303);
    assert_eq!(search("198.51.100.1").await.unwrap().status(), 429);
    assert_eq!(search("198.51.100.2").await.unwrap().status(), 303);
    // A client cannot pose as another by putting a fake entry in front.
    assert_eq!(
        search("198.51.100.2, 198.51.100.1").await.unwrap().status(),
        429
    );
}

/// `not_found` is final, so a full scan must never show it on its way to an
/// upload: a page polled in that moment would stop polling and never show the
/// verdict. This follows several full scans as closely as the app answers.
#[tokio::test]
async fn a_full_scan_is_never_shown_as_not_found_before_its_upload() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 1, 1);
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();
    let http = client();

    let mut wrong = Vec::new();
    for i in 0..5 {
        let content = format!("a file VirusTotal does not know, number {i}");
        let scan = browser
            .upload(&app, content.as_bytes(), "unknown.bin", "upload")
            .await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut states: Vec<String> = Vec::new();
        // As fast as the app answers: the wrong state lasts about one store write.
        loop {
            let fragment = http
                .get(app.at(&format!("{scan}/status")))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let state = fragment
                .split_once("data-status=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(state, _)| state.to_owned())
                .unwrap_or_default();
            if states.last() != Some(&state) {
                states.push(state.clone());
            }
            if state == "completed" || state == "failed" {
                break;
            }
            assert!(Instant::now() < deadline, "scan stuck: {states:?}");
        }
        if states.iter().any(|s| s == "not_found") {
            wrong.push(states);
        }
    }
    assert!(
        wrong.is_empty(),
        "full scans showed a final not_found before their upload: {wrong:?}"
    );
}
