//! The request log contract, written once and run against both implementations: the JSON-lines
//! file and Redis (a real standalone `redis-server`, Sentinel setup or cluster per test). Each case gets a log of its own (a file of its
//! own, or a prefix of its own on the test's server).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{owner_id, pseudonyms};
use docgate::requestlog::shared::RedisLog;
use docgate::requestlog::{
    DEFAULT_MAX_ENTRIES, Entry, Event, JsonLinesLog, NOTES_PER_LINK, PER_PERSON_PER_HOUR,
    RequestLog,
};
use docgate::store::shared::connect;
use docgate::token::Claims;
use redis::Commands;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::redis::{
    RedisCluster, RedisSentinel, RedisServer, SharedRedis, commandstats, reset_stats,
};

const DAY: i64 = 86_400;

/// Where the logs under test live.
enum Backend {
    File(tempfile::TempDir),
    /// Any topology: a standalone server, a Sentinel setup, a cluster.
    Redis(Box<dyn SharedRedis>),
}

impl Backend {
    /// A fresh, empty log named `case`, keeping entries for `keep` where the implementation
    /// trims on write (Redis).
    async fn log(&self, case: &str, keep: Option<Duration>) -> Arc<dyn RequestLog> {
        self.capped(case, keep, DEFAULT_MAX_ENTRIES).await
    }

    /// [`log`](Self::log), keeping at most `max` entries.
    async fn capped(&self, case: &str, keep: Option<Duration>, max: usize) -> Arc<dyn RequestLog> {
        match self {
            Backend::File(dir) => Arc::new(
                JsonLinesLog::open_with(
                    &dir.path().join(format!("{case}.jsonl")),
                    Arc::new(pseudonyms()),
                    max,
                )
                .await
                .unwrap(),
            ),
            Backend::Redis(redis) => {
                let config = redis.config(&format!("{case}:"));
                Arc::new(
                    RedisLog::new(
                        connect(&config).unwrap(),
                        &config.prefix,
                        keep,
                        Arc::new(pseudonyms()),
                    )
                    .with_max_entries(max),
                )
            }
        }
    }
}

/// Runs every case.
async fn contract(backend: &Backend) {
    records_and_pages_newest_first(backend.log("pages", None).await.as_ref()).await;
    new_fields_round_trip(backend.log("fields", None).await.as_ref()).await;
    retention_purges_exactly_the_old_ones(backend.log("retention", None).await.as_ref()).await;
    one_persons_entries_are_found_by_address(backend.log("export", None).await.as_ref()).await;
    erasure_removes_exactly_one_person(backend.log("erase", None).await.as_ref()).await;
    a_links_requester_is_found_until_erased(backend.log("requester", None).await.as_ref()).await;
    the_cap_evicts_the_oldest_first(backend.capped("cap", None, 5).await.as_ref()).await;
    notes_are_bounded_per_link(backend.log("per-link", None).await.as_ref()).await;
    notes_are_bounded_per_person(backend.log("per-person", None).await.as_ref()).await;
    a_download_read_ahead_joins_its_person_even_when_erased_since(
        backend.log("prefetch", None).await.as_ref(),
    )
    .await;
}

