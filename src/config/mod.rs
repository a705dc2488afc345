//! The service's configuration: read from the environment once at startup, validated, and then
//! immutable.
//!
//! Values are read through the small [`Source`] trait so tests feed a `HashMap` instead of
//! mutating the process environment. Secrets may also come from a file (`NAME_FILE=/path`),
//! which is how Kubernetes mounts them. Any bad value yields one [`ConfigError`] naming the
//! variable and what is wrong with it, never the secret's value.
//!
//! `config` sits above the leaves whose values it builds (`secret`, `token`'s keys,
//! `pseudonym`'s keys, `telemetry`'s log format, `units`) and none of them names it. Its files,
//! one job each:
//!
//! - `mod.rs`: [`Config`], [`Source`], [`ConfigError`], and [`Config::from_source`], which reads
//!   every setting in one fixed order (the first bad one is reported);
//! - `env.rs`: every variable's name (`ENV_*`), the typed reader (`*_FILE` secrets included) and
//!   the parsing helpers several settings share;
//! - `keys.rs`: token keys, pseudonym keys, the admin token;
//! - `backends.rs`: Redis, S3, SMTP;
//! - `mail.rs`: the link mail's subject and `List-Unsubscribe`, the owner's notices;
//! - `limits.rs`: per-client rates and per-connection limits;
//! - `recipients.rs`: the confirm page, disposition, CORS origins, the second fetch.

mod backends;
mod env;
mod keys;
mod limits;
mod mail;
mod recipients;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use lettre::message::Mailbox;

pub use backends::{
    AwsKeys, RedisConfig, S3_RECEIVE_BUFFER_DEFAULT, S3Config, SmtpConfig, Topology, WaitReplicas,
};
// The variable names, `config::ENV_*`; the reader and the parsing helpers stay `config`'s own.
pub use env::*;
pub use keys::{MIN_ADMIN_TOKEN_LEN, MIN_SECRET_LEN};
pub use limits::{HttpLimits, Limits};
pub use mail::{OwnerNotices, WebhookConfig};
pub use recipients::{Disposition, Recipients, StampFallback};

use crate::pseudonym::PseudonymKeys;
/// Named here too for tests that build configuration values; the product's modules name
/// `crate::secret::Secret`.
pub use crate::secret::Secret;
use crate::telemetry::LogFormat;
use crate::texts::subject::SubjectTemplate;
use crate::token::TokenKeys;
use crate::units::parse_duration;

/// A bad configuration value. Displayed as one line: `NAME=value is not valid: why`, with the value
/// left out for secrets.
#[derive(Debug, thiserror::Error)]
#[error("{name}{shown} is not valid: {reason}")]
pub struct ConfigError {
    /// The variable at fault.
    pub name: String,
    /// `=value` where the value may be shown, or empty for secrets.
    shown: String,
    /// What is wrong, in lowercase without a trailing period.
    pub reason: String,
}

impl ConfigError {
    /// An error about a variable whose value may be shown.
    pub fn value(name: &str, value: &str, reason: impl fmt::Display) -> Self {
        Self {
            name: name.to_owned(),
            shown: format!("={value}"),
            reason: reason.to_string(),
        }
    }

    /// An error about a variable whose value must not be shown (a secret, or a missing value).
    pub fn hidden(name: &str, reason: impl fmt::Display) -> Self {
        Self {
            name: name.to_owned(),
            shown: String::new(),
            reason: reason.to_string(),
        }
    }
}

