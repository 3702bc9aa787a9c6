//! The built-in summary writer: a fixed, plain-language explanation of a report,
//! used when no LLM is configured.
//!
//! It says what the figures mean (how many engines flag the file and whether
//! well-known vendors are among them), names the threat, the file type and when
//! VirusTotal first saw it, weighs VirusTotal's own code analysis when there is
//! one, and ends with what to do next. The same report always gives the same
//! text. It is streamed sentence by sentence through the same path as the LLM's
//! output, so the page behaves the same whoever writes.

use async_trait::async_trait;
use futures_util::StreamExt as _;

use super::facts::{self, AiOpinion};
use super::{SummaryError, SummaryStream, SummaryWriter};
use crate::scan::verdict::Verdict;
use crate::scan::{AiAnalysis, EngineVerdict, Report};

/// Longest engine label, threat name or file type repeated, in characters.
const MAX_LABEL_CHARS: usize = 60;

/// Longest engine or AI source name repeated, in characters.
const MAX_NAME_CHARS: usize = 40;

/// Vendors named before the rest are only counted.
const MAX_LISTED_VENDORS: usize = 5;

/// The most flags (malicious or suspicious) that can read as a false positive.
const FALSE_POSITIVE_MAX_FLAGS: u32 = 3;

/// Engines named (with their labels) before the rest are only counted.
const MAX_LISTED_ENGINES: usize = 3;

/// Writes the summary from the report alone, without any outside service.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuiltinWriter;

#[async_trait]
impl SummaryWriter for BuiltinWriter {
    fn author(&self) -> String {
        "built-in".to_owned()
    }

    async fn write(&self, report: &Report) -> Result<SummaryStream, SummaryError> {
        let chunks = self.chunks(report);
        Ok(futures_util::stream::iter(chunks.into_iter().map(Ok)).boxed())
    }
}

impl BuiltinWriter {
    /// The summary as the chunks it is streamed in: one per sentence, with the
    /// space or blank line that separates it from the one before.
    pub fn chunks(&self, report: &Report) -> Vec<String> {
        let mut chunks = Vec::new();
        for (p, paragraph) in paragraphs(report).into_iter().enumerate() {
            for (s, sentence) in paragraph.into_iter().enumerate() {
                let separator = match (p, s) {
                    (0, 0) => "",
                    (_, 0) => "\n\n",
                    _ => " ",
                };
                chunks.push(format!("{separator}{sentence}"));
            }
        }
        chunks
    }

    /// The whole summary as one text; paragraphs are separated by blank lines.
    pub fn compose(&self, report: &Report) -> String {
        self.chunks(report).concat()
    }
}

/// How careful the reader should be, which decides the advice at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caution {
    Danger,
    Careful,
    LikelyFalsePositive,
    Safe,
    Unknown,
}

fn paragraphs(report: &Report) -> Vec<Vec<String>> {
    let verdict = Verdict::from_stats(&report.stats);
    let (mut caution, headline) = verdict_paragraph(report, verdict);
    let mut paragraphs = vec![headline];

    let details = details_paragraph(report, verdict);
    if !details.is_empty() {
        paragraphs.push(details);
    }

    if let Some(analysis) = leading_ai_analysis(&report.ai_analyses) {
        let opinion = AiOpinion::from_verdict(analysis.verdict.as_deref());
        paragraphs.push(ai_paragraph(report, analysis, opinion, caution));
        caution = weigh_ai_opinion(caution, opinion);
    }

    paragraphs.push(advice(caution));
    paragraphs
}

// ---------------------------------------------------------------------------
// What the engines say
// ---------------------------------------------------------------------------

