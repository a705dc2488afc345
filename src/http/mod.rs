//! The public HTTP listener: accepting connections, routing, security headers and the access log.
//!
//! Built directly on hyper 1.x through hyper-util's auto connection builder: HTTP/1.1, and HTTP/2
//! cleartext with prior knowledge only when `DOCGATE_H2C` is on (behind an ingress the hop is
//! HTTP/1.1, and a public h2c endpoint only widens what a client can make the server hold).
//! Each connection is watched by a [`GracefulShutdown`], so on SIGTERM the listener closes and
//! in-flight downloads run to completion (bounded by the drain timeout).
//!
//! Handlers live one file per route family: [`form`] (`GET /`, `GET /request/{document}`, and
//! CORS), [`request_link`] (`POST /api/download-requests`), [`download`] (`GET`/`POST`/`HEAD
//! /d/{token}`, with [`renew`] for the expired page's button), [`health`]. They return
//! `Result<Response, Error>` (the download handler its [`download::Answer`] or
//! [`download::Failure`], each with the link it learned); the router renders every failure
//! through [`error`], with that context, and writes the access log. [`State`] is what the
//! server holds: the service plus the download caps and the readiness cache.

pub mod admin;
pub mod admission;
pub mod approval;
pub mod body;
pub mod client;
pub mod confirm;
pub mod conn;
pub mod download;
pub mod download_headers;
pub mod error;
pub mod form;
pub mod health;
pub mod owner;
pub mod pace;
pub mod page;
pub mod renew;
pub mod request_link;
pub mod stamp;
pub mod state;
pub mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::ratelimit::{Decision, Key};
use crate::units::Rate;
use admission::PeerConnections;
use body::Logged;
use error::Error;
pub use state::State;

/// A boxed error from a response body: the transfer is aborted.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The most response data queued for one HTTP/1 connection's socket.
const MAX_QUEUED: usize = crate::objects::CHUNK_SIZE;

/// The most unsent bytes a connection's kernel buffer holds before the socket stops being
/// writable.
#[cfg(any(target_os = "linux", target_os = "android"))]
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// hyper's own default for the header count: below it, headers are parsed on the stack.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Reads a request body of at most `max` bytes that arrives in full within `deadline`: `413`
/// beyond the size, `408` past the deadline (a client trickling its body cannot hold the
/// connection), `400` when it cannot be read.
pub async fn read_body(body: Incoming, max: usize, deadline: Duration) -> Result<Bytes, Error> {
    let collected =
        tokio::time::timeout(deadline, http_body_util::Limited::new(body, max).collect())
            .await
            .map_err(|_| Error::BodyTimeout)?
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Error::TooLarge
                } else {
                    Error::invalid("body", crate::texts::pages::BODY_UNREADABLE)
                }
            })?;
    Ok(collected.to_bytes())
}

/// An empty body.
pub fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Serves the public routes on `listener` until `shutdown` resolves, then drains in-flight
/// requests for at most the configured drain timeout.
pub async fn serve(
    state: Arc<State>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = &state.app;
    // Anyone may connect here: one peer holds at most its share of the connections (the
    // trusted proxies excepted, every client comes through them).
    let peers = PeerConnections::new(
        app.config.http.max_connections_per_ip,
        app.config.trusted_proxies.clone(),
    );
    let h2c = app.config.http.h2c;
    serve_on(state, listener, shutdown, handle, Some(peers), h2c).await
}

