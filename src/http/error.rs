//! Every way a request can fail, and the one place each becomes a response.
//!
//! Handlers return [`Error`]; backend errors convert into it with `From`, keeping their cause for
//! the log and never for the client. [`Error::into_response`] picks the status, a stable error
//! code and a human message, and renders JSON for API clients or a page (see [`crate::pages`]) for a
//! person in a browser. 5xx causes are logged at `warn`, 4xx at `debug`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use super::page::PageResponse;
use super::{Body, BoxError, full};
use crate::admin::AdminError;
use crate::html::escape;
use crate::link::LinkError;
use crate::mail::MailError;
use crate::objects::ObjectError;
use crate::pages::{self, Page};
use crate::range::Unsatisfiable;
use crate::ratelimit::LimitError;
use crate::store::{LinkState, StoreError};
use crate::texts::measures;
use crate::texts::pages as t;
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
    /// The request body did not arrive in full within the body deadline.
    #[error("request body too slow")]
    BodyTimeout,
    /// An admin request without the right bearer token (or with the admin API off).
    #[error("unauthorized")]
    Unauthorized,
    /// An operator named a link that is not usable (or never was).
    #[error("unknown link")]
    UnknownLink,
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// A download posted from another site (`Origin` or `Sec-Fetch-Site` say so).
    #[error("cross-site download request")]
    CrossSite,
    /// A link request another site's page made (`Origin` or `Sec-Fetch-Site` say so), or a CORS
    /// preflight from an origin not in `DOCGATE_CORS_ORIGINS`.
    #[error("cross-site link request")]
    CrossSiteRequest,
    /// An action on the owner's page without its session's CSRF token (or with a wrong one), or
    /// posted from another site.
    #[error("owner's form without a valid CSRF token")]
    StaleForm,
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
    /// A watermarked document that cannot be stamped (encrypted, unreadable, too large, or its
    /// recipient unknown), refused as `DOCGATE_WATERMARK_FALLBACK=refuse` asks. The reason is
    /// for the log.
    #[error("document cannot be stamped: {0}")]
    NotStampable(String),
    #[error("range not satisfiable")]
    Range { size: u64 },
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// The client already has as many downloads streaming as it may.
    #[error("too many concurrent downloads from one client")]
    TooManyDownloads { retry_after: Duration },
    /// This process already streams as many downloads as it may.
    #[error("too many concurrent downloads")]
    Busy { retry_after: Duration },
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// Single use cannot be enforced: the token store or limiter is down. The cause is kept
    /// for the log, and says which.
    #[error("{0}")]
    StoreUnavailable(#[source] BoxError),
    #[error("mail unavailable: {0}")]
    MailUnavailable(#[source] MailError),
    /// A failure that retrying cannot fix (a mail that cannot be composed): `500`, never the
    /// `503` "try again in a minute" of an outage.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("object store failed: {0}")]
    ObjectStore(#[source] std::io::Error),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::StoreUnavailable(Box::new(e))
    }
}

impl From<LimitError> for Error {
    fn from(e: LimitError) -> Self {
        Error::StoreUnavailable(Box::new(e))
    }
}

impl From<MailError> for Error {
    fn from(e: MailError) -> Self {
        match e {
            // The same mail would fail to compose again: not an outage.
            MailError::Compose(_) => Error::Internal(e.to_string()),
            MailError::Delivery(_) => Error::MailUnavailable(e),
        }
    }
}

impl From<ObjectError> for Error {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound => Error::DocumentGone,
            ObjectError::Range(r) => Error::Range { size: r.size },
            ObjectError::Unavailable(cause) => Error::ObjectStore(cause),
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
            AdminError::BadJti(_) => Error::invalid("jti", t::NOT_A_LINK_ID),
            AdminError::Store(e) => e.into(),
            AdminError::Link(e) => e.into(),
            AdminError::Log(e) => Error::StoreUnavailable(Box::new(e)),
            AdminError::Approval(e) => Error::StoreUnavailable(Box::new(e)),
            AdminError::BadApprovalId(_) => Error::NotFound,
        }
    }
}

