//! The outbox where jobs wait nowhere: each is delivered as it is submitted. Used with SMTP but
//! no Redis, and embedded (`.eml` files in `DOCGATE_OUTBOX_DIR`).
//!
//! With no durable queue of its own, docgate answers a link request only after the SMTP server
//! has *accepted* the message: the relay's queue is then the durable one. A transient failure is
//! retried twice within the request (after 250 ms and 1 s); if the server still does not accept,
//! the request fails with `503` and the visitor asks again. With Redis configured, the durable
//! queue ([`super::queue`]) is used instead and requests never wait for SMTP.
//!
//! An owner's notice is sent in the background (nobody waits for it), so it is retried longer:
//! after 1 s, 5 s and 30 s; the owner's webhook likewise, with either transport. None of this
//! survives a restart. A file in the outbox directory is written once: a failure to write it is
//! not retried.
//!
//! Logs name the link by the first characters of its `jti` and, for a file, the file's path;
//! never the address or the link.

use std::time::Duration;

use async_trait::async_trait;

use super::deliver::{Attempt, Deliverer, Receipt};
use super::{Job, Kind, Outbox};
use crate::mail::MailError;

/// Waits before the retries of a transiently failed link mail over SMTP.
pub const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// Waits before the retries of a transiently failed notice (owner's mail over SMTP, webhook).
pub const NOTICE_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// Delivers each job at once.
pub struct Direct {
    deliverer: Deliverer,
}

impl Direct {
    pub fn new(deliverer: Deliverer) -> Self {
        Self { deliverer }
    }

    /// The waits before each retry of a transiently failed `kind` of job.
    fn delays(&self, kind: Kind) -> &'static [Duration] {
        match kind {
            Kind::Webhook | Kind::Event => &NOTICE_RETRY_DELAYS,
            _ if !self.deliverer.is_smtp() => &[],
            Kind::Link => &RETRY_DELAYS,
            Kind::OwnerMail | Kind::Note => &NOTICE_RETRY_DELAYS,
        }
    }
}

#[async_trait]
impl Outbox for Direct {
    async fn submit(&self, job: &Job) -> Result<(), MailError> {
        let link = job.jti().short();
        let kind = job.kind();
        let mut delays = self.delays(kind).iter();
        loop {
            let error = match self.deliverer.attempt(job, None).await {
                Attempt::Delivered(receipt) => {
                    match receipt {
                        Receipt::Smtp => tracing::info!(link, "mail accepted by the SMTP server"),
                        Receipt::File(path) => {
                            let what = match kind {
                                Kind::Link => "link",
                                _ => "download notice",
                            };
                            tracing::info!(path = %path.display(), what, "mail written to the outbox");
                        }
                        Receipt::Webhook => {}
                    }
                    if let Some(channel) = kind.channel() {
                        tracing::info!(link, channel, "download notice delivered");
                    }
                    return Ok(());
                }
                Attempt::Invalid { error, .. } => return Err(error),
                Attempt::Rejected { error, .. } => return Err(error.into()),
                Attempt::Failed(error) => error,
            };
            let Some(delay) = delays.next() else {
                return Err(error.into());
            };
            if kind == Kind::Webhook {
                tracing::info!(
                    link,
                    cause = %error,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "webhook delivery failed; retrying"
                );
            } else {
                tracing::info!(link, cause = %error, "SMTP delivery failed; retrying");
            }
            tokio::time::sleep(*delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use super::*;
    use crate::mail::{Composer, DeliveryError, LinkMail};
    use crate::metrics::Metrics;
    use crate::notify::Download;
    use crate::secret::Secret;
    use crate::token::{Claims, TokenCodec};
    use crate::units::unix_now;

    fn series(metrics: &Metrics, name: &str) -> String {
        metrics
            .render()
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn a_job_written_to_the_directory_is_counted_once_and_a_webhook_without_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let composer = Composer::new(
            Arc::new(TokenCodec::single(&Secret::new(vec![7; 32]))),
            "https://docs.example.com",
            "docgate <noreply@example.com>".parse().unwrap(),
        );
        let outbox = Direct::new(
            Deliverer::files(dir.path(), composer)
                .unwrap()
                .with_metrics(metrics.clone()),
        );
        let sent = "docgate_mail_total{outcome=\"sent\"}";
        assert_eq!(series(&metrics, sent), format!("{sent} 0"));

        let link = Job::Link(LinkMail {
            to: "visitor@example.org".parse().unwrap(),
            claims: Claims::new("resume", unix_now(), 900),
            title: "Jane Doe's resume".to_owned(),
            size: None,
        });
        outbox.submit(&link).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(series(&metrics, sent), format!("{sent} 1"));

        let notice = Job::Webhook(Download {
            event_id: "evt-1".to_owned(),
            jti: "abcdefghijklmnopqrstuv".into(),
            doc: "resume".to_owned(),
            title: "Jane Doe's resume".to_owned(),
            email: None,
            downloaded_at: unix_now(),
            client_ip: IpAddr::from([192, 0, 2, 7]),
        });
        let err = outbox.submit(&notice).await.unwrap_err();
        assert!(
            matches!(err, MailError::Delivery(DeliveryError::NoWebhook)),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "mail could not be delivered: no webhook is configured (DOCGATE_OWNER_WEBHOOK_URL)"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(series(&metrics, sent), format!("{sent} 1"));
        let webhook_sent = "docgate_notifications_total{channel=\"webhook\",outcome=\"sent\"}";
        assert_eq!(series(&metrics, webhook_sent), format!("{webhook_sent} 0"));
    }
}
