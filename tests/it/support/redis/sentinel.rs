//! A real Sentinel setup per test: a primary, a replica and 1 to 3 Sentinels.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::support::process::Daemon;

/// The master name the test Sentinels monitor.
pub const MASTER: &str = "docgate-primary";

/// A real Sentinel setup for one test: a primary, a replica of it, and 1 to 3 Sentinels
/// (Debian's `redis-sentinel`) monitoring it with a quorum of 1 and a 5 s down-after (a test
/// triggers its failover with [`RedisSentinel::failover`], which does not wait); ready once
/// every Sentinel names the primary and knows the replica. Killed on drop.
pub struct RedisSentinel {
    /// The primary and the replica, in the roles they started with (a failover swaps them).
    pub servers: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// A primary, a replica and one Sentinel.
    pub fn start() -> Self {
        Self::with_sentinels(1)
    }

    /// A primary, a replica and `count` Sentinels (1 to 3).
    pub fn with_sentinels(count: usize) -> Self {
        assert!((1..=3).contains(&count));
        let primary = RedisServer::start();
        let replica =
            RedisServer::with_args(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
        wait_until("the replica in sync", FORM, || {
            info(replica.port, "replication").contains("master_link_status:up")
        });
        let sentinels = (0..count)
            .map(|_| sentinel(primary.port))
            .collect::<Vec<_>>();
        let setup = Self {
            servers: vec![primary, replica],
            sentinels,
        };
        let (primary, replica) = (setup.servers[0].port, setup.servers[1].port);
        wait_until(
            "every Sentinel knowing the primary and its replica",
            FORM,
            || {
                setup.sentinels.iter().all(|s| {
                    setup.announced(s.port) == Some(primary) && setup.knows_replica(s.port, replica)
                })
            },
        );
        setup
    }

    /// `redis://` URLs of the Sentinels, comma-separated.
    pub fn urls(&self) -> String {
        self.sentinels
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the primary the first Sentinel names now.
    pub fn primary_port(&self) -> u16 {
        self.announced(self.sentinels[0].port)
            .expect("a Sentinel names the primary")
    }

    /// The server that is the primary now.
    pub fn primary(&mut self) -> &mut RedisServer {
        let port = self.primary_port();
        self.servers
            .iter_mut()
            .find(|s| s.port == port)
            .expect("the primary is one of the test's servers")
    }

    /// The other server (the replica, unless a failover happened).
    pub fn replica_port(&self) -> u16 {
        let primary = self.primary_port();
        self.servers
            .iter()
            .map(|s| s.port)
            .find(|p| *p != primary)
            .expect("two servers")
    }

    /// Waits (bounded) until the replica has everything the primary has: `WAIT 1`.
    pub fn sync(&mut self) {
        let mut conn = self.primary().client();
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut conn)
            .unwrap();
        assert_eq!(acked, 1, "the replica acknowledged the primary's writes");
    }

    /// `SENTINEL FAILOVER`: the first Sentinel promotes the replica (works with the primary down).
    /// Returns at once; [`RedisSentinel::wait_for_primary`] waits for its end.
    pub fn failover(&self) {
        let mut conn = self.sentinels[0].client();
        let started: redis::RedisResult<()> = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER)
            .query(&mut conn);
        // INPROG: the Sentinel started one on its own (the primary was down long enough).
        if let Err(e) = started {
            assert!(e.to_string().contains("INPROG"), "SENTINEL FAILOVER: {e}");
        }
    }

    /// Waits (bounded) until every Sentinel announces the server on `port` as the primary, and
    /// that server says it is one.
    pub fn wait_for_primary(&self, port: u16) {
        let deadline = Instant::now() + FORM;
        while !(self
            .sentinels
            .iter()
            .all(|s| self.announced(s.port) == Some(port))
            && info(port, "replication").contains("role:master"))
        {
            assert!(
                Instant::now() < deadline,
                "the new primary announced: not within {FORM:?}; the Sentinels' logs:\n{}",
                self.sentinels
                    .iter()
                    .map(RedisServer::sentinel_log)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes the server on `port` a replica of the one on `primary` (`REPLICAOF`), as a Sentinel
    /// does to a former primary it sees again; waits (bounded) until it says so.
    pub fn demote(&self, port: u16, primary: u16) {
        let mut conn = node(port);
        let _: () = redis::cmd("REPLICAOF")
            .arg("127.0.0.1")
            .arg(primary)
            .query(&mut conn)
            .unwrap();
        wait_until("the former primary a replica", FORM, || {
            info(port, "replication").contains("role:slave")
        });
    }

    /// The primary's port a Sentinel announces (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    fn announced(&self, sentinel: u16) -> Option<u16> {
        let mut conn = redis::Client::open(url(sentinel))
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER)
            .query(&mut conn)
            .ok()?;
        addr?.1.parse().ok()
    }

    fn knows_replica(&self, sentinel: u16, replica: u16) -> bool {
        let Ok(mut conn) = redis::Client::open(url(sentinel))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        else {
            return false;
        };
        sentinel_knows(&mut conn, replica)
    }
}

impl SharedRedis for RedisSentinel {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCGATE_REDIS_SENTINEL_URLS", self.urls()),
            ("DOCGATE_REDIS_SENTINEL_MASTER", MASTER.to_owned()),
        ]
    }
}

/// A Sentinel monitoring the primary on `primary`: `redis-sentinel` with a config file of its
/// own (Sentinels rewrite it), or `redis-server --sentinel` where Debian's package is missing.
fn sentinel(primary: u16) -> RedisServer {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let command = move |port: u16| {
        let conf = format!("{data}/sentinel-{port}.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {data}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {MASTER} 5000\n\
                 sentinel failover-timeout {MASTER} 5000\n\
                 sentinel parallel-syncs {MASTER} 1\n\
                 logfile {data}/sentinel-{port}.log\n"
            ),
        )
        .unwrap();
        sentinel_command(&conf)
    };
    let daemon = Daemon::start("redis-sentinel", SENTINEL_HINT, command, answers_ping);
    RedisServer {
        port: daemon.port,
        daemon,
        _dir: dir,
    }
}

pub(super) const SENTINEL_HINT: &str = "is it installed (apt-get install redis-sentinel)?";

/// Whether the Sentinel on `conn` lists the replica on port `replica` as up and connected.
pub(super) fn sentinel_knows(conn: &mut redis::Connection, replica: u16) -> bool {
    let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
        .arg("REPLICAS")
        .arg(MASTER)
        .query(conn)
        .unwrap_or_default();
    replicas.iter().any(|r| {
        r.get("port").is_some_and(|p| *p == replica.to_string())
            && r.get("flags")
                .is_some_and(|f| !f.contains("down") && !f.contains("disconnected"))
    })
}

/// A Sentinel run with the configuration file `conf`: `redis-sentinel`, or `redis-server
/// --sentinel` where Debian's `redis-sentinel` package is missing.
pub(super) fn sentinel_command(conf: &str) -> Command {
    let mut command = if which("redis-sentinel") {
        let mut command = Command::new("redis-sentinel");
        command.arg(conf);
        command
    } else {
        let mut command = Command::new("redis-server");
        command.arg(conf).arg("--sentinel");
        command
    };
    command.stdout(Stdio::null()).stderr(Stdio::null());
    command
}
