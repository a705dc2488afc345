//! `docgate check` against real backends: one line per backend, and dangerous settings caught.

use std::collections::HashMap;

use docgate::check;
use docgate::config::Config;

use crate::servers::RedisServer;
use crate::support::{SECRET, fixture_env, write_fixtures};

fn config(dir: &std::path::Path, extra: &[(&str, String)]) -> Config {
    write_fixtures(dir);
    let mut env: HashMap<String, String> = fixture_env(dir, "http://localhost:8080", SECRET)
        .into_iter()
        .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), v.clone());
    }
    Config::from_source(&env).unwrap()
}

fn find<'a>(lines: &'a [check::Line], name: &str) -> &'a check::Line {
    lines.iter().find(|l| l.name == name).unwrap()
}

#[tokio::test]
async fn embedded_backends_all_check_out() {
    let dir = tempfile::tempdir().unwrap();
    let lines = check::run(config(dir.path(), &[])).await.unwrap();
    let names: Vec<_> = lines.iter().map(|l| l.name).collect();
    assert_eq!(
        names,
        ["config", "catalog", "token store", "object store", "mail"]
    );
    assert!(lines.iter().all(|l| l.ok), "{lines:?}");
    assert_eq!(
        find(&lines, "catalog").to_string(),
        "catalog: ok (3 documents, every object present)"
    );
}

#[tokio::test]
async fn redis_that_may_evict_docgates_keys_fails_the_check() {
    let safe = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = check::run(config(dir.path(), &[("DOCGATE_REDIS_URL", safe.url())]))
        .await
        .unwrap();
    let store = find(&lines, "token store");
    assert!(store.ok, "{store}");
    assert!(store.detail.contains("noeviction"));

    let evicting = RedisServer::with_args(&["--maxmemory-policy", "volatile-lru"]);
    let lines = check::run(config(dir.path(), &[("DOCGATE_REDIS_URL", evicting.url())]))
        .await
        .unwrap();
    let store = find(&lines, "token store");
    assert!(!store.ok);
    assert!(store.detail.contains("volatile-lru"), "{store}");
    assert!(
        store.detail.contains("noeviction"),
        "says what to set: {store}"
    );
}

#[tokio::test]
async fn unreachable_redis_fails_the_check() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let lines = check::run(config(dir.path(), &[("DOCGATE_REDIS_URL", url)]))
        .await
        .unwrap();
    let store = find(&lines, "token store");
    assert!(!store.ok);
    assert!(
        store.to_string().starts_with("token store: FAILED"),
        "{store}"
    );
}
