//! A headless Chromium per test, driven over the Chrome DevTools Protocol (CDP).
//!
//! The driver is hand-rolled on purpose. Chromium started with `--remote-debugging-pipe` reads
//! CDP commands from its fd 3 and writes answers and events to its fd 4, each one JSON object
//! ended by a NUL byte (the transport Puppeteer uses by default). That needs no websocket, no
//! port and no HTTP client: this file, `serde_json` and `tokio`, which the tests build anyway, so
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

/// One CDP event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The page session it belongs to (`None`: the browser's).
    pub session: Option<String>,
    pub method: String,
    pub params: Value,
}

type Answer = Result<Value, Value>;

/// The pipe to one browser: commands out, answers routed back by id, events kept in order.
struct Conn {
    stdin: tokio::sync::Mutex<ChildStdin>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    events: Mutex<Vec<Event>>,
    /// Bumped on every event and when the pipe closes, to wake waiters.
    bumps: watch::Sender<u64>,
    closed: AtomicBool,
    log: PathBuf,
}

impl Conn {
    /// Sends a command and waits (bounded) for its answer; `Err` holds the CDP error object.
    async fn try_call(&self, session: Option<&str>, method: &str, params: Value) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        if self.closed.load(Ordering::SeqCst) {
            panic!("{method}: {}", self.exited());
        }
        let written = self.stdin.lock().await.write_all(&bytes).await;
        if written.is_err() {
            panic!("{method}: {}", self.exited());
        }
        match tokio::time::timeout(TIMEOUT, rx).await {
            Err(_) => panic!("{method}: Chromium did not answer within {TIMEOUT:?}"),
            Ok(Err(_)) => panic!("{method}: {}", self.exited()),
            Ok(Ok(answer)) => answer,
        }
    }

    /// Sends a command that must succeed and returns its result.
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params.clone()).await {
            Ok(result) => result,
            Err(error) => panic!("{method} {params} failed: {error}"),
        }
    }

    fn exited(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("Chromium exited; the end of its log:\n{}", tail.join("\n"))
    }

    /// How many events have arrived: a mark to wait for events after.
    fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Waits (bounded) for the first event at or after `from` that matches; returns its index.
    async fn wait_event(
        &self,
        from: usize,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> (usize, Event) {
        let mut bumps = self.bumps.subscribe();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            {
                let events = self.events.lock().unwrap();
                if let Some((i, event)) = events
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, e)| matches(e))
                {
                    return (i, event.clone());
                }
            }
            if self.closed.load(Ordering::SeqCst) {
                panic!("waiting for {what}: {}", self.exited());
            }
            if tokio::time::timeout_at(deadline, bumps.changed())
                .await
                .is_err()
            {
                panic!("{what} did not happen within {TIMEOUT:?}");
            }
        }
    }

    fn events_of(&self, session: &str) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.session.as_deref() == Some(session))
            .cloned()
            .collect()
    }
}

/// Reads NUL-separated messages from fd 4 until the browser closes it.
async fn read_messages(conn: Arc<Conn>, stdout: ChildStdout) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(0, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        let Ok(message) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let waiter = conn.pending.lock().unwrap().remove(&id);
            if let Some(waiter) = waiter {
                let answer = match message.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = waiter.send(answer);
            }
        } else if let Some(method) = message.get("method").and_then(Value::as_str) {
            conn.events.lock().unwrap().push(Event {
                session: message
                    .get("sessionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                method: method.to_owned(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            });
            conn.bumps.send_modify(|n| *n += 1);
        }
    }
    conn.closed.store(true, Ordering::SeqCst);
    conn.pending.lock().unwrap().clear();
    conn.bumps.send_modify(|n| *n += 1);
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

/// A screen to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewport {
    /// 390×844 CSS pixels at device scale 2, mobile (an iPhone 12–15 class phone).
    Phone,
    /// 1280×800 CSS pixels at device scale 1.
    Desktop,
}

impl Viewport {
    pub const ALL: [Viewport; 2] = [Viewport::Phone, Viewport::Desktop];

    pub fn name(self) -> &'static str {
        match self {
            Viewport::Phone => "phone",
            Viewport::Desktop => "desktop",
        }
    }

    /// Width and height in CSS pixels.
    pub fn css(self) -> (u32, u32) {
        match self {
            Viewport::Phone => (390, 844),
            Viewport::Desktop => (1280, 800),
        }
    }

    pub fn scale(self) -> u32 {
        match self {
            Viewport::Phone => 2,
            Viewport::Desktop => 1,
        }
    }

    /// A screenshot's width and height in device pixels.
    pub fn pixels(self) -> (u32, u32) {
        let (w, h) = self.css();
        (w * self.scale(), h * self.scale())
    }
}

/// One tab, attached with its own session.
pub struct Page {
    conn: Arc<Conn>,
    session: String,
    target_id: String,
}

