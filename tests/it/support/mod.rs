//! The test harness: a docgate server per test, in process, on a free loopback port, with its own
//! documents, outbox, request log and store; and helpers to read what it mailed and logged.
//!
//! Beside it, one file per real server a test may own: [`redis`], [`smtp`], [`s3`], the
//! fault-injecting [`chaos`] proxy, headless [`chrome`], and the docgate [`binary`] itself; the
//! child processes among them share [`process`]. [`probe`] holds the error-path suites' checks,
//! [`fixtures`] the catalog, documents and settings every test server starts from.

#![allow(dead_code)]

pub mod binary;
pub mod chaos;
pub mod chrome;
pub mod fixtures;
pub mod mail;
pub mod objects;
pub mod partial;
pub mod pdf;
pub mod probe;
pub mod process;
pub mod redis;
pub mod s3;
pub mod smtp;
pub mod webhook;

pub use fixtures::*;
pub use mail::Mail;
pub use partial::PartialGet;
pub use process::free_port;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use docgate::app::App;
use docgate::config::Config;
use docgate::requestlog::Entry;
use docgate::store::memory::MemoryStore;
use docgate::token::{Claims, Jti};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs the `docgate` binary with `args`, on the fixtures in `dir` and these settings; returns
/// its exit code, stdout and stderr.
pub fn cli(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut all: HashMap<String, String> = fixture_env(dir, "http://localhost:8080", SECRET)
        .into_iter()
        .collect();
    for (k, v) in env {
        all.insert((*k).to_owned(), (*v).to_owned());
    }
    binary::run(dir, all, args)
}

/// Scrapes a test server's `/metrics` into `series → value` (`name{labels}` as written).
pub async fn scrape(app: &TestApp) -> (String, BTreeMap<String, f64>) {
    scrape_at(&app.client, &app.admin_base).await
}

/// Scrapes the `/metrics` of the admin listener at `admin_base` (`http://127.0.0.1:PORT`).
pub async fn scrape_at(
    client: &reqwest::Client,
    admin_base: &str,
) -> (String, BTreeMap<String, f64>) {
    let response = client
        .get(format!("{admin_base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    let text = response.text().await.unwrap();
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.parse().unwrap()))
        .collect();
    (text, series)
}

/// Waits (bounded by `limit`) until `check` gives a value, polling every 20 ms; panics naming
/// `what` when it never does. Tests wait on an observable state with it, never on a sleep.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until the mail queue at `outbox` holds nothing queued or scheduled for a retry:
/// every job is delivered and deleted, or dead-lettered, so no further send can happen. Returns
/// the depth, dead letters included.
pub async fn drained(
    outbox: &docgate::outbox::queue::RedisOutbox,
) -> docgate::outbox::queue::QueueDepth {
    eventually(
        "the mail queue to drain",
        Duration::from_secs(15),
        || async {
            let depth = outbox.queue_depth().await.unwrap();
            (depth.queued == 0 && depth.retrying == 0).then_some(depth)
        },
    )
    .await
}

/// Waits (bounded) until a test server's mail queue (`docgate_mail_queue_depth`, read from
/// Redis at each scrape) is empty: every mail is delivered and deleted, or dead-lettered.
pub async fn mail_drained(app: &TestApp) {
    drained_at(&app.client, &app.admin_base).await;
}

/// As [`mail_drained`], for the admin listener at `admin_base`.
pub async fn drained_at(client: &reqwest::Client, admin_base: &str) {
    eventually(
        "the mail queue to drain",
        Duration::from_secs(15),
        || async {
            let (_, series) = scrape_at(client, admin_base).await;
            (series.get("docgate_mail_queue_depth") == Some(&0.0)).then_some(())
        },
    )
    .await;
}

/// The whole seconds of a response's `Retry-After`.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Two tests of one scenario, an `async fn(Option<&RedisServer>)`: `$embedded` on the embedded
/// store, `$on_redis` on a Redis server of its own.
macro_rules! embedded_and_on_redis {
    ($scenario:ident: $embedded:ident, $on_redis:ident) => {
        #[tokio::test]
        async fn $embedded() {
            $scenario(None).await;
        }

        #[tokio::test]
        async fn $on_redis() {
            let redis = $crate::support::redis::RedisServer::start();
            $scenario(Some(&redis)).await;
        }
    };
}
pub(crate) use embedded_and_on_redis;

