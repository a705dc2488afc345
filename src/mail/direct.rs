//! SMTP delivery without a queue, for deployments that set `DOCGATE_SMTP_URL` but not
//! `DOCGATE_REDIS_URL`.
//!
//! With no durable queue of its own, docgate answers a link request only after the SMTP server
//! has *accepted* the message: the relay's queue is then the durable one. A transient failure is
//! retried twice within the request (after 250 ms and 1 s); if the server still does not accept,
//! the request fails with `503` and the visitor asks again. With Redis configured, the durable
//! queue in [`super::queue`] is used instead and requests never wait for SMTP.
//!
//! An owner's notice is sent in the background (nobody waits for it), so it is retried longer:
//! after 1 s, 5 s and 30 s. The owner's webhook is called the same way. Neither survives a
//! restart.

use std::time::Duration;

use async_trait::async_trait;
use lettre::{AsyncTransport, Message};

use super::smtp::{Failure, SmtpTransport, classify, describe};
use super::{Composer, LinkMail, MailError, Mailer, call_webhook};
use crate::notify::Notice;
use crate::notify::webhook::{DIRECT_RETRY_DELAYS, Webhook};

/// Waits before the retries of a transiently failed link mail.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// Sends each mail synchronously over SMTP.
pub struct DirectSmtp {
    transport: SmtpTransport,
    composer: Composer,
    /// The owner's webhook, when configured.
    webhook: Option<Webhook>,
}

impl DirectSmtp {
    pub fn new(transport: SmtpTransport, composer: Composer) -> Self {
        Self {
            transport,
            composer,
            webhook: None,
        }
    }

    /// Calls `webhook` for the owner's webhook notices.
    pub fn with_webhook(self, webhook: Option<Webhook>) -> Self {
        Self { webhook, ..self }
    }

    /// Sends `message`, retrying a transient failure after each of `delays`.
    async fn deliver(
        &self,
        message: Message,
        delays: &[Duration],
        link: &str,
    ) -> Result<(), MailError> {
        let mut delays = delays.iter();
        loop {
            match self.transport.send(message.clone()).await {
                Ok(_) => {
                    tracing::info!(link, "mail accepted by the SMTP server");
                    return Ok(());
                }
                Err(e) => {
                    let why = describe(&e);
                    match (classify(&e), delays.next()) {
                        (Failure::Transient, Some(delay)) => {
                            tracing::info!(link, cause = %why, "SMTP delivery failed; retrying");
                            tokio::time::sleep(*delay).await;
                        }
                        _ => return Err(MailError::Delivery(why)),
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Mailer for DirectSmtp {
    async fn send(&self, mail: &LinkMail) -> Result<(), MailError> {
        let message = self.composer.compose(mail)?;
        self.deliver(message, &RETRY_DELAYS, mail.claims.jti_prefix())
            .await
    }

    async fn notify(&self, notice: &Notice) -> Result<(), MailError> {
        match notice {
            Notice::OwnerMail { to, download } => {
                let message = self.composer.compose_notice(to, download)?;
                self.deliver(message, &DIRECT_RETRY_DELAYS, download.jti_prefix())
                    .await
            }
            Notice::Webhook(download) => call_webhook(self.webhook.as_ref(), download).await,
        }
    }
}
