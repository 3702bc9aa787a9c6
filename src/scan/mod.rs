//! The domain: scan records, verdicts, and the lifecycle that drives a scan
//! from submission to a report, shared safely between app instances.

mod job;
mod record;
mod report;
mod retry;
mod service;
mod summaries;
pub mod verdict;
mod worker;

pub use record::{FailureReason, FileHashes, Mode, Scan, ScanState, Subject, unix_now};
pub use report::{AiAnalysis, EngineVerdict, Report};
pub use service::{HashQuery, InvalidHash, ScanError, Scanner, Timing};
pub use summaries::{StoredSummary, SummaryEvent, SummaryFeed, SummaryHub};
