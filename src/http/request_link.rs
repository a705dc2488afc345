//! `POST /api/download-requests`: a visitor asks for a document by email.
//!
//! The order of checks is the order of cost: the client's rate limit, the content type, the body
//! size (4 KiB, checked against `Content-Length` and again while reading), the fields, the
//! service-wide mail ceiling, the address's rate limit. Only then is a link minted, recorded in the token
//! store and mailed. The answer never holds the token or the link: they travel by mail only.
//!
//! The answer never tells whether an address will receive mail: an address over its own limit
//! gets the same `202` as one that is mailed (the owner's request log says which).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::Body;
use super::error::{Error, html_page, json};
use super::{enforce, limit};
use crate::address;
use crate::app::App;
use crate::metrics::Metrics;
use crate::ratelimit::{Decision, Key, Scope};
use crate::requestlog::{Entry, Event};
use crate::units::humanize;

/// The outcome of a request answered `202` without a mail: its address is over its limit.
const NOT_SENT: &str = "not_sent_address_limit";

/// The largest request body accepted.
pub const MAX_BODY: usize = 4096;

/// The request's fields, from JSON or a form. Missing fields are reported, unknown ones ignored.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Fields {
    pub email: Option<String>,
    pub document: Option<String>,
}

/// Decodes a link request's body: a form when `form`, else a JSON object. Pure, so the fuzz
/// targets can drive it with arbitrary bytes.
pub fn decode_fields(form: bool, bytes: &[u8]) -> Result<Fields, Error> {
    if form {
        return serde_urlencoded::from_bytes(bytes)
            .map_err(|_| Error::invalid("body", "The form data could not be decoded."));
    }
    // Only an object: serde's derived `Deserialize` would also build the struct from an array of
    // its fields in order.
    let not_an_object = || {
        Error::invalid(
            "body",
            "Send a JSON object with string fields \"email\" and \"document\".",
        )
    };
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(object @ serde_json::Value::Object(_)) => {
            serde_json::from_value(object).map_err(|_| not_an_object())
        }
        _ => Err(not_an_object()),
    }
}

/// Handles one link request and records it in the owner's request log, whatever its outcome.
pub async fn handle(
    app: &App,
    req: Request<Incoming>,
    client: IpAddr,
    html: bool,
) -> Result<Response<Body>, Error> {
    let mut entry = Entry::now(Event::LinkRequested, client, "");
    let result = request_link(app, req, client, html, &mut entry).await;
    let outcome = match &result {
        Ok(_) if entry.outcome == NOT_SENT => NOT_SENT,
        Ok(_) => "sent",
        Err(e) => e.code(),
    };
    entry.outcome = outcome.to_owned();
    Metrics::count(&app.metrics.link_requests, outcome);
    if let Err(e) = app.backends.requests.record(&entry).await {
        tracing::warn!(cause = %e, "request log entry lost");
    }
    result
}

async fn request_link(
    app: &App,
    req: Request<Incoming>,
    client: IpAddr,
    html: bool,
    entry: &mut Entry,
) -> Result<Response<Body>, Error> {
    let limits = &app.config.limits;
    enforce(
        app,
        &Key::ip(Scope::RequestPerIp, client),
        limits.request_per_ip,
    )
    .await?;

    let form = content_kind(req.headers())?;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Error::TooLarge);
    }
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                Error::TooLarge
            } else {
                Error::invalid("body", "The request body could not be read.")
            }
        })?
        .to_bytes();

    let fields = decode_fields(form, &bytes)?;
    entry.email = fields.email.as_ref().map(|e| e.chars().take(320).collect());
    entry.document = fields
        .document
        .as_ref()
        .map(|d| d.chars().take(100).collect());

    let mut errors: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let address = match address::validate(fields.email.as_deref().unwrap_or("")) {
        Ok(address) => Some(address),
        Err(e) => {
            errors.insert("email", vec![e.to_string()]);
            None
        }
    };
    let document_id = fields.document.as_deref().map(str::trim).unwrap_or("");
    if document_id.is_empty() {
        errors.insert("document", vec!["Choose a document.".to_owned()]);
    }
    let address = match address {
        Some(address) if errors.is_empty() => address,
        _ => return Err(Error::Invalid(errors)),
    };
    let document = app.catalog.get(document_id).ok_or(Error::UnknownDocument)?;
    entry.email = Some(address.to_string());

    // The service-wide ceiling first: it says nothing about the address, so it may answer `429`
    // (and checked first, it answers alike whether or not the address is over its own limit).
    enforce(app, &Key::global(Scope::Mail), limits.mail).await?;
    // Over the address's limit, the answer is the same `202` as for a mail sent: the endpoint
    // must not tell anyone whether an address gets mail, and an inbox cannot be bombed
    // through it either way.
    let per_email = Key::email(Scope::RequestPerEmail, address.as_ref());
    if let Decision::Limited { .. } = limit(app, &per_email, limits.request_per_email).await? {
        app.metrics.limited(Scope::RequestPerEmail);
        tracing::info!(
            email = %app.pseudonym(address.as_ref()),
            document = %document.id,
            "link not mailed: the address is over its limit"
        );
        entry.outcome = NOT_SENT.to_owned();
        return Ok(accepted(app.config.token_ttl, html));
    }

    let ttl = app.config.token_ttl;
    let claims = app.new_link(document, address.as_ref(), ttl).await?;
    entry.jti = Some(claims.jti.clone());
    let mail = app.link_mail(address, claims, document).await;
    app.send_mail(&mail).await?;
    tracing::info!(
        email = %app.pseudonym(mail.to.as_ref()),
        document = %document.id,
        link = mail.claims.jti_prefix(),
        "link mailed"
    );

    Ok(accepted(ttl, html))
}

/// `202` with the message naming the link's real lifetime.
fn accepted(ttl: Duration, html: bool) -> Response<Body> {
    let message = format!("Check your inbox: the link expires in {}.", humanize(ttl));
    if html {
        html_page(StatusCode::ACCEPTED, "Check your inbox", &message, &[])
    } else {
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "message": message }),
        )
    }
}

/// `true` for a form, `false` for JSON; anything else is refused.
fn content_kind(headers: &HeaderMap) -> Result<bool, Error> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::UnsupportedMediaType)?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(false),
        "application/x-www-form-urlencoded" => Ok(true),
        _ => Err(Error::UnsupportedMediaType),
    }
}
