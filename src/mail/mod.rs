//! Mail: composing the link mail and the owner's notice, and the SMTP transport they go out by.
//!
//! A [`LinkMail`] holds what is needed to *sign* the link, not the link itself: the token is made
//! from the claims only when the message is composed for delivery, so a queue of pending mails
//! never holds a live link in clear. [`Composer`] turns one into a MIME message that every
//! transport sends unchanged: a plain-text part and an HTML part carrying the same link, the
//! HTML laid out with tables and inline styles only (no images, no external assets, a button
//! that is a coloured table cell, at most 600 px wide) so Outlook, Gmail and Apple Mail render
//! it alike. Every word of it comes from [`crate::texts::mail`].
//!
//! The same [`Composer`] writes the owner's notice of a completed download
//! ([`crate::notify::Download`]). Delivering either is the outbox's work (the `outbox` module):
//! this module only builds messages and holds the SMTP transport ([`smtp`]) they go out by.

mod error;
pub mod smtp;

pub use error::{ComposeError, DeliveryError, MailError};

use std::sync::Arc;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::config::Config;
use crate::html::escape;
use crate::notify::Download;
use crate::texts::measures::{clock, expires};
use crate::texts::subject::SubjectTemplate;
use crate::texts::{fill, mail as texts};
use crate::token::{Claims, TokenCodec};
use crate::units::unix_now;

/// A link to mail to one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMail {
    pub to: Address,
    /// The link's claims: signed into the token at composition.
    pub claims: Claims,
    /// The document's title, as the catalog names it.
    pub title: String,
    /// The document's size in bytes, when the object store told it; the mail omits it otherwise.
    pub size: Option<u64>,
}

/// A plain-text mail about a pending approval, written whole when submitted.
#[derive(Clone, PartialEq, Eq)]
pub struct Note {
    pub to: Mailbox,
    pub subject: String,
    pub body: String,
    /// The pending request's id.
    pub id: crate::token::Jti,
    /// The document's catalog id.
    pub doc: String,
    /// When it stops being worth delivering, seconds since the epoch.
    pub exp: u64,
}

/// Never prints the address or the body (which names it).
impl std::fmt::Debug for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Note")
            .field("id", &self.id.short())
            .field("doc", &self.doc)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// Builds messages.
#[derive(Debug, Clone)]
pub struct Composer {
    pub codec: Arc<TokenCodec>,
    /// Base of the links, without a trailing slash.
    pub public_url: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The link mail's subject.
    pub subject: SubjectTemplate,
    /// `List-Unsubscribe` (a `mailto:` or `https:` URL) where a newsletter opt-out applies;
    /// `None` (the default): docgate's mail is transactional and carries no such header.
    pub list_unsubscribe: Option<String>,
}

impl Composer {
    /// A composer with the default subject, no `Reply-To` and no `List-Unsubscribe`.
    pub fn new(codec: Arc<TokenCodec>, public_url: &str, from: Mailbox) -> Self {
        Self {
            codec,
            public_url: public_url.trim_end_matches('/').to_owned(),
            from,
            reply_to: None,
            subject: SubjectTemplate::default(),
            list_unsubscribe: None,
        }
    }

    /// The composer the configuration describes.
    pub fn from_config(config: &Config, codec: Arc<TokenCodec>) -> Self {
        Self {
            reply_to: config.mail_reply_to.clone(),
            subject: config.mail_subject.clone(),
            list_unsubscribe: config.mail_list_unsubscribe.clone(),
            ..Self::new(codec, &config.public_url, config.mail_from.clone())
        }
    }

    /// The link the mail carries.
    pub fn link(&self, claims: &Claims) -> Result<String, MailError> {
        Ok(self
            .codec
            .url(&self.public_url, claims)
            .map_err(ComposeError::from)?)
    }

