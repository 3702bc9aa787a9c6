//! The background job of one scan: lookup, upload, and following the analysis.
//! Polling happens here, once per scan, however many people watch the page.

use super::record::{FailureReason, Scan, ScanState, Subject, unix_now};
use super::report::Report;
use super::retry::{MAX_ATTEMPTS, backoff, with_retry};
use super::service::{Scanner, discard};
use crate::upload::{SpooledFile, ascii_file_name};
use crate::virustotal::types::{AnalysisResponse, AnalysisStatus};
use crate::virustotal::{FileUpload, VtError};

/// Right after an upload VirusTotal may answer 404 for the new analysis for a
/// little while; this many such polls are tolerated.
const NOT_FOUND_POLLS_TOLERATED: u32 = 5;

/// What a job has to do.
pub(super) enum Work {
    /// Ask for the report by hash.
    Lookup,
    /// Ask by hash, and upload the file if VirusTotal does not know it.
    Upload {
        file: SpooledFile,
        password: Option<String>,
    },
    /// Follow an analysis started earlier.
    Follow { analysis_id: String, since: i64 },
}

impl Scanner {
    pub(super) async fn drive(self, mut scan: Scan, work: Work) {
        tracing::info!("scan started");
        let outcome = match work {
            Work::Lookup => self.lookup(&mut scan).await,
            Work::Upload { file, password } => self.upload(&mut scan, file, password).await,
            Work::Follow { analysis_id, since } => {
                self.follow(&mut scan, &analysis_id, since).await
            }
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

    async fn lookup(&self, scan: &mut Scan) -> Result<(), VtError> {
        let hash = scan.subject.lookup_hash().to_owned();
        let base = self.timing.retry_base_delay;
        match with_retry("file report", base, || self.vt.file_report(&hash)).await {
            Ok(file) => {
                self.complete(scan, Report::from_file_object(file)).await;
                Ok(())
            }
            Err(VtError::NotFound(_)) => {
                self.set_state(scan, ScanState::NotFound).await;
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn upload(
        &self,
        scan: &mut Scan,
        file: SpooledFile,
        password: Option<String>,
    ) -> Result<(), VtError> {
        let base = self.timing.retry_base_delay;
        let sha256 = file.hashes.sha256.clone();

        // A file VirusTotal already knows is not sent again.
        match with_retry("file report", base, || self.vt.file_report(&sha256)).await {
            Ok(known) => {
                discard(file);
                self.complete(scan, Report::from_file_object(known)).await;
                return Ok(());
            }
            Err(VtError::NotFound(_)) => {}
            Err(error) => return Err(error),
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
        let analysis_id = with_retry("upload", base, || self.vt.upload(&upload)).await?;
        discard(file);

        let since = unix_now();
        let state = ScanState::Analysing {
            analysis_id: analysis_id.clone(),
            since,
        };
        self.set_state(scan, state).await;
        self.follow(scan, &analysis_id, since).await
    }

    /// Polls the analysis until it completes, fails for good, or runs past the deadline.
    async fn follow(&self, scan: &mut Scan, analysis_id: &str, since: i64) -> Result<(), VtError> {
        let deadline = since.saturating_add(self.timing.analysis_deadline.as_secs() as i64);
        let mut not_found = 0;
        let mut failures = 0;
        loop {
            tokio::time::sleep(self.timing.poll_interval).await;
            if unix_now() > deadline {
                let reason = FailureReason::AnalysisTimedOut;
                self.set_state(scan, ScanState::Failed { reason }).await;
                return Ok(());
            }
            match self.vt.analysis(analysis_id).await {
                Ok(analysis) if analysis.data.attributes.status == AnalysisStatus::Completed => {
                    return self.finish_analysis(scan, analysis).await;
                }
                Ok(analysis) => {
                    failures = 0;
                    tracing::debug!(status = ?analysis.data.attributes.status, "analysis pending");
                }
                Err(VtError::NotFound(_)) if not_found < NOT_FOUND_POLLS_TOLERATED => {
                    not_found += 1;
                }
                Err(error) if error.is_retryable() && failures + 1 < MAX_ATTEMPTS => {
                    failures += 1;
                    let delay = backoff(self.timing.retry_base_delay, failures);
                    tracing::warn!(%error, attempt = failures, delay_ms = delay.as_millis() as u64,
                        "polling the analysis failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
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
        let sha256 = match (&info, &scan.subject) {
            (Some(info), _) if info.sha256.is_some() => info.sha256.clone().unwrap_or_default(),
            (_, Subject::File { hashes, .. }) => hashes.sha256.clone(),
            (_, Subject::Hash { hash }) => hash.clone(),
        };
        let base = self.timing.retry_base_delay;
        let mut report = match with_retry("file report", base, || self.vt.file_report(&sha256))
            .await
        {
            Ok(file) => Report::from_file_object(file),
            Err(error) => {
                tracing::warn!(%error, "file report unavailable after analysis; using the analysis");
                let info = info.unwrap_or(crate::virustotal::types::FileInfo {
                    sha256: None,
                    sha1: None,
                    md5: None,
                    size: None,
                });
                Report::from_analysis(&info, &sha256)
            }
        };
        let attributes = analysis.data.attributes;
        report.apply_analysis(attributes.stats, attributes.results, attributes.date);
        self.complete(scan, report).await;
        Ok(())
    }

    async fn complete(&self, scan: &mut Scan, report: Report) {
        scan.report = Some(report);
        self.set_state(scan, ScanState::Completed).await;
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
        _ => FailureReason::Internal,
    }
}