/// Serves `listener` with `handler` under the configured connection limits, until `shutdown`
/// resolves; then drains. HTTP/1.1 only, unless `h2c`: then HTTP/2 with prior knowledge too.
///
/// The admin listener's server: it accepts, reads requests and answers `/healthz` on a thread of
/// its own (a current-thread runtime, with short time slices: [`crate::sched`]), so a kubelet's
/// liveness probe is answered within milliseconds however many downloads keep this runtime's
/// workers busy; that answer is `503`
/// once this runtime stops running tasks ([`health::Heartbeat`]). Every other route (metrics,
/// readiness, the admin API, the owner's page) runs here, on the runtime that called this, where
/// its backends' connections and background tasks live.
pub async fn serve_with<H, F>(
    state: Arc<State>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    handler: H,
    h2c: bool,
) -> std::io::Result<()>
where
    H: Fn(Arc<State>, SocketAddr, Request<Incoming>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let serving = tokio::runtime::Handle::current();
    let heartbeat = health::Heartbeat::start(&serving);
    // Dropped with this future (its runtime shut down, its task aborted): the thread stops too.
    let gone = tokio_util::sync::CancellationToken::new();
    let _stop_thread = gone.clone().drop_guard();
    let listener = listener.into_std()?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("docgate-admin".to_owned())
        .spawn(move || {
            // A probe's wake-up preempts the busy workers instead of waiting for its turn.
            let slice = crate::sched::prefer_short_slices();
            tracing::debug!(?slice, "the admin listener's thread scheduling slice");
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        let routed = move |state: Arc<State>, peer, req: Request<Incoming>| {
                            let serving = serving.clone();
                            let stalled = heartbeat.stalled();
                            async move {
                                if req.uri().path() != "/healthz" {
                                    return serving
                                        .spawn(handler(state, peer, req))
                                        .await
                                        .unwrap_or_else(|e| {
                                            Error::Internal(format!("admin request failed: {e}"))
                                                .into_response(false)
                                        });
                                }
                                if stalled {
                                    tracing::warn!(
                                        "liveness probe failed: the serving runtime has not run \
                                         its heartbeat for {STALLED:?}",
                                        STALLED = health::STALLED_AFTER
                                    );
                                    return health::stalled();
                                }
                                handler(state, peer, req).await
                            }
                        };
                        let shutdown = async move {
                            tokio::select! {
                                () = shutdown => {}
                                () = gone.cancelled() => {}
                            }
                        };
                        serve_on(state, listener, shutdown, routed, None, h2c).await
                    })
                });
            let _ = done.send(served);
        })?;
    finished
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the admin listener's thread failed")))
}

/// Serves `listener`, with `peers` capping each peer's connections when given.
async fn serve_on<H, F>(
    state: Arc<State>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handler: H,
    peers: Option<PeerConnections>,
    h2c: bool,
) -> std::io::Result<()>
where
    H: Fn(Arc<State>, SocketAddr, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let limits = state.app.config.http;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Without h2c, a client's HTTP/2 preface is not an HTTP/1 request: the connection is closed.
    if !h2c {
        builder = builder.http1_only();
    }
    let mut http1 = builder.http1();
    http1
        // hyper applies the header read timeout only with a timer; it also bounds how long an
        // idle keep-alive connection waits for its next request.
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // hyper keeps polling a body until this much is queued for the socket (default ~400 KiB
        // per connection). One chunk keeps a download's memory at about two chunks, whatever
        // the client's speed. It also caps request heads; `handle` applies the configured cap.
        .max_buf_size(MAX_QUEUED);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_send_buf_size(MAX_QUEUED)
        // Rapid reset (CVE-2023-44487): streams a client opens and cancels before they are
        // served, and streams reset because the client misbehaved, are both bounded; past
        // them the connection is closed with GOAWAY. The h2 release in use also bounds
        // CONTINUATION frames by the header list size.
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(256);
    // No keep-alive PINGs: they would count as traffic and keep an idle (or stalled) HTTP/2
    // connection alive past the idle deadline, which is what finds dead peers here.
    let deadlines = conn::Deadlines {
        write: limits.write_timeout,
        idle: limits.idle_timeout,
    };
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        // At the connection limit, stop accepting: further clients wait in the backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(cause = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Over its peer's share: closed before a byte of it is read, its place in the
                // global cap given back at once.
                let slot = match peers.as_ref().map(|peers| peers.admit(peer.ip())) {
                    Some(None) => {
                        tracing::debug!(client_ip = %peer.ip(), "connection refused: too many from this peer");
                        continue;
                    }
                    Some(Some(slot)) => slot,
                    None => None,
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(cause = %e, "TCP_NODELAY not set");
                }
                // Keep little unsent data in the kernel: the socket turns writable as soon as a
                // slow client takes a little, so the write deadline measures the client's
                // progress, not how long a large send buffer takes to drain.
                #[cfg(any(target_os = "linux", target_os = "android"))]
                if let Err(e) =
                    socket2::SockRef::from(&stream).set_tcp_notsent_lowat(NOTSENT_LOWAT)
                {
                    tracing::debug!(cause = %e, "TCP_NOTSENT_LOWAT not set");
                }
                let state = state.clone();
                let handler = handler.clone();
                let guarded = conn::Guarded::new(stream, deadlines);
                let cutter = guarded.cutter();
                let service = tower::service_fn(move |mut req: Request<Incoming>| {
                    let state = state.clone();
                    let handler = handler.clone();
                    req.extensions_mut().insert(cutter.clone());
                    async move { Ok::<_, Infallible>(handler(state, peer, req).await) }
                });
                // No upgrades: nothing docgate serves switches protocols (and the `_with_upgrades`
                // variant ignores `http1_only`).
                let conn = builder.serve_connection(
                    TokioIo::new(guarded),
                    TowerToHyperService::new(service),
                );
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(cause = %e, "connection ended with an error");
                    }
                    drop(slot);
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }

    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    let drain_timeout = state.app.config.drain_timeout;
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(timeout = ?drain_timeout, "drain timeout reached; closing remaining connections");
        }
    }
    Ok(())
}

