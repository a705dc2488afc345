//! Who each live link was made for, kept only for the owner's download notice (see the
//! [module docs](super)): [`MemoryRequesters`] in process, [`RedisRequesters`] shared by every
//! replica as `<prefix>requester:<jti>` (a string holding the address, with a TTL).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use crate::store::StoreError;

/// The address each link was made for, by `jti`.
#[async_trait]
pub trait Requesters: Send + Sync + 'static {
    /// Keeps `address` for the link `jti`, for `ttl`.
    async fn remember(&self, jti: &str, address: &str, ttl: Duration) -> Result<(), StoreError>;

    /// The address kept for `jti`, deleted in the same step; `None` when there is none (never
    /// kept, expired, or already taken).
    async fn take(&self, jti: &str) -> Result<Option<String>, StoreError>;
}

/// In process, for the embedded store: lost on restart, as the links themselves are.
#[derive(Default)]
pub struct MemoryRequesters {
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl MemoryRequesters {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Requesters for MemoryRequesters {
    async fn remember(&self, jti: &str, address: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, (_, until)| *until > now);
        entries.insert(jti.to_owned(), (address.to_owned(), now + ttl));
        Ok(())
    }

    async fn take(&self, jti: &str) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .remove(jti)
            .filter(|(_, until)| *until > now)
            .map(|(address, _)| address))
    }
}

/// Reads and deletes in one step: KEYS[1] = the requester key.
const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
";

/// In Redis, beside the link records.
pub struct RedisRequesters {
    conn: ConnectionManager,
    prefix: String,
    take: Script,
}

impl RedisRequesters {
    /// Keys under `prefix` (`<prefix>requester:<jti>`), over the shared connection.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            take: Script::new(TAKE),
        }
    }

    fn key(&self, jti: &str) -> String {
        format!("{}requester:{jti}", self.prefix)
    }
}

#[async_trait]
impl Requesters for RedisRequesters {
    async fn remember(&self, jti: &str, address: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(self.key(jti))
            .arg(address)
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn take(&self, jti: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        self.take
            .key(self.key(jti))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_is_taken_once_and_not_after_it_expired() {
        let requesters = MemoryRequesters::new();
        requesters
            .remember("a", "visitor@example.org", Duration::from_secs(60))
            .await
            .unwrap();
        requesters
            .remember("b", "other@example.org", Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            requesters.take("a").await.unwrap().as_deref(),
            Some("visitor@example.org")
        );
        assert_eq!(requesters.take("a").await.unwrap(), None);
        assert_eq!(requesters.take("b").await.unwrap(), None);
        assert_eq!(requesters.take("c").await.unwrap(), None);
    }
}
