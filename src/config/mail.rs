//! The link mail's settings that need checking (subject, `List-Unsubscribe`) and the owner's
//! notices (mail, signed webhook).

use std::fmt;

use lettre::message::Mailbox;

use super::env::{
    ENV_MAIL_SUBJECT, ENV_OWNER_EMAIL, ENV_OWNER_WEBHOOK_SECRET, ENV_OWNER_WEBHOOK_URL, Reader,
};
use super::keys::MIN_SECRET_LEN;
use super::{ConfigError, Source};
use crate::secret::Secret;
use crate::texts::subject::SubjectTemplate;

/// Telling the document's owner of completed downloads (see the `notify` module).
#[derive(Debug, Clone, Default)]
pub struct OwnerNotices {
    /// `DOCGATE_OWNER_EMAIL`: who gets a mail per completed download.
    pub email: Option<Mailbox>,
    /// `DOCGATE_OWNER_WEBHOOK_URL` and its secret: a signed POST per completed download.
    pub webhook: Option<WebhookConfig>,
}

impl OwnerNotices {
    /// `DOCGATE_OWNER_EMAIL`, and the webhook with its secret.
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Self, ConfigError> {
        Ok(OwnerNotices {
            email: env.optional(ENV_OWNER_EMAIL, |v| v.parse::<Mailbox>())?,
            webhook: webhook(env)?,
        })
    }

    /// True when the owner is told of downloads one way or another.
    pub fn enabled(&self) -> bool {
        self.email.is_some() || self.webhook.is_some()
    }
}

/// The owner's webhook.
#[derive(Clone)]
pub struct WebhookConfig {
    /// An `http://` or `https://` URL; its path or query may hold a token, so it is never shown.
    pub url: http::Uri,
    /// Keys the HMAC-SHA256 signature of each request.
    pub secret: Secret,
}

/// Shows the host only: the path or query may hold a token.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("host", &self.url.host().unwrap_or_default())
            .field("secret", &self.secret)
            .finish()
    }
}

/// `DOCGATE_MAIL_SUBJECT`, or the default subject. The value is shown escaped: a line break in it
/// must not break the error's line.
pub(super) fn subject<S: Source>(env: &Reader<'_, S>) -> Result<SubjectTemplate, ConfigError> {
    Ok(match env.get(ENV_MAIL_SUBJECT) {
        None => SubjectTemplate::default(),
        Some(value) => SubjectTemplate::parse(&value).map_err(|e| {
            ConfigError::value(ENV_MAIL_SUBJECT, &value.escape_debug().to_string(), e)
        })?,
    })
}

/// The owner's webhook: the URL and its secret (at least [`MIN_SECRET_LEN`] bytes), both or
/// neither. Errors never show the URL, which may hold a token.
fn webhook<S: Source>(env: &Reader<'_, S>) -> Result<Option<WebhookConfig>, ConfigError> {
    let secret = env.secret(ENV_OWNER_WEBHOOK_SECRET)?;
    let Some(url) = env.get(ENV_OWNER_WEBHOOK_URL) else {
        if secret.is_some() {
            return Err(ConfigError::hidden(
                ENV_OWNER_WEBHOOK_SECRET,
                "needs DOCGATE_OWNER_WEBHOOK_URL as well",
            ));
        }
        return Ok(None);
    };
    let url =
        parse_webhook_url(url.trim()).map_err(|e| ConfigError::hidden(ENV_OWNER_WEBHOOK_URL, e))?;
    let Some(secret) = secret else {
        return Err(ConfigError::hidden(
            ENV_OWNER_WEBHOOK_SECRET,
            "is required with DOCGATE_OWNER_WEBHOOK_URL: it signs every request",
        ));
    };
    let len = secret.expose().len();
    if len < MIN_SECRET_LEN {
        return Err(ConfigError::hidden(
            ENV_OWNER_WEBHOOK_SECRET,
            format!("must be at least {MIN_SECRET_LEN} bytes, got {len}"),
        ));
    }
    Ok(Some(WebhookConfig { url, secret }))
}

fn parse_webhook_url(value: &str) -> Result<http::Uri, &'static str> {
    const EXPECTED: &str = "expected an http:// or https:// URL";
    let uri: http::Uri = value.parse().map_err(|_| EXPECTED)?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => {}
        _ => return Err(EXPECTED),
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not hold a user or password: put a token in the path or query");
    }
    Ok(uri)
}

/// A `mailto:` address or an `https:` URL, as `List-Unsubscribe` carries it between `<` `>`.
pub(super) fn parse_list_unsubscribe(value: &str) -> Result<String, &'static str> {
    const EXPECTED: &str = "expected a mailto: or https: URL";
    let plain = value.len() <= 1000
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | '"'));
    if !plain {
        return Err("expected a URL of printable ASCII without spaces, '<', '>', ',' or '\"'");
    }
    if let Some(rest) = value.strip_prefix("mailto:") {
        let address = rest.split('?').next().unwrap_or_default();
        address
            .parse::<lettre::Address>()
            .map_err(|_| "expected mailto: followed by an address")?;
        return Ok(value.to_owned());
    }
    match value.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {
            Ok(value.to_owned())
        }
        _ => Err(EXPECTED),
    }
}
