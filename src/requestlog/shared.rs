//! The production request log: every replica's entries in one place, in Redis, so the admin API
//! and the CLI read the whole service, not one replica.
//!
//! # Keys (under `DOCGATE_REDIS_PREFIX`, all with the hash tag `{log}`)
//!
//! - `<prefix>{log}:entries`: a hash, entry id → the entry as JSON (the same object as a line of
//!   the embedded log file).
//! - `<prefix>{log}:index`: a sorted set of every entry id, scored by the entry's time (ms since
//!   the epoch): the log's order, and what retention trims.
//! - `<prefix>{log}:seq`: the counter entry ids come from (ids are its value, zero-padded to 16
//!   digits, so entries of the same millisecond keep their order).
//! - `<prefix>{log}:person:<owner>`: a sorted set of one person's entry ids, by time; `<owner>`
//!   is [`Pseudonyms::person`](crate::pseudonym::Pseudonyms::person) of their address (a keyed
//!   HMAC of it lowercased, as in the token store's `owner:` index). It holds their link requests
//!   and the downloads and opens of the links made for them, so exporting or erasing one person
//!   needs no scan.
//! - `<prefix>{log}:link:<jti>`: the `<owner>` a link was made for, written with its link
//!   request, so a download or an open recorded later (by any replica) joins that person; deleted
//!   with that link request.
//! - `<prefix>{log}:owners`: a hash, entry id → the `<owner>` it belongs to, so an entry leaving
//!   the log (evicted, purged) leaves its person's index too.
//! - `<prefix>{log}:notes:<jti>`: how many notes ([`Entry::is_note`]: opens, refused downloads)
//!   of a link are stored, at most [`NOTES_PER_LINK`]; it lives as long as the retention (a year
//!   with retention off).
//!
//! Every key shares the one tag, so on Redis Cluster the whole log lives in one slot: a write
//! checks a link's notes and its person's hour, appends to the shared index and evicts the
//! oldest entries together with their person's index and link owner, and each of those steps is
//! one script. The log is small (capped) and written once per request, so one shard carries it.
//!
//! # Bounds
//!
//! Every write checks the bounds before storing (in its script): a note past its link's
//! [`NOTES_PER_LINK`] or its person's [`PER_PERSON_PER_HOUR`] is not stored (the script returns
//! no id). Past `DOCGATE_REQUEST_LOG_MAX_ENTRIES` entries, each write then evicts the oldest (by
//! time), up to 100 at a time, with their owner, their person's index entry and the link owner
//! their link request wrote. The keys that remain per person and per link exist only while one
//! of their entries does (or, for the notes count, until it expires).
//!
//! # Retention
//!
//! With `DOCGATE_REQUEST_LOG_RETENTION` set (the default: 90 days), every write also deletes up
//! to 100 of the oldest entries past it (so the log stays trimmed however often
//! [`RequestLog::purge_older_than`] runs), and a person's index and a link's owner expire that
//! long after their last write.
//!
//! # Atomicity
//!
//! Every script declares every key it touches in `KEYS`. Recording is one script; a download or an
//! open first reads its link's owner (to name that person's index; a download reads it beside its
//! claim, [`RequestLog::prefetch`]), and the script checks it is still the same. Trimming (on a
//! write, and the purge) reads the oldest entries and their owners with a read-only script, then
//! drops them with one that names their person's index and link owner and checks each is still due.
//! Erasing reads the person's index and entries, then erases them with one script naming every link
//! key they point to; entries recorded meanwhile are erased in another round, and an erasure that
//! cannot finish fails rather than returning a partial count.

use std::sync::Arc;
use std::time::Duration;

use crate::topology::{ScriptCall, SharedConnection};
use async_trait::async_trait;
use redis::Script;
use time::OffsetDateTime;

use super::{
    DEFAULT_MAX_ENTRIES, Entry, LogError, NOTES_PER_LINK, PER_PERSON_PER_HOUR, Prefetched,
    RequestLog, cutoff, unavailable,
};
use crate::pseudonym::Pseudonyms;

/// The hash tag every key of the log carries, after the prefix: its scripts touch the shared
/// structures and a person's or a link's keys together, so all live in one Redis Cluster slot.
const LOG_TAG: &str = "{log}";
/// The most oldest entries one write deletes when they are past retention or over the cap.
const TRIM_ON_WRITE: usize = 100;
/// How many times a write reads a link's owner again when it changed while the write was made.
const RECORD_TRIES: usize = 3;
/// The most rounds one erasure makes beyond what the person's index held when it began, when
/// their entries keep arriving while it runs.
const ERASE_ROUNDS: usize = 20;
/// How long a link's notes count lives without retention: a year.
const NOTES_TTL_FOREVER: u64 = 365 * 86_400 * 1000;
/// The most entries one purge step deletes.
const PURGE_BATCH: usize = 1000;
/// The most entries read in one `HMGET`.
const READ_BATCH: usize = 500;

