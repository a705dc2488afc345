//! The queue's Lua scripts and their invocation: each move of a job between `{mail}:queue`,
//! `{mail}:retry` and `{mail}:dead` is one script, run atomically by Redis; each declares every
//! key it touches in `KEYS`, all three under the one hash tag. A move first acknowledges
//! the entry (`XACK`) and does nothing if it was not pending any more, so a job is moved at most
//! once even if two senders raced for it.

use std::time::Duration;

use redis::{RedisError, Script};

use super::{GROUP, RedisOutbox};

/// How many due retries one promotion moves back to the queue.
const PROMOTE_BATCH: usize = 100;
/// The dead-letter stream is trimmed to about this many entries (oldest first).
pub const DEAD_LETTER_MAX: usize = 10_000;

/// Delivered: KEYS[1] = queue; ARGV = group, id. Returns 1 if it was pending.
const DONE: &str = r"#!lua flags=allow-oom
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return n
";

/// Transient failure: KEYS = queue, retry; ARGV = group, id, delay ms, member (JSON fields).
const RESCHEDULE: &str = r"#!lua
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
return 1
";

/// Will not be sent: KEYS = queue, dead; ARGV = group, id, cap, fields…
const BURY: &str = r"#!lua
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
return 1
";

/// Due retries back to the queue: KEYS = retry, queue, dead; ARGV = batch. Returns how many.
const PROMOTE: &str = r"#!lua
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local ok, fields = pcall(cjson.decode, member)
  local valid = ok and type(fields) == 'table' and #fields > 0 and #fields % 2 == 0
  if valid then
    for _, v in ipairs(fields) do
      if type(v) ~= 'string' then valid = false end
    end
  end
  if valid then
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  else
    redis.call('XADD', KEYS[3], '*', 'cause', 'invalid', 'detail', 'unreadable retry entry',
      'raw', member, 'failed-at', now)
  end
  redis.call('ZREM', KEYS[1], member)
end
return #due
";

/// A stopping sender's job back to the end of the queue: KEYS[1] = queue; ARGV = group, id.
const HAND_BACK: &str = r"#!lua
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if #e == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', unpack(e[1][2]))
return 1
";

/// A dead letter back to the queue: KEYS = dead, queue; ARGV[1] = id. The dead letter's own
/// fields are dropped, the job's kept; `attempts` starts again at 0.
/// Returns 0 not found, 1 queued, 2 expired (left in place), 3 unreadable (left in place).
const REVIVE: &str = r"#!lua
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local f = e[1][2]
local drop = {cause = true, detail = true, attempts = true, raw = true}
drop['failed-at'] = true
drop['last-error'] = true
local out = {}
local have = {}
for i = 1, #f, 2 do
  if not drop[f[i]] then
    table.insert(out, f[i])
    table.insert(out, f[i + 1])
    have[f[i]] = f[i + 1]
  end
end
local need = {'jti', 'doc', 'iat', 'exp', 'to', 'title'}
if have['kind'] == 'note' then
  need = {'jti', 'doc', 'exp', 'to', 'subject', 'body'}
elseif have['kind'] == 'event' then
  need = {'jti', 'doc', 'exp', 'body'}
elseif (have['kind'] or 'link') ~= 'link' then
  need = {'jti', 'doc', 'exp', 'title', 'event-id', 'downloaded-at', 'client-ip'}
end
for _, k in ipairs(need) do
  if have[k] == nil then return 3 end
end
local exp = tonumber(have['exp'])
if exp == nil then return 3 end
local t = redis.call('TIME')
if exp <= tonumber(t[1]) then return 2 end
table.insert(out, 'attempts')
table.insert(out, '0')
redis.call('XADD', KEYS[2], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
";

/// Consumers that left without saying so: KEYS[1] = queue; ARGV = group, idle ms, own name.
/// Atomic, so a consumer is only removed while it has nothing pending.
const FORGET_CONSUMERS: &str = r"#!lua
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  local idle = info['idle'] or 0
  if info['name'] ~= ARGV[3] and info['pending'] == 0 and idle > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
";

/// Every Lua script of the mail queue, by name, as `docgate check` loads them.
pub fn scripts() -> Vec<(&'static str, String)> {
    [
        ("mail done", DONE),
        ("mail reschedule", RESCHEDULE),
        ("mail bury", BURY),
        ("mail promote", PROMOTE),
        ("mail hand back", HAND_BACK),
        ("mail revive", REVIVE),
        ("mail forget consumers", FORGET_CONSUMERS),
    ]
    .into_iter()
    .map(|(name, source)| (name, source.to_owned()))
    .collect()
}

/// The scripts, loaded once per outbox (Redis caches them by hash).
pub(super) struct Scripts {
    pub(super) done: Script,
    pub(super) reschedule: Script,
    pub(super) bury: Script,
    pub(super) promote: Script,
    pub(super) hand_back: Script,
    pub(super) revive: Script,
    pub(super) forget_consumers: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            done: Script::new(DONE),
            reschedule: Script::new(RESCHEDULE),
            bury: Script::new(BURY),
            promote: Script::new(PROMOTE),
            hand_back: Script::new(HAND_BACK),
            revive: Script::new(REVIVE),
            forget_consumers: Script::new(FORGET_CONSUMERS),
        }
    }
}

/// The moves a sender makes.
impl RedisOutbox {
    /// Creates the consumer group (and the stream) if missing. The group starts at the beginning:
    /// the stream only ever holds undelivered jobs.
    pub(super) async fn ensure_group(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.queue)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves due retries back to the queue.
    pub(super) async fn promote(&self) -> Result<usize, RedisError> {
        let mut conn = self.conn.clone();
        self.scripts
            .promote
            .key(&self.keys.retry)
            .key(&self.keys.queue)
            .key(&self.keys.dead)
            .arg(PROMOTE_BATCH)
            .invoke_async(&mut conn)
            .await
    }

    /// Acknowledges and deletes a delivered job.
    pub(super) async fn done(&self, id: &str) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .done
            .key(&self.keys.queue)
            .arg(GROUP)
            .arg(id)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Moves a job to the retry set, due in `delay`.
    pub(super) async fn reschedule(
        &self,
        id: &str,
        fields: &[(String, String)],
        delay: Duration,
    ) -> Result<bool, RedisError> {
        let flat: Vec<&str> = fields
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()])
            .collect();
        // A list of strings always encodes; were it not to, the empty list would be moved to the
        // dead letters when due, not lost.
        let member = serde_json::to_string(&flat).unwrap_or_else(|_| "[]".to_owned());
        let mut conn = self.conn.clone();
        let moved: i64 = self
            .scripts
            .reschedule
            .key(&self.keys.queue)
            .key(&self.keys.retry)
            .arg(GROUP)
            .arg(id)
            .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            .arg(member)
            .invoke_async(&mut conn)
            .await?;
        Ok(moved == 1)
    }

    /// Moves a job to the dead letters.
    pub(super) async fn bury(
        &self,
        id: &str,
        fields: &[(String, String)],
    ) -> Result<bool, RedisError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.bury.prepare_invoke();
        invocation
            .key(&self.keys.queue)
            .key(&self.keys.dead)
            .arg(GROUP)
            .arg(id)
            .arg(DEAD_LETTER_MAX);
        for (k, v) in fields {
            invocation.arg(k).arg(v);
        }
        let moved: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(moved == 1)
    }
}
