//! The background job of one scan: lookup, upload, reanalysis, and following
//! the analysis. Polling happens here, once per scan, however many people
//! watch the page. Every VirusTotal call waits for a quota slot first and is
//! retried with backoff when it fails for a passing reason.

use std::future::Future;
use std::sync::Arc;

use super::record::{FailureReason, Scan, ScanState, Subject, unix_now};
use super::report::Report;
use super::retry::{MAX_ATTEMPTS, backoff};
use super::service::{Scanner, discard, lock};
use crate::store::CachedReport;
use crate::upload::{SpooledFile, ascii_file_name};
use crate::virustotal::types::{AnalysisResponse, AnalysisStatus, FileInfo};
use crate::virustotal::{FileUpload, VtError};

/// Right after an upload VirusTotal may answer 404 for the new analysis for a
/// little while; this many such polls are tolerated.
const NOT_FOUND_POLLS_TOLERATED: u32 = 5;

/// Quota errors back off this many times longer than other passing failures:
/// a per-minute quota needs most of a minute to free up.
const QUOTA_BACKOFF_FACTOR: u32 = 4;

/// The quota window is widened by its 1/20th (3 s of a minute), and at least
/// by `MIN_QUOTA_MARGIN`.
const QUOTA_MARGIN_DIVISOR: u32 = 20;
const MIN_QUOTA_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

/// How often an upload in progress checks whether its scan was deleted.
const DELETION_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What a job has to do.
pub(super) enum Work {
    /// Ask for the report by hash.
    Lookup,
    /// Ask by hash, and upload the file if VirusTotal does not know it.
    Upload {
        file: SpooledFile,
        password: Option<String>,
    },
    /// Ask VirusTotal to analyse a known file again, then follow that analysis.
    Reanalyse,
    /// Follow an analysis started earlier.
    Follow { analysis_id: String, since: i64 },
    /// An upload adopted from an instance that is gone, with its file.
    Interrupted,
}

/// How a lookup by hash ended.
enum Lookup {
    Found,
    NotFound,
}

impl Scanner {
    pub(super) async fn drive(&self, mut scan: Scan, work: Work) {
        tracing::info!("scan started");
        let outcome = match work {
            Work::Lookup => match self.lookup(&mut scan).await {
                // Only a lookup-only scan ends here; for the others, not found
                // is a step on the way, never a state to store.
                Ok(Lookup::NotFound) => {
                    self.set_state(&mut scan, ScanState::NotFound).await;
                    Ok(())
                }
                other => other.map(|_| ()),
            },
            Work::Upload { file, password } => self.upload(&mut scan, file, password).await,
            Work::Reanalyse => self.reanalyse_file(&mut scan).await,
            Work::Follow { analysis_id, since } => {
                self.follow(&mut scan, &analysis_id, since).await
            }
            Work::Interrupted => self.interrupted(&mut scan).await,
        };
        if let Err(error) = outcome {
            let reason = failure_reason(&error);
            if reason == FailureReason::RejectedApiKey {
                tracing::error!(%error, "VirusTotal rejected the API key");
            } else {
                tracing::warn!(%error, ?reason, "scan failed");
            }
            self.set_state(&mut scan, ScanState::Failed { reason })
                .await;
        }
        tracing::info!(status = scan.state.status_code(), "scan ended");
    }

    /// Completes the scan from the report cache or VirusTotal, or says that
    /// VirusTotal does not know the file (and leaves the state to the caller).
    async fn lookup(&self, scan: &mut Scan) -> Result<Lookup, VtError> {
        let hash = scan.subject.lookup_hash().to_owned();
        // Simultaneous lookups of one hash queue here; all but the first find
        // the report cached.
        let gate = self.lookup_gate(&hash);
        let _turn = gate.lock().await;

        match self.store.cached_report(&hash).await {
            Ok(Some(cached)) => {
                tracing::info!("report served from the cache");
                self.complete(scan, cached.report, cached.fetched_at).await;
                return Ok(Lookup::Found);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "report cache unavailable; asking VirusTotal"),
        }
        match self
            .call(scan, "file report", || self.vt.file_report(&hash))
            .await
        {
            Ok(file) => {
                let report = Report::from_file_object(file);
                self.cache(&report).await;
                self.complete(scan, report, unix_now()).await;
                Ok(Lookup::Found)
            }
            Err(VtError::NotFound(_)) => Ok(Lookup::NotFound),
            Err(error) => Err(error),
        }
    }

