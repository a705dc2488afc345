//! The owner's webhook: one signed JSON `POST` to `DOCGATE_OWNER_WEBHOOK_URL` per completed
//! download.
//!
//! ```text
//! POST /hooks/docgate HTTP/1.1
//! Content-Type: application/json
//! User-Agent: docgate/0.1.0
//! Docgate-Event-Id: 8Dq0yJ3h2mW1tq1dXwGq7l7R
//! Docgate-Signature: t=1795530725,v1=5f0c…(64 hex digits)
//!
//! {"event":"document.downloaded","id":"8Dq0yJ3h2mW1tq1dXwGq7l7R","document":"resume",
//!  "title":"Jane Doe's resume","email":"visitor@example.org",
//!  "downloaded_at":"2026-11-24T14:32:05Z","client_ip":"192.0.2.7","jti":"RFh7c-qE3xpy8Mq1eLNCUskc"}
//! ```
//!
//! `v1` is the hex HMAC-SHA256, keyed with `DOCGATE_OWNER_WEBHOOK_SECRET`, of `"<t>.<body>"`: the
//! timestamp, a dot, and the body's exact bytes (the same scheme as Stripe's). `t` is when this
//! attempt was signed, so a receiver refuses old timestamps (replays) and compares signatures in
//! constant time; the event id is the same on every retry, so it drops repeats. `email` is `null`
//! when no address was kept for the link.
//!
//! An answer `2xx` is delivered. `5xx`, `408`, `429`, a timeout (connect 5 s, the whole request
//! 10 s) or a connection error is retried; any other `4xx`, and a `3xx` (redirects are never
//! followed), will not get better by retrying and is given up (a dead letter). The client is
//! hyper-util's, over rustls with the Web PKI roots, HTTP/1.1 only. Neither the URL (it may hold
//! a token) nor the secret is ever logged.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;

use super::Download;
use crate::config::WebhookConfig;
use crate::secret::Secret;
use crate::units::unix_now;

/// The event every notice reports.
pub const EVENT: &str = "document.downloaded";
/// How long connecting (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one whole request may take, up to the answer's status.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The signature header.
pub const SIGNATURE_HEADER: &str = "docgate-signature";
/// The event id header.
pub const EVENT_ID_HEADER: &str = "docgate-event-id";

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The receiver answered, but not `2xx`.
    #[error("the webhook answered HTTP {0}")]
    Status(u16),
    #[error("the webhook did not answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    /// No answer: DNS, connection, TLS or protocol failure. Shown with its causes: hyper-util's
    /// own text is only "client error (Connect)".
    #[error("the webhook could not be reached: {}", causes(.0.as_ref()))]
    Unreachable(#[source] BoxError),
    /// `docgate check`: no TCP connection within [`CONNECT_TIMEOUT`].
    #[error("the webhook could not be reached: no connection within {}s", CONNECT_TIMEOUT.as_secs())]
    NoConnection,
    /// The client could not be set up, or the request not built.
    #[error("the webhook request could not be made: {0}")]
    Setup(#[source] BoxError),
    /// The URL names no host.
    #[error("the webhook request could not be made: the URL has no host")]
    NoHost,
}

/// A cause of any kind.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl WebhookError {
    /// True when retrying cannot help: a `3xx` or a `4xx` other than `408` and `429`, or a
    /// request that cannot be built.
    pub fn is_permanent(&self) -> bool {
        match self {
            WebhookError::Status(status) => {
                (300..500).contains(status) && !matches!(status, 408 | 429)
            }
            WebhookError::Setup(_) | WebhookError::NoHost => true,
            WebhookError::Timeout | WebhookError::Unreachable(_) | WebhookError::NoConnection => {
                false
            }
        }
    }
}

/// The body of a notice.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    event: &'static str,
    id: &'a str,
    document: &'a str,
    title: &'a str,
    email: Option<&'a str>,
    downloaded_at: String,
    client_ip: String,
    jti: &'a str,
}

