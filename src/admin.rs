//! Operator actions on links: mint one (and mail it, or hand it over), revoke one by its `jti` or
//! every link of one address, read the owner's request log, export or erase one person's entries
//! in it. The admin API (`http::admin`) and the command line (`docgate link`, `docgate revoke`,
//! `docgate requests`) both call these, so they behave alike.
//!
//! On embedded defaults the command line cannot reach the service's memory; it calls the admin
//! API instead, through [`remote`].
//!
//! Every action writes one `audit` log line: what was done, to which link (`jti` prefix) or
//! person (pseudonym), never an address or a token in clear.

mod reading;
pub mod remote;

pub use reading::{Funnel, Funnels, Opened, RequestRow, Search, Stages, funnel, requests, search};

use std::time::Duration;

use crate::address::{self, AddressError};
use crate::app::App;
use crate::approval::{ApprovalError, Verdict};
use crate::link::{self, Issued, LinkError};
use crate::requestlog::{Entry, LogError};
use crate::store::StoreError;
use crate::token::Jti;

/// The longest lifetime an operator may give a link.
pub const MAX_TTL: Duration = crate::catalog::MAX_LINK_TTL;

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Address(#[from] AddressError),
    #[error("no document {0:?} in the catalog")]
    UnknownDocument(String),
    #[error("ttl: {0}")]
    Ttl(String),
    #[error("{0:?} is not a link id")]
    BadJti(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The link could not be issued.
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Log(#[from] LogError),
    /// The pending requests cannot be read.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    #[error("{0:?} is not a pending request's id")]
    BadApprovalId(String),
}

/// A link to make.
#[derive(Debug, Clone)]
pub struct Mint {
    pub email: String,
    pub document: String,
    /// The link's lifetime; `None`: the document's `link_ttl`, else `DOCGATE_TOKEN_TTL`.
    pub ttl: Option<Duration>,
    /// Mail it to the address (through the same outbox as a visitor's request).
    pub send: bool,
}

/// A link made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Minted {
    pub url: String,
    pub jti: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
}

/// A request waiting for the owner's decision, as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PendingRow {
    pub id: String,
    pub email: String,
    pub document: String,
    /// RFC 3339, UTC.
    pub asked_at: String,
}

/// Every request waiting for the owner's decision, oldest first.
pub async fn approvals(app: &App) -> Result<Vec<PendingRow>, AdminError> {
    let pending = app.backends.approvals.pending(app.now()).await?;
    Ok(pending
        .into_iter()
        .map(|p| PendingRow {
            id: p.id.as_str().to_owned(),
            email: p.email,
            document: p.document,
            asked_at: rfc3339(p.asked_at),
        })
        .collect())
}

/// Decides the pending request `id` ([`link::decide`]): `false` when it is unknown, decided
/// already or expired.
pub async fn decide(app: &App, id: &str, verdict: Verdict) -> Result<bool, AdminError> {
    let jti = Jti::parse(id).ok_or_else(|| AdminError::BadApprovalId(id.to_owned()))?;
    let decided = link::decide(app, &jti, verdict).await?;
    tracing::info!(
        target: "audit",
        approval = jti.short(),
        decision = verdict.tag(),
        decided = decided.is_some(),
        "pending request decided by an operator"
    );
    Ok(decided.is_some())
}

/// Makes a link as an operator asked: same validation, store record and request log as a
/// visitor's request, without the rate limits or the document's domain policy
/// ([`link::hand_over`]); its lifetime is the document's unless the operator gives one.
pub async fn mint(app: &App, request: &Mint) -> Result<Minted, AdminError> {
    let address = address::validate(&request.email)?;
    let document = app
        .catalog
        .get(request.document.trim())
        .ok_or_else(|| AdminError::UnknownDocument(request.document.clone()))?;
    let ttl = request
        .ttl
        .unwrap_or_else(|| document.link_ttl_or(app.config.token_ttl));
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(AdminError::Ttl(crate::texts::pages::admin_ttl(
            MAX_TTL.as_secs() / 86_400,
        )));
    }
    let pseudonym = app.pseudonym(address.as_ref());
    let Issued { claims, url } = link::hand_over(app, document, address, ttl, request.send).await?;
    let minted = Minted {
        url,
        jti: claims.jti.as_str().to_owned(),
        expires_at: rfc3339(claims.exp),
    };
    tracing::info!(
        target: "audit",
        action = "mint",
        link = claims.jti.short(),
        email = %pseudonym,
        document = %document.id,
        ttl_secs = ttl.as_secs(),
        send = request.send,
        "admin action"
    );
    Ok(minted)
}

/// Withdraws one link. `false` when no usable link had that id.
pub async fn revoke(app: &App, jti: &str) -> Result<bool, AdminError> {
    let Some(jti) = Jti::parse(jti) else {
        return Err(AdminError::BadJti(jti.chars().take(80).collect()));
    };
    let revoked = app.backends.store.revoke(&jti).await?;
    tracing::info!(
        target: "audit",
        action = "revoke",
        link = jti.short(),
        revoked,
        "admin action"
    );
    Ok(revoked)
}

/// Withdraws every usable link made for `email`; returns how many there were.
pub async fn revoke_address(app: &App, email: &str) -> Result<u64, AdminError> {
    let address = address::validate(email)?;
    // Under the current key and every previous one still looked up: links minted before a
    // rotation of DOCGATE_PSEUDONYM_KEY are indexed under the old id.
    let mut revoked = 0;
    for owner in app.pseudonyms.people(address.as_ref()) {
        revoked += app.backends.store.revoke_owner(&owner).await?;
    }
    tracing::info!(
        target: "audit",
        action = "revoke_address",
        email = %app.pseudonym(address.as_ref()),
        revoked,
        "admin action"
    );
    Ok(revoked)
}

/// Every request log entry of the person at `email`, newest first: their link requests, and the
/// downloads and opens of the links made for them.
pub async fn export_person(app: &App, email: &str) -> Result<Vec<Entry>, AdminError> {
    let address = address::validate(email)?;
    let mut entries = Vec::new();
    for owner in app.pseudonyms.people(address.as_ref()) {
        entries.extend(app.backends.requests.person(&owner).await?);
    }
    // Newest first across the keys (RFC 3339 UTC times sort as text).
    entries.sort_by(|a, b| b.at.cmp(&a.at));
    tracing::info!(
        target: "audit",
        action = "export_person",
        email = %app.pseudonym(address.as_ref()),
        returned = entries.len(),
        "admin action"
    );
    Ok(entries)
}

/// Deletes every request log entry of the person at `email` (those [`export_person`] returns),
/// and forgets which links were theirs; returns how many entries there were.
pub async fn erase_person(app: &App, email: &str) -> Result<u64, AdminError> {
    let address = address::validate(email)?;
    let mut erased = 0;
    for owner in app.pseudonyms.people(address.as_ref()) {
        erased += app.backends.requests.erase(&owner).await?;
    }
    tracing::info!(
        target: "audit",
        action = "erase_person",
        email = %app.pseudonym(address.as_ref()),
        erased,
        "admin action"
    );
    Ok(erased)
}

/// Seconds since the epoch as RFC 3339, UTC (empty past what a date can hold).
fn rfc3339(secs: u64) -> String {
    crate::units::rfc3339(secs).unwrap_or_default()
}
