//! What clients may cost: the per-client rate limits, and the limits on one connection (time,
//! headers, streams, downloads at once, the slowest download).

use std::time::Duration;

use super::env::{
    ENV_BODY_TIMEOUT, ENV_DOWNLOAD_MIN_RATE, ENV_DOWNLOAD_RATE_WINDOW, ENV_H2_MAX_STREAMS, ENV_H2C,
    ENV_HEADER_READ_TIMEOUT, ENV_IDLE_TIMEOUT, ENV_LIMIT_DOWNLOAD_PER_IP, ENV_LIMIT_MAIL,
    ENV_LIMIT_REQUEST_PER_DOMAIN, ENV_LIMIT_REQUEST_PER_EMAIL, ENV_LIMIT_REQUEST_PER_IP,
    ENV_MAX_CONNECTIONS, ENV_MAX_CONNECTIONS_PER_IP, ENV_MAX_DOWNLOADS, ENV_MAX_DOWNLOADS_PER_IP,
    ENV_MAX_HEADER_BYTES, ENV_MAX_HEADERS, ENV_WRITE_TIMEOUT, Reader, parse_count, parse_switch,
};
use super::{ConfigError, Source};
use crate::units::{Rate, parse_duration, parse_rate};

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

impl Limits {
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Self, ConfigError> {
        Ok(Limits {
            request_per_ip: env.parse(ENV_LIMIT_REQUEST_PER_IP, "30/h", parse_rate)?,
            request_per_email: env.parse(ENV_LIMIT_REQUEST_PER_EMAIL, "5/h", parse_rate)?,
            request_per_domain: env.parse(ENV_LIMIT_REQUEST_PER_DOMAIN, "30/h", parse_rate)?,
            download_per_ip: env.parse(ENV_LIMIT_DOWNLOAD_PER_IP, "60/m", parse_rate)?,
            mail: env.parse(ENV_LIMIT_MAIL, "120/m", parse_rate)?,
        })
    }
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

impl HttpLimits {
    pub(super) fn from_env<S: Source>(env: &Reader<'_, S>) -> Result<Self, ConfigError> {
        Ok(HttpLimits {
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
        })
    }
}

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
