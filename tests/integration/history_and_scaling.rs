//! Private history, the report cache, reanalysis, durable scans shared by
//! several instances, and the VirusTotal request quota.

use std::time::{Duration, Instant};

use file_scanner::config::{Config, Secret};

use crate::support::app::{
    Browser, TestApp, VT_KEY, count, spooled_files, status_attr, test_config, text_of,
    wait_until_final,
};
use crate::support::fake_vt::{Failure, FakeVirusTotal, FileFixture, Route};
use crate::support::redis_server::RedisServer;

fn sample(n: u8) -> Vec<u8> {
    format!("sample file number {n}").into_bytes()
}

/// Settings for an instance sharing `redis` with others under one key prefix.
fn on_redis(config: &mut Config, redis: &RedisServer, prefix: &str) {
    config.redis_url = Some(Secret::new(redis.url()));
    config.redis_key_prefix = prefix.to_owned();
    config.lease_ttl = Duration::from_millis(600);
    config.worker_interval = Duration::from_millis(100);
}

fn history_names(page: &scraper::Html) -> Vec<String> {
    let selector = scraper::Selector::parse("#history tbody .history-name").unwrap();
    page.select(&selector)
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .collect()
}

#[tokio::test]
async fn each_browser_sees_only_its_own_scans_newest_first() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;
    let alice = Browser::new();
    let bob = Browser::new();

    let first = alice.upload(&app, &sample(1), "first.exe", "lookup").await;
    // Within the same second, most likely: the order still holds.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = alice.upload(&app, &sample(2), "second.exe", "lookup").await;
    let bobs = bob.upload(&app, &sample(3), "bobs.exe", "lookup").await;
    wait_until_final(&app, &second).await;
    wait_until_final(&app, &bobs).await;

    let (status, page) = alice.page(&app, "/history").await;
    assert_eq!(status, 200);
    assert_eq!(history_names(&page), ["second.exe", "first.exe"]);
    assert!(text_of(&page, "#history").unwrap().contains("Hash lookup"));
    let (_, page) = bob.page(&app, "/history").await;
    assert_eq!(history_names(&page), ["bobs.exe"]);

    // A shared link still opens for others, who cannot delete it.
    let (status, page) = bob.page(&app, &first).await;
    assert_eq!(status, 200);
    assert_eq!(count(&page, ".delete-form"), 0);
    assert_eq!(bob.page(&app, &format!("{first}/delete")).await.0, 404);
    let json = bob
        .get(&app, &format!("{first}.json"))
        .await
        .text()
        .await
        .unwrap();
    let owner = alice
        .cookie()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        !json.contains(&owner),
        "the owner's browser id never leaves through a link"
    );
    let refused = bob.post(&app, &format!("{first}/delete")).await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        alice.page(&app, &first).await.0,
        200,
        "still there for its owner"
    );
    let (_, page) = alice.page(&app, &first).await;
    assert_eq!(
        count(&page, &format!(".delete-form a[href='{first}/delete']")),
        1
    );
}

#[tokio::test]
async fn the_browser_cookie_is_private_and_lax() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let app = TestApp::start(&vt).await;

    let response = crate::support::app::client()
        .get(app.at("/"))
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("browser_id="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP cannot carry a Secure cookie: {cookie}"
    );

    // Only a trusted proxy can say the browser came over HTTPS.
    let claims_tls = |app: &TestApp| {
        crate::support::app::client()
            .get(app.at("/"))
            .header("x-forwarded-proto", "https")
            .send()
    };
    let from_anyone = claims_tls(&app).await.unwrap();
    assert!(
        !from_anyone.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure"),
        "X-Forwarded-Proto from a client is not believed"
    );
    let behind_proxy = TestApp::start_with(&vt, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let behind_tls = claims_tls(&behind_proxy).await.unwrap();
    assert!(
        behind_tls.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );

    let browser = Browser::new();
    browser.get(&app, "/").await;
    let again = browser.get(&app, "/history").await;
    assert!(
        again.headers().get("set-cookie").is_none(),
        "a known browser keeps its id"
    );
}