    /// The public host the links point to (`docs.example.com`, with its port if it has one),
    /// named in the mails.
    pub fn site(&self) -> String {
        self.public_url
            .parse::<http::Uri>()
            .ok()
            .and_then(|uri| {
                uri.authority()
                    .map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_owned())
            })
            .unwrap_or_else(|| self.public_url.clone())
    }

    /// The link mail, composed now.
    pub fn compose(&self, mail: &LinkMail) -> Result<Message, MailError> {
        self.compose_at(mail, unix_now())
    }

    /// The link mail as composed at `now` (seconds since the epoch): the expiry is told relative
    /// to it.
    pub fn compose_at(&self, mail: &LinkMail, now: u64) -> Result<Message, MailError> {
        let link = self.link(&mail.claims)?;
        let when = expires(mail.claims.exp, now);
        let site = self.site();
        let title = mail.title.as_str();
        let size = mail.size.map(texts::size);
        let subject = self.subject.render(title);

        let document = |title: &str| match &size {
            Some(size) => fill(
                texts::DOCUMENT_WITH_SIZE,
                &[("title", title), ("size", size)],
            ),
            None => title.to_owned(),
        };
        let text = [
            texts::GREETING.to_owned(),
            fill(texts::INTRO, &[("document", &document(title))]),
            link.clone(),
            fill(texts::EXPIRY, &[("when", &when)]),
            fill(texts::WHY, &[("title", title), ("site", &site)]),
        ]
        .join("\n\n")
            + "\n";

        // Texts are escaped first, then filled with escaped values or markup.
        let t = escape(title);
        let strong_title = format!("<strong>{t}</strong>");
        let html_document = match &size {
            Some(size) => fill(
                &escape(texts::DOCUMENT_WITH_SIZE),
                &[("title", &strong_title), ("size", &escape(size))],
            ),
            None => strong_title.clone(),
        };
        let html = html_body(&HtmlParts {
            subject: &escape(&subject),
            greeting: &escape(texts::GREETING),
            intro: &fill(&escape(texts::INTRO), &[("document", &html_document)]),
            link: &escape(&link),
            button: &escape(texts::BUTTON),
            expiry: &fill(&escape(texts::EXPIRY), &[("when", &escape(&when))]),
            fallback: &escape(texts::FALLBACK),
            why: &fill(
                &escape(texts::WHY),
                &[("title", &t), ("site", &escape(&site))],
            ),
        });

        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, mail.to.clone()))
            .subject(subject)
            .message_id(None);
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        if let Some(url) = &self.list_unsubscribe {
            builder = builder.header(ListUnsubscribe(format!("<{url}>")));
            if url.starts_with("https:") {
                builder = builder.header(ListUnsubscribePost);
            }
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
            .map_err(|e| ComposeError::from(e).into())
    }

    /// The owner's notice of a completed download, to `to` (plain text). Its `Reply-To` is the
    /// address the link was mailed to, when known, so the owner can answer that person.
    pub fn compose_notice(&self, to: &Mailbox, download: &Download) -> Result<Message, MailError> {
        let (time, date) = clock(download.downloaded_at);
        let when = fill(texts::NOTICE_WHEN, &[("date", &date), ("time", &time)]);
        let body = fill(
            texts::NOTICE_BODY,
            &[
                ("title", &download.title),
                ("document", &download.doc),
                ("when", &when),
                (
                    "email",
                    download.email.as_deref().unwrap_or(texts::NOTICE_NO_EMAIL),
                ),
                ("ip", &download.client_ip.to_string()),
                ("jti", download.jti.as_str()),
                ("site", &self.site()),
            ],
        );
        let requester = download
            .email
            .as_deref()
            .and_then(|e| e.parse::<Address>().ok())
            .map(|a| Mailbox::new(None, a));
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to.clone())
            .subject(fill(texts::NOTICE_SUBJECT, &[("title", &download.title)]))
            .message_id(None);
        if let Some(reply_to) = requester.or_else(|| self.reply_to.clone()) {
            builder = builder.reply_to(reply_to);
        }
        builder
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body),
            )
            .map_err(|e| ComposeError::from(e).into())
    }

    /// A plain-text note about a pending approval, written whole by its sender.
    pub fn compose_note(&self, note: &Note) -> Result<Message, MailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(note.to.clone())
            .subject(note.subject.clone())
            .message_id(None);
        if let Some(reply_to) = self.reply_to.clone() {
            builder = builder.reply_to(reply_to);
        }
        builder
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(note.body.clone()),
            )
            .map_err(|e| ComposeError::from(e).into())
    }
}

