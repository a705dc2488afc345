//! The running service's shared state: configuration, catalog, token codec and one implementation
//! of each boundary trait, assembled once at startup and shared by every request.
//!
//! `http` sees only the traits. Which implementation sits behind each is decided here, in
//! [`Backends`], from the configuration.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::approval::Approvals;
use crate::approval::memory::MemoryApprovals;
use crate::approval::shared::RedisApprovals;
use crate::catalog::{Catalog, Document};
use crate::config::{
    Config, ConfigError, ENV_CATALOG, ENV_DOCUMENTS_DIR, ENV_OUTBOX_DIR, ENV_OWNER_WEBHOOK_URL,
    ENV_REQUEST_LOG, ENV_S3_BUCKET, ENV_SMTP_URL, RedisConfig, WaitReplicas,
};
use crate::mail::{Composer, MailError, smtp};
use crate::metrics::Metrics;
use crate::notify::webhook::Webhook;
use crate::objects::dir::DirSource;
use crate::objects::observed::ObservedObjects;
use crate::objects::s3::S3Source;
use crate::objects::{ObjectError, ObjectSource};
use crate::outbox::direct::Direct;
use crate::outbox::notice::Pending;
use crate::outbox::queue::{RedisOutbox, Sender, SenderSettings};
use crate::outbox::{Deliverer, Outbox};
use crate::pseudonym::Pseudonyms;
use crate::ratelimit::RateLimiter;
use crate::ratelimit::memory::MemoryLimiter;
use crate::ratelimit::shared::RedisLimiter;
use crate::requestlog::shared::RedisLog;
use crate::requestlog::{JsonLinesLog, RequestLog};
use crate::store::TokenStore;
use crate::store::memory::MemoryStore;
use crate::store::observed::ObservedStore;
use crate::store::shared::RedisStore;
use crate::token::Claims;
use crate::token::TokenCodec;
use crate::topology::{SETTLE_TIMEOUT, SharedConnection};

/// How long a download's claim on its link survives without renewal: a replica that dies
/// mid-download frees the link after this.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a streaming download renews its claim (and learns of a revocation).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// The longest from one renewal of a download's claim to the next while the store answers within
/// a tick: a renewal is due half a tick of the downloads' watch (`http::watch`, a tick no longer
/// than [`RENEW_EVERY`]) before `RENEW_EVERY` has passed, and is sent at the first tick after
/// that. When the store is slower, the download stops once its last renewal is `LEASE_TTL` less
/// this old (`http::body`), checked every tick.
pub const RENEWAL_GAP: Duration = Duration::from_millis(RENEW_EVERY.as_millis() as u64 * 3 / 2);

// A completion that waits its longest still answers for the lease it settles.
const _: () = assert!(SETTLE_TIMEOUT.as_millis() < LEASE_TTL.as_millis() - RENEWAL_GAP.as_millis());

/// One implementation of each boundary.
#[derive(Clone)]
pub struct Backends {
    pub store: Arc<dyn TokenStore>,
    pub limiter: Arc<dyn RateLimiter>,
    pub objects: Arc<dyn ObjectSource>,
    /// Where mails and the owner's webhook calls are submitted.
    pub outbox: Arc<dyn Outbox>,
    pub requests: Arc<dyn RequestLog>,
    /// Requests waiting for the owner's decision.
    pub approvals: Arc<dyn Approvals>,
    /// The service's metrics: the outbox's deliverer counts into them from the start.
    pub metrics: Arc<Metrics>,
}

/// The backends the configuration asks for, and the work to run beside them.
pub struct Built {
    pub backends: Backends,
    /// The mail queue's sender, to run beside the server, when mail goes through Redis.
    pub sender: Option<Sender>,
}

