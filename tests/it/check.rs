//! `docgate check` against real backends: one line per backend, and dangerous settings caught.

use std::collections::HashMap;

use docgate::check;
use docgate::config::Config;

use crate::support::redis::RedisServer;
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
        [
            "config",
            "token keys",
            "catalog",
            "token store",
            "object store",
            "mail"
        ]
    );
    assert!(lines.iter().all(|l| l.ok), "{lines:?}");
    let kid = docgate::token::key_id(&docgate::config::Secret::new(SECRET.into()));
    assert_eq!(
        find(&lines, "token keys").to_string(),
        format!("token keys: ok (signing with kid {kid}; verifying {kid})")
    );
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

#[tokio::test]
async fn a_catalog_object_anyone_can_read_fails_the_check() {
    use crate::support::s3::{ACCESS_KEY, BUCKET, PUBLIC_PREFIX, REGION, S3Server, SECRET_KEY};
    let s3 = S3Server::start().await;
    s3.put("resume/Jane_Doe_Resume.pdf", b"private").await;
    s3.put(&format!("{PUBLIC_PREFIX}leaked.pdf"), b"public")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = |catalog: &str| {
        let path = dir.path().join("catalog-s3.toml");
        std::fs::write(&path, catalog).unwrap();
        vec![
            ("DOCGATE_CATALOG", path.display().to_string()),
            ("DOCGATE_S3_BUCKET", BUCKET.to_owned()),
            ("DOCGATE_S3_ENDPOINT", s3.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
        ]
    };
    let private = "[documents.resume]\nkey = \"resume/Jane_Doe_Resume.pdf\"\nfilename = \"r.pdf\"\ntitle = \"R\"\n";
    let lines = check::run(config(dir.path(), &settings(private)))
        .await
        .unwrap();
    let objects = find(&lines, "object store");
    assert!(objects.ok, "{objects}");
    assert!(
        objects
            .detail
            .contains("no catalog object is readable without credentials")
    );

    let public = format!(
        "{private}[documents.leaked]\nkey = \"{PUBLIC_PREFIX}leaked.pdf\"\nfilename = \"l.pdf\"\ntitle = \"L\"\n"
    );
    let lines = check::run(config(dir.path(), &settings(&public)))
        .await
        .unwrap();
    let objects = find(&lines, "object store");
    assert!(!objects.ok, "{objects}");
    assert!(
        objects.detail.contains("leaked"),
        "names the document: {objects}"
    );
}

#[tokio::test]
async fn the_smtp_server_is_reached_with_noop() {
    let mut sink = crate::support::smtp::SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let lines = check::run(config(dir.path(), &[("DOCGATE_SMTP_URL", sink.url())]))
        .await
        .unwrap();
    let mail = find(&lines, "mail");
    assert!(mail.ok, "{mail}");
    sink.stop();
    let lines = check::run(config(dir.path(), &[("DOCGATE_SMTP_URL", sink.url())]))
        .await
        .unwrap();
    let mail = find(&lines, "mail");
    assert!(!mail.ok, "{mail}");
}