/// The oldest entries one trim or purge step may drop, and what `drop` needs to name their keys,
/// read in one snapshot. KEYS: entries, index, owners. ARGV: the cutoff (ms, '': none), the most
/// entries ('0': no cap), the batch. Returns {id, owner or '', the entry's JSON or ''} per entry:
/// those older than the cutoff, then those over the cap, oldest first, at most a batch.
/// Every Lua script of the request log, by name, as `docgate check` loads them.
pub fn scripts() -> Vec<(&'static str, String)> {
    [
        ("request log record", RECORD),
        ("request log candidates", CANDIDATES),
        ("request log drop", DROP),
        ("request log erase", ERASE),
    ]
    .into_iter()
    .map(|(name, source)| (name, source.to_owned()))
    .collect()
}

const CANDIDATES: &str = r"#!lua flags=no-writes
local cutoff, most, batch = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = {}
if cutoff ~= '' then
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, batch)
end
if most > 0 and #ids < batch then
  local over = redis.call('ZCARD', KEYS[2]) - most
  if over > #ids then
    ids = redis.call('ZRANGE', KEYS[2], 0, math.min(over, batch) - 1)
  end
end
local out = {}
for _, id in ipairs(ids) do
  table.insert(out, {id, redis.call('HGET', KEYS[3], id) or '', redis.call('HGET', KEYS[1], id) or ''})
end
return out
";

/// Drops entries read by [`CANDIDATES`], if they are still due. KEYS: entries, index, owners,
/// then the person and link keys named below. ARGV: the cutoff (ms, '': none), the most entries
/// ('0': no cap), then per entry its id, the position in KEYS of its person's index (0: none)
/// and of the link owner its link request wrote (0: none). An entry is dropped while it is still
/// stored, its owner is the one read, and it is older than the cutoff or the log is over its cap;
/// the first that is not ends the step (the entries are oldest first). Returns how many.
const DROP: &str = r"#!lua flags=allow-oom
local cutoff, most = ARGV[1], tonumber(ARGV[2])
local dropped = 0
for i = 3, #ARGV, 3 do
  local id, person, link = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local score = redis.call('ZSCORE', KEYS[2], id)
  if score then
    local old = cutoff ~= '' and tonumber(score) < tonumber(cutoff)
    local over = most > 0 and redis.call('ZCARD', KEYS[2]) > most
    if not old and not over then break end
    local owner = redis.call('HGET', KEYS[3], id)
    if person > 0 then
      if owner then redis.call('ZREM', KEYS[person], id) end
    end
    if link > 0 then redis.call('DEL', KEYS[link]) end
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZREM', KEYS[2], id)
    dropped = dropped + redis.call('HDEL', KEYS[1], id)
  end
end
return dropped
";

/// Records one entry, within the log's bounds. KEYS: entries, index, seq, owners, the person's
/// index (of the owner below; any key when none), the link's owner and the link's notes count
/// (any keys when no link). ARGV: the JSON, its time (ms), its owner or '', its jti or '', how
/// long to keep (ms, '0': forever), '1' when the owner is the entry's own (a link request), else
/// '0' (then the owner is the one the caller read from the link's owner key), '1' for a note
/// (else '0'), the notes per link, the entries per person per hour, how long a link's notes count
/// lives (ms), the retention cutoff (ms, '': none), the most entries. Returns {0} when the link's
/// owner is no longer the one read (read again and retry), {1, ''} when the entry was a note past
/// its bounds and is not stored, else {1, its id, 1 when the log needs trimming (else 0)}.
const RECORD: &str = r"#!lua
local owner, jti, keep = ARGV[3], ARGV[4], tonumber(ARGV[5])
local at = tonumber(ARGV[2])
local named = ARGV[6] == '1'
if jti ~= '' and not named then
  if (redis.call('GET', KEYS[6]) or '') ~= owner then return {0} end
