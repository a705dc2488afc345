//! What the HTTP layer holds for the running service: the service itself ([`App`]) and the
//! state only serving needs, the concurrent download caps, the readiness probe's cache and the
//! watermarked documents' structures.
//!
//! One [`State`] per running service, shared by both listeners (`http::serve` and
//! `http::serve_with` take the same `Arc<State>`), so the download caps count every download of
//! the process and both listeners' probes share one readiness check.

use std::sync::Arc;

use super::admission::Downloads;
use super::health::Readiness;
use super::stamp::Stamps;
use crate::app::App;

/// The server's state: the service, plus the download caps and the readiness cache.
pub struct State {
    pub app: Arc<App>,
    /// Downloads streaming now, in all and per client: the concurrent download caps.
    pub downloads: Downloads,
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
        Arc::new(Self {
            app,
            downloads,
            readiness: Readiness::default(),
            stamps: Stamps::default(),
        })
    }
}
