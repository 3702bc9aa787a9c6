//! Facts both writers draw from a report: which engines flag the file, which of
//! them are well-known vendors, what VirusTotal's code analysis concluded, and
//! text cleaned up for reuse.
//!
//! Everything that comes from a report (engine labels, names, AI text) may have
//! been shaped by whoever made the file, so it passes through [`clean`] before a
//! writer repeats it.

use crate::scan::{EngineVerdict, Report};

/// Engine-name prefixes of well-known vendors, compared after [`engine_key`]
/// lower-cases a name and drops everything but letters and digits, so that
/// "ESET-NOD32", "McAfee-GW-Edition" or "Dr.Web" all match.
const WELL_KNOWN_PREFIXES: &[&str] = &[
    "microsoft",
    "kaspersky",
    "eset",
    "bitdefender",
    "sophos",
    "crowdstrike",
    "symantec",
    "mcafee",
    "trellix",
    "avast",
    "avg",
    "malwarebytes",
    "trendmicro",
    "fortinet",
    "google",
    "avira",
    "panda",
    "fsecure",
    "drweb",
    "clamav",
    "gdata",
    "emsisoft",
    "sentinelone",
    "webroot",
    "paloalto",
];

/// Whether an engine belongs to a vendor most people have heard of.
pub(crate) fn is_well_known(engine: &str) -> bool {
    let key = engine_key(engine);
    WELL_KNOWN_PREFIXES
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

fn engine_key(engine: &str) -> String {
    engine
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Engines that call the file malicious or suspicious, in the report's order.
pub(crate) fn flagging(report: &Report) -> impl Iterator<Item = &EngineVerdict> {
    report
        .engines
        .iter()
        .filter(|e| e.category == "malicious" || e.category == "suspicious")
}

/// Engines that looked at the file and found nothing.
pub(crate) fn clearing(report: &Report) -> impl Iterator<Item = &EngineVerdict> {
    report
        .engines
        .iter()
        .filter(|e| e.category == "undetected" || e.category == "harmless")
}

/// What an AI analysis concluded, read from its free-text verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AiOpinion {
    Malicious,
    Suspicious,
    Benign,
    /// A verdict in words we do not recognise.
    Other,
    /// No verdict given, only a description.
    None,
}

impl AiOpinion {
    pub(crate) fn from_verdict(verdict: Option<&str>) -> Self {
        let Some(verdict) = verdict.map(str::trim).filter(|v| !v.is_empty()) else {
            return Self::None;
        };
        let verdict = verdict.to_lowercase();
        if verdict.contains("malicious") || verdict.contains("malware") {
            Self::Malicious
        } else if verdict.contains("suspicious") {
            Self::Suspicious
        } else if ["benign", "harmless", "clean", "undetected"]
            .iter()
            .any(|w| verdict.contains(w))
        {
            Self::Benign
        } else {
            Self::Other
        }
    }
}

/// `text` made safe to repeat: control and bidirectional-override characters
/// become spaces (they can hide or reorder what a reader sees), runs of
/// whitespace collapse, and anything past `max_chars` is cut off with an ellipsis.
pub(crate) fn clean(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut count = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() || is_format_trick(c) {
            pending_space = count > 0;
            continue;
        }
        let needed = if pending_space { 2 } else { 1 };
        if count + needed > max_chars {
            out.push('…');
            return out;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
        count += needed;
    }
    out
}

/// Invisible characters that change how text is laid out rather than what it says.
fn is_format_trick(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
    )
}

pub(crate) use crate::format::{day as utc_date, human_size};

/// "A", "A and B", "A, B and C".
pub(crate) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_vendors_match_despite_punctuation_and_suffixes() {
        for name in [
            "Microsoft",
            "ESET-NOD32",
            "McAfee-GW-Edition",
            "McAfeeD",
            "Dr.Web",
            "DrWeb",
            "F-Secure",
            "TrendMicro-HouseCall",
            "BitDefenderTheta",
            "Trellix (ENS)",
            "CrowdStrike Falcon",
            "kaspersky",
        ] {
            assert!(is_well_known(name), "{name}");
        }
        for name in [
            "Bkav",
            "MicroWorld-eScan",
            "Jiangmin",
            "MaxSecure",
            "Zillya",
            "",
        ] {
            assert!(!is_well_known(name), "{name}");
        }
    }

    #[test]
    fn ai_verdicts_are_read_loosely() {
        assert_eq!(
            AiOpinion::from_verdict(Some("MALICIOUS")),
            AiOpinion::Malicious
        );
        assert_eq!(AiOpinion::from_verdict(Some("benign")), AiOpinion::Benign);
        assert_eq!(
            AiOpinion::from_verdict(Some("Suspicious")),
            AiOpinion::Suspicious
        );
        assert_eq!(AiOpinion::from_verdict(Some("who knows")), AiOpinion::Other);
        assert_eq!(AiOpinion::from_verdict(Some("  ")), AiOpinion::None);
        assert_eq!(AiOpinion::from_verdict(None), AiOpinion::None);
    }

    #[test]
    fn clean_flattens_and_truncates() {
        assert_eq!(clean("  a\n\n b\tc  ", 100), "a b c");
        assert_eq!(clean("abc\u{202E}def", 100), "abc def");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("ab cd", 4), "ab c…");
        assert_eq!(clean("éééé", 4), "éééé");
        assert_eq!(clean("", 4), "");
    }

    #[test]
    fn dates_read_plainly() {
        assert_eq!(utc_date(1_614_816_000).as_deref(), Some("2021-03-04"));
        assert_eq!(utc_date(i64::MAX), None);
    }

    #[test]
    fn lists_read_as_prose() {
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_and(&items(&[])), "");
        assert_eq!(join_and(&items(&["A"])), "A");
        assert_eq!(join_and(&items(&["A", "B"])), "A and B");
        assert_eq!(join_and(&items(&["A", "B", "C"])), "A, B and C");
    }
}
