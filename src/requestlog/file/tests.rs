//! `JsonLinesLog`: appends, torn lines, rewrites (erasure, retention, compaction), bounds.

use super::*;
use time::format_description::well_known::Rfc3339;

use crate::token::Claims;
use std::io::Write;

fn ids() -> Arc<Pseudonyms> {
    Arc::new(Pseudonyms::with_key(b"request log tests"))
}

fn entry(event: Event, at: &str, outcome: &str) -> Entry {
    let mut entry = Entry::now(event, "192.0.2.1".parse().unwrap(), outcome);
    entry.at = at.to_owned();
    entry
}

fn request(at: &str, email: &str, jti: &str) -> Entry {
    let mut entry = entry(Event::LinkRequested, at, "sent");
    entry.email = Some(email.to_owned());
    entry.document = Some("resume".to_owned());
    entry.jti = Some(jti.to_owned());
    entry
}

fn download(at: &str, jti: &str) -> Entry {
    let mut entry = entry(Event::Download, at, "completed");
    entry.jti = Some(jti.to_owned());
    entry
}

fn time(at: &str) -> OffsetDateTime {
    OffsetDateTime::parse(at, &Rfc3339).unwrap()
}

#[tokio::test]
async fn entries_append_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/requests.jsonl");
    let log = JsonLinesLog::open(&path, ids()).await.unwrap();
    let mut entry = Entry::now(Event::LinkRequested, "192.0.2.1".parse().unwrap(), "sent");
    entry.email = Some("jane@example.com".to_owned());
    entry.document = Some("resume".to_owned());
    log.record(&entry).await.unwrap();
    log.record(&Entry::now(
        Event::Download,
        "192.0.2.2".parse().unwrap(),
        "completed",
    ))
    .await
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Entry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], entry);
    assert_eq!(lines[1].outcome, "completed");

    let newest = log.recent(1, 0).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].outcome, "completed");
    assert_eq!(log.recent(10, 1).await.unwrap(), vec![entry]);
    assert!(log.recent(10, 2).await.unwrap().is_empty());

    // A torn last line (a crash mid-write, mid-character) is skipped.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"at\":\"x\",\"email\":\"j\xc3")
        .unwrap();
    assert_eq!(log.recent(10, 0).await.unwrap().len(), 2);
}

/// Part of a line left by a failed append that could not be taken back (`torn`), or, as
/// before that was handled, not even marked: neither loses the entries written after it,
/// when read, nor when the file is rewritten.
#[tokio::test]
async fn entries_after_a_failed_append_survive_a_rewrite() {
    for marked in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.jsonl");
        let log = JsonLinesLog::open(&path, ids()).await.unwrap();
        let old = request("2020-01-01T00:00:00Z", "old@example.com", "j0");
        let a = request("2026-01-01T00:00:00Z", "a@example.com", "j1");
        log.record(&old).await.unwrap();
        log.record(&a).await.unwrap();
        // What a write cut off mid-line leaves behind.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"at\":\"2026-01-01T00:00:01Z\",\"ema")
            .unwrap();
        {
            let mut state = log.state.lock().await;
            state.index.end = std::fs::metadata(&path).unwrap().len();
            state.torn = marked;
        }
        let b = request("2026-01-02T00:00:00Z", "b@example.com", "j2");
        let c = request("2026-01-03T00:00:00Z", "c@example.com", "j3");
        log.record(&b).await.unwrap();
        log.record(&c).await.unwrap();

        let cutoff = OffsetDateTime::parse("2021-01-01T00:00:00Z", &Rfc3339).unwrap();
        assert_eq!(log.purge_older_than(cutoff).await.unwrap(), 1, "{marked}");
        let kept: Vec<Entry> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let want = if marked {
            vec![a.clone(), b.clone(), c.clone()]
        } else {
            // Unmarked, b shares the torn line and is lost with it; c is not.
            vec![a.clone(), c.clone()]
        };
        assert_eq!(kept, want, "marked: {marked}");
        let mut newest_first = want.clone();
        newest_first.reverse();
        assert_eq!(log.recent(10, 0).await.unwrap(), newest_first);
    }
}

#[tokio::test]
async fn a_torn_last_line_does_not_swallow_the_next_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let old = request("2026-01-01T00:00:00Z", "jane@example.com", "j1");
    let mut text = serde_json::to_vec(&old).unwrap();
    text.extend_from_slice(b"\n{\"at\":\"2026-01-02T00:00:00Z\",\"email\":\"jo");
    std::fs::write(&path, text).unwrap();

    let log = JsonLinesLog::open(&path, ids()).await.unwrap();
    let new = download("2026-01-03T00:00:00Z", "j1");
    log.record(&new).await.unwrap();
    assert_eq!(log.recent(10, 0).await.unwrap(), [new.clone(), old.clone()]);

    // A rewrite drops the torn line, with its partial address.
    assert_eq!(
        log.purge_older_than(time("2026-01-02T00:00:00Z"))
            .await
            .unwrap(),
        1
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("\"jo"), "{text}");
    assert_eq!(text.lines().count(), 1);
}

