//! Where scans are kept: one interface, two backends. The embedded on-disk
//! store is the default, so the app runs with no other server; Redis is the
//! scale-out path, shared by many app instances.

mod embedded;
mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::scan::{Report, Scan, StoredSummary};

pub use embedded::EmbeddedStore;
pub use memory::QuotaWindow;
pub use redis::RedisStore;

/// A storage failure. The cause is logged where it is handled; pages stay generic.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("embedded store: {0}")]
    Embedded(#[from] redb::Error),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("stored record is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the record kept changing while it was being written")]
    Contended,
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A VirusTotal report kept for reuse, with when it was fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedReport {
    pub report: Report,
    /// Unix seconds.
    pub fetched_at: i64,
}

/// The storage interface every backend implements, and the shared test suite
/// (`tests/integration/store_contract.rs`) checks.
#[async_trait]
pub trait ScanStore: Send + Sync + 'static {
    /// Inserts or replaces a scan, keeping the indexes in step: the owner's
    /// history lists it, and the unfinished set holds it until it is final.
    async fn save(&self, scan: &Scan) -> Result<(), StoreError>;

    /// Stores a job's progress: like `save`, but only while the stored scan
    /// exists and is unfinished, so a job can neither bring back a scan its
    /// owner deleted nor change one that has ended (as a job that lost its
    /// claim might try). False if nothing was written.
    async fn update(&self, scan: &Scan) -> Result<bool, StoreError>;

    /// Sets the summary of a stored scan, leaving the rest as it is stored.
    /// False if the scan does not exist.
    async fn set_summary(&self, id: Uuid, summary: &StoredSummary) -> Result<bool, StoreError>;

    /// A scan by id, if it exists.
    async fn load(&self, id: Uuid) -> Result<Option<Scan>, StoreError>;

    /// Removes a scan and every index entry of it. False if it did not exist.
    async fn delete(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Ids of every scan that is not final yet.
    async fn unfinished(&self) -> Result<Vec<Uuid>, StoreError>;

    /// An owner's scans, newest first, at most `limit`.
    async fn history(&self, owner: &str, limit: usize) -> Result<Vec<Scan>, StoreError>;

    /// Removes all of an owner's scans; returns how many there were.
    async fn clear_history(&self, owner: &str) -> Result<usize, StoreError>;

    /// A report fetched less than its time-to-live ago, by MD5, SHA-1 or SHA-256.
    async fn cached_report(&self, hash: &str) -> Result<Option<CachedReport>, StoreError>;

    /// Keeps a report for `ttl`, findable by each of its hashes.
    async fn cache_report(&self, entry: &CachedReport, ttl: Duration) -> Result<(), StoreError>;

    /// Takes or renews the lease named `key` for `holder`. True if `holder`
    /// holds it now; false if someone else does and it has not expired.
    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives a lease up, if `holder` still holds it.
    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError>;

    /// Records one VirusTotal call if fewer than `limit` were recorded in the
    /// last `window`; otherwise records nothing and says how long to wait.
    async fn take_quota_slot(
        &self,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, StoreError>;

    /// Succeeds when the store can serve requests.
    async fn check(&self) -> Result<(), StoreError>;
}
