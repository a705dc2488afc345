//! The admin listener: `GET /metrics` for Prometheus, and the admin API behind a bearer token.
//! Bound to loopback by default and never routed by the ingress.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /metrics` | the exposition (no token needed) |
//! | `GET /healthz`, `GET /readyz` | as on the public listener (no token needed): the Kubernetes probes |
//! | `POST /admin/links` `{"email", "document", "ttl"?, "send"?}` | `201 {"url", "jti", "expires_at"}` |
//! | `DELETE /admin/tokens/{jti}` | `204`; `404` when no usable link has that id |
//! | `POST /admin/revocations` `{"email"}` | `200 {"revoked": n}`: every usable link of the address |
//! | `GET /admin/requests?limit=N&offset=M` | `200 {"entries": [...], "next_offset"}`: link requests newest first, each joined with its link's downloads and opens |
//! | `GET /admin/people?email=E` | `200 {"entries": [...]}`: every request log entry of one person, newest first |
//! | `POST /admin/erasures` `{"email"}` | `200 {"erased": n}`: those entries deleted, their links no longer joined to them |
//! | `GET /admin/approvals` | `200 {"pending": [{"id", "email", "document", "asked_at"}]}`: requests waiting for the owner's decision, oldest first |
//! | `POST /admin/approvals/{id}` `{"decision": "approve" \| "decline"}` | `200 {"decided": "approve"}`; `404` unknown, decided already or expired |
//! | `GET /`, `POST /login`, ... | the owner's page ([`super::owner`]): a session cookie, not the bearer token |
//!
//! The token is compared in constant time (digests of both sides, so not even its length
//! leaks); with `DOCGATE_ADMIN_TOKEN` unset every admin route answers `401`.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::State;
use super::error::{Error, json};
use super::request_link::MAX_BODY;
use super::{Body, empty, full, read_body};
use crate::admin::{self, Mint};
use crate::app::App;
use crate::approval::Verdict;
use crate::metrics;
use crate::token::Jti;
use crate::units::parse_duration;

/// The most request log entries one page returns.
const MAX_PAGE: usize = 1000;

/// Routes one admin request.
pub async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let app = &state.app;
    let path = req.uri().path().to_owned();
    let result = if path == "/metrics" {
        match *req.method() {
            Method::GET | Method::HEAD => Ok(scrape(app).await),
            _ => Err(Error::MethodNotAllowed { allow: "GET, HEAD" }),
        }
    } else if let Some(probe) = super::health::route(&state, req.method(), &path).await {
        // The probes' own place: a flood of the public port does not reach it.
        probe
    } else if super::owner::serves(&path) {
        // The owner's page: its own sign-in and session, no bearer token.
        Ok(super::owner::handle(&state, peer, req).await)
    } else if !path.starts_with("/admin/") {
        Err(Error::NotFound)
    } else if !authorized(app, req.headers()) {
        tracing::warn!(target: "audit", client_ip = %peer.ip(), "admin request refused: bad or missing token");
        Err(Error::Unauthorized)
    } else {
        route(app, req, &path).await
    };
    let mut response = result.unwrap_or_else(|e| e.into_response(false));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn route(app: &App, req: Request<Incoming>, path: &str) -> Result<Response<Body>, Error> {
    match (path, req.method().clone()) {
        ("/admin/links", Method::POST) => mint(app, req).await,
        ("/admin/links", _) => Err(Error::MethodNotAllowed { allow: "POST" }),
        ("/admin/revocations", Method::POST) => revoke_address(app, req).await,
        ("/admin/revocations", _) => Err(Error::MethodNotAllowed { allow: "POST" }),
        ("/admin/requests", Method::GET) => requests(app, req.uri().query()).await,
        ("/admin/requests", _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        ("/admin/people", Method::GET) => export_person(app, req.uri().query()).await,
        ("/admin/people", _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        ("/admin/erasures", Method::POST) => erase_person(app, req).await,
        ("/admin/erasures", _) => Err(Error::MethodNotAllowed { allow: "POST" }),
        ("/admin/approvals", Method::GET) => {
            let pending = admin::approvals(app).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "pending": pending }),
            ))
        }
        ("/admin/approvals", _) => Err(Error::MethodNotAllowed { allow: "GET" }),
        (p, Method::POST) if p.starts_with("/admin/approvals/") => {
            let id = p["/admin/approvals/".len()..].to_owned();
            decide(app, req, &id).await
        }
        (p, _) if p.starts_with("/admin/approvals/") => {
            Err(Error::MethodNotAllowed { allow: "POST" })
        }
        (p, Method::DELETE) if p.starts_with("/admin/tokens/") => {
            let jti = &p["/admin/tokens/".len()..];
            if admin::revoke(app, jti).await? {
                let mut response = Response::new(empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            } else {
                Err(Error::UnknownLink)
            }
        }
        (p, _) if p.starts_with("/admin/tokens/") => {
            Err(Error::MethodNotAllowed { allow: "DELETE" })
        }
        _ => Err(Error::NotFound),
    }
}

