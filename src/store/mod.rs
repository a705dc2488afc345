//! The token store: the single-use state of every link, behind [`TokenStore`].
//!
//! A link is *usable* from the moment it is minted until one download of it completes, it is
//! revoked, it expires, [`NewLink::attempts`] downloads of it have started without completing, or
//! the bytes its downloads have sent in all cover the document (see [`Sent`]).
//! A download holds a [`Lease`] on its link while bytes flow: a second download of the same link is
//! refused (`InFlight`) until the lease is completed, released, or expires because the replica
//! holding it died. Every operation is one atomic step in the store, so two racing clients can
//! never both be granted the same link.
//!
//! Implementations: [`memory::MemoryStore`] (embedded, in process) and [`shared::RedisStore`]
//! (Redis, shared by every replica). Each must fail closed: when the
//! store cannot answer, operations return [`StoreError::Unavailable`] and no download starts.

pub mod memory;
pub mod observed;
pub mod shared;

use std::time::Duration;

use crate::token::Jti;
use async_trait::async_trait;

/// A link to record when it is minted.
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    pub jti: &'a Jti,
    /// The catalog id of the document, kept so operators can read what a key grants.
    pub doc: &'a str,
    /// How long the link lives; the record expires with it.
    pub ttl: Duration,
    /// How many downloads may start before one completes.
    pub attempts: u32,
    /// Who the link was made for, as [`Pseudonyms::person`](crate::pseudonym::Pseudonyms::person)
    /// of the address: lets an operator revoke every link of one person at once. No address in
    /// clear, and no hash anyone could recompute without the key.
    pub owner: Option<&'a str>,
}

/// A claim on a link held by one download while it streams.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Random, unique to this download: only its holder can complete or release it.
    pub id: String,
    /// How long the claim survives without renewal.
    pub ttl: Duration,
    /// The client network downloading, keyed (see [`Lease::held_by`]); empty when unknown. A
    /// re-armed link may only be claimed by its network.
    pub holder: String,
    /// Whether completing this download lets the same network fetch the link once more
    /// ([`TokenStore::rearm`]): a download started by the confirm page's button.
    pub arms: bool,
}

impl Lease {
    pub fn new(ttl: Duration) -> Self {
        Self::held_by(ttl, "", false)
    }

    /// A lease for a download by `holder`: a client network, as the rate limiter names it (an
    /// IPv4 address, an IPv6 /64), as [`Pseudonyms::network`](crate::pseudonym::Pseudonyms::network)
    /// names it: no address of a person. `arms`: see [`Lease::arms`].
    pub fn held_by(ttl: Duration, holder: &str, arms: bool) -> Self {
        Self {
            id: crate::token::new_jti(),
            ttl,
            holder: holder.to_owned(),
            arms,
        }
    }
}

/// What one download has sent so far, reported with every renewal and at its end: the store
/// counts the bytes each link has delivered and spends the link once they cover the document.
///
/// `bytes` is the download's running total, never a delta, so a report that is retried or
/// arrives twice cannot count twice. A claim is only granted while the link's total is below the
/// size, and one download sends at most the document, so a link delivers less than twice the
/// document in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Bytes this download has handed to the client so far.
    pub bytes: u64,
    /// The whole document's size; 0 when unknown (nothing was sent), which counts nothing.
    pub size: u64,
}

impl Sent {
    pub fn new(bytes: u64, size: u64) -> Self {
        Self { bytes, size }
    }
}

/// What a download of a link would meet now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Usable; `started` downloads of it have begun and not completed.
    Ready { started: u32 },
    /// Another download of it is streaming.
    InFlight,
    /// Spent: downloaded completely, out of attempts, or its downloads have sent as many bytes as
    /// the document has.
    Used,
    /// Unknown to the store: revoked by an operator (or never recorded).
    Revoked,
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller holds the lease; this is download number `attempt` (from 1).
    Granted { attempt: u32 },
    /// Refused: the link is in another state.
    Refused(LinkState),
}

/// A store that cannot answer. Single use cannot be enforced, so nothing is served.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("token store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The single-use state of links.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Records a freshly minted link.
    async fn insert(&self, link: &NewLink<'_>) -> Result<(), StoreError>;

    /// Reports the link's state without changing it (for `HEAD`).
    async fn peek(&self, jti: &Jti) -> Result<LinkState, StoreError>;

    /// Starts a download: counts an attempt and takes the lease, unless the link is in flight,
    /// spent or unknown. While leased, the record lives at least as long as the lease. The bytes
    /// last reported by a lease that expired unreleased (its replica died) count here.
    async fn claim(&self, jti: &Jti, lease: &Lease) -> Result<ClaimOutcome, StoreError>;

    /// Extends a held lease and records what the download has `sent` so far (the link is not
    /// spent while it streams, even when its total passes the size). `false` when the lease is no
    /// longer held (revoked, or expired and taken by another download): the download must stop.
    async fn renew(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError>;

    /// Ends a download that delivered the document's last byte (`sent` is all it sends): the link
    /// is spent. `false` when the lease was no longer held, in which case the last bytes must not
    /// be sent.
    async fn complete(&self, jti: &Jti, lease: &Lease, sent: Sent) -> Result<bool, StoreError>;

    /// Ends a download that did not deliver the last byte (cut off, or a partial range), adding
    /// what it `sent` to the link's total. With `refund` neither the attempt nor its bytes count
    /// (the failure was ours, not the client's). A link whose attempts are all used up, or whose
    /// total covers the document, is spent.
    async fn release(
        &self,
        jti: &Jti,
        lease: &Lease,
        sent: Sent,
        refund: bool,
    ) -> Result<(), StoreError>;

    /// Makes a link that a confirm-page download by `holder` completed less than `window` ago
    /// usable for one more download by `holder` only, for the rest of that window; once per link.
    /// Any end of that download (complete, cut off, failed) spends it again. Only a link whose
    /// downloads had sent no more than the document when it completed is re-armed, so with its
    /// second fetch a link delivers at most twice the document. A phone's download manager
    /// fetches a file again right after the browser did. `false` when that does not apply: the
    /// link is in any other state, was completed by another network or too long ago, or was
    /// re-armed already.
    async fn rearm(&self, jti: &Jti, holder: &str, window: Duration) -> Result<bool, StoreError>;

    /// Withdraws a link: no download of it starts any more (nor its second fetch after a
    /// completed download), and one in flight stops at its next
    /// renewal. `false` when there was no such usable link.
    async fn revoke(&self, jti: &Jti) -> Result<bool, StoreError>;

    /// Withdraws every usable link made for `owner` (see [`NewLink::owner`]); returns how many.
    async fn revoke_owner(&self, owner: &str) -> Result<u64, StoreError>;

    /// Answers when the store is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}
