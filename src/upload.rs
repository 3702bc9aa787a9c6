//! Spools an incoming file to a private temporary file while hashing it.
//!
//! The bytes are hashed (SHA-256, SHA-1, MD5) and written as they arrive, so an
//! upload costs the same memory whatever its size, and the size limit is
//! enforced before the body has been read in full. The temporary file is
//! removed when the `SpooledFile` is dropped, on every path.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::scan::FileHashes;

/// Every spooled file's name starts with this, so leftovers can be recognised.
const SPOOL_PREFIX: &str = "upload-";

/// Longest file name kept for display.
const MAX_NAME_CHARS: usize = 255;

/// Why a file could not be spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the file is empty")]
    Empty,
    #[error("the upload was cut off or malformed: {0}")]
    Read(String),
    #[error("could not write the upload to disk: {0}")]
    Io(#[from] std::io::Error),
}

/// An uploaded file on local disk, with its digests. Dropping it deletes the file.
#[derive(Debug)]
pub struct SpooledFile {
    path: TempPath,
    pub size: u64,
    pub hashes: FileHashes,
    /// The name the browser gave, without any directory part.
    pub file_name: Option<String>,
}

impl SpooledFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file now, reporting a failure instead of hiding it in `Drop`.
    pub fn discard(self) -> std::io::Result<()> {
        self.path.close()
    }
}

/// Writes `body` to a new private file in `dir`, hashing it on the way, and
/// stops with `TooLarge` as soon as more than `limit` bytes have arrived.
pub async fn spool<S, E>(
    mut body: S,
    dir: &Path,
    limit: u64,
    file_name: Option<&str>,
) -> Result<SpooledFile, SpoolError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    // tempfile creates the file with mode 0600 and a random name.
    let (file, path) = tempfile::Builder::new()
        .prefix(SPOOL_PREFIX)
        .tempfile_in(dir)?
        .into_parts();
    let mut writer = BufWriter::with_capacity(1024 * 1024, tokio::fs::File::from_std(file));
    let mut sha256 = Sha256::new();
    let mut sha1 = Sha1::new();
    let mut md5 = Md5::new();
    let mut size: u64 = 0;

    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| SpoolError::Read(e.to_string()))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(SpoolError::TooLarge { limit });
        }
        sha256.update(&chunk);
        sha1.update(&chunk);
        md5.update(&chunk);
        writer.write_all(&chunk).await?;
    }
    // Flushed to the file, not synced to the disk: a spooled file does not
    // outlive a crash anyway (leftovers are removed at start).
    writer.flush().await?;

    if size == 0 {
        return Err(SpoolError::Empty);
    }
    Ok(SpooledFile {
        path,
        size,
        hashes: FileHashes {
            sha256: hex::encode(sha256.finalize()),
            sha1: hex::encode(sha1.finalize()),
            md5: hex::encode(md5.finalize()),
        },
        file_name: file_name.and_then(display_name),
    })
}

/// Removes spooled files a crash left behind. Returns how many were removed.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_spool = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(SPOOL_PREFIX));
        if is_spool && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates the spool directory, private to this user.
pub fn prepare_dir(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir.to_path_buf())
}

/// The last path component of a browser-supplied name, trimmed and bounded.
fn display_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
    let name: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    (!name.is_empty()).then_some(name)
}

/// A name safe to send in a multipart header: ASCII letters, digits and `._-`.
pub fn ascii_file_name(name: Option<&str>) -> String {
    let cleaned: String = name
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if cleaned.trim_matches(['_', '.']).is_empty() {
        "upload.bin".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn hashes_match_the_whole_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = spool(
            chunks(&[b"hello ", b"world"]),
            dir.path(),
            100,
            Some("a.txt"),
        )
        .await
        .unwrap();
        assert_eq!(file.size, 11);
        assert_eq!(
            file.hashes.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(file.hashes.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(file.hashes.sha1, "2aae6c35c94fcfb415dbe95f408b9ce91ee846ed");
        assert_eq!(std::fs::read(file.path()).unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn limit_is_enforced_and_nothing_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let result = spool(chunks(&[b"12345", b"6789"]), dir.path(), 8, None).await;
        assert!(matches!(result, Err(SpoolError::TooLarge { limit: 8 })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn empty_file_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let result = spool(chunks(&[]), dir.path(), 8, None).await;
        assert!(matches!(result, Err(SpoolError::Empty)));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn dropping_the_spooled_file_deletes_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = spool(chunks(&[b"x"]), dir.path(), 8, None).await.unwrap();
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn names_lose_directories_and_unsafe_characters() {
        assert_eq!(
            display_name(r"C:\Users\me\évil.exe").as_deref(),
            Some("évil.exe")
        );
        assert_eq!(display_name("  "), None);
        assert_eq!(
            ascii_file_name(Some("évil \"name\".exe")),
            "_vil__name_.exe"
        );
        assert_eq!(ascii_file_name(None), "upload.bin");
    }
}
