//! Issuing a link: the one way a link comes to exist, whoever asks for it.
//!
//! A link is issued by recording its claims in the token store (with its owner's pseudonym, so
//! it can be revoked by address), then either mailed to its address (the link mail names the
//! document's size when the object store tells it in time) or handed over as a URL, or both.
//! Every link request and every mint is written to the owner's request log; a lost entry is a
//! warning, never the request's failure.
//!
//! Two callers:
//! - a person's request ([`LinkRequest`]: the request form and API in `http::request_link`, the
//!   expired page's renewal in `http::renew`): within the service-wide mail ceiling (`429`
//!   beyond it), the budgets of the mailbox and the recipient's domain, and then the document's
//!   policy in the catalog (beyond those, nothing is mailed and the request is answered alike,
//!   paced by [`crate::pacing`]), counted in `docgate_link_requests_total`;
//! - an operator's mint ([`hand_over`]: `crate::admin::mint`, for the admin API and
//!   `docgate link`): without limits or the document's domain policy, the URL returned, mailed
//!   on request.
//!
//! A person's request for a document with `approval = true` issues nothing: it waits in
//! `crate::approval` and the owner is asked (mail, webhook) with signed one-click links
//! ([`decision_url`]); the owner's decision ([`decide`], from those links, the admin API, the
//! command line or the owner's page) then mails the link as a request would, or a decline note.
//!
//! Either way a link lives the document's `link_ttl` (an operator may give another) and allows
//! its `download_attempts`, else the service-wide settings.
//!
//! Failures are a [`LinkError`], mapped to HTTP in `http::error`. The link's URL is formatted
//! by [`TokenCodec::url`](crate::token::TokenCodec::url), here and in the mail alike.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::address;
use crate::app::App;
use crate::approval::{ApprovalError, Pending, Verdict};
use crate::catalog::{Document, Refusal};
use crate::mail::{LinkMail, MailError, Note};
use crate::metrics::Metrics;
use crate::notify::Event as WebhookEvent;
use crate::outbox::Job;
use crate::pacing::Timing;
use crate::ratelimit::{Decision, Key, LimitError, Scope};
use crate::requestlog::{Entry, Event};
use crate::store::{NewLink, StoreError};
use crate::texts::{fill, mail as mail_texts};
use crate::token::{Claims, ISSUER, Jti, TokenError};
use crate::units::Rate;

/// The outcome of a request answered `202` without a mail: its mailbox is over its budget.
pub const NOT_SENT_ADDRESS: &str = "not_sent_address_limit";

/// The outcome of a request answered `202` without a mail: its domain is over its budget.
pub const NOT_SENT_DOMAIN: &str = "not_sent_domain_limit";

/// The outcome of a request answered `202` without a mail: the document's `refused_domains`
/// name its domain.
pub const NOT_SENT_DOMAIN_REFUSED: &str = "not_sent_domain_refused";

/// The outcome of a request answered `202` without a mail: its domain is not in the document's
/// `allowed_domains`.
pub const NOT_SENT_DOMAIN_NOT_ALLOWED: &str = "not_sent_domain_not_allowed";

/// The outcome of a request answered `202` without a mail: the document has `approval = true`,
/// and the request waits for the owner's decision ([`decide`]).
pub const PENDING_APPROVAL: &str = "pending_approval";

/// The request log outcome of a pending request the owner approved: the link is mailed.
pub const APPROVED: &str = "approved";

/// The request log outcome of a pending request the owner declined.
pub const DECLINED: &str = "declined";

/// Every outcome of a request answered `202` without a mail.
const NOT_SENT: [&str; 5] = [
    NOT_SENT_ADDRESS,
    NOT_SENT_DOMAIN,
    NOT_SENT_DOMAIN_REFUSED,
    NOT_SENT_DOMAIN_NOT_ALLOWED,
    PENDING_APPROVAL,
];

