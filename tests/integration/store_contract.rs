//! The storage contract of `ScanStore`, checked against both backends: each
//! check is written once against `&dyn ScanStore`, and `contract!` runs it on a
//! fresh embedded store and on a fresh Redis store (`embedded::*`, `redis::*`).
//! Checks only Redis can fail (sharing between instances, a lost server, the
//! key layout) follow, in `redis_only`.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use file_scanner::scan::{Mode, Report, Scan, ScanState, StoredSummary, Subject, unix_now};
use file_scanner::store::{CachedReport, EmbeddedStore, RedisStore, ScanStore};
use file_scanner::virustotal::types::FileInfo;
use uuid::Uuid;

use crate::support::redis_server::RedisServer;

/// A store under test, with whatever must live as long as it does.
struct Fixture {
    store: Arc<dyn ScanStore>,
    _keep: Box<dyn Any>,
}

fn embedded_store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("scans.redb")).unwrap();
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

async fn redis_store() -> Fixture {
    let server = RedisServer::start();
    // A random prefix, so every check also exercises the prefixing.
    let store = RedisStore::connect(&server.url(), &random_prefix())
        .await
        .unwrap();
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(server),
    }
}

fn random_prefix() -> String {
    format!("test-{}:", Uuid::new_v4().simple())
}

/// Runs each listed check as `embedded::<check>` and `redis::<check>`.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $check() {
                    let fixture = super::embedded_store();
                    super::$check(&*fixture.store).await;
                }
            )*
        }

        mod redis {
            $(
                #[tokio::test]
                async fn $check() {
                    let fixture = super::redis_store().await;
                    super::$check(&*fixture.store).await;
                }
            )*
        }
    };
}

contract!(
    saves_and_loads_a_scan,
    lists_exactly_the_unfinished_scans,
    lists_an_owners_history_newest_first,
    deletes_a_scan_and_its_index_entries,
    updates_only_a_scan_that_still_exists,
    sets_a_summary_and_keeps_the_rest_as_stored,
    clears_one_owners_history,
    finds_a_cached_report_by_any_hash_in_any_case,
    forgets_a_report_fetched_longer_than_its_ttl_ago,
    forgets_a_report_once_its_ttl_passes,
    a_lease_is_exclusive_renewable_and_expires,
    only_the_holder_releases_a_lease,
    the_quota_window_admits_limit_calls_then_says_how_long_to_wait,
);

// --- helpers ---

