//! The owner's request log: who asked for which document, and what became of each link, behind
//! [`RequestLog`].
//!
//! Unlike the service's diagnostic logs this record is *meant* to name people: it is how the owner
//! learns who asked and who downloaded. It is written only here, to a place the owner controls,
//! and never to stdout.
//!
//! It owns the entries' lifecycle too: one person's entries (found by [`Pseudonyms::person`] of their
//! address: their link requests, and the downloads and opens of the links made for them, joined
//! by `jti`) can be exported and erased, and entries older than
//! `DOCGATE_REQUEST_LOG_RETENTION` are deleted ([`purge_older_than`](RequestLog::purge_older_than),
//! run by [`sweep`] at startup and every hour).
//!
//! Implementations: [`JsonLinesLog`] (embedded: one JSON object per line, appended to a file;
//! erasure and retention rewrite the file atomically) and [`shared::RedisLog`] (Redis, shared by
//! every replica; its keys are listed in that module).

pub mod shared;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::pseudonym::Pseudonyms;
use crate::token::Claims;

/// The most characters of a `User-Agent` kept in a [`Event::LinkOpened`] entry.
pub const MAX_USER_AGENT: usize = 200;

/// How often [`sweep`] deletes the entries past their retention.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A link request (`POST /api/download-requests`), answered or refused.
    LinkRequested,
    /// A download of a link, started or refused.
    Download,
    /// A link fetched without downloading (the confirmation page a link opens first): often a
    /// mail scanner following every link seconds after delivery, sometimes the person.
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
    /// The visitor's name, as given on the request form (trimmed, at most 100 characters).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// The visitor's company, as given on the request form (trimmed, at most 100 characters).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub company: Option<String>,
    /// Whether the visitor agreed to the privacy notice, when the request said either way.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub consent: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub document: Option<String>,
    pub client_ip: IpAddr,
    /// `sent`, `invalid`, `rate_limited`, `completed`, `interrupted`, `used`, `opened`, ...
    pub outcome: String,
    /// The link's id, joining a request to its downloads and opens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
    /// For [`Event::LinkOpened`]: the client's `User-Agent`, see [`clean_user_agent`].
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_agent: Option<String>,
    /// For [`Event::LinkOpened`]: seconds from the link's `iat` (when it was made, so about
    /// when it was mailed) to the fetch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub after_send_secs: Option<u64>,
}

impl Entry {
    /// An entry stamped now.
    pub fn now(event: Event, client_ip: IpAddr, outcome: &str) -> Self {
        let at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        Self {
            at,
            event,
            email: None,
            name: None,
            company: None,
            consent: None,
            document: None,
            client_ip,
            outcome: outcome.to_owned(),
            jti: None,
            user_agent: None,
            after_send_secs: None,
        }
    }

    /// A [`Event::LinkOpened`] entry stamped now (`now`: seconds since the epoch, as the link
    /// was checked at), outcome `opened`.
    pub fn link_opened(
        client_ip: IpAddr,
        claims: &Claims,
        now: u64,
        user_agent: Option<&str>,
    ) -> Self {
        let mut entry = Self::now(Event::LinkOpened, client_ip, "opened");
        entry.document = Some(claims.doc.clone());
        entry.jti = Some(claims.jti.clone());
        entry.user_agent = user_agent.map(clean_user_agent);
        entry.after_send_secs = Some(now.saturating_sub(claims.iat));
        entry
    }

    /// When the entry was written, or `None` if its `at` is not RFC 3339.
    pub fn time(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.at, &Rfc3339).ok()
    }

    /// The person the entry names by address ([`Pseudonyms::person`] of it), if it names one.
    pub fn owner(&self, ids: &Pseudonyms) -> Option<String> {
        self.email.as_deref().map(|email| ids.person(email))
    }
}

/// A `User-Agent` as the log keeps it: control characters removed, at most
/// [`MAX_USER_AGENT`] characters.
pub fn clean_user_agent(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("request log unavailable: {0}")]
    Unavailable(String),
}

/// The owner's request log: appended to by requests, read, exported and erased by operators.
#[async_trait]
pub trait RequestLog: Send + Sync + 'static {
    async fn record(&self, entry: &Entry) -> Result<(), LogError>;

    /// Up to `limit` entries, newest first, after skipping the `offset` newest.
    async fn recent(&self, limit: usize, offset: usize) -> Result<Vec<Entry>, LogError>;

    /// Every entry of one person (`owner`: [`Pseudonyms::person`] of their address), newest first: the
    /// entries naming their address, and the downloads and opens of the links made for them.
    async fn person(&self, owner: &str) -> Result<Vec<Entry>, LogError>;

    /// Deletes every entry [`person`](Self::person) returns, and forgets which links were made
    /// for them: a later download of one of those links is recorded, but not joined to them.
    /// Returns how many entries were deleted.
    async fn erase(&self, owner: &str) -> Result<u64, LogError>;

    /// Deletes the entries written before `cutoff`; returns how many.
    async fn purge_older_than(&self, cutoff: OffsetDateTime) -> Result<u64, LogError>;

    /// The address the link `jti` was requested for, from its link request entry; `None` when
    /// the log has no such entry (erased, purged, or the link was minted without one).
    async fn requester(&self, jti: &str) -> Result<Option<String>, LogError>;
}