    async fn upload(
        &self,
        scan: &mut Scan,
        file: SpooledFile,
        password: Option<String>,
    ) -> Result<(), VtError> {
        // A file VirusTotal already knows is not sent again.
        if let Lookup::Found = self.lookup(scan).await? {
            discard(file);
            return Ok(());
        }
        // Deleting a scan withdraws its file, up to the moment it has been sent.
        let id = scan.id;
        if !self.still_exists(id).await {
            tracing::info!("the scan was deleted before its upload; nothing was sent");
            discard(file);
            return Ok(());
        }

        self.set_state(scan, ScanState::Uploading).await;
        let name = ascii_file_name(file.file_name.as_deref());
        let upload = FileUpload {
            path: file.path(),
            size: file.size,
            file_name: &name,
            password: password.as_deref(),
        };
        tracing::info!(bytes = file.size, "uploading to VirusTotal");
        let sent = tokio::select! {
            sent = self.call(scan, "upload", || self.vt.upload(&upload)) => sent,
            () = self.deleted(id) => {
                tracing::info!("the scan was deleted during its upload; the upload was stopped");
                discard(file);
                return Ok(());
            }
        };
        discard(file);
        self.analysing(scan, sent?).await
    }

    /// Returns once the scan has been deleted.
    async fn deleted(&self, id: uuid::Uuid) {
        loop {
            tokio::time::sleep(DELETION_CHECK_INTERVAL).await;
            if !self.still_exists(id).await {
                return;
            }
        }
    }

    async fn reanalyse_file(&self, scan: &mut Scan) -> Result<(), VtError> {
        let sha256 = scan.subject.lookup_hash().to_owned();
        let analysis_id = self
            .call(scan, "reanalyse", || self.vt.reanalyse(&sha256))
            .await?;
        self.analysing(scan, analysis_id).await
    }

    /// An adopted upload whose file is gone: the scan can still end well if
    /// VirusTotal knows the file by now.
    async fn interrupted(&self, scan: &mut Scan) -> Result<(), VtError> {
        if let Lookup::NotFound = self.lookup(scan).await? {
            let reason = FailureReason::UploadInterrupted;
            self.set_state(scan, ScanState::Failed { reason }).await;
        }
        Ok(())
    }

    async fn analysing(&self, scan: &mut Scan, analysis_id: String) -> Result<(), VtError> {
        let since = unix_now();
        let state = ScanState::Analysing {
            analysis_id: analysis_id.clone(),
            since,
        };
        self.set_state(scan, state).await;
        self.follow(scan, &analysis_id, since).await
    }

    /// Polls the analysis until it completes, fails for good, or runs past the
    /// deadline. The deadline is checked after a poll, so an analysis resumed
    /// after a long stop is still asked about once: it has most likely finished.
    async fn follow(&self, scan: &mut Scan, analysis_id: &str, since: i64) -> Result<(), VtError> {
        let deadline = since.saturating_add(self.timing.analysis_deadline.as_secs() as i64);
        let mut not_found = 0;
        loop {
            tokio::time::sleep(self.timing.poll_interval).await;
            if !self.still_exists(scan.id).await {
                tracing::info!("the scan was deleted; no longer following its analysis");
                return Ok(());
            }
            match self
                .call(scan, "analysis", || self.vt.analysis(analysis_id))
                .await
            {
                Ok(analysis) if analysis.data.attributes.status == AnalysisStatus::Completed => {
                    return self.finish_analysis(scan, analysis).await;
                }
                Ok(analysis) => {
                    tracing::debug!(status = ?analysis.data.attributes.status, "analysis pending");
                }
                // Right after an upload VirusTotal may not know the analysis yet.
                Err(VtError::NotFound(_) | VtError::NotAvailableYet(_))
                    if not_found < NOT_FOUND_POLLS_TOLERATED =>
                {
                    not_found += 1;
                }
                Err(error) => return Err(error),
            }
            if unix_now() > deadline {
                let reason = FailureReason::AnalysisTimedOut;
                self.set_state(scan, ScanState::Failed { reason }).await;
                return Ok(());
            }
        }
    }

    /// Builds the report of a finished analysis: the file object for the
    /// details, the analysis itself for the verdicts (the file object can lag).
    async fn finish_analysis(
        &self,
        scan: &mut Scan,
        analysis: AnalysisResponse,
    ) -> Result<(), VtError> {
        let info = analysis.meta.and_then(|m| m.file_info);
        let sha256 = info
            .as_ref()
            .and_then(|i| i.sha256.clone())
            .unwrap_or_else(|| scan.subject.lookup_hash().to_owned());
        let mut report = match self
            .call(scan, "file report", || self.vt.file_report(&sha256))
            .await
        {
            Ok(file) => Report::from_file_object(file),
            Err(error) => {
                tracing::warn!(%error, "file report unavailable after analysis; using the analysis");
                let info = info.unwrap_or(FileInfo {
                    sha256: None,
                    sha1: None,
                    md5: None,
                    size: None,
                });
                Report::from_analysis(&info, &sha256)
            }
        };
        if let Subject::File { hashes, .. } = &scan.subject {
            report.sha1.get_or_insert_with(|| hashes.sha1.clone());
            report.md5.get_or_insert_with(|| hashes.md5.clone());
        }
        let attributes = analysis.data.attributes;
        report.apply_analysis(attributes.stats, attributes.results, attributes.date);
        self.cache(&report).await;
        self.complete(scan, report, unix_now()).await;
        Ok(())
    }

