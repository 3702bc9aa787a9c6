//! The report the app keeps about a file: the fields it shows, picked out of
//! VirusTotal's much larger file object.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::virustotal::types::{AiResult, AnalysisStats, EngineResult, FileInfo, FileObject};

/// At most this many of a file's known names are kept.
const MAX_NAMES: usize = 20;

/// Longest AI analysis kept, in characters.
const MAX_AI_ANALYSIS_CHARS: usize = 8000;

/// A file's report, as stored with the scan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub sha256: String,
    pub sha1: Option<String>,
    pub md5: Option<String>,
    pub size: Option<u64>,
    pub type_description: Option<String>,
    pub type_tag: Option<String>,
    pub magic: Option<String>,
    pub meaningful_name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub first_submission_date: Option<i64>,
    pub last_analysis_date: Option<i64>,
    pub times_submitted: Option<u64>,
    pub reputation: Option<i64>,
    pub stats: AnalysisStats,
    /// Flagging engines first, then the rest, each group by name.
    pub engines: Vec<EngineVerdict>,
    pub threat_label: Option<String>,
    #[serde(default)]
    pub threat_categories: Vec<String>,
    #[serde(default)]
    pub threat_names: Vec<String>,
    /// VirusTotal's own AI analyses of the file, shown attributed to their source.
    #[serde(default)]
    pub ai_analyses: Vec<AiAnalysis>,
}

/// One AI analysis from VirusTotal's report (third-party text: always escaped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiAnalysis {
    /// Who wrote it, e.g. "Code Insight".
    pub source: String,
    pub verdict: Option<String>,
    pub analysis: String,
}

/// One engine's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineVerdict {
    pub engine: String,
    pub category: String,
    pub result: Option<String>,
}

impl Report {
    /// Picks the fields the app uses out of a file object.
    pub fn from_file_object(file: FileObject) -> Self {
        let a = file.attributes;
        let classification = a.popular_threat_classification;
        let sha256 = if a.sha256.is_empty() {
            file.id
        } else {
            a.sha256
        };
        Self {
            sha256: sha256.to_ascii_lowercase(),
            sha1: a.sha1,
            md5: a.md5,
            size: a.size,
            type_description: a.type_description,
            type_tag: a.type_tag,
            magic: a.magic,
            meaningful_name: a.meaningful_name,
            names: a.names.into_iter().take(MAX_NAMES).collect(),
            tags: a.tags,
            first_submission_date: a.first_submission_date,
            last_analysis_date: a.last_analysis_date,
            times_submitted: a.times_submitted,
            reputation: a.reputation,
            stats: a.last_analysis_stats,
            engines: engine_verdicts(a.last_analysis_results),
            threat_label: classification
                .as_ref()
                .and_then(|c| c.suggested_threat_label.clone()),
            threat_categories: classification
                .as_ref()
                .map(|c| {
                    c.popular_threat_category
                        .iter()
                        .map(|t| t.value.clone())
                        .collect()
                })
                .unwrap_or_default(),
            threat_names: classification
                .map(|c| c.popular_threat_name.into_iter().map(|t| t.value).collect())
                .unwrap_or_default(),
            ai_analyses: a
                .crowdsourced_ai_results
                .into_iter()
                .filter_map(ai_analysis)
                .collect(),
        }
    }

    /// A bare report from a finished analysis, for when the file object is not
    /// available yet.
    pub fn from_analysis(info: &FileInfo, fallback_sha256: &str) -> Self {
        Self {
            sha256: info
                .sha256
                .clone()
                .unwrap_or_else(|| fallback_sha256.to_owned()),
            sha1: info.sha1.clone(),
            md5: info.md5.clone(),
            size: info.size,
            type_description: None,
            type_tag: None,
            magic: None,
            meaningful_name: None,
            names: Vec::new(),
            tags: Vec::new(),
            first_submission_date: None,
            last_analysis_date: None,
            times_submitted: None,
            reputation: None,
            stats: AnalysisStats::default(),
            engines: Vec::new(),
            threat_label: None,
            threat_categories: Vec::new(),
            threat_names: Vec::new(),
            ai_analyses: Vec::new(),
        }
    }

    /// Replaces the detection figures with those of a fresher analysis, since
    /// a file object can lag behind the analysis that just finished.
    pub fn apply_analysis(
        &mut self,
        stats: AnalysisStats,
        results: BTreeMap<String, EngineResult>,
        date: Option<i64>,
    ) {
        if results.is_empty() {
            return;
        }
        self.stats = stats;
        self.engines = engine_verdicts(results);
        if date.is_some() {
            self.last_analysis_date = date;
        }
    }

    /// Engines that gave a verdict either way (not timed out, failed or unsupported).
    pub fn engines_with_verdict(&self) -> u32 {
        let s = &self.stats;
        s.malicious + s.suspicious + s.undetected + s.harmless
    }
}

fn ai_analysis(result: AiResult) -> Option<AiAnalysis> {
    let analysis: String = result
        .analysis?
        .trim()
        .chars()
        .take(MAX_AI_ANALYSIS_CHARS)
        .collect();
    if analysis.is_empty() {
        return None;
    }
    let source = match result.category.as_deref() {
        Some("code_insight") => "VirusTotal Code Insight".to_owned(),
        _ => result
            .source
            .unwrap_or_else(|| "VirusTotal AI analysis".to_owned()),
    };
    Some(AiAnalysis {
        source,
        verdict: result.verdict,
        analysis,
    })
}

fn engine_verdicts(results: BTreeMap<String, EngineResult>) -> Vec<EngineVerdict> {
    let mut engines: Vec<EngineVerdict> = results
        .into_iter()
        .map(|(key, r)| EngineVerdict {
            engine: r.engine_name.filter(|n| !n.is_empty()).unwrap_or(key),
            category: r.category,
            result: r.result,
        })
        .collect();
    engines.sort_by(|a, b| {
        category_rank(&a.category)
            .cmp(&category_rank(&b.category))
            .then_with(|| a.engine.to_lowercase().cmp(&b.engine.to_lowercase()))
    });
    engines
}

fn category_rank(category: &str) -> u8 {
    match category {
        "malicious" => 0,
        "suspicious" => 1,
        "harmless" | "undetected" => 2,
        _ => 3,
    }
}
