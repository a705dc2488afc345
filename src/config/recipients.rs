//! What recipients' browsers meet: the confirm page, how a document opens, which other sites may
//! post link requests and frame the form, the phone's second fetch, the watermark's line and what
//! happens to a PDF that cannot be stamped.

use std::time::Duration;

use super::env::{
    ENV_CONFIRM_PAGE, ENV_CORS_ORIGINS, ENV_DISPOSITION, ENV_REDOWNLOAD_GRACE,
    ENV_WATERMARK_FALLBACK, ENV_WATERMARK_TEXT, Reader, parse_delay, parse_switch,
};
use super::{ConfigError, Source};
use crate::texts::stamp::{DEFAULT_STAMP, StampTemplate};

/// How a browser is told to handle a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Save it (`Content-Disposition: attachment`).
    Attachment,
    /// Show it in the browser where it can (a PDF opens in the viewer), with the same filename
    /// when saved.
    Inline,
}

/// What a watermarked document that cannot be stamped (encrypted, unreadable, too large, or its
/// recipient's address no longer known) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampFallback {
    /// Served as it is, unstamped; the owner's request log says `unstamped`.
    Serve,
    /// Refused (`503`, `document_not_stampable`); the link is not spent.
    Refuse,
}

/// What recipients' browsers meet: the confirm page, how documents open, who may embed the form.
#[derive(Debug, Clone)]
pub struct Recipients {
    /// A browser's `GET` of a link shows a page with a Download button; only its `POST` (or a
    /// non-browser `GET`, or a resume) streams. Keeps mail scanners from spending links.
    pub confirm_page: bool,
    pub disposition: Disposition,
    /// Origins (`https://www.example.com`) whose pages may post link requests with script
    /// (CORS) and embed the request form in a frame.
    pub cors_origins: Vec<String>,
    /// After a completed download, the same client network may fetch the document once more for
    /// this long (a phone's download manager fetches twice). Zero: never.
    pub redownload_grace: Duration,
    /// The line stamped on every page of a watermarked PDF.
    pub watermark_text: StampTemplate,
    /// What a watermarked PDF that cannot be stamped gets.
    pub watermark_fallback: StampFallback,
}

impl Recipients {
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Self, ConfigError> {
        Ok(Recipients {
            confirm_page: env.parse(ENV_CONFIRM_PAGE, "on", parse_switch)?,
            disposition: env.parse(ENV_DISPOSITION, "attachment", |v| match v {
                "attachment" => Ok(Disposition::Attachment),
                "inline" => Ok(Disposition::Inline),
                _ => Err("expected attachment or inline"),
            })?,
            cors_origins: env.parse(ENV_CORS_ORIGINS, "", parse_origins)?,
            redownload_grace: env.parse(ENV_REDOWNLOAD_GRACE, "60s", parse_delay)?,
            watermark_text: env.parse(ENV_WATERMARK_TEXT, DEFAULT_STAMP, StampTemplate::parse)?,
            watermark_fallback: env.parse(ENV_WATERMARK_FALLBACK, "refuse", |v| match v {
                "serve" => Ok(StampFallback::Serve),
                "refuse" => Ok(StampFallback::Refuse),
                _ => Err("expected serve or refuse"),
            })?,
        })
    }
}

/// Comma-separated origins: `scheme://host[:port]`, no path. Returned as browsers send them in
/// `Origin` (lowercase, no trailing slash).
fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|origin| {
            let bad = || format!("{origin:?} is not an origin like https://www.example.com");
            let uri: http::Uri = origin.parse().map_err(|_| bad())?;
            let scheme = uri.scheme_str().filter(|s| matches!(*s, "http" | "https"));
            let (Some(scheme), Some(authority)) = (scheme, uri.authority()) else {
                return Err(bad());
            };
            let path = uri.path_and_query().map_or("", |p| p.as_str());
            if !matches!(path, "" | "/") || authority.as_str().contains('@') {
                return Err(bad());
            }
            Ok(format!(
                "{scheme}://{}",
                authority.as_str().to_ascii_lowercase()
            ))
        })
        .collect()
}
