//! The primary killed outright (`SIGKILL`) with its replica lagging, under traffic and big
//! transfers: whole documents, cut transfers or clean 503s, and no completed link served again
//! but one its replica never had (with `DOCGATE_REDIS_WAIT_REPLICAS`, none).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// The client crate, not `support::redis`.
use ::redis;
use futures_util::StreamExt;

use crate::replicas::{EnvOnly, all_ready, ask, links_by_recipient, recipient, replicas};
use crate::support::mail::Mail;
use crate::support::redis::{RedisCluster, RedisSentinel, SharedRedis};
use crate::support::smtp::SmtpSink;
use crate::support::*;

use super::*;

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
    crate::support::redis::node(port)
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

/// Downloads `url` and checks it is whole (`len` bytes). With `wait`, a completion that no
/// replica acknowledged within the `WAIT` timeout (a replica slow on a loaded machine) cuts the
/// body and refunds the link, failing closed: the link must then still be there (`HEAD` 200),
/// and the download is tried again, a bounded number of times.
async fn whole_download(client: &reqwest::Client, url: &str, len: usize, wait: bool) {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        match response.bytes().await {
            Ok(body) => {
                assert_eq!(body.len(), len, "{url}");
                return;
            }
            Err(e) if wait && attempt < ATTEMPTS => {
                let status = settled(client, url).await;
                assert_eq!(status, 200, "{url}: a cut download ({e}) spent its link");
            }
            Err(e) => panic!("{url}: the download was cut: {e}"),
        }
    }
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
    ask_in_turn(&client, &replicas, "before", LINKS, "resume").await;
    ask_in_turn(&client, &replicas, "stream", STREAMS, "big").await;
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
        let len = if big { BIG_LEN } else { RESUME_LEN };
        let whole = || whole_download(&client, &url, len, wait);
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
                    whole().await;
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
                    whole().await;
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
