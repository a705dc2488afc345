//! The production token store: link records in Redis, shared by every replica.
//!
//! # Keys (an operator reads and deletes them with `redis-cli`)
//!
//! - `<prefix>token:{<jti>}`: a hash that exists exactly while the link is usable or being
//!   downloaded, expiring with the link (`PTTL` = the link's remaining life, extended to cover a
//!   lease in progress). Fields: `doc` (catalog id), `started` (downloads begun), `attempts` (the
//!   limit), `delivered` (bytes sent by the downloads that have ended, refunded ones excepted),
//!   `size` (the document's size, as the downloads report it), and while a download streams
//!   `lease` (its random id), `lease_until` (Redis server time, ms) and `lease_sent` (the running
//!   total its last report gave; counted by the next claim if the lease expires unreleased). A
//!   link whose `delivered` reaches `size` is spent. `DEL` revokes the link: no download starts, and one in flight stops within about
//!   a second (its next lease renewal fails).
//! - `<prefix>spent:{<jti>}`: set once a link is spent, for `DOCGATE_TOKEN_TTL`, so a late click
//!   hears "used" rather than "revoked". `1` when it ran out of attempts; `<network>|<ms>|<0|1>`
//!   when a download completed it: the (hashed) client network of a confirm-page download that
//!   may fetch it once more ([`TokenStore::rearm`]; empty for other downloads), when, and whether
//!   that second fetch is used up (or revoked). A re-armed `token:` hash has `rearmed` and `only`
//!   (the one network that may claim it) and is spent by any end of its download.
//! - `<prefix>undo:{<jti>}`: only with `DOCGATE_REDIS_WAIT_REPLICAS`: a copy of a link's record
//!   taken by its completion, for the `WAIT`'s timeout plus a few seconds, so a completion that too few replicas acknowledged
//!   can be taken back (the link usable again, the attempt refunded).
//! - `<prefix>owner:{<owner>}`: a set of the `jti`s of one person's links (`<owner>` is their
//!   keyed pseudonym), living as long as the longest of them.
//!
//! The `{...}` is a Redis Cluster hash tag: a link's two keys share one slot, and different
//! links (and owners) spread over every master. The same names are used in every topology.
//!
//! # Atomicity
//!
//! Claim, renew, complete, release, re-arm and revoke are each one Lua script, reading the
//! server's clock (`TIME`) for lease deadlines so replicas' clocks don't matter. Every script
//! declares every key it touches in `KEYS`; those touching a link's `token:` and `spent:` keys
//! together are single-slot through the link's hash tag. Revoking every link of one person reads
//! their index, then revokes each link with its own script (the links live on different masters),
//! and only then takes the revoked ones out of the index: a link that could not be revoked stays
//! indexed and the whole operation reports the failure. A download costs two round trips: the
//! claim, and the completion.
//! Lease renewals (one per second) only happen for downloads that last longer than that.
//!
//! # Failing closed
//!
//! Every command has a response timeout; an unreachable Redis yields [`StoreError::Unavailable`],
//! which stops the download before any byte is sent.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{ClaimOutcome, Lease, LinkState, NewLink, Sent, StoreError, TokenStore};
use crate::config::WaitReplicas;
use crate::token::Jti;
use crate::topology::{ScriptCall, SharedConnection};

/// The shared connection lives in [`crate::topology`]; named here too, where it always was.
pub use crate::topology::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT, connect};

/// Starts a download (KEYS[1] = token key; ARGV = lease id, lease ms, the client's network).
/// Returns {1, attempt} granted, {0} gone, {2} in flight, {3} out of attempts, its bytes cover
/// the document (or re-armed for another network). An expired lease's last reported bytes are
/// added to `delivered`.
const CLAIM: &str = r"#!lua
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local h = redis.call('HMGET', KEYS[1], 'started', 'attempts', 'lease', 'lease_until',
  'delivered', 'lease_sent', 'size', 'only')
