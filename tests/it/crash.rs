//! Traffic through a failover and through a crash: three real `docgate` processes (started as
//! in [`crate::replicas`]) on a Sentinel setup or a 3-master Redis Cluster, driven over real HTTP
//! while the primary fails over. A planned failover gets successes or clean 503s, spends no link
//! by a failure and loses no mail. When the primary is killed outright (`SIGKILL`, its replica
//! lagging), every answer is still a whole document, a cut transfer or a clean 503, and no link is
//! served again in full but one whose completion the replica never had; with
//! `DOCGATE_REDIS_WAIT_REPLICAS`, none.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// The client crate, not `support::redis`.
use ::redis;
use futures_util::StreamExt;

use crate::replicas::{
    EnvOnly, all_ready, ask, links_by_recipient, mails_by_recipient, recipient, replicas,
};
use crate::support::mail::Mail;
use crate::support::redis::{RedisCluster, RedisSentinel, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::*;

/// Bound on waiting out the lease of a claim whose replica lost Redis (`LEASE_TTL`, 10 s).
const LEASE_LAPSED: Duration = Duration::from_secs(30);

/// What one download attempt during a failover got.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Attempt {
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

/// Three replicas on `redis` with traffic running while `failover` happens; afterwards every
/// answer was a success or a clean 503, no link was spent by a failure, and every accepted link
/// request was mailed exactly once. With `outage`, some answer must have met the outage.
async fn traffic_through_a_failover(
    redis: &impl SharedRedis,
    failover: impl FnOnce(),
    recovered_within: Duration,
    outage: bool,
) {
    const LINKS: usize = 60;
    let sink = SmtpSink::start();
    let documents = tempfile::tempdir().unwrap();
    let replicas = replicas(redis, &sink, documents.path(), 3, &[]).await;
    let client = reqwest::Client::new();
    for i in 0..LINKS {
        let email = format!("before{i}@example.org");
        assert_eq!(
            ask(&client, &replicas[i % 3].base, &email, "resume").await,
            202
        );
    }
    sink.delivered(LINKS).await;
    let tokens: Vec<String> = links_by_recipient(&sink).into_values().collect();

    let stop = Arc::new(AtomicBool::new(false));
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let loop_ = tokio::spawn(traffic(
        bases,
        tokens.clone(),
        stop.clone(),
        Duration::from_millis(25),
    ));
    // Some traffic before, then the failover while it runs (this thread blocks; the loop runs on
    // the other worker).
    tokio::time::sleep(Duration::from_millis(500)).await;
    failover();
    all_ready(&client, &replicas, recovered_within).await;
    // And some traffic on the new topology.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = loop_.await.unwrap();
    assert!(!seen.requests.is_empty());
    if outage {
        // The loop did run while there was no primary.
        assert!(
            seen.requests.iter().any(|(_, s)| *s == 503)
                || seen
                    .downloads
                    .values()
                    .any(|t| t.outcome == Attempt::Refused),
            "no answer met the outage: {seen:?}"
        );
    }

    // No link was spent by a failed attempt: each one not completed downloads now, whole. (A
    // claim recorded before its download failed is not released while Redis is gone: its lease,
    // `LEASE_TTL`, lapses first, and meanwhile the link answers 409 as while in flight.)
    for token in &tokens {
        let url = format!("{}/d/{token}", replicas[0].base);
        match seen.downloads.get(token).map(|t| t.outcome) {
            Some(Attempt::Complete) => {
                assert_eq!(client.get(&url).send().await.unwrap().status(), 410);
            }
            _ => {
                eventually(
                    "a failed attempt's lease to lapse",
                    LEASE_LAPSED,
                    || async {
                        match client.head(&url).send().await.unwrap().status().as_u16() {
                            409 => None,
                            status => {
                                assert_eq!(status, 200, "{url}: not spent");
                                Some(())
                            }
                        }
                    },
                )
                .await;
                assert_whole_resume(client.get(&url).send().await.unwrap()).await;
            }
        }
    }

    // Every accepted request is mailed, exactly once; a refused one at most once (its link may
    // have been recorded before the answer failed), and nothing is sent twice.
    let accepted = seen.requests.iter().filter(|(_, s)| *s == 202).count();
    sink.delivered(LINKS + accepted).await;
    for replica in &replicas {
        drained_at(&client, &replica.admin_base).await;
    }
    let mails = mails_by_recipient(&sink);
    for (email, status) in &seen.requests {
        let count = mails.get(email).copied().unwrap_or(0);
        match status {
            202 => assert_eq!(count, 1, "{email} was accepted: one mail"),
            _ => assert!(count <= 1, "{email}: {count} mails"),
        }
    }
    assert!(mails.values().all(|n| *n == 1), "a mail sent twice");
    eprintln!(
        "failover traffic: {} requests ({} accepted), downloads {:?}",
        seen.requests.len(),
        accepted,
        seen.downloads.values().fold(BTreeMap::new(), |mut m, t| {
            *m.entry(format!("{:?}", t.outcome)).or_insert(0) += 1;
            m
        })
    );
}

fn replication(port: u16) -> String {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut conn| {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut conn)
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_a_sentinel_failover_gets_successes_or_clean_503s_and_loses_no_mail() {
    let mut redis = RedisSentinel::start();
    let (old, new) = (redis.primary_port(), redis.replica_port());
    let sentinels = redis.env();
    let shared = EnvOnly(sentinels);
    traffic_through_a_failover(
        &shared,
        || {
            // A planned switchover: writes held, the replica caught up (WAIT), then the primary
            // goes and the Sentinel promotes the replica. Requests meanwhile fail closed.
            pause_writes(&mut redis.primary().client());
            redis.sync();
            redis.primary().stop();
            redis.failover();
            redis.wait_for_primary(new);
        },
        Duration::from_secs(60),
        true,
    )
    .await;
    assert_ne!(old, new);
    assert!(
        replication(new).contains("role:master"),
        "the replica took over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_a_cluster_failover_gets_successes_or_clean_503s_and_loses_no_mail() {
    let mut cluster = RedisCluster::with_replicas(true);
    let master = cluster.master_ports()[0];
    let replica = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|p| replication(*p).contains(&format!("master_port:{master}")))
        .expect("a replica of the first master");
    let shared = EnvOnly(cluster.env());
    traffic_through_a_failover(
        &shared,
        || {
            // A master lost: its writes held and its replica caught up (WAIT) first, so nothing
            // acknowledged is lost with it; then it is killed and, after the node timeout, its
            // replica takes over its slots. Requests meanwhile fail closed.
            let index = cluster.nodes.iter().position(|n| n.port == master).unwrap();
            let mut conn = cluster.nodes[index].client();
            pause_writes(&mut conn);
            let acked: i64 = redis::cmd("WAIT")
                .arg(1)
                .arg(5000)
                .query(&mut conn)
                .unwrap();
            assert_eq!(acked, 1, "the replica has every write");
            cluster.nodes[index].stop();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !replication(replica).contains("role:master") {
                assert!(Instant::now() < deadline, "the replica never took over");
                std::thread::sleep(Duration::from_millis(50));
            }
            cluster.wait_until_serving();
        },
        Duration::from_secs(60),
        // A third of the links are on the lost master: the loop may or may not meet it.
        false,
    )
    .await;
    assert!(!cluster.master_ports().contains(&master));
}

/// Holds writes on the server `conn` is connected to for 10 s (`CLIENT PAUSE ... WRITE`), so its
/// replica can catch up before it goes.
fn pause_writes(conn: &mut redis::Connection) {
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query(conn)
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// An unplanned crash: the Sentinel's primary killed (SIGKILL) while downloads stream and link
// requests come in, nothing paused or synced before it.

/// A download of `big` at `url` that reads its first MiB, counts itself in `streaming`, waits
/// (bounded) for `killed`, then reads on: a transfer in flight when the primary dies.
async fn streaming_through_the_kill(
    url: String,
    streaming: Arc<std::sync::atomic::AtomicUsize>,
    killed: Arc<AtomicBool>,
) -> Timed {
    let started = Instant::now();
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200, "the primary still serves");
    let mut body = Vec::with_capacity(BIG_LEN);
    let mut stream = response.bytes_stream();
    let mut counted = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let outcome = loop {
        if body.len() >= 1 << 20 && !counted {
            counted = true;
            streaming.fetch_add(1, Ordering::SeqCst);
            while !killed.load(Ordering::SeqCst) {
                assert!(Instant::now() < deadline, "the kill never came");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        match stream.next().await {
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            Some(Err(_)) => break Attempt::Cut,
            None if body.len() < BIG_LEN => break Attempt::Cut,
            None => {
                assert_eq!(body.len(), BIG_LEN);
                assert!(
                    body == content(3, BIG_LEN),
                    "the document's bytes, no other"
                );
                break Attempt::Complete;
            }
        }
    };
    Timed {
        outcome,
        started,
        ended: Instant::now(),
    }
}

/// A plain connection to the node on `port`.
fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// A write on the master on `port` (a key in its own slots, on a cluster), then `WAIT 1`:
/// every write before this point (the completions of the downloads that ended before it) is on
/// its replica.
fn checkpoint(port: u16) {
    let mut conn = node(port);
    let written = (0..10_000).any(|i| {
        redis::cmd("SET")
            .arg(format!("test:checkpoint:{i}"))
            .arg(1)
            .query::<()>(&mut conn)
            .is_ok()
    });
    assert!(written, "no key of the master's own");
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        acked, 1,
        "the replica has every write before the checkpoint"
    );
}

/// Cuts the replica on `replica` off its master on `master` and keeps it off: it is given a
/// wrong `masterauth`, so it cannot sync again, then its link is killed. From now on the master
/// acknowledges writes its replica never gets (a replica lagging behind, or partitioned).
fn cut_replication(master: u16, replica: u16) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("masterauth")
        .arg("not-the-password")
        .query(&mut node(replica))
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut node(master))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replication(replica).contains("master_link_status:down") {
        assert!(Instant::now() < deadline, "the replica stayed in sync");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A topology a crash test runs on: a master that is killed, and its replica, promoted.
trait Crashing {
    /// The docgate environment.
    fn env(&self) -> Vec<(&'static str, String)>;
    /// The ports of the master that is killed and of its replica.
    fn pair(&self) -> (u16, u16);
    /// `SIGKILL` to the master.
    fn kill_master(&mut self);
    /// Waits (bounded) until the replica is promoted and serves, then brings the lost master
    /// back (empty: no persistence) as the new master's replica, in sync.
    fn recover(&mut self);
}

/// The Sentinel's primary killed; the Sentinel promotes the replica.
struct SentinelCrash(RedisSentinel, u16, u16);

impl SentinelCrash {
    fn start() -> Self {
        let redis = RedisSentinel::start();
        let (old, new) = (redis.primary_port(), redis.replica_port());
        Self(redis, old, new)
    }
}

impl Crashing for SentinelCrash {
    fn env(&self) -> Vec<(&'static str, String)> {
        self.0.env()
    }
    fn pair(&self) -> (u16, u16) {
        (self.1, self.2)
    }
    fn kill_master(&mut self) {
        let old = self.1;
        let server = self.0.servers.iter_mut().find(|s| s.port == old).unwrap();
        server.kill();
    }
    fn recover(&mut self) {
        let (old, new) = (self.1, self.2);
        self.0.failover();
        self.0.wait_for_primary(new);
        // As a Sentinel does to a former primary it sees again.
        let server = self.0.servers.iter_mut().find(|s| s.port == old).unwrap();
        // Back at once, as an orchestrator restarts a crashed pod: possibly before the failover
        // ends, while the Sentinel's master entry still names it.
        server.restart();
        self.0.demote(old, new);
        in_sync(old);
    }
}

/// A cluster master with a replica killed; the replica takes its slots over.
struct ClusterCrash(RedisCluster, usize, usize);

impl ClusterCrash {
    fn start() -> Self {
        let cluster = RedisCluster::with_replicas(true);
        let master = cluster.master_ports()[0];
        let index = cluster.nodes.iter().position(|n| n.port == master).unwrap();
        let replica = cluster.replica_of(master);
        Self(cluster, index, replica)
    }
}

impl Crashing for ClusterCrash {
    fn env(&self) -> Vec<(&'static str, String)> {
        self.0.env()
    }
    fn pair(&self) -> (u16, u16) {
        (self.0.nodes[self.1].port, self.0.nodes[self.2].port)
    }
    fn kill_master(&mut self) {
        self.0.nodes[self.1].kill();
    }
    fn recover(&mut self) {
        let (old, new) = self.pair();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !replication(new).contains("role:master") {
            assert!(Instant::now() < deadline, "the replica never took over");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.0.wait_until_serving();
        // Back with its cluster configuration, it finds its slots taken and becomes a replica.
        self.0.nodes[self.1].restart();
        in_sync(old);
        self.0.wait_until_serving();
    }
}

/// Waits (bounded) until the node on `port` is a replica in sync with its master.
fn in_sync(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replication(port).contains("master_link_status:up") {
        assert!(Instant::now() < deadline, "the former master never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the node on `port` holds `key`'s slot (on a cluster, others answer `MOVED`).
fn holds(port: u16, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(&mut node(port))
        .is_ok()
}

/// Waits (bounded) until `url` is not held by a claim whose replica lost Redis (`409`); returns
/// the status of `HEAD` then.
async fn settled(client: &reqwest::Client, url: &str) -> u16 {
    eventually("a lost claim's lease to lapse", LEASE_LAPSED, || async {
        let status = client.head(url).send().await.unwrap().status().as_u16();
        (status != 409).then_some(status)
    })
    .await
}

/// Three replicas on `topology`, with link requests, downloads and three `big` transfers in
/// flight when a master is killed. Before the kill its replica is cut off for a moment (as a
/// lagging or partitioned one is), so the master dies holding completions its replica never
/// had; the replica is promoted anyway and the lost master comes back as its replica. Every
/// answer was a whole document, a cut transfer or a clean 503; docgate serves again without a
/// restart; and no link is served again in full, except, without `wait`, one completed after
/// the last point the replica is known to have had (the documented loss of asynchronous
/// replication): each one completed while the replica was cut off is, and nothing else is.
/// Returns how many links were served a second time.
async fn downloads_through_a_crash(mut topology: impl Crashing, wait: bool) -> usize {
    const LINKS: usize = 80;
    const STREAMS: usize = 3;
    let (master, replica) = topology.pair();
    let shared = EnvOnly(topology.env());
    let sink = SmtpSink::start();
    let documents = tempfile::tempdir().unwrap();
    let extra: &[(&str, &str)] = if wait {
        &[
            ("DOCGATE_REDIS_WAIT_REPLICAS", "1"),
            ("DOCGATE_REDIS_WAIT_TIMEOUT", "250ms"),
        ]
    } else {
        &[]
    };
    let replicas = replicas(&shared, &sink, documents.path(), 3, extra).await;
    let client = reqwest::Client::new();
    for i in 0..LINKS {
        let email = format!("before{i}@example.org");
        assert_eq!(
            ask(&client, &replicas[i % 3].base, &email, "resume").await,
            202
        );
    }
    for i in 0..STREAMS {
        let email = format!("stream{i}@example.org");
        assert_eq!(
            ask(&client, &replicas[i % 3].base, &email, "big").await,
            202
        );
    }
    sink.delivered(LINKS + STREAMS).await;
    let links = links_by_recipient(&sink);
    let resumes: Vec<String> = (0..LINKS)
        .map(|i| links[&format!("before{i}@example.org")].clone())
        .collect();
    let bigs: Vec<String> = (0..STREAMS)
        .map(|i| links[&format!("stream{i}@example.org")].clone())
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let streaming = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let streams: Vec<_> = bigs
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let url = format!("{}/d/{token}", replicas[i % 3].base);
            tokio::spawn(streaming_through_the_kill(
                url,
                streaming.clone(),
                killed.clone(),
            ))
        })
        .collect();
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let loop_ = tokio::spawn(traffic(
        bases,
        resumes.clone(),
        stop.clone(),
        Duration::from_millis(20),
    ));
    eventually(
        "the big transfers streaming",
        Duration::from_secs(15),
        || async { (streaming.load(Ordering::SeqCst) == STREAMS).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The last point the replica is known to have everything; then it is cut off while traffic
    // goes on, and the master crashes, unannounced.
    let checked = Instant::now();
    checkpoint(master);
    cut_replication(master, replica);
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kill_started = Instant::now();
    topology.kill_master();
    let kill_ended = Instant::now();
    killed.store(true, Ordering::SeqCst);
    topology.recover();
    all_ready(&client, &replicas, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut downloads = loop_.await.unwrap().downloads;
    for (token, stream) in bigs.iter().zip(streams) {
        downloads.insert(token.clone(), stream.await.unwrap());
    }
    assert!(!downloads.is_empty());

    // Which completions the replica never had: the key of their link is on the lost master.
    let codec = crate::support::mail::codec();
    let lost_with_master = |token: &str| {
        let jti = codec.verify(token, now()).unwrap().jti.as_str().to_owned();
        holds(replica, &format!("docgate:spent:{{{jti}}}"))
    };
    let cut_off = |t: &Timed| t.started > cut && t.ended < kill_started;
    let mut lost = 0;
    let mut refused_while_cut_off = 0;
    for (token, timed) in &downloads {
        if cut_off(timed) && lost_with_master(token) {
            match timed.outcome {
                Attempt::Complete => lost += 1,
                Attempt::Cut | Attempt::Refused => refused_while_cut_off += 1,
            }
        }
    }
    if wait {
        // No replica acknowledged: no download of a link on that master completed while its
        // replica was cut off; they were cut instead (and are usable again, below).
        assert_eq!(lost, 0);
        assert!(
            refused_while_cut_off >= 1,
            "no download met the lagging replica"
        );
    } else {
        assert!(
            lost >= 1,
            "no download completed while the replica was cut off"
        );
    }

    let mut served_again = 0;
    for (token, timed) in &downloads {
        let url = format!("{}/d/{token}", replicas[0].base);
        let big = bigs.contains(token);
        let whole = |response: reqwest::Response| async move {
            assert_eq!(response.status(), 200);
            let len = response.bytes().await.unwrap().len();
            assert_eq!(len, if big { BIG_LEN } else { RESUME_LEN });
        };
        let status = settled(&client, &url).await;
        match timed.outcome {
            Attempt::Complete => {
                // Completed before the checkpoint, or acknowledged by the replica (`WAIT`), or
                // on another master: spent for good. Completed on the lost master while its
                // replica was cut off: the replica never had it, the link downloads once more.
                // Between the checkpoint and the cut: either.
                if timed.ended < checked || wait {
                    assert_eq!(
                        status,
                        410,
                        "{url}: a completed link served again; it started {:?} and ended {:?} \
                         after the checkpoint (the cut: {:?}, the kill: {:?}), on the lost \
                         master: {}",
                        timed.started.checked_duration_since(checked),
                        timed.ended.checked_duration_since(checked),
                        cut - checked,
                        kill_started - checked,
                        lost_with_master(token)
                    );
                } else if cut_off(timed) {
                    let expected = if lost_with_master(token) { 200 } else { 410 };
                    assert_eq!(status, expected, "{url}: {timed:?}");
                } else {
                    assert!(matches!(status, 200 | 410), "{url}: {status}");
                }
                if status == 200 {
                    whole(client.get(&url).send().await.unwrap()).await;
                    served_again += 1;
                    // Once more, not more: that completion is on the new master.
                    assert_eq!(client.get(&url).send().await.unwrap().status(), 410);
                }
            }
            Attempt::Cut | Attempt::Refused => {
                // Not spent by a failure, unless the attempt was in flight at the kill and its
                // completion reached the replica without its answer reaching docgate.
                if status == 410 {
                    assert!(
                        timed.started < kill_ended && timed.ended > kill_started,
                        "{url}: spent by a failure that did not meet the crash: {timed:?}"
                    );
                } else {
                    assert_eq!(status, 200, "{url}");
                    whole(client.get(&url).send().await.unwrap()).await;
                }
            }
        }
    }

    // Serving again, without a restart: the whole journey on every replica.
    for (i, replica) in replicas.iter().enumerate() {
        let email = format!("after{i}@example.org");
        assert_eq!(ask(&client, &replica.base, &email, "resume").await, 202);
        let link = eventually("the new link's mail", Duration::from_secs(15), || async {
            sink.messages()
                .iter()
                .filter(|p| recipient(p) == email)
                .map(|p| Mail::read(p).link)
                .next()
        })
        .await;
        let url = format!("{}/d/{}", replica.base, token_of(&link));
        assert_whole_resume(client.get(&url).send().await.unwrap()).await;
        assert_eq!(client.get(&url).send().await.unwrap().status(), 410);
    }
    eprintln!(
        "crash traffic (wait: {wait}): downloads {:?}; while the replica was cut off, on its \
         master: {lost} completed, {refused_while_cut_off} cut or refused; served again after \
         the crash: {served_again}",
        downloads.values().fold(BTreeMap::new(), |mut m, t| {
            *m.entry(format!("{:?}", t.outcome)).or_insert(0) += 1;
            m
        })
    );
    served_again
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sentinel_primary_cuts_or_refuses_cleanly_and_serves_again_only_what_its_replica_never_had()
 {
    assert!(downloads_through_a_crash(SentinelCrash::start(), false).await >= 1);
}

/// The old primary comes back (empty: no persistence) while its failover may still be in
/// progress, when the Sentinels' master entry still names it: docgate keeps a Sentinel primary
/// only once every Sentinel that answers names it and none is failing it over, so no link made
/// before the crash reads as withdrawn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_a_killed_sentinel_primary_serves_no_completed_link_again() {
    assert_eq!(
        downloads_through_a_crash(SentinelCrash::start(), true).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_master_cuts_or_refuses_cleanly_and_serves_again_only_what_its_replica_never_had()
 {
    assert!(downloads_through_a_crash(ClusterCrash::start(), false).await >= 1);
}

/// The completion and its `WAIT` leave in one pipeline routed to the link's slot: should the
/// cluster client send it elsewhere while the master is unreachable, the completion script is
/// refused (`MOVED`) and the download is cut, rather than another node's `WAIT` answering for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_a_killed_cluster_master_serves_no_completed_link_again() {
    assert_eq!(
        downloads_through_a_crash(ClusterCrash::start(), true).await,
        0
    );
}
