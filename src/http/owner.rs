//! The owner's page on the admin listener (`GET /`): sign in once with the admin token, then the
//! funnel per document, the request log with its search, and the actions of the admin API
//! (revoke a link or all of a person's, export or erase a person's data, approve or decline a
//! pending request) as forms.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | the page; without a session the sign-in form (`200`), never data |
//! | `POST /login` `csrf`, `token` | `303` to `/` with the session cookie; a wrong token `401` and the form again; rate-limited per client |
//! | `POST /logout`, `/revoke` `jti`, `/revoke-all` `email`, `/erase` `email` (`confirm=yes`), `/approve` `id`, `/decline` `id` | `303` back with a flash message (`/erase` without `confirm`: the confirmation step) |
//! | `GET /export?email=E` | the admin API's export of one person, as a JSON download |
//!
//! Without a valid session every route answers the sign-in form (`401` but for `GET /`).
//! Every `POST` must come from this origin (`Origin`, else `Sec-Fetch-Site`) and carry its CSRF
//! token ([`session`]), else `403` and nothing done. `GET`s change nothing. The actions are the
//! admin API's own (`crate::admin`), so they behave and audit alike.

pub mod session;

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;

use self::session::{Keys, Session};
use super::error::{Error, json};
use super::request_link::MAX_BODY;
use super::{Body, State, full, read_body};
use crate::admin::{self, AdminError, RequestRow, Search};
use crate::app::App;
use crate::approval::Verdict;
use crate::pages::owner::{
    self as page, FunnelView, LinkView, PendingView, RowView, StampView, View,
};
use crate::ratelimit::{Decision, Key, Scope};
use crate::store::LinkState;
use crate::texts::{fill, owner as t};
use crate::token::Jti;
use crate::units::{Rate, unix_now};

/// Sign-in attempts per client: ten in a burst, then one every six seconds.
const LOGIN_RATE: Rate = Rate {
    count: 10,
    period: Duration::from_secs(60),
};

/// Requests per page of the log.
pub const PAGE: usize = 25;

/// Days the funnel shows, today included.
pub const FUNNEL_DAYS: u16 = 30;

/// Whether `path` is one of the owner's page's routes.
pub fn serves(path: &str) -> bool {
    matches!(
        path,
        "/" | "/login"
            | "/logout"
            | "/revoke"
            | "/revoke-all"
            | "/erase"
            | "/export"
            | "/approve"
            | "/decline"
    )
}

/// Answers one request to the owner's page; errors are rendered as pages here.
pub async fn handle(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let mut response = match route(&state.app, peer, req).await {
        Ok(response) => response,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(cause = %e, "owner's page failed");
            }
            e.into_response(true)
        }
    };
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(policy) = HeaderValue::try_from(page::POLICY.as_str())
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A page's own form posts carry its origin; other sites learn nothing.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    response
}

