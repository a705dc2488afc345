//! The real `docgate` binary as a child process: bad configuration at startup, what its logs
//! hold, memory while streaming a big file, and draining in-flight downloads on SIGTERM.
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

/// A bad configuration value and what its startup failure must say.
struct BadConfig {
    /// The variable the message must name.
    var: &'static str,
    set: Vec<(&'static str, String)>,
    unset: &'static [&'static str],
    /// A value that must not be printed.
    hidden: Option<&'static str>,
}

#[tokio::test]
async fn bad_configuration_stops_startup_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let path = |p: &str| root.join(p).display().to_string();
    std::fs::write(root.join("outside.pdf"), b"%PDF-1.4 outside the documents").unwrap();
    std::fs::write(
        root.join("missing-object.toml"),
        "[documents.gone]\nkey = \"gone/nothing-here.pdf\"\nfilename = \"gone.pdf\"\ntitle = \"Gone\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("traversal.toml"),
        "[documents.outside]\nkey = \"../outside.pdf\"\nfilename = \"outside.pdf\"\ntitle = \"Outside\"\n",
    )
    .unwrap();
    // Distinctive, so finding it in the output means the value leaked (not a word like "short").
    const SHORT_SECRET: &str = "shortQz7Secret";

    let cases = [
        BadConfig {
            var: "DOCGATE_TOKEN_TTL",
            set: vec![("DOCGATE_TOKEN_TTL", "15x".to_owned())],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_TOKEN_SECRET",
            set: vec![("DOCGATE_TOKEN_SECRET", SHORT_SECRET.to_owned())],
            unset: &[],
            hidden: Some(SHORT_SECRET),
        },
        BadConfig {
            var: "DOCGATE_CATALOG",
            set: vec![("DOCGATE_CATALOG", path("no-such-catalog.toml"))],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_CATALOG",
            set: vec![("DOCGATE_CATALOG", path("missing-object.toml"))],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_CATALOG",
            set: vec![("DOCGATE_CATALOG", path("traversal.toml"))],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_LIMIT_REQUEST_PER_IP",
            set: vec![("DOCGATE_LIMIT_REQUEST_PER_IP", "lots".to_owned())],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_TOKEN_SECRET_FILE",
            set: vec![("DOCGATE_TOKEN_SECRET_FILE", "/nonexistent".to_owned())],
            unset: &["DOCGATE_TOKEN_SECRET"],
            hidden: None,
        },
    ];

    for case in cases {
        let mut env = serve_env(root);
        for name in case.unset {
            env.remove(*name);
        }
        for (name, value) in &case.set {
            env.insert((*name).to_owned(), value.clone());
        }
        let shown = format!("{:?} {:?}", case.set, case.unset);
        let (stderr, stdout) = refused_startup(root, &env, case.var, &shown).await;
        if let Some(hidden) = case.hidden {
            assert!(
                !stderr.contains(hidden) && !stdout.contains(hidden),
                "{shown}: the secret value is printed: {stderr:?} {stdout:?}"
            );
        }
    }

    // A secret mounted as a file, with the newline `echo` leaves: accepted.
    let file_secret = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
    assert_eq!(file_secret.len(), 40);
    std::fs::write(root.join("token-secret"), format!("{file_secret}\n")).unwrap();
    let mut env = serve_env(root);
    env.remove("DOCGATE_TOKEN_SECRET");
    env.insert("DOCGATE_TOKEN_SECRET_FILE".to_owned(), path("token-secret"));
    let mut process = Docgate::spawn(root, &env, &["check"]);
    let status = process.exit(EXIT).await;
    let stdout = process.stdout.text();
    let stderr = process.stderr.text();
    eprintln!("docgate check with DOCGATE_TOKEN_SECRET_FILE -> {status}:\n{stdout}{stderr}");
    assert_eq!(
        status.code(),
        Some(0),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("config: ok")),
        "{stdout:?}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("catalog: ok")),
        "{stdout:?}"
    );
    assert!(!stdout.contains(file_secret) && !stderr.contains(file_secret));
}

