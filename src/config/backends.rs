//! The production backends: Redis (standalone, Cluster or Sentinel), the S3 bucket, SMTP. Each is `None` when unset, and the
//! embedded implementation serves instead.

use redis::IntoConnectionInfo;

use super::env::{
    ENV_AWS_ACCESS_KEY_ID, ENV_AWS_REGION, ENV_AWS_SECRET_ACCESS_KEY, ENV_AWS_SESSION_TOKEN,
    ENV_REDIS_CA_FILE, ENV_REDIS_CLUSTER_URLS, ENV_REDIS_PREFIX, ENV_REDIS_SENTINEL_MASTER,
    ENV_REDIS_SENTINEL_URLS, ENV_REDIS_URL, ENV_REDIS_WAIT_REPLICAS, ENV_REDIS_WAIT_TIMEOUT,
    ENV_S3_BUCKET, ENV_S3_ENDPOINT, ENV_S3_RECEIVE_BUFFER_BYTES, ENV_SMTP_URL, Reader, parse_count,
};
use super::{ConfigError, Source};
use crate::secret::Secret;

/// The Redis token store, rate limiter, request log and mail queue: one of three topologies.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Where Redis is: one node, a cluster's seed nodes, or the Sentinels of a primary.
    pub topology: Topology,
    /// Prefix of every key docgate writes.
    pub prefix: String,
    /// PEM of the CA that signs the servers' certificates (`DOCGATE_REDIS_CA_FILE`), for
    /// `rediss://`; `None`: the Web PKI roots.
    pub ca: Option<Vec<u8>>,
    /// `DOCGATE_REDIS_WAIT_REPLICAS` and `DOCGATE_REDIS_WAIT_TIMEOUT`: how many replicas must
    /// acknowledge a completed download before its last byte is released; `None`: off.
    pub wait: Option<WaitReplicas>,
}

/// A completed download is durable on `replicas` replicas (`WAIT`) within `timeout`, or it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitReplicas {
    /// At least 1.
    pub replicas: u32,
    /// How long `WAIT` may take; below the commands' response timeout.
    pub timeout: std::time::Duration,
}

/// The most replicas `DOCGATE_REDIS_WAIT_REPLICAS` may ask for.
pub const MAX_WAIT_REPLICAS: u32 = 16;
/// The longest `DOCGATE_REDIS_WAIT_TIMEOUT`: `WAIT` must answer within the response timeout.
pub const MAX_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The three ways docgate reaches Redis. Every URL may hold a password, so each is a secret.
#[derive(Debug, Clone)]
pub enum Topology {
    /// `DOCGATE_REDIS_URL`: one standalone node (or a managed endpoint that hides its failover).
    Standalone { url: Secret },
    /// `DOCGATE_REDIS_CLUSTER_URLS`: seed nodes of a Redis Cluster; the rest is discovered.
    Cluster { urls: Vec<Secret> },
    /// `DOCGATE_REDIS_SENTINEL_URLS` and `DOCGATE_REDIS_SENTINEL_MASTER`: the Sentinels, and the
    /// name of the primary they monitor. Their scheme and credentials apply to the primary too.
    Sentinel { urls: Vec<Secret>, master: String },
}

impl Topology {
    /// The variable that configured it, for error lines.
    pub fn variable(&self) -> &'static str {
        match self {
            Topology::Standalone { .. } => ENV_REDIS_URL,
            Topology::Cluster { .. } => ENV_REDIS_CLUSTER_URLS,
            Topology::Sentinel { .. } => ENV_REDIS_SENTINEL_URLS,
        }
    }

    /// Every configured URL, as text.
    pub fn urls(&self) -> Vec<String> {
        let text = |url: &Secret| String::from_utf8_lossy(url.expose()).into_owned();
        match self {
            Topology::Standalone { url } => vec![text(url)],
            Topology::Cluster { urls } | Topology::Sentinel { urls, .. } => {
                urls.iter().map(text).collect()
            }
        }
    }
}

impl RedisConfig {
    /// A standalone Redis at `url` (tests and tools build one directly).
    pub fn standalone(url: &str, prefix: &str) -> Self {
        Self {
            topology: Topology::Standalone {
                url: Secret::new(url.as_bytes().to_vec()),
            },
            prefix: prefix.to_owned(),
            ca: None,
            wait: None,
        }
    }

