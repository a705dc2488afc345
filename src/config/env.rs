//! The environment variables docgate reads, and typed access to them.
//!
//! Every variable is a `const ENV_*` here. [`Reader`] reads them from a [`Source`], attaches the
//! variable's name to every error, and reads a secret from `NAME` or from the file `NAME_FILE`
//! names (how Kubernetes mounts secrets). The parsing helpers shared by several settings follow.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{ConfigError, Source};
use crate::secret::Secret;
use crate::units::parse_duration;

pub const ENV_LISTEN: &str = "DOCGATE_LISTEN";
pub const ENV_ADMIN_LISTEN: &str = "DOCGATE_ADMIN_LISTEN";
pub const ENV_ADMIN_TOKEN: &str = "DOCGATE_ADMIN_TOKEN";
pub const ENV_PUBLIC_URL: &str = "DOCGATE_PUBLIC_URL";
pub const ENV_TOKEN_SECRET: &str = "DOCGATE_TOKEN_SECRET";
pub const ENV_TOKEN_KEYS: &str = "DOCGATE_TOKEN_KEYS";
pub const ENV_TOKEN_SIGNING_KID: &str = "DOCGATE_TOKEN_SIGNING_KID";
pub const ENV_TOKEN_TTL: &str = "DOCGATE_TOKEN_TTL";
pub const ENV_PSEUDONYM_KEY: &str = "DOCGATE_PSEUDONYM_KEY";
pub const ENV_PSEUDONYM_KEY_PREVIOUS: &str = "DOCGATE_PSEUDONYM_KEY_PREVIOUS";
pub const ENV_REDIS_URL: &str = "DOCGATE_REDIS_URL";
pub const ENV_REDIS_CLUSTER_URLS: &str = "DOCGATE_REDIS_CLUSTER_URLS";
pub const ENV_REDIS_SENTINEL_URLS: &str = "DOCGATE_REDIS_SENTINEL_URLS";
pub const ENV_REDIS_SENTINEL_MASTER: &str = "DOCGATE_REDIS_SENTINEL_MASTER";
pub const ENV_REDIS_CA_FILE: &str = "DOCGATE_REDIS_CA_FILE";
pub const ENV_REDIS_PREFIX: &str = "DOCGATE_REDIS_PREFIX";
pub const ENV_REDIS_WAIT_REPLICAS: &str = "DOCGATE_REDIS_WAIT_REPLICAS";
pub const ENV_REDIS_WAIT_TIMEOUT: &str = "DOCGATE_REDIS_WAIT_TIMEOUT";
pub const ENV_S3_BUCKET: &str = "DOCGATE_S3_BUCKET";
pub const ENV_S3_ENDPOINT: &str = "DOCGATE_S3_ENDPOINT";
pub const ENV_S3_RECEIVE_BUFFER_BYTES: &str = "DOCGATE_S3_RECEIVE_BUFFER_BYTES";
pub const ENV_AWS_REGION: &str = "AWS_REGION";
pub const ENV_AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const ENV_SMTP_URL: &str = "DOCGATE_SMTP_URL";
pub const ENV_DOCUMENTS_DIR: &str = "DOCGATE_DOCUMENTS_DIR";
pub const ENV_CATALOG: &str = "DOCGATE_CATALOG";
pub const ENV_OUTBOX_DIR: &str = "DOCGATE_OUTBOX_DIR";
pub const ENV_REQUEST_LOG: &str = "DOCGATE_REQUEST_LOG";
pub const ENV_REQUEST_LOG_RETENTION: &str = "DOCGATE_REQUEST_LOG_RETENTION";
pub const ENV_REQUEST_LOG_MAX_ENTRIES: &str = "DOCGATE_REQUEST_LOG_MAX_ENTRIES";
pub const ENV_PRIVACY_URL: &str = "DOCGATE_PRIVACY_URL";
pub const ENV_MAIL_FROM: &str = "DOCGATE_MAIL_FROM";
pub const ENV_MAIL_REPLY_TO: &str = "DOCGATE_MAIL_REPLY_TO";
pub const ENV_MAIL_SUBJECT: &str = "DOCGATE_MAIL_SUBJECT";
pub const ENV_MAIL_LIST_UNSUBSCRIBE: &str = "DOCGATE_MAIL_LIST_UNSUBSCRIBE";
pub const ENV_OWNER_EMAIL: &str = "DOCGATE_OWNER_EMAIL";
pub const ENV_OWNER_WEBHOOK_URL: &str = "DOCGATE_OWNER_WEBHOOK_URL";
pub const ENV_OWNER_WEBHOOK_SECRET: &str = "DOCGATE_OWNER_WEBHOOK_SECRET";
pub const ENV_APPROVAL_TTL: &str = "DOCGATE_APPROVAL_TTL";
pub const ENV_APPROVAL_DECLINE_TEXT: &str = "DOCGATE_APPROVAL_DECLINE_TEXT";
pub const ENV_TRUSTED_PROXIES: &str = "DOCGATE_TRUSTED_PROXIES";
pub const ENV_LIMIT_REQUEST_PER_IP: &str = "DOCGATE_LIMIT_REQUEST_PER_IP";
pub const ENV_LIMIT_REQUEST_PER_EMAIL: &str = "DOCGATE_LIMIT_REQUEST_PER_EMAIL";
pub const ENV_LIMIT_REQUEST_PER_DOMAIN: &str = "DOCGATE_LIMIT_REQUEST_PER_DOMAIN";
pub const ENV_LIMIT_DOWNLOAD_PER_IP: &str = "DOCGATE_LIMIT_DOWNLOAD_PER_IP";
pub const ENV_DOWNLOAD_ATTEMPTS: &str = "DOCGATE_DOWNLOAD_ATTEMPTS";
pub const ENV_LIMIT_MAIL: &str = "DOCGATE_LIMIT_MAIL";
pub const ENV_DRAIN_TIMEOUT: &str = "DOCGATE_DRAIN_TIMEOUT";
pub const ENV_SHUTDOWN_DELAY: &str = "DOCGATE_SHUTDOWN_DELAY";
pub const ENV_HEADER_READ_TIMEOUT: &str = "DOCGATE_HEADER_READ_TIMEOUT";
pub const ENV_IDLE_TIMEOUT: &str = "DOCGATE_IDLE_TIMEOUT";
pub const ENV_WRITE_TIMEOUT: &str = "DOCGATE_WRITE_TIMEOUT";
pub const ENV_MAX_CONNECTIONS: &str = "DOCGATE_MAX_CONNECTIONS";
pub const ENV_MAX_CONNECTIONS_PER_IP: &str = "DOCGATE_MAX_CONNECTIONS_PER_IP";
pub const ENV_BODY_TIMEOUT: &str = "DOCGATE_BODY_TIMEOUT";
pub const ENV_MAX_DOWNLOADS: &str = "DOCGATE_MAX_DOWNLOADS";
pub const ENV_MAX_DOWNLOADS_PER_IP: &str = "DOCGATE_MAX_DOWNLOADS_PER_IP";
pub const ENV_DOWNLOAD_MIN_RATE: &str = "DOCGATE_DOWNLOAD_MIN_RATE";
pub const ENV_DOWNLOAD_RATE_WINDOW: &str = "DOCGATE_DOWNLOAD_RATE_WINDOW";
pub const ENV_MAX_HEADER_BYTES: &str = "DOCGATE_MAX_HEADER_BYTES";
pub const ENV_MAX_HEADERS: &str = "DOCGATE_MAX_HEADERS";
pub const ENV_H2_MAX_STREAMS: &str = "DOCGATE_H2_MAX_STREAMS";
pub const ENV_H2C: &str = "DOCGATE_H2C";
pub const ENV_LOG: &str = "DOCGATE_LOG";
pub const ENV_LOG_FORMAT: &str = "DOCGATE_LOG_FORMAT";
pub const ENV_CONFIRM_PAGE: &str = "DOCGATE_CONFIRM_PAGE";
pub const ENV_DISPOSITION: &str = "DOCGATE_DISPOSITION";
pub const ENV_CORS_ORIGINS: &str = "DOCGATE_CORS_ORIGINS";
pub const ENV_REDOWNLOAD_GRACE: &str = "DOCGATE_REDOWNLOAD_GRACE";
pub const ENV_WATERMARK_TEXT: &str = "DOCGATE_WATERMARK_TEXT";
pub const ENV_WATERMARK_FALLBACK: &str = "DOCGATE_WATERMARK_FALLBACK";

