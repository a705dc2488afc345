//! Pending approvals in process (embedded mode): lost when the process exits, as are its links.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{ApprovalError, Approvals, Pending};
use crate::token::Jti;

/// Pending requests in a map, dropped once expired.
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    pending: Mutex<HashMap<String, Pending>>,
}

impl MemoryApprovals {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self, now: u64) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // A panic while holding the lock leaves a map that is still consistent.
        let mut map = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, p| p.expires_at > now);
        map
    }
}

#[async_trait]
impl Approvals for MemoryApprovals {
    async fn ask(&self, pending: &Pending) -> Result<(), ApprovalError> {
        self.map(0)
            .insert(pending.id.as_str().to_owned(), pending.clone());
        Ok(())
    }

    async fn get(&self, id: &Jti, now: u64) -> Result<Option<Pending>, ApprovalError> {
        Ok(self.map(now).get(id.as_str()).cloned())
    }

    async fn take(&self, id: &Jti, now: u64) -> Result<Option<Pending>, ApprovalError> {
        Ok(self.map(now).remove(id.as_str()))
    }

    async fn pending(&self, now: u64) -> Result<Vec<Pending>, ApprovalError> {
        let mut all: Vec<Pending> = self.map(now).values().cloned().collect();
        all.sort_by_key(|p| p.asked_at);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(expires_at: u64) -> Pending {
        Pending {
            id: Jti::generate(),
            email: "ada@example.com".into(),
            document: "resume".into(),
            asked_at: 100,
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_request_is_decided_once_and_expires() {
        let approvals = MemoryApprovals::new();
        let p = pending(200);
        approvals.ask(&p).await.unwrap();
        assert_eq!(approvals.pending(150).await.unwrap(), vec![p.clone()]);
        assert_eq!(approvals.get(&p.id, 150).await.unwrap(), Some(p.clone()));
        assert_eq!(approvals.take(&p.id, 150).await.unwrap(), Some(p.clone()));
        assert_eq!(approvals.take(&p.id, 150).await.unwrap(), None);
        let q = pending(200);
        approvals.ask(&q).await.unwrap();
        assert_eq!(approvals.take(&q.id, 200).await.unwrap(), None);
        assert!(approvals.pending(200).await.unwrap().is_empty());
    }
}
