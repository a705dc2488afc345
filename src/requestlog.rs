//! The owner's request log: who asked for which document, and what became of each link, behind
//! [`RequestLog`].
//!
//! Unlike the service's diagnostic logs this record is *meant* to name people: it is how the owner
//! learns who asked and who downloaded. It is written only here, to a place the owner controls,
//! and never to stdout.
//!
//! Implementations: [`JsonLinesLog`] (embedded: one JSON object per line, appended to a file).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A link request (`POST /api/download-requests`), answered or refused.
    LinkRequested,
    /// A download of a link, started or refused.
    Download,
    /// A link's confirm page was fetched: by the person before they click, or by a mail scanner
    /// or link preview that never clicks.
    LinkOpened,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub at: String,
    pub event: Event,
    /// The address as the visitor gave it (for link requests).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub document: Option<String>,
    pub client_ip: IpAddr,
    /// `sent`, `invalid`, `rate_limited`, `completed`, `interrupted`, `used`, ...
    pub outcome: String,
    /// The link's id, joining a request to its downloads.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
    /// Who fetched a link's page (for [`Event::LinkOpened`]), truncated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,
    /// Seconds between the link's minting and this fetch: a fetch within seconds of sending is
    /// usually a mail scanner.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after_send_secs: Option<u64>,
}

impl Entry {
    /// An entry stamped now.
    pub fn now(event: Event, client_ip: IpAddr, outcome: &str) -> Self {
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Self {
            at,
            event,
            email: None,
            document: None,
            client_ip,
            outcome: outcome.to_owned(),
            jti: None,
            user_agent: None,
            after_send_secs: None,
        }
    }
}

/// Why an entry could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("request log unavailable: {0}")]
    Unavailable(String),
}

/// The owner's request log: appended to by requests, read by operators.
#[async_trait]
pub trait RequestLog: Send + Sync + 'static {
    async fn record(&self, entry: &Entry) -> Result<(), LogError>;

    /// Up to `limit` entries, newest first, after skipping the `offset` newest.
    async fn recent(&self, limit: usize, offset: usize) -> Result<Vec<Entry>, LogError>;
}

/// A JSON-lines file, opened for appending.
pub struct JsonLinesLog {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
}

impl JsonLinesLog {
    /// Opens (creating) the file at `path`, and its directory.
    pub async fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl RequestLog for JsonLinesLog {
    async fn record(&self, entry: &Entry) -> Result<(), LogError> {
        let mut line =
            serde_json::to_vec(entry).map_err(|e| LogError::Unavailable(e.to_string()))?;
        line.push(b'\n');
        let mut file = self.file.lock().await;
        file.write_all(&line)
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        file.flush()
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))
    }

    async fn recent(&self, limit: usize, offset: usize) -> Result<Vec<Entry>, LogError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        // A line being appended right now, or cut by a crash, may be incomplete (even mid
        // character): it is skipped, not an error.
        Ok(bytes
            .split(|&b| b == b'\n')
            .rev()
            .filter_map(|line| serde_json::from_slice(line).ok())
            .skip(offset)
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn entries_append_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/requests.jsonl");
        let log = JsonLinesLog::open(&path).await.unwrap();
        let mut entry = Entry::now(Event::LinkRequested, "192.0.2.1".parse().unwrap(), "sent");
        entry.email = Some("jane@example.com".to_owned());
        entry.document = Some("resume".to_owned());
        log.record(&entry).await.unwrap();
        log.record(&Entry::now(
            Event::Download,
            "192.0.2.2".parse().unwrap(),
            "completed",
        ))
        .await
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Entry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], entry);
        assert_eq!(lines[1].outcome, "completed");

        let newest = log.recent(1, 0).await.unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].outcome, "completed");
        assert_eq!(log.recent(10, 1).await.unwrap(), vec![entry]);
        assert!(log.recent(10, 2).await.unwrap().is_empty());

        // A torn last line (a crash mid-write, mid-character) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"at\":\"x\",\"email\":\"j\xc3")
            .unwrap();
        assert_eq!(log.recent(10, 0).await.unwrap().len(), 2);
    }
}