/// Where configuration strings come from: the process environment in production, a map in tests.
pub trait Source {
    /// The value of `name`, if set. An empty value counts as unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Environment;

impl Source for Environment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).filter(|v| !v.is_empty()).cloned()
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The public listener's address.
    pub listen: SocketAddr,
    /// The admin listener's address: metrics and the admin API.
    pub admin_listen: SocketAddr,
    /// The admin API's bearer token; `None`: the admin API is off (metrics are still served).
    pub admin_token: Option<Secret>,
    /// Base of the links put in mails, without a trailing slash.
    pub public_url: String,
    pub token: TokenKeys,
    /// Keys the identifiers of addresses and networks that are stored or logged.
    pub pseudonyms: PseudonymKeys,
    /// How long a link lives.
    pub token_ttl: Duration,
    /// How long a request for a document with `approval = true` waits for the owner's decision.
    pub approval_ttl: Duration,
    /// The note mailed to a person whose request the owner declined; empty (`off`): nothing is
    /// mailed.
    pub approval_decline_text: String,
    /// The production token store; `None`: the embedded in-process store.
    pub redis: Option<RedisConfig>,
    /// The production object store; `None`: files under `documents_dir`.
    pub s3: Option<S3Config>,
    /// SMTP delivery; `None`: `.eml` files in `outbox_dir`.
    pub smtp: Option<SmtpConfig>,
    /// The embedded object source.
    pub documents_dir: PathBuf,
    /// The catalog file of documents on offer.
    pub catalog: PathBuf,
    /// Where the embedded mailer writes `.eml` files.
    pub outbox_dir: PathBuf,
    /// The owner's request log (JSON lines) in embedded mode; with Redis the log is in Redis
    /// and this file is not written.
    pub request_log: PathBuf,
    /// True when `DOCGATE_REQUEST_LOG` was set, so startup can say it is unused with Redis.
    pub request_log_set: bool,
    /// How long request log entries are kept (default 90 days); `None` (`off`): until erased
    /// or evicted.
    pub request_log_retention: Option<Duration>,
    /// The most request log entries kept; each one past it evicts the oldest.
    pub request_log_max_entries: usize,
    /// The privacy notice a link request must agree to (`consent`); `None`: no consent asked.
    pub privacy_url: Option<String>,
    pub mail_from: Mailbox,
    pub mail_reply_to: Option<Mailbox>,
    /// The link mail's subject, with `{title}` for the document's title.
    pub mail_subject: SubjectTemplate,
    /// `List-Unsubscribe` of the link mail (a `mailto:` or `https:` URL); `None`: no such header.
    pub mail_list_unsubscribe: Option<String>,
    /// Who learns of completed downloads, and how.
    pub owner: OwnerNotices,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub limits: Limits,
    /// How many downloads of one link may start before one completes.
    pub download_attempts: u32,
    /// How long a shutdown waits for in-flight downloads.
    pub drain_timeout: Duration,
    /// After SIGTERM, how long readiness answers `503` while new connections are still
    /// accepted, before the listener closes.
    pub shutdown_delay: Duration,
    pub http: HttpLimits,
    pub recipients: Recipients,
    /// A `tracing` filter directive, e.g. `info` or `docgate=debug`.
    pub log_filter: String,
    pub log_format: LogFormat,
}

impl Config {
    /// The origin of [`Config::public_url`] (`https://docs.example.com`), as a browser names it in
    /// `Origin`: without the scheme's default port (`https://docs.example.com:443` is named
    /// `https://docs.example.com`).
    pub fn public_origin(&self) -> String {
        match self.public_url.parse::<http::Uri>() {
            Ok(uri) => {
                let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
                let host = uri.host().unwrap_or("");
                let default = if scheme == "https" { 443 } else { 80 };
                match uri.port_u16() {
                    Some(port) if port != default => format!("{scheme}://{host}:{port}"),
                    _ => format!("{scheme}://{host}"),
                }
                .to_ascii_lowercase()
            }
            Err(_) => self.public_url.clone(),
        }
    }