async fn route(
    app: &App,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let Some(token) = &app.config.admin_token else {
        // The owner's page is off with the admin API.
        return Err(Error::NotFound);
    };
    let keys = Keys::new(token.expose());
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if path == "/login" {
        return match method {
            Method::POST => login(app, &keys, token.expose(), peer, req).await,
            _ => Err(Error::MethodNotAllowed { allow: "POST" }),
        };
    }
    let session = session::cookie(req.headers(), session::COOKIE)
        .and_then(|value| keys.verify(value, unix_now()));
    let Some(session) = session else {
        // No data without a session: the sign-in form.
        let status = if path == "/" && method == Method::GET {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        return login_page(&keys, status, false);
    };
    match (path.as_str(), method) {
        ("/", Method::GET) => dashboard(app, &keys, &session, req.uri().query()).await,
        ("/", _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        ("/export", Method::GET) => export(app, req.uri().query()).await,
        ("/export", _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (_, Method::POST) => action(app, &keys, &session, &path, req).await,
        _ => Err(Error::MethodNotAllowed { allow: "POST" }),
    }
}

/// An HTML response with `status`.
fn html(status: StatusCode, markup: String) -> Response<Body> {
    let mut response = Response::new(full(markup));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn add_cookie(response: &mut Response<Body>, value: &str) {
    if let Ok(value) = HeaderValue::try_from(value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A `303 See Other` to `location`.
fn see_other(location: &str) -> Response<Body> {
    let mut response = Response::new(super::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let location = HeaderValue::try_from(location).unwrap_or(HeaderValue::from_static("/"));
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// The sign-in form, with a fresh nonce cookie for its CSRF token.
fn login_page(keys: &Keys, status: StatusCode, wrong: bool) -> Result<Response<Body>, Error> {
    let nonce = session::random().map_err(|e| Error::Internal(e.to_string()))?;
    let mut response = html(status, page::login(&keys.login_csrf(&nonce), wrong));
    add_cookie(
        &mut response,
        &session::set_cookie(session::LOGIN_COOKIE, &nonce, session::LOGIN_LIFETIME),
    );
    Ok(response)
}

/// Whether a `POST` came from a page of this listener's own origin, as the browser's address
/// bar named it (`Host`), over HTTP or HTTPS.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    super::client::from_own_site(
        headers,
        &format!("http://{host}"),
        &[format!("https://{host}")],
    )
}

/// A form body of at most [`MAX_BODY`] bytes.
async fn form<T: for<'de> Deserialize<'de>>(app: &App, req: Request<Incoming>) -> Result<T, Error> {
    let bytes = read_body(req.into_body(), MAX_BODY, app.config.http.body_timeout).await?;
    serde_urlencoded::from_bytes(&bytes).map_err(|_| Error::StaleForm)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

async fn login(
    app: &App,
    keys: &Keys,
    admin_token: &[u8],
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    if !same_origin(req.headers()) {
        return Err(Error::StaleForm);
    }
    let key = Key::ip(Scope::OwnerLogin, peer.ip());
    if let Decision::Limited { retry_after } = app.backends.limiter.check(&key, LOGIN_RATE).await? {
        app.metrics.limited(Scope::OwnerLogin);
        tracing::warn!(target: "audit", client_ip = %peer.ip(), "owner sign-in refused: too many attempts");
        return Err(Error::RateLimited { retry_after });
    }
    let nonce = session::cookie(req.headers(), session::LOGIN_COOKIE).map(str::to_owned);
    let form: LoginForm = form(app, req).await?;
    if !nonce.is_some_and(|nonce| keys.login_csrf_ok(&nonce, &form.csrf)) {
        return Err(Error::StaleForm);
    }
    if !super::admin::token_matches(admin_token, form.token.as_bytes()) {
        tracing::warn!(target: "audit", client_ip = %peer.ip(), "owner sign-in refused: wrong token");
        return login_page(keys, StatusCode::UNAUTHORIZED, true);
    }
    let (_, value) = keys
        .open(unix_now())
        .map_err(|e| Error::Internal(e.to_string()))?;
    tracing::info!(target: "audit", client_ip = %peer.ip(), "owner signed in");
    let mut response = see_other("/");
    add_cookie(
        &mut response,
        &session::set_cookie(session::COOKIE, &value, session::LIFETIME),
    );
    add_cookie(
        &mut response,
        &session::set_cookie(session::LOGIN_COOKIE, "", Duration::ZERO),
    );
    Ok(response)
}

/// The page's query: the search, the log's page, the last action's flash.
#[derive(Deserialize, Default)]
struct Query {
    email: Option<String>,
    document: Option<String>,
    offset: Option<usize>,
    done: Option<String>,
    n: Option<u64>,
}

/// A query string of the non-empty `pairs`.
fn query_of(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    if pairs.is_empty() {
        return "/".to_owned();
    }
    format!(
        "/?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

fn flash(done: Option<&str>, n: Option<u64>) -> Option<String> {
    let n = n.unwrap_or(0).to_string();
    let text = match done? {
        "revoked" => t::DONE_REVOKED,
        "not_revoked" => t::DONE_NOT_REVOKED,
        "revoked_all" => t::DONE_REVOKED_ALL,
        "erased" => t::DONE_ERASED,
        "approved" => t::DONE_APPROVED,
        "declined" => t::DONE_DECLINED,
        "not_decided" => t::DONE_NOT_DECIDED,
        _ => return None,
    };
    Some(fill(text, &[("n", &n)]))
}

fn outcome_text(outcome: &str) -> String {
    match outcome {
        "sent" => t::OUTCOME_SENT,
        "admin_sent" => t::OUTCOME_ADMIN_SENT,
        "admin_minted" => t::OUTCOME_ADMIN_MINTED,
        "not_sent_address_limit" => t::OUTCOME_ADDRESS_LIMIT,
        "not_sent_domain_limit" => t::OUTCOME_DOMAIN_LIMIT,
        "not_sent_domain_refused" => t::OUTCOME_DOMAIN_REFUSED,
        "not_sent_domain_not_allowed" => t::OUTCOME_DOMAIN_NOT_ALLOWED,
        "pending_approval" => t::OUTCOME_PENDING,
        "approved" => t::OUTCOME_APPROVED,
        "declined" => t::OUTCOME_DECLINED,
        other => other,
    }
    .to_owned()
}

/// What the watermark did to a row's latest download, as the log noted it.
fn stamp_view(row: &RequestRow) -> StampView {
    match (row.watermark.as_deref(), row.download.as_deref()) {
        (Some("stamped"), _) => StampView::Stamped,
        (Some("unstamped"), _) => StampView::Unstamped,
        (_, Some("document_not_stampable")) => StampView::Refused,
        _ => StampView::None,
    }
}

/// What became of a row's link: the log knows a completed download; the store whether it is
/// still usable.
async fn link_view(app: &App, row: &RequestRow) -> LinkView {
    if let Some(at) = &row.downloaded_at {
        return LinkView::Downloaded { at: at.clone() };
    }
    let Some(jti) = row.jti.as_deref().and_then(Jti::parse) else {
        return LinkView::None;
    };
    match app.backends.store.peek(&jti).await {
        Ok(LinkState::Ready { .. } | LinkState::InFlight) => LinkView::Live {
            jti: jti.as_str().to_owned(),
        },
        Ok(LinkState::Used | LinkState::Revoked) => LinkView::Gone,
        Err(e) => {
            tracing::debug!(cause = %e, "link state unknown");
            LinkView::Unknown
        }
    }
}

async fn dashboard(
    app: &App,
    keys: &Keys,
    session: &Session,
    query: Option<&str>,
) -> Result<Response<Body>, Error> {
    let q: Query = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| Error::invalid("query", crate::texts::pages::ADMIN_PAGING))?;
    let email = q.email.as_deref().map(str::trim).unwrap_or("").to_owned();
    let document = q
        .document
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_owned();
    let offset = q.offset.unwrap_or(0);
    let search = Search {
        email: (!email.is_empty()).then(|| email.clone()),
        document: (!document.is_empty()).then(|| document.clone()),
    };
    let now = time::OffsetDateTime::now_utc();
    let funnels = admin::funnel(app, FUNNEL_DAYS, now).await?;
    let rows = admin::search(app, &search, PAGE, offset).await?;
    let pending = admin::approvals(app).await?;
    let links = futures_util::future::join_all(rows.iter().map(|r| link_view(app, r))).await;
    let title = |id: &str| {
        app.catalog
            .get(id)
            .map_or_else(|| id.to_owned(), |d| d.title.clone())
    };
    let rows: Vec<RowView> = rows
        .into_iter()
        .zip(links)
        .map(|(r, link)| RowView {
            at: r.asked_at.clone(),
            email: r.email.clone(),
            who: [r.name.clone(), r.company.clone()]
                .into_iter()
                .flatten()
                .collect(),
            document: r.document.as_deref().map(title).unwrap_or_default(),
            outcome: outcome_text(&r.outcome),
            stamp: stamp_view(&r),
            link,
            opens: r.opened.len(),
        })
        .collect();
    let offset_text = |o: usize| if o == 0 { String::new() } else { o.to_string() };
    let at = |o: usize| {
        query_of(&[
            ("email", &email),
            ("document", &document),
            ("offset", &offset_text(o)),
        ])
    };
    let view = View {
        csrf: keys.csrf(session),
        flash: flash(q.done.as_deref(), q.n),
        period: (funnels.first_day.to_string(), now.date().to_string()),
        funnels: funnels
            .documents
            .iter()
            .map(|f| FunnelView {
                title: title(&f.document),
                days: f
                    .days
                    .iter()
                    .map(|d| [d.asked, d.mailed, d.opened, d.downloaded])
                    .collect(),
                total: [
                    f.total.asked,
                    f.total.mailed,
                    f.total.opened,
                    f.total.downloaded,
                ],
            })
            .collect(),
        funnel_partial: funnels.partial,
        documents: app
            .catalog
            .iter()
            .map(|d| (d.id.clone(), d.title.clone()))
            .collect(),
        here: at(offset),
        newer: (offset > 0).then(|| at(offset.saturating_sub(PAGE))),
        older: (rows.len() == PAGE).then(|| at(offset + PAGE)),
        pending: pending
            .into_iter()
            .map(|p| PendingView {
                document: title(&p.document),
                id: p.id,
                email: p.email,
                asked_at: p.asked_at,
            })
            .collect(),
        email,
        document,
        rows,
    };
    Ok(html(StatusCode::OK, page::dashboard(&view)))
}

/// One person's entries, as the admin API's export gives them, to save.
async fn export(app: &App, query: Option<&str>) -> Result<Response<Body>, Error> {
    let q: Query = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| Error::invalid("query", crate::texts::pages::ADMIN_EMAIL_QUERY))?;
    let email = q
        .email
        .ok_or_else(|| Error::invalid("email", crate::texts::pages::ADMIN_EMAIL_MISSING))?;
    let entries = admin::export_person(app, email.trim()).await?;
    let mut response = json(StatusCode::OK, &serde_json::json!({ "entries": entries }));
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"docgate-person.json\""),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    jti: Option<String>,
    /// A pending request's id.
    id: Option<String>,
    email: Option<String>,
    back: Option<String>,
    confirm: Option<String>,
}

/// Where an action returns to: a view of this page (`/` or `/?...`), with its flash.
fn back_to(back: Option<&str>, done: &str, n: Option<u64>) -> Response<Body> {
    let back = back
        .filter(|b| *b == "/" || b.starts_with("/?"))
        .filter(|b| !b.contains(['\r', '\n', '#']))
        .unwrap_or("/");
    let n = n.map(|n| format!("&n={n}")).unwrap_or_default();
    let sep = if back.contains('?') { '&' } else { '?' };
    see_other(&format!("{back}{sep}done={done}{n}"))
}

async fn action(
    app: &App,
    keys: &Keys,
    session: &Session,
    path: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    if !same_origin(req.headers()) {
        return Err(Error::StaleForm);
    }
    let form: ActionForm = form(app, req).await?;
    if !keys.csrf_ok(session, &form.csrf) {
        return Err(Error::StaleForm);
    }
    let email = || {
        form.email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| Error::invalid("email", crate::texts::pages::ADMIN_EMAIL_MISSING))
    };
    let back = form.back.as_deref();
    match path {
        "/logout" => {
            tracing::info!(target: "audit", "owner signed out");
            let mut response = see_other("/");
            add_cookie(
                &mut response,
                &session::set_cookie(session::COOKIE, "", Duration::ZERO),
            );
            Ok(response)
        }
        "/revoke" => {
            let jti = form.jti.as_deref().unwrap_or("");
            let done = if admin::revoke(app, jti).await? {
                "revoked"
            } else {
                "not_revoked"
            };
            Ok(back_to(back, done, None))
        }
        "/revoke-all" => {
            let revoked = admin::revoke_address(app, email()?).await?;
            Ok(back_to(back, "revoked_all", Some(revoked)))
        }
        "/erase" => {
            let email = email()?;
            if form.confirm.as_deref() != Some("yes") {
                // The confirmation step: nothing is erased yet.
                return Ok(html(
                    StatusCode::OK,
                    page::confirm_erase(&keys.csrf(session), email),
                ));
            }
            let erased = admin::erase_person(app, email).await?;
            Ok(back_to(Some("/"), "erased", Some(erased)))
        }
        "/approve" | "/decline" => {
            let verdict = if path == "/approve" {
                Verdict::Approve
            } else {
                Verdict::Decline
            };
            let id = form.id.as_deref().unwrap_or("");
            let done = match admin::decide(app, id, verdict).await {
                Ok(true) => verdict_done(verdict),
                Ok(false) | Err(AdminError::BadApprovalId(_)) => "not_decided",
                Err(e) => return Err(e.into()),
            };
            Ok(back_to(back, done, None))
        }
        _ => Err(Error::NotFound),
    }
}

/// The flash after a decision.
fn verdict_done(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Approve => "approved",
        Verdict::Decline => "declined",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_return_only_to_a_view_of_this_page() {
        let location = |back: Option<&str>| {
            back_to(back, "revoked", None).headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(location(Some("/")), "/?done=revoked");
        assert_eq!(
            location(Some("/?email=a%40b.example")),
            "/?email=a%40b.example&done=revoked"
        );
        for elsewhere in [
            "//evil.example/",
            "https://evil.example/",
            "/admin/links",
            "/\\evil",
            "/?a#b",
        ] {
            assert_eq!(location(Some(elsewhere)), "/?done=revoked", "{elsewhere}");
        }
        assert_eq!(location(None), "/?done=revoked");
        assert_eq!(
            back_to(None, "erased", Some(3)).headers()[header::LOCATION],
            "/?done=erased&n=3"
        );
        assert_eq!(flash(Some("unknown"), None), None);
        assert_eq!(flash(Some("erased"), Some(2)).unwrap(), "2 entries erased.");
    }
}
