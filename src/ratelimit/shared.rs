//! The production rate limiter: GCRA in Redis, one Lua script per check on one key.
//!
//! Key: `<prefix>rl:<scope>:<subject>` (a keyed HMAC of the IP, IPv6 /64 or address, see
//! [`Key::stored`]; `mail:all` for the service-wide ceiling) holding
//! the theoretical arrival time in microseconds of Redis server time, expiring once it has
//! passed. The script is [`super::gcra`] transcribed; both are tested against the same cases.
//! It touches its one declared key only, so on Redis Cluster each limit lives on any slot.
//!
//! If a key is evicted (a `maxmemory-policy` other than `noeviction`), its client's limit starts
//! over: limits fail open. `docgate check` warns about such a policy.

use crate::topology::{ScriptCall, SharedConnection};
use async_trait::async_trait;
use redis::Script;

use std::sync::Arc;

use super::{Decision, Key, LimitError, RateLimiter};
use crate::pseudonym::Pseudonyms;
use crate::units::Rate;

/// KEYS[1] = limit key; ARGV = emission interval µs, period µs.
/// Returns {1, 0} allowed, or {0, retry_after µs}.
/// Every Lua script of the limiter, by name, as `docgate check` loads them.
pub fn scripts() -> Vec<(&'static str, String)> {
    vec![("rate limit", GCRA.to_owned())]
}

const GCRA: &str = r"#!lua
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > period then return {0, ahead - period} end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
return {1, 0}
";

/// The Redis rate limiter.
#[derive(Clone)]
pub struct RedisLimiter {
    conn: SharedConnection,
    prefix: String,
    script: Script,
    ids: Arc<Pseudonyms>,
}

impl RedisLimiter {
    pub fn new(conn: SharedConnection, prefix: &str, ids: Arc<Pseudonyms>) -> Self {
        Self {
            ids,
            conn,
            prefix: prefix.to_owned(),
            script: Script::new(GCRA),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &Key, rate: Rate) -> Result<Decision, LimitError> {
        let mut conn = self.conn.clone();
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let key = [&self.prefix, "rl:", &key.stored(&self.ids)].concat();
        let reply: (i64, i64) = ScriptCall::new(&self.script, &[&key])
            .arg(micros(rate.interval()))
            .arg(micros(rate.period))
            .invoke(&mut conn)
            .await
            .map_err(|e| LimitError::Unavailable(Box::new(e)))?;
        Ok(match reply {
            (1, _) => Decision::Allowed,
            (_, wait) => Decision::Limited {
                retry_after: std::time::Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
            },
        })
    }
}