    /// `DOCGATE_REDIS_URL`, or `DOCGATE_REDIS_CLUSTER_URLS`, or `DOCGATE_REDIS_SENTINEL_URLS` with
    /// `DOCGATE_REDIS_SENTINEL_MASTER` (at most one of the three), `DOCGATE_REDIS_CA_FILE` and
    /// `DOCGATE_REDIS_PREFIX`; `None`: the embedded store.
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Option<Self>, ConfigError> {
        let standalone = env.secret(ENV_REDIS_URL)?;
        let cluster = env.secret(ENV_REDIS_CLUSTER_URLS)?;
        let sentinel = env.secret(ENV_REDIS_SENTINEL_URLS)?;
        let master = env.get(ENV_REDIS_SENTINEL_MASTER);
        let set: Vec<&str> = [
            (ENV_REDIS_URL, standalone.is_some()),
            (ENV_REDIS_CLUSTER_URLS, cluster.is_some()),
            (ENV_REDIS_SENTINEL_URLS, sentinel.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if let [first, second, ..] = set.as_slice() {
            return Err(ConfigError::hidden(
                second,
                format!("set only one of {first} and {second}: they name different topologies"),
            ));
        }
        if sentinel.is_none()
            && let Some(master) = &master
        {
            return Err(ConfigError::value(
                ENV_REDIS_SENTINEL_MASTER,
                master,
                "needs DOCGATE_REDIS_SENTINEL_URLS as well",
            ));
        }
        let topology = match (standalone, cluster, sentinel) {
            (Some(url), _, _) => {
                let text = String::from_utf8_lossy(url.expose()).into_owned();
                node_url(&text).map_err(|e| ConfigError::hidden(ENV_REDIS_URL, e))?;
                Topology::Standalone { url }
            }
            (_, Some(list), _) => {
                let urls =
                    url_list(&list).map_err(|e| ConfigError::hidden(ENV_REDIS_CLUSTER_URLS, e))?;
                for url in &urls {
                    let info = node_url(&String::from_utf8_lossy(url.expose()))
                        .map_err(|e| ConfigError::hidden(ENV_REDIS_CLUSTER_URLS, e))?;
                    if info.redis_settings().db() != 0 {
                        return Err(ConfigError::hidden(
                            ENV_REDIS_CLUSTER_URLS,
                            "a Redis Cluster has only database 0: leave the path out",
                        ));
                    }
                }
                Topology::Cluster { urls }
            }
            (_, _, Some(list)) => {
                let urls =
                    url_list(&list).map_err(|e| ConfigError::hidden(ENV_REDIS_SENTINEL_URLS, e))?;
                let Some(master) = master else {
                    return Err(ConfigError::hidden(
                        ENV_REDIS_SENTINEL_MASTER,
                        "is required with DOCGATE_REDIS_SENTINEL_URLS: the name the Sentinels monitor",
                    ));
                };
                if master.is_empty()
                    || master.len() > 128
                    || master.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(ConfigError::value(
                        ENV_REDIS_SENTINEL_MASTER,
                        &master,
                        "expected the master's name as the Sentinels know it: up to 128 characters without spaces",
                    ));
                }
                Topology::Sentinel { urls, master }
            }
            (None, None, None) => {
                for name in [
                    ENV_REDIS_CA_FILE,
                    ENV_REDIS_WAIT_REPLICAS,
                    ENV_REDIS_WAIT_TIMEOUT,
                ] {
                    if let Some(value) = env.get(name) {
                        return Err(ConfigError::value(
                            name,
                            &value,
                            "needs DOCGATE_REDIS_URL, DOCGATE_REDIS_CLUSTER_URLS or DOCGATE_REDIS_SENTINEL_URLS as well",
                        ));
                    }
                }
                return Ok(None);
            }
        };
        let urls = topology.urls();
        // One scheme and one set of credentials for every node: the crate (and docgate) open
        // every connection the same way.
        let infos: Vec<redis::ConnectionInfo> = urls
            .iter()
            .filter_map(|u| u.as_str().into_connection_info().ok())
            .collect();
        let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
        if tls != 0 && tls != urls.len() {
            return Err(ConfigError::hidden(
                topology.variable(),
                "mixes redis:// and rediss:// URLs: use one scheme for every node",
            ));
        }
        if infos.windows(2).any(|w| {
            w[0].redis_settings().username() != w[1].redis_settings().username()
                || w[0].redis_settings().password() != w[1].redis_settings().password()
                || w[0].redis_settings().db() != w[1].redis_settings().db()
        }) {
            return Err(ConfigError::hidden(
                topology.variable(),
                "every URL must carry the same user, password and database",
            ));
        }
        let ca = match env.get(ENV_REDIS_CA_FILE) {
            None => None,
            Some(path) => {
                if tls == 0 {
                    return Err(ConfigError::value(
                        ENV_REDIS_CA_FILE,
                        &path,
                        format!(
                            "applies to rediss:// URLs only, and {} has none",
                            topology.variable()
                        ),
                    ));
                }
                Some(ca_file(&path).map_err(|e| ConfigError::value(ENV_REDIS_CA_FILE, &path, e))?)
            }
        };
        Ok(Some(RedisConfig {
            topology,
            prefix: env.parse(ENV_REDIS_PREFIX, "docgate:", parse_prefix)?,
            ca,
            wait: wait_replicas(env)?,
        }))
    }
}

/// `DOCGATE_REDIS_WAIT_REPLICAS` (0 = off) and `DOCGATE_REDIS_WAIT_TIMEOUT`.
fn wait_replicas<S: Source>(env: &Reader<'_, S>) -> Result<Option<WaitReplicas>, ConfigError> {
    let replicas = env.parse(ENV_REDIS_WAIT_REPLICAS, "0", |text| {
        match text.parse::<u32>() {
            Ok(n) if n <= MAX_WAIT_REPLICAS => Ok(n),
            _ => Err(format!(
                "expected a number of replicas from 0 (off) to {MAX_WAIT_REPLICAS}"
            )),
        }
    })?;
    let timeout = env.parse(ENV_REDIS_WAIT_TIMEOUT, "250ms", parse_wait_timeout)?;
    Ok((replicas > 0).then_some(WaitReplicas { replicas, timeout }))
}

/// `250ms` or `1s`: from 1 ms to [`MAX_WAIT_TIMEOUT`].
fn parse_wait_timeout(text: &str) -> Result<std::time::Duration, String> {
    let wrong = || "expected a duration from 1ms to 1s, such as 250ms".to_owned();
    let timeout = match text.strip_suffix("ms") {
        Some(ms) => std::time::Duration::from_millis(ms.parse().map_err(|_| wrong())?),
        None => crate::units::parse_duration(text).map_err(|_| wrong())?,
    };
    if timeout.is_zero() || timeout > MAX_WAIT_TIMEOUT {
        return Err(wrong());
    }
    Ok(timeout)
}

/// One node's URL: `redis://` or `rediss://`, as the `redis` crate reads it.
fn node_url(text: &str) -> Result<redis::ConnectionInfo, &'static str> {
    if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
        return Err("expected a redis:// or rediss:// URL");
    }
    text.into_connection_info()
        .map_err(|_| "expected a redis:// or rediss:// URL")
}

