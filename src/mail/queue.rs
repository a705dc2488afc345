//! The production mailer: a durable mail queue in Redis Streams, and the [`Sender`] that delivers
//! it over SMTP (and to the owner's webhook).
//!
//! [`RedisOutbox::send`] appends the job to a stream and returns once Redis acknowledged the
//! write, so a `202` means the mail is queued outside the process. A [`Sender`] per replica reads
//! the stream as a member of one consumer group, signs the link and composes the message only
//! then, hands it to the SMTP server, and removes the job once the server accepted it.
//!
//! The owner's notices of completed downloads ([`crate::notify`]) are jobs of the same queue,
//! queued by [`RedisOutbox::notify`]: a mail to the owner goes over the same SMTP server, a
//! webhook notice is a signed `POST` ([`crate::notify::webhook`]). Retries, dead letters,
//! metrics and crash recovery are the same for every kind of job.
//!
//! # Keys (an operator reads them with `redis-cli`)
//!
//! - `<prefix>mail:queue`: a stream of jobs waiting or being delivered. Every job has `kind`
//!   (`link`, `owner-mail` or `webhook`; a job without it, queued by an older docgate, is a link
//!   mail), `jti`, `doc`, `title` (the document's title), `exp` (seconds since the epoch: when
//!   the job is no longer worth delivering), `enqueued-at` (ms since the epoch), `attempts`
//!   (delivery attempts so far), and on a retried job `last-error` (what failed, without the
//!   server's text). A link mail adds `iat` (with `jti`, `doc` and `exp`, the link's claims:
//!   enough to sign it), `to` (the address) and `size` (the document's bytes, when known); no
//!   token, no link. A notice adds `event-id`, `email` (the address the link was made for, when
//!   known), `downloaded-at` (seconds), `client-ip`, and for `owner-mail` `to` (the owner); its
//!   `exp` is three days after the download. Consumer group `senders`; each [`Sender`] is a consumer
//!   named `<host>-<pid>-<random>`. `XLEN` counts the jobs, `XPENDING <key> senders` the ones a
//!   sender is delivering. A delivered job is acknowledged and deleted in one step, so the stream
//!   holds only undelivered mail.
//! - `<prefix>mail:retry`: a sorted set of jobs waiting for their next attempt after a transient
//!   failure. Score: when it is due (Redis server time, ms); member: the job's fields as a JSON
//!   array `["jti","…","doc","…",…]`. Due jobs are moved back to the stream by every sender.
//! - `<prefix>mail:dead`: a stream of mails that will not be sent: the job's fields plus `cause`
//!   (`rejected`: the server answered 5xx; `expired`: the link expired before delivery;
//!   `invalid`: the job could not be read or composed), `detail` (the server's reply, for
//!   `rejected`), `attempts` and `failed-at` (ms). Capped at about [`DEAD_LETTER_MAX`] entries.
//!   [`RedisOutbox::dead_letters`] lists them; [`RedisOutbox::retry_dead_letter`] queues one
//!   again (with its original link, unless it has expired).
//!
//! A job's life: `queue` (read by one sender) → delivered (acknowledged and deleted) |
//! transient failure → `retry` → due → `queue` | 5xx (a webhook: 3xx or 4xx but 408 and 429),
//! expired or unreadable → `dead`. Each
//! transition is one Lua script that first acknowledges the entry (`XACK`) and does nothing if
//! it was not pending any more, so a job is moved at most once even if two senders raced for it.
//! Scripts touch several keys: on Redis Cluster, give the prefix a hash tag (`{docgate}:`).
//!
//! # Delivery
//!
//! One job at a time per sender: read (`XREADGROUP … COUNT 1 BLOCK`, on a connection of its own
//! so the blocking read never delays anyone else's commands), check the expiry (a link that has
//! expired is not mailed: it goes to `dead` as `expired`; a retry is never scheduled past the
//! link's expiry), compose, send with an overall [`SenderSettings::delivery_timeout`], then:
//!
//! - accepted (2xx): `XACK` + `XDEL`. Only now: nothing is acknowledged before the SMTP server
//!   accepted the message. If Redis does not answer, the acknowledgement is retried before the
//!   sender reads anything else.
//! - 5xx: to `dead` as `rejected`, with the reply. A webhook's `3xx` (redirects are not followed)
//!   or `4xx` other than `408` and `429` likewise, with the status.
//! - anything else: to `retry`, due after [`SenderSettings::backoff_base`] doubling per attempt up
//!   to [`SenderSettings::backoff_cap`] (1 s, 2 s, 4 s, … 5 min by default).
//!
//! # Restarts and crashes
//!
//! - A sender stopped by its shutdown signal finishes the delivery in progress, puts any job it
//!   had read but not delivered back at the end of the stream (atomically: acknowledged, deleted
//!   and re-added), and leaves the group. The next process sends those jobs at once.
//! - A sender that crashed leaves at most one job pending under its name. Every sender claims
//!   jobs pending for longer than [`SenderSettings::claim_idle`] (`XAUTOCLAIM`) and delivers
//!   them. `claim_idle` must exceed `delivery_timeout`, so a live sender's job is never taken
//!   from it. Consumers with nothing pending and idle for an hour are removed from the group.
//!
//! # Guarantees
//!
//! In normal operation (restarts included) each queued mail is sent exactly once, or recorded in
//! `dead`. Delivery is at least once at the SMTP boundary: if a process dies after the server
//! accepted a message and before the `XACK` (or cannot reach Redis for longer than `claim_idle`
//! while another replica can), or an attempt times out after the server had in fact accepted it,
//! the mail is sent a second time. The queue is as durable as Redis is configured to be: with
//! asynchronous replication, a failover can lose the last writes before it — a job just queued
//! (its mail is never sent, though the request got `202`) or an acknowledgement (its mail is sent
//! again). Run Redis with `appendonly yes`, so a restart of Redis itself keeps the queue.
//!
//! A 5xx caused by the server's own configuration (`530` authentication required, `554` relay
//! denied) dead-letters every mail until it is fixed; list and retry them then.
//!
//! Logs name a job by the first 6 characters of its `jti` and its kind; never an address, the
//! link, the webhook's URL, or the server's reply text (which often echoes the address).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{Address, AsyncTransport, Message};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{RedisError, Script, Value};
use serde::Serialize;

