//! One delivery attempt of a [`Job`], the same for every outbox: compose the message, hand it to
//! the transport (SMTP, or an `.eml` file in a directory) or call the owner's webhook, and say
//! what came of it. The [`Deliverer`] is the only place that counts what was sent.
//!
//! An `.eml` file is complete when it appears: the message is written to a hidden temporary file
//! in the outbox directory (`.<name>.eml.tmp`), then renamed to `<name>.eml`, in one trip to
//! tokio's blocking pool. A crash in between leaves only the temporary file, never a partial
//! `.eml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::{AsyncTransport, Message};

use super::{Job, Kind};
use crate::mail::smtp::{Failure, SmtpTransport, classify};
use crate::mail::{Composer, DeliveryError, MailError};
use crate::metrics::Metrics;
use crate::notify::webhook::{Webhook, WebhookError};

/// Where messages go.
enum Transport {
    /// An SMTP server.
    Smtp(SmtpTransport),
    /// `.eml` files in a directory.
    Files { dir: PathBuf },
}

/// Delivers jobs: composes, sends, classifies, counts.
pub struct Deliverer {
    transport: Transport,
    composer: Composer,
    /// The owner's webhook, for `webhook` jobs; without one they cannot be delivered.
    webhook: Option<Webhook>,
    /// Where deliveries are counted; tests may leave it out.
    metrics: Option<Arc<Metrics>>,
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Attempt {
    /// The receiver has it.
    Delivered(Receipt),
    /// The job cannot be delivered as it stands (not composable, nowhere to send it): `detail`
    /// says why, for the log and the dead letter.
    Invalid { detail: String, error: MailError },
    /// Refused for good: `detail` for the dead letter (may hold the server's text, never
    /// logged), `error` for the log and the caller.
    Rejected {
        detail: String,
        error: DeliveryError,
    },
    /// Worth another attempt; what failed, safe to log.
    Failed(DeliveryError),
}

/// Where a delivered job went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Accepted by the SMTP server.
    Smtp,
    /// Written to this `.eml` file.
    File(PathBuf),
    /// Answered `2xx` by the owner's webhook.
    Webhook,
}

impl Deliverer {
    /// Delivers over SMTP.
    pub fn smtp(transport: SmtpTransport, composer: Composer) -> Self {
        Self::with(Transport::Smtp(transport), composer)
    }

