//! The plain verdict drawn from detection figures.

use crate::virustotal::types::AnalysisStats;

/// What the figures say, from worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Several engines call the file malicious.
    Malicious,
    /// One to three engines call it malicious: often a false positive.
    FewDetections,
    /// No engine calls it malicious, but some find it suspicious.
    Suspicious,
    /// Engines looked and none flags it.
    Clean,
    /// No engine gave a verdict (unsupported type, timeouts).
    Unknown,
}

/// From this many malicious verdicts on, a file is called malicious outright.
const MALICIOUS_THRESHOLD: u32 = 4;

impl Verdict {
    pub fn from_stats(stats: &AnalysisStats) -> Self {
        let answered = stats.malicious + stats.suspicious + stats.undetected + stats.harmless;
        if stats.malicious >= MALICIOUS_THRESHOLD {
            Self::Malicious
        } else if stats.malicious > 0 {
            Self::FewDetections
        } else if stats.suspicious > 0 {
            Self::Suspicious
        } else if answered > 0 {
            Self::Clean
        } else {
            Self::Unknown
        }
    }

    /// A short label that does not rely on colour.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malicious => "Malicious",
            Self::FewDetections => "Flagged by a few engines",
            Self::Suspicious => "Suspicious",
            Self::Clean => "No engine flags this file",
            Self::Unknown => "No verdict",
        }
    }

    /// The CSS class suffix for the verdict's styling.
    pub fn css(self) -> &'static str {
        match self {
            Self::Malicious => "malicious",
            Self::FewDetections | Self::Suspicious => "suspicious",
            Self::Clean => "clean",
            Self::Unknown => "unknown",
        }
    }
}

/// "60 of 70 engines flag this file", counting suspicious verdicts as flags.
pub fn headline(stats: &AnalysisStats) -> String {
    let flagged = stats.malicious + stats.suspicious;
    let answered = stats.malicious + stats.suspicious + stats.undetected + stats.harmless;
    match (flagged, answered) {
        (_, 0) => "No engine could analyse this file".to_owned(),
        (0, n) => format!("None of {n} engines flags this file"),
        (1, n) => format!("1 of {n} engines flags this file"),
        (f, n) => format!("{f} of {n} engines flag this file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(malicious: u32, suspicious: u32, undetected: u32) -> AnalysisStats {
        AnalysisStats {
            malicious,
            suspicious,
            undetected,
            ..AnalysisStats::default()
        }
    }

    #[test]
    fn headline_counts_flags_among_answering_engines() {
        assert_eq!(
            headline(&stats(60, 0, 10)),
            "60 of 70 engines flag this file"
        );
        assert_eq!(
            headline(&stats(1, 0, 69)),
            "1 of 70 engines flags this file"
        );
        assert_eq!(
            headline(&stats(0, 0, 70)),
            "None of 70 engines flags this file"
        );
        assert_eq!(
            headline(&stats(0, 0, 0)),
            "No engine could analyse this file"
        );
    }

    #[test]
    fn verdict_follows_the_figures() {
        assert_eq!(Verdict::from_stats(&stats(60, 0, 10)), Verdict::Malicious);
        assert_eq!(
            Verdict::from_stats(&stats(2, 0, 68)),
            Verdict::FewDetections
        );
        assert_eq!(Verdict::from_stats(&stats(0, 1, 69)), Verdict::Suspicious);
        assert_eq!(Verdict::from_stats(&stats(0, 0, 70)), Verdict::Clean);
        assert_eq!(Verdict::from_stats(&stats(0, 0, 0)), Verdict::Unknown);
    }
}