/// The JSON body for `download`.
pub fn body(download: &Download) -> Vec<u8> {
    let downloaded_at = crate::units::rfc3339(download.downloaded_at).unwrap_or_default();
    let payload = Payload {
        event: EVENT,
        id: &download.event_id,
        document: &download.doc,
        title: &download.title,
        email: download.email.as_deref(),
        downloaded_at,
        client_ip: download.client_ip.to_string(),
        jti: download.jti.as_str(),
    };
    // A struct of strings always serialises.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let hex = hex::encode(tag.as_ref());
    format!("t={timestamp},v1={hex}")
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The configured webhook and its HTTP client (connections are pooled and reused).
#[derive(Clone)]
pub struct Webhook {
    url: Uri,
    secret: Secret,
    client: HttpsClient,
}

impl Webhook {
    /// A client for `config`'s URL: rustls with the Web PKI roots, the connect timeout set,
    /// HTTP/1.1.
    pub fn new(config: &WebhookConfig) -> Result<Self, WebhookError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::Setup(Box::new(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            url: config.url.clone(),
            secret: config.secret.clone(),
            client,
        })
    }

    /// The receiver's host, for `docgate check` (the path and query may hold a token).
    pub fn host(&self) -> &str {
        self.url.host().unwrap_or_default()
    }

    /// One attempt: signs the body now and posts it. `Ok` on a `2xx` answer.
    pub async fn deliver(&self, download: &Download) -> Result<(), WebhookError> {
        self.post(&download.event_id, body(download)).await
    }

    /// One attempt at an event whose JSON `body` is written whole ([`crate::notify::Event`]),
    /// signed and posted as a download's notice is.
    pub async fn deliver_event(&self, event: &crate::notify::Event) -> Result<(), WebhookError> {
        self.post(event.id.as_str(), event.body.clone().into_bytes())
            .await
    }

    async fn post(&self, event_id: &str, body: Vec<u8>) -> Result<(), WebhookError> {
        let signature = signature(self.secret.expose(), unix_now(), &body);
        let request = Request::post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("docgate/", env!("CARGO_PKG_VERSION")),
            )
            .header(EVENT_ID_HEADER, event_id)
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| WebhookError::Setup(Box::new(e)))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| WebhookError::Timeout)?
            .map_err(|e| WebhookError::Unreachable(Box::new(e)))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(())
        } else {
            Err(WebhookError::Status(status))
        }
    }
}

/// What `docgate check` does: resolves the webhook's host and opens a TCP connection to it
/// within [`CONNECT_TIMEOUT`], without sending anything (a request would be an event).
pub async fn probe(url: &Uri) -> Result<(), WebhookError> {
    let host = url.host().ok_or(WebhookError::NoHost)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(WebhookError::Unreachable(Box::new(e))),
        Err(_) => Err(WebhookError::NoConnection),
    }
}

/// An error and its causes, joined: hyper-util's own text is only "client error (Connect)".
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn download() -> Download {
        Download {
            event_id: "evt-1".to_owned(),
            jti: "RFh7c-qE3xpy8Mq1eLNCUskc".into(),
            doc: "resume".to_owned(),
            title: "Jane \"JD\" Doe's resume".to_owned(),
            email: Some("visitor@example.org".to_owned()),
            downloaded_at: 1_795_530_725,
            client_ip: IpAddr::from([192, 0, 2, 7]),
        }
    }

    #[test]
    fn the_body_has_every_field() {
        let json: serde_json::Value = serde_json::from_slice(&body(&download())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event": "document.downloaded",
                "id": "evt-1",
                "document": "resume",
                "title": "Jane \"JD\" Doe's resume",
                "email": "visitor@example.org",
                "downloaded_at": "2026-11-24T14:32:05Z",
                "client_ip": "192.0.2.7",
                "jti": "RFh7c-qE3xpy8Mq1eLNCUskc",
            })
        );
        let unknown = Download {
            email: None,
            ..download()
        };
        let json: serde_json::Value = serde_json::from_slice(&body(&unknown)).unwrap();
        assert_eq!(json["email"], serde_json::Value::Null);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"Jefe", b'1795530725.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"Jefe", 1_795_530_725, br#"{"a":1}"#),
            "t=1795530725,v1=efe29bdfa5fcdea75333f5326bf3a87a24b92e3a0b4deae991ee850c8783bfb3"
        );
    }

    #[test]
    fn only_failures_that_retrying_may_cure_are_transient() {
        for status in [500, 502, 503, 504, 408, 429] {
            assert!(!WebhookError::Status(status).is_permanent(), "{status}");
        }
        for status in [301, 302, 307, 400, 401, 403, 404, 410, 422] {
            assert!(WebhookError::Status(status).is_permanent(), "{status}");
        }
        assert!(!WebhookError::Timeout.is_permanent());
        assert!(
            !WebhookError::Unreachable(Box::new(std::io::Error::other("refused"))).is_permanent()
        );
        assert!(!WebhookError::NoConnection.is_permanent());
    }
}
