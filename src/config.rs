//! The service's configuration: read from the environment once at startup, validated, and then
//! immutable.
//!
//! Every variable is a `const ENV_*` below. Values are read through the small [`Source`] trait so
//! tests feed a `HashMap` instead of mutating the process environment. Secrets may also come from
//! a file (`NAME_FILE=/path`), which is how Kubernetes mounts them. Any bad value yields one
//! [`ConfigError`] naming the variable and what is wrong with it, never the secret's value.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use lettre::message::Mailbox;

use crate::texts::subject::SubjectTemplate;
use crate::units::{Rate, parse_duration, parse_rate};

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
pub const ENV_REDIS_PREFIX: &str = "DOCGATE_REDIS_PREFIX";
pub const ENV_S3_BUCKET: &str = "DOCGATE_S3_BUCKET";
pub const ENV_S3_ENDPOINT: &str = "DOCGATE_S3_ENDPOINT";
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

/// The shortest admin token accepted, in bytes.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The shortest HMAC key accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
pub const MIN_SECRET_LEN: usize = 32;

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

/// Bytes that must never be printed: `Debug` shows only their length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// The token keys: every listed key verifies links, one signs new ones. Listing two keys is how
/// a key rotates without breaking links in flight.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    /// `kid` and secret, in the order configured.
    pub keys: Vec<(String, Secret)>,
    /// The `kid` of the key that signs new links; always one of `keys`.
    pub signing: String,
    /// True when no key was configured and a random one was made for this process: links
    /// then stop working when it restarts, which startup warns about.
    pub generated: bool,
}

impl TokenKeys {
    /// One key, its `kid` derived from the secret (see [`crate::token::key_id`]).
    pub fn single(secret: Secret) -> Self {
        let kid = crate::token::key_id(&secret);
        Self {
            keys: vec![(kid.clone(), secret)],
            signing: kid,
            generated: false,
        }
    }

    /// The secret of the signing key; `None` if `signing` names no listed key (configuration
    /// never builds such a set).
    pub fn signing_secret(&self) -> Option<&Secret> {
        self.keys
            .iter()
            .find(|(kid, _)| *kid == self.signing)
            .map(|(_, secret)| secret)
    }
}

/// The log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// How a browser is told to handle a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Save it (`Content-Disposition: attachment`).
    Attachment,
    /// Show it in the browser where it can (a PDF opens in the viewer), with the same filename
    /// when saved.
    Inline,
}

/// What recipients' browsers meet: the confirm page, how documents open, who may embed the form.
#[derive(Debug, Clone)]
pub struct Recipients {
    /// A browser's `GET` of a link shows a page with a Download button; only its `POST` (or a
    /// non-browser `GET`, or a resume) streams. Keeps mail scanners from spending links.
    pub confirm_page: bool,
    pub disposition: Disposition,
    /// Origins (`https://www.example.com`) whose pages may post link requests with script
    /// (CORS) and embed the request form in a frame.
    pub cors_origins: Vec<String>,
    /// After a completed download, the same client network may fetch the document once more for
    /// this long (a phone's download manager fetches twice). Zero: never.
    pub redownload_grace: Duration,
}

/// Per-client limits, each a GCRA rate.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Link requests per client IP (IPv6: per /64).
    pub request_per_ip: Rate,
    /// Link requests per mailbox (`address::mailbox`: case, `+tag` and Gmail's dots folded).
    pub request_per_email: Rate,
    /// Link requests per recipient domain (`address::budget_domain`; shared providers exempt).
    pub request_per_domain: Rate,
    /// Download attempts per client IP (IPv6: per /64), bad links included.
    pub download_per_ip: Rate,
    /// Link mails sent by the whole service, whoever asks: a ceiling on what docgate can be made
    /// to send.
    pub mail: Rate,
}

/// What one client connection may cost: time, headers, streams.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// How long a client may take to send a request head; also how long an idle HTTP/1
    /// keep-alive connection waits for its next request.
    pub header_read_timeout: Duration,
    /// How long a connection may stay silent in both directions (HTTP/2 included).
    pub idle_timeout: Duration,
    /// How long a write may stay pending before the connection is closed: a client that stops
    /// reading cannot hold a download, and its link's claim, for longer.
    pub write_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections served at once from one peer address (IPv6: one /64); a connection over it
    /// is closed unread. Peers in the trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// How long a request body (a link request, a link's `POST`, an admin call) may take to
    /// arrive in full once its head has: `408` beyond.
    pub body_timeout: Duration,
    /// Downloads streaming at once in this process: `503` beyond.
    pub max_downloads: usize,
    /// Downloads streaming at once for one client (IPv6: one /64): `429` beyond.
    pub max_downloads_per_ip: usize,
    /// The least a download must move while docgate waits for its client, in bytes per second
    /// averaged over `download_rate_window`; `None`: no floor.
    pub download_min_rate: Option<u64>,
    /// The window `download_min_rate` is measured over.
    pub download_rate_window: Duration,
    /// The largest request head (request line and headers), in bytes: `431` beyond.
    pub max_header_bytes: usize,
    /// The most header fields in one request: `431` beyond.
    pub max_headers: usize,
    /// Concurrent streams on one HTTP/2 connection.
    pub h2_max_streams: u32,
    /// HTTP/2 cleartext (prior knowledge) on the public listener; off: HTTP/1.1 only.
    pub h2c: bool,
}

/// The Redis token store, rate limiter and mail queue.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL; may hold a password, so it is a secret.
    pub url: Secret,
    /// Prefix of every key docgate writes.
    pub prefix: String,
}

/// The private S3 bucket documents are served from.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// An S3-compatible endpoint (then path-style addressing); unset for AWS.
    pub endpoint: Option<String>,
    /// `AWS_REGION`; unset: the AWS chain decides (`us-east-1` with a custom endpoint).
    pub region: Option<String>,
    /// Static keys when `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set; otherwise the
    /// standard AWS credential chain (profile, web identity / IRSA, instance metadata) applies.
    pub credentials: Option<AwsKeys>,
}