impl Page {
    /// A CDP command on this page's session.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.conn.call(Some(&self.session), method, params).await
    }

    /// How many events have arrived so far: pass it to the `wait_*` methods.
    pub fn mark(&self) -> usize {
        self.conn.mark()
    }

    /// Opens `url` and waits for its load event; returns the main document's HTTP status.
    pub async fn goto(&self, url: &str) -> u16 {
        let mark = self.mark();
        let navigated = self.call("Page.navigate", json!({ "url": url })).await;
        assert_eq!(
            navigated["isDownload"], false,
            "{url} started a download, not a page"
        );
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            panic!("opening {url}: {error}");
        }
        self.wait_for_load(mark).await
    }

    /// Opens `url`, which answers with an attachment: no page loads, a download starts.
    pub async fn goto_download(&self, url: &str) {
        let navigated = self.call("Page.navigate", json!({ "url": url })).await;
        assert_eq!(
            navigated["isDownload"], true,
            "{url} did not start a download: {navigated}"
        );
    }

    /// Waits (bounded) for a load event of this page after `mark`; returns the HTTP status of the
    /// document that loaded (0 for one that came from no HTTP response, e.g. `data:`).
    pub async fn wait_for_load(&self, mark: usize) -> u16 {
        let session = self.session.clone();
        let (index, _) = self
            .conn
            .wait_event(mark, "a page load", |e| {
                e.session.as_deref() == Some(session.as_str()) && e.method == "Page.loadEventFired"
            })
            .await;
        let events = self.conn.events.lock().unwrap();
        events[mark..index]
            .iter()
            .rev()
            .filter(|e| e.session.as_deref() == Some(self.session.as_str()))
            .find(|e| e.method == "Network.responseReceived" && e.params["type"] == "Document")
            .and_then(|e| e.params["response"]["status"].as_u64())
            .map_or(0, |s| s as u16)
    }

    /// Evaluates a JavaScript expression in the page (through DevTools: this works with the
    /// page's own scripts disabled too) and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "returnByValue": true,
                    "awaitPromise": true,
                }),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {details}");
        }
        result["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Whether `selector` matches an element.
    pub async fn exists(&self, selector: &str) -> bool {
        self.eval(&format!(
            "document.querySelector({}) !== null",
            js(selector)
        ))
        .await
        .as_bool()
        .unwrap()
    }

    /// The rendered text of the first element matching `selector` (panics if none does).
    pub async fn text(&self, selector: &str) -> String {
        let value = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({0}); return e && e.innerText; }})()",
                js(selector)
            ))
            .await;
        match value {
            Value::String(s) => s.trim().to_owned(),
            _ => panic!("no element matches {selector} on {}", self.url().await),
        }
    }

    /// An attribute of the first element matching `selector`.
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e && e.getAttribute({}); }})()",
            js(selector),
            js(name)
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    pub async fn url(&self) -> String {
        self.eval("location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `<body data-page>`: which page this is.
    pub async fn name(&self) -> String {
        self.attr("body", "data-page").await.unwrap_or_default()
    }

    /// `<html lang>`.
    pub async fn lang(&self) -> String {
        self.attr("html", "lang").await.unwrap_or_default()
    }

    /// The whole document as HTML.
    pub async fn html(&self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the centre of the element matching `selector` with the mouse, as a person does
    /// (after scrolling it into view).
    pub async fn click(&self, selector: &str) {
        let centre = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
                js(selector)
            ))
            .await;
        let Some([x, y]) = centre.as_array().map(|a| [a[0].clone(), a[1].clone()]) else {
            panic!("no element matches {selector} on {}", self.url().await);
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Clicks `selector` and waits for the page it leads to; returns that page's HTTP status.
    pub async fn click_and_wait(&self, selector: &str) -> u16 {
        let mark = self.mark();
        self.click(selector).await;
        self.wait_for_load(mark).await
    }

    /// Clicks into the field matching `selector` and types `text` as keyboard input.
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.click(selector).await;
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses and releases one key (`Enter`, `Tab`, `ArrowDown`, `ArrowUp`, `Space`).
    pub async fn press(&self, key: &str) {
        let (code, key_code, text) = match key {
            "Enter" => ("Enter", 13, "\r"),
            "Tab" => ("Tab", 9, ""),
            "ArrowDown" => ("ArrowDown", 40, ""),
            "ArrowUp" => ("ArrowUp", 38, ""),
            "Space" => ("Space", 32, " "),
            _ => panic!("no key code for {key}"),
        };
        let key_name = if key == "Space" { " " } else { key };
        let mut down = json!({
            "type": if text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "key": key_name,
            "code": code,
            "windowsVirtualKeyCode": key_code,
        });
        if !text.is_empty() {
            down["text"] = text.into();
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key_name, "code": code, "windowsVirtualKeyCode": key_code }),
        )
        .await;
    }

    /// Picks the option whose value is `value` in the `<select>` matching `selector` with the
    /// keyboard: focus, then arrow keys.
    pub async fn select(&self, selector: &str, value: &str) {
        let count = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return null; e.focus(); \
                 return e.options.length; }})()",
                js(selector)
            ))
            .await
            .as_u64()
            .unwrap_or_else(|| panic!("no <select> matches {selector}"));
        for direction in ["ArrowDown", "ArrowUp"] {
            for _ in 0..=count {
                let now = self
                    .eval(&format!("document.querySelector({}).value", js(selector)))
                    .await;
                if now == value {
                    return;
                }
                self.press(direction).await;
            }
        }
        panic!("{selector} has no option {value}");
    }

    /// Waits (bounded) until a JavaScript condition holds.
    pub async fn wait_until(&self, condition: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if self.eval(condition).await == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{condition} never held within {TIMEOUT:?} on {}: {}",
                    self.url().await,
                    self.html().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the page's own scripts, or not (as a browser with JavaScript switched off). Takes
    /// effect from the next page loaded.
    pub async fn set_javascript(&self, enabled: bool) {
        self.call(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !enabled }),
        )
        .await;
    }

    /// Emulates a phone or a desktop screen.
    pub async fn set_viewport(&self, viewport: Viewport) {
        let (width, height) = viewport.css();
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": viewport.scale(),
                "mobile": viewport == Viewport::Phone,
            }),
        )
        .await;
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub async fn set_dark(&self, dark: bool) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{
                "name": "prefers-color-scheme",
                "value": if dark { "dark" } else { "light" },
            }] }),
        )
        .await;
    }

    /// Shows `html` as a page of its own (a `data:` URL), e.g. a mail's HTML part.
    pub async fn show_html(&self, html: &str) {
        let url = format!(
            "data:text/html;charset=utf-8;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(html)
        );
        self.goto(&url).await;
    }

    /// A PNG of the viewport, once web fonts and layout have settled.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.eval("document.fonts.ready.then(() => true)").await;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "fromSurface": true }),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    /// What the browser's console said was wrong on this page since it was opened: script
    /// errors, `console.error`, and errors the browser logged itself, among them every Content
    /// Security Policy violation (those come as `Log.entryAdded` with source `security`). Failed
    /// HTTP statuses (source `network`) are left out: an outcome page is meant to be a 4xx.
    pub fn console_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for event in self.conn.events_of(&self.session) {
            let p = &event.params;
            match event.method.as_str() {
                "Runtime.exceptionThrown" => {
                    problems.push(format!("exception: {}", p["exceptionDetails"]));
                }
                "Runtime.consoleAPICalled"
                    if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                {
                    problems.push(format!("console.{}: {}", p["type"], p["args"]));
                }
                "Log.entryAdded" => {
                    let entry = &p["entry"];
                    let text = entry["text"].as_str().unwrap_or_default();
                    let csp = text.contains("Content Security Policy");
                    if csp || (entry["level"] == "error" && entry["source"] != "network") {
                        problems.push(format!("{}: {text}", entry["source"]));
                    }
                }
                _ => {}
            }
        }
        problems
    }

    /// The events of this page so far.
    pub fn events(&self) -> Vec<Event> {
        self.conn.events_of(&self.session)
    }
}

