//! `GET` and `HEAD /d/{token}`: a recipient follows the link from the mail.
//!
//! `GET` verifies the token, claims the link in the token store (one atomic step: exactly one of
//! several racing clients wins), opens the object with the requested range, and streams it through
//! a [`DownloadBody`] that spends the link only when the last byte goes out. A failure before the
//! first byte releases the claim with a refund, so it costs the recipient nothing. `HEAD` answers
//! what a `GET` would get now without claiming anything.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio_util::task::TaskTracker;

use super::body::{Claim, DownloadBody, Outcome};
use super::error::Error;
use super::{Body, empty, enforce};
use crate::app::{App, LEASE_TTL, RENEW_EVERY};
use crate::catalog::Document;
use crate::metrics::Metrics;
use crate::objects::ObjectMeta;
use crate::range::{ByteRange, RangeRequest};
use crate::ratelimit::{Key, Scope};
use crate::requestlog::{Entry, Event, RequestLog};
use crate::store::{Claim as Claimed, Lease};
use crate::token::{Claims, TokenError};

/// RFC 8187 `attr-char`: everything else in `filename*` is percent-encoded.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Handles a download. `link` receives the `jti` prefix of a genuine token, for the access log.
pub async fn handle(
    app: &App,
    req: Request<Incoming>,
    client: IpAddr,
    link: &mut Option<String>,
) -> Result<Response<Body>, Error> {
    let head = req.method() == Method::HEAD;
    let result = download(app, req, client, link, head).await;
    if let Err(e) = &result {
        refused(app, head, e);
    }
    result
}

async fn download(
    app: &App,
    req: Request<Incoming>,
    client: IpAddr,
    link: &mut Option<String>,
    head: bool,
) -> Result<Response<Body>, Error> {
    enforce(
        app,
        &Key::ip(Scope::DownloadPerIp, client),
        app.config.limits.download_per_ip,
    )
    .await?;

    let token = req.uri().path().strip_prefix("/d/").unwrap_or("");
    let token = token.strip_suffix('/').unwrap_or(token);
    let claims = match app.codec.verify(token, app.now()) {
        Ok(claims) => claims,
        Err(TokenError::Expired(claims)) => {
            *link = Some(claims.jti_prefix().to_owned());
            if !head {
                record(app, &claims, client, "link_expired");
            }
            return Err(Error::Expired);
        }
        Err(e) => return Err(e.into()),
    };
    *link = Some(claims.jti_prefix().to_owned());

    let Some(document) = app.catalog.get(&claims.doc) else {
        return Err(Error::DocumentGone);
    };
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let range = RangeRequest::from_headers(header(header::RANGE), header(header::IF_RANGE));

    let result = if head {
        head_response(app, &claims, document, range.as_ref()).await
    } else {
        get_response(app, &claims, document, range.as_ref(), client).await
    };
    if let (Err(e), false) = (&result, head) {
        record(app, &claims, client, e.code());
    }
    result
}

/// Counts a `GET` refused before its first byte, by error code.
fn refused(app: &App, head: bool, error: &Error) {
    if !head {
        Metrics::count(&app.metrics.download_refusals, error.code());
    }
}

async fn head_response(
    app: &App,
    claims: &Claims,
    document: &Document,
    range: Option<&RangeRequest>,
) -> Result<Response<Body>, Error> {
    let state = app.backends.store.peek(&claims.jti).await?;
    if let Some(refusal) = Error::for_state(state) {
        return Err(refusal);
    }
    let meta = app.backends.objects.head(&document.key).await?;
    let selected = match range {
        Some(request) => request.select(&meta.etag, meta.size)?,
        None => None,
    };
    let mut response = Response::new(empty());
    headers(&mut response, document, &meta, selected);
    Ok(response)
}

