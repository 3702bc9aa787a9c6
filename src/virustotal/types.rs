//! Serde types for the parts of VirusTotal's responses the app uses.
//!
//! Every attribute beyond the hashes is optional: real reports omit fields
//! freely (no `meaningful_name` when `names` is empty, no threat classification
//! for clean files), and a missing field must not turn a good report into an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `{"data": ...}`, the envelope of every successful answer.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
}

/// A file object, as `GET /files/{id}` returns it.
#[derive(Debug, Deserialize)]
pub struct FileObject {
    /// Always the SHA-256, whichever hash was asked for.
    pub id: String,
    pub attributes: FileAttributes,
}

#[derive(Debug, Deserialize)]
pub struct FileAttributes {
    /// Missing only in malformed data; the object's id says the same then.
    #[serde(default)]
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
    #[serde(default)]
    pub last_analysis_stats: AnalysisStats,
    #[serde(default)]
    pub last_analysis_results: BTreeMap<String, EngineResult>,
    pub popular_threat_classification: Option<ThreatClassification>,
    /// VirusTotal's own AI analyses of the code (Code Insight and similar).
    #[serde(default)]
    pub crowdsourced_ai_results: Vec<AiResult>,
}

/// One entry of `crowdsourced_ai_results`. The text is third-party content.
/// The shape of these entries is not fully documented, so a field of an
/// unexpected type is read as text or left out rather than failing the report.
#[derive(Debug, Clone, Deserialize)]
pub struct AiResult {
    #[serde(default, deserialize_with = "lenient_text")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub source: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub analysis: Option<String>,
    #[serde(default, deserialize_with = "lenient_text")]
    pub verdict: Option<String>,
}

/// A string as it is, a number or boolean as its text, anything else as absent.
fn lenient_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(text) => Some(text),
        value @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
            Some(value.to_string())
        }
        _ => None,
    })
}

/// How many engines reached each category. Keys missing on old data count as zero.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisStats {
    pub malicious: u32,
    pub suspicious: u32,
    pub undetected: u32,
    pub harmless: u32,
    pub timeout: u32,
    #[serde(rename = "confirmed-timeout")]
    pub confirmed_timeout: u32,
    pub failure: u32,
    #[serde(rename = "type-unsupported")]
    pub type_unsupported: u32,
}

/// One engine's answer about a file.
#[derive(Debug, Clone, Deserialize)]
pub struct EngineResult {
    pub category: String,
    pub engine_name: Option<String>,
    pub result: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ThreatClassification {
    pub suggested_threat_label: Option<String>,
    #[serde(default)]
    pub popular_threat_category: Vec<ThreatTally>,
    #[serde(default)]
    pub popular_threat_name: Vec<ThreatTally>,
}

#[derive(Debug, Deserialize)]
pub struct ThreatTally {
    pub value: String,
    #[serde(default)]
    pub count: u32,
}

/// `{"type": "analysis", "id": ...}`, the answer to an upload or a reanalysis.
#[derive(Debug, Deserialize)]
pub struct AnalysisDescriptor {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// The answer to `GET /analyses/{id}`, with `meta` beside `data`.
#[derive(Debug, Deserialize)]
pub struct AnalysisResponse {
    pub data: AnalysisObject,
    pub meta: Option<AnalysisMeta>,
}

#[derive(Debug, Deserialize)]
pub struct AnalysisObject {
    pub id: String,
    pub attributes: AnalysisAttributes,
}

#[derive(Debug, Deserialize)]
pub struct AnalysisAttributes {
    pub status: AnalysisStatus,
    pub date: Option<i64>,
    #[serde(default)]
    pub stats: AnalysisStats,
    #[serde(default)]
    pub results: BTreeMap<String, EngineResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnalysisStatus {
    Queued,
    InProgress,
    Completed,
}

#[derive(Debug, Deserialize)]
pub struct AnalysisMeta {
    pub file_info: Option<FileInfo>,
}

#[derive(Debug, Deserialize)]
pub struct FileInfo {
    pub sha256: Option<String>,
    pub sha1: Option<String>,
    pub md5: Option<String>,
    pub size: Option<u64>,
}

/// `{"error": {"code": ..., "message": ...}}`, the body of every documented failure.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ai_results_of_unexpected_shapes_do_not_fail_the_report() {
        let entry: AiResult = serde_json::from_value(serde_json::json!({
            "analysis": "Reads the registry.",
            "verdict": {"label": "benign"},
            "source": 7,
        }))
        .unwrap();
        assert_eq!(entry.analysis.as_deref(), Some("Reads the registry."));
        assert_eq!(entry.verdict, None);
        assert_eq!(entry.source.as_deref(), Some("7"));
        assert_eq!(entry.category, None);
    }

    #[test]
    fn a_file_object_without_attributes_sha256_is_read() {
        let file: FileObject = serde_json::from_value(serde_json::json!({
            "id": "ab", "attributes": {}
        }))
        .unwrap();
        assert!(file.attributes.sha256.is_empty());
    }

    #[test]
    fn report_without_names_or_classification_parses() {
        let body = r#"{"data":{"type":"file","id":"abc","links":{"self":"x"},"attributes":{
            "sha256":"abc","names":[],"last_analysis_stats":{"malicious":0},
            "last_analysis_results":{"Engine":{"category":"type-unsupported","engine_name":"Engine",
            "engine_version":null,"result":null}}}}}"#;
        let parsed: Envelope<FileObject> = serde_json::from_str(body).unwrap();
        assert!(parsed.data.attributes.meaningful_name.is_none());
        assert_eq!(parsed.data.attributes.last_analysis_stats.undetected, 0);
        assert_eq!(parsed.data.attributes.last_analysis_results.len(), 1);
    }

    #[test]
    fn analysis_status_uses_kebab_case() {
        let body = r#"{"meta":{"file_info":{"sha256":"abc","size":3}},"data":{"type":"analysis",
            "id":"x","attributes":{"status":"in-progress","stats":{},"results":{}}}}"#;
        let parsed: AnalysisResponse = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.data.attributes.status, AnalysisStatus::InProgress);
    }

    #[test]
    fn unknown_status_is_an_error_not_a_panic() {
        let body = r#"{"data":{"type":"analysis","id":"x","attributes":{"status":"exploded"}}}"#;
        assert!(serde_json::from_str::<AnalysisResponse>(body).is_err());
    }
}
