//! The key-layout upgrade on a real `redis-server`: keys written exactly as the previous version
//! wrote them (their old names spelled out here), `docgate migrate-keys` run by the binary, then
//! the new version serving them through its public API.

use std::time::Duration;

// The client crate, not `support::redis`.
use ::redis;

use docgate::requestlog::{Entry, Event};
use docgate::token::Claims;

use crate::support::redis::RedisServer;
use crate::support::smtp::SmtpSink;
use crate::support::*;

const VISITOR: &str = "visitor@example.org";

/// A link mail job's stream fields, as the previous version queued them.
fn job(claims: &Claims, to: &str) -> Vec<(String, String)> {
    [
        ("kind", "link".to_owned()),
        ("jti", claims.jti.as_str().to_owned()),
        ("doc", "resume".to_owned()),
        ("iat", claims.iat.to_string()),
        ("exp", claims.exp.to_string()),
        ("to", to.to_owned()),
        ("title", "Jane Doe's resume".to_owned()),
        ("enqueued-at", "0".to_owned()),
        ("attempts", "0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn now_ms() -> u64 {
    now() * 1000
}

#[tokio::test]
async fn an_upgrade_keeps_live_links_queued_mail_and_the_request_log() {
    let server = RedisServer::start();
    let sink = SmtpSink::start();
    let mut redis = server.client();
    let owner = owner_id(VISITOR);

    // A link mid-way: one download started and cut after 1000 bytes, another in flight on a
    // replica that was stopped (its lease lapsed, its last report 500 bytes).
    let live = Claims::new("resume", now(), 900);
    let jti = live.jti.as_str().to_owned();
    let token_key = format!("docgate:token:{jti}");
    let _: () = redis::cmd("HSET")
        .arg(&token_key)
        .arg(&[
            ("doc", "resume"),
            ("started", "2"),
            ("attempts", "3"),
            ("delivered", "1000"),
            ("size", &RESUME_LEN.to_string()),
            ("lease", "lease-of-a-stopped-replica"),
            ("lease_until", "1"),
            ("lease_sent", "500"),
        ])
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg(&token_key)
        .arg(600_000)
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(format!("docgate:owner:{owner}"))
        .arg(&jti)
        .query(&mut redis)
        .unwrap();
    // A link already spent by a completed download.
    let spent = Claims::new("resume", now(), 900);
    let _: () = redis::cmd("SET")
        .arg(format!("docgate:spent:{}", spent.jti.as_str()))
        .arg(format!("|{}|0", now_ms()))
        .arg("PX")
        .arg(900_000)
        .query(&mut redis)
        .unwrap();

    // The request log: her link request, joined to her and to the link.
    let mut asked = Entry::now(Event::LinkRequested, "192.0.2.1".parse().unwrap(), "sent");
    asked.email = Some(VISITOR.to_owned());
    asked.document = Some("resume".to_owned());
    asked.jti = Some(jti.clone());
    let id = "0000000000000001";
    let at = now_ms();
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg("docgate:log:entries")
        .arg(id)
        .arg(serde_json::to_string(&asked).unwrap())
        .cmd("ZADD")
        .arg("docgate:log:index")
        .arg(at)
        .arg(id)
        .cmd("SET")
        .arg("docgate:log:seq")
        .arg(1)
        .cmd("HSET")
        .arg("docgate:log:owners")
        .arg(id)
        .arg(&owner)
        .cmd("ZADD")
        .arg(format!("docgate:log:person:{owner}"))
        .arg(at)
        .arg(id)
        .cmd("SET")
        .arg(format!("docgate:log:link:{jti}"))
        .arg(&owner)
        .query(&mut redis)
        .unwrap();

    // The mail queue: one job queued, one scheduled for a retry (due), one dead letter.
    let queued = Claims::new("resume", now(), 900);
    let retried = Claims::new("resume", now(), 900);
    let dead = Claims::new("resume", now(), 900);
    let _: () = redis::cmd("XGROUP")
        .arg(&["CREATE", "docgate:mail:queue", "senders", "0", "MKSTREAM"])
        .query(&mut redis)
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg("docgate:mail:queue")
        .arg("*")
        .arg(job(&queued, "queued@example.org"))
        .query(&mut redis)
        .unwrap();
    let member: Vec<String> = job(&retried, "retried@example.org")
        .into_iter()
        .flat_map(|(k, v)| [k, v])
        .collect();
    let _: () = redis::cmd("ZADD")
        .arg("docgate:mail:retry")
        .arg(now_ms() - 1000)
        .arg(serde_json::to_string(&member).unwrap())
        .query(&mut redis)
        .unwrap();
    let mut buried = job(&dead, "dead@example.org");
    buried.push(("cause".to_owned(), "rejected".to_owned()));
    buried.push(("detail".to_owned(), "550 mailbox unavailable".to_owned()));
    buried.push(("failed-at".to_owned(), now_ms().to_string()));
    let dead_id: String = redis::cmd("XADD")
        .arg("docgate:mail:dead")
        .arg("*")
        .arg(buried)
        .query(&mut redis)
        .unwrap();

    // The migration, by the command, with every docgate stopped.
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    let env = [("DOCGATE_REDIS_URL", server.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, stdout, stderr) = cli(dir.path(), &env, &["migrate-keys"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    for line in [
        "links: 1 moved",
        "spent markers: 1 moved",
        "owner indexes: 1 moved",
        "request log keys: 6 moved",
        "mail queue keys: 3 moved",
        "12 keys moved in all",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line}: {stdout}");
    }
    let mut left: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
    left.sort();
    assert!(
        left.iter().all(|k| k.contains('{')),
        "no key keeps its old name: {left:?}"
    );
    // The link keeps its state and its time to live.
    let new_key = format!("docgate:token:{{{jti}}}");
    let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&new_key)
        .query(&mut redis)
        .unwrap();
    assert_eq!(
        (fields["started"].as_str(), fields["delivered"].as_str()),
        ("2", "1000")
    );
    let ttl: i64 = redis::cmd("PTTL").arg(&new_key).query(&mut redis).unwrap();
    assert!((500_000..=600_000).contains(&ttl), "{ttl}");

    // Run again: nothing more to move, nothing changed.
    let (code, stdout, stderr) = cli(dir.path(), &env, &["migrate-keys"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.lines().any(|l| l == "0 keys moved in all"),
        "{stdout}"
    );
    let mut again: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis).unwrap();
    again.sort();
    assert_eq!(again, left);

    // The new version serves them.
    let app = TestApp::with(&[
        ("DOCGATE_REDIS_URL", &server.url()),
        ("DOCGATE_SMTP_URL", &sink.url()),
    ])
    .await;
    let link = format!("{}/d/{}", app.base, app.app.codec.sign(&live).unwrap());
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200, "the live link downloads");
    assert_whole_resume(response).await;
    let again = app.get(&link).await;
    assert_eq!(again.status(), 410);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "link_used", "and only once");
    let used = format!("{}/d/{}", app.base, app.app.codec.sign(&spent).unwrap());
    let response = app.get(&used).await;
    assert_eq!(response.status(), 410);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["error"], "link_used",
        "a spent link still reads as used"
    );

    // The queued mail and the scheduled retry are delivered, each once.
    let delivered = sink.delivered(2).await;
    let mut to: Vec<String> = delivered.iter().map(|p| Mail::read(p).to).collect();
    to.sort();
    assert_eq!(to, ["queued@example.org", "retried@example.org"]);
    for path in &delivered {
        let mail = Mail::read(path);
        let claims = app.app.codec.verify(token_of(&mail.link), now()).unwrap();
        let want = if mail.to == "queued@example.org" {
            &queued
        } else {
            &retried
        };
        assert_eq!(&claims, want);
    }
    // The dead letter can be retried, and is delivered.
    let (code, stdout, stderr) = cli(dir.path(), &env, &["mail", "retry", &dead_id]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let delivered = sink.delivered(3).await;
    assert_eq!(delivered.len(), 3);
    let revived = delivered
        .iter()
        .map(|p| Mail::read(p))
        .find(|m| m.to == "dead@example.org")
        .expect("the dead letter's mail");
    assert_eq!(
        app.app
            .codec
            .verify(token_of(&revived.link), now())
            .unwrap(),
        dead
    );

    // Her request log entry is hers still, and the download joined her through the link.
    let requests = app.app.backends.requests.clone();
    let hers = eventually("the download in her log", Duration::from_secs(5), || {
        let requests = requests.clone();
        let owner = owner.clone();
        async move {
            let hers = requests.person(&owner).await.unwrap();
            (hers.len() >= 2).then_some(hers)
        }
    })
    .await;
    assert!(hers.contains(&asked), "{hers:?}");
    assert!(
        hers.iter()
            .any(|e| e.event != Event::LinkRequested && e.jti.as_deref() == Some(jti.as_str())),
        "{hers:?}"
    );
    assert_eq!(sink.messages().len(), 3, "no mail sent twice");
}

#[tokio::test]
async fn a_new_name_already_taken_is_reported_and_its_old_key_left() {
    let server = RedisServer::start();
    let mut redis = server.client();
    // An old queue with a job, and a new version's queue created before the migration.
    let claims = Claims::new("resume", now(), 900);
    for key in ["docgate:mail:queue", "docgate:{mail}:queue"] {
        let _: String = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg(job(&claims, "queued@example.org"))
            .query(&mut redis)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("docgate:mail:other")
        .arg("x")
        .query(&mut redis)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path());
    let url = server.url();
    let (code, stdout, stderr) = cli(
        dir.path(),
        &[("DOCGATE_REDIS_URL", &url)],
        &["migrate-keys"],
    );
    assert_eq!(code, 65, "{stdout}{stderr}");
    assert!(
        stderr.contains("docgate:mail:queue not moved: its new name already exists"),
        "{stderr}"
    );
    assert!(
        stdout.lines().any(|l| l == "mail queue keys: 1 moved"),
        "{stdout}"
    );
    let lengths: (u64, u64) = redis::pipe()
        .cmd("XLEN")
        .arg("docgate:mail:queue")
        .cmd("XLEN")
        .arg("docgate:{mail}:queue")
        .query(&mut redis)
        .unwrap();
    assert_eq!(lengths, (1, 1), "neither stream was touched");
}
