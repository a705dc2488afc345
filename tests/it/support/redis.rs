//! A real `redis-server` per test, on a free loopback port in its own temporary directory, with
//! persistence off; killed on drop. Outage tests stop, pause or restart it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};

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

    /// A blocking client connection, for test setup and inspection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
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
