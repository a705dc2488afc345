//! The link mail: composing it, and handing it to a [`Mailer`].
//!
//! A [`LinkMail`] holds what is needed to *sign* the link, not the link itself: the token is made
//! from the claims only when the message is composed for delivery, so a queue of pending mails
//! never holds a live link in clear. [`Composer`] turns one into a MIME message (plain text and
//! HTML alternatives) that every transport sends unchanged.
//!
//! Implementations: [`outbox::FileOutbox`] (embedded: `.eml` files in a directory).

pub mod direct;
pub mod outbox;
pub mod queue;
pub mod smtp;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::html::escape;
use crate::token::{Claims, TokenCodec};
use crate::units::humanize;

/// A link to mail to one person.
#[derive(Debug, Clone)]
pub struct LinkMail {
    pub to: Address,
    /// The link's claims: signed into the token at composition.
    pub claims: Claims,
    /// The document's title, as the catalog names it.
    pub title: String,
}

/// Why a mail was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail could not be composed: {0}")]
    Compose(String),
    #[error("mail could not be delivered: {0}")]
    Delivery(String),
}

/// Delivers link mails.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends (or durably queues) the mail. `Ok` means it will reach the recipient's server.
    async fn send(&self, mail: &LinkMail) -> Result<(), MailError>;

    /// True when `send` only queues and a sender delivers later (and counts the delivery).
    fn queues(&self) -> bool {
        false
    }

    /// How much mail waits, for a mailer with a queue.
    async fn backlog(&self) -> Result<Option<queue::QueueDepth>, MailError> {
        Ok(None)
    }
}

/// Builds link messages.
#[derive(Debug, Clone)]
pub struct Composer {
    pub codec: Arc<TokenCodec>,
    /// Base of the links, without a trailing slash.
    pub public_url: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
}

impl Composer {
    /// The link the mail carries.
    pub fn link(&self, claims: &Claims) -> Result<String, MailError> {
        let token = self
            .codec
            .sign(claims)
            .map_err(|e| MailError::Compose(e.to_string()))?;
        Ok(format!("{}/d/{token}", self.public_url))
    }

    /// The whole message.
    pub fn compose(&self, mail: &LinkMail) -> Result<Message, MailError> {
        let link = self.link(&mail.claims)?;
        let lifetime = humanize(Duration::from_secs(
            mail.claims.exp.saturating_sub(mail.claims.iat),
        ));
        let at = expiry_time(mail.claims.exp);
        let title = &mail.title;

        let text = format!(
            "Hello,\n\n\
             You asked for {title}. Download it here:\n\n\
             {link}\n\n\
             The link works once and expires in {lifetime}, at {at}.\n\n\
             If you did not ask for this document, ignore this mail: nothing will be sent again.\n"
        );
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
             <title>{t}</title></head>\n\
             <body style=\"font-family:sans-serif;line-height:1.5;color:#222\">\n\
             <p>Hello,</p>\n\
             <p>You asked for <strong>{t}</strong>.</p>\n\
             <p><a href=\"{l}\"\n style=\"display:inline-block;padding:10px 18px;background:#1a5fb4;\
             color:#fff;text-decoration:none;border-radius:4px\">Download {t}</a></p>\n\
             <p>The link works once and expires in {lifetime}, at {at}.</p>\n\
             <p style=\"font-size:90%;color:#555\">If the button does not work, copy this address \
             into your browser:<br>\n{l}</p>\n\
             <p style=\"font-size:90%;color:#555\">If you did not ask for this document, ignore this \
             mail: nothing will be sent again.</p>\n\
             </body></html>\n",
            t = escape(title),
            l = escape(&link),
        );

        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, mail.to.clone()))
            .subject(format!("Your download link for {title}"))
            .message_id(None);
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .map_err(|e| MailError::Compose(e.to_string()))
    }
}

/// "14:32 UTC on 24 November 2026".
fn expiry_time(exp: u64) -> String {
    let format =
        format_description!("[hour]:[minute] UTC on [day padding:none] [month repr:long] [year]");
    i64::try_from(exp)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "an unknown time".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn composer() -> Composer {
        Composer {
            codec: Arc::new(TokenCodec::single(&Secret::new(vec![7; 32]))),
            public_url: "https://docs.example.com".to_owned(),
            from: "Jane Doe <noreply@example.com>".parse().unwrap(),
            reply_to: Some("jane@example.com".parse().unwrap()),
        }
    }

    #[test]
    fn the_message_carries_the_link_in_both_parts() {
        let composer = composer();
        let claims = Claims::new("resume", 1_795_530_720, 900);
        let mail = LinkMail {
            to: "visitor@example.org".parse().unwrap(),
            claims: claims.clone(),
            title: "Jane's <resume>".to_owned(),
        };
        let raw = composer.compose(&mail).unwrap().formatted();
        let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let link = composer.link(&claims).unwrap();
        assert!(link.starts_with("https://docs.example.com/d/ey"));

        let from = message.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("Jane Doe"));
        assert_eq!(from.address(), Some("noreply@example.com"));
        assert_eq!(
            message.to().unwrap().first().unwrap().address(),
            Some("visitor@example.org")
        );
        assert_eq!(
            message.reply_to().unwrap().first().unwrap().address(),
            Some("jane@example.com")
        );
        assert_eq!(
            message.subject(),
            Some("Your download link for Jane's <resume>")
        );
        assert!(message.message_id().is_some());

        let text = message.body_text(0).unwrap();
        assert!(text.contains(&link));
        assert!(text.contains("expires in 15 minutes, at 14:47 UTC on 24 November 2026"));
        let html = message.body_html(0).unwrap();
        assert!(html.contains(&format!("href=\"{link}\"")));
        assert!(html.contains("Jane&#39;s &lt;resume&gt;"));
        assert!(html.contains("expires in 15 minutes"));
    }

    #[test]
    fn expiry_reads_as_a_time_and_date() {
        assert_eq!(expiry_time(1_795_530_720), "14:32 UTC on 24 November 2026");
    }
}