/// A download reads ahead, beside its claim, what its entry will need; recorded after the bytes
/// with that read, the entry joins the link's person as a plain `record` would, and when the
/// person was erased in between, it is recorded without joining them.
async fn a_download_read_ahead_joins_its_person_even_when_erased_since(log: &dyn RequestLog) {
    let (jane, joe, _) = people();
    record_all(log, &chronological(&[&jane, &joe])).await;
    let jane_id = owner_id("jane@example.org");
    let joe_id = owner_id("joe@example.org");

    // Read ahead, then recorded: joined to Joe, like `record`.
    let read = log.prefetch("jti-joe").await;
    let joes = download(&ago(20), "jti-joe");
    log.record_prefetched(&joes, read).await.unwrap();
    assert_eq!(log.person(&joe_id).await.unwrap()[0], joes);

    // Read ahead while the link was still Jane's, then she is erased: the entry is kept, not
    // joined to her, and Joe's entries are untouched.
    let stale = log.prefetch("jti-jane-1").await;
    log.erase(&jane_id).await.unwrap();
    let late = download(&ago(10), "jti-jane-1");
    log.record_prefetched(&late, stale).await.unwrap();
    assert!(log.person(&jane_id).await.unwrap().is_empty());
    assert_eq!(log.recent(1, 0).await.unwrap(), [late]);
    assert_eq!(log.person(&joe_id).await.unwrap().len(), joe.len() + 1);

    // A read ahead of a link the log never saw records an unjoined entry.
    let unknown = log.prefetch("jti-unknown").await;
    let stranger = download(&ago(5), "jti-unknown");
    log.record_prefetched(&stranger, unknown).await.unwrap();
    assert_eq!(log.recent(1, 0).await.unwrap(), [stranger]);
}

/// Past the cap each entry evicts the oldest, with what it joined: an evicted link request no
/// longer names its link's requester, nor joins the link's later uses to them.
async fn the_cap_evicts_the_oldest_first(log: &dyn RequestLog) {
    let (jane, joe, nobody) = people();
    let all = chronological(&[&jane, &joe, &nobody]);
    assert_eq!(all.len(), 8);
    record_all(log, &all).await;
    assert_eq!(
        log.recent(usize::MAX, 0).await.unwrap(),
        newest_first(&all[3..]),
        "the 5 newest are kept"
    );
    assert_eq!(log.requester("jti-jane-1").await.unwrap(), None, "evicted");
    assert_eq!(log.requester("jti-joe").await.unwrap(), None, "evicted");
    assert_eq!(
        log.requester("jti-jane-2").await.unwrap().as_deref(),
        Some("jane@example.org")
    );
    // Her first link's download came after its request was evicted: it names nobody.
    let owner = owner_id("jane@example.org");
    assert_eq!(log.person(&owner).await.unwrap(), newest_first(&all[3..5]));

    // One write more, one entry fewer: the oldest.
    let later = download(&ago(1), "jti-joe");
    log.record(&later).await.unwrap();
    let mut expected = all[4..].to_vec();
    expected.push(later);
    assert_eq!(
        log.recent(usize::MAX, 0).await.unwrap(),
        newest_first(&expected)
    );
    assert_eq!(
        log.person(&owner_id("joe@example.org")).await.unwrap(),
        [all[5].clone()],
        "Joe's download was joined to him while his request was kept; the later one is not"
    );
    // Many writes more: still the cap.
    for n in 0..20 {
        log.record(&request(&ago(0), &format!("p{n}@example.org"), None))
            .await
            .unwrap();
    }
    let left = log.recent(usize::MAX, 0).await.unwrap();
    assert_eq!(left.len(), 5);
    assert_eq!(left[0].email.as_deref(), Some("p19@example.org"));
    assert_eq!(left[4].email.as_deref(), Some("p15@example.org"));
    assert_eq!(
        log.erase(&owner).await.unwrap(),
        0,
        "nothing of hers is left"
    );
}