/// Typed access to a [`Source`], attaching the variable name to every error.
pub(super) struct Reader<'a, S>(pub(super) &'a S);

impl<S: Source> Reader<'_, S> {
    pub(super) fn get(&self, name: &str) -> Option<String> {
        self.0.get(name)
    }

    /// Parses `name`, or `default` when unset.
    pub(super) fn parse<T, E: fmt::Display>(
        &self,
        name: &str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        parse(value.trim()).map_err(|e| ConfigError::value(name, &value, e))
    }

    pub(super) fn optional<T, E: fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => parse(value.trim())
                .map(Some)
                .map_err(|e| ConfigError::value(name, &value, e)),
        }
    }

    pub(super) fn path(&self, name: &str, default: &str) -> PathBuf {
        PathBuf::from(self.get(name).unwrap_or_else(|| default.to_owned()))
    }

    /// A secret from `name` or from the file named by `name_FILE`; setting both is an error.
    pub(super) fn secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
        let file_var = format!("{name}_FILE");
        match (self.get(name), self.get(&file_var)) {
            (Some(_), Some(_)) => Err(ConfigError::hidden(
                name,
                format!("set either {name} or {file_var}, not both"),
            )),
            (Some(value), None) => Ok(Some(Secret::new(value.into_bytes()))),
            (None, Some(path)) => {
                let mut bytes =
                    std::fs::read(&path).map_err(|e| ConfigError::value(&file_var, &path, e))?;
                // A file written by `echo` or an editor ends in a newline that is not part of
                // the secret.
                while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                    bytes.pop();
                }
                Ok(Some(Secret::new(bytes)))
            }
            (None, None) => Ok(None),
        }
    }
}

