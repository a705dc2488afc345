//! The request form: `GET /` offers every document in the catalog, `GET /request/{document}` one.
//!
//! The form posts to `POST /api/download-requests` and works without script: the answer is then a
//! page ("check your inbox", or the form again with each field's problem beside it). With script,
//! it posts in the background and shows the answer in place. Sites listed in
//! `DOCGATE_CORS_ORIGINS` may embed the form in a frame or post to the endpoint from their own
//! pages with script ([`cors`]).

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::Body;
use super::error::Error;
use super::page::PageResponse;
use crate::app::App;
use crate::catalog::Document;
use crate::pages::{Choice, Form};
use crate::texts::pages as texts;

/// `GET /` or `GET /request/{document}`.
pub fn handle(app: &App, path: &str) -> Result<Response<Body>, Error> {
    let form = match path.strip_prefix("/request/") {
        Some(id) => {
            let id = id.strip_suffix('/').unwrap_or(id);
            let document = app.catalog.get(id).ok_or(Error::UnknownDocument)?;
            for_document(app, document)
        }
        None => all_documents(app),
    };
    Ok(render(app, &form, StatusCode::OK))
}

/// The form offering every document.
pub fn all_documents(app: &App) -> Form {
    Form {
        documents: app
            .catalog
            .iter()
            .map(|d| Choice {
                id: d.id.clone(),
                title: d.title.clone(),
            })
            .collect(),
        ..base(app)
    }
}

/// The form for one document.
pub fn for_document(app: &App, document: &Document) -> Form {
    Form {
        documents: vec![Choice {
            id: document.id.clone(),
            title: document.title.clone(),
        }],
        document: Some(document.id.clone()),
        heading: Some(texts::form_heading(&document.title)),
        ..base(app)
    }
}

fn base(app: &App) -> Form {
    Form {
        privacy_url: app.config.privacy_url.clone(),
        base: app.config.public_path().to_owned(),
        ..Form::default()
    }
}

/// The form page with `status`, framable by the configured origins.
pub fn render(app: &App, form: &Form, status: StatusCode) -> Response<Body> {
    form.page()
        .response(status, &app.config.recipients.cors_origins)
}

/// Cross-origin access to the link request endpoint, for the origins in `DOCGATE_CORS_ORIGINS`.
pub mod cors {
    use super::*;

    /// The request's `Origin`, when it is one of the configured origins.
    pub fn allowed<'a>(app: &'a App, headers: &HeaderMap) -> Option<&'a str> {
        let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
        app.config
            .recipients
            .cors_origins
            .iter()
            .find(|o| o.eq_ignore_ascii_case(origin))
            .map(String::as_str)
    }

    /// Answers a preflight (`OPTIONS /api/download-requests`): allowed origins may `POST` JSON or
    /// a form; any other origin is refused.
    pub fn preflight(app: &App, headers: &HeaderMap) -> Result<Response<Body>, Error> {
        let origin = allowed(app, headers).ok_or(Error::CrossSiteRequest)?;
        let mut response = Response::new(super::super::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        allow(&mut response, origin);
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, accept"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        Ok(response)
    }

    /// Lets `origin`'s script read `response`.
    pub fn allow(response: &mut Response<Body>, origin: &str) {
        let h = response.headers_mut();
        if let Ok(value) = HeaderValue::try_from(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}
