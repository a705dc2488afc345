//! `POST /api/download-requests`: a visitor asks for a document by email.
//!
//! The order of checks is the order of cost: the page it comes from (a browser on another site's
//! page is refused `403` before it spends any budget or is recorded), the client's rate limit,
//! the content type, the body size (4 KiB, checked against `Content-Length` and again while
//! reading), the fields, the service-wide mail ceiling, the mailbox's budget (`address::mailbox`:
//! every spelling of one inbox shares it), the recipient domain's budget. Only then is a link
//! minted, recorded in the token store and mailed. The answer never holds the token or the link:
//! they travel by mail only.
//!
//! The answer never tells whether an address will receive mail: an address (or domain) over its
//! budget gets the same `202` as one that is mailed, after as long ([`crate::pacing`]); the
//! owner's request log says which.
//!
//! Besides `email` and `document`, a request may carry `name` and `company` (recorded for the
//! owner) and `consent`; with `DOCGATE_PRIVACY_URL` set, a request without `consent` agreeing
//! is refused (`400`, no mail).

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Deserialize;

use super::Body;
use super::client;
use super::enforce;
use super::error::{Error, json};
use super::form;
use super::page::PageResponse;
use crate::address;
use crate::app::App;
use crate::link::{self, LinkRequest};
use crate::pages;
use crate::ratelimit::{Key, Scope};
use crate::texts::measures::duration;
use crate::texts::pages as texts;

/// The largest request body accepted.
pub const MAX_BODY: usize = 4096;

/// The most characters of a name or company.
pub const MAX_TEXT: usize = 100;

/// The request's fields, from JSON or a form. Missing fields are reported, unknown ones ignored.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Fields {
    pub email: Option<String>,
    pub document: Option<String>,
    /// The visitor's name, optional.
    pub name: Option<String>,
    /// The visitor's company, optional.
    pub company: Option<String>,
    /// Agreement to the privacy notice: JSON `true`/`false`, or a form value where `true`,
    /// `on` (a checked checkbox), `yes` and `1` agree (any case) and anything else does not.
    /// `None` when absent or `null`.
    #[serde(default, deserialize_with = "consent")]
    pub consent: Option<bool>,
}

/// Reads `consent` from a JSON boolean, a string (forms carry nothing else) or `null`.
fn consent<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    struct Consent;
    impl<'de> serde::de::Visitor<'de> for Consent {
        type Value = Option<bool>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a boolean or a string")
        }

        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            Ok(Some(
                ["true", "on", "yes", "1"]
                    .iter()
                    .any(|yes| v.eq_ignore_ascii_case(yes)),
            ))
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    deserializer.deserialize_any(Consent)
}

/// An optional free-text field (name, company) as recorded: trimmed, `None` when empty; refused
/// over [`MAX_TEXT`] characters or with control or bidirectional-override characters (they
/// would break or disguise the owner's view of it).
pub fn optional_text(value: Option<&str>) -> Result<Option<String>, String> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_TEXT {
        return Err(texts::text_too_long(MAX_TEXT));
    }
    let hidden =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if text.chars().any(hidden) {
        return Err(texts::TEXT_CONTROL.to_owned());
    }
    Ok(Some(text.to_owned()))
}

/// Decodes a link request's body: a form when `form`, else a JSON object. A field given twice is
/// refused in either (`400`). Pure, so the fuzz targets can drive it with arbitrary bytes.
pub fn decode_fields(form: bool, bytes: &[u8]) -> Result<Fields, Error> {
    if form {
        let undecodable = |_| Error::invalid("body", texts::FORM_UNDECODABLE);
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(bytes).map_err(undecodable)?;
        let mut names = std::collections::HashSet::new();
        if !pairs.iter().all(|(name, _)| names.insert(name.as_str())) {
            return Err(Error::invalid("body", texts::DUPLICATE_FIELD));
        }
        return serde_urlencoded::from_bytes(bytes).map_err(undecodable);
    }
    // Only an object: serde's derived `Deserialize` would also build the struct from an array of
    // its fields in order.
    let not_an_object = || Error::invalid("body", texts::JSON_FIELDS);
    // A key named twice is refused: one of the two would silently win, and a filter in front
    // of docgate may have checked the other.
    match crate::json::from_slice(bytes) {
        Ok(object @ serde_json::Value::Object(_)) => {
            serde_json::from_value(object).map_err(|_| not_an_object())
        }
        Err(crate::json::JsonError::DuplicateKey) => {
            Err(Error::invalid("body", texts::DUPLICATE_FIELD))
        }
        _ => Err(not_an_object()),
    }
}

