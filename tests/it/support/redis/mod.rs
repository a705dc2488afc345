//! A real `redis-server` per test, on a free loopback port in its own temporary directory, with
//! persistence off; killed on drop. Outage tests stop, pause or restart it. Beside it, the two
//! other topologies docgate runs on: [`RedisCluster`] (3 masters, optionally a replica each) and
//! [`RedisSentinel`] (a primary, a replica and 1 to 3 Sentinels), each test owning its own. Every
//! one of them gives docgate its configuration through [`SharedRedis`]. The TLS-only server and
//! Sentinel setup, with their private CA, are in [`tls`].

#![allow(dead_code)]

mod cluster;
mod sentinel;
mod tls;

pub use cluster::RedisCluster;
pub use sentinel::{MASTER, RedisSentinel};
pub use tls::{TlsRedis, TlsSentinel};

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use docgate::config::RedisConfig;

use super::process::Daemon;

const HINT: &str = "is it installed (apt-get install redis-server)?";

/// A `redis-server` process for one test.
pub struct RedisServer {
    pub port: u16,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server with persistence off.
    pub fn start() -> Self {
        Self::with_args(&[])
    }

    /// Starts a server with extra configuration, e.g. `["--notify-keyspace-events", "Kg"]`.
    pub fn with_args(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().display().to_string();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let command = move |port: u16| {
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1"])
                .args(["--save", ""])
                .args(["--appendonly", "no"])
                .args(["--dir", &data])
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            command
        };
        let daemon = Daemon::start("redis-server", HINT, command, answers_ping);
        Self {
            port: daemon.port,
            daemon,
            _dir: dir,
        }
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        url(self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (an outage). Data is lost: persistence is off.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Crashes the server: `SIGKILL`, with no pause or sync before it, so writes its replicas
    /// had not received yet are lost with it. Data is lost: persistence is off.
    pub fn kill(&mut self) {
        self.daemon.signal("KILL");
        self.daemon.stop();
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, as with a hung
    /// or partitioned Redis.
    pub fn pause(&self) {
        self.daemon.signal("STOP");
    }

    /// Unfreezes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.daemon.signal("CONT");
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.daemon.restart();
    }

    /// `CONFIG SET name value` on this server.
    pub fn config_set(&self, name: &str, value: &str) {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(&mut self.client())
            .unwrap();
    }

    /// The log of a Sentinel started by this module (empty for a data node).
    pub fn sentinel_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join(format!("sentinel-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// A blocking client connection, for test setup and inspection ([`node`]).
    pub fn client(&self) -> redis::Connection {
        node(self.port)
    }
}

/// A Redis topology a test started: how docgate is configured for it.
pub trait SharedRedis {
    /// The environment of a docgate on it (`DOCGATE_REDIS_URL`, or the cluster's or Sentinels').
    fn env(&self) -> Vec<(&'static str, String)>;

    /// The configuration of a store, limiter, log or queue on it, its keys under `prefix`: what
    /// docgate reads from [`SharedRedis::env`].
    fn config(&self, prefix: &str) -> RedisConfig {
        let mut env: std::collections::HashMap<String, String> = self
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.insert("DOCGATE_REDIS_PREFIX".to_owned(), prefix.to_owned());
        redis_config(env)
    }
}

impl SharedRedis for RedisServer {
    fn config(&self, prefix: &str) -> RedisConfig {
        RedisConfig::standalone(&self.url(), prefix)
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DOCGATE_REDIS_URL", self.url())]
    }
}

/// How long a cluster or a Sentinel setup may take to form, and a failover to complete.
const FORM: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it holds; panics with `what` after `within`.
fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking connection to the server on `port`, for test setup and inspection: it waits at most
/// [`SETUP`] to connect and for each reply, so a server that stopped answering fails the test
/// instead of hanging it.
pub fn node(port: u16) -> redis::Connection {
    connect(port, SETUP).unwrap()
}

/// A blocking connection to the server on `port` that waits at most `within` to connect and for
/// each reply.
fn connect(port: u16, within: Duration) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(url(port))?.get_connection_with_timeout(within)?;
    conn.set_read_timeout(Some(within))?;
    conn.set_write_timeout(Some(within))?;
    Ok(conn)
}

/// How long a test's own connection waits to connect and for each reply (a `WAIT` of the tests
/// takes at most 5 s).
const SETUP: Duration = Duration::from_secs(10);

/// `INFO <section>` of the server on `port`, or empty when it does not answer.
pub fn info(port: u16, section: &str) -> String {
    ask(port, redis::cmd("INFO").arg(section)).unwrap_or_default()
}

/// How long a probe of a server (readiness, `INFO`) waits to connect and for each reply.
const PROBE: Duration = Duration::from_secs(1);

/// One command to the server on `port`, bounded by [`PROBE`]: a probe must not hang on a port that
/// does not answer, or on one that another server (a docgate in this test's runtime) took.
fn ask(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<String> {
    cmd.query(&mut connect(port, PROBE)?)
}

/// The Redis section of a configuration read from `env` (with the keys Redis requires).
fn redis_config(mut env: std::collections::HashMap<String, String>) -> RedisConfig {
    env.insert(
        "DOCGATE_TOKEN_SECRET".to_owned(),
        "0123456789abcdef0123456789abcdef".to_owned(),
    );
    env.insert(
        "DOCGATE_PSEUDONYM_KEY".to_owned(),
        "pseudonyms-0123456789abcdef012345".to_owned(),
    );
    docgate::config::Config::from_source(&env)
        .unwrap()
        .redis
        .unwrap()
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Whether a server on `port` answers `PING`.
fn answers_ping(port: u16) -> bool {
    ask(port, &redis::cmd("PING")).is_ok()
}

/// `INFO commandstats` of one server: calls per command (those run inside scripts included),
/// less the test's own questions (`INFO`, `CONFIG RESETSTAT`).
pub fn commandstats(conn: &mut redis::Connection) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|s| s.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().unwrap()))
        })
        .filter(|(name, _)| name != "info" && name != "config|resetstat")
        .collect()
}

/// Zeroes one server's counters (`CONFIG RESETSTAT`), so [`commandstats`] counts from here.
pub fn reset_stats(conn: &mut redis::Connection) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(conn)
        .unwrap();
}

#[test]
fn a_probe_of_a_port_that_never_answers_gives_up() {
    // A listener that takes connections into its backlog and never reads them, as a docgate
    // whose runtime is busy running this very probe would.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    // Each gives up after a few of its bounded waits (the client's handshake, then the command).
    let started = Instant::now();
    assert!(!answers_ping(port));
    assert!(started.elapsed() < 5 * PROBE, "{:?}", started.elapsed());
    let started = Instant::now();
    assert_eq!(info(port, "server"), "");
    assert!(started.elapsed() < 5 * PROBE, "{:?}", started.elapsed());
}

#[test]
fn a_stopped_servers_port_is_held_refusing_connections_until_it_restarts() {
    let mut redis = RedisServer::start();
    redis.stop();
    let refused = std::net::TcpStream::connect(redis.addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // Bound by the hold: a socket without SO_REUSEADDR cannot have it, and the kernel hands it
    // to no bind to port 0 either.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let taken = other.bind(&redis.addr().into()).unwrap_err();
    assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
    redis.restart();
    assert!(answers_ping(redis.port));
}
