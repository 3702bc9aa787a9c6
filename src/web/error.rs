//! Errors of the web layer and the pages that explain them.
//!
//! Policy: handlers return `AppError`; its `ResponseError` impl only sets the
//! status, and the `ErrorHandlers` middleware in `error_pages` renders the page,
//! because only there are the request and the app state at hand. Errors raised
//! by actix itself (a malformed query, a broken multipart body) get the same
//! treatment. A 5xx page is generic and shows the request id; its cause is
//! logged once, here.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use askama::Template;
use tracing_actix_web::RequestId;

use super::AppState;
use super::home::IndexPage;
use super::pages::{Layout, render};
use crate::scan::ScanError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no scan with that id")]
    ScanNotFound,
    #[error("no page at that address")]
    PageNotFound,
    /// The upload form was filled in wrongly; the message says how to fix it.
    #[error("invalid upload: {0}")]
    InvalidUpload(&'static str),
    /// A request that cannot be carried out as asked; the message says why.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("upload larger than {limit} bytes")]
    UploadTooLarge { limit: u64 },
    #[error("no VirusTotal API key is configured")]
    NoApiKey,
    /// The upload directory is full, usually with other uploads in flight.
    #[error("no room left for the upload")]
    NoRoomForUpload,
    #[error("cross-site form submission refused")]
    CrossSite,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ScanError> for AppError {
    fn from(error: ScanError) -> Self {
        match error {
            ScanError::NoApiKey => Self::NoApiKey,
            ScanError::NotFound => Self::ScanNotFound,
            ScanError::NothingToReanalyse => {
                Self::InvalidRequest("Only a finished report can be reanalysed.")
            }
            ScanError::NothingToSummarise => {
                Self::InvalidRequest("A summary can only be written once the report is complete.")
            }
            ScanError::Claimed => Self::Internal("a new scan id was already claimed".to_owned()),
            ScanError::Store(e) => Self::Internal(e.to_string()),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::ScanNotFound | Self::PageNotFound => StatusCode::NOT_FOUND,
            Self::InvalidUpload(_) | Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoApiKey | Self::NoRoomForUpload => StatusCode::SERVICE_UNAVAILABLE,
            Self::CrossSite => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        // The body is rendered by `error_pages`, which has the request.
        HttpResponse::build(self.status_code()).finish()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    title: String,
    message: String,
    advice: String,
    request_id: Option<String>,
}

#[derive(Template)]
#[template(path = "partials/error_fragment.html")]
struct ErrorFragment {
    title: String,
    advice: String,
}

/// The middleware that turns error responses into pages.
pub fn error_pages<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(render_error)
}

fn render_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // A response a handler built on purpose (a form shown again with its error)
    // carries no error and passes unchanged.
    let Some(error) = res.response().error() else {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    };
    let status = res.status();
    let app_error = error.as_error::<AppError>();
    let request = res.request();
    let state = request.app_data::<web::Data<AppState>>();
    let layout = Layout {
        vt_configured: state.is_some_and(|s| s.scanner.vt_configured()),
    };
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.to_string());

    if status.is_server_error() {
        tracing::error!(error = %error, status = status.as_u16(), "request failed");
    }

    let html = match (app_error, state) {
        // Form mistakes show the form again, with the message beside it.
        (Some(AppError::InvalidUpload(message)), Some(state)) => render(
            &IndexPage::with_upload_error(layout, state, (*message).to_owned()),
        ),
        (Some(AppError::UploadTooLarge { limit }), Some(state)) => {
            let message = format!(
                "The file is larger than {}, the most this server accepts. Choose a smaller file.",
                super::pages::human_size(*limit)
            );
            render(&IndexPage::with_upload_error(layout, state, message))
        }
        _ => {
            let (title, advice) = explain(app_error, status);
            let is_htmx = request.headers().contains_key("hx-request");
            if is_htmx {
                render(&ErrorFragment {
                    title: title.to_owned(),
                    advice: advice.to_owned(),
                })
            } else {
                render(&ErrorPage {
                    layout,
                    title: title.to_owned(),
                    message: format!("Error {}", status.as_u16()),
                    advice: advice.to_owned(),
                    request_id: status.is_server_error().then_some(request_id).flatten(),
                })
            }
        }
    };

    let (req, _) = res.into_parts();
    let response = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(html);
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

/// A title and advice for each error.
fn explain(error: Option<&AppError>, status: StatusCode) -> (&'static str, &'static str) {
    match error {
        Some(AppError::ScanNotFound) => (
            "There is no scan at this address",
            "Check the link, or start a new scan from the home page.",
        ),
        Some(AppError::NoApiKey) => (
            "This server cannot reach VirusTotal yet",
            "Its operator has not set VT_API_KEY. Nothing was sent anywhere.",
        ),
        Some(AppError::NoRoomForUpload) => (
            "This server has no room for the file right now",
            "It is busy with other uploads. Try again in a few minutes, or with a smaller file. \
             Nothing was sent to VirusTotal.",
        ),
        Some(AppError::InvalidRequest(message)) => ("That cannot be done", message),
        Some(AppError::CrossSite) => (
            "This form was sent from another site",
            "For your safety it was refused. Open this site's home page and submit the form \
             from there.",
        ),
        _ => match status {
            StatusCode::NOT_FOUND => (
                "There is no page at this address",
                "Go back to the home page to check a file.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "The request is too large",
                "Choose a smaller file and try again.",
            ),
            s if s.is_client_error() => (
                "The request could not be understood",
                "Go back, check what you entered, and try again.",
            ),
            _ => (
                "Something went wrong on this server",
                "Try again in a moment. If it keeps happening, tell the operator and quote \
                 the reference below.",
            ),
        },
    }
}

/// Answers any unknown address.
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::PageNotFound)
}
