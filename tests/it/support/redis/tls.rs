//! A standalone server and a Sentinel setup that speak TLS only, with certificates from a private
//! CA the test makes with `openssl`.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::sentinel::{SENTINEL_HINT, sentinel_command, sentinel_knows};
use super::*;
use crate::support::process::{Daemon, free_port};

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
