//! The service's metrics, served as Prometheus (OpenMetrics) text on the admin listener.
//!
//! One [`Metrics`] per running service, held by the `App`, so tests that run several servers in
//! one process each see their own counts. Every label value comes from a small fixed set (an
//! error code, an outcome, a route): never an address, a token or a path a client chose.
//!
//! The funnel reads left to right: `docgate_link_requests_total{outcome="sent"}` (mailed),
//! `docgate_link_pages_total` (a link's confirm page opened: by its recipient, or by a mail
//! scanner), `docgate_downloads_started_total`, `docgate_downloads_total{outcome="completed"}`; each step's
//! failures carry their reason in the same families.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// One label: an outcome, a reason or a limit, from a fixed set of codes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Label {
    pub outcome: &'static str,
}

/// The rate limits' names (`ratelimit::Scope::tag`), counted from zero in
/// `docgate_rate_limited_total`. Metrics names no other module: every layer uses it.
pub const LIMITS: [&str; 6] = [
    "req-ip",
    "req-email",
    "req-domain",
    "dl-ip",
    "mail",
    "owner-login",
];

/// One label naming a rate limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Limit {
    pub limit: &'static str,
}

/// Responses by route family and status class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Response {
    pub route: &'static str,
    pub status: u16,
}

/// An owner's notice: how it went, by channel.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Notified {
    /// `mail` or `webhook`.
    pub channel: &'static str,
    pub outcome: &'static str,
}

/// The build's identity, as an info metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Build {
    version: &'static str,
}

/// Every metric docgate exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Link requests by outcome: `sent`, `not_sent_address_limit`, `not_sent_domain_limit`,
    /// `not_sent_domain_refused`, `not_sent_domain_not_allowed`, `pending_approval`,
    /// or the error code.
    pub link_requests: Family<Label, Counter>,
    /// Downloads that claimed their link and started streaming.
    /// Confirm pages shown for a link (`GET` from a browser or a mail scanner; nothing spent).
    pub link_pages: Counter,
    pub downloads_started: Counter,
    /// Finished downloads by outcome: `completed`, `partial`, `interrupted`, `failed`.
    pub downloads: Family<Label, Counter>,
    /// Downloads refused before streaming, by error code (`link_used`, `invalid_link`, ...).
    pub download_refusals: Family<Label, Counter>,
    /// Downloads streaming now.
    pub downloads_in_flight: Gauge,
    /// How long downloads streamed, start to end.
    pub download_duration: Histogram,
    /// Document bytes sent to clients.
    pub download_bytes: Counter,
    /// Requests refused by a rate limit, by limit.
    pub rate_limited: Family<Limit, Counter>,
    /// Responses by route family and status.
    pub responses: Family<Response, Counter>,
    /// Time from asking the object source to its first byte.
    pub object_first_byte: Histogram,
    /// Token store operation latency, by operation.
    pub store_seconds: Family<Operation, Histogram>,
    /// Token store and rate limiter failures, by operation: each failed a request closed.
    pub store_errors: Family<Operation, Counter>,
    /// Mail deliveries by outcome: `sent`, `retried`, `dead_lettered`, `expired`.
    pub mail: Family<Label, Counter>,
    /// Mails waiting: queued, or scheduled for a retry (refreshed at each scrape).
    pub mail_queue_depth: Gauge,
    /// Mails in the dead letters (refreshed at each scrape).
    pub mail_dead_letters: Gauge,
    /// Owner's notices of completed downloads by channel and outcome: `sent`, `retried`,
    /// `dead_lettered`, `expired`, `dropped` (never queued, or given up without a queue).
    pub notifications: Family<Notified, Counter>,
}