/// What a route learned besides its result: what its error page needs, and what the access log
/// names.
#[derive(Default)]
struct Context<'a> {
    /// The link, for a download route whose token was genuine: its document's form is offered
    /// again on the error page, its id (the first characters) goes in the access log.
    link: Option<download::Link>,
    /// Origins that may frame the error page (the answers to the request form).
    frame_ancestors: &'a [String],
    /// The origin allowed to read the answer (CORS), for a link request.
    cors: Option<String>,
}

impl Context<'_> {
    fn of_link(link: Option<download::Link>) -> Self {
        Self {
            link,
            ..Self::default()
        }
    }
}

/// Routes one request, renders its error if it failed (the one place errors become responses,
/// with what the handler learned), and wraps the response with the common headers and the
/// access log.
async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let app = &state.app;
    let started = Instant::now();
    let method = req.method().clone();
    let client = client::client_ip(peer, req.headers(), &app.config.trusted_proxies);
    let html = client::wants_html(req.headers());
    let path = req.uri().path().to_owned();
    let route = if path.starts_with("/d/") {
        "/d/<redacted>".to_owned()
    } else if path.starts_with(approval::PREFIX) {
        format!("{}<redacted>", approval::PREFIX)
    } else {
        path.chars().take(100).collect()
    };

    let (result, context) = match (path.as_str(), &method) {
        _ if head_len(&req) > app.config.http.max_header_bytes => {
            (Err(Error::HeadersTooLarge), Context::default())
        }
        ("/api/download-requests", &Method::POST) => {
            let cors = form::cors::allowed(app, req.headers()).map(str::to_owned);
            let result = request_link::handle(app, req, client, html).await;
            let context = Context {
                frame_ancestors: &app.config.recipients.cors_origins,
                cors,
                ..Context::default()
            };
            (result, context)
        }
        ("/api/download-requests", &Method::OPTIONS) => (
            form::cors::preflight(app, req.headers()),
            Context::default(),
        ),
        // Only link requests carry a body.
        (p, &Method::GET | &Method::HEAD)
            if !req.body().is_end_stream()
                && (p.starts_with("/d/") || p == "/healthz" || p == "/readyz") =>
        {
            (Err(Error::BodyNotAllowed), Context::default())
        }
        ("/api/download-requests", _) => (
            Err(Error::MethodNotAllowed { allow: "POST" }),
            Context::default(),
        ),
        (p, &Method::GET | &Method::HEAD | &Method::POST) if p.starts_with("/d/") => {
            match download::handle(&state, req, client).await {
                Ok(answer) => (Ok(answer.response), Context::of_link(Some(answer.link))),
                Err(failure) => (Err(failure.error), Context::of_link(failure.link)),
            }
        }
        (p, _) if p.starts_with("/d/") => (
            Err(Error::MethodNotAllowed {
                allow: "GET, HEAD, POST",
            }),
            Context::default(),
        ),
        (p, &Method::GET | &Method::HEAD) if p == "/" || p.starts_with("/request/") => {
            (form::handle(app, p), Context::default())
        }
        (p, &Method::GET | &Method::HEAD | &Method::POST) if p.starts_with(approval::PREFIX) => {
            (approval::handle(app, req).await, Context::default())
        }
        (p, _) if p.starts_with(approval::PREFIX) => (
            Err(Error::MethodNotAllowed {
                allow: "GET, HEAD, POST",
            }),
            Context::default(),
        ),
        (p, _) if p == "/" || p.starts_with("/request/") => (
            Err(Error::MethodNotAllowed { allow: "GET, HEAD" }),
            Context::default(),
        ),
        (p, method) => (
            health::route(&state, method, p)
                .await
                .unwrap_or(Err(Error::NotFound)),
            Context::default(),
        ),
    };
    let mut response = result.unwrap_or_else(|e| {
        // A link's page offers to ask for its document again.
        let ask_again = context
            .link
            .as_ref()
            .map(|link| format!("{}/request/{}", app.config.public_path(), link.document));
        e.into_response_framed(html, ask_again.as_deref(), context.frame_ancestors)
    });
    if let Some(origin) = &context.cors {
        form::cors::allow(&mut response, origin);
    }

    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));

    let status = response.status();
    response.map(|body| {
        Logged::new(
            body,
            AccessLine {
                method,
                family: family(&path),
                metrics: app.metrics.clone(),
                route,
                status: status.as_u16(),
                client,
                link: context.link.map(|link| link.jti),
                started,
            },
        )
        .boxed_unsync()
    })
}

