//! docgate gates document downloads behind emailed, signed, single-use links, and streams the
//! bytes from a private store through itself.
//!
//! # Layout
//!
//! - [`config`]: every environment variable, parsed and validated once at startup.
//! - [`secret`]: bytes never printed (keys, passwords, URLs with credentials).
//! - [`catalog`]: the documents on offer (`catalog.toml`), ids, keys and filenames checked.
//! - [`token`]: signing and verifying link tokens (JWT, HS256). Pure: no I/O, no clock.
//! - [`address`]: email address validation (syntax, domain, disposable providers).
//! - [`store`]: the single-use state of links, behind the `TokenStore` trait.
//! - [`ratelimit`]: GCRA rate limits per client IP, per mailbox and per domain, behind
//!   `RateLimiter`.
//! - [`pacing`]: unmailed link requests answered in the time mailed ones take.
//! - [`objects`]: document bytes, streamed in chunks, behind `ObjectSource`.
//! - [`range`]: `Range` / `If-Range` parsing and selection.
//! - [`mail`]: composing the link mail and the owner's notice; the SMTP transport.
//! - [`notify`]: what the owner learns of a completed download; the signed webhook.
//! - [`outbox`]: every mail and webhook call as a job behind `Outbox`, delivered now or through
//!   the durable Redis queue, by one `Deliverer`.
//! - [`texts`]: every text a person reads (the mails', the pages', the API's), for translators.
//! - [`pages`]: the HTML a person sees: request form, confirm page, outcome pages.
//! - [`requestlog`]: the owner's record of who asked and who downloaded, behind `RequestLog`;
//!   export, erasure and retention of it.
//! - [`link`]: issuing a link (a person's request within the limits, or an operator's mint),
//!   mailed or handed over, with its request log entry.
//! - [`admin`]: operator actions (mint, revoke, read, export or erase the request log) for the
//!   admin API and CLI.
//! - [`app`]: the shared state, and the choice of implementation behind each trait.
//! - [`http`]: the hyper server, routes, response bodies, and the one error-to-response mapping.
//! - [`metrics`]: the Prometheus metrics served on the admin listener.
//! - [`pseudonym`]: the keyed identifiers (HMAC) of addresses and networks that are stored or
//!   logged.
//! - [`telemetry`]: logging setup, and redaction of personal data in logs.
//! - [`check`]: `docgate check`, reaching every backend and looking for dangerous settings.
//! - [`migrate`]: `docgate migrate-keys`, moving an older version's Redis keys to the
//!   hash-tagged layout.
//! - [`cli`]: the `docgate` command's arguments and subcommands, and what they print.
//! - [`shutdown`]: waiting for SIGTERM or SIGINT.
//! - [`json`]: JSON read from clients, refusing objects that repeat a key.
//! - [`watermark`]: stamping a PDF with its recipient by an incremental update appended to the
//!   unchanged original.
//! - [`units`], [`html`]: small shared helpers.
//! - [`heap`]: the allocator's thresholds, set once at startup.
//! - [`sched`]: the admin listener's thread asks the kernel for short time slices.

// No `unsafe` anywhere but the allocator call in `heap` and the scheduler's in `sched`, each of
// which allows it for itself.
#![deny(unsafe_code)]

pub mod address;
pub mod admin;
pub mod app;
pub mod approval;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod config;
pub mod heap;
pub mod html;
pub mod http;
pub mod json;
pub mod link;
pub mod mail;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod objects;
pub mod outbox;
pub mod pacing;
pub mod pages;
pub mod pseudonym;
pub mod range;
pub mod ratelimit;
pub mod requestlog;
pub mod sched;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod texts;
pub mod token;
pub mod topology;
pub mod units;
pub mod watermark;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use app::{App, Backends};
use config::{Config, ConfigError, ENV_ADMIN_LISTEN, ENV_LISTEN};
use outbox::queue::Sender;
use shutdown::Signal;
use token::TokenCodec;

/// How long a shutdown waits, after the drain, for the admin listener, the background work
/// (claim releases, request log lines) and the mail sender's delivery in progress.
const FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The running service: the shared state, and the background work beside the HTTP server.
pub struct Service {
    pub app: Arc<App>,
    /// Delivers the durable mail queue, when mail goes through Redis.
    pub sender: Option<Sender>,
}