/// The address of the link request entry for `jti` among `entries`.
fn requester_in(entries: &[Entry], jti: &str) -> Option<String> {
    entries
        .iter()
        .find(|e| e.event == Event::LinkRequested && e.jti.as_deref() == Some(jti))
        .and_then(|e| e.email.clone())
}

/// Deletes the entries older than `keep` now and then every [`SWEEP_EVERY`], until `stop`.
pub async fn sweep(log: Arc<dyn RequestLog>, keep: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some(cutoff) = cutoff(OffsetDateTime::now_utc(), keep) else {
            continue;
        };
        match log.purge_older_than(cutoff).await {
            Ok(0) => {}
            Ok(purged) => {
                tracing::info!(purged, "request log entries past their retention deleted")
            }
            Err(e) => tracing::warn!(cause = %e, "request log retention not applied; will retry"),
        }
    }
}

/// `now` less `keep`; `None` when that is before any time there can be an entry of.
pub fn cutoff(now: OffsetDateTime, keep: Duration) -> Option<OffsetDateTime> {
    now.checked_sub(time::Duration::try_from(keep).ok()?)
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

/// For each entry, whether it belongs to `owner`: it names their address, or it has no address
/// and its link was made for them (a link request of theirs names its `jti`).
fn belongs_to(entries: &[Entry], owner: &str, ids: &Pseudonyms) -> Vec<bool> {
    let named: Vec<bool> = entries
        .iter()
        .map(|e| e.owner(ids).is_some_and(|o| o == owner))
        .collect();
    let links: HashSet<&str> = entries
        .iter()
        .zip(&named)
        .filter(|(_, named)| **named)
        .filter_map(|(e, _)| e.jti.as_deref())
        .collect();
    entries
        .iter()
        .zip(named)
        .map(|(e, named)| {
            named || (e.email.is_none() && e.jti.as_deref().is_some_and(|j| links.contains(j)))
        })
        .collect()
}

/// A JSON-lines file, opened for appending.
///
/// Erasure and retention rewrite it: the entries kept go to a temporary file beside it, which
/// then replaces it (`rename`), under the same lock as appends, so no entry is lost and a reader
/// sees the old file or the new one. Lines that cannot be read (torn by a crash) are dropped by
/// a rewrite. Only this process may write the file: a second writer's appends during a rewrite
/// would be lost.
pub struct JsonLinesLog {
    path: PathBuf,
    file: Mutex<tokio::fs::File>,
    /// Names the person of an entry, to find one person's entries.
    ids: Arc<Pseudonyms>,
}

impl JsonLinesLog {
    /// Opens (creating) the file at `path`, and its directory. A file whose last line was torn
    /// by a crash gets a line end first, so the next entry starts a line of its own.
    pub async fn open(path: &Path, ids: Arc<Pseudonyms>) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut file = Self::append_to(path).await?;
        if Self::last_byte(path).await?.is_some_and(|b| b != b'\n') {
            file.write_all(b"\n").await?;
            file.flush().await?;
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
            ids,
        })
    }

    /// The file's last byte, `None` when it is empty.
    async fn last_byte(path: &Path) -> std::io::Result<Option<u8>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = tokio::fs::File::open(path).await?;
        if file.metadata().await?.len() == 0 {
            return Ok(None);
        }
        file.seek(std::io::SeekFrom::End(-1)).await?;
        Ok(Some(file.read_u8().await?))
    }

    async fn append_to(path: &Path) -> std::io::Result<tokio::fs::File> {
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every readable entry, oldest first.
    async fn entries(&self) -> Result<Vec<Entry>, LogError> {
        let bytes = tokio::fs::read(&self.path).await.map_err(unavailable)?;
        // A line being appended right now, or cut by a crash, may be incomplete (even mid
        // character): it is skipped, not an error.
        Ok(bytes
            .split(|&b| b == b'\n')
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect())
    }

    /// Rewrites the file without the entries `remove` picks out of all of them (and without
    /// unreadable lines), unless it picks none. Returns how many were removed.
    async fn rewrite(&self, remove: impl FnOnce(&[Entry]) -> Vec<bool>) -> Result<u64, LogError> {
        let mut file = self.file.lock().await;
        let entries = self.entries().await?;
        let gone = remove(&entries);
        let removed = gone.iter().filter(|g| **g).count();
        if removed == 0 {
            return Ok(0);
        }
        let mut text = Vec::new();
        for (entry, _) in entries.iter().zip(&gone).filter(|(_, gone)| !**gone) {
            serde_json::to_writer(&mut text, entry).map_err(unavailable)?;
            text.push(b'\n');
        }
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".rewrite");
        let temporary = PathBuf::from(temporary);
        let written = async {
            let mut out = tokio::fs::File::create(&temporary).await?;
            out.write_all(&text).await?;
            out.sync_all().await?;
            tokio::fs::rename(&temporary, &self.path).await?;
            Self::append_to(&self.path).await
        }
        .await;
        match written {
            Ok(reopened) => {
                *file = reopened;
                Ok(removed as u64)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&temporary).await;
                Err(unavailable(e))
            }
        }
    }
}

