//! Owner notifications: when a download *completes*, the document's owner learns who downloaded
//! what and when, by mail (`DOCGATE_OWNER_EMAIL`) and/or a signed webhook
//! (`DOCGATE_OWNER_WEBHOOK_URL`, see [`webhook`]). A download that is cut off, partial or
//! refused tells nobody.
//!
//! # Where the requester's address comes from
//!
//! The token holds no personal data and the token store keeps only a hash of the address, yet
//! the owner is to learn who downloaded. The owner's request log already records the address
//! each link was requested (or minted) for, with the link's `jti`: a completed download looks it
//! up there (the request log's `requester`). So the address is kept in one place
//! only, under the log's retention, and erasing a person from the log also stops later notices
//! from naming them: such a download is reported with the address unknown. It is never logged.
//!
//! # Delivery
//!
//! This module says *what* the owner learns ([`Download`]) and how the webhook is signed and
//! called ([`webhook`]); it does not decide when. A completed download hands its notices to the
//! outbox as jobs (the outbox's `notice::Pending`), where they get the link mails' delivery:
//! with Redis and SMTP the durable queue (retries, dead letters, metrics, crash recovery), without
//! it a delivery now with a few retries in the background, which a stopping process loses.

pub mod webhook;

use crate::token::Jti;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// A notice not delivered this long after its download is given up (`expired`).
pub const NOTICE_LIFETIME: Duration = Duration::from_secs(3 * 24 * 3600);

/// One completed download, as the owner learns of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Download {
    /// Unique per completed download: the webhook's `Docgate-Event-Id`, the same on every retry,
    /// so a receiver can drop a repeat.
    pub event_id: String,
    /// The link's id, as in the request log.
    pub jti: Jti,
    /// The document's catalog id.
    pub doc: String,
    /// The document's title.
    pub title: String,
    /// The address the link was made for; `None` when none was kept.
    pub email: Option<String>,
    /// When the last byte went out, seconds since the epoch.
    pub downloaded_at: u64,
    /// The downloading client.
    pub client_ip: IpAddr,
}

impl Download {
    /// When delivering the notice stops being worth it, seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.downloaded_at.saturating_add(NOTICE_LIFETIME.as_secs())
    }
}

/// An event for the owner's webhook other than a download, its JSON body written whole by its
/// sender: `approval.requested` (see README.md, "Approval").
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    /// The webhook's `Docgate-Event-Id`: the pending request's id.
    pub id: Jti,
    /// The document's catalog id.
    pub doc: String,
    /// When it stops being worth delivering, seconds since the epoch.
    pub exp: u64,
    /// The JSON body.
    pub body: String,
}

/// Never prints the body (it names the address).
impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id.short())
            .field("doc", &self.doc)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// Never prints the address.
impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("event_id", &self.event_id)
            .field("jti", &self.jti.short())
            .field("doc", &self.doc)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("downloaded_at", &self.downloaded_at)
            .finish_non_exhaustive()
    }
}