/// The pieces of the HTML part, each already escaped (or markup).
struct HtmlParts<'a> {
    subject: &'a str,
    greeting: &'a str,
    intro: &'a str,
    link: &'a str,
    button: &'a str,
    expiry: &'a str,
    fallback: &'a str,
    why: &'a str,
}

/// The HTML part: nested tables, inline styles, a 600 px column (a fixed-width table for
/// Outlook, which ignores `max-width`), and a button that is a coloured table cell holding the
/// link, so it shows as a button even where padding on links is dropped.
fn html_body(p: &HtmlParts<'_>) -> String {
    const FONT: &str = "font-family:Arial,Helvetica,sans-serif;";
    let lang = texts::LANG;
    let HtmlParts {
        subject,
        greeting,
        intro,
        link,
        button,
        expiry,
        fallback,
        why,
    } = p;
    format!(
        r##"<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>{subject}</title>
</head>
<body style="margin:0;padding:0;background-color:#f3f4f6;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f3f4f6;">
<tr><td align="center" style="padding:24px 12px;">
<!--[if mso]><table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"><tr><td><![endif]-->
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="width:100%;max-width:600px;background-color:#ffffff;border:1px solid #e5e7eb;">
<tr><td style="padding:32px 32px 8px 32px;{FONT}font-size:16px;line-height:24px;color:#1f2937;">
<p style="margin:0 0 16px 0;">{greeting}</p>
<p style="margin:0 0 24px 0;">{intro}</p>
<table role="presentation" cellpadding="0" cellspacing="0" border="0" style="margin:0 0 24px 0;">
<tr><td align="center" bgcolor="#1a5fb4" style="background-color:#1a5fb4;border-radius:6px;">
<a href="{link}" target="_blank" style="display:inline-block;padding:14px 28px;{FONT}font-size:16px;font-weight:bold;line-height:20px;color:#ffffff;text-decoration:none;border-radius:6px;">{button}</a>
</td></tr>
</table>
<p style="margin:0 0 24px 0;">{expiry}</p>
<p style="margin:0 0 8px 0;font-size:14px;line-height:20px;color:#4b5563;">{fallback}</p>
<p style="margin:0 0 24px 0;font-size:14px;line-height:20px;word-break:break-all;"><a href="{link}" target="_blank" style="color:#1a5fb4;text-decoration:underline;">{link}</a></p>
</td></tr>
<tr><td style="padding:16px 32px 32px 32px;border-top:1px solid #e5e7eb;{FONT}font-size:13px;line-height:20px;color:#6b7280;">
<p style="margin:0;">{why}</p>
</td></tr>
</table>
<!--[if mso]></td></tr></table><![endif]-->
</td></tr>
</table>
</body>
</html>
"##
    )
}