/// A duration that may be zero (`0s`: no delay).
/// The longest decline note, in characters.
const MAX_DECLINE_TEXT: usize = 2000;

/// `DOCGATE_APPROVAL_DECLINE_TEXT`: the note's text, or `off` for none (empty).
pub(super) fn parse_decline_text(value: &str) -> Result<String, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(String::new());
    }
    if value.chars().count() > MAX_DECLINE_TEXT {
        return Err(format!(
            "must be at most {MAX_DECLINE_TEXT} characters, or off"
        ));
    }
    Ok(value.to_owned())
}

pub(super) fn parse_delay(value: &str) -> Result<Duration, String> {
    if matches!(value, "0" | "0s") {
        return Ok(Duration::ZERO);
    }
    parse_duration(value).map_err(|e| e.to_string())
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
pub(super) fn parse_switch(value: &str) -> Result<bool, &'static str> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err("expected on or off"),
    }
}

/// How long request log entries are kept: from 1 hour to 100 years, or `off` (or `0`): until
/// erased or evicted.
pub(super) fn parse_retention(value: &str) -> Result<Option<Duration>, String> {
    if value.eq_ignore_ascii_case("off") || value == "0" {
        return Ok(None);
    }
    let keep = parse_duration(value).map_err(|e| e.to_string())?;
    if keep < Duration::from_secs(3600) || keep > Duration::from_secs(36_500 * 86_400) {
        return Err("expected from 1h to 36500d, e.g. 90d, or off".to_owned());
    }
    Ok(Some(keep))
}

/// An absolute `http://` or `https://` URL of a page, kept as written.
pub(super) fn parse_page_url(value: &str) -> Result<String, &'static str> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| "expected an absolute http:// or https:// URL")?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(value.to_owned()),
        _ => Err("expected an absolute http:// or https:// URL"),
    }
}

/// A whole number from `min` to `max`.
pub(super) fn parse_count(value: &str, min: usize, max: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

/// The base of links: an absolute `http://` or `https://` URL without a query or fragment,
/// returned without a trailing slash.
pub(super) fn parse_public_url(value: &str) -> Result<String, &'static str> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| "expected an absolute http:// or https:// URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("expected an absolute http:// or https:// URL"),
    }
    if uri.authority().is_none() {
        return Err("expected an absolute http:// or https:// URL");
    }
    if value.contains(['?', '#']) {
        return Err("must not have a query or fragment");
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// Trusted proxies: CIDRs or single addresses, separated by commas or spaces.
pub(super) fn parse_cidrs(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8"))
        })
        .collect()
}