end
local person = KEYS[5]
if ARGV[7] == '1' then
  if jti ~= '' and tonumber(redis.call('GET', KEYS[7]) or '0') >= tonumber(ARGV[8]) then
    return {1, ''}
  end
  if owner ~= '' and redis.call('ZCOUNT', person, '(' .. (at - 3600000), '+inf') >= tonumber(ARGV[9]) then
    return {1, ''}
  end
  if jti ~= '' then
    redis.call('INCR', KEYS[7])
    redis.call('PEXPIRE', KEYS[7], ARGV[10])
  end
end
local id = string.format('%016d', redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[1], id, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], id)
if jti ~= '' and named then
  if keep > 0 then
    redis.call('SET', KEYS[6], owner, 'PX', keep)
  else
    redis.call('SET', KEYS[6], owner)
  end
end
-- The log's oldest entry, read once: nothing below changes the index.
local oldest
if owner ~= '' or ARGV[11] ~= '' then
  oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
end
if owner ~= '' then
  redis.call('HSET', KEYS[4], id, owner)
  redis.call('ZADD', person, ARGV[2], id)
  if oldest then
    redis.call('ZREMRANGEBYSCORE', person, '-inf', '(' .. oldest)
  end
  -- A no-op when the index just emptied (and so was deleted).
  if keep > 0 then redis.call('PEXPIRE', person, keep) end
end
local trim = 0
if redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[12]) then trim = 1 end
if ARGV[11] ~= '' and oldest and tonumber(oldest) < tonumber(ARGV[11]) then trim = 1 end
return {1, id, trim}
";

/// Erases entries of one person. KEYS: entries, index, their index, owners, then the link owner
/// and notes count keys of the links those entries name. ARGV: the person's owner, then the
/// entry ids read from their index. Deletes each entry still in their index, takes it out of it,
/// deletes the named link keys, and the index itself once empty. Returns {how many entries were
/// deleted, how many remain in their index} (entries recorded meanwhile: erase again).
const ERASE: &str = r"#!lua flags=allow-oom
local erased = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[3], id) then
    erased = erased + redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('ZREM', KEYS[3], id)
  end
end
for i = 5, #KEYS do
  redis.call('DEL', KEYS[i])
end
local left = redis.call('ZCARD', KEYS[3])
if left == 0 then redis.call('DEL', KEYS[3]) end
return {erased, left}
";

/// The request log in Redis.
#[derive(Clone)]
pub struct RedisLog {
    conn: SharedConnection,
    /// Where entries are written (and trimmed): `conn` unless [`RedisLog::recording_on`] gave a
    /// connection with a longer response timeout.
    records: SharedConnection,
    prefix: String,
    /// The log's own keys, named once: every record names them.
    entries: String,
    index: String,
    owners: String,
    seq: String,
    /// `DOCGATE_REQUEST_LOG_RETENTION`; `None`: entries are kept until erased.
    keep: Option<Duration>,
    /// `DOCGATE_REQUEST_LOG_MAX_ENTRIES`.
    max_entries: usize,
    record: Script,
    candidates: Script,
    drop: Script,
    erase: Script,
    /// Names the person of an entry in the per-person index.
    ids: Arc<Pseudonyms>,
}

impl RedisLog {
    /// A log over `conn`, its keys under `prefix`, keeping entries for `keep` (or forever),
    /// at most [`DEFAULT_MAX_ENTRIES`] of them.
    pub fn new(
        conn: SharedConnection,
        prefix: &str,
        keep: Option<Duration>,
        ids: Arc<Pseudonyms>,
    ) -> Self {
        Self {
            ids,
            records: conn.clone(),
            conn,
            prefix: prefix.to_owned(),
            entries: format!("{prefix}{LOG_TAG}:entries"),
            index: format!("{prefix}{LOG_TAG}:index"),
            owners: format!("{prefix}{LOG_TAG}:owners"),
            seq: format!("{prefix}{LOG_TAG}:seq"),
            keep,
            max_entries: DEFAULT_MAX_ENTRIES,
            record: Script::new(RECORD),
            candidates: Script::new(CANDIDATES),
            drop: Script::new(DROP),
            erase: Script::new(ERASE),
        }
    }

    /// The same log writing its entries on `conn`, a connection of its own to the same topology
    /// ([`crate::topology::SETTLE_TIMEOUT`]): a record is of something that has happened, and
    /// failing loses it, while the reads (the read ahead beside a download's claim, the owner's
    /// pages) keep the log's first connection.
    pub fn recording_on(mut self, conn: SharedConnection) -> Self {
        self.records = conn;
        self
    }

    /// The same log keeping at most `max_entries` (at least 1): each write past it evicts the
    /// oldest.
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// `<prefix>{log}:entries`
    pub fn entries_key(&self) -> &str {
        &self.entries
    }

