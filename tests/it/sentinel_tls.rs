//! docgate on a Sentinel setup that speaks TLS only: the primary, its replica and the Sentinel
//! listen with `--tls-port` and `--port 0`, replicate over TLS, and present certificates of the
//! test's private CA. With `DOCGATE_REDIS_SENTINEL_URLS=rediss://...` and
//! `DOCGATE_REDIS_CA_FILE`, the real binary serves the whole journey and `docgate check` passes;
//! without the CA file nothing is exchanged.

use std::time::Duration;

use crate::replicas::{EnvOnly, ask, recipient, replicas};
use crate::support::redis::{SharedRedis, TlsSentinel};
use crate::support::smtp::SmtpSink;
use crate::support::*;

/// `docgate check` with the environment of `redis`: its exit code and output.
fn check(redis: &impl SharedRedis) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    let env = redis.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = cli(dir.path(), &env, &["check"]);
    (code, format!("{out}{err}"))
}

#[tokio::test]
async fn on_a_tls_only_sentinel_setup_docgate_serves_the_journey_with_the_ca_and_nothing_without() {
    let redis = TlsSentinel::start();
    let (code, out) = check(&redis);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("token store: ok"), "{out}");

    // The journey: link → mail → one whole download → 410.
    let sink = SmtpSink::start();
    let documents = tempfile::tempdir().unwrap();
    let served = replicas(&redis, &sink, documents.path(), 1, &[]).await;
    let client = reqwest::Client::new();
    let base = &served[0].base;
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ask(&client, base, "tls@example.org", "resume").await, 202);
    let mail = Mail::read(&sink.delivered(1).await[0]);
    assert_eq!(mail.to, "tls@example.org");
    let url = format!("{base}/d/{}", token_of(&mail.link));
    assert_whole_resume(client.get(&url).send().await.unwrap()).await;
    let again = client.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 410);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "link_used");
    // The link's key lives on the primary, reached over TLS only.
    let primary = redis.announced().unwrap();
    let mut conn = redis.ca.client(primary).get_connection().unwrap();
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("docgate:*")
        .query(&mut conn)
        .unwrap();
    assert!(!keys.is_empty(), "docgate wrote to the TLS primary");

    // Without the CA file the public roots do not vouch for the servers: check fails, a
    // serving docgate is not ready and refuses a link request, and nothing is mailed.
    let without = EnvOnly(
        redis
            .env()
            .into_iter()
            .filter(|(k, _)| *k != "DOCGATE_REDIS_CA_FILE")
            .collect(),
    );
    let (code, out) = check(&without);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("token store: FAILED"), "{out}");
    let other = tempfile::tempdir().unwrap();
    let refused = replicas(&without, &sink, other.path(), 1, &[]).await;
    let base = &refused[0].base;
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ask(&client, base, "nobody@example.org", "resume").await,
        503
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "nothing else was mailed");
    assert!(
        sink.messages()
            .iter()
            .all(|p| recipient(p) == "tls@example.org"),
        "only the first link's mail"
    );
}