/// Builds the service on the backends the configuration names.
pub async fn build(config: Config) -> Result<Service, ConfigError> {
    build_with(config, |_| {}).await
}

/// As [`build`], letting the caller change the configured backends before the service is
/// assembled: an embedder (the tests) puts in an implementation it holds a handle to, e.g. its
/// own [`store::memory::MemoryStore`] to inspect.
pub async fn build_with(
    config: Config,
    adjust: impl FnOnce(&mut Backends),
) -> Result<Service, ConfigError> {
    let catalog = App::load_catalog(&config)?;
    let codec = Arc::new(
        TokenCodec::new(&config.token)
            .map_err(|e| ConfigError::hidden(config::ENV_TOKEN_SIGNING_KID, e))?,
    );
    let mut built = Backends::from_config(&config, codec.clone()).await?;
    adjust(&mut built.backends);
    Ok(Service {
        app: Arc::new(App::new(config, catalog, codec, built.backends).await?),
        sender: built.sender,
    })
}

impl Service {
    /// Serves `listener` and runs the mail sender until `shutdown` resolves; then drains the
    /// server and lets the sender finish the delivery in progress.
    ///
    /// On [`Signal::Terminate`] readiness turns `503` at once and the listener keeps accepting for
    /// `DOCGATE_SHUTDOWN_DELAY`, so load balancers stop sending new clients before connections
    /// are refused; then in-flight downloads drain.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = Signal>,
    ) -> std::io::Result<()> {
        let stop = CancellationToken::new();
        let app = self.app.clone();
        let stopping = stop.clone();
        let shutdown = async move {
            let signal = shutdown.await;
            app.start_draining();
            let delay = app.config.shutdown_delay;
            if signal == Signal::Terminate && !delay.is_zero() {
                tracing::info!(
                    delay = ?delay,
                    "readiness is 503; accepting connections until load balancers catch up"
                );
                tokio::time::sleep(delay).await;
            }
            // The sender hands its jobs back and the admin listener drains while downloads do,
            // so the whole stop fits in the delay plus the drain timeout.
            stopping.cancel();
        };
        let sender = self.sender.map(|sender| {
            let stop = stop.clone();
            tokio::spawn(async move { sender.run(stop.cancelled_owned()).await })
        });
        // Retention: entries past it are deleted now and every hour.
        let sweeper = self.app.config.request_log_retention.map(|keep| {
            let log = self.app.backends.requests.clone();
            tokio::spawn(requestlog::sweep(log, keep, stop.clone()))
        });
        let tasks = self.app.tasks.clone();
        // One server state for both listeners: one set of download caps, one readiness cache.
        let state = http::State::new(self.app.clone());
        let admin = tokio::spawn(http::serve_with(
            state.clone(),
            listeners.admin,
            stop.clone().cancelled_owned(),
            http::admin::handle,
            // The admin listener speaks HTTP/1.1 only: Prometheus, probes and the CLI use it.
            false,
        ));
        let result = http::serve(state, listeners.public, shutdown).await;
        stop.cancel();
        tasks.close();
        let finish = async {
            match admin.await {
                Ok(Err(e)) => tracing::warn!(cause = %e, "the admin listener failed"),
                Err(e) => tracing::warn!(cause = %e, "the admin listener panicked"),
                Ok(Ok(())) => {}
            }
            tasks.wait().await;
            if let Some(task) = sender {
                let _ = task.await;
            }
            if let Some(task) = sweeper {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(FINISH_TIMEOUT, finish).await.is_err() {
            tracing::warn!(
                "background work (claim releases, request log, the mail sender) did not finish \
                 in time; queued mail is taken over by another replica"
            );
        }
        result
    }
}

/// The service's two listeners.
pub struct Listeners {
    /// Recipients, the ingress and health probes.
    pub public: TcpListener,
    /// Metrics and the admin API.
    pub admin: TcpListener,
}

/// Binds both listeners named by the configuration.
pub async fn bind(config: &Config) -> Result<Listeners, ConfigError> {
    let public = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ConfigError::value(ENV_LISTEN, &config.listen.to_string(), e))?;
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| ConfigError::value(ENV_ADMIN_LISTEN, &config.admin_listen.to_string(), e))?;
    Ok(Listeners { public, admin })
}