/// `List-Unsubscribe: <url>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), beside an `https:` URL.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use mail_parser::MessageParser;

    use super::*;
    use crate::secret::Secret;

    /// 14:32:00 UTC on 24 November 2026.
    const EXP: u64 = 1_795_530_720;

    fn composer() -> Composer {
        Composer {
            reply_to: Some("jane@example.com".parse().unwrap()),
            ..Composer::new(
                Arc::new(TokenCodec::single(&Secret::new(vec![7; 32]))),
                "https://docs.example.com/",
                "Jane Doe <noreply@example.com>".parse().unwrap(),
            )
        }
    }

    /// A link mail for a link expiring at `exp`, 15 minutes after it was made.
    fn mail(title: &str, size: Option<u64>) -> LinkMail {
        LinkMail {
            to: "visitor@example.org".parse().unwrap(),
            claims: Claims::new("resume", EXP - 900, 900),
            title: title.to_owned(),
            size,
        }
    }

    fn formatted(composer: &Composer, mail: &LinkMail, now: u64) -> Vec<u8> {
        composer.compose_at(mail, now).unwrap().formatted()
    }

    #[test]
    fn the_message_has_both_parts_with_the_same_link_the_size_and_the_expiry() {
        let composer = composer();
        let mail = mail("Jane Doe's resume", Some(1_234_567));
        let raw = formatted(&composer, &mail, EXP - 900);
        let message = MessageParser::default().parse(&raw).unwrap();
        let link = composer.link(&mail.claims).unwrap();
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
            Some("Your download link for Jane Doe's resume")
        );
        assert!(message.message_id().is_some());
        assert_eq!(message.text_body_count(), 1);
        assert_eq!(message.html_body_count(), 1);

        let text = message.body_text(0).unwrap();
        let html = message.body_html(0).unwrap();
        let links = |body: &str| -> Vec<String> {
            body.match_indices("https://docs.example.com/d/")
                .map(|(at, _)| {
                    body[at..]
                        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(links(&text), std::slice::from_ref(&link));
        assert_eq!(links(&html), [link.clone(), link.clone(), link.clone()]);
        assert!(html.contains(&format!("href=\"{link}\"")));

        for body in [&text, &html] {
            assert!(body.contains("1.2 MB"), "{body}");
            assert!(body.contains("in 15 minutes, at 14:32 UTC."), "{body}");
            assert!(!body.contains("November"), "same day: no date\n{body}");
            assert!(
                body.contains("at docs.example.com with this address"),
                "{body}"
            );
            assert!(body.contains("no more mail will be sent"), "{body}");
        }
        assert!(text.contains("Jane Doe's resume (1.2 MB)"));
        assert!(
            text.contains("Someone \u{2014} hopefully you \u{2014} asked for Jane Doe's resume")
        );
        assert!(message.header_raw("List-Unsubscribe").is_none());
        assert!(message.header_raw("List-Unsubscribe-Post").is_none());
    }

    #[test]
    fn the_html_is_escaped_and_self_contained() {
        let composer = composer();
        let mail = mail("Tom & Jerry's <script>alert(1)</script>", None);
        let raw = formatted(&composer, &mail, EXP - 900);
        let message = MessageParser::default().parse(&raw).unwrap();
        let html = message.body_html(0).unwrap();
        assert!(html.contains("Tom &amp; Jerry&#39;s &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"));
        assert_eq!(
            message.subject(),
            Some("Your download link for Tom & Jerry's <script>alert(1)</script>")
        );
        // Table layout, inline styles, no images or external assets, 600 px wide.
        assert!(html.contains("<table role=\"presentation\""));
        assert!(html.contains("max-width:600px"));
        assert!(html.contains("bgcolor=\"#1a5fb4\""));
        for absent in [
            "<img", "<style", "<link", "<script", "src=", "url(", "class=",
        ] {
            assert!(!html.contains(absent), "{absent} in the HTML");
        }
        let link = composer.link(&mail.claims).unwrap();
        let others = html.replace(&link, "").matches("http").count();
        assert_eq!(others, 0, "no URL but the link");
        // No size: no parentheses after the title.
        let text = message.body_text(0).unwrap();
        assert!(text.contains("download Tom & Jerry's <script>alert(1)</script>."));
    }

    #[test]
    fn the_expiry_names_the_date_when_it_is_another_day() {
        let composer = composer();
        let mut mail = mail("Jane Doe's resume", None);
        // Sent at midnight UTC; the link expires two days later at 14:32.
        mail.claims.exp = EXP + 2 * 86_400;
        let now = EXP - 16 * 3600 - 32 * 60 + 2 * 3600;
        let raw = formatted(&composer, &mail, now);
        let message = MessageParser::default().parse(&raw).unwrap();
        let text = message.body_text(0).unwrap();
        assert!(
            text.contains(
                "expires in 2 days 14 hours 32 minutes, at 14:32 UTC on 26 November 2026."
            ),
            "{text}"
        );
        // A mail sent late tells the time left, not the link's whole lifetime.
        let mail = self::mail("Jane Doe's resume", None);
        let raw = raw_message(&composer, &mail, EXP - 300);
        assert!(raw.contains("in 5 minutes, at 14:32 UTC."), "{raw}");
    }

    fn raw_message(composer: &Composer, mail: &LinkMail, now: u64) -> String {
        let raw = formatted(composer, mail, now);
        let message = MessageParser::default().parse(&raw).unwrap();
        message.body_text(0).unwrap().into_owned()
    }

    #[test]
    fn the_subject_follows_its_template() {
        let composer = Composer {
            subject: SubjectTemplate::parse("{title} \u{2014} your link from Jane").unwrap(),
            ..composer()
        };
        let raw = formatted(&composer, &mail("Jane Doe's resume", None), EXP - 900);
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            message.subject(),
            Some("Jane Doe's resume \u{2014} your link from Jane")
        );
    }

    #[test]
    fn list_unsubscribe_only_when_configured_and_one_click_only_for_https() {
        let mail = mail("Jane Doe's resume", None);
        let composer = Composer {
            list_unsubscribe: Some("mailto:unsubscribe@example.com?subject=unsubscribe".to_owned()),
            ..composer()
        };
        let raw = formatted(&composer, &mail, EXP - 900);
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            message.header_raw("List-Unsubscribe").map(str::trim),
            Some("<mailto:unsubscribe@example.com?subject=unsubscribe>")
        );
        assert!(message.header_raw("List-Unsubscribe-Post").is_none());

        let composer = Composer {
            list_unsubscribe: Some("https://example.com/unsubscribe?list=docs".to_owned()),
            ..composer
        };
        let raw = formatted(&composer, &mail, EXP - 900);
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            message.header_raw("List-Unsubscribe").map(str::trim),
            Some("<https://example.com/unsubscribe?list=docs>")
        );
        assert_eq!(
            message.header_raw("List-Unsubscribe-Post").map(str::trim),
            Some("List-Unsubscribe=One-Click")
        );
    }

    #[test]
    fn the_owner_notice_names_the_download_and_replies_to_the_requester() {
        let composer = composer();
        let download = Download {
            event_id: "evt".to_owned(),
            jti: "RFh7c-qE3xpy8Mq1eLNCUskc".into(),
            doc: "resume".to_owned(),
            title: "Jane Doe's resume".to_owned(),
            email: Some("visitor@example.org".to_owned()),
            downloaded_at: EXP + 5,
            client_ip: IpAddr::from([192, 0, 2, 7]),
        };
        let owner: Mailbox = "Jane Doe <jane@example.com>".parse().unwrap();
        let raw = composer
            .compose_notice(&owner, &download)
            .unwrap()
            .formatted();
        let message = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(message.subject(), Some("Jane Doe's resume was downloaded"));
        assert_eq!(
            message.to().unwrap().first().unwrap().address(),
            Some("jane@example.com")
        );
        assert_eq!(
            message.reply_to().unwrap().first().unwrap().address(),
            Some("visitor@example.org")
        );
        let text = message.body_text(0).unwrap();
        for expected in [
            "Jane Doe's resume was downloaded completely.",
            "Document: Jane Doe's resume (resume)",
            "When: 24 November 2026 at 14:32 UTC",
            "Link requested by: visitor@example.org",
            "Downloaded from: 192.0.2.7",
            "Link id: RFh7c-qE3xpy8Mq1eLNCUskc",
            "docs.example.com",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from\n{text}");
        }

        let unknown = Download {
            email: None,
            ..download
        };
        let raw = composer
            .compose_notice(&owner, &unknown)
            .unwrap()
            .formatted();
        let message = MessageParser::default().parse(&raw).unwrap();
        assert!(
            message
                .body_text(0)
                .unwrap()
                .contains("Link requested by: unknown")
        );
        assert_eq!(
            message.reply_to().unwrap().first().unwrap().address(),
            Some("jane@example.com"),
            "the configured Reply-To otherwise"
        );
    }

    #[test]
    fn the_site_is_the_public_host() {
        let mut composer = composer();
        assert_eq!(composer.site(), "docs.example.com");
        composer.public_url = "http://localhost:8080/get".to_owned();
        assert_eq!(composer.site(), "localhost:8080");
    }
}
