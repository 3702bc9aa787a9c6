//! `POST /scans`: reads the upload form, spools the file, and starts a scan.

use actix_multipart::{Field, Multipart};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use super::AppState;
use super::browser::BrowserId;
use super::error::AppError;
use super::rate_limit::RateLimits;
use crate::scan::Mode;
use crate::upload::{SpoolError, SpooledFile, spool};

/// Room for the multipart framing and the small fields around the file.
const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;

/// Longest value accepted for a text field (mode, password).
const MAX_TEXT_FIELD_BYTES: usize = 1024;

pub fn routes(cfg: &mut web::ServiceConfig, limits: &RateLimits) {
    cfg.service(
        web::resource("/scans")
            .wrap(limits.new_scans())
            .route(web::post().to(create)),
    );
}

/// The fields of the upload form.
struct UploadForm {
    file: SpooledFile,
    mode: Mode,
    password: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    browser: BrowserId,
    request: HttpRequest,
    multipart: Multipart,
) -> Result<HttpResponse, AppError> {
    if !state.scanner.vt_configured() {
        return Err(AppError::NoApiKey);
    }
    // Refuse a body announced as too large before reading any of it.
    let limit = state.max_upload_bytes;
    if declared_length(&request).is_some_and(|len| len > limit + FORM_OVERHEAD_BYTES) {
        return Err(AppError::UploadTooLarge { limit });
    }

    let form = read_form(multipart, &state).await?;
    let id = state
        .scanner
        .submit_file(
            form.file,
            form.mode,
            form.password,
            Some(browser.as_str().to_owned()),
        )
        .await?;
    Ok(super::see_other(&format!("/scans/{id}")))
}

fn declared_length(request: &HttpRequest) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads the form's fields in whatever order they come, spooling the file as it
/// arrives. The spooled file is deleted if anything after it is wrong.
async fn read_form(mut multipart: Multipart, state: &AppState) -> Result<UploadForm, AppError> {
    let mut file = None;
    let mut mode = None;
    let mut password = None;

    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|_| AppError::InvalidUpload(MALFORMED))?;
        match field.name() {
            Some("file") if file.is_some() => {
                return Err(AppError::InvalidUpload("Send one file at a time."));
            }
            Some("file") => file = Some(spool_file(field, state).await?),
            Some("mode") => mode = Some(read_text(&mut field).await?),
            Some("password") => password = Some(read_text(&mut field).await?),
            _ => drain(&mut field).await?,
        }
    }

    let file = file.ok_or(AppError::InvalidUpload(NO_FILE))?;
    let mode = match mode.as_deref().map(str::trim) {
        None | Some("lookup") => Mode::Lookup,
        Some("upload") => Mode::Upload,
        Some(_) => {
            return Err(AppError::InvalidUpload(
                "Choose whether to check the hash only or upload the file.",
            ));
        }
    };
    let password = password.filter(|p| !p.is_empty());
    Ok(UploadForm {
        file,
        mode,
        password,
    })
}

const MALFORMED: &str =
    "The upload was cut off or malformed. Choose the file again and resend the form.";
const NO_FILE: &str = "No file was chosen. Choose a file to check.";

async fn spool_file(field: Field, state: &AppState) -> Result<SpooledFile, AppError> {
    let name = field
        .content_disposition()
        .and_then(|cd| cd.get_filename())
        .map(str::to_owned);
    let limit = state.max_upload_bytes;
    match spool(field, &state.upload_dir, limit, name.as_deref()).await {
        Ok(file) => Ok(file),
        Err(SpoolError::TooLarge { limit }) => Err(AppError::UploadTooLarge { limit }),
        Err(SpoolError::Empty) if name.as_deref().is_none_or(str::is_empty) => {
            Err(AppError::InvalidUpload(NO_FILE))
        }
        Err(SpoolError::Empty) => Err(AppError::InvalidUpload(
            "The file is empty: there is nothing to check. Choose another file.",
        )),
        Err(SpoolError::Read(_)) => Err(AppError::InvalidUpload(MALFORMED)),
        Err(SpoolError::Io(error)) if error.kind() == std::io::ErrorKind::StorageFull => {
            tracing::error!(%error, "no room left in UPLOAD_DIR for an upload");
            Err(AppError::NoRoomForUpload)
        }
        Err(SpoolError::Io(error)) => Err(AppError::Internal(format!("spooling upload: {error}"))),
    }
}

async fn read_text(field: &mut Field) -> Result<String, AppError> {
    let mut value = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|_| AppError::InvalidUpload(MALFORMED))?;
        if value.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            return Err(AppError::InvalidUpload("A form field is too long."));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| AppError::InvalidUpload(MALFORMED))
}

/// Skips a field the form does not have, without keeping it.
async fn drain(field: &mut Field) -> Result<(), AppError> {
    let mut seen = 0;
    while let Some(chunk) = field.next().await {
        seen += chunk.map_err(|_| AppError::InvalidUpload(MALFORMED))?.len();
        if seen > MAX_TEXT_FIELD_BYTES {
            return Err(AppError::InvalidUpload("The form has an unexpected field."));
        }
    }
    Ok(())
}
