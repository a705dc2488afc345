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

pub mod remote;

use std::time::Duration;

use crate::address::{self, AddressError};
use crate::app::App;
use crate::approval::{ApprovalError, Verdict};
use crate::link::{self, Issued, LinkError};
use crate::requestlog::{Entry, Event, LogError};
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

/// One link request as the owner reads it: who asked for what and when, and what became of the
/// link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestRow {
    /// The address as given (refused requests may have none).
    pub email: Option<String>,
    /// The name and company given with the request.
    pub name: Option<String>,
    pub company: Option<String>,
    /// Whether the request agreed to the privacy notice, when it said either way.
    pub consent: Option<bool>,
    pub document: Option<String>,
    /// RFC 3339, UTC.
    pub asked_at: String,
    /// The request's outcome: `sent`, `not_sent_address_limit`, `admin_minted`, or an error code.
    pub outcome: String,
    pub client_ip: std::net::IpAddr,
    /// The link's id, when one was made.
    pub jti: Option<String>,
    /// When a download of the link completed.
    pub downloaded_at: Option<String>,
    /// The outcome of the link's latest download (`completed`, `interrupted`, `link_used`, ...).
    pub download: Option<String>,
    /// How many downloads of the link were tried.
    pub download_attempts: u32,
    /// For a watermarked document, whether the link's latest download was `stamped` or served
    /// `unstamped` (it could not be stamped, and `DOCGATE_WATERMARK_FALLBACK=serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Each fetch of the link that did not download (its confirmation page), oldest first: a
    /// mail scanner shows as an open seconds after sending, from a data centre's address.
    pub opened: Vec<Opened>,
}

/// One fetch of a link that did not download it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Opened {
    /// RFC 3339, UTC.
    pub at: String,
    pub user_agent: Option<String>,
    /// Seconds from the link's making (about when it was mailed) to the fetch.
    pub after_send_secs: Option<u64>,
    pub client_ip: std::net::IpAddr,
}

/// How many log entries [`requests`] reads at a time.
const READ_PAGE: usize = 500;

/// The newest `limit` link requests, newest first, after skipping the `offset` newest, each
/// joined with what became of its link.
pub async fn requests(
    app: &App,
    limit: usize,
    offset: usize,
) -> Result<Vec<RequestRow>, AdminError> {
    let entries = newest_requests(app, None, offset.saturating_add(limit), usize::MAX).await?;
    let rows = join(&entries, None, limit, offset);
    tracing::info!(
        target: "audit",
        action = "read_requests",
        limit,
        offset,
        returned = rows.len(),
        "admin action"
    );
    Ok(rows)
}

/// The newest log entries, a page at a time, until `want` link requests (of `document` only,
/// when given) are in or `most` entries were read: a link's downloads and opens are newer than
/// its request, so they are read too.
async fn newest_requests(
    app: &App,
    document: Option<&str>,
    want: usize,
    most: usize,
) -> Result<Vec<Entry>, AdminError> {
    let (mut entries, mut asked) = (Vec::new(), 0);
    loop {
        let page = app
            .backends
            .requests
            .recent(READ_PAGE, entries.len())
            .await?;
        let last = page.len() < READ_PAGE;
        asked += page
            .iter()
            .filter(|e| e.event == Event::LinkRequested)
            .filter(|e| document.is_none_or(|d| e.document.as_deref() == Some(d)))
            .count();
        entries.extend(page);
        if last || asked >= want || entries.len() >= most {
            return Ok(entries);
        }
    }
}

