//! The owner's one-click Approve and Decline links (`/approvals/<token>`, made by
//! `link::decision_url` and mailed to the owner when a request waits for approval).
//!
//! The token is signed with the token keys, names the pending request and the verdict, and
//! expires with the request. Like the recipient's confirm page, a `GET` (or `HEAD`) only shows
//! what would be decided, with a button that posts back to the same address: a mail scanner that
//! fetches every link decides nothing. Only the `POST` decides, exactly once (`404` after).

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::Body;
use super::error::Error;
use super::page::PageResponse;
use crate::app::App;
use crate::approval::Verdict;
use crate::link;
use crate::pages;
use crate::texts::fill;
use crate::texts::pages as t;

/// The path prefix of the one-click links.
pub const PREFIX: &str = "/approvals/";

/// Answers one request for a one-click link.
pub async fn handle(app: &App, req: Request<Incoming>) -> Result<Response<Body>, Error> {
    let token = req.uri().path().get(PREFIX.len()..).unwrap_or_default();
    let Some((id, verdict)) = app
        .codec
        .verify(token, app.now())
        .ok()
        .and_then(|c| Verdict::from_claim(&c.doc).map(|v| (c.jti, v)))
    else {
        return Ok(decided());
    };
    if req.method() == Method::POST {
        return match link::decide(app, &id, verdict).await? {
            None => Ok(decided()),
            Some(done) => {
                let page = match verdict {
                    Verdict::Approve => pages::outcome(
                        "approved",
                        t::APPROVED_TITLE,
                        &fill(t::APPROVED, &[("email", &done.pending.email)]),
                        String::new(),
                    ),
                    Verdict::Decline => {
                        pages::outcome("declined", t::DECLINED_TITLE, t::DECLINED, String::new())
                    }
                };
                Ok(page.response(StatusCode::OK, &[]))
            }
        };
    }
    let pending = app
        .backends
        .approvals
        .get(&id, app.now())
        .await
        .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
    let Some(pending) = pending else {
        return Ok(decided());
    };
    let title = app
        .catalog
        .get(&pending.document)
        .map_or(pending.document.as_str(), |d| d.title.as_str());
    Ok(
        pages::decide(verdict == Verdict::Approve, &pending.email, title)
            .response(StatusCode::OK, &[]),
    )
}

/// `404`: no such request waits (decided, expired, or not a link of ours).
fn decided() -> Response<Body> {
    pages::outcome("decided", t::DECIDED_TITLE, t::DECIDED, String::new())
        .response(StatusCode::NOT_FOUND, &[])
}
