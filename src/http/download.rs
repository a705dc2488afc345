//! `GET`, `POST` and `HEAD /d/{token}`: a recipient follows the link from the mail.
//!
//! With the confirm page on (the default), a browser's `GET` of a link that nothing has started
//! yet gets a page naming the document, its size and the link's expiry, with a Download button
//! that posts back to the same address ([`super::confirm`]). Mail scanners and link previews fetch links with `GET`
//! and browser-like headers before the person does; they see the page and spend nothing (their
//! fetch is recorded for the owner). The `POST`, a `GET` from a non-browser client (`curl`, a
//! download manager), a `Range` resume, and any `GET` after a download of the link has started
//! stream the bytes. `POST` from the expired page (`renew=1`) asks for a new link instead.
//!
//! Every request to a link counts once against the per-IP download limit ([`PerIp`]), whose
//! refusal answers first. Streaming verifies the token, takes a place in the concurrent download
//! caps (`503`/`429` when full, before anything is claimed; see [`super::admission`]), claims the
//! link in the token store (one atomic step: exactly one of several racing clients wins), the
//! claim and the per-IP limit leaving together (one round trip for both), opens the object with the
//! requested range, and streams it through a [`DownloadBody`] that spends the link only when the
//! last byte goes out, or when the bytes the link's downloads have sent in all reach the
//! document's size (the store counts them: one link, one copy), under a [`Paced`] that holds the
//! cap's place and cuts a client reading below the minimum rate. A failure before the first byte
//! releases the claim with a refund, so it costs the recipient nothing. `HEAD` answers what a
//! `GET` would get now without claiming anything. The response's headers are
//! [`super::download_headers`]'s. A document with `watermark = true` is sent as
//! its recipient's stamped copy ([`super::stamp`]): same flow, its own size and `ETag`.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::request::Parts;
use http::{Method, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use super::admission::Full;
use super::body::{DownloadBody, HeldClaim, Outcome};
use super::confirm;
use super::conn::Cutter;
use super::download_headers::headers;
use super::error::Error;
use super::pace::{Paced, Pacing};
use super::stamp::{self, Plan};
use super::{Body, State, empty, enforce};
use crate::app::{App, LEASE_TTL, RENEW_EVERY};
use crate::catalog::Document;
use crate::metrics::Metrics;
use crate::range::RangeRequest;
use crate::ratelimit::{Key, Scope};
use crate::requestlog::{Entry, Event, Prefetched, RequestLog};
use crate::store::{ClaimOutcome, Lease, LinkState, Sent};
use crate::token::{Claims, Jti, TokenError};

pub use super::download_headers::{DOWNLOAD_CSP, ascii_filename, content_disposition};

/// What a request to a link asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// `HEAD`: what a `GET` would get, nothing claimed.
    Head,
    /// `GET`: the confirm page for a browser (while the confirm page is on and nothing has been
    /// started yet), else the bytes.
    Get,
    /// `POST` from the confirm page: the bytes.
    Download,
    /// `POST` from the expired page: a new link, mailed to the same address.
    Renew,
}

/// A link, as far as a request to it learned it: its token was genuine (expired or not). The
/// router puts it in the access log and offers its document again on the error page.
#[derive(Debug, Clone)]
pub struct Link {
    /// The link's id; logs show only its first characters (its `Display`).
    pub jti: Jti,
    /// The catalog id of the document it grants.
    pub document: String,
}

impl Link {
    fn of(claims: &Claims) -> Self {
        Self {
            jti: claims.jti.clone(),
            document: claims.doc.clone(),
        }
    }
}

/// A request to a link, answered.
#[derive(Debug)]
pub struct Answer {
    pub response: Response<Body>,
    pub link: Link,
}

/// A request to a link, refused: the error, and the link when its token was genuine. The router
/// renders it.
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    pub link: Option<Link>,
}