/// Why a link was not issued.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The service-wide mail ceiling is reached: ask again after `retry_after`.
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// The rate limiter cannot be asked.
    #[error(transparent)]
    Limiter(#[from] LimitError),
    /// The link cannot be recorded in the token store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The link mail was not handed over.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The link cannot be signed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The pending requests cannot be read or written.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

/// A person's request for a link (the request form or API, or the expired page's renewal), as
/// the owner's request log and the pacing see it: the caller fills in what the person gave in
/// [`LinkRequest::entry`], asks [`LinkRequest::mail`] once the input is valid, and ends with
/// [`LinkRequest::finish`].
#[derive(Debug)]
pub struct LinkRequest {
    /// The request's entry in the owner's request log, written by [`LinkRequest::finish`].
    pub entry: Entry,
    /// Set once the request has been mailed (or answered alike without a mail).
    timing: Option<Timing>,
}

impl LinkRequest {
    /// A request from `client`, begun now.
    pub fn new(client: IpAddr) -> Self {
        Self {
            entry: Entry::now(Event::LinkRequested, client, ""),
            timing: None,
        }
    }

    /// Issues a link to `document` for `address` and mails it, within the service-wide mail
    /// ceiling ([`LinkError::RateLimited`] beyond it), the budgets of its mailbox and domain and
    /// the document's domains (beyond them nothing is issued or sent, and the entry says so: the
    /// caller answers alike). For a document that needs approval, nothing is issued: the request
    /// waits for the owner, who is asked (`pending_approval`). The link lives and may start
    /// downloads as the document says. Records the address and the new link's `jti` in the entry.
    pub async fn mail(
        &mut self,
        app: &App,
        document: &Document,
        address: lettre::Address,
    ) -> Result<(), LinkError> {
        self.entry.email = Some(address.to_string());
        let limits = &app.config.limits;
        // The service-wide ceiling first: it says nothing about the address, so it may answer
        // `429` (and checked first, it answers alike whether or not the address is over its own
        // limit).
        if let Decision::Limited { retry_after } =
            limit(app, &Key::global(Scope::Mail), limits.mail).await?
        {
            app.metrics.limited(Scope::Mail);
            return Err(LinkError::RateLimited { retry_after });
        }
        // Over a budget, the answer is the same `202` as for a mail sent, after as long: the
        // endpoint must not tell anyone whether an address gets mail, and an inbox cannot be
        // bombed through it either way.
        let started = Instant::now();
        // The document's policy after every limit: a refused address spends its budgets like
        // any other, so the limits cannot tell it apart either.
        let unmailed = match over_budget(app, &address).await? {
            Some(outcome) => Some(outcome),
            None => match document.refusal(&address) {
                Some(Refusal::RefusedDomain) => Some(NOT_SENT_DOMAIN_REFUSED),
                Some(Refusal::DomainNotAllowed) => Some(NOT_SENT_DOMAIN_NOT_ALLOWED),
                None => None,
            },
        };
        if let Some(outcome) = unmailed {
            tracing::info!(
                email = %app.pseudonym(address.as_ref()),
                document = %document.id,
                outcome,
                "link not mailed"
            );
            self.entry.outcome = outcome.to_owned();
            if app.pacing.draw().is_none() {
                round_trips_of_a_mail(app, document).await;
            }
            self.timing = Some(Timing::unmailed(started));
            return Ok(());
        }

        // A document that needs the owner's approval is never mailed on request alone: the
        // request waits, and the owner is asked.
        if document.approval {
            ask_owner(app, document, &address).await?;
            tracing::info!(
                email = %app.pseudonym(address.as_ref()),
                document = %document.id,
                "link awaits the owner's approval"
            );
            self.entry.outcome = PENDING_APPROVAL.to_owned();
            self.timing = Some(Timing::unmailed(started));
            return Ok(());
        }

        let ttl = document.link_ttl_or(app.config.token_ttl);
        let claims = issue(app, document, address.as_ref(), ttl).await?;
        self.entry.jti = Some(claims.jti.as_str().to_owned());
        let email = app.pseudonym(address.as_ref());
        let link = claims.jti.short().to_owned();
        send(app, link_mail(app, address, claims, document).await).await?;
        tracing::info!(email = %email, document = %document.id, link, "link mailed");
        self.timing = Some(Timing::mailed(started));
        Ok(())
    }

    /// Ends the request, answered, or refused with the error code `failure`: counts it, records
    /// an answered one in the owner's request log, then (for a request that got as far as
    /// [`LinkRequest::mail`]) settles its pacing, so a mailed and an unmailed request take as
    /// long in all. A refusal (`429`, `413`, `415`, `400`, `404`, ...) is only counted: anyone
    /// can send those at will, and they name nobody the owner could act on.
    pub async fn finish(mut self, app: &App, failure: Option<&'static str>) {
        let outcome = match failure {
            None => NOT_SENT
                .into_iter()
                .find(|o| *o == self.entry.outcome)
                .unwrap_or("sent"),
            Some(code) => code,
        };
        self.entry.outcome = outcome.to_owned();
        count(app, outcome);
        if failure.is_some() {
            return;
        }
        // With Redis full, link requests go on.
        log(app, &self.entry).await;
        // Last, after the request log: a mailed and an unmailed request take as long in all.
        if let Some(timing) = self.timing {
            app.pacing.settle(timing).await;
        }
    }
}

/// Counts a link request refused before it could be read (another site's page asked): no
/// request log entry, nothing else.
pub fn refused(app: &App, code: &'static str) {
    count(app, code);
}

/// A link handed over to an operator.
#[derive(Debug, Clone)]
pub struct Issued {
    pub claims: Claims,
    /// The link itself.
    pub url: String,
}

/// Issues a link to `document` for `address`, living `ttl`, for an operator: no limits and no
/// domain policy (the policy governs what the public may ask for), the URL returned, and mailed
/// too when `send` (through the same outbox as a person's request).
/// Recorded in the owner's request log as `admin_sent` or `admin_minted` from `127.0.0.1`.
pub async fn hand_over(
    app: &App,
    document: &Document,
    address: lettre::Address,
    ttl: Duration,
    send_mail: bool,
) -> Result<Issued, LinkError> {
    let claims = issue(app, document, address.as_ref(), ttl).await?;
    let url = app.codec.url(&app.config.public_url, &claims)?;
    let mut entry = Entry::now(
        Event::LinkRequested,
        IpAddr::from([127, 0, 0, 1]),
        if send_mail {
            "admin_sent"
        } else {
            "admin_minted"
        },
    );
    entry.email = Some(address.to_string());
    entry.document = Some(document.id.clone());
    entry.jti = Some(claims.jti.as_str().to_owned());
    if send_mail {
        send(app, link_mail(app, address, claims.clone(), document).await).await?;
    }
    // The link exists (and may be mailed): a lost log line must not make the operator retry.
    log(app, &entry).await;
    Ok(Issued { claims, url })
}

/// Records a request for `document` from `address` as waiting for the owner's decision, and
/// mails the owner (`DOCGATE_OWNER_EMAIL`, when set) the one-click Approve and Decline links.
async fn ask_owner(
    app: &App,
    document: &Document,
    address: &lettre::Address,
) -> Result<(), LinkError> {
    let now = app.now();
    let pending = Pending {
        id: Jti::generate(),
        email: address.to_string(),
        document: document.id.clone(),
        asked_at: now,
        expires_at: now.saturating_add(app.config.approval_ttl.as_secs()),
    };
    app.backends.approvals.ask(&pending).await?;
    if let Some(owner) = &app.config.owner.email {
        let approve = decision_url(app, &pending, Verdict::Approve)?;
        let decline = decision_url(app, &pending, Verdict::Decline)?;
        let body = fill(
            mail_texts::APPROVAL_BODY,
            &[
                ("email", &pending.email),
                ("title", &document.title),
                ("document", &document.id),
                ("approve", &approve),
                ("decline", &decline),
                ("expires", &utc(pending.expires_at)),
                ("site", &app.config.public_url),
            ],
        );
        let note = Note {
            to: owner.clone(),
            subject: fill(mail_texts::APPROVAL_SUBJECT, &[("title", &document.title)]),
            body,
            id: pending.id.clone(),
            doc: document.id.clone(),
            exp: pending.expires_at,
        };
        app.backends.outbox.submit(&Job::Note(note)).await?;
    }
    if app.config.owner.webhook.is_some() {
        let body = serde_json::json!({
            "event": APPROVAL_EVENT,
            "id": pending.id.as_str(),
            "document": document.id,
            "title": document.title,
            "email": pending.email,
            "asked_at": utc(pending.asked_at),
            "expires_at": utc(pending.expires_at),
            "approve_url": decision_url(app, &pending, Verdict::Approve)?,
            "decline_url": decision_url(app, &pending, Verdict::Decline)?,
        });
        let event = WebhookEvent {
            id: pending.id.clone(),
            doc: document.id.clone(),
            exp: pending.expires_at,
            body: body.to_string(),
        };
        // In the background, as a download's notices are: a slow or failing webhook does not
        // hold up or fail the person's request (the mail, or the admin API, still asks the owner).
        let outbox = app.backends.outbox.clone();
        app.tasks.spawn(async move {
            if let Err(e) = outbox.submit(&Job::Event(event)).await {
                tracing::warn!(cause = %e, "approval webhook event not delivered");
            }
        });
    }
    Ok(())
}

/// The owner's webhook event for a request waiting for approval.
pub const APPROVAL_EVENT: &str = "approval.requested";

/// The owner's one-click link deciding `pending` with `verdict`: signed with the token keys,
/// expiring with the request. Opening it shows a page that asks to confirm; only its POST decides.
pub fn decision_url(app: &App, pending: &Pending, verdict: Verdict) -> Result<String, TokenError> {
    let claims = Claims {
        jti: pending.id.clone(),
        doc: verdict.claim().to_owned(),
        iat: pending.asked_at,
        exp: pending.expires_at,
        iss: ISSUER.to_owned(),
    };
    let token = app.codec.sign(&claims)?;
    Ok(format!(
        "{}/approvals/{token}",
        app.config.public_url.trim_end_matches('/')
    ))
}

/// A decline note not delivered this long after the decision is given up.
const NOTE_LIFETIME: Duration = Duration::from_secs(3 * 24 * 3600);

/// `secs` since the epoch as RFC 3339, UTC, or the number itself past what a date can hold.
fn utc(secs: u64) -> String {
    crate::units::rfc3339(secs).unwrap_or_else(|| secs.to_string())
}

/// What became of a decided request.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The request, as it waited.
    pub pending: Pending,
    /// The link mailed on approval.
    pub jti: Option<Jti>,
}

