//! Every way a request can fail, and the one place each becomes a response.
//!
//! Handlers return [`Error`]; backend errors convert into it with `From`, keeping their cause for
//! the log and never for the client. [`Error::into_response`] picks the status, a stable error
//! code and a human message, and renders JSON for API clients or a short HTML page for a person
//! in a browser. 5xx causes are logged at `warn`, 4xx at `debug`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use super::{Body, full};
use crate::admin::AdminError;
use crate::html::escape;
use crate::mail::MailError;
use crate::objects::ObjectError;
use crate::range::Unsatisfiable;
use crate::ratelimit::LimitError;
use crate::store::{LinkState, StoreError};
use crate::token::TokenError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Per-field problems with a link request's body.
    #[error("invalid request")]
    Invalid(BTreeMap<&'static str, Vec<String>>),
    #[error("unknown document")]
    UnknownDocument,
    #[error("body too large")]
    TooLarge,
    /// A body sent where none is accepted (anything but a link request).
    #[error("body not allowed")]
    BodyNotAllowed,
    #[error("request headers too large")]
    HeadersTooLarge,
    /// An admin request without the right bearer token (or with the admin API off).
    #[error("unauthorized")]
    Unauthorized,
    /// An operator named a link that is not usable (or never was).
    #[error("unknown link")]
    UnknownLink,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    #[error("malformed or tampered link")]
    BadToken(&'static str),
    #[error("link expired")]
    Expired,
    #[error("link used")]
    Used,
    #[error("link revoked")]
    Revoked,
    #[error("download in progress")]
    InFlight,
    /// The link is fine but its document is no longer on offer or in the store.
    #[error("document gone")]
    DocumentGone,
    #[error("range not satisfiable")]
    Range { size: u64 },
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// Single use cannot be enforced: the token store or limiter is down.
    #[error("token store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("mail unavailable: {0}")]
    MailUnavailable(String),
    #[error("object store failed: {0}")]
    ObjectStore(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::StoreUnavailable(e.to_string())
    }
}

impl From<LimitError> for Error {
    fn from(e: LimitError) -> Self {
        Error::StoreUnavailable(e.to_string())
    }
}

impl From<MailError> for Error {
    fn from(e: MailError) -> Self {
        Error::MailUnavailable(e.to_string())
    }
}

impl From<ObjectError> for Error {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound => Error::DocumentGone,
            ObjectError::Range(r) => Error::Range { size: r.size },
            ObjectError::Unavailable(cause) => Error::ObjectStore(cause.to_string()),
        }
    }
}

impl From<Unsatisfiable> for Error {
    fn from(e: Unsatisfiable) -> Self {
        Error::Range { size: e.size }
    }
}

impl From<AdminError> for Error {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Address(e) => Error::invalid("email", &e.to_string()),
            AdminError::UnknownDocument(_) => Error::UnknownDocument,
            AdminError::Ttl(why) => Error::invalid("ttl", &why),
            AdminError::BadJti(_) => Error::invalid("jti", "Not a link id."),
            AdminError::Store(e) => e.into(),
            AdminError::Mail(e) => e.into(),
            AdminError::Log(e) => Error::StoreUnavailable(e.to_string()),
            AdminError::Token(e) => e.into(),
        }
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired(_) => Error::Expired,
            TokenError::Invalid(why) => Error::BadToken(why),
            TokenError::Signing(cause) => Error::StoreUnavailable(cause.to_string()),
        }
    }
}

impl Error {
    /// A 400 with one message for one field.
    pub fn invalid(field: &'static str, message: &str) -> Self {
        Error::Invalid(BTreeMap::from([(field, vec![message.to_owned()])]))
    }

    /// The error a download meets for a link in `state` (`None` when the state allows one).
    pub fn for_state(state: LinkState) -> Option<Self> {
        match state {
            LinkState::Ready { .. } => None,
            LinkState::InFlight => Some(Error::InFlight),
            LinkState::Used => Some(Error::Used),
            LinkState::Revoked => Some(Error::Revoked),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) | Error::BadToken(_) => StatusCode::BAD_REQUEST,
            Error::UnknownDocument | Error::DocumentGone | Error::NotFound => StatusCode::NOT_FOUND,
            Error::TooLarge | Error::BodyNotAllowed => StatusCode::PAYLOAD_TOO_LARGE,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::UnknownLink => StatusCode::NOT_FOUND,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Expired | Error::Used | Error::Revoked => StatusCode::GONE,
            Error::InFlight => StatusCode::CONFLICT,
            Error::Range { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::ObjectStore(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid_request",
            Error::UnknownDocument => "unknown_document",
            Error::TooLarge => "body_too_large",
            Error::BodyNotAllowed => "body_not_allowed",
            Error::HeadersTooLarge => "headers_too_large",
            Error::Unauthorized => "unauthorized",
            Error::UnknownLink => "unknown_link",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::BadToken(_) => "invalid_link",
            Error::Expired => "link_expired",
            Error::Used => "link_used",
            Error::Revoked => "link_revoked",
            Error::InFlight => "download_in_progress",
            Error::DocumentGone => "document_unavailable",
            Error::Range { .. } => "range_not_satisfiable",
            Error::RateLimited { .. } => "rate_limited",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) => "service_unavailable",
            Error::ObjectStore(_) => "upstream_error",
        }
    }