use super::smtp::{Failure, SmtpTransport, classify, describe};
use super::{Composer, LinkMail, MailError, Mailer};
use crate::metrics::Metrics;
use crate::notify::webhook::Webhook;
use crate::notify::{Download, Notice};
use crate::token::{Claims, ISSUER};
use crate::units::unix_now;

/// The consumer group every sender joins.
pub const GROUP: &str = "senders";
/// The dead-letter stream is trimmed to about this many entries (oldest first).
pub const DEAD_LETTER_MAX: usize = 10_000;
/// How long [`RedisOutbox::send`] waits for Redis before failing the request.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many due retries one promotion moves back to the queue.
const PROMOTE_BATCH: usize = 100;
/// Pause after a Redis failure in the sender, doubling up to [`REDIS_PAUSE_MAX`].
const REDIS_PAUSE_MIN: Duration = Duration::from_millis(250);
const REDIS_PAUSE_MAX: Duration = Duration::from_secs(10);
/// How often a sender removes consumers that left without saying so.
const CONSUMER_GC_EVERY: Duration = Duration::from_secs(600);
/// Consumers with nothing pending and idle this long are removed.
const CONSUMER_GC_IDLE: Duration = Duration::from_secs(3600);
/// How long a stopping sender spends handing its jobs back.
const HAND_BACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The job fields written by [`RedisOutbox::send`] and [`RedisOutbox::notify`].
const F_KIND: &str = "kind";
const F_JTI: &str = "jti";
const F_DOC: &str = "doc";
const F_IAT: &str = "iat";
const F_EXP: &str = "exp";
const F_TO: &str = "to";
const F_TITLE: &str = "title";
const F_SIZE: &str = "size";
const F_EVENT_ID: &str = "event-id";
const F_EMAIL: &str = "email";
const F_DOWNLOADED: &str = "downloaded-at";
const F_CLIENT_IP: &str = "client-ip";
const F_ENQUEUED: &str = "enqueued-at";
const F_ATTEMPTS: &str = "attempts";
const F_LAST_ERROR: &str = "last-error";
const F_CAUSE: &str = "cause";
const F_DETAIL: &str = "detail";
const F_FAILED: &str = "failed-at";

/// Delivered: KEYS[1] = queue; ARGV = group, id. Returns 1 if it was pending.
const DONE: &str = r"
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return n
";

/// Transient failure: KEYS = queue, retry; ARGV = group, id, delay ms, member (JSON fields).
const RESCHEDULE: &str = r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
return 1
";

/// Will not be sent: KEYS = queue, dead; ARGV = group, id, cap, fields…
const BURY: &str = r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
return 1
";

/// Due retries back to the queue: KEYS = retry, queue, dead; ARGV = batch. Returns how many.
const PROMOTE: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local ok, fields = pcall(cjson.decode, member)
  local valid = ok and type(fields) == 'table' and #fields > 0 and #fields % 2 == 0
  if valid then
    for _, v in ipairs(fields) do
      if type(v) ~= 'string' then valid = false end
    end
  end
  if valid then
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  else
    redis.call('XADD', KEYS[3], '*', 'cause', 'invalid', 'detail', 'unreadable retry entry',
      'raw', member, 'failed-at', now)
  end
  redis.call('ZREM', KEYS[1], member)
end
return #due
";

/// A stopping sender's job back to the end of the queue: KEYS[1] = queue; ARGV = group, id.
const HAND_BACK: &str = r"
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if #e == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', unpack(e[1][2]))
return 1
";

/// A dead letter back to the queue: KEYS = dead, queue; ARGV[1] = id. The dead letter's own
/// fields are dropped, the job's kept; `attempts` starts again at 0.
/// Returns 0 not found, 1 queued, 2 expired (left in place), 3 unreadable (left in place).
const REVIVE: &str = r"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local f = e[1][2]
local drop = {cause = true, detail = true, attempts = true, raw = true}
drop['failed-at'] = true
drop['last-error'] = true
local out = {}
local have = {}
for i = 1, #f, 2 do
  if not drop[f[i]] then
    table.insert(out, f[i])
    table.insert(out, f[i + 1])
    have[f[i]] = f[i + 1]
  end
