//! The production request log: every replica's entries in one place, in Redis, so the admin API
//! and the CLI read the whole service, not one replica.
//!
//! # Keys (under `DOCGATE_REDIS_PREFIX`)
//!
//! - `<prefix>log:entries`: a hash, entry id → the entry as JSON (the same object as a line of the
//!   embedded log file).
//! - `<prefix>log:index`: a sorted set of every entry id, scored by the entry's time (ms since the
//!   epoch): the log's order, and what retention trims.
//! - `<prefix>log:seq`: the counter entry ids come from (ids are its value, zero-padded to 16
//!   digits, so entries of the same millisecond keep their order).
//! - `<prefix>log:person:<owner>`: a sorted set of one person's entry ids, by time; `<owner>` is
//!   [`Pseudonyms::person`](crate::pseudonym::Pseudonyms::person) of their address (a keyed HMAC of it lowercased, as in the
//!   token store's `owner:` index). It holds their link requests and the downloads and opens of
//!   the links made for them, so exporting or erasing one person needs no scan.
//! - `<prefix>log:link:<jti>`: the `<owner>` a link was made for, written with its link request,
//!   so a download or an open recorded later (by any replica) joins that person; deleted with
//!   that link request.
//! - `<prefix>log:owners`: a hash, entry id → the `<owner>` it belongs to, so an entry leaving
//!   the log (evicted, purged) leaves its person's index too.
//! - `<prefix>log:notes:<jti>`: how many notes ([`Entry::is_note`]: opens, refused downloads)
//!   of a link are stored, at most [`NOTES_PER_LINK`]; it lives as long as the retention (a year
//!   with retention off).
//!
//! # Bounds
//!
//! Every write is one script that checks the bounds before storing: a note past its link's
//! [`NOTES_PER_LINK`] or its person's [`PER_PERSON_PER_HOUR`] is not stored (the script returns
//! no id). Past `DOCGATE_REQUEST_LOG_MAX_ENTRIES` entries, each write evicts the oldest (by
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
//! Recording, purging and erasing are each one Lua script. They touch several keys (the entry
//! hash, the index, the owners, a person's index, a link's owner and notes), some named from the others' contents as
//! the token store's revocation of one person's links does; on Redis Cluster give the prefix a
//! hash tag (`{docgate}:`) so they share a slot, as the mail queue needs too.

use std::sync::Arc;
use std::time::Duration;

use crate::topology::SharedConnection;
use async_trait::async_trait;
use redis::Script;
use time::OffsetDateTime;

use super::{
    DEFAULT_MAX_ENTRIES, Entry, LogError, NOTES_PER_LINK, PER_PERSON_PER_HOUR, RequestLog, cutoff,
    unavailable,
};
use crate::pseudonym::Pseudonyms;

/// The most oldest entries one write deletes when they are past retention.
const TRIM_ON_WRITE: usize = 100;
/// How long a link's notes count lives without retention: a year.
const NOTES_TTL_FOREVER: u64 = 365 * 86_400 * 1000;
/// The most entries one purge step deletes.
const PURGE_BATCH: usize = 1000;
/// The most entries read in one `HMGET`.
const READ_BATCH: usize = 500;