fn verdict_paragraph(report: &Report, verdict: Verdict) -> (Caution, Vec<String>) {
    let stats = &report.stats;
    let answered = report.engines_with_verdict();
    match verdict {
        Verdict::Malicious => (Caution::Danger, many_detections(report, answered)),
        Verdict::FewDetections => few_detections(report, answered),
        Verdict::Suspicious => (Caution::Careful, only_suspicious(report, answered)),
        Verdict::Clean => (
            Caution::Safe,
            vec![
                format!(
                    "None of the {answered} security engines that analysed this file flags it."
                ),
                "That is a good sign, though not a guarantee: very new malware can go \
                 unnoticed for a while."
                    .to_owned(),
            ],
        ),
        Verdict::Unknown => {
            let mut sentences =
                vec!["No security engine could give a verdict on this file.".to_owned()];
            let mut reasons = Vec::new();
            if stats.type_unsupported > 0 {
                reasons.push(format!(
                    "{} do not support this type of file",
                    engines(stats.type_unsupported)
                ));
            }
            let timeouts = stats.timeout + stats.confirmed_timeout;
            if timeouts > 0 {
                reasons.push(format!("{} ran out of time", engines(timeouts)));
            }
            if stats.failure > 0 {
                reasons.push(format!("{} failed", engines(stats.failure)));
            }
            if !reasons.is_empty() {
                sentences.push(format!("{}.", capitalise(&facts::join_and(&reasons))));
            }
            sentences.push("That says nothing either way about whether it is safe.".to_owned());
            (Caution::Unknown, sentences)
        }
    }
}

fn many_detections(report: &Report, answered: u32) -> Vec<String> {
    let malicious = report.stats.malicious;
    let mut sentences = vec![format!(
        "{malicious} of {answered} security engines flag this file as malicious, so it is very \
         likely harmful."
    )];

    let vendors = well_known_names(facts::flagging(report));
    let sentence = match vendors.len() {
        0 => "None of the best-known vendors is among them, but this many detections should \
              still be taken seriously."
            .to_owned(),
        1 => format!("Among them is the well-known vendor {}.", vendors[0]),
        n if n <= MAX_LISTED_VENDORS => {
            format!(
                "Among them are well-known vendors: {}.",
                facts::join_and(&vendors)
            )
        }
        n => format!(
            "Among them are {n} well-known vendors, including {}.",
            facts::join_and(&vendors[..MAX_LISTED_VENDORS])
        ),
    };
    sentences.push(sentence);

    if report.stats.suspicious > 0 {
        sentences.push(format!(
            "{} more find it suspicious.",
            report.stats.suspicious
        ));
    }
    sentences
}

fn few_detections(report: &Report, answered: u32) -> (Caution, Vec<String>) {
    let malicious = report.stats.malicious;
    let flags = if malicious == 1 { "flags" } else { "flag" };
    let detecting: Vec<&EngineVerdict> = report
        .engines
        .iter()
        .filter(|e| e.category == "malicious")
        .collect();

    let mut sentences = vec![if detecting.is_empty() {
        format!("{malicious} of {answered} security engines {flags} this file as malicious.")
    } else {
        format!(
            "{malicious} of {answered} security engines {flags} this file as malicious: {}.",
            describe_engines(&detecting)
        )
    }];

    let suspicious = report.stats.suspicious;
    if suspicious > 0 {
        let finds = if suspicious == 1 { "finds" } else { "find" };
        sentences.push(format!("{suspicious} more {finds} it suspicious."));
    }

    // Without the per-engine list there is no telling who flagged it, so the
    // false-positive reading cannot be offered.
    if detecting.is_empty() {
        sentences.push(
            "The report does not say which engines these are, so it is hard to tell a false \
             positive from a real threat."
                .to_owned(),
        );
        return (Caution::Careful, sentences);
    }

    // Suspicious verdicts count too: a major vendor finding the file
    // suspicious is no sign of a false positive.
    let vendors = well_known_names(facts::flagging(report));
    let flagged = malicious + suspicious;
    if vendors.is_empty() && flagged > FALSE_POSITIVE_MAX_FLAGS {
        sentences.push(format!(
            "None of the major vendors flags it, but {flagged} engines in all find something \
             wrong with it, which is more than a stray detection."
        ));
        return (Caution::Careful, sentences);
    }
    if vendors.is_empty() {
        let clearing = well_known_names(facts::clearing(report));
        sentences.push(if clearing.is_empty() {
            "None of the major vendors flags it.".to_owned()
        } else {
            let listed = &clearing[..clearing.len().min(4)];
            format!(
                "None of the major vendors flags it: {} found nothing.",
                facts::join_and(listed)
            )
        });
        sentences.push(
            "When only one to three lesser-known engines flag a file and the major vendors do \
             not, it is often a false positive: a harmless file mistaken for a threat."
                .to_owned(),
        );
        (Caution::LikelyFalsePositive, sentences)
    } else {
        let (is, vendor) = if vendors.len() == 1 {
            ("is", "a well-known vendor")
        } else {
            ("are", "well-known vendors")
        };
        sentences.push(format!(
            "Among the engines that flag it, {} {is} {vendor}, so this deserves more weight \
             than a stray detection by a lesser-known engine.",
            facts::join_and(&vendors)
        ));
        sentences.push(
            "A few detections can still be a false positive, but do not count on it.".to_owned(),
        );
        (Caution::Careful, sentences)
    }
}