/// With no secret configured (embedded mode's default), a bad value still stops startup with one
/// line: the warning about the random per-start secret concerns a service that starts.
#[tokio::test]
async fn bad_configuration_without_a_secret_still_stops_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let mut env = serve_env(root);
    env.remove("DOCGATE_TOKEN_SECRET");
    env.insert(
        "DOCGATE_CATALOG".to_owned(),
        root.join("no-such-catalog.toml").display().to_string(),
    );
    refused_startup(
        root,
        &env,
        "DOCGATE_CATALOG",
        "DOCGATE_CATALOG missing, no DOCGATE_TOKEN_SECRET",
    )
    .await;
}

#[tokio::test]
async fn text_logs_hold_no_personal_data_or_secrets() {
    logs_hold_no_personal_data_or_secrets("text").await;
}

#[tokio::test]
async fn json_logs_hold_no_personal_data_or_secrets() {
    logs_hold_no_personal_data_or_secrets("json").await;
}

/// The access log lines in `log`: `(status, route)` of each.
fn access_lines(log: &str, format: &str) -> Vec<(u64, String)> {
    if format == "json" {
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l:?}"))
            })
            .filter(|v| v["message"] == "request")
            .map(|v| {
                (
                    v["status"].as_u64().unwrap_or_default(),
                    v["route"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    } else {
        let field = |line: &str, name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_default()
                .to_owned()
        };
        strip_ansi(log)
            .lines()
            .filter(|l| l.contains(" request method="))
            .map(|l| {
                (
                    field(l, "status=").parse().unwrap_or_default(),
                    field(l, "route="),
                )
            })
            .collect()
    }
}

async fn logs_hold_no_personal_data_or_secrets(format: &str) {
    const EMAIL: &str = "secret.person@example.org";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let mut env = serve_env(root);
    env.insert("DOCGATE_LOG".to_owned(), "debug".to_owned());
    env.insert("DOCGATE_LOG_FORMAT".to_owned(), format.to_owned());
    let mut server = Server::start(root, &env).await;

    let (mail_path, url) = server.link(EMAIL, "resume").await;
    let token = support::token_of(&url).to_owned();
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "{token}");
    let claims = TokenCodec::single(&Secret::new(SECRET.into()))
        .verify(&token, support::now())
        .expect("the mailed token verifies with the configured secret");
    let jti = claims.jti.clone();

    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(
        support::sha256(&body),
        support::sha256(&support::content(1, support::RESUME_LEN))
    );
    let again = server.client.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 410);
    let _ = again.bytes().await;
    let garbage = server
        .client
        .get(format!("{}/d/garbage", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let _ = garbage.bytes().await;

    server.process.terminate();
    let status = server.process.exit(EXIT).await;
    assert!(
        status.success(),
        "docgate exited with {status} after SIGTERM"
    );
    let log = server.process.stderr.text();
    let plain = strip_ansi(&log);
    eprintln!("--- {format} log ---\n{plain}--- end of {format} log ---");

    let access = access_lines(&log, format);
    let statuses: Vec<u64> = access.iter().map(|(status, _)| *status).collect();
    for status in [202, 200, 410, 400] {
        assert!(
            statuses.contains(&status),
            "no access line with status {status}: {access:?}"
        );
    }
    assert!(
        access
            .iter()
            .any(|(s, r)| *s == 202 && r == "/api/download-requests"),
        "{access:?}"
    );
    assert!(
        access
            .iter()
            .filter(|(s, _)| [200, 410, 400].contains(s))
            .all(|(_, r)| r == "/d/<redacted>"),
        "download routes are redacted: {access:?}"
    );

    let mut needles = vec![
        ("the email address", EMAIL),
        ("the email's local part", "secret.person"),
        ("the token", token.as_str()),
        ("the full jti", jti.as_str()),
        ("the secret", SECRET),
    ];
    for segment in &segments {
        needles.push(("a token segment", segment));
    }
    for (what, needle) in needles {
        assert!(
            !log.contains(needle) && !plain.contains(needle),
            "the {format} log holds {what} ({needle:?})"
        );
    }

    let mail_file = mail_path.file_name().unwrap().to_str().unwrap();
    assert!(
        plain.contains(mail_file),
        "the {format} log does not name the outbox file {mail_file}"
    );
}

#[tokio::test]
async fn memory_stays_bounded_while_streaming_a_big_file() {
    const HUGE_LEN: usize = 200 * MIB;
    const BOUND_KIB: u64 = 32 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let written = Instant::now();
    let expected = write_document(&root.join("documents/huge.bin"), HUGE_LEN, 7);
    eprintln!("wrote 200 MiB in {:?}", written.elapsed());
    add_to_catalog(root, "huge", "huge.bin");
    let server = Server::start(root, &serve_env(root)).await;
    let pid = server.process.pid();

    let live = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let _ = live.bytes().await;
    let before = memory(pid);

    let (_, url) = server.link("reader@example.org", "huge").await;
    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.content_length(),
        Some(HUGE_LEN as u64),
        "Content-Length"
    );
    let started = Instant::now();
    let mut stream = response.bytes_stream();
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    let mut next_sample = 0usize;
    let mut max_rss_kib = before.rss_kib;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.unwrap_or_else(|e| panic!("the download broke after {received} bytes: {e}"));
        received += chunk.len();
        hasher.update(&chunk);
        if received >= next_sample {
            max_rss_kib = max_rss_kib.max(memory(pid).rss_kib);
            next_sample += 8 * MIB;
        }
    }
    let elapsed = started.elapsed();
    let after = memory(pid);
    eprintln!(
        "docgate memory: before VmHWM {} KiB VmRSS {} KiB; after VmHWM {} KiB VmRSS {} KiB; \
         max sampled VmRSS {} KiB; VmHWM growth {} KiB; 200 MiB streamed in {:?} ({:.0} MiB/s)",
        before.hwm_kib,
        before.rss_kib,
        after.hwm_kib,
        after.rss_kib,
        max_rss_kib,
        after.hwm_kib.saturating_sub(before.hwm_kib),
        elapsed,
        HUGE_LEN as f64 / MIB as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(received, HUGE_LEN);
    assert_eq!(format!("{:x}", hasher.finalize()), expected);
    assert!(
        after.hwm_kib.saturating_sub(before.hwm_kib) < BOUND_KIB,
        "VmHWM grew from {} KiB to {} KiB while streaming 200 MiB",
        before.hwm_kib,
        after.hwm_kib
    );
}