fn hex(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

/// A queued lookup scan of a random hash.
fn lookup(owner: Option<&str>) -> Scan {
    Scan::new(
        Mode::Lookup,
        Subject::Hash { hash: hex(64) },
        owner.map(str::to_owned),
    )
}

fn scan_created_at(owner: Option<&str>, created_at: i64) -> Scan {
    let mut scan = lookup(owner);
    scan.created_at = created_at;
    scan.created_at_ms = Some(created_at * 1000);
    scan.updated_at = created_at;
    scan
}

fn ids(scans: &[Scan]) -> Vec<Uuid> {
    scans.iter().map(|s| s.id).collect()
}

fn json(scan: &Scan) -> serde_json::Value {
    serde_json::to_value(scan).unwrap()
}

async fn unfinished_set(store: &dyn ScanStore) -> BTreeSet<Uuid> {
    store.unfinished().await.unwrap().into_iter().collect()
}

/// A report with random lower-case hashes, fetched at `fetched_at`.
fn report_entry(fetched_at: i64) -> CachedReport {
    let info = FileInfo {
        sha256: Some(hex(64)),
        sha1: Some(hex(40)),
        md5: Some(hex(32)),
        size: Some(42),
    };
    CachedReport {
        report: Report::from_analysis(&info, ""),
        fetched_at,
    }
}

/// The report's SHA-256, MD5 and SHA-1.
fn hashes(entry: &CachedReport) -> [String; 3] {
    let r = &entry.report;
    [
        r.sha256.clone(),
        r.md5.clone().unwrap(),
        r.sha1.clone().unwrap(),
    ]
}

// --- the checks, shared by both backends ---

async fn saves_and_loads_a_scan(store: &dyn ScanStore) {
    store.check().await.unwrap();
    let mut scan = lookup(Some("alice"));
    store.save(&scan).await.unwrap();
    let loaded = store.load(scan.id).await.unwrap().expect("saved scan");
    assert_eq!(json(&loaded), json(&scan));

    scan.state = ScanState::Completed;
    scan.updated_at += 5;
    store.save(&scan).await.unwrap();
    let loaded = store.load(scan.id).await.unwrap().expect("saved scan");
    assert_eq!(json(&loaded), json(&scan), "saving again replaces the scan");

    let ownerless = lookup(None);
    store.save(&ownerless).await.unwrap();
    let loaded = store
        .load(ownerless.id)
        .await
        .unwrap()
        .expect("owner-less scan");
    assert_eq!(json(&loaded), json(&ownerless));

    assert!(store.load(Uuid::new_v4()).await.unwrap().is_none());
}

async fn lists_exactly_the_unfinished_scans(store: &dyn ScanStore) {
    assert!(store.unfinished().await.unwrap().is_empty());
    let mut queued = lookup(Some("alice"));
    let mut done = lookup(Some("alice"));
    done.state = ScanState::Completed;
    let other = lookup(None);
    for scan in [&queued, &done, &other] {
        store.save(scan).await.unwrap();
    }
    assert_eq!(
        unfinished_set(store).await,
        BTreeSet::from([queued.id, other.id])
    );

    queued.state = ScanState::Completed;
    store.save(&queued).await.unwrap();
    assert_eq!(unfinished_set(store).await, BTreeSet::from([other.id]));

    // A final scan going back to work (a re-analysis, say) is listed again.
    done.state = ScanState::Queued;
    store.save(&done).await.unwrap();
    assert_eq!(
        unfinished_set(store).await,
        BTreeSet::from([other.id, done.id])
    );
}

async fn lists_an_owners_history_newest_first(store: &dyn ScanStore) {
    let oldest = scan_created_at(Some("alice"), 1_000);
    let newest = scan_created_at(Some("alice"), 3_000);
    let middle = scan_created_at(Some("alice"), 2_000);
    let bobs = scan_created_at(Some("bob"), 2_500);
    let nobodys = scan_created_at(None, 4_000);
    for scan in [&oldest, &newest, &middle, &bobs, &nobodys] {
        store.save(scan).await.unwrap();
    }

    let history = store.history("alice", 10).await.unwrap();
    assert_eq!(ids(&history), [newest.id, middle.id, oldest.id]);
    assert_eq!(json(&history[0]), json(&newest));
    let history = store.history("alice", 2).await.unwrap();
    assert_eq!(ids(&history), [newest.id, middle.id], "limited");
    assert_eq!(ids(&store.history("bob", 10).await.unwrap()), [bobs.id]);
    assert!(store.history("carol", 10).await.unwrap().is_empty());
    assert!(
        store.history("", 10).await.unwrap().is_empty(),
        "owner-less scans are nobody's"
    );

    // Within one second, by the millisecond; records from before milliseconds
    // were kept sort by their second.
    let mut early = scan_created_at(Some("carol"), 5_000);
    early.created_at_ms = Some(5_000_100);
    let mut late = scan_created_at(Some("carol"), 5_000);
    late.created_at_ms = Some(5_000_900);
    let mut legacy = scan_created_at(Some("carol"), 4_999);
    legacy.created_at_ms = None;
    for scan in [&late, &legacy, &early] {
        store.save(scan).await.unwrap();
    }
    assert_eq!(
        ids(&store.history("carol", 10).await.unwrap()),
        [late.id, early.id, legacy.id]
    );
    assert!(store.delete(legacy.id).await.unwrap());
    assert_eq!(
        ids(&store.history("carol", 10).await.unwrap()),
        [late.id, early.id]
    );

    // Saving a scan again (its state moves on) does not list it twice.
    let mut newest = newest;
    newest.state = ScanState::Completed;
    store.save(&newest).await.unwrap();
    let history = store.history("alice", 10).await.unwrap();
    assert_eq!(ids(&history), [newest.id, middle.id, oldest.id]);
    assert_eq!(history[0].state, ScanState::Completed);
}

async fn deletes_a_scan_and_its_index_entries(store: &dyn ScanStore) {
    let scan = lookup(Some("alice"));
    let kept = lookup(Some("alice"));
    store.save(&scan).await.unwrap();
    store.save(&kept).await.unwrap();

    assert!(store.delete(scan.id).await.unwrap());
    assert!(store.load(scan.id).await.unwrap().is_none());
    assert_eq!(ids(&store.history("alice", 10).await.unwrap()), [kept.id]);
    assert_eq!(unfinished_set(store).await, BTreeSet::from([kept.id]));
    assert!(!store.delete(scan.id).await.unwrap(), "second delete");
    assert!(
        !store.delete(Uuid::new_v4()).await.unwrap(),
        "never existed"
    );

    let ownerless = lookup(None);
    store.save(&ownerless).await.unwrap();
    assert!(store.delete(ownerless.id).await.unwrap());
    assert!(store.load(ownerless.id).await.unwrap().is_none());
    assert_eq!(unfinished_set(store).await, BTreeSet::from([kept.id]));
}

async fn updates_only_a_scan_that_still_exists(store: &dyn ScanStore) {
    let mut scan = lookup(Some("alice"));
    assert!(!store.update(&scan).await.unwrap(), "never saved");
    assert!(store.load(scan.id).await.unwrap().is_none());
    assert!(store.history("alice", 10).await.unwrap().is_empty());

    store.save(&scan).await.unwrap();
    scan.state = ScanState::Completed;
    assert!(store.update(&scan).await.unwrap());
    assert_eq!(
        json(&store.load(scan.id).await.unwrap().unwrap()),
        json(&scan)
    );
    assert!(
        unfinished_set(store).await.is_empty(),
        "a final update leaves the unfinished set"
    );

    let mut stale = scan.clone();
    stale.state = ScanState::Uploading;
    assert!(
        !store.update(&stale).await.unwrap(),
        "a finished scan is not changed by a job"
    );
    stale.state = ScanState::Completed;
    assert!(!store.update(&stale).await.unwrap());
    assert_eq!(
        json(&store.load(scan.id).await.unwrap().unwrap()),
        json(&scan)
    );
    assert!(unfinished_set(store).await.is_empty());

    store.delete(scan.id).await.unwrap();
    assert!(
        !store.update(&scan).await.unwrap(),
        "a deleted scan stays deleted"
    );
    assert!(store.load(scan.id).await.unwrap().is_none());
    assert!(store.history("alice", 10).await.unwrap().is_empty());
}

async fn sets_a_summary_and_keeps_the_rest_as_stored(store: &dyn ScanStore) {
    let summary = StoredSummary {
        text: "Plain words.".to_owned(),
        author: "built-in".to_owned(),
        written_at: 1_700_000_000,
    };
    let mut scan = lookup(Some("alice"));
    assert!(!store.set_summary(scan.id, &summary).await.unwrap());
    assert!(
        store.load(scan.id).await.unwrap().is_none(),
        "nothing created"
    );

    scan.state = ScanState::Completed;
    store.save(&scan).await.unwrap();
    assert!(store.set_summary(scan.id, &summary).await.unwrap());
    let stored = store.load(scan.id).await.unwrap().unwrap();
    assert_eq!(stored.summary.as_ref(), Some(&summary));
    scan.summary = Some(summary);
    assert_eq!(json(&stored), json(&scan), "nothing else changed");
    assert_eq!(ids(&store.history("alice", 10).await.unwrap()), [scan.id]);
}

async fn clears_one_owners_history(store: &dyn ScanStore) {
    let alice_queued = scan_created_at(Some("alice"), 1_000);
    let mut alice_done = scan_created_at(Some("alice"), 2_000);
    alice_done.state = ScanState::Completed;
    let bobs = scan_created_at(Some("bob"), 1_500);
    let nobodys = lookup(None);
    for scan in [&alice_queued, &alice_done, &bobs, &nobodys] {
        store.save(scan).await.unwrap();
    }

    assert_eq!(store.clear_history("alice").await.unwrap(), 2);
    assert!(store.history("alice", 10).await.unwrap().is_empty());
    assert!(store.load(alice_queued.id).await.unwrap().is_none());
    assert!(store.load(alice_done.id).await.unwrap().is_none());
    assert_eq!(
        unfinished_set(store).await,
        BTreeSet::from([bobs.id, nobodys.id])
    );
    assert_eq!(ids(&store.history("bob", 10).await.unwrap()), [bobs.id]);
    assert!(store.load(bobs.id).await.unwrap().is_some());
    assert!(store.load(nobodys.id).await.unwrap().is_some());

    assert_eq!(
        store.clear_history("alice").await.unwrap(),
        0,
        "already empty"
    );
    assert_eq!(
        store.clear_history("carol").await.unwrap(),
        0,
        "never had any"
    );
}

async fn finds_a_cached_report_by_any_hash_in_any_case(store: &dyn ScanStore) {
    let entry = report_entry(unix_now());
    store
        .cache_report(&entry, Duration::from_secs(3600))
        .await
        .unwrap();
    for hash in hashes(&entry) {
        for query in [hash.clone(), hash.to_ascii_uppercase()] {
            let found = store
                .cached_report(&query)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no report for {query}"));
            assert_eq!(found.report.sha256, entry.report.sha256);
            assert_eq!(found.fetched_at, entry.fetched_at);
        }
    }
    assert!(store.cached_report(&hex(64)).await.unwrap().is_none());
    assert!(store.cached_report(&hex(32)).await.unwrap().is_none());

    // Hashes stored in upper case are found too.
    let mut shouting = report_entry(unix_now());
    let lower = hashes(&shouting);
    let report = &mut shouting.report;
    report.sha256 = report.sha256.to_ascii_uppercase();
    report.md5 = report.md5.as_deref().map(str::to_ascii_uppercase);
    report.sha1 = report.sha1.as_deref().map(str::to_ascii_uppercase);
    store
        .cache_report(&shouting, Duration::from_secs(3600))
        .await
        .unwrap();
    for hash in lower {
        assert!(
            store.cached_report(&hash).await.unwrap().is_some(),
            "{hash}"
        );
    }
}

async fn forgets_a_report_fetched_longer_than_its_ttl_ago(store: &dyn ScanStore) {
    let hour = Duration::from_secs(3600);
    let stale = report_entry(unix_now() - 7200);
    store.cache_report(&stale, hour).await.unwrap();
    for hash in hashes(&stale) {
        assert!(
            store.cached_report(&hash).await.unwrap().is_none(),
            "{hash}"
        );
    }

    // The time-to-live counts from fetched_at, not from when it was stored.
    let recent = report_entry(unix_now() - 600);
    store.cache_report(&recent, hour).await.unwrap();
    for hash in hashes(&recent) {
        assert!(
            store.cached_report(&hash).await.unwrap().is_some(),
            "{hash}"
        );
    }
}

async fn forgets_a_report_once_its_ttl_passes(store: &dyn ScanStore) {
    let entry = report_entry(unix_now());
    store
        .cache_report(&entry, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for hash in hashes(&entry) {
        assert!(
            store.cached_report(&hash).await.unwrap().is_none(),
            "{hash}"
        );
    }
}

async fn a_lease_is_exclusive_renewable_and_expires(store: &dyn ScanStore) {
    // Margins of 600 ms, so a busy machine oversleeping does not matter.
    let ttl = Duration::from_millis(1500);
    assert!(store.acquire_lease("scan-1", "a", ttl).await.unwrap());
    assert!(
        !store.acquire_lease("scan-1", "b", ttl).await.unwrap(),
        "exclusive"
    );
    assert!(
        store.acquire_lease("scan-2", "b", ttl).await.unwrap(),
        "per key"
    );

    // Renewed after 900 ms, the lease outlives its first 1500 ms.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        store.acquire_lease("scan-1", "a", ttl).await.unwrap(),
        "renewal"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        !store.acquire_lease("scan-1", "b", ttl).await.unwrap(),
        "renewed"
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        store.acquire_lease("scan-1", "b", ttl).await.unwrap(),
        "expired"
    );
    assert!(
        !store.acquire_lease("scan-1", "a", ttl).await.unwrap(),
        "b's now"
    );
}

async fn only_the_holder_releases_a_lease(store: &dyn ScanStore) {
    let ttl = Duration::from_secs(30);
    assert!(store.acquire_lease("scan", "a", ttl).await.unwrap());
    store.release_lease("scan", "b").await.unwrap();
    assert!(
        !store.acquire_lease("scan", "b", ttl).await.unwrap(),
        "b cannot release a's"
    );
    store.release_lease("scan", "a").await.unwrap();
    assert!(
        store.acquire_lease("scan", "b", ttl).await.unwrap(),
        "released"
    );
    store.release_lease("nothing-held", "a").await.unwrap();
}

async fn the_quota_window_admits_limit_calls_then_says_how_long_to_wait(store: &dyn ScanStore) {
    let window = Duration::from_secs(1);
    for call in 0..3 {
        assert_eq!(
            store.take_quota_slot(3, window).await.unwrap(),
            None,
            "call {call}"
        );
    }
    let wait = store
        .take_quota_slot(3, window)
        .await
        .unwrap()
        .expect("the fourth call must wait");
    assert!(wait > Duration::ZERO && wait <= window, "{wait:?}");
    // A refused call is not recorded: asking again gives no later answer.
    let again = store
        .take_quota_slot(3, window)
        .await
        .unwrap()
        .expect("still full");
    assert!(again <= wait, "{again:?} > {wait:?}");

    tokio::time::sleep(again + Duration::from_millis(30)).await;
    assert_eq!(
        store.take_quota_slot(3, window).await.unwrap(),
        None,
        "after waiting"
    );
}

// --- checks only the Redis backend can fail ---

mod redis_only {
    use super::*;

    async fn raw(server: &RedisServer) -> ::redis::aio::MultiplexedConnection {
        let client = ::redis::Client::open(server.url()).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }

    #[tokio::test]
    async fn two_instances_share_the_quota_and_leases() {
        let server = RedisServer::start();
        let prefix = random_prefix();
        let one = RedisStore::connect(&server.url(), &prefix).await.unwrap();
        let two = RedisStore::connect(&server.url(), &prefix).await.unwrap();

        let window = Duration::from_secs(10);
        assert_eq!(one.take_quota_slot(3, window).await.unwrap(), None);
        assert_eq!(two.take_quota_slot(3, window).await.unwrap(), None);
        assert_eq!(one.take_quota_slot(3, window).await.unwrap(), None);
        assert!(
            two.take_quota_slot(3, window).await.unwrap().is_some(),
            "shared limit"
        );

        let ttl = Duration::from_secs(30);
        assert!(one.acquire_lease("scan", "instance-1", ttl).await.unwrap());
        assert!(!two.acquire_lease("scan", "instance-2", ttl).await.unwrap());
        two.release_lease("scan", "instance-2").await.unwrap();
        assert!(!two.acquire_lease("scan", "instance-2", ttl).await.unwrap());
        one.release_lease("scan", "instance-1").await.unwrap();
        assert!(two.acquire_lease("scan", "instance-2", ttl).await.unwrap());

        let scan = lookup(Some("alice"));
        one.save(&scan).await.unwrap();
        assert!(two.load(scan.id).await.unwrap().is_some(), "shared scans");
    }

    #[tokio::test]
    async fn a_lost_server_fails_calls_within_seconds() {
        let mut server = RedisServer::start();
        let store = RedisStore::connect(&server.url(), &random_prefix())
            .await
            .unwrap();
        let scan = lookup(Some("alice"));
        store.save(&scan).await.unwrap();
        server.kill();

        // The first call sees the dropped connection; later ones wait for the
        // reconnection attempts, which must give up soon.
        for attempt in 0..3 {
            let started = Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(15), store.load(scan.id))
                .await
                .unwrap_or_else(|_| panic!("call {attempt} hung"));
            assert!(result.is_err(), "call {attempt} succeeded without a server");
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(5),
                "call {attempt} took {took:?}"
            );
        }
        let started = Instant::now();
        assert!(store.check().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn calls_work_again_once_the_server_is_back() {
        let mut server = RedisServer::start();
        let store = RedisStore::connect(&server.url(), &random_prefix())
            .await
            .unwrap();
        store.check().await.unwrap();
        server.kill();
        assert!(store.check().await.is_err());
        server.restart();

        // The connection manager reconnects by itself; allow it a few tries.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.check().await.is_err() {
            assert!(Instant::now() < deadline, "no reconnection");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let scan = lookup(Some("alice"));
        store.save(&scan).await.unwrap();
        assert!(store.load(scan.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn connecting_to_no_server_fails() {
        let server = RedisServer::start();
        let url = server.url();
        drop(server);
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(15),
            RedisStore::connect(&url, "scanner:"),
        )
        .await
        .expect("connect hung");
        assert!(result.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(RedisStore::connect("not a url", "scanner:").await.is_err());
    }

    #[tokio::test]
    async fn every_key_carries_the_prefix_and_prefixes_keep_apps_apart() {
        let server = RedisServer::start();
        let a = RedisStore::connect(&server.url(), "app-a:").await.unwrap();
        let b = RedisStore::connect(&server.url(), "app-b:").await.unwrap();

        let scan = lookup(Some("alice"));
        a.save(&scan).await.unwrap();
        let entry = report_entry(unix_now());
        a.cache_report(&entry, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            a.acquire_lease("scan", "a", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert_eq!(
            a.take_quota_slot(1, Duration::from_secs(60)).await.unwrap(),
            None
        );

        assert!(b.load(scan.id).await.unwrap().is_none());
        assert!(b.unfinished().await.unwrap().is_empty());
        assert!(b.history("alice", 10).await.unwrap().is_empty());
        assert!(
            b.cached_report(&entry.report.sha256)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            b.acquire_lease("scan", "b", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert_eq!(
            b.take_quota_slot(1, Duration::from_secs(60)).await.unwrap(),
            None
        );

        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut raw(&server).await)
            .await
            .unwrap();
        assert!(!keys.is_empty());
        for key in &keys {
            assert!(
                key.starts_with("app-a:") || key.starts_with("app-b:"),
                "{key}"
            );
        }
        let sha256 = &entry.report.sha256;
        for expected in [
            format!("app-a:scan:{}", scan.id),
            "app-a:unfinished".to_owned(),
            "app-a:history:alice".to_owned(),
            format!("app-a:report:{sha256}"),
            format!(
                "app-a:report-alias:{}",
                entry.report.md5.as_deref().unwrap()
            ),
            format!(
                "app-a:report-alias:{}",
                entry.report.sha1.as_deref().unwrap()
            ),
            "app-a:lease:scan".to_owned(),
            "app-a:quota".to_owned(),
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
    }

    #[tokio::test]
    async fn report_keys_expire_at_fetched_at_plus_ttl() {
        let server = RedisServer::start();
        let store = RedisStore::connect(&server.url(), "p:").await.unwrap();
        let entry = report_entry(unix_now() - 3000);
        store
            .cache_report(&entry, Duration::from_secs(3600))
            .await
            .unwrap();
        let mut conn = raw(&server).await;
        let [sha256, md5, sha1] = hashes(&entry);
        for key in [
            format!("p:report:{sha256}"),
            format!("p:report-alias:{md5}"),
            format!("p:report-alias:{sha1}"),
        ] {
            let ttl: i64 = ::redis::cmd("TTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!((590..=600).contains(&ttl), "{key} expires in {ttl} s");
        }
    }

    #[tokio::test]
    async fn history_skips_and_drops_entries_whose_scan_is_gone() {
        let server = RedisServer::start();
        let store = RedisStore::connect(&server.url(), "p:").await.unwrap();
        let oldest = scan_created_at(Some("alice"), 1_000);
        let middle = scan_created_at(Some("alice"), 2_000);
        let newest = scan_created_at(Some("alice"), 3_000);
        for scan in [&oldest, &middle, &newest] {
            store.save(scan).await.unwrap();
        }
        let mut conn = raw(&server).await;
        let _: () = ::redis::cmd("DEL")
            .arg(format!("p:scan:{}", newest.id))
            .arg(format!("p:scan:{}", middle.id))
            .query_async(&mut conn)
            .await
            .unwrap();

        // The limit counts scans found, not entries listed.
        assert_eq!(ids(&store.history("alice", 1).await.unwrap()), [oldest.id]);
        let left: usize = ::redis::cmd("ZCARD")
            .arg("p:history:alice")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 1, "dangling entries are removed");
    }
}