    /// `<prefix>{log}:index`
    pub fn index_key(&self) -> &str {
        &self.index
    }

    /// `<prefix>{log}:owners`
    pub fn owners_key(&self) -> &str {
        &self.owners
    }

    /// `<prefix>{log}:seq`
    pub fn seq_key(&self) -> &str {
        &self.seq
    }

    /// `<prefix>{log}:person:<owner>`
    pub fn person_key(&self, owner: &str) -> String {
        [&self.prefix, LOG_TAG, ":person:", owner].concat()
    }

    /// `<prefix>{log}:link:<jti>`
    pub fn link_key(&self, jti: &str) -> String {
        [&self.prefix, LOG_TAG, ":link:", jti].concat()
    }

    /// `<prefix>{log}:notes:<jti>`
    pub fn notes_key(&self, jti: &str) -> String {
        [&self.prefix, LOG_TAG, ":notes:", jti].concat()
    }

    /// Drops the oldest entries while they are past `cutoff` (ms) or the log is over `most`
    /// entries (0: no cap), at most `batch` in one step: reads them with their owners, then
    /// drops them with a script that names each person's index and link owner it touches and
    /// checks they are still due. Returns how many were dropped in this step.
    async fn trim(&self, cutoff: Option<i64>, most: usize, batch: usize) -> Result<u64, LogError> {
        let cutoff = cutoff.map(|c| c.to_string()).unwrap_or_default();
        let mut conn = self.records.clone();
        let due: Vec<(String, String, String)> = self
            .candidates
            .key(self.entries_key())
            .key(self.index_key())
            .key(self.owners_key())
            .arg(&cutoff)
            .arg(most)
            .arg(batch)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.drop.prepare_invoke();
        invocation
            .key(self.entries_key())
            .key(self.index_key())
            .key(self.owners_key())
            .arg(&cutoff)
            .arg(most);
        // KEYS positions (1-based) of the person and link keys named so far.
        let mut next = 4usize;
        for (id, owner, json) in &due {
            let person = if owner.is_empty() {
                0
            } else {
                invocation.key(self.person_key(owner));
                next += 1;
                next - 1
            };
            let link = match serde_json::from_str::<Entry>(json) {
                Ok(entry) if entry.event == super::Event::LinkRequested => match &entry.jti {
                    Some(jti) => {
                        invocation.key(self.link_key(jti));
                        next += 1;
                        next - 1
                    }
                    None => 0,
                },
                _ => 0,
            };
            invocation.arg(id).arg(person).arg(link);
        }
        invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// The entries with these ids, in their order; ids whose entry is gone are skipped.
    async fn read(&self, ids: &[String]) -> Result<Vec<Entry>, LogError> {
        let mut conn = self.conn.clone();
        let mut entries = Vec::with_capacity(ids.len());
        for batch in ids.chunks(READ_BATCH) {
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.entries_key())
                .arg(batch)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            entries.extend(
                values
                    .iter()
                    .flatten()
                    .filter_map(|json| serde_json::from_str::<Entry>(json).ok()),
            );
        }
        Ok(entries)
    }
}

/// Milliseconds since the epoch.
fn millis_of(time: OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl RedisLog {
    /// The person link `jti` was made for; `None` when none is known (never requested through
    /// the log, or erased).
    async fn link_owner(&self, jti: &str) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.link_key(jti))
            .query_async(&mut conn)
            .await
    }
}

#[async_trait]
impl RequestLog for RedisLog {
    async fn record(&self, entry: &Entry) -> Result<(), LogError> {
        self.record_prefetched(entry, Prefetched::default()).await
    }

    async fn prefetch(&self, jti: &str) -> Prefetched {
        Prefetched(
            self.link_owner(jti)
                .await
                .ok()
                .map(Option::unwrap_or_default),
        )
    }

