//! Mails as tests read them ([`Mail`], parsed as MIME from an outbox or an SMTP sink), and the mail
//! pipeline's parts as tests assemble them without a server (the queue's and the owner's notice
//! suites): the token codec on the test secret, the composer, an SMTP transport to a sink, and
//! sender settings with short waits.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use docgate::config::{Secret, SmtpConfig};
use docgate::mail::{Composer, smtp};
use docgate::outbox::queue::SenderSettings;
use docgate::token::TokenCodec;

use super::SECRET;

/// The base of the links in these mails.
pub const PUBLIC_URL: &str = "https://docs.example.com";

/// Signs and verifies with the test secret.
pub fn codec() -> Arc<TokenCodec> {
    Arc::new(TokenCodec::single(&Secret::new(SECRET.as_bytes().to_vec())))
}

/// Composes mails with links under [`PUBLIC_URL`], from Jane Doe.
pub fn composer() -> Composer {
    Composer::new(
        codec(),
        PUBLIC_URL,
        "Jane Doe <noreply@example.com>".parse().unwrap(),
    )
}

/// A plain SMTP transport to `url` (a sink's).
pub fn transport(url: &str) -> smtp::SmtpTransport {
    smtp::transport(&SmtpConfig {
        url: Secret::new(url.as_bytes().to_vec()),
    })
    .unwrap()
}

/// Short waits, so retries and take-overs happen within a test's patience.
pub fn settings() -> SenderSettings {
    SenderSettings {
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_millis(400),
        block: Duration::from_millis(200),
        claim_idle: Duration::from_secs(10),
        delivery_timeout: Duration::from_secs(5),
        ..SenderSettings::default()
    }
}

/// A mail from the outbox, parsed as MIME.
#[derive(Debug)]
pub struct Mail {
    pub from_name: Option<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The download link, as found in the plain-text part.
    pub link: String,
}

impl Mail {
    /// A mail carrying a link (the link mail, the owner's request): panics without one.
    pub fn read(path: &Path) -> Self {
        let mail = Self::parse(path);
        assert!(
            !mail.link.is_empty(),
            "a link in the text part: {}",
            mail.text
        );
        assert!(!mail.html.is_empty(), "an HTML part");
        mail
    }

    /// Any mail, a note without a link too (then `link` is empty).
    pub fn parse(path: &Path) -> Self {
        let raw = std::fs::read(path).unwrap();
        let message = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let from = message.from().unwrap().first().unwrap();
        let text = message.body_text(0).unwrap().into_owned();
        let html = message
            .body_html(0)
            .map(|h| h.into_owned())
            .unwrap_or_default();
        let link = text
            .find("https://")
            .or_else(|| text.find("http://"))
            .map(|start| text[start..].split_whitespace().next().unwrap().to_owned())
            .unwrap_or_default();
        Self {
            from_name: from.name().map(str::to_owned),
            from: from.address().unwrap().to_owned(),
            to: message
                .to()
                .unwrap()
                .first()
                .unwrap()
                .address()
                .unwrap()
                .to_owned(),
            subject: message.subject().unwrap().to_owned(),
            text,
            html,
            link,
        }
    }
}