/// Opens of a link and refused downloads of it are kept up to [`NOTES_PER_LINK`]; downloads
/// that started are always kept.
async fn notes_are_bounded_per_link(log: &dyn RequestLog) {
    let asked = request(&ago(100), "jane@example.org", Some("jti-noisy"));
    log.record(&asked).await.unwrap();
    for n in 0..3 {
        log.record(&opened(&ago(90 - n), "jti-noisy", "scanner/1.0", 3))
            .await
            .unwrap();
    }
    for n in 0..10 {
        let mut refused = download(&ago(80 - n), "jti-noisy");
        refused.outcome = "link_expired".to_owned();
        log.record(&refused).await.unwrap();
    }
    log.record(&opened(&ago(60), "jti-noisy", "scanner/1.0", 40))
        .await
        .unwrap();
    let done = download(&ago(50), "jti-noisy");
    log.record(&done).await.unwrap();
    // Another link's notes have their own budget.
    let other = opened(&ago(40), "jti-other", "curl/8", 5);
    log.record(&other).await.unwrap();

    let all = log.recent(usize::MAX, 0).await.unwrap();
    assert_eq!(all.len(), 1 + NOTES_PER_LINK + 1 + 1, "{all:#?}");
    assert_eq!(all[0], other);
    assert_eq!(all[1], done, "a started download is always stored");
    assert_eq!(*all.last().unwrap(), asked);
    let outcomes: Vec<&str> = all[2..all.len() - 1]
        .iter()
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(
        outcomes,
        ["link_expired", "link_expired", "opened", "opened", "opened"],
        "the first notes are kept"
    );
    assert_eq!(
        log.person(&owner_id("jane@example.org"))
            .await
            .unwrap()
            .len(),
        1 + NOTES_PER_LINK + 1
    );
}

/// One address asked for again and again (from anywhere): at most [`PER_PERSON_PER_HOUR`] of
/// its entries in an hour are stored, except the requests that made a link.
async fn notes_are_bounded_per_person(log: &dyn RequestLog) {
    let unsent = |secs_ago: i64, email: &str| {
        let mut entry = request(&ago(secs_ago), email, None);
        entry.outcome = "not_sent_address_limit".to_owned();
        entry
    };
    for n in 0..50 {
        log.record(&unsent(1000 - n, "victim@example.org"))
            .await
            .unwrap();
    }
    let victim = owner_id("victim@example.org");
    assert_eq!(
        log.person(&victim).await.unwrap().len(),
        PER_PERSON_PER_HOUR
    );
    // A request that made a link is stored past the bound; another address is not affected.
    let sent = request(&ago(900), "Victim@example.org", Some("jti-victim"));
    log.record(&sent).await.unwrap();
    log.record(&unsent(900, "other@example.org")).await.unwrap();
    assert_eq!(log.person(&victim).await.unwrap()[0], sent);
    assert_eq!(
        log.person(&victim).await.unwrap().len(),
        PER_PERSON_PER_HOUR + 1
    );
    assert_eq!(
        log.person(&owner_id("other@example.org"))
            .await
            .unwrap()
            .len(),
        1
    );
    // An hour on, the person has a budget again.
    log.record(&unsent(-3700, "victim@example.org"))
        .await
        .unwrap();
    assert_eq!(
        log.person(&victim).await.unwrap().len(),
        PER_PERSON_PER_HOUR + 2
    );
    assert_eq!(
        log.recent(usize::MAX, 0).await.unwrap().len(),
        PER_PERSON_PER_HOUR + 3
    );
}

async fn a_links_requester_is_found_until_erased(log: &dyn RequestLog) {
    let (jane, joe, nobody) = people();
    record_all(log, &chronological(&[&jane, &joe, &nobody])).await;
    let requester = |jti: &'static str| async move { log.requester(jti).await.unwrap() };
    assert_eq!(
        requester("jti-jane-1").await.as_deref(),
        Some("Jane@Example.org")
    );
    assert_eq!(
        requester("jti-jane-2").await.as_deref(),
        Some("jane@example.org")
    );
    assert_eq!(
        requester("jti-joe").await.as_deref(),
        Some("joe@example.org")
    );
    assert_eq!(
        requester("jti-stranger").await,
        None,
        "a download names nobody"
    );
    assert_eq!(requester("jti-unknown").await, None);
    log.erase(&owner_id("jane@example.org")).await.unwrap();
    assert_eq!(requester("jti-jane-1").await, None, "erased");
    assert_eq!(
        requester("jti-joe").await.as_deref(),
        Some("joe@example.org")
    );
}

#[tokio::test]
async fn the_file_log_meets_the_contract() {
    contract(&Backend::File(tempfile::tempdir().unwrap())).await;
}

#[tokio::test]
async fn the_redis_log_meets_the_contract() {
    contract(&Backend::Redis(Box::new(RedisServer::start()))).await;
}

