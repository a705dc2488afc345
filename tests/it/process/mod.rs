//! The real `docgate` binary as a child process: bad configuration at startup ([`startup`]), what
//! its logs hold ([`logs`]), memory, draining on SIGTERM and racing replicas ([`running`]), and the
//! CLI against the running service ([`cli`]).
//!
//! Every child ([`Docgate`]) runs in its own temporary directory with a cleared environment, listens
//! on a free loopback port (`DOCGATE_LISTEN=127.0.0.1:0`, the port read from its startup log line)
//! and is killed when its guard drops, whichever way the test ends. Every wait is bounded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use docgate::config::Secret;
use docgate::token::TokenCodec;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::support::binary::{self, Docgate, admin_addr, strip_ansi};
use crate::support::{self, Mail};
mod cli;
mod logs;
mod running;
mod startup;

/// The signing secret of the children that serve.
const SECRET: &str = "process-secret-Q7wX2mZk9pLr4vTb8nYc3hJd";
/// The base of links in mails. Unknown before the port is, so tests put the real address in.
const PUBLIC_URL: &str = "http://docgate.invalid";
/// How long a child may take to log that it serves.
const STARTUP: Duration = Duration::from_secs(20);
/// How long a child may take to exit after a bad configuration or a signal.
const EXIT: Duration = Duration::from_secs(25);
const MIB: usize = 1024 * 1024;

type Env = BTreeMap<String, String>;

/// A `docgate serve` child that has logged its listening address.
struct Server {
    process: Docgate,
    addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    base: String,
    outbox: PathBuf,
    client: reqwest::Client,
}

impl Server {
    async fn start(dir: &Path, env: &Env) -> Self {
        let mut process = Docgate::spawn(dir, env, &["serve"]);
        let addr = process.serving(STARTUP).await;
        assert!(addr.ip().is_loopback(), "listening on {addr}");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Self {
            process,
            addr,
            base: format!("http://{addr}"),
            outbox: PathBuf::from(&env["DOCGATE_OUTBOX_DIR"]),
            client,
        }
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.client.get(url).send().await.unwrap()
    }

    async fn head(&self, url: &str) -> reqwest::Response {
        self.client.head(url).send().await.unwrap()
    }

    async fn request_link(&self, email: &str, document: &str) -> reqwest::Response {
        support::request_link(&self.client, &self.base, email, document).await
    }

    /// The `.eml` files in the outbox.
    fn mails(&self) -> Vec<PathBuf> {
        support::eml_files(&self.outbox)
    }

    /// Asks for `document` as `email`; returns the path of the one new mail and the link in it,
    /// pointed at this server.
    async fn link(&self, email: &str, document: &str) -> (PathBuf, String) {
        let before = self.mails();
        let response = self.request_link(email, document).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        let new: Vec<PathBuf> = self
            .mails()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert_eq!(new.len(), 1, "exactly one new mail: {new:?}");
        let mail = Mail::read(&new[0]);
        assert_eq!(mail.to, email);
        assert!(
            mail.link.starts_with(&format!("{PUBLIC_URL}/d/")),
            "{}",
            mail.link
        );
        let url = format!("{}/d/{}", self.base, support::token_of(&mail.link));
        (new[0].clone(), url)
    }
}

/// The environment of a child serving the fixtures in `dir`, logging JSON.
fn serve_env(dir: &Path) -> Env {
    let mut env: Env = support::fixture_env(dir, PUBLIC_URL, SECRET)
        .into_iter()
        .collect();
    env.insert("DOCGATE_LISTEN".to_owned(), "127.0.0.1:0".to_owned());
    env.insert("DOCGATE_LOG_FORMAT".to_owned(), "json".to_owned());
    // Tests that stop a server do not wait for load balancers; the rollout test sets its own.
    env.insert("DOCGATE_SHUTDOWN_DELAY".to_owned(), "0s".to_owned());
    env
}

/// Writes `len` deterministic pseudo-random bytes to `path` in 1 MiB chunks; returns their SHA-256.
fn write_document(path: &Path, len: usize, seed: u64) -> String {
    let mut file = File::create(path).unwrap();
    let mut hasher = Sha256::new();
    let mut state = 0x2545_F491_4F6C_DD1D_u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut chunk = vec![0u8; MIB];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        for word in chunk[..n].chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    file.sync_all().unwrap();
    format!("{:x}", hasher.finalize())
}

/// Adds a document to the fixtures' catalog, its file already under `documents/`.
fn add_to_catalog(dir: &Path, id: &str, key: &str) {
    let mut catalog = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("catalog.toml"))
        .unwrap();
    write!(
        catalog,
        "\n[documents.{id}]\nkey = \"{key}\"\nfilename = \"{key}\"\ntitle = \"The {id} file\"\n"
    )
    .unwrap();
}

/// A process's peak and current resident set, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
struct Memory {
    hwm_kib: u64,
    rss_kib: u64,
}

fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Memory {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
    }
}

/// Starts `docgate` (no subcommand: `serve` is the default) and checks that it refuses to start:
/// exit code 64 and exactly one line on stderr, naming `var`. Returns stderr and stdout.
async fn refused_startup(dir: &Path, env: &Env, var: &str, shown: &str) -> (String, String) {
    let mut process = Docgate::spawn(dir, env, &[]);
    let status = process.exit(EXIT).await;
    let stderr = process.stderr.text();
    let stdout = process.stdout.text();
    eprintln!("{shown} -> {status}: {stderr:?}");
    assert_eq!(status.code(), Some(64), "{shown}: stderr {stderr:?}");
    assert!(
        !stderr.trim().is_empty() && stderr.trim_end_matches('\n').lines().count() == 1,
        "{shown}: stderr is not exactly one line: {stderr:?}"
    );
    assert!(
        stderr.contains(var),
        "{shown}: {stderr:?} does not name {var}"
    );
    (stderr, stdout)
}
