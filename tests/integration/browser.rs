//! Real-browser tests: the journeys walked in Debian's headless Chromium,
//! with JavaScript on (htmx polling and the SSE summary) and off (the
//! `<noscript>` fallbacks), keyboard use, the live region, the console, and
//! zero axe-core violations (WCAG 2.x A and AA) on every page.
//!
//! Each test starts the app against the fake VirusTotal (and the fake LLM where
//! it matters) and its own chromedriver and browser (`support/chrome.rs`).
//! The two ignored tests at the end pin app bugs these tests found; each says
//! what is wrong and where the fix goes.

use std::time::{Duration, Instant};

use file_scanner::config::{Config, Secret};
use serde_json::json;

use crate::support::app::{TestApp, VT_KEY, count, get_page, status_attr};
use crate::support::chrome::{Chrome, Js, describe_violations};
use crate::support::fake_llm::FakeLlm;
use crate::support::fake_vt::{Failure, FakeVirusTotal, FileFixture, KnownHashes, Route};
use fantoccini::key::Key;

/// Long enough for any wait on a page: htmx polls every 2 s.
const WAIT: Duration = Duration::from_secs(20);

const FINAL: &str =
    "#scan-status:is([data-status=completed],[data-status=not_found],[data-status=failed])";

const LLM_KEY: &str = "sk-test-not-a-real-key-0123456789";
const MODEL: &str = "tiny-test-model";

fn dangerous() -> Vec<u8> {
    b"MZ a file the browser tests upload".to_vec()
}

/// A fake VirusTotal that knows `dangerous()` as widely detected.
async fn known_file_world() -> (FakeVirusTotal, KnownHashes) {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let known = vt.add_known_file(
        FileFixture::new(&dangerous())
            .detections(60, 2, 8, 0)
            .names(&["invoice.exe", "setup.exe"])
            .threat_label("trojan.agent/x"),
    );
    (vt, known)
}

fn with_llm(config: &mut Config, llm: &FakeLlm) {
    config.openai_base_url = Some(llm.base_url());
    config.openai_api_key = Some(Secret::new(LLM_KEY));
    config.openai_model = Some(MODEL.to_owned());
    config.llm_timeout = Duration::from_secs(5);
}