#[tokio::test]
async fn history_reopens_scans_from_storage_and_deletes_them() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.add_known_file(FileFixture::new(&sample(1)).detections(12, 0, 58, 0));
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();
    let one = browser.upload(&app, &sample(1), "one.exe", "lookup").await;
    let two = browser.upload(&app, &sample(2), "two.exe", "lookup").await;
    wait_until_final(&app, &one).await;
    wait_until_final(&app, &two).await;
    let calls = vt.requests().len();

    let (_, history) = browser.page(&app, "/history").await;
    assert!(
        text_of(&history, "#history")
            .unwrap()
            .contains("Malicious: 12 of 70")
    );
    let (status, page) = browser.page(&app, &one).await;
    assert_eq!(status, 200);
    assert_eq!(status_attr(&page, "data-malicious").as_deref(), Some("12"));
    assert_eq!(
        vt.requests().len(),
        calls,
        "reopening costs VirusTotal nothing"
    );

    // Deleting takes a second step, which can be turned back.
    let (status, confirm) = browser.page(&app, &format!("{one}/delete")).await;
    assert_eq!(status, 200);
    assert!(text_of(&confirm, "main").unwrap().contains("one.exe"));
    assert_eq!(
        count(
            &confirm,
            &format!("form[method=post][action='{one}/delete'] button")
        ),
        1
    );
    assert_eq!(
        count(&confirm, &format!("a[href='{one}']")),
        1,
        "a way to keep it"
    );
    assert_eq!(
        browser.page(&app, &one).await.0,
        200,
        "asking deletes nothing"
    );
    let deleted = browser.post(&app, &format!("{one}/delete")).await;
    assert_eq!(deleted.status(), 303);
    assert_eq!(deleted.headers()["location"], "/history");
    assert_eq!(browser.page(&app, &one).await.0, 404);
    let (_, history) = browser.page(&app, "/history").await;
    assert_eq!(history_names(&history), ["two.exe"]);

    let (status, confirm) = browser.page(&app, "/history/clear").await;
    assert_eq!(status, 200);
    assert!(text_of(&confirm, "main").unwrap().contains("Your one scan"));
    assert_eq!(
        count(
            &confirm,
            "form[method=post][action='/history/clear'] button"
        ),
        1
    );
    let (_, history) = browser.page(&app, "/history").await;
    assert_eq!(
        history_names(&history),
        ["two.exe"],
        "asking deletes nothing"
    );
    let cleared = browser.post(&app, "/history/clear").await;
    assert_eq!(cleared.status(), 303);
    let (_, history) = browser.page(&app, "/history").await;
    assert!(history_names(&history).is_empty());
    assert!(text_of(&history, "#history-empty").is_some());
    assert_eq!(browser.page(&app, &two).await.0, 404);
    let nothing_left = browser.get(&app, "/history/clear").await;
    assert_eq!(nothing_left.status(), 303, "nothing to confirm");
}

#[tokio::test]
async fn five_lookups_of_one_known_file_cost_one_virustotal_call() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let known = vt.add_known_file(FileFixture::new(&sample(7)).detections(3, 0, 67, 0));
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();

    // Two of the same file at once, then three more by file and by hash.
    let content = sample(7);
    let (a, b) = tokio::join!(
        browser.upload(&app, &content, "a.exe", "lookup"),
        browser.upload(&app, &content, "b.exe", "upload"),
    );
    let mut pages = vec![
        wait_until_final(&app, &a).await,
        wait_until_final(&app, &b).await,
    ];
    for scan in [
        browser.search(&app, &known.md5).await,
        browser.search(&app, &known.sha256.to_uppercase()).await,
        browser.upload(&app, &content, "c.exe", "lookup").await,
    ] {
        pages.push(wait_until_final(&app, &scan).await);
    }
    for page in &pages {
        assert_eq!(status_attr(page, "data-malicious").as_deref(), Some("3"));
        assert!(
            text_of(page, "#report-age")
                .unwrap()
                .contains("VirusTotal last analysed")
        );
    }

    assert_eq!(vt.requests().len(), 1, "{:?}", vt.requests());
    assert!(vt.uploads().is_empty());
}

#[tokio::test]
async fn the_cache_expires_after_its_time_to_live() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.add_known_file(FileFixture::new(&sample(8)).detections(1, 0, 69, 0));
    let app = TestApp::start_with(&vt, |c| c.vt_cache_ttl = Duration::from_secs(1)).await;
    let browser = Browser::new();

    wait_until_final(&app, &browser.upload(&app, &sample(8), "a", "lookup").await).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    wait_until_final(&app, &browser.upload(&app, &sample(8), "a", "lookup").await).await;

    assert_eq!(vt.count("GET", "/files/"), 2);
}