/// Static AWS credentials.
#[derive(Debug, Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// SMTP delivery.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://`, `smtps://` URL as lettre reads it; may hold credentials, so it is a secret.
    pub url: Secret,
}

/// Telling the document's owner of completed downloads (see the `notify` module).
#[derive(Debug, Clone, Default)]
pub struct OwnerNotices {
    /// `DOCGATE_OWNER_EMAIL`: who gets a mail per completed download.
    pub email: Option<Mailbox>,
    /// `DOCGATE_OWNER_WEBHOOK_URL` and its secret: a signed POST per completed download.
    pub webhook: Option<WebhookConfig>,
}

impl OwnerNotices {
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

/// The keys of [`crate::pseudonym::Pseudonyms`]: every identifier docgate stores or logs for an
/// address or a client network is an HMAC under `current`; `previous` keys are only looked up.
#[derive(Debug, Clone)]
pub struct PseudonymKeys {
    pub current: Secret,
    pub previous: Vec<Secret>,
    /// True when no key was configured: a random one for this process (embedded mode only,
    /// where nothing keyed by it outlives the process).
    pub generated: bool,
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

        let redis = match env.secret(ENV_REDIS_URL)? {
            Some(url) => {
                let text = String::from_utf8_lossy(url.expose()).into_owned();
                if !(text.starts_with("redis://") || text.starts_with("rediss://"))
                    || redis::Client::open(text.as_str()).is_err()
                {
                    return Err(ConfigError::hidden(
                        ENV_REDIS_URL,
                        "expected a redis:// or rediss:// URL",
                    ));
                }
                Some(RedisConfig {
                    url,
                    prefix: env.parse(ENV_REDIS_PREFIX, "docgate:", parse_prefix)?,
                })
            }
            None => None,
        };
        let s3 = match env.get(ENV_S3_BUCKET) {
            Some(bucket) => Some(S3Config {
                bucket: parse_bucket(&bucket)
                    .map_err(|e| ConfigError::value(ENV_S3_BUCKET, &bucket, e))?,
                endpoint: env.optional(ENV_S3_ENDPOINT, parse_endpoint)?,
                region: env.get(ENV_AWS_REGION),
                credentials: match (
                    env.get(ENV_AWS_ACCESS_KEY_ID),
                    env.secret(ENV_AWS_SECRET_ACCESS_KEY)?,
                ) {
                    (Some(access_key_id), Some(secret_access_key)) => Some(AwsKeys {
                        access_key_id,
                        secret_access_key,
                        session_token: env.secret(ENV_AWS_SESSION_TOKEN)?,
                    }),
                    (None, None) => None,
                    _ => {
                        return Err(ConfigError::hidden(
                            ENV_AWS_ACCESS_KEY_ID,
                            "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
                        ));
                    }
                },
            }),
            None => {
                if let Some(endpoint) = env.get(ENV_S3_ENDPOINT) {
                    return Err(ConfigError::value(
                        ENV_S3_ENDPOINT,
                        &endpoint,
                        "needs DOCGATE_S3_BUCKET as well",
                    ));
                }
                None
            }
        };
        let smtp = match env.secret(ENV_SMTP_URL)? {
            Some(url) => {
                let text = String::from_utf8_lossy(url.expose()).into_owned();
                if !(text.starts_with("smtp://") || text.starts_with("smtps://")) {
                    return Err(ConfigError::hidden(
                        ENV_SMTP_URL,
                        "expected an smtp:// or smtps:// URL",
                    ));
                }
                Some(SmtpConfig { url })
            }
            None => None,
        };

        let token = token_keys(&env, redis.is_some())?;
        let pseudonyms = pseudonym_keys(&env, redis.is_some())?;