/// Handles one link request: counts it whatever its outcome, and records it in the owner's
/// request log when it was answered (see [`LinkRequest::finish`]); one from another site's page
/// is refused before anything else, and only counted.
pub async fn handle(
    app: &App,
    req: Request<Incoming>,
    client: IpAddr,
    html: bool,
) -> Result<Response<Body>, Error> {
    // Another site's page may not make its visitors' browsers ask for links: refused before the
    // client's budget, the request log or anything else is touched.
    let recipients = &app.config.recipients;
    if !client::from_own_site(
        req.headers(),
        &app.config.public_origin(),
        &recipients.cors_origins,
    ) {
        let refused = Error::CrossSiteRequest;
        link::refused(app, refused.code());
        return Err(refused);
    }
    let mut request = LinkRequest::new(client);
    let mut typed = None;
    let result = request_link(app, req, client, html, &mut request, &mut typed).await;
    request
        .finish(app, result.as_ref().err().map(Error::code))
        .await;
    match (result, typed) {
        // A person's form without script: the form again, as typed, each problem by its field.
        (Err(Error::Invalid(errors)), Some(fields)) if html => Ok(form_again(app, fields, errors)),
        (result, _) => result,
    }
}

/// The request form as it was sent, with `errors` beside their fields (`400`).
fn form_again(
    app: &App,
    fields: Fields,
    errors: BTreeMap<&'static str, Vec<String>>,
) -> Response<Body> {
    let document = fields
        .document
        .as_deref()
        .and_then(|id| app.catalog.get(id.trim()));
    let mut form = match document {
        Some(document) => form::for_document(app, document),
        None => form::all_documents(app),
    };
    form.email = fields.email.unwrap_or_default();
    form.name = fields.name.unwrap_or_default();
    form.company = fields.company.unwrap_or_default();
    form.consent = fields.consent == Some(true);
    form.errors = errors
        .into_iter()
        .map(|(field, messages)| (field.to_owned(), messages))
        .collect();
    form::render(app, &form, StatusCode::BAD_REQUEST)
}

async fn request_link(
    app: &App,
    req: Request<Incoming>,
    client: IpAddr,
    html: bool,
    request: &mut LinkRequest,
    typed: &mut Option<Fields>,
) -> Result<Response<Body>, Error> {
    let entry = &mut request.entry;
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
    let bytes = super::read_body(req.into_body(), MAX_BODY, app.config.http.body_timeout).await?;

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
        errors.insert("document", vec![texts::DOCUMENT_MISSING.to_owned()]);
    }
    for (field, value, recorded) in [
        ("name", &fields.name, &mut entry.name),
        ("company", &fields.company, &mut entry.company),
    ] {
        match optional_text(value.as_deref()) {
            Ok(text) => *recorded = text,
            Err(e) => {
                errors.insert(field, vec![e]);
            }
        }
    }
    entry.consent = fields.consent;
    if app.config.privacy_url.is_some() && fields.consent != Some(true) {
        errors.insert("consent", vec![texts::CONSENT_REQUIRED.to_owned()]);
    }
    let address = match address {
        Some(address) if errors.is_empty() => address,
        _ => {
            *typed = Some(fields);
            return Err(Error::Invalid(errors));
        }
    };
    let document = app.catalog.get(document_id).ok_or(Error::UnknownDocument)?;
    request.mail(app, document, address).await?;
    if document.approval {
        // Every request for such a document gets this answer, whatever became of it.
        return Ok(review(app, html));
    }
    Ok(accepted(
        app,
        document.link_ttl_or(app.config.token_ttl),
        html,
    ))
}

/// `202` for a document that needs the owner's approval: the owner will review the request.
fn review(app: &App, html: bool) -> Response<Body> {
    if html {
        let back = format!("{}/", app.config.public_path());
        pages::review(&back).response(StatusCode::ACCEPTED, &app.config.recipients.cors_origins)
    } else {
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "message": texts::REVIEW }),
        )
    }
}

