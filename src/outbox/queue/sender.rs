//! The [`Sender`]: one per replica, it takes jobs from the queue's stream (as a member of the
//! consumer group), hands each to the [`Deliverer`], and moves it on: deleted once delivered, to
//! the retry set after a transient failure, to the dead letters when it will never go. It also
//! promotes due retries, takes over jobs of senders that died, and on shutdown hands back what
//! it had read. The whole life of a job is told in `docs/operations.md` ("The mail queue").

use std::future::Future;
use std::time::{Duration, Instant};

use redis::RedisError;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};

use super::codec::{Entry, F_KIND, Fields, dead_fields, now_ms};
use super::{GROUP, RedisOutbox};
use crate::config::RedisConfig;
use crate::outbox::Kind;
use crate::outbox::deliver::{Attempt, Deliverer};
use crate::topology::{SharedConnection, connect_with};
use crate::units::unix_now;

/// Pause after a Redis failure in the sender, doubling up to [`REDIS_PAUSE_MAX`].
const REDIS_PAUSE_MIN: Duration = Duration::from_millis(250);
const REDIS_PAUSE_MAX: Duration = Duration::from_secs(10);
/// How often a sender removes consumers that left without saying so.
const CONSUMER_GC_EVERY: Duration = Duration::from_secs(600);
/// Consumers with nothing pending and idle this long are removed.
const CONSUMER_GC_IDLE: Duration = Duration::from_secs(3600);
/// Deliveries one sender runs at once by default: below the SMTP connection pool's size (10).
pub const IN_FLIGHT: usize = 8;
/// How long a stopping sender spends handing its jobs back.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`Sender`] paces itself. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// Wait before the first retry after a transient failure; doubled per further failure.
    pub backoff_base: Duration,
    /// The longest wait between attempts.
    pub backoff_cap: Duration,
    /// How long one read of the stream blocks: bounds how late a stop or a due retry is noticed.
    pub block: Duration,
    /// A job pending this long under another consumer is taken over: that consumer is presumed
    /// dead. Must exceed `delivery_timeout`.
    pub claim_idle: Duration,
    /// The longest one delivery attempt (connect, TLS, every command) may take.
    pub delivery_timeout: Duration,
    /// How many jobs one sender delivers at once, each over its own pooled SMTP connection: an
    /// SMTP transaction is a few round trips (and, against many servers, a delayed `ACK`), so
    /// one at a time caps a replica at a few dozen mails per second.
    pub in_flight: usize,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            block: Duration::from_secs(1),
            claim_idle: Duration::from_secs(120),
            delivery_timeout: Duration::from_secs(60),
            in_flight: IN_FLIGHT,
        }
    }
}

impl SenderSettings {
    /// The wait after the `attempt`th failed attempt (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(self.backoff_cap)
            .min(self.backoff_cap)
    }
}

/// Delivers the queue: one per replica, run as a background task.
pub struct Sender {
    outbox: RedisOutbox,
    /// Where to open the dedicated connection for blocking reads: the same topology as
    /// `outbox`'s connection.
    redis: RedisConfig,
    /// Delivers each job read (and counts it).
    deliverer: Deliverer,
    settings: SenderSettings,
    /// This sender's name in the consumer group.
    consumer: String,
}

/// The sender's loop state.
struct State {
    /// The dedicated connection for blocking reads.
    reader: SharedConnection,
    group_ready: bool,
    /// Jobs the SMTP server accepted whose acknowledgement has not reached Redis yet.
    unacked: Vec<String>,
    claim_cursor: String,
    next_claim: Instant,
    next_gc: Instant,
}

impl Sender {
    /// A sender for `outbox`'s queue, handing each job to `deliverer`. `redis` is where it opens
    /// its dedicated connection for blocking reads (the same Redis as `outbox`'s connection).
    pub fn new(
        outbox: RedisOutbox,
        redis: RedisConfig,
        deliverer: Deliverer,
        settings: SenderSettings,
    ) -> Self {
        Self {
            outbox,
            redis,
            deliverer,
            settings,
            consumer: consumer_name(),
        }
    }

