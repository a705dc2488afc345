//! `GET /healthz` (the process serves) and `GET /readyz` (its backends answer), on both listeners:
//! the Kubernetes probes use the admin listener, which a flood of the public port cannot reach.
//!
//! The admin listener answers `/healthz` on a thread of its own (see [`super::serve_with`]), so
//! downloads keeping the serving runtime's workers busy do not delay it; it then answers from a
//! [`Heartbeat`] that a task on the serving runtime keeps: a runtime that has stopped running
//! tasks fails the probe instead of being reported alive by the other thread.
//!
//! Readiness answers from [`Readiness`], a short cache: concurrent callers share one in-flight
//! check, so however many ask, the backends see at most one token store `PING` and one object
//! store check per [`READY_CACHE`].

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderValue, Method, Response, StatusCode, header};
use tokio::time::{Instant, MissedTickBehavior};

use super::Body;
use super::State;
use super::error::{Error, json};
use crate::app::App;

/// How long a readiness probe waits for each backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one readiness check answers for.
pub const READY_CACHE: Duration = Duration::from_secs(1);

/// How often the serving runtime's heartbeat task beats.
const BEAT: Duration = Duration::from_millis(100);

/// How long without a beat before the admin listener's `/healthz` answers `503`: far above any
/// queueing behind downloads (milliseconds), within a kubelet's patience (by default three
/// failed probes, 10 s apart).
pub const STALLED_AFTER: Duration = Duration::from_secs(5);

/// Proof that the serving runtime runs tasks: a task on it records the time every [`BEAT`].
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Beats>);

#[derive(Debug)]
struct Beats {
    origin: std::time::Instant,
    /// Milliseconds from `origin` to the last beat.
    last: AtomicU64,
}

impl Beats {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Heartbeat {
    /// Starts beating on `runtime`; the task ends once every clone of the heartbeat is dropped.
    pub fn start(runtime: &tokio::runtime::Handle) -> Self {
        let beats = Arc::new(Beats {
            origin: std::time::Instant::now(),
            last: AtomicU64::new(0),
        });
        let watched = Arc::downgrade(&beats);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(BEAT);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(beats) = watched.upgrade() else {
                    break;
                };
                beats.last.store(beats.now(), Ordering::Relaxed);
            }
        });
        Self(beats)
    }

    /// True when the serving runtime has not beaten for [`STALLED_AFTER`].
    pub fn stalled(&self) -> bool {
        let beats = &self.0;
        let since = beats
            .now()
            .saturating_sub(beats.last.load(Ordering::Relaxed));
        Duration::from_millis(since) > STALLED_AFTER
    }
}

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

/// Liveness when the serving runtime has stopped running tasks: `503`.
pub fn stalled() -> Response<Body> {
    let mut response = json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({ "status": "stalled" }),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_older_than_the_limit_is_stalled() {
        let long_ago = std::time::Instant::now()
            .checked_sub(STALLED_AFTER * 2)
            .unwrap();
        let beats = |last: u64| {
            Heartbeat(Arc::new(Beats {
                origin: long_ago,
                last: AtomicU64::new(last),
            }))
        };
        assert!(beats(0).stalled(), "no beat since twice the limit");
        let recent = beats(0).0.now();
        assert!(!beats(recent).stalled(), "a beat just now");
    }

    #[tokio::test]
    async fn the_serving_runtime_beats_until_the_heartbeat_is_dropped() {
        let heartbeat = Heartbeat::start(&tokio::runtime::Handle::current());
        tokio::time::sleep(BEAT * 3).await;
        assert!(heartbeat.0.last.load(Ordering::Relaxed) > 0, "it beat");
        assert!(!heartbeat.stalled());
        let watched = Arc::downgrade(&heartbeat.0);
        drop(heartbeat);
        assert!(
            watched.upgrade().is_none(),
            "the task holds no beat of its own"
        );
    }
}