if h[8] and h[8] ~= ARGV[3] then return {3} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local lease_ms = tonumber(ARGV[2])
local started = tonumber(h[1]) or 0
local attempts = tonumber(h[2]) or 1
if h[3] and tonumber(h[4] or 0) > now then return {2} end
local delivered = (tonumber(h[5]) or 0) + (tonumber(h[6]) or 0)
local size = tonumber(h[7]) or 0
if started >= attempts or (size > 0 and delivered >= size) then return {3} end
started = started + 1
redis.call('HSET', KEYS[1], 'started', started, 'lease', ARGV[1], 'lease_until', now + lease_ms,
  'delivered', string.format('%d', delivered), 'lease_sent', 0)
if redis.call('PTTL', KEYS[1]) < lease_ms then redis.call('PEXPIRE', KEYS[1], lease_ms) end
return {1, started}
";

/// A Lua function that records what a lease's download has sent so far (its running total, and
/// the document's size or 0): the larger of this and the last report, so a retried report counts
/// once. Prepended to the scripts that renew or release a lease; a completion works out the same
/// figures from the one read it makes, as the record is deleted right after.
const REPORT: &str = r"
local function report(key, sent, size)
  local before = tonumber(redis.call('HGET', key, 'lease_sent')) or 0
  if tonumber(sent) > before then redis.call('HSET', key, 'lease_sent', sent) end
  if tonumber(size) > 0 then redis.call('HSET', key, 'size', size) end
end
";

/// Extends a held lease (KEYS[1]; ARGV = lease id, lease ms, bytes sent, size). 1 held, 0 lost.
const RENEW: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local lease_ms = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'lease', 'lease_until')
if h[1] ~= ARGV[1] or tonumber(h[2] or 0) <= now then return 0 end
report(KEYS[1], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[1], 'lease_until', now + lease_ms)
if redis.call('PTTL', KEYS[1]) < lease_ms then redis.call('PEXPIRE', KEYS[1], lease_ms) end
return 1
";

/// Spends the link if the lease is still held, and leaves the spent marker (living the spent
/// marker ttl, or the rest of the link's life if longer: a document's own `link_ttl` or an
/// operator's may outlast `DOCGATE_TOKEN_TTL`) naming who completed it and when (for [`TokenStore::rearm`]; nobody when the link's downloads sent more than the
/// document in all). KEYS[1] token key, KEYS[2] spent key; ARGV = lease id, holder, spent marker
/// ttl ms, bytes sent, size, undo ttl ms. With an undo ttl above 0 (`WAIT` is on), the link's
/// record is first copied to KEYS[3], the undo key, for [`UNDO`]. 1 spent, 0 lost.
const COMPLETE: &str = r"#!lua
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local h = redis.call('HMGET', KEYS[1], 'lease', 'lease_until', 'rearmed', 'delivered',
  'lease_sent', 'size')
if h[1] ~= ARGV[1] or tonumber(h[2] or 0) <= now then return 0 end
if tonumber(ARGV[6]) > 0 then
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('COPY', KEYS[1], KEYS[3], 'REPLACE')
  if ttl > 0 then redis.call('HSET', KEYS[3], 'undo_until', now + ttl) end
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
-- What `report` would leave in the record, read once: the record is deleted below.
local sent = math.max(tonumber(h[5]) or 0, tonumber(ARGV[4]))
local size = tonumber(ARGV[5])
if size <= 0 then size = tonumber(h[6]) or 0 end
local holder = ARGV[2]
if size > 0 and (tonumber(h[4]) or 0) + sent > size then holder = '' end
local left = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
local rearmed = '0'
if h[3] then rearmed = '1' end
redis.call('SET', KEYS[2], holder .. '|' .. now .. '|' .. rearmed, 'PX',
  math.max(tonumber(ARGV[3]), left))
return 1
";