/// Decides the pending request `id`: exactly once, whoever asks (the one-click page, the admin
/// API, the CLI, the owner's page) and on whichever replica. `None` when it is unknown, decided
/// already or expired. Approve issues and mails the usual link (the document's lifetime and
/// attempts); decline mails `DOCGATE_APPROVAL_DECLINE_TEXT` (nothing when it is empty). Either
/// is recorded in the request log. When the link or the note cannot be handed over, the request
/// waits again, so a failure loses nothing.
pub async fn decide(app: &App, id: &Jti, verdict: Verdict) -> Result<Option<Decided>, LinkError> {
    let Some(pending) = app.backends.approvals.take(id, app.now()).await? else {
        return Ok(None);
    };
    match carry_out(app, &pending, verdict).await {
        Ok(jti) => {
            let mut entry = Entry::now(
                Event::LinkRequested,
                IpAddr::from([127, 0, 0, 1]),
                match verdict {
                    Verdict::Approve => APPROVED,
                    Verdict::Decline => DECLINED,
                },
            );
            entry.email = Some(pending.email.clone());
            entry.document = Some(pending.document.clone());
            entry.jti = jti.as_ref().map(|j| j.as_str().to_owned());
            log(app, &entry).await;
            tracing::info!(
                email = %app.pseudonym(&pending.email),
                document = %pending.document,
                decision = verdict.tag(),
                "pending request decided"
            );
            Ok(Some(Decided { pending, jti }))
        }
        Err(e) => {
            if let Err(again) = app.backends.approvals.ask(&pending).await {
                tracing::warn!(cause = %again, "pending request lost after a failed decision");
            }
            Err(e)
        }
    }
}