#[async_trait]
impl RequestLog for JsonLinesLog {
    async fn record(&self, entry: &Entry) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(entry).map_err(unavailable)?;
        line.push(b'\n');
        let mut file = self.file.lock().await;
        file.write_all(&line).await.map_err(unavailable)?;
        file.flush().await.map_err(unavailable)
    }

    async fn recent(&self, limit: usize, offset: usize) -> Result<Vec<Entry>, LogError> {
        let mut entries = self.entries().await?;
        entries.reverse();
        Ok(entries.into_iter().skip(offset).take(limit).collect())
    }

    async fn requester(&self, jti: &str) -> Result<Option<String>, LogError> {
        Ok(requester_in(&self.entries().await?, jti))
    }

    async fn person(&self, owner: &str) -> Result<Vec<Entry>, LogError> {
        let entries = self.entries().await?;
        let theirs = belongs_to(&entries, owner, &self.ids);
        let mut found: Vec<Entry> = entries
            .into_iter()
            .zip(theirs)
            .filter_map(|(e, theirs)| theirs.then_some(e))
            .collect();
        found.reverse();
        Ok(found)
    }

    async fn erase(&self, owner: &str) -> Result<u64, LogError> {
        self.rewrite(|entries| belongs_to(entries, owner, &self.ids))
            .await
    }

    async fn purge_older_than(&self, cutoff: OffsetDateTime) -> Result<u64, LogError> {
        // An entry whose time cannot be read is kept: nothing says it is old.
        self.rewrite(|entries| {
            entries
                .iter()
                .map(|e| e.time().is_some_and(|t| t < cutoff))
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ids() -> Arc<Pseudonyms> {
        Arc::new(Pseudonyms::with_key(b"request log tests"))
    }

    fn entry(event: Event, at: &str, outcome: &str) -> Entry {
        let mut entry = Entry::now(event, "192.0.2.1".parse().unwrap(), outcome);
        entry.at = at.to_owned();
        entry
    }

    fn request(at: &str, email: &str, jti: &str) -> Entry {
        let mut entry = entry(Event::LinkRequested, at, "sent");
        entry.email = Some(email.to_owned());
        entry.document = Some("resume".to_owned());
        entry.jti = Some(jti.to_owned());
        entry
    }

    fn download(at: &str, jti: &str) -> Entry {
        let mut entry = entry(Event::Download, at, "completed");
        entry.jti = Some(jti.to_owned());
        entry
    }

    fn time(at: &str) -> OffsetDateTime {
        OffsetDateTime::parse(at, &Rfc3339).unwrap()
    }

    #[tokio::test]
    async fn entries_append_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/requests.jsonl");
        let log = JsonLinesLog::open(&path, ids()).await.unwrap();
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

    #[tokio::test]
    async fn a_torn_last_line_does_not_swallow_the_next_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let old = request("2026-01-01T00:00:00Z", "jane@example.com", "j1");
        let mut text = serde_json::to_vec(&old).unwrap();
        text.extend_from_slice(b"\n{\"at\":\"2026-01-02T00:00:00Z\",\"email\":\"jo");
        std::fs::write(&path, text).unwrap();

        let log = JsonLinesLog::open(&path, ids()).await.unwrap();
        let new = download("2026-01-03T00:00:00Z", "j1");
        log.record(&new).await.unwrap();
        assert_eq!(log.recent(10, 0).await.unwrap(), [new.clone(), old.clone()]);

        // A rewrite drops the torn line, with its partial address.
        assert_eq!(
            log.purge_older_than(time("2026-01-02T00:00:00Z"))
                .await
                .unwrap(),
            1
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("\"jo"), "{text}");
        assert_eq!(text.lines().count(), 1);
    }

    #[tokio::test]
    async fn retention_rewrites_the_file_without_the_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let log = JsonLinesLog::open(&path, ids()).await.unwrap();
        let entries = [
            request("2025-01-01T10:00:00Z", "old@example.com", "j1"),
            download("2025-01-01T10:05:00.5Z", "j1"),
            request("2026-03-01T10:00:00Z", "new@example.com", "j2"),
            download("2026-03-01T10:00:01Z", "j2"),
        ];
        for e in &entries {
            log.record(e).await.unwrap();
        }
        let mut undated = entry(Event::Download, "yesterday", "completed");
        undated.jti = Some("j3".to_owned());
        log.record(&undated).await.unwrap();

        assert_eq!(
            log.purge_older_than(time("2025-01-01T10:00:00Z"))
                .await
                .unwrap(),
            0,
            "nothing is older than the oldest entry"
        );
        assert_eq!(
            log.purge_older_than(time("2026-03-01T10:00:00Z"))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            log.recent(10, 0).await.unwrap(),
            [undated.clone(), entries[3].clone(), entries[2].clone()],
            "an entry without a readable time is kept"
        );
        assert!(
            !dir.path().join("requests.jsonl.rewrite").exists(),
            "no temporary file is left"
        );

        // Appends go to the new file.
        let later = download("2026-03-02T00:00:00Z", "j2");
        log.record(&later).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(!text.contains("old@example.com"));
        assert_eq!(log.recent(1, 0).await.unwrap(), [later]);
    }

    #[tokio::test]
    async fn erasure_removes_one_persons_requests_and_the_uses_of_their_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let log = JsonLinesLog::open(&path, ids()).await.unwrap();
        let claims = Claims {
            jti: "j1".to_owned(),
            doc: "resume".to_owned(),
            iat: 1_000,
            exp: 1_900,
            iss: "docgate".to_owned(),
        };
        let mut refused = entry(
            Event::LinkRequested,
            "2026-01-01T09:00:00Z",
            "invalid_request",
        );
        refused.email = Some("JANE@example.com ".to_owned());
        let opened = Entry::link_opened(
            "198.51.100.7".parse().unwrap(),
            &claims,
            1_003,
            Some("Mozilla/5.0\r\n(scanner)"),
        );
        let jane = [
            refused,
            request("2026-01-01T10:00:00Z", "jane@example.com", "j1"),
            opened,
            download("2026-01-01T10:05:00Z", "j1"),
        ];
        let joe = [
            request("2026-01-01T11:00:00Z", "joe@example.com", "j2"),
            download("2026-01-01T11:05:00Z", "j2"),
            download("2026-01-01T11:06:00Z", "unknown"),
        ];
        for e in jane.iter().chain(&joe) {
            log.record(e).await.unwrap();
        }
        assert_eq!(jane[2].user_agent.as_deref(), Some("Mozilla/5.0(scanner)"));
        assert_eq!(jane[2].after_send_secs, Some(3));

        let owner = ids().person("jane@example.com");
        let mut expected = jane.to_vec();
        expected.reverse();
        assert_eq!(log.person(&owner).await.unwrap(), expected);

        assert_eq!(log.erase(&owner).await.unwrap(), 4);
        assert!(log.person(&owner).await.unwrap().is_empty());
        let mut rest = joe.to_vec();
        rest.reverse();
        assert_eq!(log.recent(10, 0).await.unwrap(), rest);
        assert!(!std::fs::read_to_string(&path).unwrap().contains("jane"));
        assert_eq!(log.erase(&owner).await.unwrap(), 0);

        // A later download of Jane's old link is kept, and not joined to her.
        log.record(&download("2026-01-02T00:00:00Z", "j1"))
            .await
            .unwrap();
        assert!(log.person(&owner).await.unwrap().is_empty());
    }

    #[test]
    fn user_agents_are_cut_and_cleaned() {
        assert_eq!(clean_user_agent(" curl/8.5\u{0}\u{1b}[2J "), "curl/8.5[2J");
        assert_eq!(clean_user_agent(&"x".repeat(500)).len(), MAX_USER_AGENT);
        assert_eq!(
            clean_user_agent(&"é".repeat(500)).chars().count(),
            MAX_USER_AGENT
        );
    }

    #[test]
    fn cutoffs_never_overflow() {
        let now = time("2026-01-01T00:00:00Z");
        assert_eq!(
            cutoff(now, Duration::from_secs(86_400)),
            Some(time("2025-12-31T00:00:00Z"))
        );
        assert_eq!(cutoff(now, Duration::from_secs(u64::MAX)), None);
    }
}