/// Comma-separated URLs (spaces around them ignored), at least one, each a node's URL.
fn url_list(list: &Secret) -> Result<Vec<Secret>, String> {
    let text = String::from_utf8_lossy(list.expose()).into_owned();
    let mut urls = Vec::new();
    for (i, part) in text.split(',').map(str::trim).enumerate() {
        if part.is_empty() {
            return Err(format!(
                "URL {} of the list is empty: expected comma-separated redis:// or rediss:// URLs",
                i + 1
            ));
        }
        node_url(part).map_err(|e| format!("URL {} of the list: {e}", i + 1))?;
        urls.push(Secret::new(part.as_bytes().to_vec()));
    }
    Ok(urls)
}

/// A PEM file of one or more CA certificates, read and parsed once.
fn ca_file(path: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("expected PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err("holds no usable CA certificate".to_owned());
    }
    Ok(pem)
}

/// The private S3 bucket documents are served from.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// An S3-compatible endpoint (then path-style addressing); unset for AWS.
    pub endpoint: Option<String>,
    /// `AWS_REGION`; unset: the AWS chain decides (`us-east-1` with a custom endpoint).
    pub region: Option<String>,
    /// The kernel receive buffer asked for on each connection to S3, in bytes; 0: the kernel's
    /// autotuning (`objects::s3::http::ReceiveBuffer`).
    pub receive_buffer: usize,
    /// Static keys when `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set; otherwise the
    /// standard AWS credential chain (profile, web identity / IRSA, instance metadata) applies.
    pub credentials: Option<AwsKeys>,
}

impl S3Config {
    /// `DOCGATE_S3_BUCKET`, its endpoint and the AWS variables; `None`: the documents directory.
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Option<Self>, ConfigError> {
        let Some(bucket) = env.get(ENV_S3_BUCKET) else {
            for name in [ENV_S3_ENDPOINT, ENV_S3_RECEIVE_BUFFER_BYTES] {
                if let Some(value) = env.get(name) {
                    return Err(ConfigError::value(
                        name,
                        &value,
                        "needs DOCGATE_S3_BUCKET as well",
                    ));
                }
            }
            return Ok(None);
        };
        Ok(Some(S3Config {
            bucket: parse_bucket(&bucket)
                .map_err(|e| ConfigError::value(ENV_S3_BUCKET, &bucket, e))?,
            endpoint: env.optional(ENV_S3_ENDPOINT, parse_endpoint)?,
            region: env.get(ENV_AWS_REGION),
            receive_buffer: env.parse(
                ENV_S3_RECEIVE_BUFFER_BYTES,
                &S3_RECEIVE_BUFFER_DEFAULT.to_string(),
                parse_receive_buffer,
            )?,
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

/// The receive buffer asked for on each S3 connection unless `DOCGATE_S3_RECEIVE_BUFFER_BYTES` says
/// otherwise: 4 MiB, so a document of a few MiB comes from the store in one go
/// (`docs/benchmarks.md`, "The S3 connections' receive buffer").
pub const S3_RECEIVE_BUFFER_DEFAULT: usize = 4 << 20;

/// 0 (the kernel's autotuning), or from 64 KiB (the widest read from S3) to 64 MiB.
fn parse_receive_buffer(value: &str) -> Result<usize, String> {
    match parse_count(value, 0, 64 << 20) {
        Ok(bytes) if bytes == 0 || bytes >= 64 << 10 => Ok(bytes),
        _ => Err(
            "expected 0 (the kernel sizes it) or a number of bytes from 65536 to 67108864"
                .to_owned(),
        ),
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
