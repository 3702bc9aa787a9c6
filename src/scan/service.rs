//! The scan service: accepts submissions, stores them, answers reads, and
//! starts the jobs that drive scans to their end.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use uuid::Uuid;

use super::job::Work;
use super::record::{Mode, Scan, ScanState, Subject, unix_now};
use super::summaries::SummaryHub;
use crate::config::Config;
use crate::store::{QuotaWindow, ScanStore, StoreError};
use crate::summary::SummaryWriter;
use crate::upload::SpooledFile;
use crate::virustotal::VirusTotal;

/// The most scans a history page lists.
pub const HISTORY_LIMIT: usize = 200;

/// Why a submission or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("no VirusTotal API key is configured")]
    NoApiKey,
    #[error("no such scan")]
    NotFound,
    #[error("the scan has no report to reanalyse")]
    NothingToReanalyse,
    #[error("the scan has no report to summarise yet")]
    NothingToSummarise,
    #[error("another instance has claimed the scan")]
    Claimed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often and how long the jobs wait, and how they share VirusTotal.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub poll_interval: Duration,
    pub analysis_deadline: Duration,
    pub retry_base_delay: Duration,
    pub lease_ttl: Duration,
    pub worker_interval: Duration,
    pub quota_limit: u32,
    pub quota_window: Duration,
    pub cache_ttl: Duration,
}

impl Timing {
    pub fn from_config(config: &Config) -> Self {
        Self {
            poll_interval: config.poll_interval,
            analysis_deadline: config.analysis_deadline,
            retry_base_delay: config.retry_base_delay,
            lease_ttl: config.lease_ttl,
            worker_interval: config.worker_interval,
            quota_limit: config.vt_requests_per_minute,
            quota_window: config.vt_quota_window,
            cache_ttl: config.vt_cache_ttl,
        }
    }
}

/// A hash someone typed, checked and normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashQuery(String);

/// The text is not an MD5, SHA-1 or SHA-256 in hex.
#[derive(Debug, thiserror::Error)]
#[error("expected an MD5 (32), SHA-1 (40) or SHA-256 (64) hexadecimal hash")]
pub struct InvalidHash;