/// Takes back a completion that too few replicas acknowledged: the link's record as it was before
/// [`COMPLETE`], lease still held (the download's release then refunds it), expiring when it
/// would have (`undo_until`, Redis time, ms), and no spent marker.
/// KEYS[1] token key, KEYS[2] spent key, KEYS[3] undo key; ARGV[1] lease id. 1 undone, 0 not.
const UNDO: &str = r"#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('HGET', KEYS[3], 'lease') ~= ARGV[1] then return 0 end
local expires = redis.call('HGET', KEYS[3], 'undo_until')
redis.call('COPY', KEYS[3], KEYS[1])
redis.call('DEL', KEYS[3], KEYS[2])
redis.call('HDEL', KEYS[1], 'undo_until')
if expires then redis.call('PEXPIREAT', KEYS[1], expires) end
return 1
";

/// Makes a link completed by the same holder less than a window ago usable once more, for the
/// rest of the window. KEYS[1] token key, KEYS[2] spent key; ARGV = holder, window ms.
/// 1 re-armed, 0 not.
const REARM: &str = r"#!lua
if ARGV[1] == '' or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local v = redis.call('GET', KEYS[2])
if not v then return 0 end
local holder, at, rearmed = string.match(v, '^(.*)|(%d+)|([01])$')
if holder ~= ARGV[1] or rearmed ~= '0' then return 0 end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local left = tonumber(at) + tonumber(ARGV[2]) - now
if left <= 0 then return 0 end
redis.call('SET', KEYS[2], holder .. '|' .. at .. '|1', 'KEEPTTL')
redis.call('HSET', KEYS[1], 'started', 0, 'attempts', 1, 'rearmed', 1, 'only', ARGV[1])
redis.call('PEXPIRE', KEYS[1], left)
return 1
";

/// Ends a download without spending (KEYS[1]; ARGV = lease id, refund 0/1, bytes sent, size):
/// adds its bytes to `delivered`, unless refunded. Returns 0 not held, 1 released, 2 released and
/// now spent (out of attempts, its bytes cover the document, or a re-armed link's one more
/// download: key deleted).
const RELEASE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'lease', 'started', 'attempts')
if h[1] ~= ARGV[1] then return 0 end
local started = tonumber(h[2]) or 0
if ARGV[2] == '1' then
  if started > 0 then
    started = started - 1
    redis.call('HSET', KEYS[1], 'started', started)
  end
else
  report(KEYS[1], ARGV[3], ARGV[4])
end
local b = redis.call('HMGET', KEYS[1], 'delivered', 'lease_sent', 'size')
local delivered = tonumber(b[1]) or 0
if ARGV[2] ~= '1' then delivered = delivered + (tonumber(b[2]) or 0) end
local size = tonumber(b[3]) or 0
redis.call('HSET', KEYS[1], 'delivered', string.format('%d', delivered), 'lease_sent', 0)
redis.call('HDEL', KEYS[1], 'lease', 'lease_until')
if started >= (tonumber(h[3]) or 1) or (size > 0 and delivered >= size)
  or redis.call('HEXISTS', KEYS[1], 'rearmed') == 1 then
  redis.call('DEL', KEYS[1])
  return 2
end
return 1
";

/// Adds a `jti` to an owner's index and keeps the index alive as long as its longest link.
/// KEYS[1] the index; ARGV: jti, ttl in ms.
const OWNER_ADD: &str = "#!lua
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
";

/// Disarms a completed link's second fetch (its `spent:` marker); 1 if there was one to disarm.
const DISARM: &str = "#!lua flags=allow-oom
local function disarm(key)
  local v = redis.call('GET', key)
  if not v then return 0 end
  local holder, at, used = string.match(v, '^(.*)|(%d+)|([01])$')
  if not holder or holder == '' or used == '1' then return 0 end
  redis.call('SET', key, holder .. '|' .. at .. '|1', 'KEEPTTL')
  return 1
end
";

