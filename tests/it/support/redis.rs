//! A real `redis-server` per test, on a free loopback port in its own temporary directory, with
//! persistence off; killed on drop. Outage tests stop, pause or restart it. Beside it, the two
//! other topologies docgate runs on: [`RedisCluster`] (3 masters, optionally a replica each) and
//! [`RedisSentinel`] (a primary, a replica and 1 to 3 Sentinels), each test owning its own. Every
//! one of them gives docgate its configuration through [`SharedRedis`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use docgate::config::RedisConfig;

use super::process::{ChildProcess, Daemon, free_port};

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

    /// A blocking client connection, for test setup and inspection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

/// A standalone server that also listens with TLS, its certificate signed by a private CA of the
/// test's own (made with `openssl`), valid for `127.0.0.1`.
pub struct TlsRedis {
    pub server: RedisServer,
    /// The TLS port.
    pub tls_port: u16,
    /// The PEM file of the CA that signed the server's certificate.
    pub ca_file: std::path::PathBuf,
    _certs: TestCa,
}

impl TlsRedis {
    pub fn start() -> Self {
        let ca = TestCa::new();
        let tls_port = free_port();
        let mut args = vec!["--tls-port".to_owned(), tls_port.to_string()];
        args.extend(ca.server_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = RedisServer::with_args(&args);
        Self {
            server,
            tls_port,
            ca_file: ca.ca_file.clone(),
            _certs: ca,
        }
    }

    /// `rediss://127.0.0.1:TLS_PORT`
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }
}

/// A private CA of the test's own (made with `openssl`) and a server certificate it signed,
/// valid for `127.0.0.1`: what every TLS server of one test presents.
pub struct TestCa {
    /// The PEM file of the CA.
    pub ca_file: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let certs = tempfile::tempdir().unwrap();
        let path = |name: &str| certs.path().join(name).display().to_string();
        std::fs::write(
            path("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(&[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.pem"),
                "-days",
                "2",
            ],
            &["-subj", "/CN=docgate test CA"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]);
        openssl(&[
            &["req"],
            &ec[..],
            &["-keyout", &path("server.key"), "-out", &path("server.csr")],
            &["-subj", "/CN=127.0.0.1"],
        ]);
        openssl(&[
            &["x509", "-req", "-in", &path("server.csr"), "-days", "2"],
            &[
                "-CA",
                &path("ca.pem"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
            ],
            &["-out", &path("server.pem"), "-extfile", &path("server.ext")],
        ]);
        Self {
            ca_file: certs.path().join("ca.pem"),
            cert: certs.path().join("server.pem"),
            key: certs.path().join("server.key"),
            _dir: certs,
        }
    }

    /// The certificate options of a `redis-server` command line (clients need no certificate).
    fn server_args(&self) -> Vec<String> {
        [
            ("--tls-cert-file", &self.cert),
            ("--tls-key-file", &self.key),
            ("--tls-ca-cert-file", &self.ca_file),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v.display().to_string()])
        .chain(["--tls-auth-clients".to_owned(), "no".to_owned()])
        .collect()
    }

    /// A client of the TLS server on `port`, trusting this CA.
    pub fn client(&self, port: u16) -> redis::Client {
        redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}"),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(&self.ca_file).unwrap()),
            },
        )
        .unwrap()
    }

    /// A blocking connection to the TLS server on `port`, or `None` when it does not answer.
    fn connection(&self, port: u16) -> Option<redis::Connection> {
        self.client(port)
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    }

    /// `INFO <section>` of the TLS server on `port`, or empty when it does not answer.
    fn info(&self, port: u16, section: &str) -> String {
        self.connection(port)
            .and_then(|mut c| redis::cmd("INFO").arg(section).query::<String>(&mut c).ok())
            .unwrap_or_default()
    }
}

/// A Sentinel setup that speaks TLS only: a primary and a replica (`--port 0`, `--tls-port`,
/// replicating over TLS) and one Sentinel (TLS only too, reaching them over TLS), every
/// certificate signed by the test's private CA. Killed on drop.
pub struct TlsSentinel {
    /// The primary and the replica, in the roles they started with.
    pub servers: Vec<RedisServer>,
    pub sentinel: RedisServer,
    pub ca: TestCa,
}

impl TlsSentinel {
    pub fn start() -> Self {
        let ca = TestCa::new();
        let primary = tls_only(&ca, &[]);
        let replica = tls_only(
            &ca,
            &["--replicaof", "127.0.0.1", &primary.port.to_string()],
        );
        wait_until("the replica in sync over TLS", FORM, || {
            ca.info(replica.port, "replication")
                .contains("master_link_status:up")
        });
        let sentinel = tls_sentinel(&ca, primary.port);
        let (primary_port, replica_port) = (primary.port, replica.port);
        let setup = Self {
            servers: vec![primary, replica],
            sentinel,
            ca,
        };
        wait_until(
            "the Sentinel knowing the primary and its replica over TLS",
            FORM,
            || setup.announced() == Some(primary_port) && setup.knows(replica_port),
        );
        setup
    }