#[tokio::test]
async fn reanalyse_asks_virustotal_again_and_follows_the_analysis() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let known = vt.add_known_file(FileFixture::new(&sample(9)).detections(2, 0, 68, 0));
    vt.set_analysis_timeline(0, 1, 1);
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();
    let first = browser.upload(&app, &sample(9), "old.exe", "lookup").await;
    let page = wait_until_final(&app, &first).await;
    assert_eq!(
        count(&page, &format!("form[action='{first}/reanalyse'] button")),
        1
    );

    let response = browser.post(&app, &format!("{first}/reanalyse")).await;
    assert_eq!(response.status(), 303);
    let second = response.headers()["location"].to_str().unwrap().to_owned();
    assert_ne!(second, first);
    let page = wait_until_final(&app, &second).await;

    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed")
    );
    assert!(text_of(&page, ".scan-meta").unwrap().contains("Reanalysis"));
    assert_eq!(
        vt.count("POST", &format!("/files/{}/analyse", known.sha256)),
        1
    );
    assert!(vt.count("GET", "/analyses/") >= 3);
    let (_, history) = browser.page(&app, "/history").await;
    assert!(
        text_of(&history, "#history")
            .unwrap()
            .contains("Reanalysis")
    );
}

/// Settings for a quota of 3 calls in any `window`, kept by the app and enforced by `vt`.
fn quota_of_three(vt: &FakeVirusTotal, window: Duration) -> impl Fn(&mut Config) {
    vt.set_per_minute_quota(Some(3));
    vt.set_quota_window(window);
    move |c: &mut Config| {
        c.vt_requests_per_minute = 3;
        c.vt_quota_window = window;
    }
}

/// Starts eight hash lookups at once, spread over `apps`, and checks that all
/// finish while VirusTotal never saw more than 3 calls in one `window`.
async fn burst_of_eight_stays_within_the_quota(
    vt: &FakeVirusTotal,
    apps: &[&TestApp],
    window: Duration,
) {
    let browser = Browser::new();
    let mut scans = Vec::new();
    for n in 0..8u8 {
        let app = apps[usize::from(n) % apps.len()];
        scans.push((app, browser.search(app, &format!("{n:0>64}")).await));
    }
    let mut saw_waiting = false;
    for (app, scan) in &scans {
        let (_, page) = browser.page(app, scan).await;
        saw_waiting |= text_of(&page, "#scan-status")
            .unwrap()
            .contains("Waiting for VirusTotal quota");
    }
    for (app, scan) in &scans {
        let page = wait_until_final(app, scan).await;
        assert_eq!(
            status_attr(&page, "data-status").as_deref(),
            Some("not_found")
        );
    }

    assert!(saw_waiting, "the page says the scan waits for quota");
    assert_eq!(vt.quota_rejections(), 0, "no 429 from VirusTotal");
    let times: Vec<Instant> = vt.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 8);
    for (i, t) in times.iter().enumerate().skip(3) {
        assert!(
            t.duration_since(times[i - 3]) >= window,
            "more than 3 calls in one window"
        );
    }
}

#[tokio::test]
async fn a_burst_above_the_quota_waits_its_turn_instead_of_failing() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let window = Duration::from_secs(1);
    let app = TestApp::start_with(&vt, quota_of_three(&vt, window)).await;
    burst_of_eight_stays_within_the_quota(&vt, &[&app], window).await;
}

#[tokio::test]
async fn instances_sharing_redis_share_one_quota() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let window = Duration::from_secs(1);
    let redis = RedisServer::start();
    let quota = quota_of_three(&vt, window);
    let settings = |c: &mut Config| {
        quota(c);
        on_redis(c, &redis, "quota:");
    };
    let first = TestApp::start_with(&vt, settings).await;
    let second = TestApp::start_with(&vt, settings).await;
    burst_of_eight_stays_within_the_quota(&vt, &[&first, &second], window).await;
}

#[tokio::test]
async fn a_429_on_a_poll_is_retried() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 1, 1);
    vt.inject(
        Route::Analysis,
        Failure::Error(429, "QuotaExceededError"),
        2,
    );
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();

    let scan = browser.upload(&app, &sample(4), "x.bin", "upload").await;
    let page = wait_until_final(&app, &scan).await;

    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed")
    );
    assert!(vt.quota_rejections() >= 2);
}