/// Withdraws a link, and its second fetch after a completed download. KEYS[1] token key, KEYS[2]
/// spent key. Returns {whether the link was live, whether a second fetch was disarmed}.
const REVOKE: &str = "
return {redis.call('DEL', KEYS[1]), disarm(KEYS[2])}
";

fn renew_source() -> String {
    format!("#!lua{REPORT}{RENEW}")
}

fn release_source() -> String {
    format!("#!lua{REPORT}{RELEASE}")
}

fn revoke_source() -> String {
    format!("{DISARM}{REVOKE}")
}

/// Every Lua script of the token store, by name, as `docgate check` loads them.
pub fn scripts() -> Vec<(&'static str, String)> {
    vec![
        ("link claim", CLAIM.to_owned()),
        ("link renew", renew_source()),
        ("link complete", COMPLETE.to_owned()),
        ("link release", release_source()),
        ("link rearm", REARM.to_owned()),
        ("link owner add", OWNER_ADD.to_owned()),
        ("link revoke", revoke_source()),
        ("link undo", UNDO.to_owned()),
    ]
}

/// The Redis token store.
#[derive(Clone)]
pub struct RedisStore {
    conn: SharedConnection,
    /// The connection a download's completion and release go on: `conn` unless
    /// [`RedisStore::settling_on`] gave one with a longer response timeout.
    settle: SharedConnection,
    prefix: String,
    /// How long a spent marker is kept: the longest a link can still be clicked.
    spent_ttl: Duration,
    claim: Script,
    renew: Script,
    complete: Script,
    release: Script,
    rearm: Script,
    owner_add: Script,
    revoke: Script,
    undo: Script,
    /// Replicas that must acknowledge a completion before its last byte goes out, and the
    /// connection completions use then: `WAIT` blocks the connection it is sent on, so it gets
    /// its own rather than holding up every other request's commands.
    wait: Option<(WaitReplicas, SharedConnection)>,
}

impl RedisStore {
    /// A store over `conn`, its keys under `prefix`.
    pub fn new(conn: SharedConnection, prefix: &str, spent_ttl: Duration) -> Self {
        Self {
            settle: conn.clone(),
            conn,
            prefix: prefix.to_owned(),
            spent_ttl,
            claim: Script::new(CLAIM),
            renew: Script::new(&renew_source()),
            complete: Script::new(COMPLETE),
            release: Script::new(&release_source()),
            rearm: Script::new(REARM),
            owner_add: Script::new(OWNER_ADD),
            revoke: Script::new(&revoke_source()),
            undo: Script::new(UNDO),
            wait: None,
        }
    }

    /// Sends each download's completion and release on `conn`, a connection of their own to the
    /// same topology ([`crate::topology::SETTLE_TIMEOUT`]): they settle a download that has
    /// happened, where the claims and renewals on the store's own connection admit or hold one.
    pub fn settling_on(mut self, conn: SharedConnection) -> Self {
        self.settle = conn;
        self
    }

    /// Makes every completion durable on `wait.replicas` replicas (`WAIT`) before it counts:
    /// when fewer acknowledge within `wait.timeout`, the completion is taken back and fails.
    /// Completions then run on `conn`, a connection of their own to the same topology.
    pub fn with_wait(mut self, wait: WaitReplicas, conn: SharedConnection) -> Self {
        self.wait = Some((wait, conn));
        self
    }

    /// `<prefix>undo:{<jti>}`: a completed link's record, kept while `WAIT` runs.
    pub fn undo_key(&self, jti: &str) -> String {
        [&self.prefix, "undo:{", jti, "}"].concat()
    }

    /// `<prefix>token:{<jti>}`
    pub fn token_key(&self, jti: &str) -> String {
        token_key(&self.prefix, jti)
    }

    /// `<prefix>owner:{<owner>}`: the `jti`s of one person's links.
    pub fn owner_key(&self, owner: &str) -> String {
        owner_key(&self.prefix, owner)
    }

