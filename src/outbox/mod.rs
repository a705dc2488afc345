//! The outbox: every message docgate sends on its own is a [`Job`] (a link mail, an owner's
//! mail, an owner's webhook call), submitted to one [`Outbox`] and delivered by one
//! [`Deliverer`].
//!
//! A caller learns only that its job was *accepted* (`Ok`: it will reach its receiver, or already
//! has) or why not. The strategies differ only in where a job waits before the deliverer takes
//! it:
//!
//! - nowhere: [`direct::Direct`] delivers at once, with a few retries in the process: `.eml`
//!   files in `DOCGATE_OUTBOX_DIR` (embedded), or SMTP without Redis;
//! - a Redis stream: [`queue::RedisOutbox`] appends the job durably and answers; a
//!   [`queue::Sender`] per replica takes jobs from the stream and hands each to the same
//!   deliverer, with retries, dead letters and crash recovery (`docs/operations.md`, "The mail
//!   queue").
//!
//! The [`Deliverer`] composes the message ([`crate::mail::Composer`]), hands it to SMTP, writes
//! the `.eml` file or calls the webhook, tells a permanent failure from one worth retrying, and is
//! the only place that counts deliveries in `docgate_mail_total` and
//! `docgate_notifications_total`. [`notice::Pending`] turns a completed download into the owner's
//! notice jobs.

pub mod deliver;
pub mod direct;
pub mod notice;
pub mod queue;

use async_trait::async_trait;
use lettre::message::Mailbox;
use serde::Serialize;

pub use deliver::Deliverer;

use crate::mail::{LinkMail, MailError, Note};
use crate::notify::{Download, Event};
use crate::token::Jti;

/// Something to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A link mailed to the person it was made for.
    Link(LinkMail),
    /// A mail to the owner (`DOCGATE_OWNER_EMAIL`) telling of a completed download.
    OwnerMail { to: Mailbox, download: Download },
    /// A signed POST to `DOCGATE_OWNER_WEBHOOK_URL` telling of a completed download.
    Webhook(Download),
    /// A plain-text mail written whole by its sender: the owner's request for a decision, the
    /// note to a person whose request was declined.
    Note(Note),
    /// A signed POST to `DOCGATE_OWNER_WEBHOOK_URL` of an event other than a download.
    Event(Event),
}

impl Job {
    pub fn kind(&self) -> Kind {
        match self {
            Job::Link(_) => Kind::Link,
            Job::OwnerMail { .. } => Kind::OwnerMail,
            Job::Webhook(_) => Kind::Webhook,
            Job::Note(_) => Kind::Note,
            Job::Event(_) => Kind::Event,
        }
    }

    /// The link's id (a notice's: the downloaded link's).
    pub fn jti(&self) -> &Jti {
        match self {
            Job::Link(mail) => &mail.claims.jti,
            Job::OwnerMail { download, .. } | Job::Webhook(download) => &download.jti,
            Job::Note(note) => &note.id,
            Job::Event(event) => &event.id,
        }
    }

    /// When the job stops being worth delivering, seconds since the epoch: a link mail's link
    /// expires; a notice is [`crate::notify::NOTICE_LIFETIME`] old.
    pub fn exp(&self) -> u64 {
        match self {
            Job::Link(mail) => mail.claims.exp,
            Job::OwnerMail { download, .. } | Job::Webhook(download) => download.expires_at(),
            Job::Note(note) => note.exp,
            Job::Event(event) => event.exp,
        }
    }
}

/// The kinds of job, by their `kind` field in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Link,
    OwnerMail,
    Webhook,
    Note,
    Event,
}

impl Kind {
    /// `link`, `owner-mail`, `webhook`, `note` or `event`.
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Link => "link",
            Kind::OwnerMail => "owner-mail",
            Kind::Webhook => "webhook",
            Kind::Note => "note",
            Kind::Event => "event",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Self> {
        [
            Kind::Link,
            Kind::OwnerMail,
            Kind::Webhook,
            Kind::Note,
            Kind::Event,
        ]
        .into_iter()
        .find(|k| k.tag() == tag)
    }

    /// The `channel` label of a notice in `docgate_notifications_total`; `None` for a link mail.
    pub fn channel(self) -> Option<&'static str> {
        match self {
            Kind::Link | Kind::Note => None,
            Kind::OwnerMail => Some("mail"),
            Kind::Webhook | Kind::Event => Some("webhook"),
        }
    }
}

/// How much waits in a queue, for metrics, the admin API and `docgate mail status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// In the stream: waiting, or being delivered.
    pub queued: u64,
    /// Waiting for a retry after a transient failure.
    pub retrying: u64,
    /// Dead letters.
    pub dead: u64,
}

/// Where jobs are submitted.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Accepts `job`: `Ok` means it will reach its receiver (or already has).
    async fn submit(&self, job: &Job) -> Result<(), MailError>;

    /// How much waits, for an outbox where jobs wait; `None` where they do not.
    async fn depth(&self) -> Result<Option<QueueDepth>, MailError> {
        Ok(None)
    }
}