/// A file on disk for the browser's file input (which takes a path).
fn file_to_upload(content: &[u8], name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

/// Fills the home page's form as a person would and submits it; returns the
/// scan page's path, where the browser lands.
async fn upload_through_form(chrome: &Chrome, app: &TestApp, path: &str, mode: &str) -> String {
    chrome.open(&app.at("/")).await;
    // A file input takes the file's path as typed keys (chromedriver's way).
    chrome.element("#file").await.send_keys(path).await.unwrap();
    chrome
        .element(&format!("#mode-{mode}"))
        .await
        .click()
        .await
        .unwrap();
    chrome
        .element("form[action='/scans'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    // The post and its redirect may still be under way when the click returns.
    chrome
        .wait_for_path(WAIT, "the scan page", |p| {
            p.starts_with("/scans/") && !p.contains('?')
        })
        .await
}

/// How many engine rows the server renders for the scan now (all of them).
async fn engine_rows_served(app: &TestApp, scan: &str) -> usize {
    let (_, page) = get_page(app, scan).await;
    let rows = count(&page, "#engines tbody tr");
    assert!(rows > 0, "the server's page has no engines");
    rows
}

/// Fetches the scan page (over plain HTTP) until the scan is completed.
async fn wait_until_completed(app: &TestApp, scan: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, page) = get_page(app, scan).await;
        let status = status_attr(&page, "data-status").unwrap_or_default();
        if status == "completed" {
            return;
        }
        assert!(Instant::now() < deadline, "scan stuck in {status}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Whether the scan shown is still in progress.
async fn shows_in_progress(chrome: &Chrome) -> bool {
    let status = chrome.attr("#scan-status", "data-status").await;
    matches!(status.as_deref(), Some("queued" | "running"))
}

/// Leaves a mark in the page's window, which only a reload would remove.
async fn mark_page(chrome: &Chrome) {
    chrome.eval("window.__stillTheSamePage = true;").await;
}

async fn page_was_not_reloaded(chrome: &Chrome) -> bool {
    chrome
        .eval("return window.__stillTheSamePage === true;")
        .await
        == json!(true)
}

/// Runs axe-core on the page shown and files its violations under `name`.
async fn check_page(
    chrome: &Chrome,
    name: &str,
    found: &mut Vec<(String, Vec<crate::support::chrome::Violation>)>,
) {
    let violations = chrome.axe().await;
    if !violations.is_empty() {
        found.push((name.to_owned(), violations));
    }
}

#[tokio::test]
async fn every_page_has_no_axe_violations() {
    let (vt, known) = known_file_world().await;
    // The upload stays in analysis for the whole test, for a running page.
    vt.set_analysis_timeline(0, 0, 100_000);
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::On).await;
    let mut found = Vec::new();

    chrome.open(&app.at("/history")).await;
    chrome.wait_for("#history-empty", WAIT).await;
    check_page(&chrome, "empty history", &mut found).await;

    chrome.open(&app.at("/")).await;
    check_page(&chrome, "home", &mut found).await;
    // The helper must see a violation when there is one, or zero proves nothing.
    chrome
        .eval("document.documentElement.removeAttribute('lang');")
        .await;
    let seen: Vec<String> = chrome.axe().await.into_iter().map(|v| v.id).collect();
    assert!(
        seen.iter().any(|id| id == "html-has-lang"),
        "axe-core missed a page without a language: {seen:?}"
    );

    chrome.open(&app.at("/search?q=nope")).await;
    chrome.wait_for("#q-error", WAIT).await;
    check_page(&chrome, "home with a search error", &mut found).await;

    // One refusal VirusTotal does not retry: the next lookup fails for good.
    vt.inject(Route::FileReport, Failure::Error(403, "ForbiddenError"), 1);
    chrome
        .open(&app.at(&format!("/search?q={}", "ab".repeat(32))))
        .await;
    chrome
        .wait_for("#scan-status[data-status=failed]", WAIT)
        .await;
    check_page(&chrome, "failed scan", &mut found).await;

    chrome
        .open(&app.at(&format!("/search?q={}", "cd".repeat(32))))
        .await;
    chrome
        .wait_for("#scan-status[data-status=not_found]", WAIT)
        .await;
    check_page(&chrome, "not-found scan", &mut found).await;

    chrome
        .open(&app.at(&format!("/search?q={}", known.sha256)))
        .await;
    chrome
        .wait_for("#scan-status[data-status=completed]", WAIT)
        .await;
    chrome.wait_for("table.engines", WAIT).await;
    chrome
        .wait_for("#summary-status .summary-author", WAIT)
        .await;
    check_page(&chrome, "completed scan with its summary", &mut found).await;

    let (_dir, file) = file_to_upload(b"a file VirusTotal has not seen", "new.bin");
    upload_through_form(&chrome, &app, &file, "upload").await;
    chrome
        .wait_for("#scan-status[data-status=running]", WAIT)
        .await;
    check_page(&chrome, "running scan", &mut found).await;

    chrome.open(&app.at("/history")).await;
    chrome.wait_for("#history tbody tr", WAIT).await;
    assert_eq!(chrome.count("#history tbody tr").await, 4);
    check_page(&chrome, "history with rows", &mut found).await;

    chrome.open(&app.at("/history/clear")).await;
    chrome.wait_for("form[action='/history/clear']", WAIT).await;
    check_page(&chrome, "confirming that all scans go", &mut found).await;

    chrome
        .open(&app.at("/scans/6b1c6f5e-3f7a-4c2e-9d7e-1a2b3c4d5e6f"))
        .await;
    check_page(&chrome, "unknown scan (404)", &mut found).await;

    chrome.open(&app.at("/no/such/page")).await;
    check_page(&chrome, "404 page", &mut found).await;

    chrome.quit().await;
    assert!(
        found.is_empty(),
        "axe-core found WCAG A/AA violations:{}",
        describe_violations(&found)
    );
}

#[tokio::test]
async fn with_javascript_the_scan_page_follows_the_analysis_in_place() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    // Three seconds or more of analysis at the test's 40 ms polls: the page is
    // still in progress when it loads, then htmx has to bring the verdict.
    vt.set_analysis_timeline(0, 40, 40);
    vt.set_upload_outcome(FileFixture::new(b"").detections(3, 1, 66, 0));
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::On).await;
    let (_dir, file) = file_to_upload(b"#!/bin/sh\necho brand new\n", "new-script.sh");

    let scan = upload_through_form(&chrome, &app, &file, "upload").await;
    assert!(
        shows_in_progress(&chrome).await,
        "the scan should still be in progress when its page first loads"
    );
    assert_eq!(chrome.count("#engines").await, 0);
    mark_page(&chrome).await;

    chrome
        .wait_for("#scan-live > #scan-status[data-status=completed]", WAIT)
        .await;
    assert!(
        page_was_not_reloaded(&chrome).await,
        "the verdict must arrive without a reload"
    );
    assert_eq!(chrome.path().await, scan);
    assert_eq!(
        chrome
            .attr("#scan-status", "data-malicious")
            .await
            .as_deref(),
        Some("3")
    );
    let verdict = chrome.text("#scan-status").await;
    assert!(verdict.contains("4 of 70 engines"), "{verdict}");
    // The report arrives in the same response, swapped out of band.
    chrome
        .wait_for("#scan-report table#engines tbody tr", WAIT)
        .await;
    assert_eq!(
        chrome.count("#scan-report table#engines tbody tr").await,
        engine_rows_served(&app, &scan).await
    );

    // The summary area came with the report, and htmx's SSE extension fills it.
    let author = chrome
        .wait_for_text("#summary-status", WAIT, "who wrote the summary", |t| {
            t.contains("Written by")
        })
        .await;
    assert!(
        author.contains("Written by this server's built-in explainer"),
        "{author}"
    );
    let summary = chrome.text("#summary").await;
    assert!(!summary.is_empty(), "the summary streamed in empty");
    assert!(page_was_not_reloaded(&chrome).await);
    assert_eq!(vt.uploads().len(), 1, "the file was uploaded once");

    chrome.quit().await;
}

