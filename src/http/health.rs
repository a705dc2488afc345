//! `GET /healthz` (the process serves) and `GET /readyz` (its backends answer), on both listeners:
//! the Kubernetes probes use the admin listener, which a flood of the public port cannot reach.
//!
//! Readiness answers from [`Readiness`], a short cache: concurrent callers share one in-flight
//! check, so however many ask, the backends see at most one token store `PING` and one object
//! store check per [`READY_CACHE`].

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use http::{Method, Response, StatusCode};
use tokio::time::Instant;

use super::Body;
use super::State;
use super::error::{Error, json};
use crate::app::App;

/// How long a readiness probe waits for each backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one readiness check answers for.
pub const READY_CACHE: Duration = Duration::from_secs(1);

/// The last readiness check and when it ended.
#[derive(Debug, Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, Checks)>>,
}

/// Which backends answered.
#[derive(Debug, Clone, Copy)]
struct Checks {
    store: bool,
    objects: bool,
}

impl Readiness {
    /// The last check if it is younger than [`READY_CACHE`], else a new one. Callers arriving
    /// while a check runs wait for it (the lock is held across it) and share its answer.
    async fn checks(&self, app: &App) -> Checks {
        let mut last = self.last.lock().await;
        if let Some((at, checks)) = *last
            && at.elapsed() < READY_CACHE
        {
            return checks;
        }
        let (store, objects) = tokio::join!(
            probe("token store", app.backends.store.ping()),
            probe("object store", app.backends.objects.ping()),
        );
        let checks = Checks { store, objects };
        *last = Some((Instant::now(), checks));
        checks
    }
}

/// Answers a probe path on either listener: `None` for any other path.
pub async fn route(
    state: &State,
    method: &Method,
    path: &str,
) -> Option<Result<Response<Body>, Error>> {
    let get = matches!(*method, Method::GET | Method::HEAD);
    match path {
        "/healthz" if get => Some(Ok(live())),
        "/readyz" if get => Some(Ok(ready(state).await)),
        "/healthz" | "/readyz" => Some(Err(Error::MethodNotAllowed { allow: "GET, HEAD" })),
        _ => None,
    }
}

/// Liveness: answering at all is the check.
pub fn live() -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// Readiness: `200` when the token store and the object source both answer in time, `503`
/// otherwise. The body says which failed, never why (causes go to the log).
pub async fn ready(state: &State) -> Response<Body> {
    if state.app.is_draining() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": "draining" }),
        );
    }
    let Checks { store, objects } = state.readiness.checks(&state.app).await;
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
