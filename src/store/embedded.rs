//! The embedded backend: a redb database file under `DATA_DIR`.
//!
//! redb is synchronous, so every call runs on tokio's blocking pool. Only one
//! process can open the file, so leases and the quota window live in memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use uuid::Uuid;

use super::memory::{Leases, QuotaWindow};
use super::{CachedReport, ScanStore, StoreError};
use crate::scan::{Scan, StoredSummary, unix_now};

/// Scan id -> the scan as JSON.
const SCANS: TableDefinition<&str, &[u8]> = TableDefinition::new("scans");
/// Ids of scans that are not final yet -> the time they were last saved.
const UNFINISHED: TableDefinition<&str, i64> = TableDefinition::new("unfinished");
/// `owner \0 history rank (20 digits) \0 scan id` -> (), so an owner's scans sort by age.
const HISTORY: TableDefinition<&str, ()> = TableDefinition::new("history");
/// SHA-256 -> `(expires_at, CachedReport as JSON)`.
const REPORTS: TableDefinition<&str, (i64, &[u8])> = TableDefinition::new("reports");
/// MD5 or SHA-1 -> SHA-256.
const REPORT_ALIASES: TableDefinition<&str, &str> = TableDefinition::new("report_aliases");

/// Scans in a single database file.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    leases: Arc<Leases>,
    quota: Arc<QuotaWindow>,
}