/// Waits (bounded) until connecting to `addr` is refused; returns how long that took.
///
/// While the listening socket closes, a connection may still be reset (it sat in the accept
/// queue) or its SYN dropped (retransmitted only after a second): both are retried with a fresh
/// socket, so the first attempt after the close is the one that sees the refusal.
async fn wait_until_refused(addr: SocketAddr, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let attempt = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(200), attempt).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return started.elapsed();
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(Err(e)) => panic!("connecting to {addr} failed otherwise than refused: {e}"),
            Ok(Ok(stream)) => drop(stream),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < within,
            "{addr} still accepts connections {within:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Two workers: the download and the connection probes each get one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_then_refuses_connections_and_drains_the_download() {
    const LEN: usize = 200 * MIB;
    /// Reading pace: the download takes about 2.5 s.
    const BYTES_PER_SEC: f64 = 80.0 * MIB as f64;
    const DELAY: Duration = Duration::from_millis(1000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let expected = write_document(&root.join("documents/drain.bin"), LEN, 11);
    add_to_catalog(root, "drain", "drain.bin");
    let mut env = serve_env(root);
    env.insert("DOCGATE_DRAIN_TIMEOUT".to_owned(), "20s".to_owned());
    env.insert("DOCGATE_SHUTDOWN_DELAY".to_owned(), "1s".to_owned());
    let mut server = Server::start(root, &env).await;
    let (_, url) = server.link("patient@example.org", "drain").await;
    let readyz = format!("http://{}/readyz", server.addr);
    assert_eq!(
        server.client.get(&readyz).send().await.unwrap().status(),
        200
    );

    let (first_bytes, arrived) = tokio::sync::oneshot::channel::<()>();
    let client = server.client.clone();
    let download = tokio::spawn(async move {
        let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
        if response.status() != 200 {
            return Err(format!("status {}", response.status()));
        }
        let started = Instant::now();
        let mut first_bytes = Some(first_bytes);
        let mut stream = response.bytes_stream();
        let mut hasher = Sha256::new();
        let mut received = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("cut off after {received} bytes: {e}"))?;
            received += chunk.len();
            hasher.update(&chunk);
            if let Some(tx) = first_bytes.take() {
                let _ = tx.send(());
            }
            let due = Duration::from_secs_f64(received as f64 / BYTES_PER_SEC);
            match due.checked_sub(started.elapsed()) {
                Some(wait) => tokio::time::sleep(wait).await,
                // Hashing is slow in debug builds: let the probes run between chunks.
                None => tokio::task::yield_now().await,
            }
        }
        Ok::<_, String>((
            received,
            format!("{:x}", hasher.finalize()),
            started.elapsed(),
        ))
    });

    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("the first bytes arrive within 10 s")
        .expect("the download task is alive");
    let terminated = Instant::now();
    server.process.terminate();

    // Readiness turns 503 at once, on a new connection: the listener still accepts.
    let mut draining = None;
    for _ in 0..50 {
        let response = server.client.get(&readyz).send().await.unwrap();
        if response.status() == 503 {
            draining = Some(response.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let draining = draining.expect("readiness never turned 503 after SIGTERM");
    assert_eq!(draining["status"], "draining");
    assert!(terminated.elapsed() < DELAY, "readiness turned too late");

    // After the delay, new connections are refused; the download is still in flight.
    wait_until_refused(server.addr, Duration::from_secs(5)).await;
    let refused_after = terminated.elapsed();
    eprintln!("new connections refused {refused_after:?} after SIGTERM");
    assert!(
        refused_after >= DELAY,
        "refused before the delay: {refused_after:?}"
    );
    assert!(
        !download.is_finished(),
        "the download should still be in flight when the listener closes"
    );

    let (received, hash, took) = tokio::time::timeout(Duration::from_secs(30), download)
        .await
        .expect("the download finishes within 30 s")
        .expect("the download task did not panic")
        .unwrap_or_else(|e| panic!("the in-flight download failed: {e}"));
    eprintln!("the in-flight download took {took:?}");
    assert_eq!(received, LEN);
    assert_eq!(hash, expected);

    let status = server.process.exit(EXIT).await;
    let log = strip_ansi(&server.process.stderr.text());
    assert_eq!(status.code(), Some(0), "exit {status}; stderr:\n{log}");
    assert!(
        !log.contains("drain timeout reached"),
        "the drain timed out:\n{log}"
    );
}

/// Two docgate processes sharing one Redis: 50 clients race for one link, split across both, and
/// exactly one of them gets the whole document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_racing_across_two_processes_get_one_download() {
    let redis = crate::support::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    support::write_fixtures(dir.path());
    let mut env = serve_env(dir.path());
    env.insert("DOCGATE_REDIS_URL".to_owned(), redis.url());
    let first = Server::start(dir.path(), &env).await;
    let second = Server::start(dir.path(), &env).await;

    let (_, link) = first.link("racer@example.org", "big").await;
    let token = support::token_of(&link).to_owned();
    let urls = [
        format!("{}/d/{token}", first.base),
        format!("{}/d/{token}", second.base),
    ];
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let url = urls[i % 2].clone();
            tokio::spawn(async move {
                let response = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .unwrap()
                    .get(&url)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let mut hasher = Sha256::new();
                let mut len = 0usize;
                let mut stream = response.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.unwrap();
                    len += chunk.len();
                    hasher.update(&chunk);
                }
                (status, len, format!("{:x}", hasher.finalize()))
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let winners: Vec<_> = results.iter().filter(|(s, _, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", statuses(&results));
    assert_eq!(winners[0].1, support::BIG_LEN);
    assert_eq!(
        winners[0].2,
        support::sha256(&support::content(3, support::BIG_LEN))
    );
    assert!(
        results.iter().all(|(s, _, _)| matches!(s, 200 | 409 | 410)),
        "{:?}",
        statuses(&results)
    );
}

fn statuses(results: &[(u16, usize, String)]) -> Vec<u16> {
    results.iter().map(|(s, _, _)| *s).collect()
}

#[tokio::test]
async fn on_embedded_defaults_the_cli_mints_and_revokes_through_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    support::write_fixtures(dir.path());
    let env = serve_env(dir.path());
    assert!(!env.contains_key("DOCGATE_REDIS_URL") && !env.contains_key("DOCGATE_ADMIN_TOKEN"));
    let mut server = Server::start(dir.path(), &env).await;
    let admin = admin_addr(&server.process.stderr.text()).expect("the admin address is logged");

    // The per-start credential: next to the request log, readable by this user only.
    let credential = dir.path().join("docgate-admin-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&credential).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&credential).unwrap().len() >= 43);

    let mut cli = env.clone();
    cli.insert("DOCGATE_ADMIN_LISTEN".to_owned(), admin.to_string());
    let cli = cli;
    let token_url = |url: &str| {
        assert!(url.starts_with(&format!("{PUBLIC_URL}/d/")), "{url}");
        format!("{}/d/{}", server.base, support::token_of(url))
    };

    // A link printed by `docgate link` downloads.
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &["link", "--email", "cli@example.org", "--document", "resume"],
    );
    assert_eq!(code, 0, "{err}");
    let url = token_url(out.trim());
    let response = server.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), support::RESUME_LEN);
    assert_eq!(body.to_vec(), support::content(1, support::RESUME_LEN));
    assert!(server.mails().is_empty(), "no mail without --send");

    // `docgate revoke <jti>` withdraws one: 410 afterwards, and a second revoke finds nothing.
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &[
            "link",
            "--email",
            "cli@example.org",
            "--document",
            "resume",
            "--json",
            "--ttl",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let minted: serde_json::Value = serde_json::from_str(&out).unwrap();
    let jti = minted["jti"].as_str().unwrap().to_owned();
    let url = token_url(minted["url"].as_str().unwrap());
    assert_eq!(server.client.head(&url).send().await.unwrap().status(), 200);
    let (code, out, err) = binary::run(dir.path(), &cli, &["revoke", &jti]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("revoked {jti}").as_str()),
        "{err}"
    );
    assert_eq!(server.client.get(&url).send().await.unwrap().status(), 410);
    let (code, out, err) = binary::run(dir.path(), &cli, &["revoke", &jti]);
    assert_eq!(code, 65, "{out} {err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // `--send` mails it, as a visitor's request would; `revoke --email` withdraws every link.
    let (code, _, err) = binary::run(
        dir.path(),
        &cli,
        &[
            "link",
            "--email",
            "sent@example.org",
            "--document",
            "lebenslauf",
            "--send",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(Mail::read(&mails[0]).to, "sent@example.org");
    let (code, out, err) =
        binary::run(dir.path(), &cli, &["revoke", "--email", "Sent@Example.org"]);
    assert_eq!((code, out.trim()), (0, "revoked 1 links"), "{err}");

    // Refusals are one line with a documented code: a bad address, a wrong credential.
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &[
            "link",
            "--email",
            "\"john doe\"@example.com",
            "--document",
            "resume",
        ],
    );
    assert_eq!(code, 65, "{out} {err}");
    assert!(out.is_empty() && err.lines().count() == 1, "{err}");
    let mut wrong = cli.clone();
    wrong.insert(
        "DOCGATE_ADMIN_TOKEN".to_owned(),
        "not-the-service-token-0123456789".to_owned(),
    );
    let (code, out, err) = binary::run(dir.path(), &wrong, &["revoke", &jti]);
    assert_eq!(code, 64, "{out} {err}");
    assert!(out.is_empty() && err.lines().count() == 1, "{err}");

    // A second service started on the same address fails, and leaves the running one's
    // credential as it was: the command line still reaches the running service.
    let held = std::fs::read(&credential).unwrap();
    let mut second = env.clone();
    second.insert(
        "DOCGATE_LISTEN".to_owned(),
        server.base.trim_start_matches("http://").to_owned(),
    );
    let (code, _, err) = binary::run(dir.path(), &second, &["serve"]);
    assert_eq!(code, 64, "{err}");
    assert_eq!(std::fs::read(&credential).unwrap(), held);
    let (code, _, err) = binary::run(dir.path(), &cli, &["revoke", &jti]);
    assert_eq!(code, 65, "still reached, the link already withdrawn: {err}");

    // Stopped, the service takes its credential with it; the command line says so in one line.
    server.process.terminate();
    assert!(server.process.exit(EXIT).await.success());
    assert!(!credential.exists(), "the credential outlived the service");
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &["link", "--email", "cli@example.org", "--document", "resume"],
    );
    assert_eq!(code, 69, "{out} {err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no running docgate"), "{err}");
    // With the token configured on both sides and nothing listening: the same code.
    let mut configured = cli.clone();
    configured.insert(
        "DOCGATE_ADMIN_TOKEN".to_owned(),
        "a-configured-admin-token-0123456789".to_owned(),
    );
    let (code, _, err) = binary::run(dir.path(), &configured, &["revoke", &jti]);
    assert_eq!(code, 69, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no running docgate"), "{err}");
}