    async fn complete(&self, scan: &mut Scan, report: Report, fetched_at: i64) {
        scan.report = Some(report);
        scan.report_fetched_at = Some(fetched_at);
        self.set_state(scan, ScanState::Completed).await;
    }

    async fn cache(&self, report: &Report) {
        let entry = CachedReport {
            report: report.clone(),
            fetched_at: unix_now(),
        };
        if let Err(error) = self.store.cache_report(&entry, self.timing.cache_ttl).await {
            tracing::warn!(%error, "could not cache the report");
        }
    }

    /// One VirusTotal call: waits for a quota slot, then makes the call, and
    /// retries passing failures with exponential backoff and jitter.
    async fn call<T, F, Fut>(&self, scan: &mut Scan, what: &str, mut op: F) -> Result<T, VtError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, VtError>>,
    {
        let mut attempt = 1;
        loop {
            self.wait_for_quota(scan).await;
            match op().await {
                Err(error) if error.is_retryable() && attempt < MAX_ATTEMPTS => {
                    let quota = matches!(
                        error,
                        VtError::QuotaExceeded(_) | VtError::TooManyRequests(_)
                    );
                    let base =
                        self.timing.retry_base_delay * if quota { QUOTA_BACKOFF_FACTOR } else { 1 };
                    let delay = backoff(base, attempt);
                    tracing::warn!(call = what, attempt, delay_ms = delay.as_millis() as u64,
                        %error, "VirusTotal call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Waits until the shared request quota allows one more call, telling the
    /// scan's page while it waits.
    async fn wait_for_quota(&self, scan: &mut Scan) {
        // A little wider than VirusTotal's window: a call is counted here before
        // it is sent and there when it arrives, and the gap must not add a call.
        let margin = (self.timing.quota_window / QUOTA_MARGIN_DIVISOR).max(MIN_QUOTA_MARGIN);
        let window = self.timing.quota_window + margin;
        let limit = self.timing.quota_limit;
        loop {
            let slot = match self.store.take_quota_slot(limit, window).await {
                Ok(None) => {
                    self.local_quota.record(window);
                    None
                }
                Ok(wait) => wait,
                Err(error) => {
                    // This instance's own window keeps it under the limit
                    // until the shared one answers again.
                    tracing::warn!(%error, "quota store unavailable; counting calls locally");
                    self.local_quota.take(limit, window)
                }
            };
            match slot {
                None => break,
                Some(wait) => {
                    if !scan.waiting_for_quota {
                        tracing::info!(
                            wait_ms = wait.as_millis() as u64,
                            "waiting for VirusTotal quota"
                        );
                        scan.waiting_for_quota = true;
                        self.persist(scan).await;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
        if scan.waiting_for_quota {
            scan.waiting_for_quota = false;
            self.persist(scan).await;
        }
    }

    /// The lock that serialises lookups of one hash in this process.
    fn lookup_gate(&self, hash: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = lock(&self.lookups);
        gates.retain(|_, gate| gate.strong_count() > 0);
        if let Some(gate) = gates.get(hash).and_then(|g| g.upgrade()) {
            return gate;
        }
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        gates.insert(hash.to_owned(), Arc::downgrade(&gate));
        gate
    }
}

/// What a VirusTotal failure means for the person waiting on the scan.
fn failure_reason(error: &VtError) -> FailureReason {
    match error {
        VtError::NoApiKey => FailureReason::MissingApiKey,
        VtError::AuthenticationRequired(_)
        | VtError::WrongCredentials(_)
        | VtError::UserNotActive(_) => FailureReason::RejectedApiKey,
        VtError::Forbidden(_) => FailureReason::Forbidden,
        VtError::QuotaExceeded(_) | VtError::TooManyRequests(_) => FailureReason::QuotaExceeded,
        VtError::Transient(_)
        | VtError::DeadlineExceeded(_)
        | VtError::Timeout
        | VtError::Network(_)
        | VtError::FailedDependency(_) => FailureReason::Unavailable,
        VtError::Unexpected { status, .. } if *status >= 500 => FailureReason::Unavailable,
        VtError::PayloadTooLarge => FailureReason::FileTooLarge,
        VtError::BadRequest(_) | VtError::InvalidArgument(_) => FailureReason::UploadRejected,
        VtError::Malformed(_) => FailureReason::BadResponse,
        VtError::NotFound(_) | VtError::NotAvailableYet(_) => FailureReason::LostAtVirusTotal,
        _ => FailureReason::Internal,
    }
}