        let admin_token = match env.secret(ENV_ADMIN_TOKEN)? {
            Some(token) if token.expose().len() < MIN_ADMIN_TOKEN_LEN => {
                return Err(ConfigError::hidden(
                    ENV_ADMIN_TOKEN,
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN_LEN} bytes, got {}",
                        token.expose().len()
                    ),
                ));
            }
            token => token,
        };

        let mail_subject = match env.get(ENV_MAIL_SUBJECT) {
            None => SubjectTemplate::default(),
            Some(value) => SubjectTemplate::parse(&value).map_err(|e| {
                ConfigError::value(ENV_MAIL_SUBJECT, &value.escape_debug().to_string(), e)
            })?,
        };
        let owner = OwnerNotices {
            email: env.optional(ENV_OWNER_EMAIL, |v| v.parse::<Mailbox>())?,
            webhook: webhook(&env)?,
        };

        let download_attempts =
            env.parse(ENV_DOWNLOAD_ATTEMPTS, "3", |v| match v.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
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
                .optional(ENV_MAIL_LIST_UNSUBSCRIBE, parse_list_unsubscribe)?,
            owner,
            trusted_proxies: env.parse(ENV_TRUSTED_PROXIES, "", parse_cidrs)?,
            limits: Limits {
                request_per_ip: env.parse(ENV_LIMIT_REQUEST_PER_IP, "30/h", parse_rate)?,
                request_per_email: env.parse(ENV_LIMIT_REQUEST_PER_EMAIL, "5/h", parse_rate)?,
                request_per_domain: env.parse(ENV_LIMIT_REQUEST_PER_DOMAIN, "30/h", parse_rate)?,
                download_per_ip: env.parse(ENV_LIMIT_DOWNLOAD_PER_IP, "60/m", parse_rate)?,
                mail: env.parse(ENV_LIMIT_MAIL, "120/m", parse_rate)?,
            },
            http: HttpLimits {
                header_read_timeout: env.parse(ENV_HEADER_READ_TIMEOUT, "10s", parse_duration)?,
                idle_timeout: env.parse(ENV_IDLE_TIMEOUT, "60s", parse_duration)?,
                write_timeout: env.parse(ENV_WRITE_TIMEOUT, "30s", parse_duration)?,
                max_connections: env.parse(ENV_MAX_CONNECTIONS, "4096", |v| {
                    parse_count(v, 1, 1_000_000)
                })?,
                max_connections_per_ip: env.parse(ENV_MAX_CONNECTIONS_PER_IP, "64", |v| {
                    parse_count(v, 1, 1_000_000)
                })?,
                body_timeout: env.parse(ENV_BODY_TIMEOUT, "5s", parse_duration)?,
                max_downloads: env
                    .parse(ENV_MAX_DOWNLOADS, "1024", |v| parse_count(v, 1, 1_000_000))?,
                max_downloads_per_ip: env.parse(ENV_MAX_DOWNLOADS_PER_IP, "8", |v| {
                    parse_count(v, 1, 1_000_000)
                })?,
                download_min_rate: env.parse(ENV_DOWNLOAD_MIN_RATE, "4KiB/s", parse_byte_rate)?,
                download_rate_window: env.parse(ENV_DOWNLOAD_RATE_WINDOW, "60s", parse_duration)?,
                max_header_bytes: env.parse(ENV_MAX_HEADER_BYTES, "16384", |v| {
                    parse_count(v, 1024, 65_536)
                })?,
                max_headers: env.parse(ENV_MAX_HEADERS, "100", |v| parse_count(v, 8, 1000))?,
                h2_max_streams: env.parse(ENV_H2_MAX_STREAMS, "100", |v| {
                    parse_count(v, 1, 10_000).map(|n| n as u32)
                })?,
                h2c: env.parse(ENV_H2C, "off", parse_switch)?,
            },
            download_attempts,
            drain_timeout: env.parse(ENV_DRAIN_TIMEOUT, "30s", parse_duration)?,
            shutdown_delay: env.parse(ENV_SHUTDOWN_DELAY, "5s", parse_delay)?,
            recipients: Recipients {
                confirm_page: env.parse(ENV_CONFIRM_PAGE, "on", parse_switch)?,
                disposition: env.parse(ENV_DISPOSITION, "attachment", |v| match v {
                    "attachment" => Ok(Disposition::Attachment),
                    "inline" => Ok(Disposition::Inline),
                    _ => Err("expected attachment or inline"),
                })?,
                cors_origins: env.parse(ENV_CORS_ORIGINS, "", parse_origins)?,
                redownload_grace: env.parse(ENV_REDOWNLOAD_GRACE, "60s", parse_delay)?,
            },
            log_filter,
            log_format,
        })
    }
}

/// Typed access to a [`Source`], attaching the variable name to every error.
struct Reader<'a, S>(&'a S);

impl<S: Source> Reader<'_, S> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name)
    }

    /// Parses `name`, or `default` when unset.
    fn parse<T, E: fmt::Display>(
        &self,
        name: &str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        parse(value.trim()).map_err(|e| ConfigError::value(name, &value, e))
    }

    fn optional<T, E: fmt::Display>(
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

    fn path(&self, name: &str, default: &str) -> PathBuf {
        PathBuf::from(self.get(name).unwrap_or_else(|| default.to_owned()))
    }

    /// A secret from `name` or from the file named by `name_FILE`; setting both is an error.
    fn secret(&self, name: &str) -> Result<Option<Secret>, ConfigError> {
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

/// Refuses a secret shorter than [`MIN_SECRET_LEN`]; `what` names it within the variable (`key
/// "a" `), and the error never shows it.
fn check_secret_len(name: &str, what: &str, secret: &Secret) -> Result<(), ConfigError> {
    let len = secret.expose().len();
    if len < MIN_SECRET_LEN {
        return Err(ConfigError::hidden(
            name,
            format!("{what}must be at least {MIN_SECRET_LEN} bytes, got {len}"),
        ));
    }
    Ok(())
}

/// The token keys from `DOCGATE_TOKEN_KEYS`, `DOCGATE_TOKEN_SECRET` (a verify-only key beside
/// the list when both are set, so a deployment moves from one to the other without breaking
/// links), and `DOCGATE_TOKEN_SIGNING_KID`.
fn token_keys<S: Source>(env: &Reader<'_, S>, shared: bool) -> Result<TokenKeys, ConfigError> {
    let mut keys = match env.secret(ENV_TOKEN_KEYS)? {
        Some(list) => parse_token_keys(&list, check_secret_len)?,
        None => Vec::new(),
    };
    if let Some(secret) = env.secret(ENV_TOKEN_SECRET)? {
        check_secret_len(ENV_TOKEN_SECRET, "", &secret)?;
        let single = TokenKeys::single(secret);
        if keys.iter().any(|(kid, _)| *kid == single.signing) {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!(
                    "lists kid {:?}, the kid of DOCGATE_TOKEN_SECRET; remove one of them",
                    single.signing
                ),
            ));
        }
        keys.extend(single.keys);
    }
    if keys.is_empty() {
        if shared {
            return Err(ConfigError::hidden(
                ENV_TOKEN_SECRET,
                "is required with DOCGATE_REDIS_URL (or DOCGATE_TOKEN_KEYS): every replica must sign and verify with the same key",
            ));
        }
        return Ok(TokenKeys {
            generated: true,
            ..TokenKeys::single(random_secret())
        });
    }
    let signing = match env.get(ENV_TOKEN_SIGNING_KID) {
        Some(kid) if keys.iter().any(|(k, _)| *k == kid) => kid,
        Some(kid) => {
            return Err(ConfigError::value(
                ENV_TOKEN_SIGNING_KID,
                &kid,
                "names no key of DOCGATE_TOKEN_KEYS",
            ));
        }
        None => keys[0].0.clone(),
    };
    Ok(TokenKeys {
        keys,
        signing,
        generated: false,
    })
}

