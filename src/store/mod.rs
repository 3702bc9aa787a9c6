//! Where scans are kept: one interface, with an embedded on-disk backend as the
//! default so the app runs with no other server.

mod embedded;

use async_trait::async_trait;
use uuid::Uuid;

use crate::scan::Scan;

pub use embedded::EmbeddedStore;

/// A storage failure. The cause is logged where it is handled; pages stay generic.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("embedded store: {0}")]
    Embedded(#[from] redb::Error),
    #[error("stored record is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The storage interface every backend implements.
#[async_trait]
pub trait ScanStore: Send + Sync + 'static {
    /// Inserts or replaces a scan.
    async fn save(&self, scan: &Scan) -> Result<(), StoreError>;

    /// A scan by id, if it exists.
    async fn load(&self, id: Uuid) -> Result<Option<Scan>, StoreError>;

    /// Every scan that is not final yet, for resuming after a restart.
    async fn unfinished(&self) -> Result<Vec<Scan>, StoreError>;

    /// Succeeds when the store can serve requests.
    async fn check(&self) -> Result<(), StoreError>;
}