    /// Writes each message as an `.eml` file to `dir`, which is created if missing.
    pub fn files(dir: &Path, composer: Composer) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let transport = Transport::Files {
            dir: dir.to_owned(),
        };
        Ok(Self::with(transport, composer))
    }

    fn with(transport: Transport, composer: Composer) -> Self {
        Self {
            transport,
            composer,
            webhook: None,
            metrics: None,
        }
    }

    /// Calls `webhook` for the owner's webhook notices.
    pub fn with_webhook(self, webhook: Option<Webhook>) -> Self {
        Self { webhook, ..self }
    }

    /// Counts deliveries in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// True when messages go to an SMTP server (not to files).
    pub(super) fn is_smtp(&self) -> bool {
        matches!(self.transport, Transport::Smtp(_))
    }

    /// Counts a link mail in `docgate_mail_total`, a notice in `docgate_notifications_total`.
    pub fn count(&self, kind: Kind, outcome: &'static str) {
        if let Some(metrics) = &self.metrics {
            match kind.channel() {
                None => Metrics::count(&metrics.mail, outcome),
                Some(channel) => metrics.notified(channel, outcome),
            }
        }
    }

    /// One attempt at `job`, within `timeout` when given; a delivery is counted as `sent`.
    pub async fn attempt(&self, job: &Job, timeout: Option<Duration>) -> Attempt {
        let attempt = self.try_once(job, timeout).await;
        if matches!(attempt, Attempt::Delivered(_)) {
            self.count(job.kind(), "sent");
        }
        attempt
    }

    async fn try_once(&self, job: &Job, timeout: Option<Duration>) -> Attempt {
        let message = match job {
            Job::Link(mail) => self.composer.compose(mail),
            Job::OwnerMail { to, download } => self.composer.compose_notice(to, download),
            Job::Webhook(download) => {
                return self
                    .call(timeout, |webhook| webhook.deliver(download))
                    .await;
            }
            Job::Note(note) => self.composer.compose_note(note),
            Job::Event(event) => {
                return self
                    .call(timeout, |webhook| webhook.deliver_event(event))
                    .await;
            }
        };
        match message {
            Ok(message) => self.mail(message, timeout).await,
            Err(error) => Attempt::Invalid {
                detail: error.to_string(),
                error,
            },
        }
    }

    /// Hands `message` to the transport.
    async fn mail(&self, message: Message, timeout: Option<Duration>) -> Attempt {
        match &self.transport {
            Transport::Smtp(transport) => {
                match within(timeout, transport.send(message)).await {
                    Ok(Ok(_)) => Attempt::Delivered(Receipt::Smtp),
                    // The reply text is kept in the dead letter for the operator, never logged.
                    Ok(Err(e)) if classify(&e) == Failure::Permanent => Attempt::Rejected {
                        detail: e.to_string(),
                        error: DeliveryError::smtp(e),
                    },
                    Ok(Err(e)) => Attempt::Failed(DeliveryError::smtp(e)),
                    Err(elapsed) => Attempt::Failed(elapsed),
                }
            }
            Transport::Files { dir } => {
                match within(timeout, write_eml(dir, message.formatted())).await {
                    Ok(Ok(path)) => Attempt::Delivered(Receipt::File(path)),
                    Ok(Err(e)) => Attempt::Failed(DeliveryError::File(e)),
                    Err(elapsed) => Attempt::Failed(elapsed),
                }
            }
        }
    }

    /// Posts to the owner's webhook: a download's notice, or another event.
    async fn call<'a, F>(
        &'a self,
        timeout: Option<Duration>,
        post: impl FnOnce(&'a Webhook) -> F,
    ) -> Attempt
    where
        F: Future<Output = Result<(), WebhookError>>,
    {
        let Some(webhook) = &self.webhook else {
            let error = DeliveryError::NoWebhook;
            return Attempt::Invalid {
                detail: error.to_string(),
                error: error.into(),
            };
        };
        match within(timeout, post(webhook)).await {
            Ok(Ok(())) => Attempt::Delivered(Receipt::Webhook),
            Ok(Err(e)) if e.is_permanent() => Attempt::Rejected {
                detail: e.to_string(),
                error: e.into(),
            },
            Ok(Err(e)) => Attempt::Failed(e.into()),
            Err(elapsed) => Attempt::Failed(elapsed),
        }
    }

    /// Lets the transport close its connections.
    pub async fn shutdown(&self) {
        if let Transport::Smtp(transport) = &self.transport {
            transport.shutdown().await;
        }
    }
}

/// Writes `message` as a new `.eml` file in `dir`, named by 128 random bits, and returns its
/// path: written to a hidden temporary file beside it, then renamed, so the `.eml` is complete
/// whenever it is seen. One trip to the blocking pool for the whole of it.
async fn write_eml(dir: &Path, message: Vec<u8>) -> std::io::Result<PathBuf> {
    let dir = dir.to_owned();
    let written = tokio::task::spawn_blocking(move || {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name = hex::encode(id);
        let path = dir.join(format!("{name}.eml"));
        let temporary = dir.join(format!(".{name}.eml.tmp"));
        let written =
            std::fs::write(&temporary, &message).and_then(|()| std::fs::rename(&temporary, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written.map(|()| path)
    })
    .await;
    written.map_err(std::io::Error::other)?
}

/// `work`, cut after `timeout` when one is given.
async fn within<T>(
    timeout: Option<Duration>,
    work: impl Future<Output = T>,
) -> Result<T, DeliveryError> {
    match timeout {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .map_err(|_| DeliveryError::TimedOut(limit.as_secs())),
        None => Ok(work.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_eml_file_is_written_whole_under_a_new_name_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let message = b"Subject: x\r\n\r\nbody\r\n".repeat(1000);
        let first = write_eml(dir.path(), message.clone()).await.unwrap();
        let second = write_eml(dir.path(), message.clone()).await.unwrap();
        assert_ne!(first, second);
        for path in [&first, &second] {
            assert_eq!(path.parent(), Some(dir.path()));
            assert_eq!(path.extension().unwrap(), "eml");
            assert_eq!(std::fs::read(path).unwrap(), message);
        }
        // Nothing else: the temporary files were renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

        let gone = dir.path().join("gone");
        let err = write_eml(&gone, message).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert!(!gone.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
