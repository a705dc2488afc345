//! The production backends: Redis, the S3 bucket, SMTP. Each is `None` when unset, and the
//! embedded implementation serves instead.

use super::env::{
    ENV_AWS_ACCESS_KEY_ID, ENV_AWS_REGION, ENV_AWS_SECRET_ACCESS_KEY, ENV_AWS_SESSION_TOKEN,
    ENV_REDIS_PREFIX, ENV_REDIS_URL, ENV_S3_BUCKET, ENV_S3_ENDPOINT, ENV_SMTP_URL, Reader,
};
use super::{ConfigError, Source};
use crate::secret::Secret;

/// The Redis token store, rate limiter and mail queue.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL; may hold a password, so it is a secret.
    pub url: Secret,
    /// Prefix of every key docgate writes.
    pub prefix: String,
}

impl RedisConfig {
    /// `DOCGATE_REDIS_URL` and `DOCGATE_REDIS_PREFIX`; `None`: the embedded store.
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Option<Self>, ConfigError> {
        let Some(url) = env.secret(ENV_REDIS_URL)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(url.expose()).into_owned();
        if !(text.starts_with("redis://") || text.starts_with("rediss://"))
            || redis::Client::open(text.as_str()).is_err()
        {
            return Err(ConfigError::hidden(
                ENV_REDIS_URL,
                "expected a redis:// or rediss:// URL",
            ));
        }
        Ok(Some(RedisConfig {
            url,
            prefix: env.parse(ENV_REDIS_PREFIX, "docgate:", parse_prefix)?,
        }))
    }
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

impl S3Config {
    /// `DOCGATE_S3_BUCKET`, its endpoint and the AWS variables; `None`: the documents directory.
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Option<Self>, ConfigError> {
        let Some(bucket) = env.get(ENV_S3_BUCKET) else {
            if let Some(endpoint) = env.get(ENV_S3_ENDPOINT) {
                return Err(ConfigError::value(
                    ENV_S3_ENDPOINT,
                    &endpoint,
                    "needs DOCGATE_S3_BUCKET as well",
                ));
            }
            return Ok(None);
        };
        Ok(Some(S3Config {
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
        }))
    }
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

impl SmtpConfig {
    /// `DOCGATE_SMTP_URL`; `None`: mails are `.eml` files in the outbox directory.
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Option<Self>, ConfigError> {
        let Some(url) = env.secret(ENV_SMTP_URL)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(url.expose()).into_owned();
        if !(text.starts_with("smtp://") || text.starts_with("smtps://")) {
            return Err(ConfigError::hidden(
                ENV_SMTP_URL,
                "expected an smtp:// or smtps:// URL",
            ));
        }
        Ok(Some(SmtpConfig { url }))
    }
}

/// A Redis key prefix: up to 64 characters, no spaces or control characters.
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

/// An S3-compatible endpoint, without a trailing slash.
fn parse_endpoint(value: &str) -> Result<String, &'static str> {
    let uri: http::Uri = value
        .parse()
        .map_err(|_| "expected an http:// or https:// URL")?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(value.trim_end_matches('/').to_owned()),
        _ => Err("expected an http:// or https:// URL"),
    }
}