    /// This sender's consumer name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Delivers until `shutdown` completes, then finishes the delivery in progress, hands back
    /// what it had read and leaves the group. Redis and SMTP failures are logged and retried; this
    /// returns only on shutdown.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        // A read blocks for `block`; its answer may take that long, and a little more.
        let reader = match connect_with(&self.redis, self.settings.block + Duration::from_secs(5)) {
            Ok(reader) => reader,
            Err(e) => {
                tracing::error!(error = %e, "mail sender not started: no Redis connection");
                return;
            }
        };
        let now = Instant::now();
        let mut state = State {
            reader,
            group_ready: false,
            unacked: Vec::new(),
            claim_cursor: "0-0".to_owned(),
            next_claim: now,
            next_gc: now,
        };
        tracing::info!(consumer = %self.consumer, "mail sender started");

        let mut shutdown = std::pin::pin!(shutdown);
        let mut stopping = false;
        let mut failures = 0u32;
        while !stopping {
            // A step is never cut short: a delivery in progress is finished, and a blocking read
            // returns within `block`.
            let result = {
                let mut step = std::pin::pin!(self.step(&mut state));
                loop {
                    tokio::select! {
                        biased;
                        result = &mut step => break result,
                        () = &mut shutdown, if !stopping => stopping = true,
                    }
                }
            };
            match result {
                Ok(()) => failures = 0,
                Err(e) => {
                    state.group_ready = false;
                    failures = failures.saturating_add(1);
                    let pause = REDIS_PAUSE_MIN
                        .saturating_mul(2u32.saturating_pow(failures.min(16) - 1))
                        .min(REDIS_PAUSE_MAX);
                    let retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
                    tracing::warn!(error = %e, retry_in_ms, "mail queue unavailable");
                    if !stopping {
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = &mut shutdown => stopping = true,
                        }
                    }
                }
            }
        }
        if tokio::time::timeout(HAND_BACK_TIMEOUT, self.hand_back(&mut state))
            .await
            .is_err()
        {
            tracing::warn!("mail sender stopped without handing back its jobs: Redis too slow");
        }
        self.deliverer.shutdown().await;
        tracing::info!(consumer = %self.consumer, "mail sender stopped");
    }

    /// One round: pending acknowledgements, due retries, abandoned jobs, then one new job.
    async fn step(&self, state: &mut State) -> Result<(), RedisError> {
        self.flush_acks(state).await?;
        if !state.group_ready {
            self.outbox.ensure_group().await?;
            state.group_ready = true;
        }
        let promoted = self.outbox.promote().await?;
        if promoted > 0 {
            tracing::debug!(promoted, "mail retries due");
        }
        let now = Instant::now();
        if now >= state.next_gc {
            self.forget_consumers().await?;
            state.next_gc = now + CONSUMER_GC_EVERY;
        }
        if now >= state.next_claim {
            let reply = self.claim(&state.claim_cursor).await?;
            state.claim_cursor = reply.next_stream_id.clone();
            if let Some(entry) = reply.claimed.into_iter().next() {
                tracing::info!(id = %entry.id, "mail job taken over from a stopped sender");
                // Look again at once: more may be waiting.
                if let Some(delivered) = self.process(entry).await? {
                    state.unacked.push(delivered);
                }
                return self.flush_acks(state).await;
            }
            if state.claim_cursor == "0-0" {
                state.next_claim = now + self.claim_every();
            }
        }

        let mut reader = state.reader.clone();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.settings.in_flight.max(1))
            .arg("BLOCK")
            .arg(u64::try_from(self.settings.block.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&self.outbox.keys.queue)
            .arg(">")
            .query_async(&mut reader)
            .await?;
        // The jobs read are delivered at once; each ends on its own (delivered, rescheduled or
        // buried), and a Redis failure of one is reported once all have ended.
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        let ended = futures_util::future::join_all(entries.map(|entry| self.process(entry))).await;
        let mut failure = None;
        for result in ended {
            match result {
                Ok(Some(delivered)) => state.unacked.push(delivered),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        self.flush_acks(state).await?;
        failure.map_or(Ok(()), Err)
    }

    fn claim_every(&self) -> Duration {
        (self.settings.claim_idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    async fn claim(&self, cursor: &str) -> Result<StreamAutoClaimReply, RedisError> {
        let mut conn = self.outbox.conn.clone();
        redis::cmd("XAUTOCLAIM")
            .arg(&self.outbox.keys.queue)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(u64::try_from(self.settings.claim_idle.as_millis()).unwrap_or(u64::MAX))
            .arg(cursor)
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
    }

    async fn forget_consumers(&self) -> Result<(), RedisError> {
        let mut conn = self.outbox.conn.clone();
        let removed: i64 = self
            .outbox
            .scripts
            .forget_consumers
            .key(&self.outbox.keys.queue)
            .arg(GROUP)
            .arg(u64::try_from(CONSUMER_GC_IDLE.as_millis()).unwrap_or(u64::MAX))
            .arg(&self.consumer)
            .invoke_async(&mut conn)
            .await?;
        if removed > 0 {
            tracing::info!(removed, "idle mail consumers removed from the group");
        }
        Ok(())
    }

    /// Acknowledges delivered jobs whose acknowledgement failed before.
    async fn flush_acks(&self, state: &mut State) -> Result<(), RedisError> {
        while let Some(id) = state.unacked.first() {
            self.outbox.done(id).await?;
            state.unacked.remove(0);
        }
        Ok(())
    }

    /// Delivers one job, or moves it to the retry set or the dead letters. Returns the id of a
    /// delivered job, still to be acknowledged.
    async fn process(&self, entry: StreamId) -> Result<Option<String>, RedisError> {
        let id = entry.id.clone();
        let fields = Fields::from(&entry);
        let entry = match Entry::parse(&fields) {
            Ok(entry) => entry,
            Err(why) => {
                tracing::warn!(id, why, "unreadable mail job moved to the dead letters");
                let kind = fields
                    .get(F_KIND)
                    .and_then(Kind::from_tag)
                    .unwrap_or(Kind::Link);
                let mut dead = fields.0;
                dead.extend(dead_fields("invalid", why, 0));
                if self.outbox.bury(&id, &dead).await? {
                    self.deliverer.count(kind, "dead_lettered");
                }
                return Ok(None);
            }
        };
        let jti = entry.job.jti().short().to_owned();
        let kind = entry.job.kind();

        if entry.job.exp() <= unix_now() {
            if self
                .outbox
                .bury(&id, &entry.dead_fields("expired", "", entry.attempts))
                .await?
            {
                self.deliverer.count(kind, "expired");
                tracing::warn!(
                    jti,
                    kind = kind.tag(),
                    attempts = entry.attempts,
                    "{}",
                    match kind {
                        Kind::Link => "link expired before its mail was delivered: not sent",
                        _ => "download notice not delivered in time: not sent",
                    }
                );
            }
            return Ok(None);
        }

        let attempt = entry.attempts.saturating_add(1);
        let timeout = Some(self.settings.delivery_timeout);
        let error = match self.deliverer.attempt(&entry.job, timeout).await {
            Attempt::Delivered(_) => {
                let queued_ms = now_ms().saturating_sub(entry.enqueued_at);
                tracing::info!(jti, kind = kind.tag(), attempt, queued_ms, "mail delivered");
                return Ok(Some(id));
            }
            Attempt::Invalid { detail: why, .. } => {
                tracing::warn!(jti, kind = kind.tag(), error = %why, "mail not composable: moved to the dead letters");
                if self
                    .outbox
                    .bury(&id, &entry.dead_fields("invalid", &why, entry.attempts))
                    .await?
                {
                    self.deliverer.count(kind, "dead_lettered");
                }
                return Ok(None);
            }
            Attempt::Rejected { detail, error } => {
                let error = error.to_string();
                if self
                    .outbox
                    .bury(&id, &entry.dead_fields("rejected", &detail, attempt))
                    .await?
                {
                    self.deliverer.count(kind, "dead_lettered");
                    tracing::warn!(
                        jti,
                        kind = kind.tag(),
                        attempt,
                        error,
                        "mail refused: moved to the dead letters"
                    );
                }
                return Ok(None);
            }
            Attempt::Failed(error) => error.to_string(),
        };
        let left = Duration::from_secs(entry.job.exp().saturating_sub(unix_now()));
        let delay = self.settings.backoff(attempt).min(left);
        let retry = Entry {
            attempts: attempt,
            last_error: Some(error.clone()),
            ..entry
        };
        if self.outbox.reschedule(&id, &retry.fields(), delay).await? {
            self.deliverer.count(kind, "retried");
            tracing::warn!(
                jti,
                kind = kind.tag(),
                attempt,
                error,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "mail delivery failed: will retry"
            );
        }
        Ok(None)
    }

    /// On stop: acknowledgements first, then every job still pending under this consumer back to
    /// the queue, then out of the group.
    async fn hand_back(&self, state: &mut State) {
        if let Err(e) = self.flush_acks(state).await {
            tracing::warn!(error = %e, "delivered mail not acknowledged: it will be sent again");
        }
        let mut conn = self.outbox.conn.clone();
        let pending: Result<StreamPendingCountReply, RedisError> = redis::cmd("XPENDING")
            .arg(&self.outbox.keys.queue)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(100)
            .arg(&self.consumer)
            .query_async(&mut conn)
            .await;
        let pending = match pending {
            Ok(pending) => pending.ids,
            Err(e) if e.code() == Some("NOGROUP") => return,
            Err(e) => {
                tracing::warn!(error = %e, "mail jobs not handed back: they will be taken over");
                return;
            }
        };
        let mut kept = 0usize;
        for entry in &pending {
            if state.unacked.contains(&entry.id) {
                kept += 1;
                continue;
            }
            let handed: Result<i64, RedisError> = self
                .outbox
                .scripts
                .hand_back
                .key(&self.outbox.keys.queue)
                .arg(GROUP)
                .arg(&entry.id)
                .invoke_async(&mut conn)
                .await;
            match handed {
                Ok(_) => tracing::info!(id = %entry.id, "mail job handed back to the queue"),
                Err(e) => {
                    kept += 1;
                    tracing::warn!(error = %e, "mail job not handed back: it will be taken over");
                }
            }
        }
        if kept == 0 {
            let left: Result<i64, RedisError> = redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&self.outbox.keys.queue)
                .arg(GROUP)
                .arg(&self.consumer)
                .query_async(&mut conn)
                .await;
            if let Err(e) = left {
                tracing::debug!(error = %e, "consumer not removed from the mail group");
            }
        }
    }
}

/// `<host>-<pid>-<random>`: unique per sender, and tells an operator which pod it was.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                .take(64)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "docgate".to_owned());
    let random = crate::token::new_jti();
    let suffix = random.get(..8).unwrap_or(&random);
    format!("{host}-{}-{suffix}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let settings = SenderSettings::default();
        let waits: Vec<u64> = (1..=12).map(|n| settings.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(settings.backoff(u32::MAX), Duration::from_secs(300));
        assert!(settings.claim_idle > settings.delivery_timeout);
    }

    #[test]
    fn consumer_names_are_unique() {
        assert_ne!(consumer_name(), consumer_name());
        assert!(consumer_name().contains(&std::process::id().to_string()));
    }
}
