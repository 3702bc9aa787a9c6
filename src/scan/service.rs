//! The scan service: accepts submissions, stores them, and starts the job
//! that drives each one to its end.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;
use uuid::Uuid;

use super::job::Work;
use super::record::{FailureReason, Mode, Scan, ScanState, Subject, unix_now};
use crate::config::Config;
use crate::store::{ScanStore, StoreError};
use crate::upload::SpooledFile;
use crate::virustotal::VirusTotal;

/// Why a submission or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("no VirusTotal API key is configured")]
    NoApiKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often and how long the jobs wait.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub poll_interval: Duration,
    pub analysis_deadline: Duration,
    pub retry_base_delay: Duration,
}

impl Timing {
    pub fn from_config(config: &Config) -> Self {
        Self {
            poll_interval: config.poll_interval,
            analysis_deadline: config.analysis_deadline,
            retry_base_delay: config.retry_base_delay,
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
}

impl Scanner {
    pub fn new(store: Arc<dyn ScanStore>, vt: VirusTotal, timing: Timing) -> Self {
        Self { store, vt, timing }
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
    ) -> Result<Uuid, ScanError> {
        if !self.vt_configured() {
            return Err(ScanError::NoApiKey);
        }
        let subject = Subject::File {
            name: file.file_name.clone(),
            size: file.size,
            hashes: file.hashes.clone(),
        };
        let scan = Scan::new(mode, subject);
        let work = match mode {
            Mode::Lookup => {
                discard(file);
                Work::Lookup
            }
            Mode::Upload => Work::Upload { file, password },
        };
        self.store.save(&scan).await?;
        let id = scan.id;
        self.spawn(scan, work);
        Ok(id)
    }

    /// Records a lookup of a pasted hash and starts it.
    pub async fn submit_hash(&self, hash: HashQuery) -> Result<Uuid, ScanError> {
        if !self.vt_configured() {
            return Err(ScanError::NoApiKey);
        }
        let scan = Scan::new(Mode::Lookup, Subject::Hash { hash: hash.0 });
        self.store.save(&scan).await?;
        let id = scan.id;
        self.spawn(scan, Work::Lookup);
        Ok(id)
    }

    /// A scan by id, straight from storage.
    pub async fn find(&self, id: Uuid) -> Result<Option<Scan>, ScanError> {
        Ok(self.store.load(id).await?)
    }

    /// Whether the store answers.
    pub async fn storage_ready(&self) -> Result<(), ScanError> {
        Ok(self.store.check().await?)
    }

    /// Restarts the jobs of scans a previous run left unfinished. A scan whose
    /// file had not reached VirusTotal cannot go on (the file is gone) and fails
    /// with a reason that says so.
    pub async fn resume_unfinished(&self) -> Result<usize, ScanError> {
        let unfinished = self.store.unfinished().await?;
        let count = unfinished.len();
        for mut scan in unfinished {
            let work = match (&scan.state, scan.mode) {
                (ScanState::Analysing { analysis_id, since }, _) => Work::Follow {
                    analysis_id: analysis_id.clone(),
                    since: *since,
                },
                (_, Mode::Lookup) => Work::Lookup,
                (_, Mode::Upload) => {
                    let reason = FailureReason::UploadInterrupted;
                    self.set_state(&mut scan, ScanState::Failed { reason })
                        .await;
                    continue;
                }
            };
            self.spawn(scan, work);
        }
        Ok(count)
    }

    /// Runs the scan's job in the background, inside a span carrying its id.
    fn spawn(&self, scan: Scan, work: Work) {
        let span = tracing::info_span!("scan", scan_id = %scan.id, mode = scan.mode.as_str());
        tokio::spawn(self.clone().drive(scan, work).instrument(span));
    }

    /// Moves the scan to `state` and stores it. A storage failure is logged: the
    /// job goes on, and the next save stores the state again.
    pub(super) async fn set_state(&self, scan: &mut Scan, state: ScanState) {
        scan.state = state;
        scan.updated_at = unix_now();
        if let Err(error) = self.store.save(scan).await {
            tracing::error!(%error, status = scan.state.status_code(), "could not store scan state");
        }
    }
}

/// Deletes a spooled file now, logging rather than failing if that goes wrong
/// (its `Drop` would try again).
pub(super) fn discard(file: SpooledFile) {
    if let Err(error) = file.discard() {
        tracing::warn!(%error, "could not delete a spooled upload");
    }
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
