//! The scan record: what was asked, where it stands, and the report once known.
//!
//! This is what the store keeps, serialised as JSON, so every field added later
//! must have a default for records written before it existed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::report::Report;
use super::summaries::StoredSummary;

/// How far VirusTotal may be involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only the hash is sent; the file never leaves the server.
    Lookup,
    /// An unknown file is uploaded and shared with VirusTotal's community.
    Upload,
    /// VirusTotal is asked to analyse a file it knows once more.
    Reanalyse,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lookup => "lookup",
            Self::Upload => "upload",
            Self::Reanalyse => "reanalyse",
        }
    }

    /// How the mode reads in a list.
    pub fn label(self) -> &'static str {
        match self {
            Self::Lookup => "Hash lookup",
            Self::Upload => "Full scan",
            Self::Reanalyse => "Reanalysis",
        }
    }
}

/// The three digests of an uploaded file, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHashes {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

/// What the scan is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    /// A file someone uploaded to this server.
    File {
        name: Option<String>,
        size: u64,
        hashes: FileHashes,
    },
    /// A hash someone pasted (MD5, SHA-1 or SHA-256, lower case).
    Hash { hash: String },
}

impl Subject {
    /// The hash to ask VirusTotal about.
    pub fn lookup_hash(&self) -> &str {
        match self {
            Self::File { hashes, .. } => &hashes.sha256,
            Self::Hash { hash } => hash,
        }
    }
}

/// Where a scan stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ScanState {
    /// Accepted; VirusTotal has not been asked yet.
    Queued,
    /// The file is being sent to VirusTotal.
    Uploading,
    /// VirusTotal is analysing; `since` is when the analysis was started (Unix seconds).
    Analysing { analysis_id: String, since: i64 },
    /// The report is known.
    Completed,
    /// VirusTotal does not know the file (lookup only).
    NotFound,
    /// The scan ended without a report.
    Failed { reason: FailureReason },
}

impl ScanState {
    /// Whether nothing more will happen to the scan.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::NotFound | Self::Failed { .. })
    }

    /// The machine-readable status the page exposes as `data-status`.
    pub fn status_code(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Uploading | Self::Analysing { .. } => "running",
            Self::Completed => "completed",
            Self::NotFound => "not_found",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Why a scan failed, in terms a page can explain and advise on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The server has no VirusTotal API key.
    MissingApiKey,
    /// VirusTotal refused the server's API key.
    RejectedApiKey,
    /// The key is not allowed to do this (premium-only feature, for instance).
    Forbidden,
    /// The key's request quota is used up.
    QuotaExceeded,
    /// VirusTotal could not be reached or kept failing.
    Unavailable,
    /// VirusTotal refused the file as too large.
    FileTooLarge,
    /// VirusTotal rejected the upload (for instance a wrong archive password).
    UploadRejected,
    /// The analysis did not finish within the deadline.
    AnalysisTimedOut,
    /// The server stopped while the file was on its way; the file is gone.
    UploadInterrupted,
    /// VirusTotal no longer found the file or the analysis it had started.
    LostAtVirusTotal,
    /// VirusTotal answered something the app could not read.
    BadResponse,
    /// Anything else; details are in the server log.
    Internal,
}

impl FailureReason {
    /// A one-line statement of what happened.
    pub fn title(self) -> &'static str {
        match self {
            Self::MissingApiKey => "This server has no VirusTotal API key",
            Self::RejectedApiKey => "VirusTotal rejected this server's API key",
            Self::Forbidden => "VirusTotal does not allow this server's key to do that",
            Self::QuotaExceeded => "This server has used up its VirusTotal quota",
            Self::Unavailable => "VirusTotal could not be reached",
            Self::FileTooLarge => "VirusTotal refused the file as too large",
            Self::UploadRejected => "VirusTotal rejected the upload",
            Self::AnalysisTimedOut => "VirusTotal did not finish the analysis in time",
            Self::UploadInterrupted => "The upload was interrupted",
            Self::LostAtVirusTotal => "VirusTotal lost track of the file or its analysis",
            Self::BadResponse => "VirusTotal sent an answer this server could not read",
            Self::Internal => "Something went wrong on this server",
        }
    }

    /// What the person can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Self::MissingApiKey => {
                "The operator of this server must set VT_API_KEY. Nothing was sent to VirusTotal."
            }
            Self::RejectedApiKey => {
                "The operator of this server must check VT_API_KEY: VirusTotal says it is wrong \
                 or the account is not active."
            }
            Self::Forbidden => "This needs a different VirusTotal subscription. Ask the operator.",
            Self::QuotaExceeded => {
                "Try again in a few minutes. If the daily quota is used up, it resets at \
                 00:00 UTC."
            }
            Self::Unavailable => "This is usually brief. Try again in a few minutes.",
            Self::FileTooLarge => "Files up to 650 MB can be scanned. Try a smaller file.",
            Self::UploadRejected => {
                "If the file is an encrypted ZIP archive, check the password and try again."
            }
            Self::AnalysisTimedOut => {
                "VirusTotal may still finish it: search for the file's SHA-256 later."
            }
            Self::UploadInterrupted => {
                "The server restarted before the file reached VirusTotal. Please upload it again."
            }
            Self::LostAtVirusTotal => {
                "Search for the file's SHA-256 again in a few minutes; if VirusTotal still does \
                 not know it, upload the file again."
            }
            Self::BadResponse | Self::Internal => {
                "Try again. If it keeps happening, tell the operator of this server."
            }
        }
    }
}

/// One scan, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scan {
    pub id: Uuid,
    pub mode: Mode,
    pub subject: Subject,
    pub state: ScanState,
    /// The anonymous browser id of whoever started the scan; their history lists it.
    #[serde(default)]
    pub owner: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix milliseconds, to order scans started within one second; absent
    /// from records written before it existed.
    #[serde(default)]
    pub created_at_ms: Option<i64>,
    /// Unix seconds.
    pub updated_at: i64,
    #[serde(default)]
    pub report: Option<Report>,
    /// When the report was fetched from VirusTotal (Unix seconds); older than the
    /// scan itself when it came from the report cache.
    #[serde(default)]
    pub report_fetched_at: Option<i64>,
    /// The scan is held back by the VirusTotal request quota right now.
    #[serde(default)]
    pub waiting_for_quota: bool,
    /// The plain-language summary, once one has been written completely.
    #[serde(default)]
    pub summary: Option<StoredSummary>,
}

impl Scan {
    /// A new, queued scan with a random id.
    pub fn new(mode: Mode, subject: Subject, owner: Option<String>) -> Self {
        let now_ms = unix_now_ms();
        let now = now_ms.div_euclid(1000);
        Self {
            id: Uuid::new_v4(),
            mode,
            subject,
            state: ScanState::Queued,
            owner,
            created_at: now,
            created_at_ms: Some(now_ms),
            updated_at: now,
            report: None,
            report_fetched_at: None,
            waiting_for_quota: false,
            summary: None,
        }
    }
}

impl Scan {
    /// Where the scan goes in its owner's history, which lists the newest first.
    pub fn history_rank(&self) -> i64 {
        self.created_at_ms
            .unwrap_or_else(|| self.created_at.saturating_mul(1000))
    }
}

/// The current time in Unix milliseconds.
fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