/// Handles a request to a link, in the order of the request flow: what is asked, the token, then
/// what the link gives now (`HEAD`'s headers, the confirm page, or the bytes), the per-IP limit
/// counted with the first step that has a side effect (with the claim, for the bytes) and
/// answering before anything else. A refusal is counted (but for `HEAD`) and, once the token
/// proved genuine, noted in the owner's request log; the router renders it.
pub async fn handle(
    state: &State,
    req: Request<Incoming>,
    client: IpAddr,
) -> Result<Answer, Failure> {
    let app = &state.app;
    let head = req.method() == Method::HEAD;
    let refuse = |error: Error, link: Option<Link>| {
        if !head {
            Metrics::count(&app.metrics.download_refusals, error.code());
        }
        Failure { error, link }
    };

    // Counted once per request: a download sends it with its claim, anything else alone before
    // its first step with a side effect, and its refusal comes before any other answer.
    let mut limit = PerIp::new(app, client);

    let (parts, body) = req.into_parts();
    let ask = match asked(app, &parts, body).await {
        Ok(ask) => ask,
        Err(e) => {
            limit.enforce().await.map_err(|e| refuse(e, None))?;
            return Err(refuse(e, None));
        }
    };

    let claims = match app.codec.verify(token(&parts), app.now()) {
        Ok(claims) => claims,
        Err(TokenError::Expired(claims)) => {
            limit.enforce().await.map_err(|e| refuse(e, None))?;
            let link = Link::of(&claims);
            if ask == Ask::Renew {
                // A new link for the same document: answered, or refused, as a link request.
                return match super::renew::handle(app, &claims, client).await {
                    Ok(response) => Ok(Answer { response, link }),
                    Err(error) => Err(Failure {
                        error,
                        link: Some(link),
                    }),
                };
            }
            if !head {
                record(app, &claims, client, "link_expired");
            }
            return Err(refuse(Error::Expired, Some(link)));
        }
        Err(e) => {
            limit.enforce().await.map_err(|e| refuse(e, None))?;
            return Err(refuse(e.into(), None));
        }
    };

    let link = Link::of(&claims);
    match answer(state, &parts, &claims, ask, client, &mut limit).await {
        Ok(response) => Ok(Answer { response, link }),
        // Refused by the per-IP limit (or a limiter that cannot answer): as if the token had not
        // been read, nothing noted.
        Err(error) if limit.refused => Err(refuse(error, None)),
        Err(error) => {
            if !head {
                record(app, &claims, client, error.code());
            }
            Err(refuse(error, Some(link)))
        }
    }
}

/// What the request asks for: `HEAD`, `GET`, or a `POST` (from this site only) whose form asks
/// for the bytes or, from the expired page, for a new link.
async fn asked(app: &App, parts: &Parts, body: Incoming) -> Result<Ask, Error> {
    Ok(match parts.method {
        Method::HEAD => Ask::Head,
        Method::POST => {
            confirm::check_same_site(app, &parts.headers)?;
            if confirm::posted_renewal(body, app.config.http.body_timeout).await? {
                Ask::Renew
            } else {
                Ask::Download
            }
        }
        _ => Ask::Get,
    })
}

/// The token in the path (`/d/{token}`, a trailing `/` allowed).
fn token(parts: &Parts) -> &str {
    let token = parts.uri.path().strip_prefix("/d/").unwrap_or("");
    token.strip_suffix('/').unwrap_or(token)
}

/// What a genuine, unexpired link gives now: `HEAD`'s headers; for a browser's `GET` of a link
/// nothing has started yet, the confirm page; else the bytes.
async fn answer(
    state: &State,
    parts: &Parts,
    claims: &Claims,
    ask: Ask,
    client: IpAddr,
    limit: &mut PerIp<'_>,
) -> Result<Response<Body>, Error> {
    let app = &state.app;
    let Some(document) = app.catalog.get(&claims.doc) else {
        limit.enforce().await?;
        return Err(Error::DocumentGone);
    };
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let range = RangeRequest::from_headers(header(header::RANGE), header(header::IF_RANGE));
    let cutter = parts.extensions.get::<Cutter>().cloned();

    match ask {
        Ask::Head => {
            limit.enforce().await?;
            head_response(state, claims, document, range.as_ref()).await
        }
        Ask::Get if range.is_none() && confirm::wants_page(app, &parts.headers) => {
            limit.enforce().await?;
            match app.backends.store.peek(&claims.jti).await? {
                // Nothing started yet: this is the person before their click, or a mail scanner
                // or link preview that never clicks. Neither spends anything.
                LinkState::Ready { started: 0 } => {
                    confirm::page(state, claims, document, &parts.headers, client).await
                }
                // A download of it has begun (a resume, or a phone's download manager fetching
                // what the page's button started), or it is spent, withdrawn or in flight:
                // the download path answers.
                _ => {
                    let request = Requested {
                        ask,
                        client,
                        cutter,
                    };
                    get_response(state, claims, document, None, request, limit).await
                }
            }
        }
        Ask::Get | Ask::Download | Ask::Renew => {
            let request = Requested {
                ask,
                client,
                cutter,
            };
            get_response(state, claims, document, range.as_ref(), request, limit).await
        }
    }
}