/// Joins link requests (newest first in `entries`, for `document` only when given) with the
/// downloads of their links.
fn join(entries: &[Entry], document: Option<&str>, limit: usize, offset: usize) -> Vec<RequestRow> {
    use std::collections::HashMap;
    // Newest first: the first download seen for a jti is its latest.
    let mut downloads: HashMap<&str, (Option<&str>, &str, u32)> = HashMap::new();
    // Newest first: the first watermark note seen for a jti is its latest download's.
    let mut stamps: HashMap<&str, &str> = HashMap::new();
    // Oldest first.
    let mut opens: HashMap<&str, Vec<Opened>> = HashMap::new();
    for entry in entries
        .iter()
        .rev()
        .filter(|e| e.event == Event::LinkOpened)
    {
        if let Some(jti) = entry.jti.as_deref() {
            opens.entry(jti).or_default().push(Opened {
                at: entry.at.clone(),
                user_agent: entry.user_agent.clone(),
                after_send_secs: entry.after_send_secs,
                client_ip: entry.client_ip,
            });
        }
    }
    for entry in entries.iter().filter(|e| e.event == Event::Download) {
        let Some(jti) = entry.jti.as_deref() else {
            continue;
        };
        let seen = downloads.entry(jti).or_insert((None, &entry.outcome, 0));
        seen.2 += 1;
        if let Some(noted) = entry.watermark.as_deref() {
            stamps.entry(jti).or_insert(noted);
        }
        if entry.outcome == "completed" && seen.0.is_none() {
            seen.0 = Some(&entry.at);
        }
    }
    entries
        .iter()
        .filter(|e| e.event == Event::LinkRequested)
        .filter(|e| document.is_none_or(|d| e.document.as_deref() == Some(d)))
        .skip(offset)
        .take(limit)
        .map(|e| {
            let download = e.jti.as_deref().and_then(|jti| downloads.get(jti));
            RequestRow {
                email: e.email.clone(),
                name: e.name.clone(),
                company: e.company.clone(),
                consent: e.consent,
                document: e.document.clone(),
                asked_at: e.at.clone(),
                outcome: e.outcome.clone(),
                client_ip: e.client_ip,
                jti: e.jti.clone(),
                downloaded_at: download.and_then(|d| d.0.map(str::to_owned)),
                download: download.map(|d| d.1.to_owned()),
                download_attempts: download.map_or(0, |d| d.2),
                watermark: e
                    .jti
                    .as_deref()
                    .and_then(|jti| stamps.get(jti))
                    .map(|noted| (*noted).to_owned()),
                opened: e
                    .jti
                    .as_deref()
                    .and_then(|jti| opens.remove(jti))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// What the owner's page looks for in the request log: one person (by address, through the same
/// keyed lookup as [`export_person`]), one document, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub email: Option<String>,
    pub document: Option<String>,
}

/// The link requests matching `search`, newest first, after skipping `offset` of them, each
/// joined with what became of its link (as [`requests`]).
pub async fn search(
    app: &App,
    search: &Search,
    limit: usize,
    offset: usize,
) -> Result<Vec<RequestRow>, AdminError> {
    let document = search.document.as_deref();
    let entries = match &search.email {
        // One person's entries are found by their keyed id, never by a scan for the address.
        Some(email) => export_person(app, email).await?,
        None => {
            let want = offset.saturating_add(limit);
            newest_requests(app, document, want, FUNNEL_MAX_ENTRIES).await?
        }
    };
    let rows = join(&entries, document, limit, offset);
    tracing::info!(
        target: "audit",
        action = "search_requests",
        by_person = search.email.is_some(),
        document = document.unwrap_or(""),
        limit,
        offset,
        returned = rows.len(),
        "admin action"
    );
    Ok(rows)
}

/// The most log entries one funnel reads (newest first): about 30 MB at the very most.
pub const FUNNEL_MAX_ENTRIES: usize = 20_000;

/// One stage count of the funnel: link requests, of them those that made a link (mailed or
/// handed over), those whose link was followed (opened or a download started), and those whose
/// link was downloaded completely.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stages {
    pub asked: u32,
    pub mailed: u32,
    pub opened: u32,
    pub downloaded: u32,
}

/// One document's funnel: a [`Stages`] per day (oldest first), by the day the link was asked
/// for, and their sum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Funnel {
    pub document: String,
    pub days: Vec<Stages>,
    pub total: Stages,
}

/// Every catalog document's funnel over the last days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funnels {
    /// The first day shown (UTC); the last is today.
    pub first_day: time::Date,
    /// In catalog order.
    pub documents: Vec<Funnel>,
    /// True when the log holds more in the period than [`FUNNEL_MAX_ENTRIES`]: older days are
    /// then undercounted.
    pub partial: bool,
}

/// The funnel of each catalog document over the `days` days up to `now` (UTC), from the
/// request log: each link request counted on the day it was made, at each stage its link
/// reached. A request that waited for the owner is asked once, on the day it was made; when
/// approved, its link counts from the day of the approval (the log's entry that mailed it).
pub async fn funnel(
    app: &App,
    days: u16,
    now: time::OffsetDateTime,
) -> Result<Funnels, AdminError> {
    let today = now.date();
    let first_day = today
        .checked_sub(time::Duration::days(i64::from(days.max(1)) - 1))
        .unwrap_or(today);
    let mut entries: Vec<Entry> = Vec::new();
    let mut partial = false;
    loop {
        let page = app
            .backends
            .requests
            .recent(READ_PAGE, entries.len())
            .await?;
        let last = page.len() < READ_PAGE;
        let older = page
            .last()
            .and_then(Entry::time)
            .is_some_and(|t| t.date() < first_day);
        entries.extend(page);
        if last || older {
            break;
        }
        if entries.len() >= FUNNEL_MAX_ENTRIES {
            partial = true;
            break;
        }
    }
    Ok(Funnels {
        first_day,
        documents: count_stages(
            app.catalog.iter().map(|d| d.id.clone()),
            &entries,
            first_day,
            days,
        ),
        partial,
    })
}