/// `DOCGATE_PSEUDONYM_KEY` and the previous keys still looked up,
/// `DOCGATE_PSEUDONYM_KEY_PREVIOUS` (one per line or separated by commas).
fn pseudonym_keys<S: Source>(
    env: &Reader<'_, S>,
    shared: bool,
) -> Result<PseudonymKeys, ConfigError> {
    let check_len = |name: &str, secret: &Secret| check_secret_len(name, "", secret);
    let previous = match env.secret(ENV_PSEUDONYM_KEY_PREVIOUS)? {
        Some(list) => {
            let text = String::from_utf8_lossy(list.expose()).into_owned();
            let keys: Vec<Secret> = text
                .split([',', '\n'])
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| Secret::new(k.as_bytes().to_vec()))
                .collect();
            for key in &keys {
                check_len(ENV_PSEUDONYM_KEY_PREVIOUS, key)?;
            }
            keys
        }
        None => Vec::new(),
    };
    match env.secret(ENV_PSEUDONYM_KEY)? {
        Some(current) => {
            check_len(ENV_PSEUDONYM_KEY, &current)?;
            Ok(PseudonymKeys {
                current,
                previous,
                generated: false,
            })
        }
        None if shared => Err(ConfigError::hidden(
            ENV_PSEUDONYM_KEY,
            "is required with DOCGATE_REDIS_URL: every replica must name a person or a network the same way in Redis",
        )),
        None if !previous.is_empty() => Err(ConfigError::hidden(
            ENV_PSEUDONYM_KEY_PREVIOUS,
            "needs DOCGATE_PSEUDONYM_KEY as well",
        )),
        None => Ok(PseudonymKeys {
            current: random_secret(),
            previous,
            generated: true,
        }),
    }
}

/// `kid=secret` entries, one per line or separated by commas; blank lines and `#` comments are
/// skipped. A `kid` is 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn parse_token_keys(
    list: &Secret,
    check_len: impl Fn(&str, &str, &Secret) -> Result<(), ConfigError>,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    let text = std::str::from_utf8(list.expose())
        .map_err(|_| ConfigError::hidden(ENV_TOKEN_KEYS, "is not UTF-8 text"))?;
    let mut keys: Vec<(String, Secret)> = Vec::new();
    let entries = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty());
    for (n, entry) in entries.enumerate() {
        let Some((kid, secret)) = entry.split_once('=') else {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!("entry {} is not kid=secret", n + 1),
            ));
        };
        let kid = kid.trim();
        let kid_ok = (1..=64).contains(&kid.len())
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !kid_ok {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!(
                    "entry {}: a kid is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'",
                    n + 1
                ),
            ));
        }
        let secret = Secret::new(secret.trim().as_bytes().to_vec());
        check_len(ENV_TOKEN_KEYS, &format!("key {kid:?} "), &secret)?;
        if keys.iter().any(|(k, _)| k == kid) {
            return Err(ConfigError::hidden(
                ENV_TOKEN_KEYS,
                format!("lists kid {kid:?} twice"),
            ));
        }
        keys.push((kid.to_owned(), secret));
    }
    if keys.is_empty() {
        return Err(ConfigError::hidden(ENV_TOKEN_KEYS, "lists no key"));
    }
    Ok(keys)
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
fn parse_list_unsubscribe(value: &str) -> Result<String, &'static str> {
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

fn random_secret() -> Secret {
    let mut bytes = vec![0u8; 32];
    // The OS RNG failing at startup leaves no safe way to sign links; there is nothing to fall
    // back to, and the process cannot do its job.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    Secret::new(bytes)
}

/// A duration that may be zero (`0s`: no delay).
fn parse_delay(value: &str) -> Result<Duration, String> {
    if matches!(value, "0" | "0s") {
        return Ok(Duration::ZERO);
    }
    parse_duration(value).map_err(|e| e.to_string())
}

/// `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
fn parse_switch(value: &str) -> Result<bool, &'static str> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err("expected on or off"),
    }
}

/// Comma-separated origins: `scheme://host[:port]`, no path. Returned as browsers send them in
/// `Origin` (lowercase, no trailing slash).
fn parse_origins(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|origin| {
            let bad = || format!("{origin:?} is not an origin like https://www.example.com");
            let uri: http::Uri = origin.parse().map_err(|_| bad())?;
            let scheme = uri.scheme_str().filter(|s| matches!(*s, "http" | "https"));
            let (Some(scheme), Some(authority)) = (scheme, uri.authority()) else {
                return Err(bad());
            };
            let path = uri.path_and_query().map_or("", |p| p.as_str());
            if !matches!(path, "" | "/") || authority.as_str().contains('@') {
                return Err(bad());
            }
            Ok(format!(
                "{scheme}://{}",
                authority.as_str().to_ascii_lowercase()
            ))
        })
        .collect()
}

/// How long request log entries are kept: from an hour to 100 years.
/// A retention from 1 hour to 100 years, or `off` (or `0`): kept until erased or evicted.
fn parse_retention(value: &str) -> Result<Option<Duration>, String> {
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
fn parse_page_url(value: &str) -> Result<String, &'static str> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| "expected an absolute http:// or https:// URL")?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(value.to_owned()),
        _ => Err("expected an absolute http:// or https:// URL"),
    }
}

/// A whole number from `min` to `max`.
/// A transfer rate: `off`, or bytes per second as `N`, `NKiB` or `NMiB`, optionally followed
/// by `/s` (`4KiB/s`).
fn parse_byte_rate(value: &str) -> Result<Option<u64>, &'static str> {
    const WHY: &str = "expected off or bytes per second, e.g. 4KiB/s, 512/s or 1MiB/s";
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let value = value.strip_suffix("/s").unwrap_or(value).trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| WHY)?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return Err(WHY),
    };
    match number.checked_mul(scale) {
        Some(0) => Err("must be greater than zero (or off)"),
        Some(n) => Ok(Some(n)),
        None => Err(WHY),
    }
}

fn parse_count(value: &str, min: usize, max: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

fn parse_public_url(value: &str) -> Result<String, &'static str> {
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

fn parse_prefix(value: &str) -> Result<String, &'static str> {
    if value.len() > 64 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected up to 64 characters without spaces");
    }
    Ok(value.to_owned())
}

