//! Why a mail (or a notice) was not composed or not delivered. Each failure keeps its cause as
//! its `source()`; the text shown is the one logs and dead letters have always carried, and it
//! never holds an address, a link or a server's reply text.

use lettre::transport::smtp::Error as SmtpError;

use crate::notify::webhook::WebhookError;
use crate::token::TokenError;

/// Why a job was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail could not be composed: {0}")]
    Compose(#[source] ComposeError),
    #[error("mail could not be delivered: {0}")]
    Delivery(#[source] DeliveryError),
}

/// Why a message could not be built: the same job would fail again.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The link's token could not be signed.
    #[error(transparent)]
    Sign(#[from] TokenError),
    /// lettre refused the message (a header, an address).
    #[error(transparent)]
    Message(#[from] lettre::error::Error),
}

/// Why a message (or a webhook call) did not reach its receiver.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The SMTP server refused or failed; `description` names the reply code or the kind of
    /// failure only, since servers echo the recipient's address in reply texts.
    #[error("{description}")]
    Smtp {
        description: String,
        #[source]
        source: SmtpError,
    },
    /// The `.eml` file could not be written.
    #[error("the outbox file could not be written: {0}")]
    File(#[source] std::io::Error),
    /// The owner's webhook failed.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// A webhook notice, with no webhook configured.
    #[error("no webhook is configured (DOCGATE_OWNER_WEBHOOK_URL)")]
    NoWebhook,
    /// One attempt took longer than allowed.
    #[error("delivery timed out after {0}s")]
    TimedOut(u64),
    /// The durable queue in Redis refused the job or failed.
    #[error("mail queue: {0}")]
    Queue(#[from] redis::RedisError),
    /// The durable queue did not answer in time.
    #[error("mail queue: Redis did not answer")]
    QueueTimeout,
    /// `DOCGATE_SMTP_URL` is not UTF-8.
    #[error("the SMTP URL is not UTF-8")]
    SmtpUrlNotUtf8,
    /// `DOCGATE_SMTP_URL` is not one lettre reads (its text names the scheme or TLS mode, never
    /// the credentials).
    #[error("bad SMTP URL: {0}")]
    BadSmtpUrl(#[source] SmtpError),
    /// `docgate check`: the server connected but did not answer `NOOP`.
    #[error("the SMTP server did not answer NOOP")]
    NoNoop,
    /// `docgate check`: no answer within this many seconds.
    #[error("the SMTP server did not answer within {0}s")]
    NoAnswer(u64),
}

impl DeliveryError {
    /// An SMTP failure, described safely (see [`super::smtp::describe`]).
    pub fn smtp(source: SmtpError) -> Self {
        Self::Smtp {
            description: super::smtp::describe(&source),
            source,
        }
    }
}

impl From<DeliveryError> for MailError {
    fn from(e: DeliveryError) -> Self {
        MailError::Delivery(e)
    }
}

impl From<ComposeError> for MailError {
    fn from(e: ComposeError) -> Self {
        MailError::Compose(e)
    }
}
