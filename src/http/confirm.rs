//! The confirm page of a link (`GET /d/{token}` from a browser, while the page is on and nothing
//! of the link has started): who gets it ([`wants_page`]), what it shows ([`page`]: the
//! document, its size, the link's expiry, and a Download button), and what the pages of a link
//! post back to it ([`check_same_site`], [`posted_renewal`]). Showing it spends nothing: a mail
//! scanner or link preview that fetches the link sees the page, and its fetch is recorded for the
//! owner.

use std::net::IpAddr;
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode, header};
use hyper::body::Incoming;

use super::download::spawn_record;
use super::error::Error;
use super::page::PageResponse;
use super::{Body, State, stamp};
use crate::app::App;
use crate::catalog::Document;
use crate::pages;
use crate::requestlog::Entry;
use crate::texts::measures;
use crate::token::Claims;

/// The largest body a `POST /d/{token}` may carry: the confirm page's form sends none, the expired
/// page's one field.
const MAX_POST_BODY: usize = 1024;

/// True when the confirm page is on and the request is a browser navigating to the link (or a
/// scanner posing as one): `Sec-Fetch-Mode: navigate`, or, from clients that do not send
/// `Sec-Fetch-*`, an `Accept` that prefers HTML. `curl`, `wget` and download managers send
/// neither and get the bytes.
pub(super) fn wants_page(app: &App, headers: &HeaderMap) -> bool {
    if !app.config.recipients.confirm_page {
        return false;
    }
    match headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes().eq_ignore_ascii_case(b"navigate"),
        None => super::client::wants_html(headers),
    }
}

/// Refuses a `POST` another site made: `Sec-Fetch-Site` says another site, or `Origin` names
/// another origin than the public URL's ([`super::client::from_own_site`]). Clients that send
/// neither (scripts) pass: the token in the path is the credential; this keeps other pages from
/// spending it for the person. Pages are served with `Referrer-Policy: same-origin`, so their own
/// posts carry their origin.
pub(super) fn check_same_site(app: &App, headers: &HeaderMap) -> Result<(), Error> {
    if super::client::from_own_site(headers, &app.config.public_origin(), &[]) {
        Ok(())
    } else {
        Err(Error::CrossSite)
    }
}

/// Reads a link's `POST` body (a form): `true` when it asks for a new link (`renew=1`).
pub(super) async fn posted_renewal(body: Incoming, deadline: Duration) -> Result<bool, Error> {
    let bytes = super::read_body(body, MAX_POST_BODY, deadline).await?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| Error::invalid("body", crate::texts::pages::FORM_UNDECODABLE))?;
    Ok(fields
        .iter()
        .any(|(name, value)| name == "renew" && value == "1"))
}

/// The confirm page: what the link gives (a watermarked document's size is its recipient's
/// stamped copy's, as its download's `Content-Length` will say), and a button that downloads it.
pub async fn page(
    state: &State,
    claims: &Claims,
    document: &Document,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<Response<Body>, Error> {
    let app = &state.app;
    let meta = app.backends.objects.head(&document.key).await?;
    let size = match stamp::prepare_for(app, &state.stamps, document, &meta).await? {
        Some(prepared) => match stamp::copy(app, claims, &prepared).await? {
            Ok(stamped) => stamped.meta().size,
            // Not stampable: the download gets the fallback, unstamped or refused.
            Err(_) => meta.size,
        },
        None => meta.size,
    };
    let now = app.now();
    let expires = measures::expires(claims.exp, now);
    let page = pages::confirm(&pages::Confirm {
        title: &document.title,
        filename: &document.filename,
        size: measures::size(size),
        expires,
    });
    app.metrics.link_pages.inc();
    let user_agent = headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    let entry = Entry::link_opened(client, claims, now, user_agent.as_deref());
    spawn_record(&app.tasks, app.backends.requests.clone(), entry);
    tracing::debug!(link = claims.jti.short(), "confirm page shown");
    Ok(page.response(StatusCode::OK, &[]))
}
