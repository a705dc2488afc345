//! A real SMTP server for tests: `tests/smtp_sink.py` (aiosmtpd, run with Debian's
//! `/usr/bin/python3`; `scripts/test` installs `python3-aiosmtpd`) on a free loopback port, in its
//! own temporary directory, killed on drop. It saves every accepted message as a file, and can be
//! told to refuse recipients or messages, or to answer slowly.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::process::Daemon;

/// The interpreter with the `aiosmtpd` module (the `python3` on `PATH` may lack it).
const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
const HINT: &str = "is python3-aiosmtpd installed (scripts/test installs it)?";

/// An SMTP server process for one test.
pub struct SmtpSink {
    pub port: u16,
    daemon: Daemon,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts a server that accepts everything.
    pub fn start() -> Self {
        let dir = sink_dir();
        let daemon = Daemon::start("the SMTP sink", HINT, command(dir.path()), accepts);
        Self {
            port: daemon.port,
            daemon,
            dir,
        }
    }

    /// A server with a port but not running yet: an SMTP outage. [`Self::restart`] starts it.
    pub fn reserved() -> Self {
        let dir = sink_dir();
        let daemon = Daemon::reserved("the SMTP sink", HINT, command(dir.path()), accepts);
        Self {
            port: daemon.port,
            daemon,
            dir,
        }
    }

    /// `smtp://127.0.0.1:PORT` (plain: a local relay).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage). Messages already saved stay.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Starts the server (again) on the same port.
    pub fn restart(&mut self) {
        self.daemon.restart();
    }

    /// Replaces the control file: e.g. `"rcpt 550 5.1.1 No such user"`, `"data 451 4.3.0 Later"`,
    /// `"delay 1"`; `""` accepts everything again.
    pub fn control(&self, rules: &str) {
        let path = self.dir.path().join("control");
        let partial = self.dir.path().join(".control");
        std::fs::write(&partial, rules).unwrap();
        std::fs::rename(partial, path).unwrap();
    }

    /// Waits (bounded) until the sink holds `n` messages, and returns them.
    pub async fn delivered(&self, n: usize) -> Vec<PathBuf> {
        for _ in 0..300 {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "{n} mails never arrived; the sink has {}",
            self.messages().len()
        );
    }

    /// The saved messages, oldest first.
    pub fn messages(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
    }

    /// Every answer given so far: `"rcpt 250"`, `"data 451"`, `"rcpt-wait"`, ...
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("events"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The sink's directory: `mail/` for the messages, `control` and `events` beside it.
fn sink_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mail")).unwrap();
    dir
}

/// The sink's command line for a port, saving into `dir`.
fn command(dir: &Path) -> impl Fn(u16) -> Command + Send + Sync + 'static {
    let dir = dir.to_path_buf();
    move |port| {
        let mut command = Command::new(PYTHON);
        command
            .arg(SCRIPT)
            .arg(port.to_string())
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }
}

/// Whether the sink on `port` accepts connections.
fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}