/// Lua shared by the scripts: `drop(ids, owners, people, links)` deletes these entries (KEYS[1]:
/// entries, KEYS[2]: index), takes them out of their person's index (`owners`: the owners hash,
/// `people`: the person key prefix) and forgets the links their link requests made (`links`:
/// the link key prefix). Returns how many entries were deleted.
const DROP: &str = r"
local function drop(old, owners, people, links)
  if #old == 0 then
    return 0
  end
  for _, old_id in ipairs(old) do
    local json = redis.call('HGET', KEYS[1], old_id)
    local ok, entry = pcall(cjson.decode, json or '')
    if ok and type(entry) == 'table' and entry.event == 'link_requested' and type(entry.jti) == 'string' then
      redis.call('DEL', links .. entry.jti)
    end
    local owner = redis.call('HGET', owners, old_id)
    if owner then
      redis.call('ZREM', people .. owner, old_id)
    end
  end
  redis.call('HDEL', owners, unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
  return redis.call('HDEL', KEYS[1], unpack(old))
end
";

/// Records one entry, within the log's bounds. KEYS: entries, index, seq, owners. ARGV: the
/// JSON, its time (ms), its owner or '', its jti or '', the person key prefix, the link key
/// prefix, how long to keep (ms, '0': forever), the retention cutoff (ms, '': none), the trim
/// batch, '1' for a note (else '0'), the notes key prefix, the notes per link, the entries per
/// person per hour, the most entries, how long a link's notes count lives (ms). Returns the
/// entry's id, or '' when the entry was a note past its bounds and is not stored.
const RECORD: &str = r"
local owner, jti, keep, cutoff = ARGV[3], ARGV[4], tonumber(ARGV[7]), ARGV[8]
local at, batch = tonumber(ARGV[2]), tonumber(ARGV[9])
local named = owner ~= ''
if jti ~= '' and not named then
  owner = redis.call('GET', ARGV[6] .. jti) or ''
end
local person = ARGV[5] .. owner
if ARGV[10] == '1' then
  if jti ~= '' and tonumber(redis.call('GET', ARGV[11] .. jti) or '0') >= tonumber(ARGV[12]) then
    return ''
  end
  if owner ~= '' and redis.call('ZCOUNT', person, '(' .. (at - 3600000), '+inf') >= tonumber(ARGV[13]) then
    return ''
  end
  if jti ~= '' then
    redis.call('INCR', ARGV[11] .. jti)
    redis.call('PEXPIRE', ARGV[11] .. jti, ARGV[15])
  end
end
local id = string.format('%016d', redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[1], id, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], id)
if jti ~= '' and named then
  local link = ARGV[6] .. jti
  if keep > 0 then
    redis.call('SET', link, owner, 'PX', keep)
  else
    redis.call('SET', link, owner)
  end
end
if owner ~= '' then
  redis.call('HSET', KEYS[4], id, owner)
  redis.call('ZADD', person, ARGV[2], id)
end
if cutoff ~= '' then
  drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, batch), KEYS[4], ARGV[5], ARGV[6])
end
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[14])
if over > 0 then
  drop(redis.call('ZRANGE', KEYS[2], 0, math.min(over, batch) - 1), KEYS[4], ARGV[5], ARGV[6])
end
if owner ~= '' then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if oldest[2] then
    redis.call('ZREMRANGEBYSCORE', person, '-inf', '(' .. oldest[2])
  end
  if keep > 0 and redis.call('EXISTS', person) == 1 then
    redis.call('PEXPIRE', person, keep)
  end
end
return id
";

/// Deletes the oldest entries before a time. KEYS: entries, index, owners. ARGV: the cutoff
/// (ms), the batch, the person key prefix, the link key prefix. Returns how many were deleted.
const PURGE: &str = r"
return drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2])), KEYS[3], ARGV[3], ARGV[4])
";

/// Erases one person. KEYS: entries, index, their index, owners. ARGV: the link key prefix, the
/// notes key prefix. Deletes their entries, the owner and the notes count of every link those
/// entries name, and their index, in one step. Returns how many entries were deleted.
const ERASE: &str = r"
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
local erased = 0
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    local ok, entry = pcall(cjson.decode, json)
    if ok and type(entry) == 'table' and type(entry.jti) == 'string' then
      redis.call('DEL', ARGV[1] .. entry.jti, ARGV[2] .. entry.jti)
    end
    erased = erased + redis.call('HDEL', KEYS[1], id)
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[4], id)
end
redis.call('DEL', KEYS[3])
return erased
";