/// S3 bucket naming rules, loosely: 3 to 63 of lowercase letters, digits, '.', '-'.
fn parse_bucket(value: &str) -> Result<String, &'static str> {
    let ok = (3..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err("expected a bucket name: 3 to 63 of a-z, 0-9, '.' and '-'")
    }
}

fn parse_endpoint(value: &str) -> Result<String, &'static str> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| "expected an http:// or https:// URL")?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(value.trim_end_matches('/').to_owned()),
        _ => Err("expected an http:// or https:// URL"),
    }
}

fn parse_cidrs(value: &str) -> Result<Vec<IpNet>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_interface() {
        let config = Config::from_source(&source(&[])).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.admin_listen, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(config.public_url, "http://localhost:8080");
        assert_eq!(config.token_ttl, Duration::from_secs(900));
        assert!(config.token.generated);
        assert_eq!(config.token.signing_secret().unwrap().expose().len(), 32);
        assert_eq!(config.download_attempts, 3);
        assert_eq!(config.documents_dir, PathBuf::from("./documents"));
        assert_eq!(config.catalog, PathBuf::from("./catalog.toml"));
        assert_eq!(config.outbox_dir, PathBuf::from("./outbox"));
        assert_eq!(config.mail_from.to_string(), "docgate <noreply@localhost>");
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.recipients.confirm_page);
        assert_eq!(config.recipients.disposition, Disposition::Attachment);
        assert!(config.recipients.cors_origins.is_empty());
        assert_eq!(config.recipients.redownload_grace, Duration::from_secs(60));
        assert_eq!(config.public_origin(), "http://localhost:8080");
        assert_eq!(config.public_path(), "");
        assert!(!config.request_log_set);
        assert_eq!(
            config.request_log_retention,
            Some(Duration::from_secs(90 * 86_400)),
            "storage limitation: 90 days unless configured"
        );
        assert_eq!(config.request_log_max_entries, 100_000);
        assert_eq!(config.privacy_url, None, "no consent asked");
    }

    #[test]
    fn recipient_settings_parse() {
        let config = Config::from_source(&source(&[
            (ENV_CONFIRM_PAGE, "off"),
            (ENV_DISPOSITION, "inline"),
            (
                ENV_CORS_ORIGINS,
                "https://www.Example.com, http://localhost:3000/",
            ),
            (ENV_REDOWNLOAD_GRACE, "0s"),
            (ENV_PUBLIC_URL, "https://Docs.example.com/base/"),
        ]))
        .unwrap();
        let r = &config.recipients;
        assert!(!r.confirm_page);
        assert_eq!(r.disposition, Disposition::Inline);
        assert_eq!(
            r.cors_origins,
            ["https://www.example.com", "http://localhost:3000"]
        );
        assert_eq!(r.redownload_grace, Duration::ZERO);
        assert_eq!(config.public_origin(), "https://docs.example.com");
        assert_eq!(config.public_path(), "/base");
        for (url, origin) in [
            ("https://docs.example.com:443/x", "https://docs.example.com"),
            ("http://Docs.Example.com:80", "http://docs.example.com"),
            (
                "https://docs.example.com:8443",
                "https://docs.example.com:8443",
            ),
            ("http://[::1]:8080/", "http://[::1]:8080"),
        ] {
            let config = Config::from_source(&source(&[(ENV_PUBLIC_URL, url)])).unwrap();
            assert_eq!(config.public_origin(), origin, "{url}");
        }
    }

    #[test]
    fn privacy_settings_are_read() {
        let config = Config::from_source(&source(&[
            (ENV_REQUEST_LOG, "/var/lib/docgate/requests.jsonl"),
            (ENV_REQUEST_LOG_RETENTION, "90d"),
            (ENV_PRIVACY_URL, "https://example.com/privacy#requests"),
        ]))
        .unwrap();
        assert!(config.request_log_set);
        assert_eq!(
            config.request_log_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(
            config.privacy_url.as_deref(),
            Some("https://example.com/privacy#requests")
        );
        for off in ["off", "OFF", "0"] {
            let config = Config::from_source(&source(&[
                (ENV_REQUEST_LOG_RETENTION, off),
                (ENV_REQUEST_LOG_MAX_ENTRIES, "500"),
            ]))
            .unwrap();
            assert_eq!(
                config.request_log_retention, None,
                "{off}: kept until evicted"
            );
            assert_eq!(config.request_log_max_entries, 500);
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (ENV_TOKEN_TTL, "15", "DOCGATE_TOKEN_TTL=15 is not valid"),
            (ENV_TOKEN_TTL, "0m", "must be greater than zero"),
            (
                ENV_LISTEN,
                "localhost",
                "DOCGATE_LISTEN=localhost is not valid",
            ),
            (
                ENV_PUBLIC_URL,
                "example.com",
                "DOCGATE_PUBLIC_URL=example.com",
            ),
            (ENV_PUBLIC_URL, "ftp://x", "absolute http"),
            (
                ENV_LIMIT_REQUEST_PER_IP,
                "ten",
                "DOCGATE_LIMIT_REQUEST_PER_IP=ten",
            ),
            (
                ENV_LIMIT_REQUEST_PER_DOMAIN,
                "0/h",
                "DOCGATE_LIMIT_REQUEST_PER_DOMAIN=0/h",
            ),
            (ENV_DOWNLOAD_ATTEMPTS, "0", "DOCGATE_DOWNLOAD_ATTEMPTS=0"),
            (
                ENV_TRUSTED_PROXIES,
                "10.0.0.0/8,nope",
                "\"nope\" is not a CIDR",
            ),
            (ENV_MAIL_FROM, "not an address", "DOCGATE_MAIL_FROM="),
            (ENV_LOG_FORMAT, "xml", "expected text or json"),
            (ENV_CONFIRM_PAGE, "maybe", "expected on or off"),
            (ENV_DISPOSITION, "download", "expected attachment or inline"),
            (
                ENV_CORS_ORIGINS,
                "https://example.com/path",
                "is not an origin",
            ),
            (ENV_CORS_ORIGINS, "example.com", "is not an origin"),
            (
                ENV_REQUEST_LOG_RETENTION,
                "90",
                "DOCGATE_REQUEST_LOG_RETENTION=90 is not valid",
            ),
            (
                ENV_REQUEST_LOG_MAX_ENTRIES,
                "99",
                "DOCGATE_REQUEST_LOG_MAX_ENTRIES=99 is not valid: expected a whole number from 100",
            ),
            (
                ENV_REQUEST_LOG_MAX_ENTRIES,
                "lots",
                "DOCGATE_REQUEST_LOG_MAX_ENTRIES=lots is not valid",
            ),
            (
                ENV_REQUEST_LOG_RETENTION,
                "30m",
                "expected from 1h to 36500d",
            ),
            (
                ENV_REQUEST_LOG_RETENTION,
                "36501d",
                "expected from 1h to 36500d",
            ),
            (
                ENV_PRIVACY_URL,
                "/privacy",
                "DOCGATE_PRIVACY_URL=/privacy is not valid",
            ),
            (ENV_PRIVACY_URL, "mailto:dpo@example.com", "absolute http"),
            (
                ENV_REDIS_URL,
                "http://localhost",
                "DOCGATE_REDIS_URL is not valid",
            ),
            (ENV_S3_BUCKET, "Bad_Bucket", "DOCGATE_S3_BUCKET=Bad_Bucket"),
            (ENV_S3_ENDPOINT, "http://x", "needs DOCGATE_S3_BUCKET"),
            (
                ENV_SMTP_URL,
                "mail.example.com",
                "DOCGATE_SMTP_URL is not valid",
            ),
        ];
        for (name, value, expected) in cases {
            let err = Config::from_source(&source(&[(name, value)])).unwrap_err();
            assert_eq!(err.name, name);
            let line = err.to_string();
            assert!(line.contains(expected), "{line:?} lacks {expected:?}");
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn production_backends_are_read_and_hide_their_secrets() {
        let config = Config::from_source(&source(&[
            (ENV_REDIS_URL, "redis://:hunter2@redis:6379/0"),
            (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
            (ENV_PSEUDONYM_KEY, "pseudonyms-0123456789abcdef012345"),
            (ENV_S3_BUCKET, "private-docs"),
            (ENV_S3_ENDPOINT, "http://127.0.0.1:9000/"),
            (ENV_AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
            (ENV_AWS_SECRET_ACCESS_KEY, "wJalrXUtnFEMI"),
            (ENV_SMTP_URL, "smtp://user:pass@mail:587?tls=required"),
        ]))
        .unwrap();
        let redis = config.redis.as_ref().unwrap();
        assert_eq!(redis.prefix, "docgate:");
        let s3 = config.s3.as_ref().unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            s3.credentials.as_ref().unwrap().access_key_id,
            "AKIDEXAMPLE"
        );
        let debug = format!("{config:?}");
        for secret in ["hunter2", "wJalrXUtnFEMI", "user:pass"] {
            assert!(!debug.contains(secret), "{secret} shown in {debug}");
        }

        let err =
            Config::from_source(&source(&[(ENV_REDIS_URL, "redis://localhost")])).unwrap_err();
        assert_eq!(
            err.name, ENV_TOKEN_SECRET,
            "a shared key is required with Redis"
        );
        let err = Config::from_source(&source(&[
            (ENV_S3_BUCKET, "private-docs"),
            (ENV_AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
        ]))
        .unwrap_err();
        assert_eq!(err.name, ENV_AWS_ACCESS_KEY_ID);
    }

    #[test]
    fn short_secret_is_refused_without_showing_it() {
        let err = Config::from_source(&source(&[(ENV_TOKEN_SECRET, "hunter2")])).unwrap_err();
        let line = err.to_string();
        assert_eq!(
            line,
            "DOCGATE_TOKEN_SECRET is not valid: must be at least 32 bytes, got 7"
        );
    }

    #[test]
    fn secrets_read_from_files_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        let config = Config::from_source(&source(&[(
            "DOCGATE_TOKEN_SECRET_FILE",
            path.to_str().unwrap(),
        )]))
        .unwrap();
        assert!(!config.token.generated);
        assert_eq!(
            config.token.signing_secret().unwrap().expose(),
            b"0123456789abcdef0123456789abcdef"
        );

        let both = source(&[
            ("DOCGATE_TOKEN_SECRET_FILE", path.to_str().unwrap()),
            (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
        ]);
        assert!(
            Config::from_source(&both)
                .unwrap_err()
                .to_string()
                .contains("not both")
        );

        let missing = source(&[("DOCGATE_TOKEN_SECRET_FILE", "/nonexistent/secret")]);
        assert_eq!(
            Config::from_source(&missing).unwrap_err().name,
            "DOCGATE_TOKEN_SECRET_FILE"
        );
    }

    const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn token_keys_list_several_and_one_signs() {
        let list = format!("# rotated 2026-11\n2026-11={KEY_B}\n\n2026-05 = {KEY_A}\n");
        let config = Config::from_source(&source(&[(ENV_TOKEN_KEYS, &list)])).unwrap();
        let kids: Vec<&str> = config.token.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kids, ["2026-11", "2026-05"]);
        assert_eq!(config.token.signing, "2026-11", "the first key signs");
        assert_eq!(
            config.token.signing_secret().unwrap().expose(),
            KEY_B.as_bytes()
        );

        let config = Config::from_source(&source(&[
            (
                ENV_TOKEN_KEYS,
                &format!("# old, then new\nold={KEY_A},new={KEY_B}"),
            ),
            (ENV_TOKEN_SIGNING_KID, "new"),
        ]))
        .unwrap();
        assert_eq!(config.token.signing, "new");
        assert_eq!(
            config.token.signing_secret().unwrap().expose(),
            KEY_B.as_bytes()
        );

        // The single secret stays a verify-only key beside the list, so moving to a list
        // breaks no link.
        let config = Config::from_source(&source(&[
            (ENV_TOKEN_KEYS, &format!("new={KEY_B}")),
            (ENV_TOKEN_SECRET, KEY_A),
        ]))
        .unwrap();
        assert_eq!(config.token.signing, "new");
        assert_eq!(config.token.keys.len(), 2);
        assert_eq!(
            config.token.keys[1].0,
            crate::token::key_id(&Secret::new(KEY_A.into()))
        );
        assert!(!format!("{config:?}").contains(KEY_A));
    }

    #[test]
    fn bad_token_keys_name_the_entry_and_hide_the_secret() {
        let cases = [
            (format!("a={KEY_A},a={KEY_B}"), "lists kid \"a\" twice"),
            (format!("a={KEY_A},{KEY_B}"), "entry 2 is not kid=secret"),
            (
                "a=short".to_owned(),
                "key \"a\" must be at least 32 bytes, got 5",
            ),
            (format!("bad kid={KEY_A}"), "entry 1: a kid is 1 to 64"),
            (format!("={KEY_A}"), "entry 1: a kid is 1 to 64"),
            ("# only a comment".to_owned(), "lists no key"),
        ];
        for (list, expected) in cases {
            let err = Config::from_source(&source(&[(ENV_TOKEN_KEYS, &list)])).unwrap_err();
            let line = err.to_string();
            assert_eq!(err.name, ENV_TOKEN_KEYS, "{line}");
            assert!(line.contains(expected), "{line:?} lacks {expected:?}");
            assert!(!line.contains("aaaa") && !line.contains("bbbb") && !line.contains("short"));
        }
        let err = Config::from_source(&source(&[
            (ENV_TOKEN_KEYS, &format!("a={KEY_A}")),
            (ENV_TOKEN_SIGNING_KID, "b"),
        ]))
        .unwrap_err();
        assert_eq!(err.name, ENV_TOKEN_SIGNING_KID);
        let err = Config::from_source(&source(&[
            (ENV_REDIS_URL, "redis://localhost"),
            (ENV_TOKEN_KEYS, &format!("a={KEY_A}")),
            (ENV_PSEUDONYM_KEY, KEY_B),
        ]));
        assert!(err.is_ok(), "a key list is a shared key");
    }

    #[test]
    fn the_pseudonym_key_is_required_with_redis_and_random_without() {
        let embedded = Config::from_source(&source(&[])).unwrap();
        assert!(embedded.pseudonyms.generated);
        assert_eq!(embedded.pseudonyms.current.expose().len(), 32);

        let shared = [
            (ENV_REDIS_URL, "redis://localhost"),
            (ENV_TOKEN_SECRET, KEY_A),
        ];
        let err = Config::from_source(&source(&shared)).unwrap_err();
        assert_eq!(err.name, ENV_PSEUDONYM_KEY);
        assert!(
            err.to_string()
                .contains("is required with DOCGATE_REDIS_URL")
        );

        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = shared.to_vec();
            pairs.extend_from_slice(extra);
            Config::from_source(&source(&pairs))
        };
        let config = with(&[(ENV_PSEUDONYM_KEY, KEY_B)]).unwrap();
        assert!(!config.pseudonyms.generated);
        assert_eq!(config.pseudonyms.current.expose(), KEY_B.as_bytes());
        assert!(config.pseudonyms.previous.is_empty());
        assert!(
            !format!("{config:?}").contains(KEY_B),
            "the key is never printed"
        );

        let rotated = with(&[
            (ENV_PSEUDONYM_KEY, KEY_B),
            (
                ENV_PSEUDONYM_KEY_PREVIOUS,
                "0123456789abcdef0123456789abcdef, cccccccccccccccccccccccccccccccc",
            ),
        ])
        .unwrap();
        assert_eq!(rotated.pseudonyms.previous.len(), 2);

        for (extra, name, expected) in [
            (
                &[(ENV_PSEUDONYM_KEY, "short")][..],
                ENV_PSEUDONYM_KEY,
                "must be at least 32 bytes, got 5",
            ),
            (
                &[
                    (ENV_PSEUDONYM_KEY, KEY_B),
                    (ENV_PSEUDONYM_KEY_PREVIOUS, "short"),
                ][..],
                ENV_PSEUDONYM_KEY_PREVIOUS,
                "must be at least 32 bytes, got 5",
            ),
        ] {
            let err = with(extra).unwrap_err();
            assert_eq!(err.name, name);
            let line = err.to_string();
            assert!(line.contains(expected), "{line}");
            assert!(!line.contains("short"), "{line}");
        }
        let err = Config::from_source(&source(&[(ENV_PSEUDONYM_KEY_PREVIOUS, KEY_A)])).unwrap_err();
        assert_eq!(err.name, ENV_PSEUDONYM_KEY_PREVIOUS);
    }

    #[test]
    fn mail_and_owner_settings_are_read() {
        let config = Config::from_source(&source(&[])).unwrap();
        assert_eq!(config.mail_subject, SubjectTemplate::default());
        assert_eq!(config.mail_list_unsubscribe, None);
        assert!(!config.owner.enabled());

        let secret = "w".repeat(32);
        let config = Config::from_source(&source(&[
            (ENV_MAIL_SUBJECT, "Your copy of {title}"),
            (
                ENV_MAIL_LIST_UNSUBSCRIBE,
                "https://example.com/unsubscribe?l=1",
            ),
            (ENV_OWNER_EMAIL, "Jane Doe <jane@example.com>"),
            (
                ENV_OWNER_WEBHOOK_URL,
                "https://hooks.example.com/docgate?token=hunter2",
            ),
            (ENV_OWNER_WEBHOOK_SECRET, &secret),
        ]))
        .unwrap();
        assert_eq!(config.mail_subject.render("X"), "Your copy of X");
        assert_eq!(
            config.mail_list_unsubscribe.as_deref(),
            Some("https://example.com/unsubscribe?l=1")
        );
        assert_eq!(
            config.owner.email.as_ref().unwrap().email.to_string(),
            "jane@example.com"
        );
        let webhook = config.owner.webhook.as_ref().unwrap();
        assert_eq!(webhook.url.host(), Some("hooks.example.com"));
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains(&secret),
            "{debug}"
        );
        assert!(
            Config::from_source(&source(&[(
                ENV_MAIL_LIST_UNSUBSCRIBE,
                "mailto:unsubscribe@example.com?subject=stop"
            )]))
            .is_ok()
        );
    }

    #[test]
    fn bad_mail_and_owner_settings_name_the_variable() {
        let secret = "w".repeat(32);
        /// The settings, the variable named, and what the message says.
        type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (
                vec![(ENV_MAIL_SUBJECT, "Link for {document}")],
                ENV_MAIL_SUBJECT,
                "unknown placeholder {document}",
            ),
            (
                vec![(ENV_MAIL_SUBJECT, "Link\r\nBcc: x@example.org")],
                ENV_MAIL_SUBJECT,
                "Bcc",
            ),
            (
                vec![(ENV_MAIL_SUBJECT, "Link\nfor {title}")],
                ENV_MAIL_SUBJECT,
                "one line",
            ),
            (
                vec![(ENV_MAIL_LIST_UNSUBSCRIBE, "http://example.com/u")],
                ENV_MAIL_LIST_UNSUBSCRIBE,
                "mailto: or https:",
            ),
            (
                vec![(ENV_MAIL_LIST_UNSUBSCRIBE, "mailto:nobody")],
                ENV_MAIL_LIST_UNSUBSCRIBE,
                "followed by an address",
            ),
            (
                vec![(ENV_MAIL_LIST_UNSUBSCRIBE, "https://example.com/u>, <x")],
                ENV_MAIL_LIST_UNSUBSCRIBE,
                "without spaces",
            ),
            (
                vec![(ENV_OWNER_EMAIL, "jane at example")],
                ENV_OWNER_EMAIL,
                "DOCGATE_OWNER_EMAIL=jane at example",
            ),
            (
                vec![(ENV_OWNER_WEBHOOK_URL, "https://hooks.example.com/x")],
                ENV_OWNER_WEBHOOK_SECRET,
                "is required with DOCGATE_OWNER_WEBHOOK_URL",
            ),
            (
                vec![(ENV_OWNER_WEBHOOK_SECRET, &secret)],
                ENV_OWNER_WEBHOOK_SECRET,
                "needs DOCGATE_OWNER_WEBHOOK_URL",
            ),
            (
                vec![
                    (ENV_OWNER_WEBHOOK_URL, "ftp://hooks.example.com/hunter2"),
                    (ENV_OWNER_WEBHOOK_SECRET, &secret),
                ],
                ENV_OWNER_WEBHOOK_URL,
                "expected an http:// or https:// URL",
            ),
            (
                vec![
                    (
                        ENV_OWNER_WEBHOOK_URL,
                        "https://user:hunter2@hooks.example.com/",
                    ),
                    (ENV_OWNER_WEBHOOK_SECRET, &secret),
                ],
                ENV_OWNER_WEBHOOK_URL,
                "must not hold a user or password",
            ),
            (
                vec![
                    (ENV_OWNER_WEBHOOK_URL, "https://hooks.example.com/"),
                    (ENV_OWNER_WEBHOOK_SECRET, "hunter2"),
                ],
                ENV_OWNER_WEBHOOK_SECRET,
                "must be at least 32 bytes, got 7",
            ),
        ];
        for (pairs, name, expected) in cases {
            let err = Config::from_source(&source(&pairs)).unwrap_err();
            let line = err.to_string();
            assert_eq!(err.name, name, "{line}");
            assert!(line.contains(expected), "{line:?} lacks {expected:?}");
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            assert!(!line.contains("hunter2"), "{line:?}");
        }
    }

    #[test]
    fn slow_client_limits_parse_and_bad_ones_name_the_variable() {
        let config = Config::from_source(&source(&[])).unwrap();
        assert_eq!(config.http.body_timeout, Duration::from_secs(5));
        assert_eq!(config.http.max_connections_per_ip, 64);
        assert_eq!(config.http.max_downloads, 1024);
        assert_eq!(config.http.max_downloads_per_ip, 8);
        assert_eq!(config.http.download_min_rate, Some(4096));
        assert_eq!(config.http.download_rate_window, Duration::from_secs(60));
        let config = Config::from_source(&source(&[
            (ENV_DOWNLOAD_MIN_RATE, "off"),
            (ENV_BODY_TIMEOUT, "2s"),
        ]))
        .unwrap();
        assert_eq!(config.http.download_min_rate, None);
        assert_eq!(config.http.body_timeout, Duration::from_secs(2));
        for (value, rate) in [("512", 512), ("512/s", 512), ("1MiB/s", 1 << 20)] {
            let config = Config::from_source(&source(&[(ENV_DOWNLOAD_MIN_RATE, value)])).unwrap();
            assert_eq!(config.http.download_min_rate, Some(rate), "{value}");
        }
        for (name, value) in [
            (ENV_DOWNLOAD_MIN_RATE, "0"),
            (ENV_DOWNLOAD_MIN_RATE, "4 kB/s"),
            (ENV_BODY_TIMEOUT, "0s"),
            (ENV_MAX_CONNECTIONS_PER_IP, "0"),
            (ENV_MAX_DOWNLOADS, "none"),
            (ENV_MAX_DOWNLOADS_PER_IP, "0"),
            (ENV_DOWNLOAD_RATE_WINDOW, "60"),
        ] {
            let err = Config::from_source(&source(&[(name, value)])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let config = Config::from_source(&source(&[(
            ENV_PUBLIC_URL,
            "https://docs.example.com/get/",
        )]))
        .unwrap();
        assert_eq!(config.public_url, "https://docs.example.com/get");
    }

    #[test]
    fn secret_debug_shows_no_bytes() {
        let secret = Secret::new(b"super-secret-value".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret(<18 bytes>)");
    }
}
