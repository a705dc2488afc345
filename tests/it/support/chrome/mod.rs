//! A headless Chromium per test, driven over the Chrome DevTools Protocol (CDP).
//!
//! The driver is hand-rolled on purpose. Chromium started with `--remote-debugging-pipe` reads
//! CDP commands from its fd 3 and writes answers and events to its fd 4, each one JSON object
//! ended by a NUL byte (the transport Puppeteer uses by default). That needs no websocket, no
//! port and no HTTP client: these files, `serde_json` and `tokio`, which the tests build anyway, so
//! the browser tests add no crate and no compile time. The alternatives weighed: `chromiumoxide`
//! (generated bindings for the whole protocol, about 110k lines in `chromiumoxide_cdp`, plus
//! `async-tungstenite` and `reqwest` 0.13 beside our 0.12, a duplicate `deny.toml` refuses) and
//! `fantoccini` (WebDriver: a `chromedriver` process to run beside each browser, TLS stacks to
//! configure away, and no download directory, emulated media or console events without CDP side
//! doors anyway). The dozen CDP methods used here (`Target`, `Page`, `Runtime`, `Input`,
//! `Emulation`, `Log`, `Network`, `Browser.setDownloadBehavior`) have been stable for years.
//!
//! Each [`Browser`] owns its process (in its own process group, killed on drop), its profile,
//! its download directory and its `HOME`; it listens on no port. Name resolution is off
//! (`--host-resolver-rules`): pages can reach only IP literals, and the tests use `127.0.0.1`.
//! Without Chromium the tests fail, saying how to install it: CI installs it (`scripts/test`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::process::ChildProcess;

mod cdp;
mod page;
mod png;

pub use cdp::Event;
use cdp::*;
pub use page::{Page, Viewport};
pub use png::png_size;

/// The longest any single wait in this module lasts: a command's answer, a page load, a download.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The flags every test browser runs with: headless, no sandbox (CI runs as root), and nothing
/// that phones home or reads the machine's state, so a run is hermetic.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-extensions",
    "--disable-sync",
    "--remote-debugging-pipe",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-component-update",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,\
     CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    "--metrics-recording-only",
    "--no-pings",
    "--no-proxy-server",
    "--password-store=basic",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--lang=en-US",
    "--window-size=1280,800",
    // No name resolves: the only reachable targets are the IP literals the tests use (loopback).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

/// Debian's browser binary itself, not its `/usr/bin/chromium` wrapper (which adds extensions,
/// flags and API keys of its own).
const DEBIAN_CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// The Chromium binary: `DOCGATE_CHROMIUM` if set, else Debian's, else one on `PATH`. Panics,
/// saying how to install it, when there is none: the browser tests must not pass without a
/// browser.
pub fn chromium_binary() -> PathBuf {
    find_chromium(
        std::env::var_os("DOCGATE_CHROMIUM"),
        &[Path::new(DEBIAN_CHROMIUM)],
        &std::env::var_os("PATH").unwrap_or_default(),
    )
    .unwrap_or_else(|why| panic!("{why}"))
}

/// [`chromium_binary`]'s search, on given inputs.
fn find_chromium(
    chosen: Option<std::ffi::OsString>,
    known: &[&Path],
    path: &std::ffi::OsStr,
) -> Result<PathBuf, String> {
    if let Some(chosen) = chosen {
        let chosen = PathBuf::from(chosen);
        return if chosen.is_file() {
            Ok(chosen)
        } else {
            Err(format!(
                "DOCGATE_CHROMIUM names {}, which is not a file",
                chosen.display()
            ))
        };
    }
    if let Some(known) = known.iter().find(|p| p.is_file()) {
        return Ok(known.to_path_buf());
    }
    for dir in std::env::split_paths(path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "the browser tests need Chromium, and there is none ({DEBIAN_CHROMIUM} is missing and \
         no chromium is on PATH). Install it with `apt-get install -y --no-install-recommends \
         chromium` (./scripts/test does), or set DOCGATE_CHROMIUM to a Chrome binary."
    ))
}

/// A headless Chromium owned by one test.
pub struct Browser {
    conn: Arc<Conn>,
    /// Dropped after `reader`: kills the browser's whole process group.
    process: ChildProcess,
    reader: JoinHandle<()>,
    /// Holds `profile/`, `downloads/`, `home/` and `chromium.log`.
    root: tempfile::TempDir,
}