    async fn record_prefetched(&self, entry: &Entry, read: Prefetched) -> Result<(), LogError> {
        let json = serde_json::to_string(entry).map_err(unavailable)?;
        let now = OffsetDateTime::now_utc();
        let at = millis_of(entry.time().unwrap_or(now));
        // Kept "forever" beyond what Redis can count down.
        let keep = self
            .keep
            .and_then(|keep| u64::try_from(keep.as_millis()).ok())
            .filter(|ms| i64::try_from(*ms).is_ok())
            .unwrap_or(0);
        let cutoff = self.keep.and_then(|keep| cutoff(now, keep)).map(millis_of);
        // A link's notes count lives as long as its entries may.
        let notes_ttl = if keep > 0 { keep } else { NOTES_TTL_FOREVER };
        let jti = entry.jti.as_deref().unwrap_or("");
        let own = entry.owner(&self.ids);
        let mut conn = self.records.clone();
        // Read ahead, it serves the first try; a try that finds it changed reads it again.
        let mut prefetched = read.0;
        // A stale read ahead does not count against the tries.
        for _ in 0..RECORD_TRIES + usize::from(prefetched.is_some()) {
            // An entry without its own owner (a download, an open) joins the person its link
            // was made for: read it first, so the script names that person's index.
            let owner = match (&own, jti, prefetched.take()) {
                (Some(owner), _, _) => owner.clone(),
                (None, "", _) => String::new(),
                (None, _, Some(owner)) => owner,
                (None, jti, None) => self
                    .link_owner(jti)
                    .await
                    .map_err(unavailable)?
                    .unwrap_or_default(),
            };
            let keys = [
                self.entries_key(),
                self.index_key(),
                self.seq_key(),
                self.owners_key(),
                &self.person_key(&owner),
                &self.link_key(jti),
                &self.notes_key(jti),
            ];
            let reply: Vec<redis::Value> = ScriptCall::new(&self.record, &keys)
                .arg(&json)
                .arg(at)
                .arg(&owner)
                .arg(jti)
                .arg(keep)
                .arg(if own.is_some() { "1" } else { "0" })
                .arg(if entry.is_note() { "1" } else { "0" })
                .arg(NOTES_PER_LINK)
                .arg(PER_PERSON_PER_HOUR)
                .arg(notes_ttl)
                .arg(cutoff.map(|c| c.to_string()).unwrap_or_default())
                .arg(self.max_entries)
                .invoke(&mut conn)
                .await
                .map_err(unavailable)?;
            match reply.as_slice() {
                [redis::Value::Int(0)] => continue,
                [_, _, redis::Value::Int(1)] => {
                    self.trim(cutoff, self.max_entries, TRIM_ON_WRITE).await?;
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
        Err(unavailable(
            "a link's owner kept changing while its entry was recorded",
        ))
    }

    async fn recent(&self, limit: usize, offset: usize) -> Result<Vec<Entry>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = offset
            .checked_add(limit - 1)
            .and_then(|stop| isize::try_from(stop).ok())
            .unwrap_or(-1);
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.index_key())
            .arg(start)
            .arg(stop)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.read(&ids).await
    }

    async fn person(&self, owner: &str) -> Result<Vec<Entry>, LogError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.person_key(owner))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.read(&ids).await
    }

    async fn requester(&self, jti: &str) -> Result<Option<String>, LogError> {
        match self.link_owner(jti).await.map_err(unavailable)? {
            Some(owner) => Ok(super::requester_in(&self.person(&owner).await?, jti)),
            None => Ok(None),
        }
    }

    /// Reads the person's index and their entries, then erases them with a script that names
    /// every link key those entries point to; again while entries recorded meanwhile remain, a
    /// bounded number of times. An erasure that cannot finish fails rather than counting part.
    async fn erase(&self, owner: &str) -> Result<u64, LogError> {
        let mut conn = self.conn.clone();
        let stored: usize = redis::cmd("ZCARD")
            .arg(self.person_key(owner))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut erased = 0u64;
        for _ in 0..stored / READ_BATCH + ERASE_ROUNDS {
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.person_key(owner))
                .arg(0)
                .arg(READ_BATCH - 1)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let mut jtis: Vec<String> = self
                .read(&ids)
                .await?
                .into_iter()
                .filter_map(|entry| entry.jti)
                .collect();
            jtis.sort_unstable();
            jtis.dedup();
            let mut invocation = self.erase.prepare_invoke();
            invocation
                .key(self.entries_key())
                .key(self.index_key())
                .key(self.person_key(owner))
                .key(self.owners_key())
                .arg(owner)
                .arg(&ids);
            for jti in &jtis {
                invocation.key(self.link_key(jti)).key(self.notes_key(jti));
            }
            let (deleted, left): (u64, u64) = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            erased += deleted;
            if left == 0 {
                return Ok(erased);
            }
        }
        Err(unavailable(
            "the person's entries kept arriving while they were erased; erase again",
        ))
    }

    async fn purge_older_than(&self, cutoff: OffsetDateTime) -> Result<u64, LogError> {
        let mut purged = 0u64;
        loop {
            let batch = self.trim(Some(millis_of(cutoff)), 0, PURGE_BATCH).await?;
            purged += batch;
            if batch < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }
}
