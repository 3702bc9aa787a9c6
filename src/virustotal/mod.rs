//! VirusTotal API v3: the client, its serde types and its errors.

mod client;
mod error;
pub mod types;

pub use client::{FileUpload, VirusTotal};
pub use error::VtError;