#[tokio::test]
async fn with_javascript_a_language_model_summary_streams_in_as_it_is_written() {
    let (vt, _) = known_file_world().await;
    let llm = FakeLlm::start(Some(LLM_KEY)).await;
    llm.set_reply(
        &[
            "Most engines ",
            "flag this file ",
            "as a trojan. ",
            "Do not open it.",
        ],
        Duration::from_millis(600),
    );
    let app = TestApp::start_with(&vt, |c| with_llm(c, &llm)).await;
    let chrome = Chrome::start(Js::On).await;
    let (_dir, file) = file_to_upload(&dangerous(), "invoice.exe");

    upload_through_form(&chrome, &app, &file, "lookup").await;
    chrome
        .wait_for("#scan-status[data-status=completed]", WAIT)
        .await;
    assert_eq!(
        chrome
            .attr("#scan-status", "data-malicious")
            .await
            .as_deref(),
        Some("60")
    );

    // Part of the text shows while the model is still writing the rest.
    let partial = chrome
        .wait_for_text("#summary", WAIT, "the first words", |t| {
            t.contains("Most engines")
        })
        .await;
    assert!(
        !partial.contains("Do not open it."),
        "the whole summary arrived at once ({partial:?}): it should stream"
    );
    // The start event's emptying of the summary area was swapped out of band,
    // not shown as a second summary in the status line.
    assert_eq!(chrome.count("#summary-status #summary").await, 0);
    assert_eq!(chrome.count("#summary").await, 1);
    let author = chrome
        .wait_for_text("#summary-status", WAIT, "who wrote the summary", |t| {
            t.contains("Written by")
        })
        .await;
    assert!(
        author.contains(&format!("Written by the language model {MODEL}")),
        "{author}"
    );
    assert_eq!(
        chrome.text("#summary").await,
        "Most engines flag this file as a trojan. Do not open it."
    );
    assert_eq!(llm.request_count(), 1);

    chrome.quit().await;
}

