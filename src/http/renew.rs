//! `POST /d/{token}` with `renew=1`: the expired page's one-click "email me a new link".
//!
//! The expired link's signature is still checked, so only a genuine link asks. A new link to the
//! same document goes to the address the expired one was requested for (found in the owner's
//! request log by the link's `jti`), never to anyone else, and under the same limits as any link
//! request: per client, per address, and the service-wide mail ceiling. Where the address is not
//! known any more (erased, purged, or the link was minted by an operator without a request), the
//! person gets the request form for the document instead.

use std::net::IpAddr;

use http::{Response, StatusCode};

use super::error::Error;
use super::request_link::{mail_link, record};
use super::{Body, enforce, form};
use crate::address;
use crate::app::App;
use crate::pages;
use crate::ratelimit::{Key, Scope};
use crate::requestlog::{Entry, Event};
use crate::texts::measures::duration;
use crate::texts::pages as texts;
use crate::token::Claims;

/// Answers a renewal of the expired link `claims`.
pub async fn handle(app: &App, claims: &Claims, client: IpAddr) -> Result<Response<Body>, Error> {
    let document = app.catalog.get(&claims.doc).ok_or(Error::DocumentGone)?;
    enforce(
        app,
        &Key::ip(Scope::RequestPerIp, client),
        app.config.limits.request_per_ip,
    )
    .await?;
    let known = app
        .backends
        .requests
        .requester(&claims.jti)
        .await
        .map_err(|e| Error::StoreUnavailable(e.to_string()))?
        .and_then(|email| address::validate(&email).ok());
    let Some(address) = known else {
        let mut form = form::for_document(app, document);
        form.intro = Some(texts::RENEW_ASK_ADDRESS.to_owned());
        return Ok(form::render(app, &form, StatusCode::OK));
    };

    let mut entry = Entry::now(Event::LinkRequested, client, "");
    entry.email = Some(address.to_string());
    entry.document = Some(document.id.clone());
    let masked = mask(address.as_ref());
    let result = mail_link(app, document, address, &mut entry).await;
    record(app, &mut entry, result.as_ref().err()).await;
    result?;
    let message = texts::renewed(&masked, &duration(app.config.token_ttl.as_secs()));
    Ok(
        pages::request_sent(&message, &format!("/request/{}", document.id))
            .response(StatusCode::ACCEPTED, &[]),
    )
}

/// An address as the page shows it, enough to recognise, not to harvest: `j•••@example.com`.
fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_masked_to_their_first_letter_and_domain() {
        assert_eq!(super::mask("jane.doe@example.com"), "j•••@example.com");
        assert_eq!(super::mask("ü@bücher.example"), "ü•••@bücher.example");
    }
}
