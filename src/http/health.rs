//! `GET /healthz` (the process serves) and `GET /readyz` (its backends answer).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use http::{Response, StatusCode};

use super::Body;
use super::error::json;
use crate::app::App;

/// How long a readiness probe waits for each backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: answering at all is the check.
pub fn live() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// Readiness: `200` when the token store and the object source both answer in time, `503`
/// otherwise. The body says which failed, never why (causes go to the log).
pub async fn ready(app: &App) -> Response<Body> {
    if app.is_draining() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "draining" }),
        );
    }
    let (store, objects) = tokio::join!(
        probe("token store", app.backends.store.ping()),
        probe("object store", app.backends.objects.ping()),
    );
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let status = if store && objects {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({
            "status": if status == StatusCode::OK { "ready" } else { "unavailable" },
            "checks": { "token_store": word(store), "object_store": word(objects) },
        }),
    )
}

/// True when `check` succeeds within [`PROBE_TIMEOUT`]; a failure is logged with its cause.
async fn probe<E: Display>(name: &str, check: impl Future<Output = Result<(), E>>) -> bool {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(backend = name, cause = %e, "readiness check failed");
            false
        }
        Err(_) => {
            tracing::warn!(backend = name, "readiness check timed out");
            false
        }
    }
}
