//! Many link requests at once on embedded defaults: each accepted one leaves exactly one complete
//! `.eml` file in the outbox (never a partial one, even to a reader watching the directory while
//! they are written), exactly one request log entry, and one mail counted; the counts match.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;

use crate::support::{Mail, TestApp, scrape};

/// How many requests, and how many in flight at once.
const REQUESTS: usize = 160;
const IN_FLIGHT: usize = 32;

/// Watches `dir` until `stop`, reading every `.eml` file it finds: the size each file had when
/// first read, and every other file name seen (a temporary file must never be an `.eml`).
fn watch(dir: PathBuf, stop: Arc<AtomicBool>) -> HashMap<PathBuf, usize> {
    let mut first = HashMap::new();
    // Bounded: the requests end long before this many passes.
    for _ in 0..200_000 {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            std::thread::yield_now();
            continue;
        };
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "eml") && !first.contains_key(&path) {
                // A file renamed away between the listing and the read cannot happen: `.eml`
                // files are only ever created.
                let bytes = std::fs::read(&path).unwrap();
                first.insert(path, bytes.len());
            }
        }
    }
    first
}

#[tokio::test]
async fn concurrent_link_requests_each_leave_one_complete_mail_and_one_log_entry() {
    let app = TestApp::start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (dir, stop) = (app.path("outbox"), stop.clone());
        std::thread::spawn(move || watch(dir, stop))
    };

    let addresses: Vec<String> = (0..REQUESTS)
        .map(|i| format!("visitor-{i}@d{}.example.org", i % 7))
        .collect();
    let statuses: Vec<u16> = futures_util::stream::iter(addresses.iter())
        .map(|address| async { app.request_link(address, "resume").await.status().as_u16() })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    stop.store(true, Ordering::Release);
    let seen = watcher.join().unwrap();
    assert_eq!(statuses, vec![202; REQUESTS]);

    // Exactly one complete mail per request, and nothing else in the outbox.
    let files: Vec<PathBuf> = std::fs::read_dir(app.path("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), REQUESTS, "{files:?}");
    assert!(
        files
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "eml")),
        "only .eml files remain: {files:?}"
    );
    let mut recipients = HashSet::new();
    let mut links = HashSet::new();
    for path in &files {
        let mail = Mail::read(path);
        assert!(mail.link.starts_with(&app.base), "{}", mail.link);
        recipients.insert(mail.to);
        links.insert(mail.link);
    }
    assert_eq!(recipients.len(), REQUESTS);
    assert_eq!(links.len(), REQUESTS, "every mail carries its own link");
    // Whatever the watcher read, it read whole.
    assert!(!seen.is_empty(), "the watcher saw the outbox");
    for (path, len) in &seen {
        assert_eq!(
            *len,
            std::fs::metadata(path).unwrap().len() as usize,
            "{} was seen partial",
            path.display()
        );
    }

    // Exactly one request log entry per request, each naming its own link.
    let log = app.request_log();
    assert_eq!(log.len(), REQUESTS);
    assert!(log.iter().all(|e| e.outcome == "sent"), "{log:?}");
    let logged: HashSet<&str> = log.iter().filter_map(|e| e.email.as_deref()).collect();
    let asked: HashSet<&str> = addresses.iter().map(String::as_str).collect();
    assert_eq!(logged, asked);
    let jtis: HashSet<&str> = log.iter().filter_map(|e| e.jti.as_deref()).collect();
    assert_eq!(jtis.len(), REQUESTS);

    // And the counters agree.
    let (_, series) = scrape(&app).await;
    assert_eq!(
        series.get("docgate_mail_total{outcome=\"sent\"}"),
        Some(&(REQUESTS as f64))
    );
    assert_eq!(
        series.get("docgate_link_requests_total{outcome=\"sent\"}"),
        Some(&(REQUESTS as f64))
    );
}