end
local need = {'jti', 'doc', 'iat', 'exp', 'to', 'title'}
if (have['kind'] or 'link') ~= 'link' then
  need = {'jti', 'doc', 'exp', 'title', 'event-id', 'downloaded-at', 'client-ip'}
end
for _, k in ipairs(need) do
  if have[k] == nil then return 3 end
end
local exp = tonumber(have['exp'])
if exp == nil then return 3 end
local t = redis.call('TIME')
if exp <= tonumber(t[1]) then return 2 end
table.insert(out, 'attempts')
table.insert(out, '0')
redis.call('XADD', KEYS[2], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
";

/// Consumers that left without saying so: KEYS[1] = queue; ARGV = group, idle ms, own name.
/// Atomic, so a consumer is only removed while it has nothing pending.
const FORGET_CONSUMERS: &str = r"
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  local idle = info['idle'] or 0
  if info['name'] ~= ARGV[3] and info['pending'] == 0 and idle > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
";

/// The durable mail queue: what the HTTP layer sends through, and what operators inspect.
#[derive(Clone)]
pub struct RedisOutbox {
    conn: ConnectionManager,
    keys: Arc<Keys>,
    scripts: Arc<Scripts>,
}

struct Keys {
    queue: String,
    retry: String,
    dead: String,
}

struct Scripts {
    done: Script,
    reschedule: Script,
    bury: Script,
    promote: Script,
    hand_back: Script,
    revive: Script,
    forget_consumers: Script,
}

/// A mail that will not be sent, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The entry's id in `<prefix>mail:dead`: what [`RedisOutbox::retry_dead_letter`] takes.
    pub id: String,
    /// `rejected` (5xx), `expired` or `invalid`.
    pub cause: String,
    /// The server's reply for `rejected` (a webhook's status); what was wrong for `invalid`.
    pub detail: String,
    /// `link`, `owner-mail` or `webhook`.
    pub kind: String,
    pub jti: String,
    pub doc: String,
    /// The recipient (the owner, for `owner-mail`; empty for `webhook`). Operators only: never
    /// logged.
    pub to: String,
    /// A notice's requester address, when known. Operators only: never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub title: String,
    /// When the job stopped being worth delivering (a link mail: the link's expiry), seconds
    /// since the epoch.
    pub exp: u64,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When the request queued it, ms since the epoch.
    pub enqueued_at: u64,
    /// When it was given up, ms since the epoch.
    pub failed_at: u64,
}

/// What [`RedisOutbox::retry_dead_letter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revival {
    /// Back in the queue, with its attempts reset.
    Queued,
    /// No dead letter has this id.
    NotFound,
    /// Its link has expired: mailing it is pointless. Left in place.
    Expired,
    /// The entry lacks fields a mail needs. Left in place.
    Unreadable,
}

/// How much mail is where, for metrics and `docgate check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// In the stream: waiting, or being delivered.
    pub queued: u64,
    /// Waiting for a retry after a transient failure.
    pub retrying: u64,
    /// Dead letters.
    pub dead: u64,
}