fn only_suspicious(report: &Report, answered: u32) -> Vec<String> {
    let suspicious = report.stats.suspicious;
    let finds = if suspicious == 1 { "finds" } else { "find" };
    let engines: Vec<&EngineVerdict> = report
        .engines
        .iter()
        .filter(|e| e.category == "suspicious")
        .collect();

    let mut sentences = vec![if engines.is_empty() {
        format!(
            "No engine calls this file malicious, but {suspicious} of {answered} {finds} it \
             suspicious."
        )
    } else {
        format!(
            "No engine calls this file malicious, but {suspicious} of {answered} {finds} it \
             suspicious: {}.",
            describe_engines(&engines)
        )
    }];
    sentences.push(
        "Suspicious usually means the file does something malware also does, such as hiding \
         its code or changing system settings; plenty of legitimate tools do that too."
            .to_owned(),
    );
    let vendors = well_known_names(engines.iter().copied());
    if !vendors.is_empty() {
        let is = if vendors.len() == 1 {
            "is a well-known vendor"
        } else {
            "are well-known vendors"
        };
        sentences.push(format!(
            "{} {is}, so give this some weight.",
            facts::join_and(&vendors)
        ));
    }
    sentences
}

/// `Bkav ("W32.AIDetect.malware1")`, up to a few engines, then a count of the rest.
fn describe_engines(engines: &[&EngineVerdict]) -> String {
    let mut parts: Vec<String> = engines
        .iter()
        .take(MAX_LISTED_ENGINES)
        .map(|e| {
            let name = facts::clean(&e.engine, MAX_NAME_CHARS);
            match e
                .result
                .as_deref()
                .map(|r| facts::clean(r, MAX_LABEL_CHARS))
            {
                Some(label) if !label.is_empty() => format!("{name} (\"{label}\")"),
                _ => name,
            }
        })
        .collect();
    let rest = engines.len().saturating_sub(MAX_LISTED_ENGINES);
    if rest > 0 {
        parts.push(format!("{rest} more"));
    }
    facts::join_and(&parts)
}