/// One label naming a store operation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Operation {
    pub operation: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("docgate");
        let link_requests = Family::<Label, Counter>::default();
        registry.register(
            "link_requests",
            "Link requests, by outcome (sent, not_sent_address_limit, not_sent_domain_limit, not_sent_domain_refused, not_sent_domain_not_allowed, pending_approval, or the error code)",
            link_requests.clone(),
        );
        let link_pages = Counter::default();
        registry.register(
            "link_pages",
            "Confirm pages shown for a link, before any download: opened by a person or a mail scanner",
            link_pages.clone(),
        );
        let downloads_started = Counter::default();
        registry.register(
            "downloads_started",
            "Downloads that claimed their link and started streaming",
            downloads_started.clone(),
        );
        let downloads = Family::<Label, Counter>::default();
        registry.register(
            "downloads",
            "Finished downloads, by outcome (completed, partial, interrupted, failed)",
            downloads.clone(),
        );
        let download_refusals = Family::<Label, Counter>::default();
        registry.register(
            "download_refusals",
            "Downloads refused before a byte was sent, by error code",
            download_refusals.clone(),
        );
        let downloads_in_flight = Gauge::default();
        registry.register(
            "downloads_in_flight",
            "Downloads streaming now",
            downloads_in_flight.clone(),
        );
        let download_duration = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        registry.register(
            "download_duration_seconds",
            "How long downloads streamed, from the claim to the last byte or the cut",
            download_duration.clone(),
        );
        let download_bytes = Counter::default();
        registry.register(
            "download_bytes",
            "Document bytes sent to clients",
            download_bytes.clone(),
        );
        let rate_limited = Family::<Limit, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by limit",
            rate_limited.clone(),
        );
        let responses = Family::<Response, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses on the public listener, by route family and status",
            responses.clone(),
        );
        let object_first_byte = Histogram::new(exponential_buckets(0.001, 3.0, 10));
        registry.register(
            "object_first_byte_seconds",
            "Time from asking the object source for a document to its first byte",
            object_first_byte.clone(),
        );
        let store_seconds = Family::<Operation, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 3.0, 10))) as fn() -> Histogram,
        );
        registry.register(
            "store_operation_seconds",
            "Token store operation latency, by operation",
            store_seconds.clone(),
        );
        let store_errors = Family::<Operation, Counter>::default();
        registry.register(
            "store_errors",
            "Token store and rate limiter failures, by operation; each failed a request closed",
            store_errors.clone(),
        );
        let mail = Family::<Label, Counter>::default();
        registry.register(
            "mail",
            "Mail deliveries, by outcome (sent, retried, dead_lettered, expired)",
            mail.clone(),
        );
        let mail_queue_depth = Gauge::default();
        registry.register(
            "mail_queue_depth",
            "Mails waiting to be delivered: queued, or scheduled for a retry",
            mail_queue_depth.clone(),
        );
        let mail_dead_letters = Gauge::default();
        registry.register(
            "mail_dead_letters",
            "Mails in the dead letters, waiting for an operator",
            mail_dead_letters.clone(),
        );
        let notifications = Family::<Notified, Counter>::default();
        registry.register(
            "notifications",
            "Owner's notices of completed downloads, by channel (mail, webhook) and outcome (sent, retried, dead_lettered, expired, dropped)",
            notifications.clone(),
        );
        registry.register(
            "build",
            "The running build",
            Info::new(Build {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        // Every known series starts at zero, so the first event after a start shows in `rate()`.
        for outcome in [
            "sent",
            "not_sent_address_limit",
            "not_sent_domain_limit",
            "not_sent_domain_refused",
            "not_sent_domain_not_allowed",
            "pending_approval",
        ] {
            let _ = link_requests.get_or_create(&Label { outcome });
        }
        for outcome in ["completed", "partial", "interrupted", "failed"] {
            let _ = downloads.get_or_create(&Label { outcome });
        }
        for outcome in ["sent", "retried", "dead_lettered", "expired"] {
            let _ = mail.get_or_create(&Label { outcome });
        }
        for channel in ["mail", "webhook"] {
            for outcome in ["sent", "retried", "dead_lettered", "expired", "dropped"] {
                let _ = notifications.get_or_create(&Notified { channel, outcome });
            }
        }
        for operation in [
            "insert",
            "peek",
            "claim",
            "renew",
            "complete",
            "release",
            "revoke",
            "revoke_owner",
            "ping",
            "rate_limit",
        ] {
            let _ = store_errors.get_or_create(&Operation { operation });
        }
        for limit in LIMITS {
            let _ = rate_limited.get_or_create(&Limit { limit });
        }
        Self {
            registry,
            link_requests,
            link_pages,
            downloads_started,
            downloads,
            download_refusals,
            downloads_in_flight,
            download_duration,
            download_bytes,
            rate_limited,
            responses,
            object_first_byte,
            store_seconds,
            store_errors,
            mail,
            mail_queue_depth,
            mail_dead_letters,
            notifications,
        }
    }

    /// Counts one owner's notice on `channel` under `outcome`.
    pub fn notified(&self, channel: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&Notified { channel, outcome })
            .inc();
    }

    /// Counts a failed operation of the store or the limiter.
    pub fn store_error(&self, operation: &'static str) {
        self.store_errors
            .get_or_create(&Operation { operation })
            .inc();
    }

    /// Records one store operation.
    pub fn store_operation(&self, operation: &'static str, took: Duration, ok: bool) {
        let label = Operation { operation };
        self.store_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        if !ok {
            self.store_error(operation);
        }
    }

    /// Counts one event in `family` under `outcome`.
    pub fn count(family: &Family<Label, Counter>, outcome: &'static str) {
        family.get_or_create(&Label { outcome }).inc();
    }

    /// Counts a request a rate limit refused; `limit` is one of [`LIMITS`] (a
    /// `ratelimit::Scope` turns into its tag).
    pub fn limited(&self, limit: impl Into<&'static str>) {
        self.rate_limited
            .get_or_create(&Limit {
                limit: limit.into(),
            })
            .inc();
    }

    /// Counts one response on the public listener, and the document bytes of a download.
    pub fn responded(&self, route: &'static str, status: u16, bytes: u64) {
        self.responses
            .get_or_create(&Response { route, status })
            .inc();
        if route == "download" && matches!(status, 200 | 206) {
            self.download_bytes.inc_by(bytes);
        }
    }

    /// Records a finished download.
    pub fn download_finished(&self, outcome: &'static str, streamed_for: Duration) {
        Self::count(&self.downloads, outcome);
        self.downloads_in_flight.dec();
        self.download_duration.observe(streamed_for.as_secs_f64());
    }

    /// The exposition, in the OpenMetrics text format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_prefix_units_and_labels() {
        let metrics = Metrics::new();
        Metrics::count(&metrics.link_requests, "sent");
        Metrics::count(&metrics.link_requests, "sent");
        metrics.downloads_started.inc();
        metrics.downloads_in_flight.inc();
        metrics.download_finished("completed", Duration::from_millis(250));
        metrics.download_bytes.inc_by(1024);
        let text = metrics.render();
        for line in [
            "docgate_link_requests_total{outcome=\"sent\"} 2",
            "docgate_downloads_started_total 1",
            "docgate_downloads_total{outcome=\"completed\"} 1",
            "docgate_downloads_total{outcome=\"failed\"} 0",
            "docgate_mail_total{outcome=\"dead_lettered\"} 0",
            "docgate_notifications_total{channel=\"webhook\",outcome=\"dropped\"} 0",
            "docgate_store_errors_total{operation=\"claim\"} 0",
            "docgate_rate_limited_total{limit=\"mail\"} 0",
            "docgate_downloads_in_flight 0",
            "docgate_download_duration_seconds_count 1",
            "docgate_download_bytes_total 1024",
            "docgate_build_info{version=\"",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