impl RedisOutbox {
    /// The queue over `conn`, its keys under `prefix`. `conn` should have a response timeout;
    /// [`Mailer::send`] gives up after a few seconds regardless.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            keys: Arc::new(Keys {
                queue: format!("{prefix}mail:queue"),
                retry: format!("{prefix}mail:retry"),
                dead: format!("{prefix}mail:dead"),
            }),
            scripts: Arc::new(Scripts {
                done: Script::new(DONE),
                reschedule: Script::new(RESCHEDULE),
                bury: Script::new(BURY),
                promote: Script::new(PROMOTE),
                hand_back: Script::new(HAND_BACK),
                revive: Script::new(REVIVE),
                forget_consumers: Script::new(FORGET_CONSUMERS),
            }),
        }
    }

    /// `<prefix>mail:queue`
    pub fn queue_key(&self) -> &str {
        &self.keys.queue
    }

    /// `<prefix>mail:retry`
    pub fn retry_key(&self) -> &str {
        &self.keys.retry
    }

    /// `<prefix>mail:dead`
    pub fn dead_key(&self) -> &str {
        &self.keys.dead
    }

    /// The newest `limit` dead letters, newest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, MailError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.keys.dead)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(reply
            .ids
            .iter()
            .map(|entry| {
                let fields = Fields::from(entry);
                DeadLetter {
                    id: entry.id.clone(),
                    cause: fields.text(F_CAUSE),
                    detail: fields.text(F_DETAIL),
                    kind: fields.get(F_KIND).unwrap_or(Kind::Link.tag()).to_owned(),
                    jti: fields.text(F_JTI),
                    doc: fields.text(F_DOC),
                    to: fields.text(F_TO),
                    email: fields.get(F_EMAIL).map(str::to_owned),
                    title: fields.text(F_TITLE),
                    exp: fields.number(F_EXP).unwrap_or(0),
                    attempts: fields
                        .number(F_ATTEMPTS)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                    enqueued_at: fields.number(F_ENQUEUED).unwrap_or(0),
                    failed_at: fields.number(F_FAILED).unwrap_or(0),
                }
            })
            .collect())
    }

    /// Queues a dead letter again, unless it has expired (a link mail: its link). A link mail
    /// carries its original link: the link record in the token store must still exist for it to
    /// work.
    pub async fn retry_dead_letter(&self, id: &str) -> Result<Revival, MailError> {
        let mut conn = self.conn.clone();
        let code: i64 = self
            .scripts
            .revive
            .key(&self.keys.dead)
            .key(&self.keys.queue)
            .arg(id)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let revival = match code {
            1 => Revival::Queued,
            2 => Revival::Expired,
            3 => Revival::Unreadable,
            _ => Revival::NotFound,
        };
        tracing::info!(id, ?revival, "dead letter retried by an operator");
        Ok(revival)
    }

    /// How many jobs are queued, waiting for a retry, and dead.
    pub async fn queue_depth(&self) -> Result<QueueDepth, MailError> {
        let mut conn = self.conn.clone();
        let (queued, retrying, dead): (u64, u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.keys.queue)
            .cmd("ZCARD")
            .arg(&self.keys.retry)
            .cmd("XLEN")
            .arg(&self.keys.dead)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(QueueDepth {
            queued,
            retrying,
            dead,
        })
    }

    /// Creates the consumer group (and the stream) if missing. The group starts at the beginning:
    /// the stream only ever holds undelivered jobs.
    async fn ensure_group(&self) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.queue)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves due retries back to the queue.
    async fn promote(&self) -> Result<usize, RedisError> {
        let mut conn = self.conn.clone();
        self.scripts
            .promote
            .key(&self.keys.retry)
            .key(&self.keys.queue)
            .key(&self.keys.dead)
            .arg(PROMOTE_BATCH)
            .invoke_async(&mut conn)
            .await
    }

    /// Acknowledges and deletes a delivered job.
    async fn done(&self, id: &str) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .scripts
            .done
            .key(&self.keys.queue)
            .arg(GROUP)
            .arg(id)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Moves a job to the retry set, due in `delay`.
    async fn reschedule(
        &self,
        id: &str,
        fields: &[(String, String)],
        delay: Duration,
    ) -> Result<bool, RedisError> {
        let flat: Vec<&str> = fields
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()])
            .collect();
        // A list of strings always encodes; were it not to, the empty list would be moved to the
        // dead letters when due, not lost.
        let member = serde_json::to_string(&flat).unwrap_or_else(|_| "[]".to_owned());
        let mut conn = self.conn.clone();
        let moved: i64 = self
            .scripts
            .reschedule
            .key(&self.keys.queue)
            .key(&self.keys.retry)
            .arg(GROUP)
            .arg(id)
            .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            .arg(member)
            .invoke_async(&mut conn)
            .await?;
        Ok(moved == 1)
    }

    /// Moves a job to the dead letters.
    async fn bury(&self, id: &str, fields: &[(String, String)]) -> Result<bool, RedisError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.bury.prepare_invoke();
        invocation
            .key(&self.keys.queue)
            .key(&self.keys.dead)
            .arg(GROUP)
            .arg(id)
            .arg(DEAD_LETTER_MAX);
        for (k, v) in fields {
            invocation.arg(k).arg(v);
        }
        let moved: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(moved == 1)
    }
}

#[async_trait]
impl Mailer for RedisOutbox {
    /// Queues the mail; `Ok` once Redis acknowledged the write.
    fn queues(&self) -> bool {
        true
    }

    async fn backlog(&self) -> Result<Option<QueueDepth>, MailError> {
        self.queue_depth().await.map(Some)
    }

    async fn send(&self, mail: &LinkMail) -> Result<(), MailError> {
        let job = Job::new(Item::Link(mail.clone()));
        let id = self.add(&job).await?;
        tracing::info!(jti = job.jti_prefix(), id, "mail queued");
        Ok(())
    }

    async fn notify(&self, notice: &Notice) -> Result<(), MailError> {
        let job = Job::new(Item::Notice(notice.clone()));
        let id = self.add(&job).await?;
        tracing::info!(
            jti = job.jti_prefix(),
            kind = job.kind().tag(),
            id,
            "download notice queued"
        );
        Ok(())
    }
}

impl RedisOutbox {
    /// Appends a job to the stream; its id once Redis acknowledged the write.
    async fn add(&self, job: &Job) -> Result<String, MailError> {
        let mut conn = self.conn.clone();
        let mut command = redis::cmd("XADD");
        command.arg(&self.keys.queue).arg("*").arg(job.fields());
        let add = command.query_async::<String>(&mut conn);
        tokio::time::timeout(ENQUEUE_TIMEOUT, add)
            .await
            .map_err(|_| MailError::Delivery("mail queue: Redis did not answer".to_owned()))?
            .map_err(|e| MailError::Delivery(format!("mail queue: {e}")))
    }
}

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
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            block: Duration::from_secs(1),
            claim_idle: Duration::from_secs(120),
            delivery_timeout: Duration::from_secs(60),
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
    client: redis::Client,
    transport: SmtpTransport,
    composer: Composer,
    /// The owner's webhook, for `webhook` jobs; without one they are dead-lettered as `invalid`.
    webhook: Option<Webhook>,
    settings: SenderSettings,
    consumer: String,
    metrics: Option<Arc<Metrics>>,
}

