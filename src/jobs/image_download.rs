//! Downloads one image for an images job, within the job's limits: the guarded client
//! (every hop checked against `allow_private_targets`, at most [`MAX_REDIRECTS`]), a
//! per-image timeout, and a size limit enforced on `Content-Length` and again while the
//! body streams. The type is decided from the bytes, never from the source's header.

use crate::config::Config;
use crate::outbound::guard::Refused;
use crate::outbound::{describe_error, FetchError, GuardedClient, OutboundPolicy};
use md5::{Digest, Md5};
use std::error::Error as StdError;
use std::time::Duration;

/// Redirects one download may follow (the contract's limit).
pub const MAX_REDIRECTS: usize = 5;

/// A downloaded image, checked and fingerprinted.
pub struct Downloaded {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Decided from the bytes.
    pub content_type: &'static str,
    /// MD5 of the bytes, lower-case hex.
    pub md5: String,
}

/// Why one image could not be had: a stable `errorCode` of the job's result and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageError {
    /// `download-failed`, `download-timeout`, `too-large`, `not-an-image`,
    /// `target-not-allowed`, `too-many-redirects` (or a storing error).
    pub code: &'static str,
    /// What happened, for the result and the log.
    pub message: String,
}

impl ImageError {
    /// An error with its code.
    pub fn new(code: &'static str, message: impl Into<String>) -> ImageError {
        ImageError {
            code,
            message: message.into(),
        }
    }
}

/// The limits of one download, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Who may be reached and how (private targets, proxy, the per-image timeout).
    pub policy: OutboundPolicy,
    /// Largest body accepted.
    pub max_bytes: u64,
}

impl Limits {
    /// The limits the configuration sets.
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            policy: OutboundPolicy::from_config(config, config.image_download_timeout),
            max_bytes: config.image_max_bytes,
        }
    }

    /// The guarded client that enforces these limits on every hop.
    pub fn client(&self) -> GuardedClient {
        GuardedClient::new(&self.policy)
    }
}

/// The image type of `bytes` by their signature: JPEG, PNG, GIF or WebP.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Downloads and checks one image.
pub async fn download(
    client: &GuardedClient,
    url: &str,
    limits: &Limits,
) -> Result<Downloaded, ImageError> {
    let url = reqwest::Url::parse(url)
        .map_err(|e| ImageError::new("download-failed", format!("bad URL: {e}")))?;
    let timeout = limits.policy.timeout;
    let bytes = tokio::time::timeout(timeout, fetch(client, url, limits.max_bytes))
        .await
        .map_err(|_| timed_out(timeout))??;
    let content_type = sniff(&bytes).ok_or_else(|| {
        ImageError::new(
            "not-an-image",
            "the bytes are not a JPEG, PNG, GIF or WebP image",
        )
    })?;
    Ok(Downloaded {
        md5: hex::encode(Md5::digest(&bytes)),
        content_type,
        bytes,
    })
}

fn timed_out(limit: Duration) -> ImageError {
    ImageError::new(
        "download-timeout",
        format!(
            "the download took longer than image_download_timeout ({} ms)",
            limit.as_millis()
        ),
    )
}

fn too_large(max: u64) -> ImageError {
    ImageError::new(
        "too-large",
        format!("the image is larger than image_max_bytes ({max} bytes)"),
    )
}

/// The body, streamed and counted; nothing past `max` bytes is kept.
async fn fetch(client: &GuardedClient, url: reqwest::Url, max: u64) -> Result<Vec<u8>, ImageError> {
    let mut res = client
        .get_following(url, MAX_REDIRECTS)
        .await
        .map_err(classify_fetch)?;
    if !res.status().is_success() {
        return Err(ImageError::new(
            "download-failed",
            format!("the source answered HTTP {}", res.status().as_u16()),
        ));
    }
    if res.content_length().is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(classify)? {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_large(max));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Sorts a failed request (with its redirects) into the result's error codes.
fn classify_fetch(e: FetchError) -> ImageError {
    match e {
        FetchError::Refused(r) => ImageError::new("target-not-allowed", r.to_string()),
        FetchError::TooManyRedirects(_) => ImageError::new("too-many-redirects", e.to_string()),
        FetchError::BadRedirect(_) => ImageError::new("download-failed", e.to_string()),
        FetchError::Http(e) => classify(e),
    }
}

/// Sorts a client error into the result's error codes.
fn classify(e: reqwest::Error) -> ImageError {
    let text = describe_error(&e);
    if refused(&e) {
        ImageError::new("target-not-allowed", text)
    } else if e.is_timeout() {
        ImageError::new("download-timeout", text)
    } else {
        ImageError::new("download-failed", text)
    }
}

/// Whether the guard's resolver refused the target's name at connect time.
fn refused(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<Refused>().is_some() {
            return true;
        }
        // The connector wraps the resolver's error in an `io::Error`, whose `source()`
        // skips the wrapped error itself: look inside.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if inner.downcast_ref::<Refused>().is_some() {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"GIF87a..."), Some("image/gif"));
        assert_eq!(sniff(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\x1a\0\0\0WEBPVP8L"), Some("image/webp"));
        assert_eq!(sniff(b"RIFF\x1a\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
    }
}