#[tokio::test]
async fn the_redis_log_on_sentinel_meets_the_contract() {
    contract(&Backend::Redis(Box::new(RedisSentinel::start()))).await;
}

#[tokio::test]
async fn the_redis_log_on_a_cluster_meets_the_contract() {
    contract(&Backend::Redis(Box::new(RedisCluster::start()))).await;
}

/// RFC 3339 for `secs_ago` seconds before now.
fn ago(secs_ago: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::seconds(secs_ago))
        .format(&Rfc3339)
        .unwrap()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

fn request(at: &str, email: &str, jti: Option<&str>) -> Entry {
    let mut entry = Entry::now(Event::LinkRequested, ip(1), "sent");
    entry.at = at.to_owned();
    entry.email = Some(email.to_owned());
    entry.document = Some("resume".to_owned());
    entry.jti = jti.map(str::to_owned);
    entry
}

fn download(at: &str, jti: &str) -> Entry {
    let mut entry = Entry::now(Event::Download, ip(2), "completed");
    entry.at = at.to_owned();
    entry.document = Some("resume".to_owned());
    entry.jti = Some(jti.to_owned());
    entry
}

fn opened(at: &str, jti: &str, user_agent: &str, after: u64) -> Entry {
    let claims = Claims {
        jti: jti.into(),
        doc: "resume".to_owned(),
        iat: 1_000,
        exp: 1_900,
        iss: "docgate".to_owned(),
    };
    let mut entry = Entry::link_opened(ip(3), &claims, 1_000 + after, Some(user_agent));
    entry.at = at.to_owned();
    entry
}

async fn record_all(log: &dyn RequestLog, entries: &[Entry]) {
    for entry in entries {
        log.record(entry).await.unwrap();
    }
}

fn newest_first(entries: &[Entry]) -> Vec<Entry> {
    entries.iter().rev().cloned().collect()
}

async fn records_and_pages_newest_first(log: &dyn RequestLog) {
    assert!(log.recent(10, 0).await.unwrap().is_empty());
    let entries: Vec<Entry> = (0..5)
        .map(|n| request(&ago(50 - n), &format!("p{n}@example.org"), None))
        .collect();
    record_all(log, &entries).await;
    let all = newest_first(&entries);
    assert_eq!(log.recent(2, 0).await.unwrap(), all[..2]);
    assert_eq!(log.recent(2, 2).await.unwrap(), all[2..4]);
    assert_eq!(log.recent(2, 4).await.unwrap(), all[4..]);
    assert!(log.recent(2, 5).await.unwrap().is_empty());
    assert!(log.recent(0, 0).await.unwrap().is_empty());
    assert!(log.recent(1, usize::MAX).await.unwrap().is_empty());
    assert_eq!(log.recent(usize::MAX, 0).await.unwrap(), all);
    assert_eq!(log.recent(usize::MAX, 3).await.unwrap(), all[3..]);

    // Entries of the same second keep the order they were recorded in.
    let now = ago(0);
    let same: Vec<Entry> = (0..3)
        .map(|n| request(&now, &format!("q{n}@example.org"), None))
        .collect();
    record_all(log, &same).await;
    assert_eq!(log.recent(3, 0).await.unwrap(), newest_first(&same));
}