/// True when the request carries `Authorization: Bearer <DOCGATE_ADMIN_TOKEN>`.
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(expected) = &app.config.admin_token else {
        return false;
    };
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
        .map(|v| &v[7..])
    else {
        return false;
    };
    token_matches(expected.expose(), given)
}

/// Whether `given` is the admin token `expected`, in constant time: digests of both sides are
/// compared, so not even the length leaks. The owner's page signs in with the same check.
pub(super) fn token_matches(expected: &[u8], given: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    given.ct_eq(&expected).into()
}

/// Reads a JSON object body of at most [`MAX_BODY`] bytes, arriving within the body deadline.
async fn body<T: for<'de> Deserialize<'de>>(app: &App, req: Request<Incoming>) -> Result<T, Error> {
    let bytes = read_body(req.into_body(), MAX_BODY, app.config.http.body_timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid("body", &crate::texts::pages::admin_json(&e.to_string())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    email: String,
    document: String,
    /// `15m`, `2h`, `7d`.
    ttl: Option<String>,
    #[serde(default)]
    send: bool,
}

async fn mint(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let request: MintBody = body(app, req).await?;
    let ttl = match &request.ttl {
        Some(ttl) => Some(parse_duration(ttl).map_err(|e| Error::invalid("ttl", &e.to_string()))?),
        None => None,
    };
    let minted = admin::mint(
        app,
        &Mint {
            email: request.email,
            document: request.document,
            ttl,
            send: request.send,
        },
    )
    .await?;
    Ok(json(StatusCode::CREATED, &serde_json::json!(minted)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
}

async fn decide(app: &App, req: Request<Incoming>, id: &str) -> Result<Response<Body>, Error> {
    let request: DecisionBody = body(app, req).await?;
    let verdict = Verdict::from_tag(&request.decision)
        .ok_or_else(|| Error::invalid("decision", crate::texts::pages::ADMIN_DECISION))?;
    // An id of the wrong shape names no request either.
    if Jti::parse(id).is_none() || !admin::decide(app, id, verdict).await? {
        return Err(Error::NotFound);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "decided": verdict.tag() }),
    ))
}

async fn revoke_address(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let request: EmailBody = body(app, req).await?;
    let revoked = admin::revoke_address(app, &request.email).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "revoked": revoked }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn requests(app: &App, query: Option<&str>) -> Result<Response<Body>, Error> {
    let page: Page = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| Error::invalid("query", crate::texts::pages::ADMIN_PAGING))?;
    let limit = page.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let offset = page.offset.unwrap_or(0);
    let entries = admin::requests(app, limit, offset).await?;
    let next = (entries.len() == limit).then_some(offset + limit);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "entries": entries, "next_offset": next }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Person {
    email: Option<String>,
}

async fn export_person(app: &App, query: Option<&str>) -> Result<Response<Body>, Error> {
    let person: Person = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| Error::invalid("query", crate::texts::pages::ADMIN_EMAIL_QUERY))?;
    let email = person
        .email
        .ok_or_else(|| Error::invalid("email", crate::texts::pages::ADMIN_EMAIL_MISSING))?;
    let entries = admin::export_person(app, &email).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "entries": entries }),
    ))
}

async fn erase_person(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let request: EmailBody = body(app, req).await?;
    let erased = admin::erase_person(app, &request.email).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "erased": erased }),
    ))
}

/// The metrics exposition, with the mail queue's gauges refreshed.
async fn scrape(app: &App) -> Response<Body> {
    match app.backends.outbox.depth().await {
        Ok(Some(depth)) => {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            app.metrics
                .mail_queue_depth
                .set(gauge(depth.queued.saturating_add(depth.retrying)));
            app.metrics.mail_dead_letters.set(gauge(depth.dead));
        }
        Ok(None) => {}
        // A scrape still answers: the store-error metrics tell the outage.
        Err(e) => tracing::debug!(cause = %e, "mail queue depth unknown"),
    }
    let mut response = Response::new(full(app.metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}
