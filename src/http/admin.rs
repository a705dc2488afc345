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
        ("/metrics", &Method::GET | &Method::HEAD) => Ok(scrape(&app).await),
        ("/metrics", _) => Err(Error::MethodNotAllowed { allow: "GET, HEAD" }),
        _ => Err(Error::NotFound),
    };
    let mut response = result.unwrap_or_else(|e| e.into_response(false));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The metrics exposition, with the mail queue's gauges refreshed.
async fn scrape(app: &App) -> Response<Body> {
    match app.backends.mailer.backlog().await {
        Ok(Some(depth)) => {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            app.metrics
                .mail_queue_depth
                .set(gauge(depth.queued.saturating_add(depth.retrying)));
            app.metrics.mail_dead_letters.set(gauge(depth.dead));
        }
        Ok(None) => {}
        // A scrape still answers: the store-error metrics tell the outage.
        Err(e) => tracing::debug!(cause = %e, "mail queue depth unknown"),
    }
    let mut response = Response::new(full(app.metrics.render()));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}