impl From<LinkError> for Error {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::RateLimited { retry_after } => Error::RateLimited { retry_after },
            LinkError::Limiter(e) => e.into(),
            LinkError::Store(e) => e.into(),
            LinkError::Mail(e) => e.into(),
            LinkError::Token(e) => e.into(),
            LinkError::Approval(e) => Error::StoreUnavailable(Box::new(e)),
        }
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired(_) => Error::Expired,
            TokenError::Invalid(why) => Error::BadToken(why),
            TokenError::Signing(cause) => Error::StoreUnavailable(Box::new(cause)),
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
            Error::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::CrossSite | Error::CrossSiteRequest | Error::StaleForm => StatusCode::FORBIDDEN,
            Error::UnknownLink => StatusCode::NOT_FOUND,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Expired | Error::Used | Error::Revoked => StatusCode::GONE,
            Error::InFlight => StatusCode::CONFLICT,
            Error::Range { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::RateLimited { .. } | Error::TooManyDownloads { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::Busy { .. } | Error::NotStampable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::ObjectStore(_) => StatusCode::BAD_GATEWAY,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            Error::BodyTimeout => "body_timeout",
            Error::Unauthorized => "unauthorized",
            Error::UnknownLink => "unknown_link",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::CrossSite | Error::CrossSiteRequest => "cross_site_request",
            Error::StaleForm => "stale_form",
            Error::BadToken(_) => "invalid_link",
            Error::Expired => "link_expired",
            Error::Used => "link_used",
            Error::Revoked => "link_revoked",
            Error::InFlight => "download_in_progress",
            Error::DocumentGone => "document_unavailable",
            Error::NotStampable(_) => "document_not_stampable",
            Error::Range { .. } => "range_not_satisfiable",
            Error::RateLimited { .. } => "rate_limited",
            Error::TooManyDownloads { .. } => "too_many_downloads",
            Error::Busy { .. } => "server_busy",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) => "service_unavailable",
            Error::ObjectStore(_) => "upstream_error",
            Error::Internal(_) => "internal",
        }
    }

    /// What a person is told: what happened and what to do next.
    pub fn message(&self) -> String {
        match self {
            Error::Invalid(_) => t::INVALID_FIELDS.to_owned(),
            Error::UnknownDocument => t::UNKNOWN_DOCUMENT.to_owned(),
            Error::TooLarge => t::TOO_LARGE.to_owned(),
            Error::BodyNotAllowed => t::BODY_NOT_ALLOWED.to_owned(),
            Error::HeadersTooLarge => t::HEADERS_TOO_LARGE.to_owned(),
            Error::BodyTimeout => t::BODY_TIMEOUT.to_owned(),
            Error::Unauthorized => t::UNAUTHORIZED.to_owned(),
            Error::UnknownLink => t::UNKNOWN_LINK.to_owned(),
            Error::UnsupportedMediaType => t::UNSUPPORTED_MEDIA_TYPE.to_owned(),
            Error::CrossSite => t::CROSS_SITE.to_owned(),
            Error::CrossSiteRequest => t::CROSS_SITE_REQUEST.to_owned(),
            Error::StaleForm => crate::texts::owner::STALE_FORM.to_owned(),
            Error::BadToken(_) => t::INVALID.to_owned(),
            Error::Expired => t::EXPIRED.to_owned(),
            Error::Used => t::USED.to_owned(),
            Error::Revoked => t::REVOKED.to_owned(),
            Error::InFlight => t::IN_FLIGHT.to_owned(),
            Error::DocumentGone => t::DOCUMENT_GONE.to_owned(),
            Error::NotStampable(_) => t::NOT_STAMPABLE.to_owned(),
            Error::Range { .. } => t::RANGE.to_owned(),
            Error::RateLimited { retry_after } => {
                let wait = retry_secs(*retry_after);
                let now = crate::units::unix_now();
                t::rate_limited(&measures::expires(now + wait, now))
            }
            Error::TooManyDownloads { .. } => t::TOO_MANY_DOWNLOADS.to_owned(),
            Error::Busy { .. } => t::BUSY.to_owned(),
            Error::NotFound => t::NOT_FOUND.to_owned(),
            Error::MethodNotAllowed { allow } => t::method_not_allowed(allow),
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) => t::UNAVAILABLE.to_owned(),
            Error::ObjectStore(_) => t::UPSTREAM.to_owned(),
            Error::Internal(_) => t::INTERNAL.to_owned(),
        }
    }

    /// The response, as JSON or (for a browser) an HTML page.
    pub fn into_response(self, html: bool) -> Response<Body> {
        self.into_response_for(html, None)
    }

    /// The response, where the request concerned a link's document: its page offers to ask for
    /// that document again at `ask_again` (the document's form).
    pub fn into_response_for(self, html: bool, ask_again: Option<&str>) -> Response<Body> {
        self.into_response_framed(html, ask_again, &[])
    }

    /// As [`Error::into_response_for`], with a page that `frame_ancestors` may frame (the
    /// answers to the request form, for the sites that embed it).
    pub fn into_response_framed(
        self,
        html: bool,
        ask_again: Option<&str>,
        frame_ancestors: &[String],
    ) -> Response<Body> {
        let status = self.status();
        // A full replica's `503 server_busy` is admission doing its job, as a `429` is: under
        // overload it is answered thousands of times a second, and a warning each would flood the
        // log (the metrics count them).
        if status.is_server_error() && !matches!(self, Error::Busy { .. }) {
            tracing::warn!(status = status.as_u16(), code = self.code(), cause = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), code = self.code(), cause = %self, "request refused");
        }

        let message = self.message();
        let mut response = if html {
            self.page(&message, ask_again)
                .response(status, frame_ancestors)
        } else {
            let mut body = serde_json::json!({ "error": self.code(), "message": message });
            if let Error::Invalid(fields) = &self {
                body["errors"] = serde_json::json!(fields);
            }
            json(status, &body)
        };

        let headers = response.headers_mut();
        match self {
            Error::RateLimited { retry_after }
            | Error::TooManyDownloads { retry_after }
            | Error::Busy { retry_after } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_secs(retry_after)),
                );
            }
            // The rest of the body may still be on its way: the connection cannot be reused.
            Error::BodyTimeout => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
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

    /// The page a person sees for this error.
    fn page(&self, message: &str, ask_again: Option<&str>) -> Page {
        let ask_again = || {
            ask_again
                .map(|href| pages::button_link(href, t::ASK_AGAIN))
                .unwrap_or_default()
        };
        let extra = match self {
            Error::Expired => pages::renew_button(),
            Error::Used | Error::Revoked | Error::DocumentGone => ask_again(),
            Error::Invalid(fields) => {
                let items: String = fields
                    .values()
                    .flatten()
                    .map(|d| format!("<li>{}</li>", escape(d)))
                    .collect();
                format!("<ul>{items}</ul>")
            }
            _ => String::new(),
        };
        pages::outcome(self.code(), self.title(), message, extra)
    }

    fn title(&self) -> &'static str {
        match self {
            Error::Expired => t::EXPIRED_TITLE,
            Error::Used => t::USED_TITLE,
            Error::Revoked => t::REVOKED_TITLE,
            Error::BadToken(_) => t::INVALID_TITLE,
            Error::InFlight => t::IN_FLIGHT_TITLE,
            Error::RateLimited { .. } | Error::TooManyDownloads { .. } => t::RATE_LIMITED_TITLE,
            Error::Busy { .. } => t::BUSY_TITLE,
            Error::DocumentGone | Error::UnknownDocument | Error::NotStampable(_) => {
                t::DOCUMENT_GONE_TITLE
            }
            Error::StoreUnavailable(_) | Error::MailUnavailable(_) | Error::ObjectStore(_) => {
                t::UNAVAILABLE_TITLE
            }
            Error::NotFound => t::NOT_FOUND_TITLE,
            Error::CrossSite | Error::CrossSiteRequest | Error::StaleForm => t::FORBIDDEN_TITLE,
            Error::Internal(_) => t::INTERNAL_TITLE,
            _ => t::NOT_ACCEPTED_TITLE,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_keep_their_cause_and_say_the_same() {
        use std::error::Error as _;

        let cause = std::io::Error::other("connection refused");
        let error = Error::from(StoreError::Unavailable(Box::new(cause)));
        assert_eq!(
            error.to_string(),
            "token store unavailable: connection refused"
        );
        let store = error.source().expect("the store's error is kept");
        assert_eq!(
            store.source().map(ToString::to_string).as_deref(),
            Some("connection refused")
        );
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);

        let error = Error::from(ObjectError::Unavailable(std::io::Error::other("timed out")));
        assert_eq!(error.to_string(), "object store failed: timed out");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("timed out")
        );
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        // The client reads neither cause.
        let body = error.message();
        assert!(!body.contains("timed out"), "{body}");

        let error = Error::from(LimitError::Unavailable(Box::new(std::io::Error::other(
            "connection reset",
        ))));
        assert_eq!(
            error.to_string(),
            "rate limiter unavailable: connection reset"
        );
        let limiter = error.source().expect("the limiter's error is kept");
        assert_eq!(
            limiter.source().map(ToString::to_string).as_deref(),
            Some("connection reset")
        );
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);

        let error = Error::from(MailError::Delivery(
            crate::mail::DeliveryError::QueueTimeout,
        ));
        let mail = error.source().expect("the mail error is kept");
        assert_eq!(
            mail.to_string(),
            error.to_string().trim_start_matches("mail unavailable: ")
        );
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_mail_that_cannot_be_composed_is_a_500_not_an_outage() {
        let error = Error::from(MailError::Compose(
            crate::token::TokenError::Invalid("secret detail of the cause").into(),
        ));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error.code(), "internal");
        assert!(!error.message().contains("minute"), "{}", error.message());
        let response = error.into_response(false);
        assert_eq!(response.status(), 500);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());

        // A delivery failure is still the outage it is: 503, try again.
        let error = Error::from(MailError::Delivery(
            crate::mail::DeliveryError::QueueTimeout,
        ));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = error.into_response(false);
        assert!(response.headers().get(header::RETRY_AFTER).is_some());
        let page = Error::Internal(String::new()).into_response(true);
        assert_eq!(page.status(), 500);
    }
}