#[tokio::test]
async fn without_javascript_the_journey_works_by_page_loads_only() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    // A few seconds in the queue: time to look at the page while it waits.
    vt.set_analysis_timeline(0, 80, 0);
    vt.set_upload_outcome(FileFixture::new(b"").detections(2, 0, 68, 0));
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::Off).await;
    let (_dir, file) = file_to_upload(b"a document made today", "report.docx");

    let scan = upload_through_form(&chrome, &app, &file, "upload").await;
    assert!(shows_in_progress(&chrome).await);
    // With scripts off, the browser renders what `<noscript>` holds.
    let check_again = format!("a[href='{scan}']");
    assert_eq!(chrome.text(&check_again).await, "Check again");
    assert_eq!(chrome.count("meta[http-equiv=refresh]").await, 0);

    // Automatic refresh only when asked, and it can be stopped.
    chrome
        .element(&format!("a[href='{scan}?refresh=5']"))
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(chrome.path().await, format!("{scan}?refresh=5"));
    assert_eq!(
        chrome.count("meta[http-equiv=refresh][content='5']").await,
        1
    );
    let stop = format!("a[href='{scan}']:not(.button)");
    assert_eq!(chrome.text(&stop).await, "Stop refreshing");
    chrome.element(&stop).await.click().await.unwrap();
    assert_eq!(chrome.path().await, scan);
    assert_eq!(chrome.count("meta[http-equiv=refresh]").await, 0);

    // The scan finishes on the server; this page stays as it was.
    wait_until_completed(&app, &scan).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        shows_in_progress(&chrome).await,
        "without JavaScript the page must not change by itself"
    );

    // "Check again" until the verdict is in.
    for _ in 0..20 {
        if chrome.count(FINAL).await > 0 {
            break;
        }
        chrome.element(&check_again).await.click().await.unwrap();
    }
    assert_eq!(
        chrome.attr("#scan-status", "data-status").await.as_deref(),
        Some("completed")
    );
    assert_eq!(
        chrome.count("#engines tbody tr").await,
        engine_rows_served(&app, &scan).await
    );
    assert_eq!(
        chrome.count(&check_again).await,
        0,
        "no more checking once final"
    );

    // The summary: a button, a full page load, the text on the page.
    assert_eq!(chrome.text("#summary").await, "");
    chrome
        .element("form[action$='/summary'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(chrome.path().await, scan);
    let summary = chrome.text("#summary").await;
    assert!(!summary.is_empty(), "no summary after the button");
    let author = chrome.text("#summary-status .summary-author").await;
    assert!(
        author.contains("Written by this server's built-in explainer"),
        "{author}"
    );

    // Deleting it: a link to a confirmation, then the button there.
    chrome
        .element(".delete-form a")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(chrome.path().await, format!("{scan}/delete"));
    chrome
        .element("form[action$='/delete'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(chrome.path().await, "/history");
    assert_eq!(chrome.count("#history-empty").await, 1);

    chrome.quit().await;
}

#[tokio::test]
async fn the_upload_form_works_from_the_keyboard_with_visible_focus() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::On).await;
    chrome.open(&app.at("/")).await;

    // Tab from the top of the page until the mode choice, noting where focus goes.
    let mut order = Vec::new();
    while order.last().map(String::as_str) != Some("#mode-lookup") {
        assert!(
            order.len() < 12,
            "Tab never reached the mode choice; it went {order:?}"
        );
        chrome.press(Key::Tab).await;
        order.push(focus_visibly_on(&chrome).await);
    }
    assert!(
        order.iter().any(|id| id == "#file"),
        "Tab should reach the file input before the mode choice; it went {order:?}"
    );

    // A radio group is one tab stop; arrow keys move within it, choosing as they go.
    chrome.press(Key::Down).await;
    assert_eq!(focus_visibly_on(&chrome).await, "#mode-upload");
    assert_eq!(
        chrome
            .eval("return document.getElementById('mode-upload').checked;")
            .await,
        json!(true)
    );
    chrome.press(Key::Tab).await;
    assert_eq!(focus_visibly_on(&chrome).await, "#password");
    chrome.press(Key::Tab).await;
    assert_eq!(
        focus_visibly_on(&chrome).await,
        "button[type=submit] in /scans"
    );

    chrome.quit().await;
}

/// Describes the focused element, after checking that its focus is drawn.
async fn focus_visibly_on(chrome: &Chrome) -> String {
    let focused = chrome
        .eval(
            "const e = document.activeElement; const s = getComputedStyle(e);
             const name = e.id ? '#' + e.id
                 : e.tagName.toLowerCase() + (e.type ? '[type=' + e.type + ']' : '')
                   + (e.form ? ' in ' + e.form.getAttribute('action') : '')
                   + (e.getAttribute('href') ? ' ' + e.getAttribute('href') : '');
             // The light outline and the dark ring around it, for contrast on any background.
             const drawn = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
                 && s.boxShadow !== 'none';
             return { name, visible: e.matches(':focus-visible') && drawn };",
        )
        .await;
    let name = focused["name"].as_str().unwrap().to_owned();
    assert_eq!(
        focused["visible"],
        json!(true),
        "focus on {name} is not visible"
    );
    name
}

#[tokio::test]
async fn a_scan_deleted_while_its_page_is_open_says_so_and_stops_polling() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 100_000, 0);
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::On).await;
    let (_dir, file) = file_to_upload(b"deleted from elsewhere", "gone.bin");

    let scan = upload_through_form(&chrome, &app, &file, "upload").await;
    chrome
        .wait_for("#scan-status[data-status=running]", WAIT)
        .await;
    // Deleted from another tab of the same browser.
    let deleted = chrome
        .eval(&format!(
            "const request = new XMLHttpRequest();
             request.open('POST', '{scan}/delete', false);
             request.send();
             return request.status;"
        ))
        .await;
    // The 303 is followed to the history.
    assert_eq!(deleted, json!(200));

    let notice = chrome
        .wait_for_text(".notice-error", WAIT, "the deletion notice", |t| {
            t.contains("no scan at this address")
        })
        .await;
    assert!(
        notice.contains("There is no scan at this address"),
        "{notice}"
    );
    assert_eq!(chrome.count("#scan-poller").await, 0, "polling stopped");

    chrome.quit().await;
}