/// The request log in Redis.
#[derive(Clone)]
pub struct RedisLog {
    conn: SharedConnection,
    prefix: String,
    /// `DOCGATE_REQUEST_LOG_RETENTION`; `None`: entries are kept until erased.
    keep: Option<Duration>,
    /// `DOCGATE_REQUEST_LOG_MAX_ENTRIES`.
    max_entries: usize,
    record: Script,
    purge: Script,
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
            conn,
            prefix: prefix.to_owned(),
            keep,
            max_entries: DEFAULT_MAX_ENTRIES,
            record: Script::new(&format!("{DROP}{RECORD}")),
            purge: Script::new(&format!("{DROP}{PURGE}")),
            erase: Script::new(ERASE),
        }
    }

    /// The same log keeping at most `max_entries` (at least 1): each write past it evicts the
    /// oldest.
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// `<prefix>log:entries`
    pub fn entries_key(&self) -> String {
        format!("{}log:entries", self.prefix)
    }

    /// `<prefix>log:index`
    pub fn index_key(&self) -> String {
        format!("{}log:index", self.prefix)
    }

    /// `<prefix>log:owners`
    pub fn owners_key(&self) -> String {
        format!("{}log:owners", self.prefix)
    }

    /// `<prefix>log:seq`
    pub fn seq_key(&self) -> String {
        format!("{}log:seq", self.prefix)
    }

    /// `<prefix>log:person:<owner>`
    pub fn person_key(&self, owner: &str) -> String {
        format!("{}log:person:{owner}", self.prefix)
    }

    /// `<prefix>log:link:<jti>`
    pub fn link_key(&self, jti: &str) -> String {
        format!("{}log:link:{jti}", self.prefix)
    }

    /// `<prefix>log:notes:<jti>`
    pub fn notes_key(&self, jti: &str) -> String {
        format!("{}log:notes:{jti}", self.prefix)
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

#[async_trait]
impl RequestLog for RedisLog {
    async fn record(&self, entry: &Entry) -> Result<(), LogError> {
        let json = serde_json::to_string(entry).map_err(unavailable)?;
        let now = OffsetDateTime::now_utc();
        let at = millis_of(entry.time().unwrap_or(now));
        // Kept "forever" beyond what Redis can count down.
        let keep = self
            .keep
            .and_then(|keep| u64::try_from(keep.as_millis()).ok())
            .filter(|ms| i64::try_from(*ms).is_ok())
            .unwrap_or(0);
        let cutoff = self
            .keep
            .and_then(|keep| cutoff(now, keep))
            .map(|t| millis_of(t).to_string())
            .unwrap_or_default();
        // A link's notes count lives as long as its entries may.
        let notes_ttl = if keep > 0 { keep } else { NOTES_TTL_FOREVER };
        let mut conn = self.conn.clone();
        self.record
            .key(self.entries_key())
            .key(self.index_key())
            .key(self.seq_key())
            .key(self.owners_key())
            .arg(json)
            .arg(at)
            .arg(entry.owner(&self.ids).unwrap_or_default())
            .arg(entry.jti.as_deref().unwrap_or(""))
            .arg(self.person_key(""))
            .arg(self.link_key(""))
            .arg(keep)
            .arg(cutoff)
            .arg(TRIM_ON_WRITE)
            .arg(if entry.is_note() { "1" } else { "0" })
            .arg(self.notes_key(""))
            .arg(NOTES_PER_LINK)
            .arg(PER_PERSON_PER_HOUR)
            .arg(self.max_entries)
            .arg(notes_ttl)
            .invoke_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
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
        let mut conn = self.conn.clone();
        let owner: Option<String> = redis::cmd("GET")
            .arg(self.link_key(jti))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match owner {
            Some(owner) => Ok(super::requester_in(&self.person(&owner).await?, jti)),
            None => Ok(None),
        }
    }

    async fn erase(&self, owner: &str) -> Result<u64, LogError> {
        let mut conn = self.conn.clone();
        self.erase
            .key(self.entries_key())
            .key(self.index_key())
            .key(self.person_key(owner))
            .key(self.owners_key())
            .arg(self.link_key(""))
            .arg(self.notes_key(""))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn purge_older_than(&self, cutoff: OffsetDateTime) -> Result<u64, LogError> {
        let mut conn = self.conn.clone();
        let mut purged = 0u64;
        loop {
            let batch: u64 = self
                .purge
                .key(self.entries_key())
                .key(self.index_key())
                .key(self.owners_key())
                .arg(millis_of(cutoff))
                .arg(PURGE_BATCH)
                .arg(self.person_key(""))
                .arg(self.link_key(""))
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            purged += batch;
            if batch < PURGE_BATCH as u64 {
                return Ok(purged);
            }
        }
    }
}