/// The per-IP download limit of one request ([`Scope::DownloadPerIp`]), counted once whatever
/// path the request takes: every request to a link counts, as it always has, whether its token
/// is genuine or not.
struct PerIp<'a> {
    app: &'a App,
    client: IpAddr,
    counted: bool,
    /// The limit refused the request (`429`), or the limiter could not answer (`503`).
    refused: bool,
}

impl<'a> PerIp<'a> {
    fn new(app: &'a App, client: IpAddr) -> Self {
        Self {
            app,
            client,
            counted: false,
            refused: false,
        }
    }

    /// Counts the request unless it was already: `429` with `Retry-After` over the limit, `503`
    /// when the limiter cannot answer.
    async fn enforce(&mut self) -> Result<(), Error> {
        if std::mem::replace(&mut self.counted, true) {
            return Ok(());
        }
        let app = self.app;
        let key = Key::ip(Scope::DownloadPerIp, self.client);
        let counted = enforce(app, &key, app.config.limits.download_per_ip).await;
        self.refused = counted.is_err();
        counted
    }
}

/// Who asked for the bytes, and how.
struct Requested {
    ask: Ask,
    client: IpAddr,
    cutter: Option<Cutter>,
}

async fn head_response(
    state: &State,
    claims: &Claims,
    document: &Document,
    range: Option<&RangeRequest>,
) -> Result<Response<Body>, Error> {
    let app = &state.app;
    let link = app.backends.store.peek(&claims.jti).await?;
    if let Some(refusal) = Error::for_state(link) {
        return Err(refusal);
    }
    // A stamped copy's size and validator, as its `GET` would send them.
    let meta = app.backends.objects.head(&document.key).await?;
    let prepared = stamp::prepare_for(app, &state.stamps, document, &meta).await?;
    let meta = match stamp::plan(app, claims, prepared).await? {
        Plan::Stamped(stamped) => stamped.meta(),
        Plan::Plain | Plan::Unstamped => meta,
    };
    let selected = match range {
        Some(request) => request.select(&meta.etag, meta.size)?,
        None => None,
    };
    let mut response = Response::new(empty());
    headers(
        &mut response,
        document,
        &meta,
        selected,
        app.config.recipients.disposition,
    );
    Ok(response)
}

