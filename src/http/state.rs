//! What the HTTP layer holds for the running service: the service itself ([`App`]) and the
//! state only serving needs, the concurrent download caps, the checks of the downloads streaming
//! now, the readiness probe's cache and the watermarked documents' structures.
//!
//! One [`State`] per running service, shared by both listeners (`http::serve` and
//! `http::serve_with` take the same `Arc<State>`), so the download caps count every download of
//! the process and both listeners' probes share one readiness check.

use std::sync::Arc;

use super::admission::Downloads;
use super::health::Readiness;
use super::stamp::Stamps;
use super::watch::Watch;
use crate::app::{App, RENEW_EVERY};

/// The server's state: the service, plus the download caps and the readiness cache.
pub struct State {
    pub app: Arc<App>,
    /// Downloads streaming now, in all and per client: the concurrent download caps.
    pub downloads: Downloads,
    /// The streaming downloads' claim renewals and minimum-rate checks.
    pub watch: Watch,
    /// The readiness probe's short cache.
    pub readiness: Readiness,
    /// Watermarked documents' structures, read once per version.
    pub stamps: Stamps,
}

impl State {
    /// The server state for `app`, with its configured download caps.
    pub fn new(app: Arc<App>) -> Arc<Self> {
        let downloads = Downloads::new(
            app.config.http.max_downloads,
            app.config.http.max_downloads_per_ip,
        );
        // A tick fine enough for the renewals (no longer than their interval, see
        // `app::RENEWAL_GAP`) and the minimum rate's window.
        let tick = RENEW_EVERY.min(app.config.http.download_rate_window);
        Arc::new(Self {
            watch: Watch::new(tick),
            app,
            downloads,
            readiness: Readiness::default(),
            stamps: Stamps::default(),
        })
    }
}