/// The sender's loop state.
struct State {
    /// The dedicated connection for blocking reads.
    reader: ConnectionManager,
    group_ready: bool,
    /// Jobs the SMTP server accepted whose acknowledgement has not reached Redis yet.
    unacked: Vec<String>,
    claim_cursor: String,
    next_claim: Instant,
    next_gc: Instant,
}

impl Sender {
    /// A sender for `outbox`'s queue. `client` opens the dedicated connection for blocking reads
    /// (the same Redis as `outbox`'s connection).
    pub fn new(
        outbox: RedisOutbox,
        client: redis::Client,
        transport: SmtpTransport,
        composer: Composer,
        settings: SenderSettings,
    ) -> Self {
        Self {
            outbox,
            client,
            transport,
            composer,
            webhook: None,
            settings,
            consumer: consumer_name(),
            metrics: None,
        }
    }

    /// Delivers `webhook` jobs to `webhook`.
    pub fn with_webhook(self, webhook: Option<Webhook>) -> Self {
        Self { webhook, ..self }
    }

    /// Counts deliveries in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Counts a link mail in `docgate_mail_total`, a notice in `docgate_notifications_total`.
    fn count(&self, kind: Kind, outcome: &'static str) {
        if let Some(metrics) = &self.metrics {
            match kind.channel() {
                None => Metrics::count(&metrics.mail, outcome),
                Some(channel) => metrics.notified(channel, outcome),
            }
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(self.settings.block + Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let reader = match ConnectionManager::new_lazy_with_config(self.client.clone(), config) {
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
        self.transport.shutdown().await;
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
                return self.process(state, entry).await;
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
            .arg(1)
            .arg("BLOCK")
            .arg(u64::try_from(self.settings.block.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(&self.outbox.keys.queue)
            .arg(">")
            .query_async(&mut reader)
            .await?;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            self.process(state, entry).await?;
        }
        Ok(())
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

    /// Delivers one job, or moves it to the retry set or the dead letters.
    async fn process(&self, state: &mut State, entry: StreamId) -> Result<(), RedisError> {
        let id = entry.id.clone();
        let fields = Fields::from(&entry);
        let job = match Job::parse(&fields) {
            Ok(job) => job,
            Err(why) => {
                tracing::warn!(id, why, "unreadable mail job moved to the dead letters");
                let kind = fields
                    .get(F_KIND)
                    .and_then(Kind::from_tag)
                    .unwrap_or(Kind::Link);
                let mut dead = fields.0;
                dead.extend(dead_fields("invalid", why, 0));
                if self.outbox.bury(&id, &dead).await? {
                    self.count(kind, "dead_lettered");
                }
                return Ok(());
            }
        };
        let jti = job.jti_prefix().to_owned();
        let kind = job.kind();

        if job.exp() <= unix_now() {
            if self
                .outbox
                .bury(&id, &job.dead_fields("expired", "", job.attempts))
                .await?
            {
                self.count(kind, "expired");
                tracing::warn!(
                    jti,
                    kind = kind.tag(),
                    attempts = job.attempts,
                    "{}",
                    match kind {
                        Kind::Link => "link expired before its mail was delivered: not sent",
                        _ => "download notice not delivered in time: not sent",
                    }
                );
            }
            return Ok(());
        }

        let attempt = job.attempts.saturating_add(1);
        let error = match self.attempt(&job).await {
            Attempt::Delivered => {
                state.unacked.push(id);
                let queued_ms = now_ms().saturating_sub(job.enqueued_at);
                tracing::info!(jti, kind = kind.tag(), attempt, queued_ms, "mail delivered");
                self.count(kind, "sent");
                return self.flush_acks(state).await;
            }
            Attempt::Invalid(why) => {
                tracing::warn!(jti, kind = kind.tag(), error = %why, "mail not composable: moved to the dead letters");
                if self
                    .outbox
                    .bury(&id, &job.dead_fields("invalid", &why, job.attempts))
                    .await?
                {
                    self.count(kind, "dead_lettered");
                }
                return Ok(());
            }
            Attempt::Rejected { detail, error } => {
                if self
                    .outbox
                    .bury(&id, &job.dead_fields("rejected", &detail, attempt))
                    .await?
                {
                    self.count(kind, "dead_lettered");
                    tracing::warn!(
                        jti,
                        kind = kind.tag(),
                        attempt,
                        error,
                        "mail refused: moved to the dead letters"
                    );
                }
                return Ok(());
            }
            Attempt::Failed(error) => error,
        };
        let left = Duration::from_secs(job.exp().saturating_sub(unix_now()));
        let delay = self.settings.backoff(attempt).min(left);
        let retry = Job {
            attempts: attempt,
            last_error: Some(error.clone()),
            ..job
        };
        if self.outbox.reschedule(&id, &retry.fields(), delay).await? {
            self.count(kind, "retried");
            tracing::warn!(
                jti,
                kind = kind.tag(),
                attempt,
                error,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "mail delivery failed: will retry"
            );
        }
        Ok(())
    }

    /// One delivery attempt of `job`, bounded by the delivery timeout.
    async fn attempt(&self, job: &Job) -> Attempt {
        let message = match &job.item {
            Item::Link(mail) => self.composer.compose(mail),
            Item::Notice(Notice::OwnerMail { to, download }) => {
                self.composer.compose_notice(to, download)
            }
            Item::Notice(Notice::Webhook(download)) => return self.call(download).await,
        };
        match message {
            Ok(message) => self.mail(message).await,
            Err(e) => Attempt::Invalid(e.to_string()),
        }
    }

    /// Hands `message` to the SMTP server.
    async fn mail(&self, message: Message) -> Attempt {
        let sent =
            tokio::time::timeout(self.settings.delivery_timeout, self.transport.send(message))
                .await;
        match sent {
            Ok(Ok(_)) => Attempt::Delivered,
            // The reply text is kept in the dead letter for the operator, never logged.
            Ok(Err(e)) if classify(&e) == Failure::Permanent => Attempt::Rejected {
                detail: e.to_string(),
                error: describe(&e),
            },
            Ok(Err(e)) => Attempt::Failed(describe(&e)),
            Err(_) => Attempt::Failed(self.timed_out()),
        }
    }

    /// Posts a notice to the owner's webhook.
    async fn call(&self, download: &Download) -> Attempt {
        let Some(webhook) = &self.webhook else {
            return Attempt::Invalid(
                "no webhook is configured (DOCGATE_OWNER_WEBHOOK_URL)".to_owned(),
            );
        };
        match tokio::time::timeout(self.settings.delivery_timeout, webhook.deliver(download)).await
        {
            Ok(Ok(())) => Attempt::Delivered,
            Ok(Err(e)) if e.is_permanent() => Attempt::Rejected {
                detail: e.to_string(),
                error: e.to_string(),
            },
            Ok(Err(e)) => Attempt::Failed(e.to_string()),
            Err(_) => Attempt::Failed(self.timed_out()),
        }
    }

    fn timed_out(&self) -> String {
        format!(
            "delivery timed out after {}s",
            self.settings.delivery_timeout.as_secs()
        )
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

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// The job cannot be delivered as it stands (not composable, nowhere to send it).
    Invalid(String),
    /// Refused for good: `detail` for the dead letter (may hold the server's text), `error` for
    /// the log.
    Rejected {
        detail: String,
        error: String,
    },
    /// Worth another attempt; what failed, safe to log.
    Failed(String),
}

/// The kinds of job, by their `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Link,
    OwnerMail,
    Webhook,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Link => "link",
            Kind::OwnerMail => "owner-mail",
            Kind::Webhook => "webhook",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        [Kind::Link, Kind::OwnerMail, Kind::Webhook]
            .into_iter()
            .find(|k| k.tag() == tag)
    }

    /// The `channel` label of a notice in `docgate_notifications_total`; `None` for a link mail.
    fn channel(self) -> Option<&'static str> {
        match self {
            Kind::Link => None,
            Kind::OwnerMail => Some("mail"),
            Kind::Webhook => Some("webhook"),
        }
    }
}

/// What a job delivers.
#[derive(Debug, Clone)]
enum Item {
    Link(LinkMail),
    Notice(Notice),
}

/// One queued job, as stored.
#[derive(Debug, Clone)]
struct Job {
    item: Item,
    /// When it was queued, ms since the epoch.
    enqueued_at: u64,
    attempts: u32,
    last_error: Option<String>,
}

impl Job {
    /// A job queued now.
    fn new(item: Item) -> Self {
        Self {
            item,
            enqueued_at: now_ms(),
            attempts: 0,
            last_error: None,
        }
    }

    fn parse(fields: &Fields) -> Result<Self, &'static str> {
        let text = |name, why| fields.get(name).map(str::to_owned).ok_or(why);
        let number = |name, why| fields.number(name).ok_or(why);
        // Jobs queued before notices existed have no `kind`: they are link mails.
        let kind = match fields.get(F_KIND) {
            None => Kind::Link,
            Some(tag) => Kind::from_tag(tag).ok_or("unknown kind")?,
        };
        let item = match kind {
            Kind::Link => {
                let to: Address = text(F_TO, "no recipient")?
                    .parse()
                    .map_err(|_| "the recipient is not an address")?;
                Item::Link(LinkMail {
                    to,
                    // The claims are exactly those of the link the request recorded.
                    claims: Claims {
                        jti: text(F_JTI, "no jti")?.into(),
                        doc: text(F_DOC, "no doc")?,
                        iat: number(F_IAT, "no valid iat")?,
                        exp: number(F_EXP, "no valid exp")?,
                        iss: ISSUER.to_owned(),
                    },
                    title: text(F_TITLE, "no title")?,
                    size: fields.number(F_SIZE),
                })
            }
            Kind::OwnerMail | Kind::Webhook => {
                let download = Download {
                    event_id: text(F_EVENT_ID, "no event id")?,
                    jti: text(F_JTI, "no jti")?,
                    doc: text(F_DOC, "no doc")?,
                    title: text(F_TITLE, "no title")?,
                    email: fields.get(F_EMAIL).map(str::to_owned),
                    downloaded_at: number(F_DOWNLOADED, "no valid downloaded-at")?,
                    client_ip: text(F_CLIENT_IP, "no client ip")?
                        .parse::<IpAddr>()
                        .map_err(|_| "the client ip is not an IP address")?,
                };
                if kind == Kind::Webhook {
                    Item::Notice(Notice::Webhook(download))
                } else {
                    let to: Mailbox = text(F_TO, "no recipient")?
                        .parse()
                        .map_err(|_| "the recipient is not an address")?;
                    Item::Notice(Notice::OwnerMail { to, download })
                }
            }
        };
        Ok(Self {
            item,
            enqueued_at: fields.number(F_ENQUEUED).unwrap_or(0),
            attempts: fields
                .number(F_ATTEMPTS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            last_error: None,
        })
    }

    fn kind(&self) -> Kind {
        match &self.item {
            Item::Link(_) => Kind::Link,
            Item::Notice(Notice::OwnerMail { .. }) => Kind::OwnerMail,
            Item::Notice(Notice::Webhook(_)) => Kind::Webhook,
        }
    }

    fn jti(&self) -> &str {
        match &self.item {
            Item::Link(mail) => mail.claims.jti.as_str(),
            Item::Notice(notice) => &notice.download().jti,
        }
    }

    fn jti_prefix(&self) -> &str {
        let jti = self.jti();
        jti.get(..6).unwrap_or(jti)
    }

    /// When the job stops being worth delivering, seconds since the epoch: a link mail's link
    /// expires; a notice is [`crate::notify::NOTICE_LIFETIME`] old.
    fn exp(&self) -> u64 {
        match &self.item {
            Item::Link(mail) => mail.claims.exp,
            Item::Notice(notice) => notice.download().expires_at(),
        }
    }

    fn fields(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(&str, String)> = vec![(F_KIND, self.kind().tag().to_owned())];
        match &self.item {
            Item::Link(mail) => {
                fields.extend([
                    (F_JTI, mail.claims.jti.as_str().to_owned()),
                    (F_DOC, mail.claims.doc.clone()),
                    (F_IAT, mail.claims.iat.to_string()),
                    (F_EXP, mail.claims.exp.to_string()),
                    (F_TO, mail.to.to_string()),
                    (F_TITLE, mail.title.clone()),
                ]);
                if let Some(size) = mail.size {
                    fields.push((F_SIZE, size.to_string()));
                }
            }
            Item::Notice(notice) => {
                let download = notice.download();
                fields.extend([
                    (F_EVENT_ID, download.event_id.clone()),
                    (F_JTI, download.jti.clone()),
                    (F_DOC, download.doc.clone()),
                    (F_TITLE, download.title.clone()),
                ]);
                if let Some(email) = &download.email {
                    fields.push((F_EMAIL, email.clone()));
                }
                fields.extend([
                    (F_DOWNLOADED, download.downloaded_at.to_string()),
                    (F_CLIENT_IP, download.client_ip.to_string()),
                    (F_EXP, self.exp().to_string()),
                ]);
                if let Notice::OwnerMail { to, .. } = notice {
                    fields.push((F_TO, to.to_string()));
                }
            }
        }
        fields.extend([
            (F_ENQUEUED, self.enqueued_at.to_string()),
            (F_ATTEMPTS, self.attempts.to_string()),
        ]);
        if let Some(error) = &self.last_error {
            fields.push((F_LAST_ERROR, error.clone()));
        }
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn dead_fields(&self, cause: &str, detail: &str, attempts: u32) -> Vec<(String, String)> {
        let mut fields = Job {
            attempts,
            last_error: None,
            ..self.clone()
        }
        .fields();
        fields.retain(|(k, _)| k != F_ATTEMPTS);
        fields.extend(dead_fields(cause, detail, attempts));
        fields
    }
}

/// The fields a dead letter adds to the job's.
fn dead_fields(cause: &str, detail: &str, attempts: u32) -> Vec<(String, String)> {
    vec![
        (F_CAUSE.to_owned(), cause.to_owned()),
        (F_DETAIL.to_owned(), detail.to_owned()),
        (F_ATTEMPTS.to_owned(), attempts.to_string()),
        (F_FAILED.to_owned(), now_ms().to_string()),
    ]
}

/// A stream entry's fields that are text, sorted by name; or a job's, in the order written.
struct Fields(Vec<(String, String)>);

impl From<&StreamId> for Fields {
    fn from(entry: &StreamId) -> Self {
        let map: &HashMap<String, Value> = &entry.map;
        let mut fields: Vec<(String, String)> = map
            .iter()
            .filter_map(|(k, v)| match v {
                Value::BulkString(bytes) => Some((
                    k.clone(),
                    String::from_utf8_lossy(bytes.as_slice()).into_owned(),
                )),
                Value::SimpleString(s) => Some((k.clone(), s.clone())),
                Value::Int(n) => Some((k.clone(), n.to_string())),
                _ => None,
            })
            .collect();
        fields.sort();
        Self(fields)
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(|v| v.parse().ok())
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

fn unavailable(e: RedisError) -> MailError {
    MailError::Delivery(format!("mail queue: {e}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

    fn job() -> Job {
        Job {
            item: Item::Link(LinkMail {
                to: "visitor@example.org".parse().unwrap(),
                claims: Claims {
                    jti: "abcdefghijklmnopqrstuv".into(),
                    doc: "resume".to_owned(),
                    iat: 1_800_000_000,
                    exp: 1_800_000_900,
                    iss: ISSUER.to_owned(),
                },
                title: "Jane's resume".to_owned(),
                size: Some(307_200),
            }),
            enqueued_at: 1_800_000_000_123,
            attempts: 2,
            last_error: Some("SMTP timeout".to_owned()),
        }
    }

    fn download() -> Download {
        Download {
            event_id: "evt-1".to_owned(),
            jti: "abcdefghijklmnopqrstuv".to_owned(),
            doc: "resume".to_owned(),
            title: "Jane's resume".to_owned(),
            email: Some("visitor@example.org".to_owned()),
            downloaded_at: 1_800_000_100,
            client_ip: IpAddr::from([192, 0, 2, 7]),
        }
    }

    fn names(fields: &Fields) -> Vec<&str> {
        fields.0.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_job_round_trips_through_its_fields_and_holds_no_link() {
        let job = job();
        let fields = Fields(job.fields());
        let back = Job::parse(&fields).unwrap();
        assert_eq!(back.exp(), 1_800_000_900);
        assert_eq!(back.attempts, 2);
        assert_eq!(back.enqueued_at, job.enqueued_at);
        assert_eq!(
            names(&fields),
            [
                "kind",
                "jti",
                "doc",
                "iat",
                "exp",
                "to",
                "title",
                "size",
                "enqueued-at",
                "attempts",
                "last-error"
            ]
        );
        let Item::Link(mail) = back.item else {
            panic!("a link mail");
        };
        assert_eq!(mail.claims.iss, ISSUER);
        assert_eq!(mail.claims.jti, "abcdefghijklmnopqrstuv");
        assert_eq!(mail.to.to_string(), "visitor@example.org");
        assert_eq!(mail.size, Some(307_200));
        assert_eq!(job.jti_prefix(), "abcdef");
    }

    #[test]
    fn a_job_queued_before_kinds_existed_is_a_link_mail() {
        let mut fields = job().fields();
        fields.retain(|(k, _)| k != "kind" && k != "size");
        let back = Job::parse(&Fields(fields)).unwrap();
        assert_eq!(back.kind(), Kind::Link);
        let Item::Link(mail) = back.item else {
            panic!("a link mail");
        };
        assert_eq!(mail.size, None);
    }

    #[test]
    fn notices_round_trip_and_carry_no_iat() {
        let owner: Mailbox = "Jane Doe <jane@example.com>".parse().unwrap();
        for notice in [
            Notice::OwnerMail {
                to: owner,
                download: download(),
            },
            Notice::Webhook(download()),
        ] {
            let job = Job::new(Item::Notice(notice.clone()));
            let fields = Fields(job.fields());
            // Without `iat`, a sender of an older docgate dead-letters a notice rather than
            // mailing it as a link.
            assert_eq!(fields.get("iat"), None);
            assert_eq!(
                fields.get("exp"),
                Some((1_800_000_100 + 3 * 24 * 3600).to_string().as_str())
            );
            let back = Job::parse(&fields).unwrap();
            let Item::Notice(parsed) = back.item else {
                panic!("a notice");
            };
            assert_eq!(parsed, notice);
        }
        let job = Job::new(Item::Notice(Notice::Webhook(Download {
            email: None,
            ..download()
        })));
        let fields = Fields(job.fields());
        assert_eq!(
            names(&fields),
            [
                "kind",
                "event-id",
                "jti",
                "doc",
                "title",
                "downloaded-at",
                "client-ip",
                "exp",
                "enqueued-at",
                "attempts"
            ]
        );
    }

    #[test]
    fn a_job_missing_a_field_is_named() {
        let mut fields = job().fields();
        fields.retain(|(k, _)| k != "exp");
        assert_eq!(Job::parse(&Fields(fields)).unwrap_err(), "no valid exp");
        let mut fields = Job::new(Item::Notice(Notice::Webhook(download()))).fields();
        fields.retain(|(k, _)| k != "client-ip");
        assert_eq!(Job::parse(&Fields(fields)).unwrap_err(), "no client ip");
        let fields = vec![("kind".to_owned(), "fax".to_owned())];
        assert_eq!(Job::parse(&Fields(fields)).unwrap_err(), "unknown kind");
    }

    #[test]
    fn dead_fields_replace_the_attempt_count() {
        let fields = job().dead_fields("rejected", "550 no such user", 3);
        let fields = Fields(fields);
        assert_eq!(fields.get("attempts"), Some("3"));
        assert_eq!(fields.get("cause"), Some("rejected"));
        assert_eq!(fields.get("last-error"), None);
        assert_eq!(fields.0.iter().filter(|(k, _)| k == "attempts").count(), 1);
    }

    #[test]
    fn consumer_names_are_unique() {
        assert_ne!(consumer_name(), consumer_name());
        assert!(consumer_name().contains(&std::process::id().to_string()));
    }
}