async fn get_response(
    app: &App,
    claims: &Claims,
    document: &Document,
    range: Option<&RangeRequest>,
    client: IpAddr,
) -> Result<Response<Body>, Error> {
    let store = &app.backends.store;
    let lease = Lease::new(LEASE_TTL);
    let attempt = match store.claim(&claims.jti, &lease).await? {
        Claimed::Granted { attempt } => attempt,
        Claimed::Refused(state) => return Err(Error::for_state(state).unwrap_or(Error::Revoked)),
    };

    let object = match app.backends.objects.open(&document.key, range).await {
        Ok(object) => object,
        Err(e) => {
            if let Err(release) = store.release(&claims.jti, &lease, true).await {
                tracing::warn!(cause = %release, "could not release a claim after a failed open");
            }
            return Err(e.into());
        }
    };
    tracing::debug!(link = claims.jti_prefix(), attempt, "download started");
    let metrics = app.metrics.clone();
    metrics.downloads_started.inc();
    metrics.downloads_in_flight.inc();
    let started = std::time::Instant::now();

    let mut entry = Entry::now(Event::Download, client, "");
    entry.document = Some(document.id.clone());
    entry.jti = Some(claims.jti.clone());
    let requests = app.backends.requests.clone();
    let tasks = app.tasks.clone();
    let link = claims.jti_prefix().to_owned();
    let notice = app.download_notice(claims, document, client);
    let on_finish = Box::new(move |outcome: Outcome| {
        tracing::info!(link = %link, outcome = outcome.as_str(), "download ended");
        if let (Outcome::Completed, Some(notice)) = (outcome, notice) {
            notice.send();
        }
        metrics.download_finished(outcome.as_str(), started.elapsed());
        entry.outcome = outcome.as_str().to_owned();
        spawn_record(&tasks, requests, entry);
    });

    let len = object.len();
    let spends = object.reaches_end();
    let mut response = Response::new(empty());
    headers(&mut response, document, &object.meta, object.range);
    let body = DownloadBody::new(
        object.body,
        len,
        spends,
        Claim {
            store: store.clone(),
            jti: claims.jti.clone(),
            lease,
            tasks: app.tasks.clone(),
        },
        RENEW_EVERY,
        on_finish,
    );
    Ok(response.map(|_| body.boxed_unsync()))
}

/// Status and headers for a document (or a range of it).
fn headers(
    response: &mut Response<Body>,
    document: &Document,
    meta: &ObjectMeta,
    range: Option<ByteRange>,
) {
    let len = range.map_or(meta.size, |r| r.len());
    let headers = response.headers_mut();
    let value = |s: &str| HeaderValue::try_from(s).unwrap_or(HeaderValue::from_static(""));
    headers.insert(header::CONTENT_TYPE, value(&document.content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&content_disposition(&document.filename)),
    );
    headers.insert(header::ETAG, value(&meta.etag));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(range) = range {
        headers.insert(
            header::CONTENT_RANGE,
            value(&range.content_range(meta.size)),
        );
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
}

/// `attachment` with an ASCII `filename` for old clients and the exact UTF-8 name in
/// `filename*` (RFC 6266, RFC 8187).
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(filename, ATTR_CHAR);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Records a refused download of a genuine link in the owner's request log.
fn record(app: &App, claims: &Claims, client: IpAddr, outcome: &str) {
    let mut entry = Entry::now(Event::Download, client, outcome);
    entry.document = Some(claims.doc.clone());
    entry.jti = Some(claims.jti.clone());
    spawn_record(&app.tasks, app.backends.requests.clone(), entry);
}

/// Appends to the request log without holding up the response (shutdown waits for it).
fn spawn_record(tasks: &TaskTracker, requests: Arc<dyn RequestLog>, entry: Entry) {
    tasks.spawn(async move {
        if let Err(e) = requests.record(&entry).await {
            tracing::warn!(cause = %e, "request log entry lost");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_encoded_for_every_client() {
        assert_eq!(
            content_disposition("Jane_Doe_Resume.pdf"),
            "attachment; filename=\"Jane_Doe_Resume.pdf\"; filename*=UTF-8''Jane_Doe_Resume.pdf"
        );
        assert_eq!(
            content_disposition("Lebenslauf Jürgen \"JM\".pdf"),
            "attachment; filename=\"Lebenslauf J_rgen _JM_.pdf\"; \
             filename*=UTF-8''Lebenslauf%20J%C3%BCrgen%20%22JM%22.pdf"
        );
    }
}