impl Browser {
    /// Starts a browser whose downloads land in [`Browser::downloads`].
    pub async fn launch() -> Self {
        let binary = chromium_binary();
        let root = tempfile::tempdir().unwrap();
        for dir in ["profile", "downloads", "home"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        let log = root.path().join("chromium.log");
        let mut command = Command::new("/bin/sh");
        // The shell hands our pipes to Chromium as fds 3 (commands) and 4 (answers), then
        // becomes Chromium (`exec`), so the child's pid is the browser's.
        command
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(&binary)
            .args(FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                root.path().join("profile").display()
            ))
            .arg("about:blank")
            .env("HOME", root.path().join("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut process = ChildProcess::spawn_group(&mut command, &binary.display().to_string());
        let stdin = ChildStdin::from_std(process.child().stdin.take().unwrap()).unwrap();
        let stdout = ChildStdout::from_std(process.child().stdout.take().unwrap()).unwrap();
        let (bumps, _) = watch::channel(0);
        let conn = Arc::new(Conn {
            stdin: tokio::sync::Mutex::new(stdin),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            events: Mutex::new(Vec::new()),
            bumps,
            closed: AtomicBool::new(false),
            log,
        });
        let reader = tokio::spawn(read_messages(conn.clone(), stdout));
        let browser = Self {
            conn,
            process,
            reader,
            root,
        };
        browser
            .conn
            .call(
                None,
                "Browser.setDownloadBehavior",
                json!({
                    "behavior": "allow",
                    "downloadPath": browser.downloads(),
                    "eventsEnabled": true,
                }),
            )
            .await;
        browser
    }

    /// Where downloads land.
    pub fn downloads(&self) -> PathBuf {
        self.root.path().join("downloads")
    }

    /// `Browser.getVersion`'s `product`, e.g. `Chrome/156.0.8078.79`.
    pub async fn version(&self) -> String {
        let version = self.conn.call(None, "Browser.getVersion", json!({})).await;
        version["product"].as_str().unwrap_or_default().to_owned()
    }

    /// A new tab, its events (page, console, log, network) recorded from the start.
    pub async fn new_page(&self) -> Page {
        let target = self
            .conn
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = self
            .conn
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        let session = attached["sessionId"].as_str().unwrap().to_owned();
        let page = Page {
            conn: self.conn.clone(),
            session,
            target_id,
        };
        for domain in ["Page", "Runtime", "Log", "Network"] {
            page.call(&format!("{domain}.enable"), json!({})).await;
        }
        page
    }

    /// Waits (bounded) until `name` is in the download directory, complete (no `.crdownload`
    /// left), and returns its bytes. Panics naming what is there if it does not come.
    pub async fn wait_for_download(&self, name: &str) -> Vec<u8> {
        let dir = self.downloads();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let names = list_dir(&dir);
            let partial = names.iter().any(|n| n.ends_with(".crdownload"));
            if !partial && names.iter().any(|n| n == name) {
                return std::fs::read(dir.join(name)).unwrap();
            }
            if Instant::now() >= deadline {
                panic!(
                    "{name} was not downloaded within {TIMEOUT:?}; the directory holds {names:?}; \
                     the browser said {:#?}",
                    self.download_events()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many events have arrived so far: a mark for [`Browser::wait_for_next_download`].
    pub fn mark(&self) -> usize {
        self.conn.mark()
    }

    /// Waits (bounded) for the next download begun after `mark` to complete, as the browser
    /// reports it (a download of a name already there replaces it); returns its suggested name
    /// and its bytes.
    pub async fn wait_for_next_download(&self, mark: usize) -> (String, Vec<u8>) {
        let (at, begun) = self
            .conn
            .wait_event(mark, "a download to begin", |e| {
                e.method == "Browser.downloadWillBegin"
            })
            .await;
        let guid = begun.params["guid"].clone();
        let (_, done) = self
            .conn
            .wait_event(at, "the download to end", |e| {
                e.method == "Browser.downloadProgress"
                    && e.params["guid"] == guid
                    && e.params["state"] != "inProgress"
            })
            .await;
        assert_eq!(
            done.params["state"],
            "completed",
            "{:#?}",
            self.download_events()
        );
        let path = done.params["filePath"].as_str().unwrap();
        let name = begun.params["suggestedFilename"]
            .as_str()
            .unwrap()
            .to_owned();
        (name, std::fs::read(path).unwrap())
    }

    /// What the browser reported about downloads (`Browser.downloadWillBegin` and the final
    /// `Browser.downloadProgress` of each), for failure messages.
    pub fn download_events(&self) -> Vec<Value> {
        self.conn
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                e.method == "Browser.downloadWillBegin"
                    || (e.method == "Browser.downloadProgress" && e.params["state"] != "inProgress")
            })
            .map(|e| json!({ "event": e.method, "params": e.params }))
            .collect()
    }

    /// The names in the download directory.
    pub fn downloaded(&self) -> Vec<String> {
        list_dir(&self.downloads())
    }
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[test]
fn without_chromium_the_browser_tests_fail_saying_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("chromium");
    let why = find_chromium(None, &[&missing], empty.path().as_os_str()).unwrap_err();
    assert!(
        why.contains("apt-get install -y --no-install-recommends chromium"),
        "{why}"
    );
    let why = find_chromium(Some(missing.clone().into()), &[], "".as_ref()).unwrap_err();
    assert!(why.contains("DOCGATE_CHROMIUM"), "{why}");
    std::fs::write(&missing, "").unwrap();
    assert_eq!(
        find_chromium(None, &[], empty.path().as_os_str()),
        Ok(missing)
    );
}
