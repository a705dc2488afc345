//! The embedded mailer: each message written as an `.eml` file to the outbox directory (lettre's
//! file transport). The file's path is logged, never the address or the link.
//!
//! An owner's notice mail is written the same way; the owner's webhook, with no queue to hold
//! it, is called at once with a few retries ([`Webhook::deliver_with_retries`]).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Composer, LinkMail, MailError, Mailer, call_webhook};
use crate::notify::Notice;
use crate::notify::webhook::Webhook;

/// Writes mails to a directory.
pub struct FileOutbox {
    dir: PathBuf,
    transport: AsyncFileTransport<Tokio1Executor>,
    composer: Composer,
    /// The owner's webhook, when configured.
    webhook: Option<Webhook>,
}

impl FileOutbox {
    /// An outbox in `dir`, which is created if missing.
    pub fn new(dir: &Path, composer: Composer) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            transport: AsyncFileTransport::new(dir),
            composer,
            webhook: None,
        })
    }

    /// Calls `webhook` for the owner's webhook notices.
    pub fn with_webhook(self, webhook: Option<Webhook>) -> Self {
        Self { webhook, ..self }
    }

    async fn write(&self, message: Message, what: &str) -> Result<(), MailError> {
        let id = self
            .transport
            .send(message)
            .await
            .map_err(|e| MailError::Delivery(e.to_string()))?;
        let path = self.dir.join(format!("{id}.eml"));
        tracing::info!(path = %path.display(), what, "mail written to the outbox");
        Ok(())
    }
}

#[async_trait]
impl Mailer for FileOutbox {
    async fn send(&self, mail: &LinkMail) -> Result<(), MailError> {
        let message = self.composer.compose(mail)?;
        self.write(message, "link").await
    }

    async fn notify(&self, notice: &Notice) -> Result<(), MailError> {
        match notice {
            Notice::OwnerMail { to, download } => {
                let message = self.composer.compose_notice(to, download)?;
                self.write(message, "download notice").await
            }
            Notice::Webhook(download) => call_webhook(self.webhook.as_ref(), download).await,
        }
    }
}
