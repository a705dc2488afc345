//! Identifiers at rest: after a journey on real Redis that leaves every kind of identifier behind
//! (an owner index, rate-limit keys of a client and an address, the request log's person index,
//! the network that completed a link from its confirm page), a scan of every key and value finds
//! no address or client network as a bare hash anyone could recompute, and the keyed ids where
//! they belong.

use ::redis::{self, Commands};

use crate::support::redis::RedisServer;
use crate::support::*;

const CLIENT: &str = "198.51.100.7";
const TYPED: &str = "Jane.Doe+cv@Example.org";

/// Every key of the Redis server and every value it holds, as one text.
fn everything_in(redis: &RedisServer) -> String {
    let mut conn = redis.client();
    let keys: Vec<String> = conn.scan().unwrap().map(Result::unwrap).collect();
    assert!(!keys.is_empty());
    let mut text = String::new();
    for key in keys {
        text.push_str(&key);
        text.push('\n');
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
        let values: Vec<String> = match kind.as_str() {
            "string" => vec![conn.get(&key).unwrap()],
            "hash" => {
                let map: Vec<(String, String)> = conn.hgetall(&key).unwrap();
                map.into_iter().flat_map(|(k, v)| [k, v]).collect()
            }
            "set" => conn.smembers(&key).unwrap(),
            "zset" => conn.zrange(&key, 0, -1).unwrap(),
            "list" => conn.lrange(&key, 0, -1).unwrap(),
            "stream" => {
                let reply: redis::Value = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query(&mut conn)
                    .unwrap();
                vec![format!("{reply:?}")]
            }
            other => panic!("{key} is a {other}"),
        };
        for value in values {
            text.push_str(&value);
            text.push('\n');
        }
    }
    text.to_lowercase()
}

