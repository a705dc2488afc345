//! Pending approvals in Redis, shared by every replica.
//!
//! Keys: `<prefix>approval:{<id>}` holds one request as JSON, expiring with it (the hash tag
//! keeps a request's key in one slot); `<prefix>approvals` is the index, a sorted set of ids by
//! expiry, for listing. Deciding is one `GETDEL` of the request's key: atomic, so exactly one
//! decider gets it, on any replica. The index is only a hint: listing reads each request and
//! drops ids whose request is gone. No Lua: every command names one key.

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{ApprovalError, Approvals, Pending};
use crate::token::Jti;
use crate::topology::SharedConnection;

/// The most requests one listing returns.
const MAX_LISTED: isize = 1000;

#[derive(Clone)]
pub struct RedisApprovals {
    conn: SharedConnection,
    prefix: String,
}

impl RedisApprovals {
    pub fn new(conn: SharedConnection, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, id: &str) -> String {
        format!("{}approval:{{{id}}}", self.prefix)
    }

    fn index(&self) -> String {
        format!("{}approvals", self.prefix)
    }
}

fn unavailable(e: redis::RedisError) -> ApprovalError {
    ApprovalError::Unavailable(Box::new(e))
}

fn read(json: Option<String>, now: u64) -> Result<Option<Pending>, ApprovalError> {
    match json {
        None => Ok(None),
        Some(json) => {
            let pending: Pending =
                serde_json::from_str(&json).map_err(|e| ApprovalError::Corrupt(e.to_string()))?;
            Ok((pending.expires_at > now).then_some(pending))
        }
    }
}

#[async_trait]
impl Approvals for RedisApprovals {
    async fn ask(&self, pending: &Pending) -> Result<(), ApprovalError> {
        let mut conn = self.conn.clone();
        let json =
            serde_json::to_string(pending).map_err(|e| ApprovalError::Corrupt(e.to_string()))?;
        let ttl = pending
            .expires_at
            .saturating_sub(crate::units::unix_now())
            .max(1);
        let () = conn
            .set_ex(self.key(pending.id.as_str()), json, ttl)
            .await
            .map_err(unavailable)?;
        let () = conn
            .zadd(self.index(), pending.id.as_str(), pending.expires_at)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, id: &Jti, now: u64) -> Result<Option<Pending>, ApprovalError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn.get(self.key(id.as_str())).await.map_err(unavailable)?;
        read(json, now)
    }

    async fn take(&self, id: &Jti, now: u64) -> Result<Option<Pending>, ApprovalError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn
            .get_del(self.key(id.as_str()))
            .await
            .map_err(unavailable)?;
        // The index entry is only a hint; a lost ZREM is pruned when it expires.
        let _: Result<(), _> = conn.zrem(self.index(), id.as_str()).await;
        read(json, now)
    }

    async fn pending(&self, now: u64) -> Result<Vec<Pending>, ApprovalError> {
        let mut conn = self.conn.clone();
        let () = conn
            .zrembyscore(self.index(), "-inf", now)
            .await
            .map_err(unavailable)?;
        let ids: Vec<String> = conn
            .zrange(self.index(), 0, MAX_LISTED - 1)
            .await
            .map_err(unavailable)?;
        let mut all = Vec::with_capacity(ids.len());
        for id in ids {
            let json: Option<String> = conn.get(self.key(&id)).await.map_err(unavailable)?;
            if let Some(pending) = read(json, now)? {
                all.push(pending);
            }
        }
        all.sort_by_key(|p| p.asked_at);
        Ok(all)
    }
}