impl HashQuery {
    pub fn parse(input: &str) -> Result<Self, InvalidHash> {
        let hash = input.trim();
        let valid_length = matches!(hash.len(), 32 | 40 | 64);
        if valid_length && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(hash.to_ascii_lowercase()))
        } else {
            Err(InvalidHash)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Entry point of the scan layer, cheap to clone.
#[derive(Clone)]
pub struct Scanner {
    pub(super) store: Arc<dyn ScanStore>,
    pub(super) vt: VirusTotal,
    pub(super) timing: Timing,
    /// Names this process in leases, so instances sharing a store tell their claims apart.
    pub(super) instance: Arc<str>,
    /// Scans this process is driving now.
    pub(super) running: Arc<Mutex<HashSet<Uuid>>>,
    /// One lock per hash being looked up, so simultaneous lookups of one file
    /// make one VirusTotal call and the others read the cached report.
    pub(super) lookups: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
    pub(super) writer: Arc<dyn SummaryWriter>,
    pub(super) summaries: Arc<SummaryHub>,
    /// The quota window used while the store's shared one does not answer.
    pub(super) local_quota: Arc<QuotaWindow>,
}

impl Scanner {
    pub fn new(
        store: Arc<dyn ScanStore>,
        vt: VirusTotal,
        writer: Arc<dyn SummaryWriter>,
        timing: Timing,
    ) -> Self {
        Self {
            store,
            vt,
            writer,
            summaries: Arc::default(),
            timing,
            instance: Uuid::new_v4().to_string().into(),
            running: Arc::default(),
            lookups: Arc::default(),
            local_quota: Arc::default(),
        }
    }

    pub fn vt_configured(&self) -> bool {
        self.vt.has_api_key()
    }

    /// Records a scan of an uploaded file and starts it. In lookup mode the file
    /// is deleted before this returns: only its hash is ever used.
    pub async fn submit_file(
        &self,
        file: SpooledFile,
        mode: Mode,
        password: Option<String>,
        owner: Option<String>,
    ) -> Result<Uuid, ScanError> {
        if !self.vt_configured() {
            return Err(ScanError::NoApiKey);
        }
        let subject = Subject::File {
            name: file.file_name.clone(),
            size: file.size,
            hashes: file.hashes.clone(),
        };
        let work = match mode {
            Mode::Upload => Work::Upload { file, password },
            Mode::Lookup | Mode::Reanalyse => {
                discard(file);
                Work::Lookup
            }
        };
        self.start(Scan::new(mode, subject, owner), work).await
    }

    /// Records a lookup of a pasted hash and starts it.
    pub async fn submit_hash(
        &self,
        hash: HashQuery,
        owner: Option<String>,
    ) -> Result<Uuid, ScanError> {
        if !self.vt_configured() {
            return Err(ScanError::NoApiKey);
        }
        self.start(
            Scan::new(Mode::Lookup, Subject::Hash { hash: hash.0 }, owner),
            Work::Lookup,
        )
        .await
    }

    /// Starts a new scan asking VirusTotal to analyse the file of a completed
    /// scan again.
    pub async fn reanalyse(&self, id: Uuid, owner: Option<String>) -> Result<Uuid, ScanError> {
        if !self.vt_configured() {
            return Err(ScanError::NoApiKey);
        }
        let scan = self.store.load(id).await?.ok_or(ScanError::NotFound)?;
        let report = scan.report.as_ref().ok_or(ScanError::NothingToReanalyse)?;
        let subject = Subject::Hash {
            hash: report.sha256.clone(),
        };
        self.start(Scan::new(Mode::Reanalyse, subject, owner), Work::Reanalyse)
            .await
    }

    /// Claims the new scan for this instance, stores it, and runs its job.
    async fn start(&self, scan: Scan, work: Work) -> Result<Uuid, ScanError> {
        let id = scan.id;
        // Claimed before it is stored, so that no worker, this instance's or
        // another's, adopts it in between.
        self.claim_locally(id);
        let stored = async {
            if !self
                .store
                .acquire_lease(&lease_key(id), &self.instance, self.timing.lease_ttl)
                .await?
            {
                return Err(ScanError::Claimed);
            }
            self.store.save(&scan).await?;
            Ok(())
        };
        if let Err(error) = stored.await {
            lock(&self.running).remove(&id);
            return Err(error);
        }
        self.spawn(scan, work);
        Ok(id)
    }

    /// A scan by id, straight from storage.
    pub async fn find(&self, id: Uuid) -> Result<Option<Scan>, ScanError> {
        Ok(self.store.load(id).await?)
    }

    /// An owner's scans, newest first.
    pub async fn history(&self, owner: &str) -> Result<Vec<Scan>, ScanError> {
        Ok(self.store.history(owner, HISTORY_LIMIT).await?)
    }

    /// Deletes a scan if `owner` started it. Anyone else gets `NotFound`, as if
    /// the scan did not exist.
    pub async fn delete(&self, id: Uuid, owner: &str) -> Result<(), ScanError> {
        let scan = self.store.load(id).await?.ok_or(ScanError::NotFound)?;
        if scan.owner.as_deref() != Some(owner) {
            return Err(ScanError::NotFound);
        }
        self.store.delete(id).await?;
        tracing::info!(scan_id = %id, "scan deleted by its owner");
        Ok(())
    }

    /// Deletes all of an owner's scans; returns how many.
    pub async fn clear_history(&self, owner: &str) -> Result<usize, ScanError> {
        let removed = self.store.clear_history(owner).await?;
        tracing::info!(scans = removed, "history cleared by its owner");
        Ok(removed)
    }

    /// Whether the store answers.
    pub async fn storage_ready(&self) -> Result<(), ScanError> {
        Ok(self.store.check().await?)
    }

    /// Moves the scan to `state` and stores it. A storage failure is logged: the
    /// job goes on, and the next save stores the state again.
    pub(super) async fn set_state(&self, scan: &mut Scan, state: ScanState) {
        scan.state = state;
        self.persist(scan).await;
    }

    /// Stores the scan as the job changed it, unless its owner deleted it
    /// meanwhile or it has ended (another job finished it).
    pub(super) async fn persist(&self, scan: &mut Scan) {
        scan.updated_at = unix_now();
        match self.store.update(scan).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("the scan was deleted or has ended; this state is not stored")
            }
            Err(error) => {
                tracing::error!(%error, status = scan.state.status_code(), "could not store scan state");
            }
        }
    }

    /// Whether the scan is still stored (not deleted by its owner). A store
    /// that does not answer counts as yes: the job goes on.
    pub(super) async fn still_exists(&self, id: Uuid) -> bool {
        !matches!(self.store.load(id).await, Ok(None))
    }
}

/// The name of the lease that says which instance drives a scan.
pub(super) fn lease_key(id: Uuid) -> String {
    format!("scan:{id}")
}

/// Deletes a spooled file now, logging rather than failing if that goes wrong
/// (its `Drop` would try again).
pub(super) fn discard(file: SpooledFile) {
    if let Err(error) = file.discard() {
        tracing::warn!(%error, "could not delete a spooled upload");
    }
}

/// Locks a std mutex; a poisoned one is used as it is, since its data stays consistent.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_trimmed_and_lower_cased() {
        let md5 = HashQuery::parse("  44D88612FEA8A8F36DE82E1278ABB02F \n").unwrap();
        assert_eq!(md5.as_str(), "44d88612fea8a8f36de82e1278abb02f");
        assert!(HashQuery::parse(&"a".repeat(40)).is_ok());
        assert!(HashQuery::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn anything_else_is_refused() {
        for input in [
            "",
            "abc",
            &"g".repeat(32),
            &"a".repeat(33),
            "../../etc/passwd",
        ] {
            assert!(HashQuery::parse(input).is_err(), "{input:?} accepted");
        }
    }
}
