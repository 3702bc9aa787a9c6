//! The VirusTotal API v3 client: one struct, its base URL and key injected.

use std::path::Path;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Client, RequestBuilder, Response, multipart};
use serde::de::DeserializeOwned;
use tokio_util::io::ReaderStream;

use super::error::VtError;
use super::types::{AnalysisDescriptor, AnalysisResponse, Envelope, ErrorBody, FileObject};
use crate::config::{Config, Secret};

/// Reports reach a megabyte in real data; anything far beyond is not a report.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Characters left as they are in a path segment; everything else (notably the
/// `=` padding of analysis ids) is percent-encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Upload bandwidth assumed when sizing an upload's timeout, in bytes per second.
const SLOWEST_UPLOAD_RATE: u64 = 256 * 1024;

/// A file on local disk to send to VirusTotal.
#[derive(Debug)]
pub struct FileUpload<'a> {
    pub path: &'a Path,
    pub size: u64,
    /// Sent as the multipart file name; must already be ASCII-safe.
    pub file_name: &'a str,
    /// For encrypted ZIP archives.
    pub password: Option<&'a str>,
}

/// Client of the VirusTotal API v3.
#[derive(Debug, Clone)]
pub struct VirusTotal {
    http: Client,
    base_url: String,
    api_key: Option<Secret>,
    request_timeout: Duration,
    direct_upload_limit: u64,
}

impl VirusTotal {
    pub fn new(config: &Config) -> Result<Self, VtError> {
        // No client-wide read timeout: reqwest's runs from sending until the
        // answer starts, so it would cut off uploads of large files. Each call
        // sets its own total timeout instead, scaled by size for uploads.
        let http = Client::builder()
            .user_agent(concat!("file-scanner/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| VtError::Network(e.to_string()))?;
        Ok(Self {
            http,
            base_url: config.vt_base_url.clone(),
            api_key: config.vt_api_key.clone(),
            request_timeout: config.vt_request_timeout,
            direct_upload_limit: config.direct_upload_limit,
        })
    }

    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// The report of a file by MD5, SHA-1 or SHA-256. An unknown file is
    /// `VtError::NotFound`.
    pub async fn file_report(&self, hash: &str) -> Result<FileObject, VtError> {
        let url = format!("{}/files/{}", self.base_url, encode_segment(hash));
        let envelope: Envelope<FileObject> = self.send_json(self.http.get(url)).await?;
        Ok(envelope.data)
    }

    /// Sends a file for analysis and returns the analysis id. Small files are
    /// posted directly; larger ones through a single-use upload URL.
    pub async fn upload(&self, file: &FileUpload<'_>) -> Result<String, VtError> {
        let url = if file.size <= self.direct_upload_limit {
            format!("{}/files", self.base_url)
        } else {
            self.upload_url().await?
        };
        let form = multipart_form(file).await?;
        let timeout = self.request_timeout + Duration::from_secs(file.size / SLOWEST_UPLOAD_RATE);
        let request = self.http.post(url).multipart(form).timeout(timeout);
        let envelope: Envelope<AnalysisDescriptor> = self.send_json_untimed(request).await?;
        analysis_id(envelope.data)
    }

    /// The state of an analysis.
    pub async fn analysis(&self, analysis_id: &str) -> Result<AnalysisResponse, VtError> {
        let url = format!("{}/analyses/{}", self.base_url, encode_segment(analysis_id));
        self.send_json(self.http.get(url)).await
    }

    /// Asks VirusTotal to scan a known file again; returns the new analysis id.
    pub async fn reanalyse(&self, sha256: &str) -> Result<String, VtError> {
        let url = format!("{}/files/{}/analyse", self.base_url, encode_segment(sha256));
        let envelope: Envelope<AnalysisDescriptor> = self.send_json(self.http.post(url)).await?;
        analysis_id(envelope.data)
    }

    async fn upload_url(&self) -> Result<String, VtError> {
        let url = format!("{}/files/upload_url", self.base_url);
        let envelope: Envelope<String> = self.send_json(self.http.get(url)).await?;
        let upload_url = envelope.data;
        if upload_url.starts_with("https://") || upload_url.starts_with("http://") {
            Ok(upload_url)
        } else {
            Err(VtError::Malformed(
                "upload URL is not an http(s) URL".to_owned(),
            ))
        }
    }

    async fn send_json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, VtError> {
        self.send_json_untimed(request.timeout(self.request_timeout))
            .await
    }

    /// Sends with the key attached and reads a JSON answer, or the error it stands for.
    async fn send_json_untimed<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, VtError> {
        let key = self.api_key.as_ref().ok_or(VtError::NoApiKey)?;
        let response = request.header("x-apikey", key.expose()).send().await?;
        let status = response.status();
        let is_json = is_json(&response);
        let body = read_capped(response).await?;

        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| VtError::Malformed(e.to_string()));
        }
        if is_json && let Ok(error) = serde_json::from_slice::<ErrorBody>(&body) {
            return Err(VtError::from_code(
                status.as_u16(),
                &error.error.code,
                error.error.message,
            ));
        }
        let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Err(VtError::from_status(status.as_u16(), snippet))
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Reads the body, refusing one larger than any real answer.
async fn read_capped(mut response: Response) -> Result<Vec<u8>, VtError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(VtError::Malformed("response body is too large".to_owned()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The multipart body of an upload, streamed from disk rather than read into memory.
async fn multipart_form(file: &FileUpload<'_>) -> Result<multipart::Form, VtError> {
    let handle = tokio::fs::File::open(file.path).await?;
    let stream = ReaderStream::with_capacity(handle, 256 * 1024);
    let part = multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), file.size)
        .file_name(file.file_name.to_owned())
        .mime_str("application/octet-stream")
        .map_err(|e| VtError::Network(e.to_string()))?;
    let mut form = multipart::Form::new().part("file", part);
    if let Some(password) = file.password {
        form = form.text("password", password.to_owned());
    }
    Ok(form)
}

fn analysis_id(descriptor: AnalysisDescriptor) -> Result<String, VtError> {
    if descriptor.kind == "analysis" && !descriptor.id.is_empty() {
        Ok(descriptor.id)
    } else {
        Err(VtError::Malformed(format!(
            "expected an analysis, got a {:?}",
            descriptor.kind
        )))
    }
}

fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_ids_are_percent_encoded() {
        assert_eq!(
            encode_segment("OGNlM2I4NWM6MTY1NzAzNjA0NA=="),
            "OGNlM2I4NWM6MTY1NzAzNjA0NA%3D%3D"
        );
        assert_eq!(encode_segment("u-abc-123"), "u-abc-123");
    }
}
