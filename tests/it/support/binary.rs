//! The real `docgate` binary as a child process: run once (the CLI) or started to serve, in a
//! directory of its own with a cleared environment (only `PATH` kept), its output read on
//! background threads so no pipe fills, killed when its guard drops. Every wait is bounded.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::process::{Captured, ChildProcess, free_port};

pub const BIN: &str = env!("CARGO_BIN_EXE_docgate");

/// The binary, to run in `dir` with exactly `env` (and `PATH`).
fn command<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    dir: &Path,
    env: impl IntoIterator<Item = (K, V)>,
    args: &[&str],
) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir).env_clear().envs(env);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// Runs the binary once in `dir` with exactly `env`; returns its exit code, stdout and stderr.
pub fn run<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    dir: &Path,
    env: impl IntoIterator<Item = (K, V)>,
    args: &[&str],
) -> (i32, String, String) {
    let output = command(dir, env, args)
        .output()
        .expect("the docgate binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// A running `docgate`, killed and reaped on drop.
pub struct Docgate {
    process: ChildProcess,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl Docgate {
    /// Starts the binary in `dir` with exactly `env`.
    pub fn spawn<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        dir: &Path,
        env: impl IntoIterator<Item = (K, V)>,
        args: &[&str],
    ) -> Self {
        let mut command = command(dir, env, args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = ChildProcess::spawn(&mut command, "cargo builds it");
        let stdout = Captured::read_from(process.child().stdout.take().unwrap());
        let stderr = Captured::read_from(process.child().stderr.take().unwrap());
        Self {
            process,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// Waits (bounded) until it logs the `docgate serving` line; returns the listening address.
    pub async fn serving(&mut self, within: Duration) -> SocketAddr {
        let stderr = self.stderr.clone();
        self.process
            .wait_for(
                "the \"docgate serving\" log line",
                within,
                || listen_addr(&stderr.text()),
                || stderr.text(),
            )
            .await
    }

    /// Starts `docgate serve` in `dir` on two free loopback ports, its listener's and its admin
    /// listener's, with the environment `env` gives for them, and waits (bounded) until it
    /// serves; returns it with the two ports. A port found free can be taken by another process
    /// before docgate binds it: docgate then exits saying so, and it is started again on two
    /// other ports, a few times at most. Any other exit panics, as [`Self::serving`] does.
    pub async fn serve_on_free_ports(
        dir: &Path,
        within: Duration,
        env: impl Fn(u16, u16) -> Vec<(String, String)>,
    ) -> (Self, u16, u16) {
        const ATTEMPTS: usize = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (port, admin_port) = (free_port(), free_port());
            let mut docgate = Self::spawn(dir, env(port, admin_port), &["serve"]);
            if docgate.serving_unless_port_taken(within).await {
                return (docgate, port, admin_port);
            }
            assert!(
                attempt < ATTEMPTS,
                "docgate found a port taken {ATTEMPTS} times"
            );
        }
    }

    /// As [`Self::serving`], but `false` instead of a panic when docgate exited because a port it
    /// was to listen on is in use.
    async fn serving_unless_port_taken(&mut self, within: Duration) -> bool {
        let stderr = self.stderr.clone();
        self.process
            .wait_for(
                "the \"docgate serving\" log line",
                within,
                || {
                    let said = stderr.text();
                    if listen_addr(&said).is_some() {
                        Some(true)
                    } else {
                        said.contains("Address already in use").then_some(false)
                    }
                },
                || stderr.text(),
            )
            .await
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub fn terminate(&mut self) {
        assert!(
            self.exited().is_none(),
            "docgate exited before SIGTERM; stderr:\n{}",
            self.stderr.text()
        );
        self.process.signal("TERM");
    }

    /// Waits (bounded) for the child to exit, and for its output to be read to the end.
    pub async fn exit(&mut self, within: Duration) -> ExitStatus {
        let stderr = self.stderr.clone();
        let status = self.process.exit(within, || stderr.text()).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(self.stdout.done() && self.stderr.done()) {
            assert!(
                Instant::now() < deadline,
                "docgate's output pipes stayed open after it exited"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        status
    }
}

/// The address in the `docgate serving` log line, in either log format.
pub fn listen_addr(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
            if value["message"] != "docgate serving" {
                return None;
            }
            return value["listen"].as_str()?.parse().ok();
        }
        let line = strip_ansi(line);
        if !line.contains("docgate serving") {
            return None;
        }
        line.split_whitespace()
            .find_map(|word| word.strip_prefix("listen="))?
            .parse()
            .ok()
    })
}

/// The admin address in the `docgate serving` log line (JSON logs).
pub fn admin_addr(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let value = serde_json::from_str::<serde_json::Value>(line).ok()?;
        if value["message"] != "docgate serving" {
            return None;
        }
        value["admin"].as_str()?.parse().ok()
    })
}

/// `text` without ANSI escape sequences (the text log format colours its output).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}
