//! Everything that can go wrong talking to VirusTotal, one variant per
//! documented error code plus the failures of the transport itself.
//!
//! The message VirusTotal sends with an error is kept for the log only: it is
//! third-party text, and pages speak in their own words.

/// A failed VirusTotal call.
#[derive(Debug, thiserror::Error)]
pub enum VtError {
    #[error("no VirusTotal API key is configured")]
    NoApiKey,

    #[error("VirusTotal: bad request: {0}")]
    BadRequest(String),
    #[error("VirusTotal: invalid argument: {0}")]
    InvalidArgument(String),
    #[error("VirusTotal: not available yet: {0}")]
    NotAvailableYet(String),
    #[error("VirusTotal: content query too broad: {0}")]
    UnselectiveContentQuery(String),
    #[error("VirusTotal: content query not supported: {0}")]
    UnsupportedContentQuery(String),
    #[error("VirusTotal: API key required: {0}")]
    AuthenticationRequired(String),
    #[error("VirusTotal: account not active: {0}")]
    UserNotActive(String),
    #[error("VirusTotal: wrong API key: {0}")]
    WrongCredentials(String),
    #[error("VirusTotal: forbidden: {0}")]
    Forbidden(String),
    #[error("VirusTotal: not found: {0}")]
    NotFound(String),
    #[error("VirusTotal: already exists: {0}")]
    AlreadyExists(String),
    #[error("VirusTotal: failed dependency: {0}")]
    FailedDependency(String),
    #[error("VirusTotal: quota exceeded: {0}")]
    QuotaExceeded(String),
    #[error("VirusTotal: too many requests: {0}")]
    TooManyRequests(String),
    #[error("VirusTotal: transient error: {0}")]
    Transient(String),
    #[error("VirusTotal: deadline exceeded: {0}")]
    DeadlineExceeded(String),

    /// `413` from the upload front end, which answers it without a JSON body.
    #[error("VirusTotal refused the file as too large")]
    PayloadTooLarge,
    /// A status or error code outside the documented set.
    #[error("VirusTotal answered HTTP {status}: {detail}")]
    Unexpected { status: u16, detail: String },
    #[error("VirusTotal did not answer in time")]
    Timeout,
    #[error("could not reach VirusTotal: {0}")]
    Network(String),
    #[error("VirusTotal sent a response the app cannot read: {0}")]
    Malformed(String),
    #[error("could not read the file to upload: {0}")]
    LocalFile(#[from] std::io::Error),
}

impl VtError {
    /// Maps a documented error `code` to its variant; unknown codes fall back to
    /// what the HTTP status says.
    pub fn from_code(status: u16, code: &str, message: String) -> Self {
        match code {
            "BadRequestError" => Self::BadRequest(message),
            "InvalidArgumentError" => Self::InvalidArgument(message),
            "NotAvailableYet" => Self::NotAvailableYet(message),
            "UnselectiveContentQueryError" => Self::UnselectiveContentQuery(message),
            "UnsupportedContentQueryError" => Self::UnsupportedContentQuery(message),
            "AuthenticationRequiredError" => Self::AuthenticationRequired(message),
            "UserNotActiveError" => Self::UserNotActive(message),
            "WrongCredentialsError" => Self::WrongCredentials(message),
            "ForbiddenError" => Self::Forbidden(message),
            "NotFoundError" => Self::NotFound(message),
            "AlreadyExistsError" => Self::AlreadyExists(message),
            "FailedDependencyError" => Self::FailedDependency(message),
            "QuotaExceededError" => Self::QuotaExceeded(message),
            "TooManyRequestsError" => Self::TooManyRequests(message),
            "TransientError" => Self::Transient(message),
            "DeadlineExceededError" => Self::DeadlineExceeded(message),
            _ => Self::from_status(status, format!("{code}: {message}")),
        }
    }

    /// The error for a status that came without a readable error body.
    pub fn from_status(status: u16, detail: String) -> Self {
        match status {
            401 => Self::WrongCredentials(detail),
            403 => Self::Forbidden(detail),
            404 => Self::NotFound(detail),
            413 => Self::PayloadTooLarge,
            429 => Self::QuotaExceeded(detail),
            503 => Self::Transient(detail),
            504 => Self::DeadlineExceeded(detail),
            _ => Self::Unexpected { status, detail },
        }
    }

    /// Failures that may go away if the same call is made again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transient(_)
            | Self::DeadlineExceeded(_)
            | Self::QuotaExceeded(_)
            | Self::TooManyRequests(_)
            | Self::Timeout
            | Self::Network(_) => true,
            Self::Unexpected { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

impl From<reqwest::Error> for VtError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else if error.is_decode() {
            Self::Malformed(error.to_string())
        } else {
            // Without the URL: it can carry an upload token.
            Self::Network(error.without_url().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes_map_to_their_variants() {
        let cases = [
            (401, "WrongCredentialsError"),
            (429, "QuotaExceededError"),
            (404, "NotFoundError"),
            (503, "TransientError"),
        ];
        for (status, code) in cases {
            let error = VtError::from_code(status, code, String::new());
            assert!(
                !matches!(error, VtError::Unexpected { .. }),
                "{code} fell through"
            );
        }
        assert!(matches!(
            VtError::from_code(400, "NotAvailableYet", String::new()),
            VtError::NotAvailableYet(_)
        ));
    }

    #[test]
    fn unknown_code_falls_back_to_status() {
        assert!(matches!(
            VtError::from_code(503, "Mystery", String::new()),
            VtError::Transient(_)
        ));
        assert!(matches!(
            VtError::from_code(418, "Mystery", String::new()),
            VtError::Unexpected { status: 418, .. }
        ));
    }

    #[test]
    fn only_passing_failures_are_retried() {
        assert!(VtError::Transient(String::new()).is_retryable());
        assert!(VtError::Timeout.is_retryable());
        assert!(!VtError::WrongCredentials(String::new()).is_retryable());
        assert!(!VtError::NotFound(String::new()).is_retryable());
    }
}
