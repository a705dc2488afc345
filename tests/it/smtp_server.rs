//! A real SMTP server for tests: `tests/smtp_sink.py` (aiosmtpd, run with Debian's
//! `/usr/bin/python3`; `scripts/test` installs `python3-aiosmtpd`) on a free loopback port, in its
//! own temporary directory, killed on drop. It saves every accepted message as a file, and can be
//! told to refuse recipients or messages, or to answer slowly.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::free_port;

/// The interpreter with the `aiosmtpd` module (the `python3` on `PATH` may lack it).
const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");

/// An SMTP server process for one test.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts a server that accepts everything.
    pub fn start() -> Self {
        let mut sink = Self::reserved();
        for _ in 0..5 {
            if sink.spawn() {
                return sink;
            }
            sink.port = free_port();
        }
        panic!(
            "the SMTP sink did not start; is python3-aiosmtpd installed (scripts/test installs it)?"
        );
    }

    /// A server with a port but not running yet: an SMTP outage. [`Self::restart`] starts it.
    pub fn reserved() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mail")).unwrap();
        Self {
            port: free_port(),
            dir,
            child: None,
        }
    }

    /// `smtp://127.0.0.1:PORT` (plain: a local relay).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage). Messages already saved stay.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the SMTP sink did not restart on port {}", self.port);
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

    /// Spawns the process and waits (bounded) until it accepts connections; false if it exited
    /// (port taken).
    fn spawn(&mut self) -> bool {
        let mut child = Command::new(PYTHON)
            .arg(SCRIPT)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/python3 is not installed (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