impl Backends {
    /// Each boundary's implementation as configured, chosen independently: Redis for the store and
    /// limiter and the request log when Redis is configured (any topology; else in process, and the
    /// log in `DOCGATE_REQUEST_LOG`); the S3 bucket when
    /// `DOCGATE_S3_BUCKET` is set (else the documents directory); for mail, SMTP through the
    /// durable Redis queue when both are set, SMTP directly without Redis, else the file outbox.
    pub async fn from_config(
        config: &Config,
        codec: Arc<TokenCodec>,
    ) -> Result<Built, ConfigError> {
        let objects: Arc<dyn ObjectSource> = match &config.s3 {
            Some(s3) => Arc::new(
                S3Source::new(s3)
                    .await
                    .map_err(|e| ConfigError::hidden(ENV_S3_BUCKET, e))?,
            ),
            None => Arc::new(DirSource::new(&config.documents_dir).map_err(|e| {
                ConfigError::value(
                    ENV_DOCUMENTS_DIR,
                    &config.documents_dir.display().to_string(),
                    e,
                )
            })?),
        };

        let ids = Arc::new(Pseudonyms::new(&config.pseudonyms));
        let redis = config
            .redis
            .as_ref()
            .map(RedisConnections::open)
            .transpose()?;
        let (store, limiter): (Arc<dyn TokenStore>, Arc<dyn RateLimiter>) = match &redis {
            Some(redis) => (
                Arc::new({
                    let store =
                        RedisStore::new(redis.conn.clone(), &redis.config.prefix, config.token_ttl)
                            .settling_on(redis.settle.clone());
                    match &redis.wait {
                        Some((wait, conn)) => store.with_wait(*wait, conn.clone()),
                        None => store,
                    }
                }),
                Arc::new(RedisLimiter::new(
                    redis.conn.clone(),
                    &redis.config.prefix,
                    ids.clone(),
                )),
            ),
            None => (Arc::new(MemoryStore::new()), Arc::new(MemoryLimiter::new())),
        };

        let metrics = Arc::new(Metrics::new());
        let composer = Composer::from_config(config, codec);
        let webhook = match &config.owner.webhook {
            Some(webhook) => Some(
                Webhook::new(webhook).map_err(|e| ConfigError::hidden(ENV_OWNER_WEBHOOK_URL, e))?,
            ),
            None => None,
        };
        let smtp_error = |e: MailError| ConfigError::hidden(ENV_SMTP_URL, e);
        let deliverer = match &config.smtp {
            Some(smtp) => Deliverer::smtp(smtp::transport(smtp).map_err(smtp_error)?, composer),
            None => Deliverer::files(&config.outbox_dir, composer).map_err(|e| {
                ConfigError::value(ENV_OUTBOX_DIR, &config.outbox_dir.display().to_string(), e)
            })?,
        }
        .with_webhook(webhook)
        .with_metrics(metrics.clone());
        // Jobs wait in the Redis stream when there is SMTP to deliver them to; else nowhere.
        let (outbox, sender): (Arc<dyn Outbox>, Option<Sender>) = match (&config.smtp, &redis) {
            (Some(_), Some(redis)) => {
                let outbox = RedisOutbox::new(redis.conn.clone(), &redis.config.prefix);
                let sender = Sender::new(
                    outbox.clone(),
                    redis.config.clone(),
                    deliverer,
                    SenderSettings::default(),
                );
                (Arc::new(outbox), Some(sender))
            }
            _ => (Arc::new(Direct::new(deliverer)), None),
        };
        // With Redis the log is shared by every replica there; the file is not written.
        let requests: Arc<dyn RequestLog> = match &redis {
            Some(redis) => {
                if config.request_log_set {
                    tracing::info!(
                        "the request log is kept in Redis: DOCGATE_REQUEST_LOG is not written"
                    );
                }
                Arc::new(
                    RedisLog::new(
                        redis.conn.clone(),
                        &redis.config.prefix,
                        config.request_log_retention,
                        ids,
                    )
                    .recording_on(redis.settle.clone())
                    .with_max_entries(config.request_log_max_entries),
                )
            }
            None => Arc::new(
                JsonLinesLog::open_with(&config.request_log, ids, config.request_log_max_entries)
                    .await
                    .map_err(|e| {
                        ConfigError::value(
                            ENV_REQUEST_LOG,
                            &config.request_log.display().to_string(),
                            e,
                        )
                    })?,
            ),
        };

        let approvals: Arc<dyn Approvals> = match &redis {
            Some(redis) => Arc::new(RedisApprovals::new(
                redis.conn.clone(),
                &redis.config.prefix,
            )),
            None => Arc::new(MemoryApprovals::new()),
        };

        Ok(Built {
            backends: Backends {
                store,
                limiter,
                objects,
                outbox,
                requests,
                approvals,
                metrics,
            },
            sender,
        })
    }
}

/// The connections to the configured Redis topology, opened once at startup and shared by every
/// backend kept there.
struct RedisConnections<'a> {
    config: &'a RedisConfig,
    /// For what admits or holds a download or a request (claims, limits, renewals, the request
    /// log's reads, the mail queue, approvals).
    conn: SharedConnection,
    /// With a longer response timeout ([`SETTLE_TIMEOUT`]), for what settles what has happened:
    /// a download's completion or release, the request log's records.
    settle: SharedConnection,
    /// With `WAIT`: how many replicas to wait for, and a connection of its own for the
    /// completions that wait for them (`WAIT` blocks the connection it is sent on).
    wait: Option<(WaitReplicas, SharedConnection)>,
}

