//! A scan turned into what its page shows: text, figures and rows, so the
//! templates stay free of logic.

use super::pages::{format_date, human_size};
use crate::scan::verdict::{Verdict, headline};
use crate::scan::{EngineVerdict, Mode, Report, Scan, ScanState, Subject};
use crate::virustotal::types::AnalysisStats;

/// Everything the scan page and its status fragment show.
pub struct ScanView {
    pub id: String,
    pub heading: String,
    pub mode_label: &'static str,
    pub status: &'static str,
    pub is_final: bool,
    /// What is happening now, while the scan is not final.
    pub progress: Option<&'static str>,
    pub failure: Option<(&'static str, &'static str)>,
    pub not_found: bool,
    pub outcome: Option<Outcome>,
    pub details: Vec<(&'static str, String)>,
    pub names: Vec<String>,
    pub engines: Vec<EngineVerdict>,
    pub created: String,
}

/// The verdict of a completed scan.
pub struct Outcome {
    pub headline: String,
    pub label: &'static str,
    pub css: &'static str,
    pub stats: AnalysisStats,
    pub threat_label: Option<String>,
}

impl ScanView {
    pub fn new(scan: &Scan) -> Self {
        let heading = match &scan.subject {
            Subject::File {
                name: Some(name), ..
            } => name.clone(),
            Subject::File { name: None, .. } => "Uploaded file".to_owned(),
            Subject::Hash { hash } => format!("Hash {hash}"),
        };
        let progress = match (&scan.state, scan.mode) {
            (ScanState::Queued, _) => Some("Waiting to ask VirusTotal about this file."),
            (ScanState::Uploading, _) => Some("Uploading the file to VirusTotal."),
            (ScanState::Analysing { .. }, _) => {
                Some("VirusTotal is analysing the file. This usually takes a minute or two.")
            }
            _ => None,
        };
        let failure = match &scan.state {
            ScanState::Failed { reason } => Some((reason.title(), reason.advice())),
            _ => None,
        };
        let report = scan
            .report
            .as_ref()
            .filter(|_| scan.state == ScanState::Completed);
        Self {
            id: scan.id.to_string(),
            heading,
            mode_label: match scan.mode {
                Mode::Lookup => "Hash lookup: the file was not sent to VirusTotal",
                Mode::Upload => "Full scan: unknown files are uploaded to VirusTotal",
            },
            status: scan.state.status_code(),
            is_final: scan.state.is_final(),
            progress,
            failure,
            not_found: scan.state == ScanState::NotFound,
            outcome: report.map(outcome),
            details: details(&scan.subject, report),
            names: report.map(|r| r.names.clone()).unwrap_or_default(),
            engines: report.map(|r| r.engines.clone()).unwrap_or_default(),
            created: format_date(scan.created_at),
        }
    }
}

fn outcome(report: &Report) -> Outcome {
    let verdict = Verdict::from_stats(&report.stats);
    Outcome {
        headline: headline(&report.stats),
        label: verdict.label(),
        css: verdict.css(),
        stats: report.stats,
        threat_label: report.threat_label.clone(),
    }
}

/// The file facts table: from the report when there is one, else from the upload.
fn details(subject: &Subject, report: Option<&Report>) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    let mut push = |label: &'static str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            rows.push((label, value));
        }
    };
    match (report, subject) {
        (Some(r), _) => {
            push("SHA-256", Some(r.sha256.clone()));
            push("SHA-1", r.sha1.clone());
            push("MD5", r.md5.clone());
            push("Size", r.size.map(size_with_bytes));
            push("Type", r.type_description.clone());
            push("Magic", r.magic.clone());
            push("Known as", r.meaningful_name.clone());
            push(
                "First submitted to VirusTotal",
                r.first_submission_date.map(format_date),
            );
            push("Last analysed", r.last_analysis_date.map(format_date));
            push("Times submitted", r.times_submitted.map(|n| n.to_string()));
            push("Community reputation", r.reputation.map(|n| n.to_string()));
            push("Tags", (!r.tags.is_empty()).then(|| r.tags.join(", ")));
        }
        (None, Subject::File { size, hashes, .. }) => {
            push("SHA-256", Some(hashes.sha256.clone()));
            push("SHA-1", Some(hashes.sha1.clone()));
            push("MD5", Some(hashes.md5.clone()));
            push("Size", Some(size_with_bytes(*size)));
        }
        (None, Subject::Hash { hash }) => push("Hash searched", Some(hash.clone())),
    }
    rows
}

fn size_with_bytes(bytes: u64) -> String {
    if bytes < 1000 {
        human_size(bytes)
    } else {
        format!("{} ({bytes} bytes)", human_size(bytes))
    }
}
