//! A scan turned into what its page shows: text, figures and rows, so the
//! templates stay free of logic.

use super::pages::{format_date, human_size};
use crate::scan::verdict::{Verdict, headline};
use crate::scan::{
    AiAnalysis, EngineVerdict, FailureReason, Mode, Report, Scan, ScanState, Subject, unix_now,
};
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
    /// What went wrong, and what to do about it.
    pub failure: Option<(&'static str, String)>,
    pub not_found: bool,
    pub outcome: Option<Outcome>,
    pub details: Vec<(&'static str, String)>,
    pub names: Vec<String>,
    pub engines: Vec<EngineVerdict>,
    pub created: String,
    /// "VirusTotal last analysed this file 3 days ago (2024-05-01 14:03 UTC)."
    pub report_age: Option<String>,
    /// VirusTotal's own AI analyses, shown attributed.
    pub ai_analyses: Vec<AiAnalysis>,
    pub summary: Option<SummaryView>,
}

/// A stored summary, ready to show.
pub struct SummaryView {
    pub text: String,
    /// Who wrote it, as a phrase: "the language model llama3".
    pub author: String,
    pub written: String,
}

/// A summary writer's name as the page says it.
pub fn author_label(author: &str) -> String {
    if author == "built-in" {
        "this server's built-in explainer".to_owned()
    } else {
        format!("the language model {author}")
    }
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
            // A searched hash is no name; the report may know one.
            Subject::Hash { .. } => scan
                .report
                .as_ref()
                .and_then(|r| r.meaningful_name.clone())
                .unwrap_or_else(|| "Hash search".to_owned()),
        };
        let progress = match (&scan.state, scan.mode) {
            _ if scan.waiting_for_quota && !scan.state.is_final() => Some(
                "Waiting for VirusTotal quota: this server may only ask VirusTotal a few times \
                 a minute. The scan goes on by itself.",
            ),
            (ScanState::Queued, _) => Some("Waiting to ask VirusTotal about this file."),
            (ScanState::Uploading, _) => Some("Uploading the file to VirusTotal."),
            (ScanState::Analysing { .. }, _) => {
                Some("VirusTotal is analysing the file. This usually takes a minute or two.")
            }
            _ => None,
        };
        let failure = match &scan.state {
            ScanState::Failed { reason } => Some((reason.title(), advice(*reason, unix_now()))),
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
                Mode::Reanalyse => "Reanalysis: VirusTotal was asked to scan the file again",
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
            ai_analyses: report.map(|r| r.ai_analyses.clone()).unwrap_or_default(),
            summary: scan
                .summary
                .as_ref()
                .filter(|_| report.is_some())
                .map(|s| SummaryView {
                    text: s.text.clone(),
                    author: author_label(&s.author),
                    written: format_date(s.written_at),
                }),
            report_age: report.and_then(|r| r.last_analysis_date).map(|date| {
                format!(
                    "VirusTotal last analysed this file {} ({}).",
                    age(unix_now() - date),
                    format_date(date)
                )
            }),
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

/// What to do about a failure; for a used-up quota, also how long until
/// VirusTotal's daily quota resets at midnight UTC.
fn advice(reason: FailureReason, now: i64) -> String {
    let advice = reason.advice();
    if reason != FailureReason::QuotaExceeded {
        return advice.to_owned();
    }
    let until_midnight = 86_400 - now.rem_euclid(86_400);
    let hours = until_midnight / 3600;
    let when = match hours {
        0 => "in less than an hour".to_owned(),
        1 => "in about an hour".to_owned(),
        n => format!("in about {n} hours"),
    };
    format!("{advice} That is {when}.")
}

/// "just now", "5 minutes ago", "3 days ago".
fn age(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit} ago")
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match seconds {
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86_400 => plural(s / 3600, "hour"),
        s if s < 86_400 * 365 => plural(s / 86_400, "day"),
        s => plural(s / (86_400 * 365), "year"),
    }
}

fn size_with_bytes(bytes: u64) -> String {
    if bytes < 1000 {
        human_size(bytes)
    } else {
        format!("{} ({bytes} bytes)", human_size(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::age;
    use crate::scan::FailureReason;

    #[test]
    fn a_used_up_quota_says_when_it_resets() {
        let eleven_pm = 86_400 * 20_000 + 23 * 3600 + 1800;
        assert!(
            super::advice(FailureReason::QuotaExceeded, eleven_pm)
                .ends_with("resets at 00:00 UTC. That is in less than an hour."),
            "{}",
            super::advice(FailureReason::QuotaExceeded, eleven_pm)
        );
        let ten_am = 86_400 * 20_000 + 10 * 3600 + 120;
        assert!(
            super::advice(FailureReason::QuotaExceeded, ten_am).ends_with("in about 13 hours.")
        );
        assert_eq!(
            super::advice(FailureReason::Unavailable, ten_am),
            FailureReason::Unavailable.advice()
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(5), "just now");
        assert_eq!(age(60), "1 minute ago");
        assert_eq!(age(7200), "2 hours ago");
        assert_eq!(age(86_400 * 3), "3 days ago");
        assert_eq!(age(86_400 * 800), "2 years ago");
    }
}
