//! What an operator does with the queue (`docgate mail ...`, `/metrics`): count what waits,
//! list the dead letters, queue one again.

use serde::Serialize;

use super::RedisOutbox;
use super::codec::{
    F_ATTEMPTS, F_CAUSE, F_DETAIL, F_DOC, F_EMAIL, F_ENQUEUED, F_EXP, F_FAILED, F_JTI, F_KIND,
    F_TITLE, F_TO, Fields,
};
use crate::mail::{DeliveryError, MailError};
use crate::outbox::{Kind, QueueDepth};

/// A job that will not be delivered, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The entry's id in `<prefix>{mail}:dead`: what [`RedisOutbox::retry_dead_letter`] takes.
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

impl RedisOutbox {
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
            .map_err(DeliveryError::Queue)?;
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
            .map_err(DeliveryError::Queue)?;
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
            .map_err(DeliveryError::Queue)?;
        Ok(QueueDepth {
            queued,
            retrying,
            dead,
        })
    }
}
