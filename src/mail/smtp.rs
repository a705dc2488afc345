//! SMTP delivery: lettre's async transport built from `DOCGATE_SMTP_URL`, the classification of
//! its errors into permanent and transient, and the connection check behind `docgate check`.
//!
//! The URL is lettre's connection URL, with one addition (`tls=none`):
//!
//! | URL | connection |
//! | --- | --- |
//! | `smtps://user:pass@host` | implicit TLS from the first byte (default port 465) |
//! | `smtp://user:pass@host?tls=required` | STARTTLS, refused if the server does not offer it (port 587) |
//! | `smtp://host?tls=opportunistic` | STARTTLS when offered, plain otherwise (port 587) |
//! | `smtp://host` or `smtp://host?tls=none` | plain, for a relay on localhost or a private network (port 25) |
//!
//! User and password are percent-decoded; a path (`smtp://host/ehlo.example.com`) sets the name
//! sent in `EHLO`. TLS certificates are checked against the Web PKI roots (rustls).
//!
//! Connecting and every SMTP command time out after [`SMTP_TIMEOUT`]. The transport keeps a small
//! pool of connections, each tested with `NOOP` before reuse, so a server that restarted is
//! reconnected to transparently.

use std::time::Duration;

use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use super::{DeliveryError, MailError};
use crate::config::SmtpConfig;

/// Timeout of the TCP/TLS connection and of each SMTP command.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long `docgate check` waits for the server to answer `NOOP`, connection included.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// lettre's async SMTP transport on Tokio.
pub type SmtpTransport = AsyncSmtpTransport<Tokio1Executor>;

/// What a failed delivery attempt means for the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server refused the message for good (a 5xx reply): trying again will not help.
    Permanent,
    /// Anything else: a 4xx reply, a refused or dropped connection, a timeout, a TLS or
    /// authentication problem, an unreadable reply. Worth retrying later.
    Transient,
}

/// The transport for `config`'s URL. Must be called within a Tokio runtime: the connection pool
/// starts its cleanup task there.
pub fn transport(config: &SmtpConfig) -> Result<SmtpTransport, MailError> {
    let url =
        std::str::from_utf8(config.url.expose()).map_err(|_| DeliveryError::SmtpUrlNotUtf8)?;
    let url = lettre_url(url);
    // lettre's errors about a URL name its scheme or TLS mode, never its credentials.
    let builder = SmtpTransport::from_url(&url).map_err(DeliveryError::BadSmtpUrl)?;
    Ok(builder.timeout(Some(SMTP_TIMEOUT)).build())
}

/// The URL as lettre reads it: `tls=none` means what lettre spells as no `tls` parameter.
fn lettre_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && *pair != "tls=none")
        .collect();
    if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// Whether a failed attempt is worth retrying, by lettre's reading of the reply code: only a 5xx
/// reply is permanent.
pub fn classify(error: &SmtpError) -> Failure {
    if error.is_permanent() {
        Failure::Permanent
    } else {
        Failure::Transient
    }
}

/// A description of `error` that is safe to log: for a reply, its code only, since servers echo
/// the recipient's address in reply texts; otherwise the kind of failure.
pub fn describe(error: &SmtpError) -> String {
    if let Some(code) = error.status() {
        let kind = if error.is_permanent() {
            "permanent"
        } else {
            "transient"
        };
        return format!("{kind} SMTP reply {code}");
    }
    if error.is_timeout() {
        return "SMTP timeout".to_owned();
    }
    if error.is_tls() {
        return format!("SMTP TLS error: {error}");
    }
    // Connection, network, client and parse errors carry I/O and protocol details only.
    format!("SMTP error: {error}")
}

/// Connects (TLS and authentication included) and sends `NOOP`: what `docgate check` does.
pub async fn test_connection(transport: &SmtpTransport) -> Result<(), MailError> {
    match tokio::time::timeout(CHECK_TIMEOUT, transport.test_connection()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(DeliveryError::NoNoop.into()),
        Ok(Err(e)) => Err(DeliveryError::smtp(e).into()),
        Err(_) => Err(DeliveryError::NoAnswer(CHECK_TIMEOUT.as_secs()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn config(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: Secret::new(url.as_bytes().to_vec()),
        }
    }

    #[test]
    fn tls_none_is_lettre_s_plain_url() {
        assert_eq!(lettre_url("smtp://relay?tls=none"), "smtp://relay");
        assert_eq!(
            lettre_url("smtp://relay:2525/ehlo?tls=none&x=1"),
            "smtp://relay:2525/ehlo?x=1"
        );
        assert_eq!(
            lettre_url("smtp://u:p@mail:587?tls=required"),
            "smtp://u:p@mail:587?tls=required"
        );
        assert_eq!(lettre_url("smtps://mail"), "smtps://mail");
    }

    #[tokio::test]
    async fn every_documented_url_builds_a_transport() {
        for url in [
            "smtps://user:pass@mail.example.com",
            "smtps://user:p%40ss@mail.example.com:2465",
            "smtp://user:pass@mail.example.com:587?tls=required",
            "smtp://mail.example.com?tls=opportunistic",
            "smtp://127.0.0.1:25",
            "smtp://127.0.0.1:2525?tls=none",
            "smtp://relay/docs.example.com",
        ] {
            assert!(transport(&config(url)).is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn bad_urls_are_refused_without_showing_credentials() {
        for url in [
            "smtp://user:hunter2@mail.example.com?tls=sometimes",
            "imap://user:hunter2@mail.example.com",
            "smtp://user:hunter2@",
        ] {
            let Err(err) = transport(&config(url)) else {
                panic!("{url} accepted");
            };
            let text = err.to_string();
            assert!(text.contains("bad SMTP URL"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
