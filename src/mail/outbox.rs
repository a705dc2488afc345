//! The embedded mailer: each message written as an `.eml` file to the outbox directory (lettre's
//! file transport). The file's path is logged, never the address or the link.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};

use super::{Composer, LinkMail, MailError, Mailer};

/// Writes mails to a directory.
pub struct FileOutbox {
    dir: PathBuf,
    transport: AsyncFileTransport<Tokio1Executor>,
    composer: Composer,
}

impl FileOutbox {
    /// An outbox in `dir`, which is created if missing.
    pub fn new(dir: &Path, composer: Composer) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            transport: AsyncFileTransport::new(dir),
            composer,
        })
    }
}

#[async_trait]
impl Mailer for FileOutbox {
    async fn send(&self, mail: &LinkMail) -> Result<(), MailError> {
        let message = self.composer.compose(mail)?;
        let id = self
            .transport
            .send(message)
            .await
            .map_err(|e| MailError::Delivery(e.to_string()))?;
        let path = self.dir.join(format!("{id}.eml"));
        tracing::info!(path = %path.display(), "mail written to the outbox");
        Ok(())
    }
}