    /// The path of [`Config::public_url`] (`/docs` for `https://example.com/docs`; empty at the
    /// root): where the pages' own links point, behind a proxy that strips it.
    pub fn public_path(&self) -> &str {
        let after_scheme = self
            .public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, rest)| rest);
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }

    /// Reads and validates every variable. The first bad one is reported.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        let env = Reader(source);

        let redis = RedisConfig::from_env(&env)?;
        let s3 = S3Config::from_env(&env)?;
        let smtp = SmtpConfig::from_env(&env)?;

        let token = keys::token_keys(&env, redis.is_some())?;
        let pseudonyms = keys::pseudonym_keys(&env, redis.is_some())?;
        let admin_token = keys::admin_token(&env)?;

        let mail_subject = mail::subject(&env)?;
        let owner = OwnerNotices::from_env(&env)?;

        let download_attempts =
            env.parse(ENV_DOWNLOAD_ATTEMPTS, "3", |v| match v.parse::<u32>() {
                Ok(n) if crate::catalog::DOWNLOAD_ATTEMPTS.contains(&n) => Ok(n),
                _ => Err("expected a whole number from 1 to 100"),
            })?;

        let log_format = env.parse(ENV_LOG_FORMAT, "text", |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json"),
        })?;
        let log_filter = env.get(ENV_LOG).unwrap_or_else(|| "info".to_owned());
        if let Err(e) = log_filter.parse::<tracing_subscriber::EnvFilter>() {
            return Err(ConfigError::value(ENV_LOG, &log_filter, e));
        }

        Ok(Config {
            listen: env.parse(ENV_LISTEN, "0.0.0.0:8080", |v| v.parse::<SocketAddr>())?,
            admin_listen: env.parse(ENV_ADMIN_LISTEN, "127.0.0.1:9090", |v| {
                v.parse::<SocketAddr>()
            })?,
            admin_token,
            public_url: env.parse(ENV_PUBLIC_URL, "http://localhost:8080", parse_public_url)?,
            token,
            pseudonyms,
            redis,
            s3,
            smtp,
            token_ttl: env.parse(ENV_TOKEN_TTL, "15m", parse_duration)?,
            approval_ttl: env.parse(ENV_APPROVAL_TTL, "7d", parse_duration)?,
            approval_decline_text: env.parse(
                ENV_APPROVAL_DECLINE_TEXT,
                crate::texts::mail::DECLINE_BODY,
                parse_decline_text,
            )?,
            documents_dir: env.path(ENV_DOCUMENTS_DIR, "./documents"),
            catalog: env.path(ENV_CATALOG, "./catalog.toml"),
            outbox_dir: env.path(ENV_OUTBOX_DIR, "./outbox"),
            request_log: env.path(ENV_REQUEST_LOG, "./requests.jsonl"),
            request_log_set: env.get(ENV_REQUEST_LOG).is_some(),
            request_log_retention: env.parse(ENV_REQUEST_LOG_RETENTION, "90d", parse_retention)?,
            request_log_max_entries: env.parse(ENV_REQUEST_LOG_MAX_ENTRIES, "100000", |v| {
                parse_count(v, 100, 100_000_000)
            })?,
            privacy_url: env.optional(ENV_PRIVACY_URL, parse_page_url)?,
            mail_from: env.parse(ENV_MAIL_FROM, "docgate <noreply@localhost>", |v| {
                v.parse::<Mailbox>()
            })?,
            mail_reply_to: env.optional(ENV_MAIL_REPLY_TO, |v| v.parse::<Mailbox>())?,
            mail_subject,
            mail_list_unsubscribe: env
                .optional(ENV_MAIL_LIST_UNSUBSCRIBE, mail::parse_list_unsubscribe)?,
            owner,
            trusted_proxies: env.parse(ENV_TRUSTED_PROXIES, "", parse_cidrs)?,
            limits: Limits::from_env(&env)?,
            http: HttpLimits::from_env(&env)?,
            download_attempts,
            drain_timeout: env.parse(ENV_DRAIN_TIMEOUT, "30s", parse_duration)?,
            shutdown_delay: env.parse(ENV_SHUTDOWN_DELAY, "5s", parse_delay)?,
            recipients: Recipients::from_env(&env)?,
            log_filter,
            log_format,
        })
    }
}
