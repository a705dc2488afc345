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
//! up there ([`crate::requestlog::RequestLog::requester`]). So the address is kept in one place
//! only, under the log's retention, and erasing a person from the log also stops later notices
//! from naming them: such a download is reported with the address unknown. It is never logged.
//!
//! # Delivery
//!
//! A notice never holds up or fails the download: [`Pending::send`] runs in the background
//! (on the `App`'s task tracker, so a graceful shutdown waits for it) and hands each notice to
//! the mail outbox ([`crate::mail::Mailer::notify`]). With Redis and SMTP that is the durable
//! mail queue, where notices get the link mails' retries, dead letters, metrics and crash
//! recovery. Without a queue, the owner's mail is written to the outbox directory or sent over
//! SMTP, and the webhook is called, each with a few retries in the background: that is not
//! durable, and a notice still being retried when the process stops is lost. A notice that
//! cannot be handed over is logged (by the link's `jti` prefix, never an address) and counted as
//! `docgate_notifications_total{outcome="dropped"}`.

pub mod webhook;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use tokio_util::task::TaskTracker;

use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::requestlog::RequestLog;
use crate::units::unix_now;

/// A notice not delivered this long after its download is given up (`expired`).
pub const NOTICE_LIFETIME: Duration = Duration::from_secs(3 * 24 * 3600);

/// One completed download, as the owner learns of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Download {
    /// Unique per completed download: the webhook's `Docgate-Event-Id`, the same on every retry,
    /// so a receiver can drop a repeat.
    pub event_id: String,
    /// The link's id, as in the request log.
    pub jti: String,
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

    /// The first characters of the `jti`, for logs.
    pub fn jti_prefix(&self) -> &str {
        self.jti.get(..6).unwrap_or(&self.jti)
    }
}

/// Never prints the address.
impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("event_id", &self.event_id)
            .field("jti", &self.jti_prefix())
            .field("doc", &self.doc)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("downloaded_at", &self.downloaded_at)
            .finish_non_exhaustive()
    }
}

/// One way of telling the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A mail to the owner (`DOCGATE_OWNER_EMAIL`).
    OwnerMail { to: Mailbox, download: Download },
    /// A signed POST to `DOCGATE_OWNER_WEBHOOK_URL`.
    Webhook(Download),
}

impl Notice {
    pub fn download(&self) -> &Download {
        match self {
            Notice::OwnerMail { download, .. } | Notice::Webhook(download) => download,
        }
    }

    /// The metrics label and job kind: `mail` or `webhook`.
    pub fn channel(&self) -> &'static str {
        match self {
            Notice::OwnerMail { .. } => "mail",
            Notice::Webhook(_) => "webhook",
        }
    }
}

/// What the owner is to be told if a download completes: made when it starts, sent by the
/// download's end (`http::download`'s `on_finish`) only if its outcome is `Completed`.
pub struct Pending {
    pub(crate) jti: String,
    pub(crate) doc: String,
    pub(crate) title: String,
    pub(crate) client_ip: IpAddr,
    /// `DOCGATE_OWNER_EMAIL`, when set.
    pub(crate) owner: Option<Mailbox>,
    /// Whether `DOCGATE_OWNER_WEBHOOK_URL` is set.
    pub(crate) webhook: bool,
    pub(crate) requests: Arc<dyn RequestLog>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tasks: TaskTracker,
}

impl Pending {
    /// Hands the notices over in the background; returns at once.
    pub fn send(self) {
        let tasks = self.tasks.clone();
        tasks.spawn(self.deliver());
    }

    async fn deliver(self) {
        let link = self.jti.get(..6).unwrap_or(&self.jti).to_owned();
        let email = match self.requests.requester(&self.jti).await {
            Ok(email) => email,
            Err(e) => {
                tracing::warn!(link, cause = %e, "requester's address not read: the notice names nobody");
                None
            }
        };
        let download = Download {
            event_id: crate::token::new_jti(),
            jti: self.jti.clone(),
            doc: self.doc.clone(),
            title: self.title.clone(),
            email,
            downloaded_at: unix_now(),
            client_ip: self.client_ip,
        };
        let mut notices = Vec::new();
        if let Some(owner) = &self.owner {
            notices.push(Notice::OwnerMail {
                to: owner.clone(),
                download: download.clone(),
            });
        }
        if self.webhook {
            notices.push(Notice::Webhook(download));
        }
        for notice in notices {
            let channel = notice.channel();
            match self.mailer.notify(&notice).await {
                Ok(()) if self.mailer.queues() => {
                    tracing::debug!(link, channel, "download notice queued");
                }
                Ok(()) => {
                    self.metrics.notified(channel, "sent");
                    tracing::info!(link, channel, "download notice delivered");
                }
                Err(e) => {
                    self.metrics.notified(channel, "dropped");
                    // Mail errors name no address: transports describe failures by kind and code.
                    tracing::warn!(link, channel, cause = %e, "download notice lost");
                }
            }
        }
    }
}