/// Mails the link (approve) or the note (decline) for `pending`; the link's id when one is mailed.
async fn carry_out(
    app: &App,
    pending: &Pending,
    verdict: Verdict,
) -> Result<Option<Jti>, LinkError> {
    let Some(document) = app.catalog.get(&pending.document) else {
        // The document left the catalog while the request waited: nothing to send.
        tracing::info!(document = %pending.document, "decided request's document is gone");
        return Ok(None);
    };
    let Ok(address) = pending.email.parse::<lettre::Address>() else {
        return Ok(None);
    };
    match verdict {
        Verdict::Approve => {
            let ttl = document.link_ttl_or(app.config.token_ttl);
            let claims = issue(app, document, address.as_ref(), ttl).await?;
            let jti = claims.jti.clone();
            send(app, link_mail(app, address, claims, document).await).await?;
            Ok(Some(jti))
        }
        Verdict::Decline => {
            let text = &app.config.approval_decline_text;
            if !text.is_empty() {
                let note = Note {
                    to: lettre::message::Mailbox::new(None, address),
                    subject: fill(mail_texts::DECLINE_SUBJECT, &[("title", &document.title)]),
                    body: fill(text, &[("title", &document.title)]),
                    id: pending.id.clone(),
                    doc: document.id.clone(),
                    exp: app.now().saturating_add(NOTE_LIFETIME.as_secs()),
                };
                app.backends.outbox.submit(&Job::Note(note)).await?;
            }
            Ok(None)
        }
    }
}