/// `202` with the message naming the link's real lifetime `ttl`: for a person, a page (framable
/// by the sites that embed the form) with a way back to the form.
fn accepted(app: &App, ttl: std::time::Duration, html: bool) -> Response<Body> {
    let lifetime = duration(ttl.as_secs());
    if html {
        let back = format!("{}/", app.config.public_path());
        pages::request_sent(&texts::sent_body(&lifetime), &back)
            .response(StatusCode::ACCEPTED, &app.config.recipients.cors_origins)
    } else {
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "message": texts::request_sent(&lifetime) }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_reads_from_json_and_forms() {
        let json = |body: &str| decode_fields(false, body.as_bytes()).map(|f| f.consent);
        assert_eq!(json(r#"{"consent": true}"#).unwrap(), Some(true));
        assert_eq!(json(r#"{"consent": false}"#).unwrap(), Some(false));
        assert_eq!(json(r#"{"consent": null}"#).unwrap(), None);
        assert_eq!(json(r#"{}"#).unwrap(), None);
        assert_eq!(json(r#"{"consent": "yes"}"#).unwrap(), Some(true));
        assert!(json(r#"{"consent": 1}"#).is_err());
        assert!(json(r#"{"consent": [true]}"#).is_err());

        let form = |body: &str| decode_fields(true, body.as_bytes()).unwrap().consent;
        for yes in ["on", "ON", "true", "yes", "1", "%20Yes%20"] {
            assert_eq!(form(&format!("consent={yes}")), Some(true), "{yes}");
        }
        for no in ["off", "no", "0", "", "false", "y"] {
            assert_eq!(form(&format!("consent={no}")), Some(false), "{no}");
        }
        assert_eq!(form("email=a%40example.org"), None);
        assert!(decode_fields(true, b"consent=on&consent=on").is_err());
    }

    #[test]
    fn a_field_given_twice_is_refused_in_json_and_forms() {
        let refused = |form: bool, body: &str| match decode_fields(form, body.as_bytes()) {
            Err(Error::Invalid(fields)) => fields.into_keys().collect::<Vec<_>>(),
            other => panic!("{body}: {other:?}"),
        };
        for body in [
            r#"{"email": "a@example.org", "email": "b@example.org", "document": "resume"}"#,
            r#"{"email": "a@example.org", "document": "resume", "document": "resume"}"#,
            r#"{"email": "a@example.org", "document": "resume", "pad": 1, "pad": 2}"#,
            r#"{"email": "a@example.org", "document": "resume", "x": {"y": 1, "y": 2}}"#,
        ] {
            assert_eq!(refused(false, body), ["body"]);
        }
        assert!(matches!(
            decode_fields(false, br#"{"email": "a@example.org", "email": "b@example.org"}"#),
            Err(Error::Invalid(f)) if f["body"] == [texts::DUPLICATE_FIELD]
        ));
        for body in [
            "email=a%40example.org&email=b%40example.org&document=resume",
            "email=a%40example.org&document=resume&document=resume",
        ] {
            assert_eq!(refused(true, body), ["body"]);
            assert!(matches!(
                decode_fields(true, body.as_bytes()),
                Err(Error::Invalid(f)) if f["body"] == [texts::DUPLICATE_FIELD]
            ));
        }
        let once = decode_fields(false, br#"{"email": "a@example.org", "Email": "b"}"#).unwrap();
        assert_eq!(once.email.as_deref(), Some("a@example.org"));
    }

    #[test]
    fn names_and_companies_are_trimmed_and_bounded() {
        assert_eq!(optional_text(None), Ok(None));
        assert_eq!(optional_text(Some("  \t ")), Ok(None));
        assert_eq!(
            optional_text(Some("  Jane Doe\n")),
            Ok(Some("Jane Doe".to_owned()))
        );
        let longest = "é".repeat(MAX_TEXT);
        assert_eq!(optional_text(Some(&longest)), Ok(Some(longest.clone())));
        assert!(optional_text(Some(&format!("{longest}x"))).is_err());
        for bad in [
            "Jane\nBcc: x",
            "Jane\u{0}",
            "\u{1b}[31mJane",
            "Jane \u{202E}eoD",
        ] {
            assert!(optional_text(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
