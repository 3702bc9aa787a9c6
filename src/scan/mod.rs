//! The domain: scan records, verdicts, and the lifecycle that drives a scan
//! from submission to a report.

mod job;
mod record;
mod report;
mod retry;
mod service;
pub mod verdict;

pub use record::{FailureReason, FileHashes, Mode, Scan, ScanState, Subject, unix_now};
pub use report::{AiAnalysis, EngineVerdict, Report};
pub use service::{HashQuery, InvalidHash, ScanError, Scanner, Timing};
