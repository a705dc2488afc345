//! The admin listener: `GET /metrics` for Prometheus. Bound to loopback by default and never
//! routed by the ingress; it answers nothing a recipient may see.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::error::Error;
use super::{Body, full};
use crate::app::App;
use crate::metrics;

/// Routes one admin request.
pub async fn handle(app: Arc<App>, _peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let result = match (req.uri().path(), req.method()) {
        ("/metrics", &Method::GET | &Method::HEAD) => Ok(scrape(&app)),
        ("/metrics", _) => Err(Error::MethodNotAllowed { allow: "GET, HEAD" }),
        _ => Err(Error::NotFound),
    };
    let mut response = result.unwrap_or_else(|e| e.into_response(false));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The metrics exposition.
fn scrape(app: &App) -> Response<Body> {
    let mut response = Response::new(full(app.metrics.render()));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}