trait Redb<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> Redb<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Embedded(e.into()))
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).db()?;
        let txn = db.begin_write().db()?;
        txn.open_table(SCANS).db()?;
        txn.open_table(UNFINISHED).db()?;
        txn.open_table(HISTORY).db()?;
        txn.open_table(REPORTS).db()?;
        txn.open_table(REPORT_ALIASES).db()?;
        txn.commit().db()?;
        Ok(Self {
            db: Arc::new(db),
            leases: Arc::default(),
            quota: Arc::default(),
        })
    }

    /// Writes a scan and its index entries in one transaction; with
    /// `only_unfinished`, writes nothing unless the scan is stored and unfinished.
    async fn write_scan(&self, scan: &Scan, only_unfinished: bool) -> Result<bool, StoreError> {
        let scan = scan.clone();
        self.blocking(move |db| {
            let key = scan.id.to_string();
            let json = serde_json::to_vec(&scan)?;
            let txn = db.begin_write().db()?;
            {
                let mut unfinished = txn.open_table(UNFINISHED).db()?;
                // Deleting or finishing a scan takes it out of this table.
                if only_unfinished && unfinished.get(key.as_str()).db()?.is_none() {
                    return Ok(false);
                }
                let mut scans = txn.open_table(SCANS).db()?;
                scans.insert(key.as_str(), json.as_slice()).db()?;
                if scan.state.is_final() {
                    unfinished.remove(key.as_str()).db()?;
                } else {
                    unfinished.insert(key.as_str(), scan.updated_at).db()?;
                }
                if let Some(owner) = &scan.owner {
                    let entry = history_key(owner, scan.history_rank(), &key);
                    txn.open_table(HISTORY)
                        .db()?
                        .insert(entry.as_str(), ())
                        .db()?;
                }
            }
            txn.commit().db()?;
            Ok(true)
        })
        .await
    }

    /// Opens the database, waiting up to `patience` while another process (or
    /// a previous instance in this one) still has the file open.
    pub async fn open_waiting(path: &Path, patience: Duration) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Self::open(path) {
                Err(StoreError::Embedded(redb::Error::DatabaseAlreadyOpen))
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
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

fn history_key(owner: &str, rank: i64, id: &str) -> String {
    format!("{owner}\0{rank:020}\0{id}")
}

/// Removes a scan and its index entries inside `txn`; returns the scan if it existed.
fn remove_scan(txn: &WriteTransaction, id: &str) -> Result<Option<Scan>, StoreError> {
    let mut scans = txn.open_table(SCANS).db()?;
    let Some(json) = scans.remove(id).db()? else {
        return Ok(None);
    };
    let scan: Scan = serde_json::from_slice(json.value())?;
    drop(json);
    txn.open_table(UNFINISHED).db()?.remove(id).db()?;
    if let Some(owner) = &scan.owner {
        let key = history_key(owner, scan.history_rank(), id);
        txn.open_table(HISTORY).db()?.remove(key.as_str()).db()?;
    }
    Ok(Some(scan))
}

#[async_trait]
impl ScanStore for EmbeddedStore {
    async fn save(&self, scan: &Scan) -> Result<(), StoreError> {
        self.write_scan(scan, false).await.map(|_| ())
    }

    async fn update(&self, scan: &Scan) -> Result<bool, StoreError> {
        self.write_scan(scan, true).await
    }

    async fn set_summary(&self, id: Uuid, summary: &StoredSummary) -> Result<bool, StoreError> {
        let summary = summary.clone();
        self.blocking(move |db| {
            let key = id.to_string();
            let txn = db.begin_write().db()?;
            {
                let mut scans = txn.open_table(SCANS).db()?;
                let stored: Option<Scan> = match scans.get(key.as_str()).db()? {
                    Some(json) => Some(serde_json::from_slice(json.value())?),
                    None => None,
                };
                let Some(mut scan) = stored else {
                    return Ok(false);
                };
                scan.summary = Some(summary);
                let json = serde_json::to_vec(&scan)?;
                scans.insert(key.as_str(), json.as_slice()).db()?;
            }
            txn.commit().db()?;
            Ok(true)
        })
        .await
    }

    async fn load(&self, id: Uuid) -> Result<Option<Scan>, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_read().db()?;
            let scans = txn.open_table(SCANS).db()?;
            let Some(json) = scans.get(id.to_string().as_str()).db()? else {
                return Ok(None);
            };
            Ok(Some(serde_json::from_slice(json.value())?))
        })
        .await
    }

    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().db()?;
            let removed = remove_scan(&txn, &id.to_string())?.is_some();
            txn.commit().db()?;
            Ok(removed)
        })
        .await
    }

    async fn unfinished(&self) -> Result<Vec<Uuid>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().db()?;
            let unfinished = txn.open_table(UNFINISHED).db()?;
            let mut ids = Vec::new();
            for entry in unfinished.iter().db()? {
                let (key, _) = entry.db()?;
                if let Ok(id) = Uuid::parse_str(key.value()) {
                    ids.push(id);
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn history(&self, owner: &str, limit: usize) -> Result<Vec<Scan>, StoreError> {
        let prefix = format!("{owner}\0");
        self.blocking(move |db| {
            let txn = db.begin_read().db()?;
            let history = txn.open_table(HISTORY).db()?;
            let scans = txn.open_table(SCANS).db()?;
            let mut found = Vec::new();
            // Keys of one owner are contiguous and sort oldest first.
            let end = format!("{owner}\u{1}", owner = prefix.trim_end_matches('\0'));
            for entry in history.range(prefix.as_str()..end.as_str()).db()?.rev() {
                if found.len() >= limit {
                    break;
                }
                let (key, _) = entry.db()?;
                let Some(id) = key.value().rsplit('\0').next() else {
                    continue;
                };
                if let Some(json) = scans.get(id).db()? {
                    found.push(serde_json::from_slice(json.value())?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn clear_history(&self, owner: &str) -> Result<usize, StoreError> {
        let prefix = format!("{owner}\0");
        self.blocking(move |db| {
            let txn = db.begin_write().db()?;
            let ids: Vec<String> = {
                let history = txn.open_table(HISTORY).db()?;
                let end = format!("{}\u{1}", prefix.trim_end_matches('\0'));
                let mut ids = Vec::new();
                for entry in history.range(prefix.as_str()..end.as_str()).db()? {
                    let (key, _) = entry.db()?;
                    if let Some(id) = key.value().rsplit('\0').next() {
                        ids.push(id.to_owned());
                    }
                }
                ids
            };
            let mut removed = 0;
            for id in &ids {
                if remove_scan(&txn, id)?.is_some() {
                    removed += 1;
                }
            }
            txn.commit().db()?;
            Ok(removed)
        })
        .await
    }

    async fn cached_report(&self, hash: &str) -> Result<Option<CachedReport>, StoreError> {
        let hash = hash.to_ascii_lowercase();
        self.blocking(move |db| {
            let txn = db.begin_read().db()?;
            let aliases = txn.open_table(REPORT_ALIASES).db()?;
            let sha256 = match aliases.get(hash.as_str()).db()? {
                Some(target) => target.value().to_owned(),
                None => hash,
            };
            let reports = txn.open_table(REPORTS).db()?;
            let Some(entry) = reports.get(sha256.as_str()).db()? else {
                return Ok(None);
            };
            let (expires_at, json) = entry.value();
            if expires_at <= unix_now() {
                return Ok(None);
            }
            Ok(Some(serde_json::from_slice(json)?))
        })
        .await
    }

    async fn cache_report(&self, entry: &CachedReport, ttl: Duration) -> Result<(), StoreError> {
        let json = serde_json::to_vec(entry)?;
        let report = &entry.report;
        let sha256 = report.sha256.to_ascii_lowercase();
        let aliases: Vec<String> = [&report.md5, &report.sha1]
            .into_iter()
            .flatten()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let expires_at = entry.fetched_at.saturating_add(ttl.as_secs() as i64);
        self.blocking(move |db| {
            let txn = db.begin_write().db()?;
            {
                let mut reports = txn.open_table(REPORTS).db()?;
                reports
                    .insert(sha256.as_str(), (expires_at, json.as_slice()))
                    .db()?;
                let mut alias_table = txn.open_table(REPORT_ALIASES).db()?;
                for alias in &aliases {
                    alias_table.insert(alias.as_str(), sha256.as_str()).db()?;
                }
            }
            txn.commit().db()
        })
        .await
    }

    async fn acquire_lease(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.leases.acquire(key, holder, ttl))
    }

    async fn release_lease(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        self.leases.release(key, holder);
        Ok(())
    }

    async fn take_quota_slot(
        &self,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, StoreError> {
        Ok(self.quota.take(limit, window))
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().db()?;
            txn.open_table(SCANS).db()?;
            Ok(())
        })
        .await
    }
}