/// A new link to `document` for `address`, living `ttl` and allowing the document's download
/// attempts, recorded in the token store.
async fn issue(
    app: &App,
    document: &Document,
    address: &str,
    ttl: Duration,
) -> Result<Claims, StoreError> {
    let claims = Claims::new(&document.id, app.now(), ttl.as_secs());
    app.backends
        .store
        .insert(&NewLink {
            jti: &claims.jti,
            doc: &document.id,
            ttl,
            attempts: document.download_attempts_or(app.config.download_attempts),
            owner: Some(&app.pseudonyms.person(address)),
        })
        .await?;
    Ok(claims)
}

/// The link mail for `claims`, with the document's size when the object store tells it within
/// two seconds (the mail leaves the size out otherwise).
async fn link_mail(
    app: &App,
    to: lettre::Address,
    claims: Claims,
    document: &Document,
) -> LinkMail {
    let head = tokio::time::timeout(
        Duration::from_secs(2),
        app.backends.objects.head(&document.key),
    )
    .await;
    let size = match head {
        Ok(Ok(meta)) => Some(meta.size),
        Ok(Err(e)) => {
            tracing::info!(document = %document.id, cause = %e, "size left out of the mail");
            None
        }
        Err(_) => {
            tracing::info!(document = %document.id, "size left out of the mail: the object store is slow");
            None
        }
    };
    LinkMail {
        to,
        claims,
        title: document.title.clone(),
        size,
    }
}

/// Submits a link mail to the outbox: the one place a link mail is handed over. The outbox's
/// deliverer counts it when it goes out, now or from the queue.
async fn send(app: &App, mail: LinkMail) -> Result<(), MailError> {
    app.backends.outbox.submit(&Job::Link(mail)).await
}

/// Writes `entry` to the owner's request log; a failure is a warning only.
async fn log(app: &App, entry: &Entry) {
    if let Err(e) = app.backends.requests.record(entry).await {
        tracing::warn!(cause = %e, "request log entry lost");
    }
}

/// Counts a link request with its outcome in `docgate_link_requests_total`.
fn count(app: &App, outcome: &'static str) {
    Metrics::count(&app.metrics.link_requests, outcome);
}

/// The round trips a mailed request makes (the link recorded in the token store, the document's
/// size asked of the object store, the mail handed to the outbox), made without their effects,
/// for an unmailed request on a replica with no mailed duration to copy yet: budgets shared
/// through Redis may be spent on other replicas, and a fresh one would otherwise answer an
/// over-budget address at once. Their failures do not matter: only their time does.
async fn round_trips_of_a_mail(app: &App, document: &Document) {
    let _ = app
        .backends
        .store
        .peek(&crate::token::Jti::generate())
        .await;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        app.backends.objects.head(&document.key),
    )
    .await;
    let _ = app.backends.store.ping().await;
}

/// The budget `address` is over, as the request's outcome, or `None` when it may be mailed. The
/// mailbox's budget is counted first, so one address asked for again and again spends only its
/// own; the domain's (none for shared providers) only when the mailbox's allowed it.
async fn over_budget(
    app: &App,
    address: &lettre::Address,
) -> Result<Option<&'static str>, LinkError> {
    let limits = &app.config.limits;
    let per_mailbox = Key::email(Scope::RequestPerEmail, &address::mailbox(address));
    if let Decision::Limited { .. } = limit(app, &per_mailbox, limits.request_per_email).await? {
        app.metrics.limited(Scope::RequestPerEmail);
        return Ok(Some(NOT_SENT_ADDRESS));
    }
    if let Some(domain) = address::budget_domain(address) {
        let per_domain = Key::domain(Scope::RequestPerDomain, &domain);
        if let Decision::Limited { .. } = limit(app, &per_domain, limits.request_per_domain).await?
        {
            app.metrics.limited(Scope::RequestPerDomain);
            return Ok(Some(NOT_SENT_DOMAIN));
        }
    }
    Ok(None)
}

/// Counts one request against `key` (a limiter that cannot be asked is counted as a store error).
async fn limit(app: &App, key: &Key, rate: Rate) -> Result<Decision, LimitError> {
    app.backends
        .limiter
        .check(key, rate)
        .await
        .inspect_err(|_| {
            app.metrics.store_error("rate_limit");
        })
}