async fn new_fields_round_trip(log: &dyn RequestLog) {
    let mut asked = request(&ago(60), "jane@example.org", Some("jti-fields"));
    asked.name = Some("Jane Doe".to_owned());
    asked.company = Some("Doe & Daughters, Ltd.".to_owned());
    asked.consent = Some(true);
    let mut refused = request(&ago(50), "joe@example.org", None);
    refused.consent = Some(false);
    refused.outcome = "invalid_request".to_owned();
    let open = opened(
        &ago(40),
        "jti-fields",
        "Mozilla/5.0 (compatible; scanner)",
        3,
    );
    record_all(log, &[asked.clone(), refused.clone(), open.clone()]).await;

    let read = log.recent(10, 0).await.unwrap();
    assert_eq!(read, [open.clone(), refused, asked]);
    assert_eq!(read[0].event, Event::LinkOpened);
    assert_eq!(read[0].after_send_secs, Some(3));
    assert_eq!(
        read[0].user_agent.as_deref(),
        Some("Mozilla/5.0 (compatible; scanner)")
    );
    let json = serde_json::to_value(&read[0]).unwrap();
    assert_eq!(json["event"], "link_opened");
    assert_eq!(json["after_send_secs"], 3);
    let json = serde_json::to_value(&read[2]).unwrap();
    assert_eq!(
        (&json["name"], &json["company"], &json["consent"]),
        (
            &"Jane Doe".into(),
            &"Doe & Daughters, Ltd.".into(),
            &true.into()
        )
    );
    assert!(
        serde_json::to_value(&read[1])
            .unwrap()
            .get("user_agent")
            .is_none(),
        "absent fields are left out"
    );
}