/// The size of a request's head as sent: request line and header fields.
fn head_len<B>(req: &Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + 11;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

/// Counts one event against `key` under `rate`. A limiter that cannot answer fails the request
/// closed (`503`) and is counted as a store error.
async fn limit(app: &App, key: &Key, rate: Rate) -> Result<Decision, Error> {
    app.backends.limiter.check(key, rate).await.map_err(|e| {
        app.metrics.store_error("rate_limit");
        Error::from(e)
    })
}

/// Counts one request against `key`, refusing it with `429` when over `rate`.
async fn enforce(app: &App, key: &Key, rate: Rate) -> Result<(), Error> {
    match limit(app, key, rate).await? {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            app.metrics.limited(key.scope());
            Err(Error::RateLimited { retry_after })
        }
    }
}

/// The route family of a path, for metrics: a fixed set, whatever the client asked for.
fn family(path: &str) -> &'static str {
    match path {
        "/api/download-requests" => "link_request",
        "/healthz" | "/readyz" => "health",
        p if p.starts_with("/d/") => "download",
        p if p.starts_with(approval::PREFIX) => "approval",
        p if p == "/" || p.starts_with("/request/") => "form",
        _ => "other",
    }
}

/// What the access log line of one request says, besides the bytes sent.
#[derive(Debug)]
pub struct AccessLine {
    pub method: Method,
    /// The route family, for metrics.
    pub family: &'static str,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The path, with tokens redacted.
    pub route: String,
    pub status: u16,
    pub client: IpAddr,
    /// The link, for download routes with a genuine token (logged by its first characters).
    pub link: Option<crate::token::Jti>,
    pub started: Instant,
}
