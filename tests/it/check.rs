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

/// Every script docgate runs, as `SCRIPT LOAD` names them (their SHA-1).
pub fn script_hashes() -> Vec<String> {
    [
        docgate::store::shared::scripts(),
        docgate::ratelimit::shared::scripts(),
        docgate::requestlog::shared::scripts(),
        docgate::outbox::queue::scripts(),
        docgate::migrate::scripts(),
    ]
    .concat()
    .iter()
    .map(|(_, source)| ::redis::Script::new(source).get_hash().to_owned())
    .collect()
}

/// Whether every script docgate runs is in the script cache of the server at `url`.
pub fn every_script_loaded(url: &str) -> bool {
    let mut conn = ::redis::Client::open(url)
        .unwrap()
        .get_connection()
        .unwrap();
    let hashes = script_hashes();
    assert!(
        hashes.len() >= 20,
        "every module's scripts: {}",
        hashes.len()
    );
    let exists: Vec<bool> = ::redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&hashes)
        .query(&mut conn)
        .unwrap();
    exists.iter().all(|e| *e)
}

#[tokio::test]
async fn check_loads_every_script_and_names_the_one_that_fails() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    assert!(!every_script_loaded(&server.url()));
    let lines = check::run(config(dir.path(), &[("DOCGATE_REDIS_URL", server.url())]))
        .await
        .unwrap();
    let store = find(&lines, "token store");
    assert!(store.ok, "{store}");
    assert!(store.detail.contains("scripts load"), "{store}");
    assert!(every_script_loaded(&server.url()));

    // An ACL user that may run scripts but not load them (`SCRIPT` denied): docgate would fail
    // on its first script, so the check fails, naming the primary and the script.
    let mut conn = server.client();
    let _: () = ::redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "gate",
            "on",
            ">gate-password",
            "~*",
            "&*",
            "+@all",
            "-script",
        ])
        .query(&mut conn)
        .unwrap();
    let _: () = ::redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut conn)
        .unwrap();
    let url = format!("redis://gate:gate-password@127.0.0.1:{}", server.port);
    let lines = check::run(config(dir.path(), &[("DOCGATE_REDIS_URL", url)]))
        .await
        .unwrap();
    let store = find(&lines, "token store");
    assert!(!store.ok, "{store}");
    assert!(
        store.detail.contains(&format!(
            "primary 127.0.0.1:{}: the link claim script does not load",
            server.port
        )),
        "names the primary and the script: {store}"
    );
    assert!(!store.detail.contains("gate-password"), "{store}");
    assert!(!every_script_loaded(&server.url()), "nothing loaded");
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
    // How the S3 connections' receive buffer is sized on this host: fixed when the kernel allows
    // the default, the kernel's own sizing otherwise.
    assert!(
        objects.detail.contains("; receive buffer "),
        "{}",
        objects.detail
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