#[tokio::test]
async fn an_exhausted_daily_quota_fails_with_when_to_retry() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_daily_quota(Some(0));
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();

    let page = wait_until_final(&app, &browser.upload(&app, &sample(5), "a", "lookup").await).await;

    assert_eq!(status_attr(&page, "data-status").as_deref(), Some("failed"));
    let text = text_of(&page, "#scan-status").unwrap();
    assert!(text.contains("used up its VirusTotal quota"), "{text}");
    assert!(text.contains("resets at 00:00 UTC. That is in "), "{text}");
    assert!(vt.quota_rejections() > 0, "VirusTotal did refuse");
}

#[tokio::test]
async fn an_embedded_store_keeps_history_across_a_restart() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&vt, dir.path());
    let browser = Browser::new();

    let mut first = TestApp::start_config(config.clone());
    let scan = browser
        .upload(&first, &sample(6), "kept.exe", "lookup")
        .await;
    wait_until_final(&first, &scan).await;
    first.stop();

    let second = TestApp::start_config(config);
    let (_, history) = browser.page(&second, "/history").await;
    assert_eq!(history_names(&history), ["kept.exe"]);
}

#[tokio::test]
async fn a_second_instance_on_the_same_redis_serves_the_first_ones_scans() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.add_known_file(FileFixture::new(&sample(1)).detections(6, 0, 64, 0));
    let redis = RedisServer::start();
    let first = TestApp::start_with(&vt, |c| on_redis(c, &redis, "shared:")).await;
    let second = TestApp::start_with(&vt, |c| on_redis(c, &redis, "shared:")).await;
    let browser = Browser::new();

    let scan = browser
        .upload(&first, &sample(1), "one.exe", "lookup")
        .await;
    wait_until_final(&first, &scan).await;

    let page = wait_until_final(&second, &scan).await;
    assert_eq!(status_attr(&page, "data-malicious").as_deref(), Some("6"));
    let (_, history) = browser.page(&second, "/history").await;
    assert_eq!(history_names(&history), ["one.exe"]);
    // The second instance reuses the report the first one cached.
    wait_until_final(
        &second,
        &browser.upload(&second, &sample(1), "again", "lookup").await,
    )
    .await;
    assert_eq!(vt.requests().len(), 1);
}

#[tokio::test]
async fn a_scan_survives_the_instance_that_was_analysing_it() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 25, 5);
    let redis = RedisServer::start();
    let mut doomed = TestApp::start_with(&vt, |c| on_redis(c, &redis, "failover:")).await;
    let survivor = TestApp::start_with(&vt, |c| on_redis(c, &redis, "failover:")).await;
    let browser = Browser::new();

    let scan = browser
        .upload(&doomed, &sample(2), "big.bin", "upload")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = browser.page(&doomed, &scan).await;
        if status_attr(&page, "data-status").as_deref() == Some("running")
            && vt.count("GET", "/analyses/") > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "never started analysing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.stop();
    let polls_before = vt.count("GET", "/analyses/");

    let page = wait_until_final(&survivor, &scan).await;
    assert_eq!(
        status_attr(&page, "data-status").as_deref(),
        Some("completed")
    );
    assert!(
        vt.count("GET", "/analyses/") > polls_before,
        "the survivor followed the analysis"
    );
    assert_eq!(vt.uploads().len(), 1, "the file was not uploaded again");
}

#[tokio::test]
async fn two_instances_never_poll_the_same_analysis() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    // Sixty polls at 40 ms: the lease (600 ms) is renewed several times.
    vt.set_analysis_timeline(0, 60, 0);
    let redis = RedisServer::start();
    let first = TestApp::start_with(&vt, |c| on_redis(c, &redis, "single:")).await;
    let _second = TestApp::start_with(&vt, |c| on_redis(c, &redis, "single:")).await;
    let browser = Browser::new();

    let scan = browser.upload(&first, &sample(3), "c.bin", "upload").await;
    wait_until_final(&first, &scan).await;

    // 60 queued polls and the completing one, each made once.
    assert_eq!(vt.count("GET", "/analyses/"), 61);
}

