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
//!   so a download or an open recorded later (by any replica) joins that person.
//!
//! # Retention
//!
//! With `DOCGATE_REQUEST_LOG_RETENTION` set, every write also deletes up to 100 of the oldest
//! entries past it (so the log stays trimmed however often [`RequestLog::purge_older_than`]
//! runs), a person's index and a link's owner expire that long after their last write, and a
//! person's index drops the ids of expired entries when they are next written.
//!
//! # Atomicity
//!
//! Recording, purging and erasing are each one Lua script. They touch several keys (the entry
//! hash, the index, a person's index, a link's owner), some named from the others' contents as
//! the token store's revocation of one person's links does; on Redis Cluster give the prefix a
//! hash tag (`{docgate}:`) so they share a slot, as the mail queue needs too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use time::OffsetDateTime;

use super::{Entry, LogError, RequestLog, cutoff, unavailable};
use crate::pseudonym::Pseudonyms;

/// The most oldest entries one write deletes when they are past retention.
const TRIM_ON_WRITE: usize = 100;
/// The most entries one purge step deletes.
const PURGE_BATCH: usize = 1000;
/// The most entries read in one `HMGET`.
const READ_BATCH: usize = 500;

/// Records one entry. KEYS: entries, index, seq. ARGV: the JSON, its time (ms), its owner or
/// '', its jti or '', the person key prefix, the link key prefix, how long to keep (ms, '0':
/// forever), the retention cutoff (ms, '': none), the trim batch. Returns the entry's id.
const RECORD: &str = r"
local id = string.format('%016d', redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[1], id, ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], id)
local owner, jti, keep, cutoff = ARGV[3], ARGV[4], tonumber(ARGV[7]), ARGV[8]
if jti ~= '' then
  local link = ARGV[6] .. jti
  if owner ~= '' then
    if keep > 0 then
      redis.call('SET', link, owner, 'PX', keep)
    else
      redis.call('SET', link, owner)
    end
  else
    owner = redis.call('GET', link) or ''
  end
end
if owner ~= '' then
  local person = ARGV[5] .. owner
  redis.call('ZADD', person, ARGV[2], id)
  if cutoff ~= '' then
    redis.call('ZREMRANGEBYSCORE', person, '-inf', '(' .. cutoff)
  end
  if keep > 0 then
    redis.call('PEXPIRE', person, keep)
  end
end
if cutoff ~= '' then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, tonumber(ARGV[9]))
  if #old > 0 then
    redis.call('HDEL', KEYS[1], unpack(old))
    redis.call('ZREM', KEYS[2], unpack(old))
  end
end
return id
";

/// Deletes the oldest entries before a time. KEYS: entries, index. ARGV: the cutoff (ms), the
/// batch. Returns how many were deleted.
const PURGE: &str = r"
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('ZREM', KEYS[2], unpack(old))
end
return #old
";

/// Erases one person. KEYS: entries, index, their index. ARGV[1]: the link key prefix. Deletes
/// their entries, the owner of every link those entries name, and their index, in one step.
/// Returns how many entries were deleted.
const ERASE: &str = r"
local ids = redis.call('ZRANGE', KEYS[3], 0, -1)
local erased = 0
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    local ok, entry = pcall(cjson.decode, json)
    if ok and type(entry) == 'table' and type(entry.jti) == 'string' then
      redis.call('DEL', ARGV[1] .. entry.jti)
    end
    erased = erased + redis.call('HDEL', KEYS[1], id)
  end
  redis.call('ZREM', KEYS[2], id)
end
redis.call('DEL', KEYS[3])
return erased
";

/// The request log in Redis.
#[derive(Clone)]
pub struct RedisLog {
    conn: ConnectionManager,
    prefix: String,
    /// `DOCGATE_REQUEST_LOG_RETENTION`; `None`: entries are kept until erased.
    keep: Option<Duration>,
    record: Script,
    purge: Script,
    erase: Script,
    /// Names the person of an entry in the per-person index.
    ids: Arc<Pseudonyms>,
}

impl RedisLog {
    /// A log over `conn`, its keys under `prefix`, keeping entries for `keep` (or forever).
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        keep: Option<Duration>,
        ids: Arc<Pseudonyms>,
    ) -> Self {
        Self {
            ids,
            conn,
            prefix: prefix.to_owned(),
            keep,
            record: Script::new(RECORD),
            purge: Script::new(PURGE),
            erase: Script::new(ERASE),
        }
    }

    /// `<prefix>log:entries`
    pub fn entries_key(&self) -> String {
        format!("{}log:entries", self.prefix)
    }

    /// `<prefix>log:index`
    pub fn index_key(&self) -> String {
        format!("{}log:index", self.prefix)
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
        let mut conn = self.conn.clone();
        self.record
            .key(self.entries_key())
            .key(self.index_key())
            .key(self.seq_key())
            .arg(json)
            .arg(at)
            .arg(entry.owner(&self.ids).unwrap_or_default())
            .arg(entry.jti.as_deref().unwrap_or(""))
            .arg(self.person_key(""))
            .arg(self.link_key(""))
            .arg(keep)
            .arg(cutoff)
            .arg(TRIM_ON_WRITE)
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
            .arg(self.link_key(""))
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
                .arg(millis_of(cutoff))
                .arg(PURGE_BATCH)
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