    /// `<prefix>spent:{<jti>}`
    pub fn spent_key(&self, jti: &str) -> String {
        spent_key(&self.prefix, jti)
    }

    /// Withdraws one link and its second fetch: (whether it was live, whether anything was).
    async fn revoke_one(&self, jti: &str) -> Result<(bool, bool), StoreError> {
        let mut conn = self.conn.clone();
        let (live, disarmed): (u64, u64) =
            ScriptCall::new(&self.revoke, &[&self.token_key(jti), &self.spent_key(jti)])
                .invoke(&mut conn)
                .await
                .map_err(unavailable)?;
        Ok((live > 0, live > 0 || disarmed > 0))
    }

    async fn mark_spent(&self, jti: &str) -> Result<(), StoreError> {
        let mut conn = self.settle.clone();
        redis::cmd("SET")
            .arg(self.spent_key(jti))
            .arg(1)
            .arg("PX")
            .arg(millis(self.spent_ttl))
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// The state of a link whose `token:` key is gone. While a completion waits for its
    /// replicas (its undo record exists), the download is still in flight: it may yet be taken
    /// back.
    async fn gone(&self, jti: &str) -> Result<LinkState, StoreError> {
        let mut conn = self.conn.clone();
        let (spent, settling): (bool, bool) = redis::pipe()
            .exists(self.spent_key(jti))
            .exists(self.undo_key(jti))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match (spent, settling) {
            (_, true) => LinkState::InFlight,
            (true, false) => LinkState::Used,
            (false, false) => LinkState::Revoked,
        })
    }
}

/// `<prefix>token:{<jti>}`: a link's record, under the link's own hash tag.
pub fn token_key(prefix: &str, jti: &str) -> String {
    [prefix, "token:{", jti, "}"].concat()
}

/// `<prefix>spent:{<jti>}`: a spent link's marker, in its record's slot.
pub fn spent_key(prefix: &str, jti: &str) -> String {
    [prefix, "spent:{", jti, "}"].concat()
}

