//! `POST /d/{token}` with `renew=1`: the expired page's one-click "email me a new link".
//!
//! The expired link's signature is still checked, so only a genuine link asks. A new link to the
//! same document goes to the address the expired one was sent to, never to anyone else. Where
//! that address is no longer known, the person gets the request form for the document instead.

use std::net::IpAddr;

use http::{Response, StatusCode};

use super::Body;
use super::error::Error;
use super::form;
use crate::app::App;
use crate::texts::pages as texts;
use crate::token::Claims;

/// Answers a renewal of the expired link `claims`.
pub async fn handle(app: &App, claims: &Claims, _client: IpAddr) -> Result<Response<Body>, Error> {
    let document = app.catalog.get(&claims.doc).ok_or(Error::DocumentGone)?;
    let mut form = form::for_document(app, document);
    form.intro = Some(texts::RENEW_ASK_ADDRESS.to_owned());
    Ok(form::render(app, &form, StatusCode::OK))
}
