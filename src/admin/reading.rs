//! What the owner reads: the request log's link requests joined with what became of each link
//! (newest first, in pages), a search by address or document, and the funnel per document and
//! day (asked, mailed, opened, downloaded). Reading only: nothing here changes a link or an entry.

use crate::app::App;
use crate::link;
use crate::requestlog::{Entry, Event};

use super::{AdminError, export_person};

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
    let mut asked = 0;
    let (entries, _) = newest(app, most, |page| {
        asked += page
            .iter()
            .filter(|e| e.event == Event::LinkRequested)
            .filter(|e| document.is_none_or(|d| e.document.as_deref() == Some(d)))
            .count();
        asked >= want
    })
    .await?;
    Ok(entries)
}

/// The newest log entries, [`READ_PAGE`] at a time, until the log ends, `enough` says of a page
/// that no older one is needed, or `most` entries were read; and whether older entries were left
/// unread because of `most`.
async fn newest(
    app: &App,
    most: usize,
    mut enough: impl FnMut(&[Entry]) -> bool,
) -> Result<(Vec<Entry>, bool), AdminError> {
    let mut entries = Vec::new();
    loop {
        let page = app
            .backends
            .requests
            .recent(READ_PAGE, entries.len())
            .await?;
        let last = page.len() < READ_PAGE;
        let enough = enough(&page);
        entries.extend(page);
        if last || enough {
            return Ok((entries, false));
        }
        if entries.len() >= most {
            return Ok((entries, true));
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
    let (entries, partial) = newest(app, FUNNEL_MAX_ENTRIES, |page| {
        page.last()
            .and_then(Entry::time)
            .is_some_and(|t| t.date() < first_day)
    })
    .await?;
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
