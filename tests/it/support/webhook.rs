//! A webhook receiver per test: a hyper server on a free loopback port that records every request
//! (path, headers, body, arrival time), answers the statuses it was given in turn and then `200`,
//! and verifies docgate's signature with the shared secret.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use docgate::config::{Secret, WebhookConfig};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::now;

/// Signs the webhook's requests.
pub const HOOK_SECRET: &str = "hook-secret-0123456789abcdef0123456789";
/// A token in the webhook's URL, as receivers often use: it must never be logged.
pub const HOOK_TOKEN: &str = "hook-url-token-5f1c";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks `Docgate-Signature` against the body with the shared secret (aws-lc-rs's HMAC, not
    /// docgate's code) and that it was signed just now; returns its timestamp.
    pub fn verify(&self) -> u64 {
        let signature = self.header("docgate-signature");
        let (t, v1) = signature
            .split_once(',')
            .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
            .unwrap_or_else(|| panic!("malformed signature {signature:?}"));
        let tag: Vec<u8> = (0..v1.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
            .collect();
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(&self.body);
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, HOOK_SECRET.as_bytes());
        aws_lc_rs::hmac::verify(&key, &signed, &tag).expect("the signature verifies");
        let t: u64 = t.parse().unwrap();
        assert!(now().abs_diff(t) <= 30, "signed at {t}, now {}", now());
        t
    }
}

/// A webhook receiver answering `statuses` in turn, then `200`.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let statuses: Arc<Vec<u16>> = Arc::new(statuses.to_vec());
        let seen = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                let statuses = statuses.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    let statuses = statuses.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes().to_vec();
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(Received {
                                path_and_query: parts
                                    .uri
                                    .path_and_query()
                                    .map(ToString::to_string)
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                                at: Instant::now(),
                            });
                            seen.len()
                        };
                        let status = statuses.get(n - 1).copied().unwrap_or(200);
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"thanks")))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/hooks/docgate?token={HOOK_TOKEN}"),
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) for `n` requests.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{n} webhook requests never came; got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn config(&self) -> WebhookConfig {
        WebhookConfig {
            url: self.url.parse().unwrap(),
            secret: Secret::new(HOOK_SECRET.as_bytes().to_vec()),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