    /// `rediss://` URL of the Sentinel.
    pub fn urls(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.sentinel.port)
    }

    /// The primary's port the Sentinel announces.
    pub fn announced(&self) -> Option<u16> {
        let mut conn = self.ca.connection(self.sentinel.port)?;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER)
            .query(&mut conn)
            .ok()?;
        addr?.1.parse().ok()
    }

    fn knows(&self, replica: u16) -> bool {
        let Some(mut conn) = self.ca.connection(self.sentinel.port) else {
            return false;
        };
        sentinel_knows(&mut conn, replica)
    }
}

impl SharedRedis for TlsSentinel {
    fn config(&self, prefix: &str) -> RedisConfig {
        let mut env: std::collections::HashMap<String, String> = self
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.insert("DOCGATE_REDIS_PREFIX".to_owned(), prefix.to_owned());
        redis_config(env)
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCGATE_REDIS_SENTINEL_URLS", self.urls()),
            ("DOCGATE_REDIS_SENTINEL_MASTER", MASTER.to_owned()),
            (
                "DOCGATE_REDIS_CA_FILE",
                self.ca.ca_file.display().to_string(),
            ),
        ]
    }
}

/// A `redis-server` that listens with TLS only (`--port 0`; its `port` is the TLS port) and
/// replicates over TLS, ready once it answers `PING` over TLS.
fn tls_only(ca: &TestCa, args: &[&str]) -> RedisServer {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let mut fixed = ca.server_args();
    fixed.extend(args.iter().map(|a| (*a).to_owned()));
    let command = move |port: u16| {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", "0"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-replication", "yes"])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &data])
            .args(&fixed)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    start_tls(ca, "redis-server", HINT, dir, command)
}

/// A Sentinel that listens with TLS only and reaches the servers over TLS (`tls-replication
/// yes`), monitoring the primary on `primary`.
fn tls_sentinel(ca: &TestCa, primary: u16) -> RedisServer {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let tls: String = ca
        .server_args()
        .chunks(2)
        .map(|kv| format!("{} {}\n", kv[0].trim_start_matches("--"), kv[1]))
        .collect();
    let command = move |port: u16| {
        let conf = format!("{data}/sentinel-{port}.conf");
        std::fs::write(
            &conf,
            format!(
                "port 0\ntls-port {port}\ntls-replication yes\n{tls}bind 127.0.0.1\ndir {data}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {MASTER} 5000\n\
                 sentinel failover-timeout {MASTER} 5000\n"
            ),
        )
        .unwrap();
        sentinel_command(&conf)
    };
    start_tls(ca, "redis-sentinel", SENTINEL_HINT, dir, command)
}

/// Starts `program` listening with TLS only (`command` given its port), its files in `dir`; ready
/// once it answers `PING` over TLS (bounded).
fn start_tls(
    ca: &TestCa,
    program: &'static str,
    hint: &'static str,
    dir: tempfile::TempDir,
    command: impl Fn(u16) -> Command + Send + Sync + 'static,
) -> RedisServer {
    let daemon = Daemon::start(program, hint, command, listens);
    let server = RedisServer {
        port: daemon.port,
        daemon,
        _dir: dir,
    };
    wait_until(&format!("the TLS {program} answering PING"), FORM, || {
        ca.connection(server.port)
            .is_some_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
    });
    server
}