impl<'a> RedisConnections<'a> {
    fn open(config: &'a RedisConfig) -> Result<Self, ConfigError> {
        let hidden = |e| ConfigError::hidden(config.topology.variable(), e);
        let conn = crate::topology::connect(config).map_err(hidden)?;
        let settle = conn.another(config, SETTLE_TIMEOUT).map_err(hidden)?;
        let wait = match config.wait {
            Some(wait) => Some((
                wait,
                settle.another(config, SETTLE_TIMEOUT).map_err(hidden)?,
            )),
            None => None,
        };
        Ok(Self {
            config,
            conn,
            settle,
            wait,
        })
    }
}

/// Everything a request needs.
pub struct App {
    pub config: Config,
    pub catalog: Catalog,
    pub codec: Arc<TokenCodec>,
    pub backends: Backends,
    /// Work a request leaves behind (releasing a claim, writing the request log): waited for at
    /// shutdown so nothing is lost when the process exits.
    pub tasks: TaskTracker,
    pub metrics: Arc<Metrics>,
    /// How long mailed link requests took lately, copied by the unmailed ones.
    pub pacing: crate::pacing::Pacing,
    /// Set once shutdown has begun: readiness answers `503` from then on.
    draining: std::sync::atomic::AtomicBool,
    /// The keyed identifiers of addresses and networks that are stored or logged.
    pub pseudonyms: Pseudonyms,
}

impl App {
    /// Assembles the service and checks that every catalog document exists in the object source.
    pub async fn new(
        config: Config,
        catalog: Catalog,
        codec: Arc<TokenCodec>,
        backends: Backends,
    ) -> Result<Self, ConfigError> {
        for document in catalog.iter() {
            match backends.objects.head(&document.key).await {
                Ok(_) => {}
                Err(ObjectError::NotFound) => {
                    let place = match &config.s3 {
                        Some(s3) => format!("bucket {}", s3.bucket),
                        None => config.documents_dir.display().to_string(),
                    };
                    return Err(ConfigError::value(
                        ENV_CATALOG,
                        &config.catalog.display().to_string(),
                        format!(
                            "document {:?} has no object {:?} in {place}",
                            document.id, document.key
                        ),
                    ));
                }
                Err(e) if config.s3.is_some() => {
                    // A bucket that is down at startup is an outage, not a configuration error:
                    // serve, report not ready, and let downloads answer 502 until it is back.
                    tracing::warn!(document = %document.id, cause = %e, "catalog object not checked: the bucket does not answer");
                }
                Err(e) => {
                    return Err(ConfigError::value(
                        ENV_DOCUMENTS_DIR,
                        &config.documents_dir.display().to_string(),
                        format!("document {:?} cannot be read: {e}", document.id),
                    ));
                }
            }
        }
        let metrics = backends.metrics.clone();
        let backends = Backends {
            store: Arc::new(ObservedStore::new(backends.store, metrics.clone())),
            objects: Arc::new(ObservedObjects::new(backends.objects, metrics.clone())),
            ..backends
        };
        Ok(Self {
            pseudonyms: Pseudonyms::new(&config.pseudonyms),
            config,
            catalog,
            codec,
            backends,
            tasks: TaskTracker::new(),
            metrics,
            pacing: crate::pacing::Pacing::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks the service as shutting down: readiness answers `503` from now on.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Loads the catalog named by the configuration.
    pub fn load_catalog(config: &Config) -> Result<Catalog, ConfigError> {
        Catalog::load(&config.catalog)
            .map_err(|e| ConfigError::value(ENV_CATALOG, &config.catalog.display().to_string(), e))
    }

    /// Seconds since the Unix epoch: the time tokens are minted and checked at.
    pub fn now(&self) -> u64 {
        crate::units::unix_now()
    }

    /// What to tell the owner if this download of `document` completes; `None` when no
    /// notification is configured. `http::download` sends it on `Outcome::Completed` only.
    pub fn download_notice(
        &self,
        claims: &Claims,
        document: &Document,
        client: std::net::IpAddr,
    ) -> Option<Pending> {
        let owner = &self.config.owner;
        owner.enabled().then(|| Pending {
            jti: claims.jti.clone(),
            doc: document.id.clone(),
            title: document.title.clone(),
            client_ip: client,
            owner: owner.email.clone(),
            webhook: owner.webhook.is_some(),
            requests: self.backends.requests.clone(),
            outbox: self.backends.outbox.clone(),
            metrics: self.metrics.clone(),
            tasks: self.tasks.clone(),
        })
    }

    /// How an address appears in diagnostic logs.
    pub fn pseudonym(&self, address: &str) -> String {
        self.pseudonyms.log(address)
    }
}
