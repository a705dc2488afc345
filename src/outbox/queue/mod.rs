//! The durable outbox: jobs wait in a Redis stream until a [`Sender`] delivers them.
//!
//! [`RedisOutbox::submit`] appends the job to `<prefix>{mail}:queue` and returns once Redis
//! acknowledged the write, so a `202` means the mail is queued outside the process. A [`Sender`]
//! per replica reads the stream as a member of one consumer group and hands each job to the
//! [`crate::outbox::Deliverer`]; retries, dead letters, metrics and crash recovery are the same
//! for every kind of job. The keys, a job's life, the restart and crash behaviour and the
//! guarantees are told for operators in `docs/operations.md`, section "The mail queue".
//! The queue, its retry set and its dead letters share the hash tag `{mail}`, so every move
//! between them is one script on one Redis Cluster slot.
//!
//! - `codec`: a job as the stream's fields, and back;
//! - `scripts`: the Lua scripts that move a job between the queue, the retry set and the dead
//!   letters, each atomically;
//! - [`sender`]: the consumer loop;
//! - [`operator`]: depth, dead letters, and queuing one again.
//!
//! Logs name a job by the first 6 characters of its `jti` and its kind; never an address, the
//! link, the webhook's URL, or the server's reply text (which often echoes the address).

mod codec;
pub mod operator;
mod scripts;
pub mod sender;

use std::sync::Arc;
use std::time::Duration;

use crate::topology::SharedConnection;
use async_trait::async_trait;

pub use operator::{DeadLetter, Revival};
pub use scripts::{DEAD_LETTER_MAX, scripts};
pub use sender::{Sender, SenderSettings};

use self::codec::Entry;
use self::scripts::Scripts;
pub use super::QueueDepth;
use super::{Job, Outbox};
use crate::mail::{DeliveryError, MailError};

/// The consumer group every sender joins.
pub const GROUP: &str = "senders";
/// How long [`RedisOutbox::submit`] waits for Redis before failing the request.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(3);

/// The durable mail queue: what requests submit to, and what operators inspect.
#[derive(Clone)]
pub struct RedisOutbox {
    conn: SharedConnection,
    keys: Arc<Keys>,
    scripts: Arc<Scripts>,
}

/// The queue's three keys.
struct Keys {
    queue: String,
    retry: String,
    dead: String,
}

impl RedisOutbox {
    /// The queue over `conn`, its keys under `prefix`. `conn` should have a response timeout;
    /// [`Outbox::submit`] gives up after a few seconds regardless.
    pub fn new(conn: SharedConnection, prefix: &str) -> Self {
        Self {
            conn,
            keys: Arc::new(Keys {
                queue: format!("{prefix}{{mail}}:queue"),
                retry: format!("{prefix}{{mail}}:retry"),
                dead: format!("{prefix}{{mail}}:dead"),
            }),
            scripts: Arc::new(Scripts::new()),
        }
    }

    /// `<prefix>{mail}:queue`
    pub fn queue_key(&self) -> &str {
        &self.keys.queue
    }

    /// `<prefix>{mail}:retry`
    pub fn retry_key(&self) -> &str {
        &self.keys.retry
    }

    /// `<prefix>{mail}:dead`
    pub fn dead_key(&self) -> &str {
        &self.keys.dead
    }

    /// Appends a job to the stream; its id once Redis acknowledged the write.
    async fn add(&self, entry: &Entry) -> Result<String, MailError> {
        let mut conn = self.conn.clone();
        let mut command = redis::cmd("XADD");
        command.arg(&self.keys.queue).arg("*").arg(entry.fields());
        let add = command.query_async::<String>(&mut conn);
        let id = tokio::time::timeout(ENQUEUE_TIMEOUT, add)
            .await
            .map_err(|_| DeliveryError::QueueTimeout)?
            .map_err(DeliveryError::Queue)?;
        Ok(id)
    }
}

#[async_trait]
impl Outbox for RedisOutbox {
    /// Queues the job; `Ok` once Redis acknowledged the write.
    async fn submit(&self, job: &Job) -> Result<(), MailError> {
        let entry = Entry::new(job.clone());
        let id = self.add(&entry).await?;
        let jti = job.jti().short();
        match job.kind().channel() {
            None => tracing::info!(jti, id, "mail queued"),
            Some(_) => tracing::info!(jti, kind = job.kind().tag(), id, "download notice queued"),
        }
        Ok(())
    }

    async fn depth(&self) -> Result<Option<QueueDepth>, MailError> {
        self.queue_depth().await.map(Some)
    }
}
