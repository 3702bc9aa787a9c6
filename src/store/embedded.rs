//! The embedded backend: a redb database file under `DATA_DIR`.
//!
//! redb is synchronous, so every call runs on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use uuid::Uuid;

use super::{ScanStore, StoreError};
use crate::scan::Scan;

/// Scan id -> the scan as JSON.
const SCANS: TableDefinition<&str, &[u8]> = TableDefinition::new("scans");
/// Ids of scans that are not final yet -> the time they were last saved.
const UNFINISHED: TableDefinition<&str, i64> = TableDefinition::new("unfinished");

/// Scans in a single database file.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(redb::Error::from)?;
        let txn = db.begin_write().map_err(redb::Error::from)?;
        txn.open_table(SCANS).map_err(redb::Error::from)?;
        txn.open_table(UNFINISHED).map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;
        Ok(Self { db: Arc::new(db) })
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db)).await?
    }
}

#[async_trait]
impl ScanStore for EmbeddedStore {
    async fn save(&self, scan: &Scan) -> Result<(), StoreError> {
        let key = scan.id.to_string();
        let json = serde_json::to_vec(scan)?;
        let finished = scan.state.is_final();
        let updated_at = scan.updated_at;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(redb::Error::from)?;
            {
                let mut scans = txn.open_table(SCANS).map_err(redb::Error::from)?;
                scans
                    .insert(key.as_str(), json.as_slice())
                    .map_err(redb::Error::from)?;
                let mut unfinished = txn.open_table(UNFINISHED).map_err(redb::Error::from)?;
                if finished {
                    unfinished.remove(key.as_str()).map_err(redb::Error::from)?;
                } else {
                    unfinished
                        .insert(key.as_str(), updated_at)
                        .map_err(redb::Error::from)?;
                }
            }
            txn.commit().map_err(redb::Error::from)?;
            Ok(())
        })
        .await
    }

    async fn load(&self, id: Uuid) -> Result<Option<Scan>, StoreError> {
        let key = id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let scans = txn.open_table(SCANS).map_err(redb::Error::from)?;
            let Some(json) = scans.get(key.as_str()).map_err(redb::Error::from)? else {
                return Ok(None);
            };
            Ok(Some(serde_json::from_slice(json.value())?))
        })
        .await
    }

    async fn unfinished(&self) -> Result<Vec<Scan>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            let unfinished = txn.open_table(UNFINISHED).map_err(redb::Error::from)?;
            let scans = txn.open_table(SCANS).map_err(redb::Error::from)?;
            let mut found = Vec::new();
            for entry in unfinished.iter().map_err(redb::Error::from)? {
                let (key, _) = entry.map_err(redb::Error::from)?;
                if let Some(json) = scans.get(key.value()).map_err(redb::Error::from)? {
                    found.push(serde_json::from_slice(json.value())?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            txn.open_table(SCANS).map_err(redb::Error::from)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{FailureReason, FileHashes, Mode, ScanState, Subject};

    fn sample() -> Scan {
        Scan::new(
            Mode::Lookup,
            Subject::File {
                name: Some("a.exe".to_owned()),
                size: 3,
                hashes: FileHashes {
                    sha256: "s".into(),
                    sha1: "h".into(),
                    md5: "m".into(),
                },
            },
        )
    }

    #[tokio::test]
    async fn saved_scans_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scans.redb");
        let scan = sample();
        {
            let store = EmbeddedStore::open(&path).unwrap();
            store.save(&scan).await.unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let loaded = store.load(scan.id).await.unwrap().unwrap();
        assert_eq!(loaded.id, scan.id);
        assert_eq!(loaded.state, ScanState::Queued);
        assert!(store.load(Uuid::new_v4()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn only_unfinished_scans_are_listed_for_resuming() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("scans.redb")).unwrap();
        let pending = sample();
        let mut done = sample();
        store.save(&pending).await.unwrap();
        store.save(&done).await.unwrap();
        done.state = ScanState::Failed {
            reason: FailureReason::Unavailable,
        };
        store.save(&done).await.unwrap();

        let unfinished = store.unfinished().await.unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].id, pending.id);
    }
}