async fn get_response(
    state: &State,
    claims: &Claims,
    document: &Document,
    range: Option<&RangeRequest>,
    request: Requested,
    limit: &mut PerIp<'_>,
) -> Result<Response<Body>, Error> {
    let Requested {
        ask,
        client,
        cutter,
    } = request;
    let app = &state.app;
    let store = &app.backends.store;
    // Before anything is claimed: a refusal here spends nothing (the per-IP limit still counts
    // the request, and answers first).
    let slot = match state.downloads.admit(client) {
        Ok(slot) => slot,
        Err(full) => {
            limit.enforce().await?;
            return Err(match full {
                Full::Client => Error::TooManyDownloads {
                    retry_after: DOWNLOADS_FULL_RETRY,
                },
                Full::Process => Error::Busy {
                    retry_after: DOWNLOADS_FULL_RETRY,
                },
            });
        }
    };
    // The client network, keyed (the store keeps no address): a download started by the confirm
    // page's button may be fetched again by the same network's download manager.
    let network = app.pseudonyms.network(client);
    let again = (ask == Ask::Get).then_some(network.as_str());
    // A watermarked document whose object was replaced since its structure was read is found
    // out when it is opened: the claim is released with a refund, and the new version read (once
    // more at most) before the link is claimed again.
    let mut tries = 0;
    let mut prefetched = None;
    let (object, noted, lease, attempt) = loop {
        tries += 1;
        // A watermarked document's structure is read (once per version) before the link is
        // claimed: a first read takes longer than a claim's lease should wait, and its failure
        // spends nothing.
        let prepared = match stamp::prepare(app, &state.stamps, document).await {
            Ok(prepared) => prepared,
            Err(e) => {
                limit.enforce().await?;
                return Err(e);
            }
        };
        let lease = Lease::held_by(LEASE_TTL, &network, ask == Ask::Download);
        // What the request log will read to record this download (the link's person) is asked
        // for beside the claim, so that it leaves in the claim's write. The bytes never wait
        // for it (on a Redis Cluster its shard is another one, maybe a slow one): not answered
        // by the time the claim is, it finishes on a task of its own (a command is never dropped
        // half-way) and the record waits for it, after the end.
        let mut reading = prefetched.is_none().then(|| {
            let requests = app.backends.requests.clone();
            let jti = claims.jti.as_str().to_owned();
            Box::pin(async move { requests.prefetch(&jti).await })
        });
        let claimed = {
            let mut claiming = std::pin::pin!(claim(app, &claims.jti, &lease, again, limit));
            std::future::poll_fn(|cx| {
                // Both are driven until the claim is answered (they may share a connection).
                if let Some(read) = reading.as_mut()
                    && let Poll::Ready(read) = read.as_mut().poll(cx)
                {
                    prefetched = Some(ReadAhead::Done(read));
                    reading = None;
                }
                claiming.as_mut().poll(cx)
            })
            .await
        };
        if let Some(read) = reading {
            prefetched = Some(ReadAhead::Late(app.tasks.spawn(read)));
        }
        let attempt = match claimed? {
            ClaimOutcome::Granted { attempt } => attempt,
            ClaimOutcome::Refused(state) => {
                return Err(Error::for_state(state).unwrap_or(Error::Revoked));
            }
        };

        // A watermarked document's copy is prepared before the first byte: the update computed,
        // or the fallback chosen. A refusal, like a failed open, costs the link nothing.
        let opened = match stamp::plan(app, claims, prepared).await {
            Ok(Plan::Stamped(stamped)) => {
                match stamped
                    .open(&app.backends.objects, &document.key, range)
                    .await
                {
                    Ok(Some(object)) => Ok(Some((object, Some("stamped")))),
                    Ok(None) => {
                        stamped.forget(&state.stamps, &document.key);
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
            Ok(plan) => app
                .backends
                .objects
                .open(&document.key, range)
                .await
                .map(|object| Some((object, plan.noted())))
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        let failed = match opened {
            Ok(Some((object, noted))) => break (object, noted, lease, attempt),
            // Replaced under it: tried again, once.
            Ok(None) if tries < 2 => None,
            Ok(None) => Some(stamp::replaced()),
            Err(e) => Some(e),
        };
        if let Err(release) = store
            .release(&claims.jti, &lease, Sent::default(), true)
            .await
        {
            tracing::warn!(cause = %release, "could not release a claim after a failed open");
        }
        if let Some(e) = failed {
            return Err(e);
        }
    };
    tracing::debug!(link = claims.jti.short(), attempt, "download started");
    let metrics = app.metrics.clone();
    metrics.downloads_started.inc();
    metrics.downloads_in_flight.inc();
    let started = std::time::Instant::now();

    let mut entry = Entry::now(Event::Download, client, "");
    entry.document = Some(document.id.clone());
    entry.jti = Some(claims.jti.as_str().to_owned());
    entry.watermark = noted.map(str::to_owned);
    let requests = app.backends.requests.clone();
    let tasks = app.tasks.clone();
    let link = claims.jti.clone();
    let notice = app.download_notice(claims, document, client);
    let on_finish = Box::new(move |outcome: Outcome| {
        tracing::info!(link = %link, outcome = outcome.as_str(), "download ended");
        if let (Outcome::Completed, Some(notice)) = (outcome, notice) {
            notice.send();
        }
        metrics.download_finished(outcome.as_str(), started.elapsed());
        entry.outcome = outcome.as_str().to_owned();
        spawn_record_prefetched(&tasks, requests, entry, prefetched);
    });

    let len = object.len();
    let spends = object.reaches_end();
    let mut response = Response::new(empty());
    headers(
        &mut response,
        document,
        &object.meta,
        object.range,
        app.config.recipients.disposition,
    );
    let body = DownloadBody::new(
        object.body,
        len,
        spends,
        HeldClaim {
            store: store.clone(),
            jti: claims.jti.clone(),
            lease,
            size: object.meta.size,
            tasks: app.tasks.clone(),
        },
        &state.watch,
        RENEW_EVERY,
        on_finish,
    );
    let limits = &app.config.http;
    let pacing = limits.download_min_rate.map(|min_rate| {
        let pacing = Pacing {
            min_rate,
            window: limits.download_rate_window,
        };
        (&state.watch, pacing)
    });
    let body = Paced::new(body, slot, pacing, cutter);
    Ok(response.map(|_| body.boxed_unsync()))
}

/// The wait suggested when the concurrent download caps are full (`Retry-After`).
const DOWNLOADS_FULL_RETRY: Duration = Duration::from_secs(10);

/// How long a request waits for another download of the same link to let go (a browser handing a
/// download over to its download manager cancels the first fetch just before the second).
const IN_FLIGHT_WAIT: Duration = Duration::from_millis(1500);
const IN_FLIGHT_POLL: Duration = Duration::from_millis(100);

/// Claims the link for a download. The first claim is sent together with the per-IP limit (one
/// round trip for both; on Redis Cluster they are usually on different masters, so one script
/// cannot hold both): a refused limit answers first, and a claim it granted meanwhile is released
/// with a refund, so the link is as before. A link in flight is waited for, briefly. For a `GET`
/// from `again` (a client network), a link that a confirm-page download from the same network
/// completed moments ago is re-armed once: a phone's download manager fetches again what its
/// browser has just fetched. Plain `GET`s never arm this, so racing clients still get exactly one
/// body.
async fn claim(
    app: &App,
    jti: &Jti,
    lease: &Lease,
    again: Option<&str>,
    limit: &mut PerIp<'_>,
) -> Result<ClaimOutcome, Error> {
    let store = &app.backends.store;
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    let (counted, first) = tokio::join!(limit.enforce(), store.claim(jti, lease));
    if let Err(refused) = counted {
        if let Ok(ClaimOutcome::Granted { .. }) = first
            && let Err(e) = store.release(jti, lease, Sent::default(), true).await
        {
            tracing::warn!(cause = %e, "could not release a claim after the per-IP limit");
        }
        return Err(refused);
    }
    let mut outcome = first?;
    let mut rearmed = false;
    loop {
        match outcome {
            ClaimOutcome::Refused(LinkState::InFlight)
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(IN_FLIGHT_POLL).await;
            }
            ClaimOutcome::Refused(LinkState::Used)
                if !rearmed
                    && let Some(network) = again
                    && store
                        .rearm(jti, network, app.config.recipients.redownload_grace)
                        .await? =>
            {
                tracing::debug!(link = jti.short(), "link re-armed for a second fetch");
                rearmed = true;
            }
            answer => return Ok(answer),
        }
        outcome = store.claim(jti, lease).await?;
    }
}

/// Records a refused download of a genuine link in the owner's request log: a note, stored only
/// within its link's and its person's bounds ([`crate::requestlog::NOTES_PER_LINK`]), and always
/// counted in `docgate_download_refusals_total`.
fn record(app: &App, claims: &Claims, client: IpAddr, outcome: &str) {
    let mut entry = Entry::now(Event::Download, client, outcome);
    entry.document = Some(claims.doc.clone());
    entry.jti = Some(claims.jti.as_str().to_owned());
    spawn_record(&app.tasks, app.backends.requests.clone(), entry);
}

/// Appends to the request log without holding up the response (shutdown waits for it).
pub(super) fn spawn_record(tasks: &TaskTracker, requests: Arc<dyn RequestLog>, entry: Entry) {
    spawn_record_prefetched(tasks, requests, entry, None);
}

/// [`spawn_record`] with what was read ahead for the entry's link.
fn spawn_record_prefetched(
    tasks: &TaskTracker,
    requests: Arc<dyn RequestLog>,
    entry: Entry,
    read: Option<ReadAhead>,
) {
    tasks.spawn(async move {
        let read = match read {
            Some(ReadAhead::Done(read)) => read,
            Some(ReadAhead::Late(mut reading)) => {
                match tokio::time::timeout(READ_AHEAD_WAIT, &mut reading).await {
                    Ok(read) => read.unwrap_or_default(),
                    Err(_) => {
                        reading.abort();
                        Prefetched::default()
                    }
                }
            }
            None => Prefetched::default(),
        };
        if let Err(e) = requests.record_prefetched(&entry, read).await {
            tracing::warn!(cause = %e, "request log entry lost");
        }
    });
}

/// How long a download's record waits for a read ahead still running when the download ended:
/// longer than a Redis command may take (2 s, `topology::RESPONSE_TIMEOUT`), after which the
/// record reads for itself.
const READ_AHEAD_WAIT: Duration = Duration::from_secs(3);

/// The request log's read ahead for a download's entry: answered with the claim, or still
/// running on its own task.
enum ReadAhead {
    Done(Prefetched),
    Late(tokio::task::JoinHandle<Prefetched>),
}