/// Counts the stages per document and day of `entries` (any order).
fn count_stages(
    documents: impl Iterator<Item = String>,
    entries: &[Entry],
    first_day: time::Date,
    days: u16,
) -> Vec<Funnel> {
    use std::collections::HashSet;
    let days = usize::from(days.max(1));
    let followed: HashSet<&str> = entries
        .iter()
        .filter(|e| matches!(e.event, Event::LinkOpened | Event::Download))
        .filter_map(|e| e.jti.as_deref())
        .collect();
    let completed: HashSet<&str> = entries
        .iter()
        .filter(|e| e.event == Event::Download && e.outcome == "completed")
        .filter_map(|e| e.jti.as_deref())
        .collect();
    let mut funnels: Vec<Funnel> = documents
        .map(|document| Funnel {
            document,
            days: vec![Stages::default(); days],
            total: Stages::default(),
        })
        .collect();
    for entry in entries.iter().filter(|e| e.event == Event::LinkRequested) {
        let Some(day) = entry
            .time()
            .map(|t| (t.date() - first_day).whole_days())
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| *d < days)
        else {
            continue;
        };
        let Some(funnel) = funnels
            .iter_mut()
            .find(|f| Some(f.document.as_str()) == entry.document.as_deref())
        else {
            continue;
        };
        let jti = entry.jti.as_deref();
        // A decision continues a request its `pending_approval` entry counted as asked.
        let decision = [link::APPROVED, link::DECLINED].contains(&entry.outcome.as_str());
        let stages = [
            !decision,
            jti.is_some(),
            jti.is_some_and(|j| followed.contains(j) || completed.contains(j)),
            jti.is_some_and(|j| completed.contains(j)),
        ];
        for counts in [&mut funnel.days[day], &mut funnel.total] {
            let fields = [
                &mut counts.asked,
                &mut counts.mailed,
                &mut counts.opened,
                &mut counts.downloaded,
            ];
            for (field, reached) in fields.into_iter().zip(stages) {
                *field += u32::from(reached);
            }
        }
    }
    funnels
}

/// Seconds since the epoch as RFC 3339, UTC.
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(event: Event, at: &str, document: &str, outcome: &str, jti: Option<&str>) -> Entry {
        let mut entry = Entry::now(event, "192.0.2.1".parse().unwrap(), outcome);
        entry.at = at.to_owned();
        entry.document = Some(document.to_owned());
        entry.jti = jti.map(str::to_owned);
        entry
    }

    #[test]
    fn the_funnel_counts_each_request_on_its_day_at_every_stage_its_link_reached() {
        use Event::*;
        let first = time::macros::date!(2026 - 12 - 01);
        let entries = [
            // Newest first, as the log reads.
            entry(
                Download,
                "2026-12-04T09:00:00Z",
                "deck",
                "completed",
                Some("b"),
            ),
            entry(
                LinkOpened,
                "2026-12-03T10:00:00Z",
                "deck",
                "opened",
                Some("a"),
            ),
            entry(
                LinkRequested,
                "2026-12-03T08:00:00Z",
                "deck",
                "not_sent_address_limit",
                None,
            ),
            entry(
                LinkRequested,
                "2026-12-02T08:00:00Z",
                "deck",
                "sent",
                Some("b"),
            ),
            entry(
                LinkRequested,
                "2026-12-01T08:00:00Z",
                "deck",
                "sent",
                Some("a"),
            ),
            entry(
                LinkRequested,
                "2026-12-01T07:00:00Z",
                "cv",
                "sent",
                Some("c"),
            ),
            // Before the period, and a document no longer in the catalog: left out.
            entry(
                LinkRequested,
                "2026-11-30T23:59:59Z",
                "deck",
                "sent",
                Some("d"),
            ),
            entry(
                LinkRequested,
                "2026-12-01T08:00:00Z",
                "gone",
                "sent",
                Some("e"),
            ),
        ];
        let funnels = count_stages(
            ["cv".to_owned(), "deck".to_owned()].into_iter(),
            &entries,
            first,
            4,
        );
        let stages = |asked, mailed, opened, downloaded| Stages {
            asked,
            mailed,
            opened,
            downloaded,
        };
        let deck = &funnels[1];
        assert_eq!(deck.document, "deck");
        assert_eq!(
            deck.days,
            [
                stages(1, 1, 1, 0),
                stages(1, 1, 1, 1),
                stages(1, 0, 0, 0),
                stages(0, 0, 0, 0)
            ]
        );
        assert_eq!(deck.total, stages(3, 2, 2, 1));
        assert_eq!(funnels[0].total, stages(1, 1, 0, 0));
    }

    #[test]
    fn a_request_that_waited_for_the_owner_is_asked_once() {
        use Event::*;
        let first = time::macros::date!(2026 - 12 - 01);
        let at = "2026-12-01T08:00:00Z";
        let entries = [
            entry(Download, at, "deck", "completed", Some("a")),
            entry(LinkRequested, at, "deck", link::APPROVED, Some("a")),
            entry(LinkRequested, at, "deck", link::DECLINED, None),
            entry(LinkRequested, at, "deck", link::PENDING_APPROVAL, None),
            entry(LinkRequested, at, "deck", link::PENDING_APPROVAL, None),
            entry(LinkRequested, at, "deck", link::PENDING_APPROVAL, None),
        ];
        let funnels = count_stages(["deck".to_owned()].into_iter(), &entries, first, 1);
        // Three asked (one still waits), one approved, mailed and downloaded, one declined.
        let total = funnels[0].total;
        assert_eq!(
            [total.asked, total.mailed, total.opened, total.downloaded],
            [3, 1, 1, 1]
        );
    }
}
