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
//! It owns the log's bounds, so no client grows it without limit: a refused link request is never
//! recorded (the caller only counts it); a [note](Entry::is_note) (an open of a link, a refused
//! download of it, a link request that made no link) is stored only while its link has fewer than
//! [`NOTES_PER_LINK`] and its person fewer than [`PER_PERSON_PER_HOUR`] entries in the hour; and
//! past `DOCGATE_REQUEST_LOG_MAX_ENTRIES` ([`DEFAULT_MAX_ENTRIES`]) each write evicts the oldest
//! entry. A note past its bounds is dropped silently: metrics count every one.
//!
//! Implementations: [`JsonLinesLog`] (embedded: one JSON object per line, appended to a file,
//! with an in-memory index so no question reads the whole file; erasure, retention and
//! compaction rewrite the file atomically) and [`shared::RedisLog`] (Redis, shared by every
//! replica; its keys are listed in that module).

mod file;
pub mod shared;

pub use file::JsonLinesLog;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use crate::pseudonym::Pseudonyms;
use crate::token::Claims;

/// The most characters of a `User-Agent` kept in a [`Event::LinkOpened`] entry.
pub const MAX_USER_AGENT: usize = 200;

/// How often [`sweep`] deletes the entries past their retention.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The most entries kept unless `DOCGATE_REQUEST_LOG_MAX_ENTRIES` says otherwise: at most about
/// 1.5 KB each (every field is bounded), so some 100 MB at the very most, in Redis or on disk.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// The most [notes](Entry::is_note) stored per link (opens of it, refused downloads of it); the
/// rest are only counted in metrics.
pub const NOTES_PER_LINK: usize = 5;

/// The most entries of one person (their link requests, and the uses of their links) in any
/// hour beyond which their [notes](Entry::is_note) are only counted in metrics.
pub const PER_PERSON_PER_HOUR: usize = 20;

/// The outcomes of a download that started (see `http::body::Outcome`): bounded by the link's
/// download attempts, always stored.
const STARTED: [&str; 4] = ["completed", "partial", "interrupted", "failed"];

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
    /// For [`Event::Download`] of a watermarked document: `stamped`, or `unstamped` when the
    /// document could not be stamped and was served as it is (`DOCGATE_WATERMARK_FALLBACK=serve`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub watermark: Option<String>,
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
            watermark: None,
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
        entry.jti = Some(claims.jti.as_str().to_owned());
        entry.user_agent = user_agent.map(clean_user_agent);
        entry.after_send_secs = Some(now.saturating_sub(claims.iat));
        entry
    }

    /// When the entry was written, or `None` if its `at` is not RFC 3339.
    pub fn time(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.at, &Rfc3339).ok()
    }

    /// Whether the entry is a note: something anyone holding a link or an address can repeat
    /// at will (an open of a link, a refused download of it, a link request that made no link).
    /// Notes are stored only within [`NOTES_PER_LINK`] and [`PER_PERSON_PER_HOUR`]; link
    /// requests that made a link and downloads that started are bounded by the rate limits and
    /// the link's attempts, and always stored.
    pub fn is_note(&self) -> bool {
        match self.event {
            Event::LinkOpened => true,
            Event::LinkRequested => self.jti.is_none(),
            Event::Download => !STARTED.contains(&self.outcome.as_str()),
        }
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
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What recording an entry of one link needs to read first, read ahead of it
/// ([`RequestLog::prefetch`]): for the log on Redis, the person the link was made for. Empty when
/// nothing was read ahead (the log needs nothing, or the read failed): recording then reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefetched(pub(crate) Option<String>);

/// The owner's request log: appended to by requests, read, exported and erased by operators.
#[async_trait]
pub trait RequestLog: Send + Sync + 'static {
    async fn record(&self, entry: &Entry) -> Result<(), LogError>;

    /// Reads ahead what recording an entry of link `jti` will need, so that a download can read
    /// it beside its claim and record its entry after the bytes in one round trip. Never fails:
    /// a failed read is only an empty [`Prefetched`].
    async fn prefetch(&self, _jti: &str) -> Prefetched {
        Prefetched::default()
    }

    /// [`record`](Self::record) with what [`prefetch`](Self::prefetch) read for the entry's link.
    /// What changed since (the person erased meanwhile) is found and read again, as `record` would.
    async fn record_prefetched(&self, entry: &Entry, _read: Prefetched) -> Result<(), LogError> {
        self.record(entry).await
    }

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

fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LogError {
    LogError::Unavailable(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(at: &str) -> OffsetDateTime {
        OffsetDateTime::parse(at, &Rfc3339).unwrap()
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
