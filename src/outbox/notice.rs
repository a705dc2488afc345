//! The owner's notices of one download ([`crate::notify`]): made when the download starts, handed
//! to the outbox as jobs only if it completes.
//!
//! A notice never holds up or fails the download: [`Pending::send`] runs in the background (on
//! the `App`'s task tracker, so a graceful shutdown waits for it). A notice the outbox does not
//! accept is logged (by the link's `jti` prefix, never an address) and counted as
//! `docgate_notifications_total{outcome="dropped"}`; what the outbox delivers, its deliverer
//! counts.

use std::net::IpAddr;
use std::sync::Arc;

use lettre::message::Mailbox;
use tokio_util::task::TaskTracker;

use super::{Job, Outbox};
use crate::metrics::Metrics;
use crate::notify::Download;
use crate::requestlog::RequestLog;
use crate::token::Jti;
use crate::units::unix_now;

/// What the owner is to be told if a download completes: made when it starts, sent by the
/// download's end (`http::download`'s `on_finish`) only if its outcome is `Completed`.
pub struct Pending {
    pub(crate) jti: Jti,
    pub(crate) doc: String,
    pub(crate) title: String,
    pub(crate) client_ip: IpAddr,
    /// `DOCGATE_OWNER_EMAIL`, when set.
    pub(crate) owner: Option<Mailbox>,
    /// Whether `DOCGATE_OWNER_WEBHOOK_URL` is set.
    pub(crate) webhook: bool,
    pub(crate) requests: Arc<dyn RequestLog>,
    pub(crate) outbox: Arc<dyn Outbox>,
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
        let link = self.jti.short();
        let email = match self.requests.requester(self.jti.as_str()).await {
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
        let mut jobs = Vec::new();
        if let Some(owner) = &self.owner {
            jobs.push(Job::OwnerMail {
                to: owner.clone(),
                download: download.clone(),
            });
        }
        if self.webhook {
            jobs.push(Job::Webhook(download));
        }
        for job in jobs {
            let channel = job.kind().channel().unwrap_or_default();
            if let Err(e) = self.outbox.submit(&job).await {
                self.metrics.notified(channel, "dropped");
                // Mail errors name no address: transports describe failures by kind and code.
                tracing::warn!(link, channel, cause = %e, "download notice lost");
            }
        }
    }
}