#[tokio::test]
async fn the_worker_never_adopts_a_scan_its_own_instance_is_starting() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 1, 0);
    // A worker that looks for unfinished scans all the time, to meet every
    // scan in the moment between being stored and its job starting.
    let app = TestApp::start_with(&vt, |c| c.worker_interval = Duration::from_millis(1)).await;
    let browser = Browser::new();
    let mut scans = Vec::new();
    for n in 0..40u8 {
        scans.push(browser.upload(&app, &sample(n), "r.bin", "upload").await);
    }
    for scan in &scans {
        let page = wait_until_final(&app, scan).await;
        assert_eq!(
            status_attr(&page, "data-status").as_deref(),
            Some("completed"),
            "{}",
            text_of(&page, "#scan-status").unwrap_or_default()
        );
    }
    // One lookup before each upload and one report after its analysis.
    assert_eq!(vt.count("GET", "/files/"), 2 * scans.len());
    assert_eq!(vt.uploads().len(), scans.len());
}

#[tokio::test]
async fn a_redis_deployment_keeps_history_across_restarts() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config: Config = test_config(&vt, dir.path());
    on_redis(&mut config, &redis, "restart:");
    let browser = Browser::new();

    let mut first = TestApp::start_config(config.clone());
    let scan = browser.upload(&first, &sample(4), "r.exe", "lookup").await;
    wait_until_final(&first, &scan).await;
    first.stop();

    let second = TestApp::start_config(config);
    let (_, history) = browser.page(&second, "/history").await;
    assert_eq!(history_names(&history), ["r.exe"]);
    assert!(
        !dir.path().join("data").join("scans.redb").exists(),
        "Redis, not the embedded store"
    );
}

#[tokio::test]
async fn deleting_a_running_scan_stops_it_for_good() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.set_analysis_timeline(0, 200, 0);
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();

    let scan = browser.upload(&app, &sample(5), "gone.bin", "upload").await;
    vt.wait_for_calls("GET", "/analyses/", 1, "never started analysing")
        .await;
    assert_eq!(
        browser.post(&app, &format!("{scan}/delete")).await.status(),
        303
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let polls = vt.count("GET", "/analyses/");
    tokio::time::sleep(Duration::from_millis(400)).await;

    assert_eq!(
        vt.count("GET", "/analyses/"),
        polls,
        "no more polls for a deleted scan"
    );
    assert_eq!(
        browser.page(&app, &scan).await.0,
        404,
        "the job did not bring it back"
    );
    let (_, history) = browser.page(&app, "/history").await;
    assert!(history_names(&history).is_empty());
}

#[tokio::test]
async fn a_full_scan_deleted_before_its_upload_sends_nothing() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    // The lookup before the upload takes a while, then fails and is retried.
    vt.inject(
        Route::FileReport,
        Failure::Hang(Duration::from_millis(800)),
        1,
    );
    let app = TestApp::start(&vt).await;
    let browser = Browser::new();

    let scan = browser
        .upload(&app, &sample(6), "private.doc", "upload")
        .await;
    vt.wait_for_calls("GET", "/files/", 1, "never looked the file up")
        .await;
    assert_eq!(
        browser.post(&app, &format!("{scan}/delete")).await.status(),
        303
    );
    vt.wait_for_calls("GET", "/files/", 2, "the lookup was not retried")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert!(
        vt.uploads().is_empty(),
        "a deleted scan's file was uploaded"
    );
    assert_eq!(spooled_files(&app), 0, "its file was not kept either");
    assert_eq!(browser.page(&app, &scan).await.0, 404);
}

#[tokio::test]
async fn an_upload_cut_off_by_a_crash_fails_with_a_clear_reason() {
    let vt = FakeVirusTotal::start(VT_KEY).await;
    vt.inject(
        Route::UploadDirect,
        Failure::Hang(Duration::from_secs(30)),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&vt, dir.path());
    let browser = Browser::new();

    let mut crashed = TestApp::start_config(config.clone());
    let scan = browser
        .upload(&crashed, &sample(9), "cut.bin", "upload")
        .await;
    vt.wait_for_calls("POST", "/files", 1, "the upload never started")
        .await;
    crashed.stop();

    let restarted = TestApp::start_config(config);
    let page = wait_until_final(&restarted, &scan).await;
    assert_eq!(status_attr(&page, "data-status").as_deref(), Some("failed"));
    let text = text_of(&page, "#scan-status").unwrap();
    assert!(
        text.contains("The upload was interrupted") && text.contains("upload it again"),
        "{text}"
    );
    assert!(vt.uploads().is_empty());
}