/// A running test server.
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The admin listener, `http://127.0.0.1:PORT`.
    pub admin_base: String,
    pub dir: tempfile::TempDir,
    /// The embedded store, when the server runs on it.
    memory_store: Option<Arc<MemoryStore>>,
    pub app: Arc<App>,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<docgate::shutdown::Signal>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    /// A server with generous limits and the default settings.
    pub async fn start() -> Self {
        Self::with(&[]).await
    }

    /// A server with these environment settings on top of the test defaults.
    pub async fn with(overrides: &[(&str, &str)]) -> Self {
        Self::with_backends(overrides, |_| {}).await
    }

    /// [`with`](Self::with), and `adjust` may swap a configured backend for the test's own.
    pub async fn with_backends(
        overrides: &[(&str, &str)],
        adjust: impl FnOnce(&mut docgate::app::Backends),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_fixtures(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");

        let mut env: HashMap<String, String> =
            fixture_env(dir.path(), &base, SECRET).into_iter().collect();
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_source(&env).unwrap();
        // The test holds the embedded store to inspect it; on Redis the configured store stays.
        let memory_store = config.redis.is_none().then(|| Arc::new(MemoryStore::new()));
        let embedded = memory_store.clone();
        let service = docgate::build_with(config, move |backends| {
            if let Some(store) = embedded {
                backends.store = store;
            }
            adjust(backends);
        })
        .await
        .unwrap();
        let app = service.app.clone();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_base = format!("http://{}", admin.local_addr().unwrap());

        let (tx, rx) = oneshot::channel::<docgate::shutdown::Signal>();
        let task = tokio::spawn(async move {
            service
                .run(
                    docgate::Listeners {
                        public: listener,
                        admin,
                    },
                    async { rx.await.unwrap_or(docgate::shutdown::Signal::Interrupt) },
                )
                .await
                .unwrap();
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A response that stops coming fails its test instead of hanging the run; no test
            // waits half as long between two reads.
            .read_timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            addr,
            base,
            admin_base,
            dir,
            memory_store,
            app,
            client,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The embedded store (panics for a server on Redis).
    pub fn store(&self) -> &MemoryStore {
        self.memory_store
            .as_deref()
            .expect("this test server runs on the embedded store")
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Stops accepting and waits for the drain to finish.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(docgate::shutdown::Signal::Interrupt);
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// `target` as a URL: a path (`/api/...`) is on this server, a URL stays as it is.
    pub fn url(&self, target: &str) -> String {
        if target.starts_with('/') {
            format!("{}{target}", self.base)
        } else {
            target.to_owned()
        }
    }

    /// GETs `target` (a path or a URL).
    pub async fn get(&self, target: &str) -> reqwest::Response {
        self.client.get(self.url(target)).send().await.unwrap()
    }

    /// HEADs `target` (a path or a URL): what a GET would get now, spending nothing.
    pub async fn head(&self, target: &str) -> reqwest::Response {
        self.client.head(self.url(target)).send().await.unwrap()
    }

    /// GETs `target` (a path or a URL) with these headers.
    pub async fn get_with(&self, target: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(self.url(target));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    /// GETs part of `target`: `Range: <range>` (e.g. `bytes=0-99`).
    pub async fn get_range(&self, target: &str, range: &str) -> reqwest::Response {
        self.get_with(target, &[("range", range)]).await
    }

    /// POSTs `form` (URL-encoded) to `target` with these headers; with
    /// `("accept", BROWSER_ACCEPT)` it is a plain HTML form posted by a browser.
    pub async fn post_form(
        &self,
        target: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(target)).form(form);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    /// POSTs `json` to `target` with these headers, as a script does.
    pub async fn post_json(
        &self,
        target: &str,
        json: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(target)).json(json);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    /// POSTs a JSON link request.
    pub async fn request_link(&self, email: &str, document: &str) -> reqwest::Response {
        request_link(&self.client, &self.base, email, document).await
    }

    /// POSTs a JSON link request as a client behind a trusted proxy, from the address `xff`
    /// names in `X-Forwarded-For`.
    pub async fn request_link_via(
        &self,
        xff: &str,
        email: &str,
        document: &str,
    ) -> reqwest::Response {
        let json = serde_json::json!({ "email": email, "document": document });
        self.post_json("/api/download-requests", &json, &[("x-forwarded-for", xff)])
            .await
    }

    /// Asks for the `resume` once for each `(client, email)`, each from its client address (as
    /// [`TestApp::request_link_via`]): every answer is `202` and the same, whatever became of the
    /// request (mailed, or refused by a limit).
    pub async fn requests_answered_alike(&self, asks: impl IntoIterator<Item = (String, String)>) {
        let mut bodies = Vec::new();
        for (xff, email) in asks {
            let response = self.request_link_via(&xff, &email, "resume").await;
            assert_eq!(response.status(), 202, "{email} from {xff}");
            bodies.push(response.text().await.unwrap());
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "every answer is the same"
        );
    }

    /// Asks for `document` as `email` and returns the link from the mail it produced.
    pub async fn link(&self, email: &str, document: &str) -> String {
        let before = self.outbox().len();
        let response = self.request_link(email, document).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        let mails = self.outbox();
        assert_eq!(mails.len(), before + 1, "exactly one new mail");
        Mail::read(newest(&mails)).link
    }

    /// A fresh link for `document`, signed and recorded directly (no mail).
    pub async fn mint(&self, document: &str) -> (Claims, String) {
        let claims = Claims::new(document, now(), 900);
        docgate::store::TokenStore::insert(
            self.app.backends.store.as_ref(),
            &docgate::store::NewLink {
                jti: &claims.jti,
                doc: document,
                ttl: Duration::from_secs(900),
                attempts: self.app.config.download_attempts,
                owner: None,
            },
        )
        .await
        .unwrap();
        let token = self.app.codec.sign(&claims).unwrap();
        (claims, format!("{}/d/{token}", self.base))
    }

    /// GETs `url` and returns the whole body, whatever the status.
    pub async fn download(&self, url: &str) -> Vec<u8> {
        let response = self.client.get(url).send().await.unwrap();
        response.bytes().await.unwrap().to_vec()
    }

    /// Cuts the download `first` of `link` off (closes its connection) and waits until the link is
    /// free again; returns the download's ETag and the body bytes that arrived before the cut.
    pub async fn cut_off(&self, first: PartialGet, link: &str) -> (String, Vec<u8>) {
        let etag = first.header("etag").unwrap().to_owned();
        let got = first.body.clone();
        drop(first);
        self.wait_for_head(link, 200).await;
        (etag, got)
    }

    /// Resumes a cut-off download of `url` from byte `from`, as a client holding its `etag` does
    /// (`Range: bytes=<from>-` with `If-Range`).
    pub async fn resume(&self, url: &str, from: usize, etag: &str) -> reqwest::Response {
        self.client
            .get(url)
            .header("range", format!("bytes={from}-"))
            .header("if-range", etag)
            .send()
            .await
            .unwrap()
    }

    /// The `.eml` files in the outbox.
    pub fn outbox(&self) -> Vec<PathBuf> {
        eml_files(&self.path("outbox"))
    }

    /// The owner's request log, parsed.
    pub fn request_log(&self) -> Vec<Entry> {
        std::fs::read_to_string(self.path("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `GET /readyz`: the status and the JSON body.
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Waits (bounded) until the link answers `HEAD` with `status`: releases happen just after a
    /// connection closes.
    pub async fn wait_for_head(&self, url: &str, status: u16) {
        for _ in 0..200 {
            let response = self.client.head(url).send().await.unwrap();
            if response.status() == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{url} never answered HEAD with {status}");
    }

    /// Waits (bounded) until the link `jti` is no longer claimed by a download (a claim is released
    /// just after its connection closes); returns its state then.
    pub async fn released(&self, jti: &Jti) -> docgate::store::LinkState {
        eventually("the claim's release", Duration::from_secs(5), || async {
            let state = self.app.backends.store.peek(jti).await.unwrap();
            (state != docgate::store::LinkState::InFlight).then_some(state)
        })
        .await
    }

    /// Waits (bounded) until the work finished requests left behind (claim releases, request log
    /// entries, owner's notices) is done: whatever they were going to send has been sent.
    pub async fn idle(&self) {
        eventually(
            "the requests' background work",
            Duration::from_secs(15),
            || async { self.app.tasks.is_empty().then_some(()) },
        )
        .await;
    }

    /// Waits (bounded) until the request log has `n` entries (download entries are written just
    /// after the response ends).
    pub async fn wait_for_log(&self, n: usize) -> Vec<Entry> {
        for _ in 0..200 {
            let log = self.request_log();
            if log.len() >= n {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the request log never reached {n} entries: {:?}",
            self.request_log()
        );
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(docgate::shutdown::Signal::Interrupt);
        }
    }
}

/// POSTs a JSON link request to the service at `base`, as a script does.
pub async fn request_link(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    document: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/download-requests"))
        .json(&serde_json::json!({ "email": email, "document": document }))
        .send()
        .await
        .unwrap()
}

/// The most recently written of `files`.
pub fn newest(files: &[PathBuf]) -> &Path {
    files
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap()
}

/// The `.eml` files in an outbox directory (none if it does not exist yet).
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// GETs every URL at once, each with its own client, reading each body to its end; returns
/// each response's status and how many body bytes arrived.
pub async fn race(urls: Vec<String>) -> Vec<(u16, usize)> {
    use futures_util::StreamExt;
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|url| {
            tokio::spawn(async move {
                let response = reqwest::get(&url).await.unwrap();
                let status = response.status().as_u16();
                let mut len = 0usize;
                let mut stream = response.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    len += chunk.unwrap().len();
                }
                (status, len)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The token part of a link.
pub fn token_of(link: &str) -> &str {
    link.rsplit_once("/d/").unwrap().1
}