/// Names of the well-known vendors among `engines`, cleaned, without repeats.
fn well_known_names<'a>(engines: impl Iterator<Item = &'a EngineVerdict>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for engine in engines.filter(|e| facts::is_well_known(&e.engine)) {
        let name = facts::clean(&engine.engine, MAX_NAME_CHARS);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn engines(count: u32) -> String {
    if count == 1 {
        "1 engine".to_owned()
    } else {
        format!("{count} engines")
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Threat, file type, dates
// ---------------------------------------------------------------------------

fn details_paragraph(report: &Report, verdict: Verdict) -> Vec<String> {
    let mut sentences = Vec::new();

    let flagged = matches!(
        verdict,
        Verdict::Malicious | Verdict::FewDetections | Verdict::Suspicious
    );
    let label = report
        .threat_label
        .as_deref()
        .map(|l| facts::clean(l, MAX_LABEL_CHARS))
        .filter(|l| !l.is_empty());
    if let (true, Some(label)) = (flagged, label) {
        let kinds: Vec<String> = report
            .threat_categories
            .iter()
            .take(3)
            .map(|c| threat_kind(c))
            .filter(|k| !k.is_empty())
            .collect();
        sentences.push(if kinds.is_empty() {
            format!("Engines that flag it most often call it \"{label}\".")
        } else {
            format!(
                "Engines that flag it most often call it \"{label}\" and class it as {}.",
                facts::join_and(&kinds)
            )
        });
    }

    let file_type = report
        .type_description
        .as_deref()
        .map(|t| facts::clean(t, MAX_LABEL_CHARS))
        .filter(|t| !t.is_empty());
    match (file_type, report.size) {
        (Some(kind), Some(size)) => sentences.push(format!(
            "It is a {kind} file of {}.",
            facts::human_size(size)
        )),
        (Some(kind), None) => sentences.push(format!("It is a {kind} file.")),
        (None, Some(size)) => sentences.push(format!("The file is {}.", facts::human_size(size))),
        (None, None) => {}
    }

    let first = report.first_submission_date.and_then(facts::utc_date);
    let last = report.last_analysis_date.and_then(facts::utc_date);
    match (first, last) {
        (Some(first), Some(last)) if first != last => sentences.push(format!(
            "VirusTotal first saw it on {first} and last analysed it on {last} (dates in UTC)."
        )),
        (Some(first), _) => {
            sentences.push(format!("VirusTotal first saw it on {first} (UTC)."));
        }
        (None, Some(last)) => {
            sentences.push(format!("VirusTotal last analysed it on {last} (UTC)."));
        }
        (None, None) => {}
    }
    sentences
}

/// A plain description of one of VirusTotal's threat categories.
fn threat_kind(category: &str) -> String {
    let category = facts::clean(category, MAX_NAME_CHARS);
    let plain = match category.to_ascii_lowercase().as_str() {
        "trojan" => "a trojan",
        "ransomware" => "ransomware",
        "pua" | "pup" => "potentially unwanted software",
        "adware" => "adware",
        "downloader" => "a downloader",
        "dropper" => "a dropper",
        "miner" | "coinminer" => "a cryptocurrency miner",
        "hacktool" => "a hacking tool",
        "virus" => "a virus",
        "worm" => "a worm",
        "spyware" => "spyware",
        "banker" => "a banking trojan",
        "backdoor" => "a backdoor",
        "rootkit" => "a rootkit",
        "phishing" => "phishing",
        "exploit" => "an exploit",
        _ => {
            return if category.is_empty() {
                category
            } else {
                format!("\"{category}\"")
            };
        }
    };
    plain.to_owned()
}

// ---------------------------------------------------------------------------
// VirusTotal's own code analysis
// ---------------------------------------------------------------------------

/// The analysis to talk about: the first with a verdict we can read, else the first.
fn leading_ai_analysis(analyses: &[AiAnalysis]) -> Option<&AiAnalysis> {
    analyses
        .iter()
        .find(|a| {
            matches!(
                AiOpinion::from_verdict(a.verdict.as_deref()),
                AiOpinion::Malicious | AiOpinion::Suspicious | AiOpinion::Benign
            )
        })
        .or_else(|| analyses.first())
}

fn ai_paragraph(
    report: &Report,
    analysis: &AiAnalysis,
    opinion: AiOpinion,
    caution: Caution,
) -> Vec<String> {
    let source = facts::clean(&analysis.source, MAX_NAME_CHARS);
    let source = if source.is_empty() {
        "VirusTotal's AI analysis".to_owned()
    } else {
        source
    };

    let mut sentences = vec![match opinion {
        AiOpinion::Malicious => {
            format!("{source} also read the file's code and judged it malicious.")
        }
        AiOpinion::Suspicious => {
            format!("{source} also read the file's code and judged it suspicious.")
        }
        AiOpinion::Benign => format!("{source} also read the file's code and judged it benign."),
        AiOpinion::Other => {
            let verdict = facts::clean(analysis.verdict.as_deref().unwrap_or(""), MAX_NAME_CHARS);
            format!("{source} also read the file's code; its verdict is \"{verdict}\".")
        }
        AiOpinion::None => format!(
            "{source} also read the file's code and describes what it does; its description \
             is shown with the report."
        ),
    }];

    let comment = match (opinion, caution) {
        (AiOpinion::Malicious, Caution::Safe | Caution::Unknown) => Some(
            "That differs from the engines, so treat the file with caution until you know more.",
        ),
        (AiOpinion::Malicious | AiOpinion::Suspicious, Caution::LikelyFalsePositive) => {
            Some("That makes a false positive less likely.")
        }
        (AiOpinion::Suspicious, Caution::Safe | Caution::Unknown) => {
            Some("That is more cautious than the engines, so weigh where the file came from.")
        }
        (AiOpinion::Benign, Caution::LikelyFalsePositive) => {
            Some("That supports the false-positive reading.")
        }
        (AiOpinion::Benign, Caution::Danger | Caution::Careful) => Some(
            "The engines' detections still count for more: an automated reading of code can \
             miss what a file really does.",
        ),
        (AiOpinion::Malicious, Caution::Danger) | (AiOpinion::Benign, Caution::Safe) => {
            Some("It agrees with the engines.")
        }
        _ => None,
    };
    if let Some(comment) = comment {
        sentences.push(comment.to_owned());
    }

    let others = report.ai_analyses.len().saturating_sub(1);
    if others > 0 {
        let analyses = if others == 1 {
            "analysis is"
        } else {
            "analyses are"
        };
        sentences.push(format!(
            "{others} more AI {analyses} shown with the report."
        ));
    }
    sentences
}

/// A code analysis that sees danger raises the caution; one that sees none
/// lowers it only from "likely false positive" to nothing, never below what the
/// engines say.
fn weigh_ai_opinion(caution: Caution, opinion: AiOpinion) -> Caution {
    match (opinion, caution) {
        (
            AiOpinion::Malicious | AiOpinion::Suspicious,
            Caution::Safe | Caution::Unknown | Caution::LikelyFalsePositive,
        ) => Caution::Careful,
        _ => caution,
    }
}

// ---------------------------------------------------------------------------
// What to do next
// ---------------------------------------------------------------------------

fn advice(caution: Caution) -> Vec<String> {
    let sentences: &[&str] = match caution {
        Caution::Danger => &[
            "Do not open or run this file, and delete it.",
            "If you have already opened it, disconnect the computer from the network, run a \
             full scan with up-to-date security software, change the passwords you used on that \
             computer from another device, and ask someone who knows IT security for help.",
        ],
        Caution::Careful => &[
            "Do not open it unless you are sure where it came from and you expected it.",
            "If in doubt, delete it or ask someone who knows IT security; checking again in a \
             few days can also help, as vendors update their verdicts.",
        ],
        Caution::LikelyFalsePositive => &[
            "If it came from a source you trust, such as the software maker's official website, \
             it is probably safe.",
            "If you are unsure, wait a few days and check again: vendors usually correct false \
             positives quickly.",
        ],
        Caution::Safe => &[
            "If you trust where it came from, you can open it as usual.",
            "Keep your security software up to date all the same.",
        ],
        Caution::Unknown => &[
            "Treat it like any file you know nothing about: open it only if you trust its \
             source, and try checking again later.",
        ],
    };
    sentences.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::virustotal::types::AnalysisStats;

    /// A report with `malicious` detections by the given engines (in order), the
    /// rest of 70 engines undetected; the flagging engines' labels are "Label.N".
    pub(crate) fn report_flagged_by(flagging: &[&str], suspicious: &[&str]) -> Report {
        let mut engines: Vec<EngineVerdict> = flagging
            .iter()
            .enumerate()
            .map(|(i, name)| EngineVerdict {
                engine: (*name).to_owned(),
                category: "malicious".to_owned(),
                result: Some(format!("Label.{i}")),
            })
            .collect();
        engines.extend(suspicious.iter().map(|name| EngineVerdict {
            engine: (*name).to_owned(),
            category: "suspicious".to_owned(),
            result: Some("Suspicious.Heur".to_owned()),
        }));
        let flagged = flagging.len() + suspicious.len();
        let undetected = 70 - flagged;
        for (i, name) in [
            "Microsoft",
            "Kaspersky",
            "ESET-NOD32",
            "BitDefender",
            "Sophos",
        ]
        .iter()
        .chain(std::iter::repeat(&"Minor"))
        .filter(|n| !flagging.contains(n) && !suspicious.contains(n))
        .take(undetected)
        .enumerate()
        {
            let engine = if *name == "Minor" {
                format!("Minor{i}")
            } else {
                (*name).to_owned()
            };
            engines.push(EngineVerdict {
                engine,
                category: "undetected".to_owned(),
                result: None,
            });
        }
        Report {
            sha256: "a".repeat(64),
            sha1: Some("b".repeat(40)),
            md5: Some("c".repeat(32)),
            size: Some(45_300),
            type_description: Some("Win32 EXE".to_owned()),
            type_tag: Some("peexe".to_owned()),
            magic: None,
            meaningful_name: Some("setup.exe".to_owned()),
            names: vec!["setup.exe".to_owned()],
            tags: Vec::new(),
            first_submission_date: Some(1_614_816_000),
            last_analysis_date: Some(1_714_521_600),
            times_submitted: Some(3),
            reputation: Some(0),
            stats: AnalysisStats {
                malicious: u32::try_from(flagging.len()).unwrap(),
                suspicious: u32::try_from(suspicious.len()).unwrap(),
                undetected: u32::try_from(undetected).unwrap(),
                ..AnalysisStats::default()
            },
            engines,
            threat_label: None,
            threat_categories: Vec::new(),
            threat_names: Vec::new(),
            ai_analyses: Vec::new(),
        }
    }

    fn text(report: &Report) -> String {
        BuiltinWriter.compose(report)
    }

    const MAJORS: [&str; 8] = [
        "Microsoft",
        "Kaspersky",
        "ESET-NOD32",
        "BitDefender",
        "Sophos",
        "CrowdStrike",
        "Symantec",
        "McAfee",
    ];

    #[test]
    fn clean_file() {
        let text = text(&report_flagged_by(&[], &[]));
        assert!(
            text.starts_with("None of the 70 security engines that analysed this file flags it.")
        );
        assert!(text.contains("not a guarantee"));
        assert!(text.contains("you can open it as usual"));
        assert!(!text.contains("false positive"));
        assert!(!text.contains("Do not open"));
    }

    #[test]
    fn few_detections_by_lesser_known_engines_read_as_a_likely_false_positive() {
        let text = text(&report_flagged_by(&["Bkav", "MaxSecure"], &[]));
        assert!(
            text.starts_with(
                "2 of 70 security engines flag this file as malicious: Bkav (\"Label.0\") and \
                 MaxSecure (\"Label.1\")."
            ),
            "{text}"
        );
        assert!(text.contains(
            "None of the major vendors flags it: Microsoft, Kaspersky, ESET-NOD32 and \
             BitDefender found nothing."
        ));
        assert!(text.contains("often a false positive"));
        assert!(text.contains("probably safe"));
        assert!(!text.contains("Do not open or run"));
    }

    #[test]
    fn a_major_vendor_finding_it_suspicious_rules_out_a_false_positive() {
        let text = text(&report_flagged_by(&["Bkav"], &["Microsoft"]));
        assert!(text.contains("1 more finds it suspicious."), "{text}");
        assert!(text.contains("Microsoft is a well-known vendor"), "{text}");
        assert!(!text.contains("None of the major vendors"), "{text}");
        assert!(!text.contains("probably safe"), "{text}");
    }

    #[test]
    fn many_suspicious_verdicts_beside_few_detections_are_no_false_positive() {
        let minor: Vec<String> = (0..20).map(|i| format!("Minor{i}x")).collect();
        let minor: Vec<&str> = minor.iter().map(String::as_str).collect();
        let text = text(&report_flagged_by(&["Bkav", "MaxSecure", "Zillya"], &minor));
        assert!(text.contains("20 more find it suspicious."), "{text}");
        assert!(text.contains("23 engines in all"), "{text}");
        assert!(!text.contains("false positive"), "{text}");
        assert!(!text.contains("probably safe"), "{text}");
    }

    #[test]
    fn one_detection_uses_the_singular() {
        let text = text(&report_flagged_by(&["Jiangmin"], &[]));
        assert!(text.starts_with("1 of 70 security engines flags this file as malicious"));
    }

    #[test]
    fn few_detections_including_a_major_vendor_call_for_care() {
        let text = text(&report_flagged_by(&["Bkav", "Microsoft"], &[]));
        assert!(text.contains("Microsoft is a well-known vendor"), "{text}");
        assert!(text.contains("do not count on it"));
        assert!(text.contains("Do not open it unless you are sure"));
        assert!(!text.contains("often a false positive"));
        assert!(!text.contains("probably safe"));
    }

    #[test]
    fn few_detections_without_an_engine_list_do_not_guess() {
        let mut report = report_flagged_by(&["Bkav"], &[]);
        report.engines.clear();
        let text = text(&report);
        assert!(text.starts_with("1 of 70 security engines flags this file as malicious."));
        assert!(text.contains("does not say which engines"));
        assert!(!text.contains("probably safe"));
    }

    #[test]
    fn many_detections_mean_do_not_open_and_delete() {
        let mut flagging: Vec<&str> = vec!["Bkav", "Zillya"];
        flagging.extend(MAJORS);
        let mut report = report_flagged_by(&flagging, &["Jiangmin"]);
        report.threat_label = Some("trojan.emotet/generic".to_owned());
        report.threat_categories = vec!["trojan".to_owned(), "banker".to_owned()];
        let text = text(&report);

        assert!(
            text.starts_with("10 of 70 security engines flag this file as malicious"),
            "{text}"
        );
        assert!(text.contains(
            "Among them are 8 well-known vendors, including Microsoft, Kaspersky, ESET-NOD32, \
             BitDefender and Sophos."
        ));
        assert!(text.contains("1 more find it suspicious."));
        assert!(text.contains(
            "most often call it \"trojan.emotet/generic\" and class it as a trojan and a \
             banking trojan."
        ));
        assert!(text.contains("Do not open or run this file, and delete it."));
        assert!(text.contains("disconnect the computer from the network"));
        assert!(!text.contains("false positive"));
    }

    #[test]
    fn many_detections_without_major_vendors_are_still_serious() {
        let text = text(&report_flagged_by(
            &["Bkav", "Zillya", "Jiangmin", "MaxSecure"],
            &[],
        ));
        assert!(text.contains("None of the best-known vendors is among them"));
        assert!(text.contains("Do not open or run this file"));
    }

    #[test]
    fn only_suspicious() {
        let text = text(&report_flagged_by(&[], &["Sophos", "Bkav"]));
        assert!(text.starts_with(
            "No engine calls this file malicious, but 2 of 70 find it suspicious: Sophos"
        ));
        assert!(text.contains("Sophos is a well-known vendor"));
        assert!(text.contains("Do not open it unless"));
    }

    #[test]
    fn no_engine_could_analyse() {
        let mut report = report_flagged_by(&[], &[]);
        report.engines.clear();
        report.stats = AnalysisStats {
            type_unsupported: 12,
            timeout: 1,
            failure: 2,
            ..AnalysisStats::default()
        };
        let text = text(&report);
        assert!(text.starts_with("No security engine could give a verdict on this file."));
        assert!(text.contains(
            "12 engines do not support this type of file, 1 engine ran out of time and 2 \
             engines failed."
        ));
        assert!(text.contains("says nothing either way"));
        assert!(text.contains("try checking again later"));
    }

    #[test]
    fn details_name_type_size_and_dates() {
        let text = text(&report_flagged_by(&[], &[]));
        assert!(text.contains("It is a Win32 EXE file of 44.2 KiB."));
        assert!(text.contains(
            "VirusTotal first saw it on 2021-03-04 and last analysed it on 2024-05-01 (dates in \
             UTC)."
        ));
    }

    #[test]
    fn threat_label_is_not_mentioned_for_a_clean_file() {
        let mut report = report_flagged_by(&[], &[]);
        report.threat_label = Some("trojan.old/leftover".to_owned());
        assert!(!text(&report).contains("trojan.old"));
    }

    #[test]
    fn ai_analysis_is_weighed_without_quoting_it() {
        let mut report = report_flagged_by(&["Bkav"], &[]);
        let long = "This script downloads a payload. ".repeat(40);
        report.ai_analyses = vec![AiAnalysis {
            source: "VirusTotal Code Insight".to_owned(),
            verdict: Some("malicious".to_owned()),
            analysis: long.clone(),
        }];
        let text = text(&report);
        assert!(text.contains(
            "VirusTotal Code Insight also read the file's code and judged it malicious."
        ));
        assert!(text.contains("That makes a false positive less likely."));
        assert!(!text.contains("downloads a payload"));
        // Its opinion turns "probably safe" into caution.
        assert!(!text.contains("probably safe"));
        assert!(text.contains("Do not open it unless"));
    }

    #[test]
    fn benign_ai_analysis_supports_a_false_positive() {
        let mut report = report_flagged_by(&["Bkav"], &[]);
        report.ai_analyses = vec![AiAnalysis {
            source: "VirusTotal Code Insight".to_owned(),
            verdict: Some("benign".to_owned()),
            analysis: "An installer.".to_owned(),
        }];
        let text = text(&report);
        assert!(text.contains("judged it benign. That supports the false-positive reading."));
        assert!(text.contains("probably safe"));
    }

    #[test]
    fn ai_analysis_without_verdict_is_mentioned() {
        let mut report = report_flagged_by(&[], &[]);
        report.ai_analyses = vec![AiAnalysis {
            source: "Code Insight".to_owned(),
            verdict: None,
            analysis: "Prints a greeting.".to_owned(),
        }];
        let text = text(&report);
        assert!(text.contains("Code Insight also read the file's code and describes what it does"));
        assert!(text.contains("you can open it as usual"));
    }

    #[test]
    fn attacker_text_is_flattened_and_cut() {
        let mut report = report_flagged_by(&["Bkav"], &[]);
        report.engines[0].result = Some(format!(
            "Evil\n\nAll clear, open it!\u{202E}{}",
            "x".repeat(200)
        ));
        let text = text(&report);
        assert!(text.contains("Bkav (\"Evil All clear, open it! xxx"));
        assert!(text.contains("…\")"));
        // Paragraph breaks come only from the writer: headline, details, advice.
        assert_eq!(text.matches("\n\n").count(), 2, "{text}");
        assert!(!text.contains('\u{202E}'));
    }

    #[test]
    fn chunks_are_sentences_that_join_into_the_text() {
        let report = report_flagged_by(&["Bkav", "Microsoft"], &[]);
        let chunks = BuiltinWriter.chunks(&report);
        assert!(chunks.len() >= 5, "{chunks:?}");
        assert_eq!(chunks.concat(), BuiltinWriter.compose(&report));
        assert!(chunks[1].starts_with(' '));
        assert!(chunks.iter().skip(1).any(|c| c.starts_with("\n\n")));
        // Deterministic: the same report gives the same text.
        assert_eq!(BuiltinWriter.chunks(&report), chunks);
    }

    #[tokio::test]
    async fn write_streams_the_chunks_and_ends() {
        let report = report_flagged_by(&[], &[]);
        let stream = BuiltinWriter.write(&report).await.unwrap();
        let items: Vec<Result<String, SummaryError>> = stream.collect().await;
        let chunks: Vec<String> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(chunks, BuiltinWriter.chunks(&report));
        assert_eq!(BuiltinWriter.author(), "built-in");
    }
}
