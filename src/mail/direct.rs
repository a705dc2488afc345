//! SMTP delivery without a queue, for deployments that set `DOCGATE_SMTP_URL` but not
//! `DOCGATE_REDIS_URL`.
//!
//! With no durable queue of its own, docgate answers a link request only after the SMTP server
//! has *accepted* the message: the relay's queue is then the durable one. A transient failure is
//! retried twice within the request (after 250 ms and 1 s); if the server still does not accept,
//! the request fails with `503` and the visitor asks again. With Redis configured, the durable
//! queue in [`super::queue`] is used instead and requests never wait for SMTP.

use std::time::Duration;

use async_trait::async_trait;
use lettre::AsyncTransport;

use super::smtp::{Failure, SmtpTransport, classify, describe};
use super::{Composer, LinkMail, MailError, Mailer};

/// Waits before the retries of a transiently failed delivery.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// Sends each mail synchronously over SMTP.
pub struct DirectSmtp {
    transport: SmtpTransport,
    composer: Composer,
}

impl DirectSmtp {
    pub fn new(transport: SmtpTransport, composer: Composer) -> Self {
        Self {
            transport,
            composer,
        }
    }
}

#[async_trait]
impl Mailer for DirectSmtp {
    async fn send(&self, mail: &LinkMail) -> Result<(), MailError> {
        let message = self.composer.compose(mail)?;
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match self.transport.send(message.clone()).await {
                Ok(_) => {
                    tracing::info!(
                        link = mail.claims.jti_prefix(),
                        "mail accepted by the SMTP server"
                    );
                    return Ok(());
                }
                Err(e) => {
                    let why = describe(&e);
                    match (classify(&e), delays.next()) {
                        (Failure::Transient, Some(delay)) => {
                            tracing::info!(link = mail.claims.jti_prefix(), cause = %why, "SMTP delivery failed; retrying");
                            tokio::time::sleep(*delay).await;
                        }
                        _ => return Err(MailError::Delivery(why)),
                    }
                }
            }
        }
    }
}