async fn retention_purges_exactly_the_old_ones(log: &dyn RequestLog) {
    let entries = [
        request(&ago(10 * DAY), "old@example.org", Some("jti-old")),
        download(&ago(9 * DAY), "jti-old"),
        request(&ago(5 * DAY), "old@example.org", Some("jti-mid")),
        request(&ago(DAY), "new@example.org", Some("jti-new")),
        download(&ago(3600), "jti-new"),
    ];
    record_all(log, &entries).await;
    let cutoff = |days: i64| OffsetDateTime::now_utc() - time::Duration::seconds(days * DAY);

    assert_eq!(log.purge_older_than(cutoff(11)).await.unwrap(), 0);
    assert_eq!(log.purge_older_than(cutoff(7)).await.unwrap(), 2);
    assert_eq!(
        log.purge_older_than(cutoff(7)).await.unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(
        log.recent(10, 0).await.unwrap(),
        newest_first(&entries[2..])
    );
    assert_eq!(
        log.person(&owner_id("old@example.org")).await.unwrap(),
        [entries[2].clone()],
        "a person's purged entries are gone from their export too"
    );

    // An entry exactly at the cutoff is kept.
    let exact = OffsetDateTime::parse(&entries[2].at, &Rfc3339).unwrap();
    assert_eq!(log.purge_older_than(exact).await.unwrap(), 0);
    assert_eq!(
        log.purge_older_than(exact + time::Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        log.recent(10, 0).await.unwrap(),
        newest_first(&entries[3..])
    );
}

/// Jane asks twice (in two spellings of her address), downloads one link, has the other
/// opened; Joe asks once and downloads; a stranger's link is downloaded with no request.
fn people() -> (Vec<Entry>, Vec<Entry>, Vec<Entry>) {
    let jane = vec![
        request(&ago(100), "Jane@Example.org", Some("jti-jane-1")),
        request(&ago(90), "jane@example.org", None),
        request(&ago(80), "jane@example.org", Some("jti-jane-2")),
        opened(&ago(77), "jti-jane-2", "scanner/1.0", 3),
        download(&ago(60), "jti-jane-1"),
    ];
    let joe = vec![
        request(&ago(95), "joe@example.org", Some("jti-joe")),
        download(&ago(70), "jti-joe"),
    ];
    let nobody = vec![download(&ago(65), "jti-stranger")];
    (jane, joe, nobody)
}

/// Everything in time order.
fn chronological(groups: &[&[Entry]]) -> Vec<Entry> {
    let mut all: Vec<Entry> = groups.iter().flat_map(|g| g.iter().cloned()).collect();
    all.sort_by(|a, b| a.at.cmp(&b.at));
    all
}

async fn one_persons_entries_are_found_by_address(log: &dyn RequestLog) {
    let (jane, joe, nobody) = people();
    record_all(log, &chronological(&[&jane, &joe, &nobody])).await;

    let found = log.person(&owner_id("JANE@example.org")).await.unwrap();
    assert_eq!(found, newest_first(&chronological(&[&jane])));
    let found = log.person(&owner_id("joe@example.org")).await.unwrap();
    assert_eq!(found, newest_first(&joe));
    assert!(
        log.person(&owner_id("nobody@example.org"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn erasure_removes_exactly_one_person(log: &dyn RequestLog) {
    let (jane, joe, nobody) = people();
    record_all(log, &chronological(&[&jane, &joe, &nobody])).await;
    let owner = owner_id("jane@example.org");

    assert_eq!(log.erase(&owner).await.unwrap(), jane.len() as u64);
    assert!(log.person(&owner).await.unwrap().is_empty());
    assert_eq!(
        log.recent(usize::MAX, 0).await.unwrap(),
        newest_first(&chronological(&[&joe, &nobody])),
        "everyone else's entries are untouched"
    );
    assert_eq!(
        log.person(&owner_id("joe@example.org")).await.unwrap(),
        newest_first(&joe)
    );
    assert_eq!(log.erase(&owner).await.unwrap(), 0);

    // Later uses of her old links are recorded, but not joined to her.
    let late = [
        download(&ago(10), "jti-jane-1"),
        opened(&ago(5), "jti-jane-2", "curl/8", 600),
    ];
    record_all(log, &late).await;
    assert!(log.person(&owner).await.unwrap().is_empty());
    assert_eq!(log.recent(2, 0).await.unwrap(), newest_first(&late));
    assert_eq!(log.erase(&owner).await.unwrap(), 0);

    // She may ask again: a new request is hers again, and only it.
    let again = request(&ago(1), "jane@example.org", Some("jti-jane-3"));
    log.record(&again).await.unwrap();
    assert_eq!(log.person(&owner).await.unwrap(), [again]);
}

#[tokio::test]
async fn redis_keys_are_what_the_module_says_and_writes_trim_retention() {
    let server = RedisServer::start();
    let mut conn = server.client();
    let backend = Backend::Redis(Box::new(server));
    let keep = Duration::from_secs(30 * DAY as u64);
    let forever = backend.log("docgate", None).await;
    let kept = backend.log("docgate", Some(keep)).await;

    // Entries past retention, written by a log that keeps everything.
    let old: Vec<Entry> = (0..150)
        .map(|n| download(&ago(40 * DAY + n), &format!("jti-old-{n}")))
        .rev()
        .collect();
    record_all(forever.as_ref(), &old).await;
    let count = |conn: &mut redis::Connection| -> (u64, u64) {
        (
            conn.hlen("docgate:{log}:entries").unwrap(),
            conn.zcard("docgate:{log}:index").unwrap(),
        )
    };
    assert_eq!(count(&mut conn), (150, 150));

    // Each write trims at most 100 of the oldest past retention.
    let asked = request(&ago(0), "Jane@Example.org", Some("jti-jane"));
    kept.record(&asked).await.unwrap();
    assert_eq!(count(&mut conn), (51, 51));
    kept.record(&download(&ago(0), "jti-jane")).await.unwrap();
    assert_eq!(count(&mut conn), (2, 2));
    assert_eq!(
        kept.recent(10, 0).await.unwrap().len(),
        2,
        "only the entries within retention remain"
    );

    let owner = owner_id("jane@example.org");
    let person = format!("docgate:{{log}}:person:{owner}");
    let ids: Vec<String> = conn.zrange(&person, 0, -1).unwrap();
    assert_eq!(ids.len(), 2, "her request and her link's download");
    assert!(
        ids.iter()
            .all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit()))
    );
    let json: String = conn.hget("docgate:{log}:entries", &ids[0]).unwrap();
    assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), asked);
    let owner_of: String = conn.get("docgate:{log}:link:jti-jane").unwrap();
    assert_eq!(owner_of, owner);
    let seq: u64 = conn.get("docgate:{log}:seq").unwrap();
    assert_eq!(seq, 152);
    let keep_ms = keep.as_millis() as i64;
    for key in [person.as_str(), "docgate:{log}:link:jti-jane"] {
        let ttl: i64 = conn.pttl(key).unwrap();
        assert!(keep_ms - 60_000 < ttl && ttl <= keep_ms, "{key}: {ttl}");
    }
    let ttl: i64 = conn.pttl("docgate:{log}:entries").unwrap();
    assert_eq!(ttl, -1, "the log itself is trimmed, not expired");
    // Without retention nothing expires.
    forever
        .record(&request(&ago(0), "joe@example.org", Some("jti-joe")))
        .await
        .unwrap();
    let ttl: i64 = conn.pttl("docgate:{log}:link:jti-joe").unwrap();
    assert_eq!(ttl, -1);

    // An open of her link: a note, counted per link.
    kept.record(&opened(&ago(0), "jti-jane", "scanner/1.0", 3))
        .await
        .unwrap();
    let notes: u64 = conn.get("docgate:{log}:notes:jti-jane").unwrap();
    assert_eq!(notes, 1);
    let owners: u64 = conn.hlen("docgate:{log}:owners").unwrap();
    assert_eq!(owners, 4, "her three entries and Joe's request");

    // Erasure leaves no key naming her or her links.
    assert_eq!(kept.erase(&owner).await.unwrap(), 3);
    let mut left: Vec<String> = redis::cmd("KEYS")
        .arg("docgate:*")
        .query(&mut conn)
        .unwrap();
    left.sort();
    let joe = format!("docgate:{{log}}:person:{}", owner_id("joe@example.org"));
    assert_eq!(
        left,
        [
            "docgate:{log}:entries",
            "docgate:{log}:index",
            "docgate:{log}:link:jti-joe",
            "docgate:{log}:owners",
            joe.as_str(),
            "docgate:{log}:seq",
        ]
    );
}

#[tokio::test]
async fn the_redis_log_keeps_every_script_on_one_slot() {
    contract(&Backend::Redis(Box::new(
        crate::key_layout::slot_checking_redis(),
    )))
    .await;
}

/// What recording the download of a link someone asked for costs Redis, under retention (the
/// common case in production: the link has an owner, the person an index). The log's oldest
/// entry is read once, for both the person's index and the retention check, and the person's
/// index gets its expiry without a check that it exists.
#[tokio::test]
async fn recording_a_download_of_an_asked_for_link_reads_the_oldest_entry_once() {
    let server = RedisServer::start();
    let mut conn = server.client();
    let backend = Backend::Redis(Box::new(server));
    let kept = backend
        .log("docgate", Some(Duration::from_secs(30 * DAY as u64)))
        .await;
    let asked = request(&ago(60), "Jane@Example.org", Some("jti-jane"));
    kept.record(&asked).await.unwrap();

    reset_stats(&mut conn);
    kept.record(&download(&ago(0), "jti-jane")).await.unwrap();
    let calls = commandstats(&mut conn);
    // The link's owner read before the script and checked in it (`GET` 2), the entry and its
    // owner (`HSET` 2), the index and her index (`ZADD` 2), the oldest entry once (`ZRANGE`),
    // her index pruned to it and given the log's retention, the cap checked (`ZCARD`).
    let expected: std::collections::BTreeMap<String, u64> = [
        ("evalsha", 1),
        ("get", 2),
        ("hset", 2),
        ("incr", 1),
        ("pexpire", 1),
        ("zadd", 2),
        ("zcard", 1),
        ("zrange", 1),
        ("zremrangebyscore", 1),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_owned(), n))
    .collect();
    assert_eq!(calls, expected);

    // And the entry is where it belongs: in the log, in her index, which expires with the log.
    let person = format!("docgate:{{log}}:person:{}", owner_id("jane@example.org"));
    let ids: Vec<String> = conn.zrange(&person, 0, -1).unwrap();
    assert_eq!(ids.len(), 2, "her request and her link's download");
    let ttl: i64 = conn.pttl(&person).unwrap();
    assert!(ttl > 29 * DAY * 1000, "{ttl}");
    assert_eq!(kept.recent(10, 0).await.unwrap().len(), 2);
}
