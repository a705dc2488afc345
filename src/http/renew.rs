//! `POST /d/{token}` with `renew=1`: the expired page's one-click "email me a new link".
//!
//! The expired link's signature is still checked, so only a genuine link asks. A new link to the
//! same document goes to the address the expired one was requested or minted for (found in the
//! owner's request log by the link's `jti`), never to anyone else, and under the same limits as
//! any link request: per client, per address, and the service-wide mail ceiling. Whether the old
//! link was revoked does not matter: the request form would mail that address just the same.
//! Where the address is not known any more (the person was erased, or their entries passed the
//! retention), the person gets the request form for the document instead.
//!
//! Every renewal that mails (or is refused) is a link request in the owner's log and the
//! `docgate_link_requests_total` metric, like one made with the form.

use std::net::IpAddr;

use http::{Response, StatusCode};

use super::error::Error;
use super::page::PageResponse;
use super::{Body, enforce, form};
use crate::address;
use crate::app::App;
use crate::link::LinkRequest;
use crate::pages;
use crate::ratelimit::{Key, Scope};
use crate::texts::measures::duration;
use crate::texts::pages as texts;
use crate::token::Claims;

/// Answers a renewal of the expired link `claims`. A refusal is recorded as a link request; the
/// router renders it (a page or JSON), offering the document's form again.
pub async fn handle(app: &App, claims: &Claims, client: IpAddr) -> Result<Response<Body>, Error> {
    let mut request = LinkRequest::new(client);
    request.entry.document = Some(claims.doc.clone());
    match renew(app, claims, client, &mut request).await {
        Ok(Renewal::AskAddress(response)) => Ok(response),
        Ok(Renewal::Sent(response)) => {
            request.finish(app, None).await;
            Ok(response)
        }
        Err(e) => {
            request.finish(app, Some(e.code())).await;
            Err(e)
        }
    }
}

enum Renewal {
    /// No address on record: the form, for the person to type theirs (no request made yet).
    AskAddress(Response<Body>),
    /// Mailed (or, over the address's limit, answered alike): "check your inbox", once the
    /// request is finished (recorded, and settled with the pacing).
    Sent(Response<Body>),
}

async fn renew(
    app: &App,
    claims: &Claims,
    client: IpAddr,
    request: &mut LinkRequest,
) -> Result<Renewal, Error> {
    enforce(
        app,
        &Key::ip(Scope::RequestPerIp, client),
        app.config.limits.request_per_ip,
    )
    .await?;
    let document = app.catalog.get(&claims.doc).ok_or(Error::DocumentGone)?;
    let known = app
        .backends
        .requests
        .requester(claims.jti.as_str())
        .await
        .map_err(|e| Error::StoreUnavailable(Box::new(e)))?
        .and_then(|email| address::validate(&email).ok());
    let Some(address) = known else {
        let mut form = form::for_document(app, document);
        form.intro = Some(texts::RENEW_ASK_ADDRESS.to_owned());
        return Ok(Renewal::AskAddress(form::render(
            app,
            &form,
            StatusCode::OK,
        )));
    };

    let masked = mask(address.as_ref());
    request.mail(app, document, address).await?;
    if document.approval {
        // A new link to such a document waits for the owner's decision too.
        let back = format!("{}/request/{}", app.config.public_path(), document.id);
        return Ok(Renewal::Sent(pages::review(&back).response(
            StatusCode::ACCEPTED,
            &app.config.recipients.cors_origins,
        )));
    }
    let message = texts::renewed(
        &masked,
        &duration(document.link_ttl_or(app.config.token_ttl).as_secs()),
    );
    let back = format!("{}/request/{}", app.config.public_path(), document.id);
    Ok(Renewal::Sent(
        pages::request_sent(&message, &back)
            .response(StatusCode::ACCEPTED, &app.config.recipients.cors_origins),
    ))
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