/// A Rust string as a JavaScript string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Checks that `bytes` are a whole, well-formed PNG (signature, every chunk's CRC, `IHDR` first
/// and `IEND` last) and returns its width and height.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    assert!(bytes.starts_with(SIGNATURE), "not a PNG");
    let mut at = SIGNATURE.len();
    let mut size = None;
    let mut ended = false;
    while at < bytes.len() {
        assert!(!ended, "bytes after IEND");
        assert!(at + 12 <= bytes.len(), "truncated chunk header at {at}");
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + 8 + len;
        assert!(end + 4 <= bytes.len(), "truncated chunk at {at}");
        let kind = &bytes[at + 4..at + 8];
        let crc = u32::from_be_bytes(bytes[end..end + 4].try_into().unwrap());
        assert_eq!(
            crc32(&bytes[at + 4..end]),
            crc,
            "bad CRC in a {kind:?} chunk"
        );
        match kind {
            b"IHDR" => {
                assert_eq!(at, SIGNATURE.len(), "IHDR is not the first chunk");
                let data = &bytes[at + 8..end];
                size = Some((
                    u32::from_be_bytes(data[0..4].try_into().unwrap()),
                    u32::from_be_bytes(data[4..8].try_into().unwrap()),
                ));
            }
            b"IEND" => ended = true,
            _ => {}
        }
        at = end + 4;
    }
    assert!(ended, "no IEND: the PNG is cut short");
    size.expect("no IHDR")
}

/// CRC-32 (ISO-HDLC, as PNG uses), bit by bit: the PNGs here are small.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
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

#[test]
fn png_checks_find_cut_and_corrupt_images() {
    // A 1x1 PNG, as Chromium would write it.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    };
    chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]);
    chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0x60, 0, 0, 0, 2, 0, 1]);
    chunk(b"IEND", &[]);
    assert_eq!(png_size(&png), (1, 1));
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
    let cut = png[..png.len() - 12].to_vec();
    assert!(std::panic::catch_unwind(|| png_size(&cut)).is_err());
    let mut corrupt = png.clone();
    corrupt[40] ^= 1;
    assert!(std::panic::catch_unwind(|| png_size(&corrupt)).is_err());
}
