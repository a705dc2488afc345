//! Pending approvals: a person's request for a document with `approval = true`, waiting for the
//! owner's decision. [`Approvals`] is the boundary: [`memory::MemoryApprovals`] in process
//! (embedded), [`shared::RedisApprovals`] in Redis, shared by every replica.
//!
//! A pending request holds the address (as the request log holds it), the document's id, when
//! it was asked and when it expires (`DOCGATE_APPROVAL_TTL`). Deciding takes it out atomically
//! ([`Approvals::take`]): of two deciders, on one replica or two, exactly one gets it.
//! Its id is a fresh random [`Jti`] (128 bits), the handle the admin API, the CLI and the signed
//! one-click links name it by.

pub mod memory;
pub mod shared;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::token::Jti;

/// One request waiting for the owner's decision.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Its handle: random, unguessable.
    pub id: Jti,
    /// The address that asked.
    pub email: String,
    /// The document's catalog id.
    pub document: String,
    /// When it was asked, seconds since the epoch.
    pub asked_at: u64,
    /// When it stops waiting, seconds since the epoch.
    pub expires_at: u64,
}

/// Never prints the address.
impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.id.short())
            .field("document", &self.document)
            .field("asked_at", &self.asked_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why the pending requests cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The store does not answer.
    #[error("pending approvals unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored request cannot be read back.
    #[error("pending approval unreadable: {0}")]
    Corrupt(String),
}

/// Where pending requests wait.
#[async_trait]
pub trait Approvals: Send + Sync + 'static {
    /// Records `pending` until its `expires_at`.
    async fn ask(&self, pending: &Pending) -> Result<(), ApprovalError>;

    /// The request `id` while it waits at `now`, without deciding it.
    async fn get(&self, id: &Jti, now: u64) -> Result<Option<Pending>, ApprovalError>;

    /// Takes the request `id` out to decide it: `Some` to exactly one caller, `None` when it is
    /// unknown, decided already or expired.
    async fn take(&self, id: &Jti, now: u64) -> Result<Option<Pending>, ApprovalError>;

    /// Every request waiting at `now`, oldest first.
    async fn pending(&self, now: u64) -> Result<Vec<Pending>, ApprovalError>;
}

/// The owner's decision on a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The person gets the usual link mail.
    Approve,
    /// The person gets the decline note, or nothing.
    Decline,
}

impl Verdict {
    /// `approve` or `decline`, as the admin API and the one-click links name it.
    pub fn tag(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Decline => "decline",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Self> {
        [Verdict::Approve, Verdict::Decline]
            .into_iter()
            .find(|v| v.tag() == tag)
    }

    /// What the signed one-click link's `doc` claim holds for this verdict: never a link's,
    /// since the claim's `jti` names a pending request, not a link, in a key space of its own.
    pub fn claim(self) -> &'static str {
        match self {
            Verdict::Approve => "approval-approve",
            Verdict::Decline => "approval-decline",
        }
    }

    pub fn from_claim(claim: &str) -> Option<Self> {
        [Verdict::Approve, Verdict::Decline]
            .into_iter()
            .find(|v| v.claim() == claim)
    }
}