/// `<prefix>owner:{<owner>}`: one person's links, under the person's own hash tag.
pub fn owner_key(prefix: &str, owner: &str) -> String {
    [prefix, "owner:{", owner, "}"].concat()
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// Whether a link's bytes cover the document: what ended downloads delivered plus what the last
/// lease reported, against the size (unknown: no).
fn covered(delivered: Option<u64>, lease_sent: Option<u64>, size: Option<u64>) -> bool {
    let total = delivered
        .unwrap_or(0)
        .saturating_add(lease_sent.unwrap_or(0));
    size.is_some_and(|size| size > 0 && total >= size)
}

/// How long a completion's undo record outlives it: the `WAIT` (at most its timeout), the
/// answer's way back and the undo's (each within [`RESPONSE_TIMEOUT`]), and a second to spare.
/// Meanwhile the link answers "in flight"; should the undo never come (the primary lost just
/// then), the link reads as spent once the record expires.
fn undo_ttl(wait: &WaitReplicas) -> u64 {
    millis(wait.timeout + RESPONSE_TIMEOUT * 2 + Duration::from_secs(1))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn insert(&self, link: &NewLink<'_>) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.token_key(link.jti.as_str());
        redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("doc", link.doc.to_owned()),
                    ("started", "0".to_owned()),
                    ("attempts", link.attempts.to_string()),
                ],
            )
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis(link.ttl))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        if let Some(owner) = link.owner {
            // The index lives as long as its longest-lived link.
            ScriptCall::new(&self.owner_add, &[&self.owner_key(owner)])
                .arg(link.jti.as_str())
                .arg(millis(link.ttl))
                .invoke::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn peek(&self, jti: &Jti) -> Result<LinkState, StoreError> {
        let jti = jti.as_str();
        let mut conn = self.conn.clone();
        let (fields, time): (Vec<Option<String>>, (u64, u64)) = redis::pipe()
            .cmd("HMGET")
            .arg(self.token_key(jti))
            .arg(&[
                "started",
                "attempts",
                "lease_until",
                "delivered",
                "lease_sent",
                "size",
            ])
            .cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let number = |i: usize| -> Option<u64> { fields.get(i)?.as_deref()?.parse().ok() };
        let (Some(started), Some(attempts)) = (number(0), number(1)) else {
            return self.gone(jti).await;
        };
        let now_ms = time.0 * 1000 + time.1 / 1000;
        Ok(if number(2).is_some_and(|until| until > now_ms) {
            LinkState::InFlight
        } else if started >= attempts || covered(number(3), number(4), number(5)) {
            LinkState::Used
        } else {
            LinkState::Ready {
                started: u32::try_from(started).unwrap_or(u32::MAX),
            }
        })
    }

    async fn claim(&self, jti: &Jti, lease: &Lease) -> Result<ClaimOutcome, StoreError> {
        // Logged as its short prefix, never whole.
        let link = jti;
        let jti = jti.as_str();
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = ScriptCall::new(&self.claim, &[&self.token_key(jti)])
            .arg(&lease.id)
            .arg(millis(lease.ttl))
            .arg(&lease.holder)
            .invoke(&mut conn)
            .await
            .inspect_err(|e| {
                tracing::debug!(jti = %link, node = %self.conn.node(), cause = %e, "claim failed");
            })
            .map_err(unavailable)?;
        tracing::debug!(jti = %link, node = %self.conn.node(), ?reply, "claim");
        Ok(match reply.as_slice() {
            [1, attempt] => ClaimOutcome::Granted {
                attempt: u32::try_from(*attempt).unwrap_or(u32::MAX),
            },
            [2] => ClaimOutcome::Refused(LinkState::InFlight),
            [3] => ClaimOutcome::Refused(LinkState::Used),
            _ => ClaimOutcome::Refused(self.gone(jti).await?),
        })
    }

    async fn renew(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError> {
        let jti = jti.as_str();
        let mut conn = self.conn.clone();
        let held: i64 = ScriptCall::new(&self.renew, &[&self.token_key(jti)])
            .arg(&lease.id)
            .arg(millis(lease.ttl))
            .arg(sent.bytes)
            .arg(sent.size)
            .invoke(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(held == 1)
    }

    async fn complete(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError> {
        let jti = jti.as_str();
        let token_key = self.token_key(jti);
        let (spent_key, undo_key) = (self.spent_key(jti), self.undo_key(jti));
        let mut complete = ScriptCall::new(&self.complete, &[&token_key, &spent_key, &undo_key]);
        complete
            .arg(&lease.id)
            .arg(if lease.arms {
                lease.holder.as_str()
            } else {
                ""
            })
            .arg(millis(self.spent_ttl))
            .arg(sent.bytes)
            .arg(sent.size)
            .arg(self.wait.as_ref().map_or(0, |(wait, _)| undo_ttl(wait)));
        let Some((wait, wait_conn)) = &self.wait else {
            let mut conn = self.settle.clone();
            let spent: i64 = complete.invoke(&mut conn).await.map_err(unavailable)?;
            return Ok(spent == 1);
        };
        // The completion and its `WAIT` leave in one pipeline on one connection: `WAIT` counts
        // the replicas that acknowledged this connection's writes, so a reconnect between the two
        // would make it count nothing. On a cluster the pipeline goes to the master of the link's
        // slot (`WAIT` itself names no key).
        let mut conn = wait_conn.clone();
        let mut pipe = redis::pipe();
        pipe.add_command(complete.cmd().clone())
            .cmd("WAIT")
            .arg(wait.replicas)
            .arg(u64::try_from(wait.timeout.as_millis()).unwrap_or(u64::MAX));
        let mut reply = pipe.query_async::<(i64, i64)>(&mut conn).await;
        if matches!(&reply, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
        {
            // A new primary (after a failover or a restart) has not seen the script yet.
            complete.load(&mut conn).await.map_err(unavailable)?;
            reply = pipe.query_async::<(i64, i64)>(&mut conn).await;
        }
        let (spent, acknowledged) = reply.map_err(unavailable)?;
        if spent != 1 {
            return Ok(false);
        }
        let acknowledged = u32::try_from(acknowledged).unwrap_or(0);
        if acknowledged >= wait.replicas {
            // The completion stands: a second request no longer hears "being downloaded". Off
            // the download's path; left alone, the undo record expires by itself.
            let mut conn = self.conn.clone();
            tokio::spawn(async move {
                let _: Result<(), _> = redis::cmd("DEL").arg(undo_key).query_async(&mut conn).await;
            });
            return Ok(true);
        }
        // Too few replicas have the completion: a failover now could bring the link back, so
        // the last byte is not released, and the link is made usable again on the primary (the
        // caller's release refunds the attempt). Should the undo fail too, the link stays spent
        // on this primary: the store is unreachable, and the download fails closed all the same.
        let undone = ScriptCall::new(&self.undo, &[&token_key, &spent_key, &undo_key])
            .arg(&lease.id)
            .invoke::<i64>(&mut conn)
            .await;
        if let Err(e) = undone {
            tracing::warn!(cause = %e, "could not take back a completion the replicas did not acknowledge");
        }
        Err(StoreError::Unavailable(
            format!(
                "{acknowledged} of {} replicas acknowledged the completion",
                wait.replicas
            )
            .into(),
        ))
    }

    async fn rearm(&self, jti: &Jti, holder: &str, window: Duration) -> Result<bool, StoreError> {
        let jti = jti.as_str();
        if holder.is_empty() || window.is_zero() {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let rearmed: i64 =
            ScriptCall::new(&self.rearm, &[&self.token_key(jti), &self.spent_key(jti)])
                .arg(holder)
                .arg(millis(window))
                .invoke(&mut conn)
                .await
                .map_err(unavailable)?;
        Ok(rearmed == 1)
    }

    async fn release(
        &self,
        jti: &Jti,
        lease: &Lease,
        sent: Sent,
        refund: bool,
    ) -> Result<(), StoreError> {
        let jti = jti.as_str();
        let mut conn = self.settle.clone();
        let outcome: i64 = ScriptCall::new(&self.release, &[&self.token_key(jti)])
            .arg(&lease.id)
            .arg(if refund { "1" } else { "0" })
            .arg(sent.bytes)
            .arg(sent.size)
            .invoke(&mut conn)
            .await
            .map_err(unavailable)?;
        if outcome == 2 {
            self.mark_spent(jti).await?;
        }
        Ok(())
    }

    async fn revoke(&self, jti: &Jti) -> Result<bool, StoreError> {
        self.revoke_one(jti.as_str()).await.map(|(_, any)| any)
    }

    /// Reads the index, revokes each link by its own script (a link's keys may live on another
    /// master than the index), then takes the links it revoked out of the index. A link added
    /// meanwhile stays indexed; one that could not be revoked too, and the call fails, so a retry
    /// finishes the job rather than a partial count passing for the whole.
    async fn revoke_owner(&self, owner: &str) -> Result<u64, StoreError> {
        let index = self.owner_key(owner);
        let mut conn = self.conn.clone();
        let jtis: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&index)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut revoked = 0u64;
        let mut done = Vec::with_capacity(jtis.len());
        let mut failure = None;
        for jti in jtis {
            match self.revoke_one(&jti).await {
                Ok((live, _)) => {
                    revoked += u64::from(live);
                    done.push(jti);
                }
                Err(e) => failure = Some(e),
            }
        }
        if !done.is_empty() {
            redis::cmd("SREM")
                .arg(&index)
                .arg(&done)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(revoked),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn.ping().await.map_err(unavailable)
    }
}
