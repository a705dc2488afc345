//! Traffic through a failover and through a crash: three real `docgate` processes (started as
//! in [`crate::replicas`]) on a Sentinel setup or a 3-master Redis Cluster, driven over real HTTP
//! while the primary fails over. A planned failover gets successes or clean 503s, spends no link
//! by a failure and loses no mail. When the primary is killed outright (`SIGKILL`, its replica
//! lagging), every answer is still a whole document, a cut transfer or a clean 503, and no link is
//! served again in full but one whose completion the replica never had; with
//! `DOCGATE_REDIS_WAIT_REPLICAS`, none.

mod failover;
mod kill;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::replicas::ask;
use crate::support::*;

/// Bound on waiting out the lease of a claim whose replica lost Redis (`LEASE_TTL`, 10 s).
const LEASE_LAPSED: Duration = Duration::from_secs(30);

/// What one download attempt during a failover got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Attempt {
    /// 200 and every byte of the `Content-Length`.
    Complete,
    /// 200 cut short of its `Content-Length`: not presented as complete.
    Cut,
    /// A clean 503: no document, no bytes.
    Refused,
}

/// One GET of `url`, read to its end, classified; any other answer fails the test.
async fn attempt(client: &reqwest::Client, url: &str) -> Attempt {
    let response = match client.get(url).send().await {
        Ok(response) => response,
        Err(e) => panic!("the connection failed before an answer: {e}"),
    };
    match response.status().as_u16() {
        200 => {
            let expected = response.content_length().expect("a Content-Length") as usize;
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(_) => return Attempt::Cut,
                }
            }
            if body.len() < expected {
                return Attempt::Cut;
            }
            assert_eq!(body.len(), expected);
            assert_eq!(sha256(&body), sha256(&content(1, RESUME_LEN)));
            Attempt::Complete
        }
        503 => {
            assert!(response.headers().get("content-disposition").is_none());
            let body = response.bytes().await.unwrap();
            assert!(body.len() < 1024, "an error, not the document");
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "service_unavailable");
            Attempt::Refused
        }
        other => panic!("{url}: {other} during the failover"),
    }
}

/// One download of the traffic loop: what it got, and when it started and ended.
#[derive(Debug, Clone, Copy)]
struct Timed {
    outcome: Attempt,
    started: Instant,
    ended: Instant,
}

/// What the traffic loop saw: each link request's address and status, each download's outcome
/// and when it ran.
#[derive(Default, Debug)]
struct Seen {
    requests: Vec<(String, u16)>,
    downloads: BTreeMap<String, Timed>,
}

/// Link requests and downloads (of `tokens`, each once) against `bases` in turn, `pace` apart,
/// until `stop`, bounded: every link request answers 202 or 503, every download is classified by
/// [`attempt`].
async fn traffic(
    bases: Vec<String>,
    tokens: Vec<String>,
    stop: Arc<AtomicBool>,
    pace: Duration,
) -> Seen {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seen = Seen::default();
    let mut tokens = tokens.into_iter();
    for i in 0..2000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let base = &bases[i % bases.len()];
        let email = format!("during{i}@example.org");
        let status = ask(&client, base, &email, "resume").await;
        assert!(
            matches!(status, 202 | 503),
            "a link request answered {status}"
        );
        seen.requests.push((email, status));
        if let Some(token) = tokens.next() {
            let started = Instant::now();
            let outcome = attempt(&client, &format!("{base}/d/{token}")).await;
            let ended = Instant::now();
            seen.downloads.insert(
                token,
                Timed {
                    outcome,
                    started,
                    ended,
                },
            );
        }
        tokio::time::sleep(pace).await;
    }
    seen
}

fn replication(port: u16) -> String {
    crate::support::redis::info(port, "replication")
}

/// Asks for `document` for `{who}0@example.org` to `{who}{n-1}@example.org`, across the
/// replicas in turn; each request is answered 202.
async fn ask_in_turn(
    client: &reqwest::Client,
    replicas: &[crate::replicas::Replica],
    who: &str,
    n: usize,
    document: &str,
) {
    for i in 0..n {
        let email = format!("{who}{i}@example.org");
        let replica = &replicas[i % replicas.len()].base;
        assert_eq!(ask(client, replica, &email, document).await, 202, "{email}");
    }
}