#[tokio::test]
async fn scan_status_changes_happen_inside_a_live_region() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    // An analysis that stays in progress until the test ends it.
    vt.set_analysis_timeline(0, 100_000, 0);
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::On).await;
    let (_dir, file) = file_to_upload(b"something to follow", "follow.bin");

    upload_through_form(&chrome, &app, &file, "upload").await;
    assert_eq!(
        chrome.attr("#scan-live", "role").await.as_deref(),
        Some("status")
    );
    assert_eq!(chrome.computed_role("#scan-live").await, "status");
    // Status changes are swapped in inside the region, so they are announced.
    assert_eq!(chrome.count("#scan-live > #scan-status").await, 1);

    // While the status stays the same, polls leave the region alone: a screen
    // reader would read out every rewrite.
    chrome
        .wait_for_text("#scan-live", WAIT, "the analysis", |t| {
            t.contains("analysing")
        })
        .await;
    chrome
        .eval(
            "window.liveRewrites = 0;
             new MutationObserver(() => window.liveRewrites++)
                 .observe(document.getElementById('scan-live'),
                          { childList: true, subtree: true, characterData: true });
             return true;",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(
        chrome.eval("return window.liveRewrites;").await,
        json!(0),
        "the unchanged status was swapped in again"
    );

    vt.finish_pending_analyses();
    chrome
        .wait_for("#scan-live > #scan-status[data-status=completed]", WAIT)
        .await;
    assert_eq!(chrome.computed_role("#scan-live").await, "status");
    assert_eq!(chrome.count("#scan-poller").await, 0, "polling stopped");
    chrome
        .wait_for_text("#summary-status", WAIT, "who wrote the summary", |t| {
            t.contains("Written by")
        })
        .await;
    assert_eq!(chrome.computed_role("#summary-status").await, "status");

    chrome.quit().await;
}

#[tokio::test]
async fn the_scan_page_runs_without_console_errors_or_csp_violations() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 25, 0);
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::On).await;
    let (_dir, file) = file_to_upload(b"watch the console", "console.bin");

    upload_through_form(&chrome, &app, &file, "upload").await;
    // Scripts from our own origin loaded under the strict CSP.
    assert_eq!(chrome.eval("return typeof htmx;").await, json!("object"));
    let version = chrome.eval("return htmx.version;").await;
    assert!(
        version.as_str().is_some_and(|v| v.starts_with("2.")),
        "htmx {version}"
    );
    chrome
        .wait_for("#scan-status[data-status=completed]", WAIT)
        .await;
    // Only the SSE extension can put the streamed text there.
    chrome
        .wait_for_text("#summary-status", WAIT, "who wrote the summary", |t| {
            t.contains("Written by")
        })
        .await;
    assert!(!chrome.text("#summary").await.is_empty());

    let log = chrome.browser_log().await;
    let problems: Vec<String> = log
        .iter()
        .filter(|e| e.level == "SEVERE" || e.message.contains("Content Security Policy"))
        .map(|e| format!("{} {}", e.level, e.message))
        .collect();
    assert!(
        problems.is_empty(),
        "the console reported:\n{}",
        problems.join("\n")
    );
    // The log must show a violation when there is one, or an empty one proves nothing.
    chrome
        .eval(
            "const s = document.createElement('script'); s.textContent = 'void 0';
             document.head.appendChild(s);",
        )
        .await;
    let log = chrome.browser_log().await;
    assert!(
        log.iter()
            .any(|e| e.message.contains("Content Security Policy")),
        "an inline script was not reported as blocked: {log:?}"
    );

    chrome.quit().await;
}

#[tokio::test]
async fn pages_load_without_a_missing_icon() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;
    let chrome = Chrome::start(Js::On).await;

    chrome.open(&app.at("/")).await;
    // Chromium asks for an icon once the page has loaded; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let errors: Vec<String> = chrome
        .browser_log()
        .await
        .into_iter()
        .filter(|e| e.level == "SEVERE")
        .map(|e| e.message)
        .collect();
    assert!(
        errors.is_empty(),
        "the console reported:\n{}",
        errors.join("\n")
    );

    chrome.quit().await;
}