/// Whether something accepts connections on `port` (a TLS-only server: no plain `PING`).
fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn openssl(args: &[&[&str]]) {
    let status = Command::new("openssl")
        .args(args.iter().flat_map(|a| a.iter()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}: {status}");
}

/// A Redis topology a test started: how docgate is configured for it.
pub trait SharedRedis {
    /// The configuration of a store, limiter, log or queue on it, its keys under `prefix`.
    fn config(&self, prefix: &str) -> RedisConfig;
    /// The environment of a docgate on it (`DOCGATE_REDIS_URL`, or the cluster's or Sentinels').
    fn env(&self) -> Vec<(&'static str, String)>;
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

/// `INFO <section>` of the server on `port`, or empty when it does not answer.
fn info(port: u16, section: &str) -> String {
    redis::Client::open(url(port))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut conn| redis::cmd("INFO").arg(section).query::<String>(&mut conn))
        .unwrap_or_default()
}

/// A real Redis Cluster for one test: 3 masters (`redis-server --cluster-enabled yes`), and with
/// `replicas` one replica each, joined by `redis-cli --cluster create`; ready once every node
/// says `cluster_state:ok`. Killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// 3 masters and no replicas: the smallest cluster.
    pub fn start() -> Self {
        Self::with_replicas(false)
    }

    /// 3 masters, and a replica of each with `replicas`.
    pub fn with_replicas(replicas: bool) -> Self {
        let count = if replicas { 6 } else { 3 };
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                // The cluster bus port of its own (the default, port + 10000, may be past 65535).
                let bus = free_port().to_string();
                RedisServer::with_args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-config-file",
                    &format!("nodes-{bus}.conf"),
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", if replicas { "1" } else { "0" }])
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = ChildProcess::spawn(&mut create, HINT);
        let mut status = None;
        wait_until("redis-cli --cluster create to finish", FORM, || {
            status = process.exited();
            status.is_some()
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "redis-cli --cluster create: {status:?}"
        );
        let cluster = Self { nodes };
        wait_until("every node's cluster_state:ok", FORM, || {
            cluster
                .nodes
                .iter()
                .all(|n| cluster_info(n.port).contains("cluster_state:ok"))
        });
        if replicas {
            wait_until("every replica in sync", FORM, || {
                cluster.nodes.iter().all(|n| {
                    let replication = info(n.port, "replication");
                    replication.contains("role:master")
                        || replication.contains("master_link_status:up")
                })
            });
        }
        cluster
    }

    /// Waits (bounded) until 3 running nodes are masters and every running node says
    /// `cluster_state:ok`: after a master is lost, its replica has taken over; after a restart,
    /// the nodes have met again.
    pub fn wait_until_serving(&self) {
        wait_until("a replica promoted and cluster_state:ok", FORM, || {
            let running = || self.nodes.iter().filter(|n| n.daemon.running());
            running()
                .filter(|n| info(n.port, "replication").contains("role:master"))
                .count()
                == 3
                && running().all(|n| cluster_info(n.port).contains("cluster_state:ok"))
        });
    }

    /// The index in `nodes` of the replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> usize {
        let master = format!("master_port:{port}\r\n");
        self.nodes
            .iter()
            .position(|n| info(n.port, "replication").contains(&master))
            .expect("the master has a replica")
    }

    /// Waits (bounded) until every running node says `cluster_state:<state>`.
    pub fn wait_for_state(&self, state: &str) {
        let line = format!("cluster_state:{state}");
        wait_until(&line, FORM, || {
            self.nodes
                .iter()
                .filter(|n| n.daemon.running())
                .all(|n| cluster_info(n.port).contains(&line))
        });
    }

    /// The seed nodes docgate is given: every node.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ports of the nodes that are masters now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| info(n.port, "replication").contains("role:master"))
            .map(|n| n.port)
            .collect()
    }

    /// A cluster client (follows `MOVED`), for test setup and inspection.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::new(
            self.nodes.iter().map(RedisServer::url).collect::<Vec<_>>(),
        )
        .unwrap()
        .get_connection()
        .unwrap()
    }
}

fn cluster_info(port: u16) -> String {
    redis::Client::open(url(port))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut conn| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn))
        .unwrap_or_default()
}

impl SharedRedis for RedisCluster {
    fn config(&self, prefix: &str) -> RedisConfig {
        let mut env = std::collections::HashMap::new();
        env.insert("DOCGATE_REDIS_CLUSTER_URLS".to_owned(), self.urls());
        env.insert("DOCGATE_REDIS_PREFIX".to_owned(), prefix.to_owned());
        redis_config(env)
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DOCGATE_REDIS_CLUSTER_URLS", self.urls())]
    }
}

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
        let mut conn = redis::Client::open(url(port))
            .unwrap()
            .get_connection()
            .unwrap();
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
    fn config(&self, prefix: &str) -> RedisConfig {
        let mut env = std::collections::HashMap::new();
        env.insert("DOCGATE_REDIS_SENTINEL_URLS".to_owned(), self.urls());
        env.insert(
            "DOCGATE_REDIS_SENTINEL_MASTER".to_owned(),
            MASTER.to_owned(),
        );
        env.insert("DOCGATE_REDIS_PREFIX".to_owned(), prefix.to_owned());
        redis_config(env)
    }
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCGATE_REDIS_SENTINEL_URLS", self.urls()),
            ("DOCGATE_REDIS_SENTINEL_MASTER", MASTER.to_owned()),
        ]
    }
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

const SENTINEL_HINT: &str = "is it installed (apt-get install redis-sentinel)?";

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Whether a server on `port` answers `PING`.
fn answers_ping(port: u16) -> bool {
    redis::Client::open(url(port))
        .and_then(|c| c.get_connection())
        .is_ok_and(|mut conn| redis::cmd("PING").query::<String>(&mut conn).is_ok())
}

/// Whether the Sentinel on `conn` lists the replica on port `replica` as up and connected.
fn sentinel_knows(conn: &mut redis::Connection, replica: u16) -> bool {
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
fn sentinel_command(conf: &str) -> Command {
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