    /// What a person is told: what happened and what to do next.
    pub fn message(&self) -> String {
        match self {
            Error::Invalid(_) => "Some fields are missing or invalid.".to_owned(),
            Error::UnknownDocument => "There is no such document.".to_owned(),
            Error::TooLarge => "The request body is larger than 4 KiB.".to_owned(),
            Error::BodyNotAllowed => "This request takes no body.".to_owned(),
            Error::HeadersTooLarge => "The request headers are too large.".to_owned(),
            Error::Unauthorized => {
                "Send Authorization: Bearer <DOCGATE_ADMIN_TOKEN>; the admin API is off while it is unset."
                    .to_owned()
            }
            Error::UnknownLink => "No usable link has this id.".to_owned(),
            Error::UnsupportedMediaType => {
                "Send application/json or application/x-www-form-urlencoded.".to_owned()
            }
            Error::BadToken(_) => {
                "This download link is not valid. Check that you copied the whole link from the mail."
                    .to_owned()
            }
            Error::Expired => {
                "This download link has expired. Ask for the document again to get a new link."
                    .to_owned()
            }
            Error::Used => {
                "This download link has already been used. Ask for the document again to get a new link."
                    .to_owned()
            }
            Error::Revoked => {
                "This download link has been withdrawn. Ask for the document again if you still need it."
                    .to_owned()
            }
            Error::InFlight => {
                "This link is being downloaded right now. Wait for that download to finish or fail, then try again."
                    .to_owned()
            }
            Error::DocumentGone => "This document is no longer available.".to_owned(),
            Error::Range { .. } => "The requested byte range is outside the document.".to_owned(),
            Error::RateLimited { retry_after } => format!(
                "Too many requests. Try again in {}.",
                crate::units::humanize(Duration::from_secs(retry_secs(*retry_after)))
            ),
            Error::NotFound => "There is nothing at this address.".to_owned(),
            Error::MethodNotAllowed { allow } => format!("Use {allow} here."),
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) => {
                "The service is temporarily unavailable. Your link has not been used; try again in a minute."
                    .to_owned()
            }
            Error::ObjectStore(_) => {
                "The document could not be fetched. Your link has not been used; try again in a minute."
                    .to_owned()
            }
        }
    }

    /// The response, as JSON or (for a browser) HTML.
    pub fn into_response(self, html: bool) -> Response<Body> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), code = self.code(), cause = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), code = self.code(), cause = %self, "request refused");
        }

        let message = self.message();
        let mut response = if html {
            let details: Vec<&str> = match &self {
                Error::Invalid(fields) => fields.values().flatten().map(String::as_str).collect(),
                _ => Vec::new(),
            };
            html_page(status, self.title(), &message, &details)
        } else {
            let mut body = serde_json::json!({ "error": self.code(), "message": message });
            if let Error::Invalid(fields) = &self {
                body["errors"] = serde_json::json!(fields);
            }
            json(status, &body)
        };

        let headers = response.headers_mut();
        match self {
            Error::RateLimited { retry_after } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_secs(retry_after)),
                );
            }
            Error::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Error::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"docgate admin\""),
                );
            }
            Error::Range { size } => {
                if let Ok(v) = HeaderValue::try_from(format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(30u64));
            }
            _ => {}
        }
        response
    }

    fn title(&self) -> &'static str {
        match self {
            Error::Expired => "Link expired",
            Error::Used => "Link already used",
            Error::Revoked => "Link withdrawn",
            Error::BadToken(_) => "Invalid link",
            Error::InFlight => "Download in progress",
            Error::RateLimited { .. } => "Too many requests",
            Error::DocumentGone | Error::UnknownDocument => "Document unavailable",
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) | Error::ObjectStore(_) => {
                "Temporarily unavailable"
            }
            _ => "Request not accepted",
        }
    }
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_secs(retry_after: Duration) -> u64 {
    retry_after.as_secs_f64().ceil().max(1.0) as u64
}

/// A JSON response.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A short, self-contained HTML page: a title, a sentence, and optionally a list of details.
pub fn html_page(
    status: StatusCode,
    title: &str,
    message: &str,
    details: &[&str],
) -> Response<Body> {
    let list = if details.is_empty() {
        String::new()
    } else {
        let items: String = details
            .iter()
            .map(|d| format!("<li>{}</li>", escape(d)))
            .collect();
        format!("<ul>{items}</ul>")
    };
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;\
         padding:0 1rem;line-height:1.5;color:#222;background:#fff}}\
         @media (prefers-color-scheme:dark){{body{{color:#eee;background:#181818}}}}</style>\
         </head><body><h1>{title}</h1><p>{message}</p>{list}</body></html>\n",
        title = escape(title),
        message = escape(message),
    );
    let mut response = Response::new(full(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}