#[tokio::test]
async fn retention_rewrites_the_file_without_the_old_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let log = JsonLinesLog::open(&path, ids()).await.unwrap();
    let entries = [
        request("2025-01-01T10:00:00Z", "old@example.com", "j1"),
        download("2025-01-01T10:05:00.5Z", "j1"),
        request("2026-03-01T10:00:00Z", "new@example.com", "j2"),
        download("2026-03-01T10:00:01Z", "j2"),
    ];
    for e in &entries {
        log.record(e).await.unwrap();
    }
    let mut undated = entry(Event::Download, "yesterday", "completed");
    undated.jti = Some("j3".to_owned());
    log.record(&undated).await.unwrap();

    assert_eq!(
        log.purge_older_than(time("2025-01-01T10:00:00Z"))
            .await
            .unwrap(),
        0,
        "nothing is older than the oldest entry"
    );
    assert_eq!(
        log.purge_older_than(time("2026-03-01T10:00:00Z"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        log.recent(10, 0).await.unwrap(),
        [undated.clone(), entries[3].clone(), entries[2].clone()],
        "an entry without a readable time is kept"
    );
    assert!(
        !dir.path().join("requests.jsonl.rewrite").exists(),
        "no temporary file is left"
    );

    // Appends go to the new file.
    let later = download("2026-03-02T00:00:00Z", "j2");
    log.record(&later).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(!text.contains("old@example.com"));
    assert_eq!(log.recent(1, 0).await.unwrap(), [later]);
}

#[tokio::test]
async fn erasure_removes_one_persons_requests_and_the_uses_of_their_links() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let log = JsonLinesLog::open(&path, ids()).await.unwrap();
    let claims = Claims {
        jti: "j1".into(),
        doc: "resume".to_owned(),
        iat: 1_000,
        exp: 1_900,
        iss: "docgate".to_owned(),
    };
    let mut refused = entry(
        Event::LinkRequested,
        "2026-01-01T09:00:00Z",
        "invalid_request",
    );
    refused.email = Some("JANE@example.com ".to_owned());
    let opened = Entry::link_opened(
        "198.51.100.7".parse().unwrap(),
        &claims,
        1_003,
        Some("Mozilla/5.0\r\n(scanner)"),
    );
    let jane = [
        refused,
        request("2026-01-01T10:00:00Z", "jane@example.com", "j1"),
        opened,
        download("2026-01-01T10:05:00Z", "j1"),
    ];
    let joe = [
        request("2026-01-01T11:00:00Z", "joe@example.com", "j2"),
        download("2026-01-01T11:05:00Z", "j2"),
        download("2026-01-01T11:06:00Z", "unknown"),
    ];
    for e in jane.iter().chain(&joe) {
        log.record(e).await.unwrap();
    }
    assert_eq!(jane[2].user_agent.as_deref(), Some("Mozilla/5.0(scanner)"));
    assert_eq!(jane[2].after_send_secs, Some(3));

    let owner = ids().person("jane@example.com");
    let mut expected = jane.to_vec();
    expected.reverse();
    assert_eq!(log.person(&owner).await.unwrap(), expected);

    assert_eq!(log.erase(&owner).await.unwrap(), 4);
    assert!(log.person(&owner).await.unwrap().is_empty());
    let mut rest = joe.to_vec();
    rest.reverse();
    assert_eq!(log.recent(10, 0).await.unwrap(), rest);
    assert!(!std::fs::read_to_string(&path).unwrap().contains("jane"));
    assert_eq!(log.erase(&owner).await.unwrap(), 0);

    // A later download of Jane's old link is kept, and not joined to her.
    log.record(&download("2026-01-02T00:00:00Z", "j1"))
        .await
        .unwrap();
    assert!(log.person(&owner).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_full_log_evicts_the_oldest_compacts_and_reopens_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let log = JsonLinesLog::open_with(&path, ids(), 3).await.unwrap();
    let entries: Vec<Entry> = (0..10)
        .map(|n| {
            request(
                &format!("2026-01-01T00:00:{n:02}Z"),
                &format!("p{n}@example.com"),
                &format!("j{n}"),
            )
        })
        .collect();
    for (n, entry) in entries.iter().enumerate() {
        log.record(entry).await.unwrap();
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * 3 + 1, "after {n}: {lines} lines");
    }
    let newest: Vec<Entry> = entries[7..].iter().rev().cloned().collect();
    assert_eq!(log.recent(10, 0).await.unwrap(), newest);
    assert_eq!(log.requester("j6").await.unwrap(), None, "evicted");
    assert_eq!(
        log.requester("j9").await.unwrap().as_deref(),
        Some("p9@example.com")
    );
    assert!(
        log.person(&ids().person("p0@example.com"))
            .await
            .unwrap()
            .is_empty()
    );
    drop(log);

    // Reopened: the same entries, found again by one pass over the file.
    let log = JsonLinesLog::open_with(&path, ids(), 3).await.unwrap();
    assert_eq!(log.recent(10, 0).await.unwrap(), newest);
    assert_eq!(log.requester("j6").await.unwrap(), None);
    assert_eq!(
        log.person(&ids().person("p8@example.com")).await.unwrap(),
        [entries[8].clone()]
    );
    drop(log);
    // A smaller cap evicts at once.
    let log = JsonLinesLog::open_with(&path, ids(), 2).await.unwrap();
    assert_eq!(log.recent(10, 0).await.unwrap(), newest[..2]);
}