#[tokio::test]
async fn redis_holds_no_bare_hash_of_an_address_or_a_network() {
    let redis = RedisServer::start();
    let app = TestApp::with(&[
        ("DOCGATE_REDIS_URL", &redis.url()),
        ("DOCGATE_TRUSTED_PROXIES", "127.0.0.1/32"),
        // Slow enough that every limit's key is still there when Redis is read.
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h"),
        ("DOCGATE_LIMIT_REQUEST_PER_IP", "10/h"),
        ("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "10/h"),
        ("DOCGATE_LIMIT_MAIL", "10/h"),
        ("DOCGATE_LIMIT_REQUEST_PER_DOMAIN", "10/h"),
    ])
    .await;
    let ask = || {
        app.client
            .post(format!("{}/api/download-requests", app.base))
            .header("x-forwarded-for", CLIENT)
            .json(&serde_json::json!({"email": TYPED, "document": "resume"}))
            .send()
    };
    // One mailed, one over the address's limit: both leave limit keys behind.
    assert_eq!(ask().await.unwrap().status(), 202);
    assert_eq!(ask().await.unwrap().status(), 202);
    let mails = app.outbox();
    assert_eq!(mails.len(), 1);
    let link = Mail::read(&mails[0]).link;
    // The confirm page's button: the completed link remembers the network it may be fetched
    // again from.
    let response = crate::support::probe::click(&app, &link)
        .header("x-forwarded-for", CLIENT)
        .send()
        .await
        .unwrap();
    assert_whole_resume(response).await;
    app.wait_for_head(&link, 410).await;

    let stored = everything_in(&redis);
    let ids = pseudonyms();
    // The keyed ids are there: the scan saw the owner index and the limits.
    let person = ids.person(TYPED);
    assert!(stored.contains(&format!("owner:{{{person}}}")), "{stored}");
    assert!(
        stored.contains(&format!("{{log}}:person:{person}")),
        "{stored}"
    );
    assert!(
        stored.contains(&ids.network(CLIENT.parse().unwrap())),
        "the completing network, keyed, in the spent record: {stored}"
    );
    assert!(stored.contains("rl:req-ip:"), "{stored}");
    assert!(stored.contains("rl:req-email:"), "{stored}");
    assert!(stored.contains("rl:dl-ip:"), "{stored}");
    assert!(stored.contains("rl:mail:all"), "{stored}");
    assert!(stored.contains("rl:req-domain:"), "{stored}");

    // No bare hash of anything naming the person or the client, in any form docgate ever
    // hashed it, in keys or values.
    let lowered = TYPED.to_lowercase();
    let mailbox = "jane.doe@example.org";
    // The limiter's in-process form of a mailbox or domain key.
    let in_process = |scope: &str, subject: &str| {
        let digest = sha256(subject.as_bytes());
        format!("{scope}:{}", &digest[..32])
    };
    let named = [
        TYPED.to_owned(),
        lowered.clone(),
        mailbox.to_owned(),
        "example.org".to_owned(),
        CLIENT.to_owned(),
        format!("req-ip:{CLIENT}"),
        format!("dl-ip:{CLIENT}"),
        in_process("req-email", &lowered),
        in_process("req-email", mailbox),
        in_process("req-domain", "example.org"),
    ];
    for input in &named {
        let bare = sha256(input.as_bytes());
        for form in [&bare[..], &bare[..32], &bare[..12]] {
            assert!(
                !stored.contains(form),
                "a bare SHA-256 of {input:?} is stored: {form}"
            );
        }
    }
    // Nor the client's address in clear in any key (the owner's request log entries hold it as
    // a field, by design).
    let key_names: Vec<&str> = stored
        .lines()
        .filter(|l| l.starts_with("docgate:"))
        .collect();
    for key in key_names {
        assert!(!key.contains(CLIENT), "{key}");
        assert!(!key.contains("example.org"), "{key}");
    }
}

#[tokio::test]
async fn after_a_key_rotation_lookups_find_what_the_old_key_indexed() {
    const NEW_KEY: &str = "rotated-pseudonym-key-0123456789abcdef";
    let redis = RedisServer::start();
    let url = redis.url();
    let jane = "jane@example.org";

    let before = TestApp::with(&[("DOCGATE_REDIS_URL", &url)]).await;
    before.link(jane, "resume").await;
    let rotated = TestApp::with(&[
        ("DOCGATE_REDIS_URL", &url),
        ("DOCGATE_PSEUDONYM_KEY", NEW_KEY),
        ("DOCGATE_PSEUDONYM_KEY_PREVIOUS", PSEUDONYM_KEY),
    ])
    .await;
    rotated.link(jane, "resume").await;
    let after = TestApp::with(&[
        ("DOCGATE_REDIS_URL", &url),
        ("DOCGATE_PSEUDONYM_KEY", NEW_KEY),
    ])
    .await;

    // New identifiers use the new key only.
    let mut conn = redis.client();
    let new_id = docgate::pseudonym::Pseudonyms::with_key(NEW_KEY.as_bytes()).person(jane);
    let old_id = owner_id(jane);
    let links = |id: &str, conn: &mut redis::Connection| -> usize {
        conn.smembers::<_, Vec<String>>(format!("docgate:owner:{{{id}}}"))
            .unwrap()
            .len()
    };
    assert_eq!(links(&new_id, &mut conn), 1);
    assert_eq!(links(&old_id, &mut conn), 1);

    // Without the previous key, only what the new key indexed is found...
    let found = docgate::admin::export_person(&after.app, jane)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    // ...with it, both; and revoking by address withdraws both links.
    let found = docgate::admin::export_person(&rotated.app, jane)
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert!(found[0].at >= found[1].at, "newest first");
    let revoked = docgate::admin::revoke_address(&rotated.app, "Jane@Example.org")
        .await
        .unwrap();
    assert_eq!(revoked, 2);
    let erased = docgate::admin::erase_person(&rotated.app, jane)
        .await
        .unwrap();
    assert_eq!(erased, 2);
    assert_eq!(links(&new_id, &mut conn) + links(&old_id, &mut conn), 0);
}
