//! Calls of one script gathered into one pipeline: [`ScriptBatch`].
//!
//! Some calls need not be answered at once: the request log's record of a download that has
//! ended, of a link request whose mail is queued. Each sent alone costs a write and a read, and a
//! wake-up, on docgate's side and on Redis's, for a few dozen bytes. A [`ScriptBatch`] hands its
//! calls to one task, which waits up to its linger after the first for more (or until
//! [`MOST`] wait), sends them all in one pipeline, and answers each call with its own reply. A
//! call alone waits the linger and no more; under load, the calls of a linger share one round
//! trip. Each pipeline is sent on a task of its own, so a slow answer (a saturated Redis, a
//! saturated runtime) does not hold up the batches after it: as many calls are in flight as
//! without batching. Every call is its own `EVALSHA`, run as it would be alone: the pipeline is not a
//! transaction, and one call's error is that call's answer.
//!
//! On `NOSCRIPT` (a Redis restarted, a new primary after a failover) the task loads the script
//! and sends the calls it refused once more, as [`super::ScriptCall::invoke`] does for one. On a
//! cluster each command of the pipeline goes to the primary of its first key's slot; a batch's
//! calls that share a slot (the request log's, all under `{log}`) share one write.
//!
//! The task starts with the first call and ends when the batch is dropped. Should it be gone (with
//! a runtime that ended), a call is made alone; a call it took and did not answer fails, rather
//! than being made twice.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::{Cmd, ErrorKind, RedisResult, Script, ServerErrorKind, Value};
use tokio::sync::{mpsc, oneshot};

use super::{ScriptCall, SharedConnection};

/// The most calls in one pipeline: Redis runs a client's pipeline without serving another, so
/// a batch is kept to about a millisecond of script time.
pub const MOST: usize = 32;
/// How many calls may wait for their batch before a caller waits for room.
const QUEUE: usize = 4 * 1024;

/// Calls of one script, sent in pipelines on one connection.
#[derive(Clone)]
pub struct ScriptBatch {
    inner: Arc<Inner>,
}

struct Inner {
    script: Script,
    conn: SharedConnection,
    linger: Duration,
    /// The task's queue, made with the first call (a task needs a runtime).
    queue: OnceLock<mpsc::Sender<Queued>>,
}

/// A call waiting for its batch, and where its answer goes.
struct Queued {
    cmd: Cmd,
    answer: oneshot::Sender<RedisResult<Value>>,
}

impl ScriptBatch {
    /// Calls of `script` on `conn`, each waiting at most `linger` for others to join it.
    pub fn new(script: Script, conn: SharedConnection, linger: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                script,
                conn,
                linger,
                queue: OnceLock::new(),
            }),
        }
    }

    /// The script the calls are of, for [`ScriptCall::new`].
    pub fn script(&self) -> &Script {
        &self.inner.script
    }

    /// Sends `call` (of [`Self::script`]) with the batch it joins, and returns its reply.
    pub async fn call(&self, call: ScriptCall<'_>) -> RedisResult<Value> {
        let queue = self.inner.queue.get_or_init(|| {
            let (queue, calls) = mpsc::channel(QUEUE);
            tokio::spawn(run(
                calls,
                self.inner.script.clone(),
                self.inner.conn.clone(),
                self.inner.linger,
            ));
            queue
        });
        let (answer, answered) = oneshot::channel();
        let cmd = call.cmd().clone();
        match queue.send(Queued { cmd, answer }).await {
            // The task may have sent it before its answer was lost: not sent again.
            Ok(()) => answered.await.unwrap_or_else(|_| {
                Err(redis::RedisError::from((
                    ErrorKind::Io,
                    "the batch's task ended before answering",
                )))
            }),
            // Never queued: sent alone.
            Err(_) => call.invoke(&mut self.inner.conn.clone()).await,
        }
    }
}

/// The batch's task: gathers calls and sends each batch on a task of its own, so that a slow
/// answer holds up only its own batch; ends when every sender is gone.
async fn run(
    mut calls: mpsc::Receiver<Queued>,
    script: Script,
    conn: SharedConnection,
    linger: Duration,
) {
    let mut batch = Vec::with_capacity(MOST);
    while calls.recv_many(&mut batch, MOST).await > 0 {
        let closes = tokio::time::sleep(linger);
        tokio::pin!(closes);
        while batch.len() < MOST {
            let room = MOST - batch.len();
            tokio::select! {
                biased;
                got = calls.recv_many(&mut batch, room) => {
                    if got == 0 {
                        break;
                    }
                }
                () = &mut closes => break,
            }
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(MOST));
        tokio::spawn(send(script.clone(), conn.clone(), full));
    }
}

/// Sends `batch` in one pipeline and answers each of its calls.
async fn send(script: Script, mut conn: SharedConnection, mut batch: Vec<Queued>) {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for queued in &mut batch {
        pipe.add_command(std::mem::replace(&mut queued.cmd, Cmd::new()));
    }
    let replies = match pipe.query_async::<Vec<RedisResult<Value>>>(&mut conn).await {
        Ok(replies) if replies.len() == batch.len() => {
            again_if_unknown(&script, &mut conn, &pipe, replies).await
        }
        Ok(replies) => Err(redis::RedisError::from((
            ErrorKind::Client,
            "a pipeline's replies did not match its commands",
            format!("{} for {}", replies.len(), batch.len()),
        ))),
        Err(e) => Err(e),
    };
    match replies {
        Ok(replies) => {
            for (queued, reply) in batch.into_iter().zip(replies) {
                let _ = queued.answer.send(reply);
            }
        }
        Err(e) => {
            for queued in batch {
                let _ = queued.answer.send(Err(e.clone()));
            }
        }
    }
}

/// `replies`, with those that were `NOSCRIPT` replaced by the replies of the same commands sent
/// again once the script is loaded.
async fn again_if_unknown(
    script: &Script,
    conn: &mut SharedConnection,
    pipe: &redis::Pipeline,
    mut replies: Vec<RedisResult<Value>>,
) -> RedisResult<Vec<RedisResult<Value>>> {
    let unknown: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, reply)| is_unknown(reply))
        .map(|(i, _)| i)
        .collect();
    if unknown.is_empty() {
        return Ok(replies);
    }
    script.load_async(conn).await?;
    let mut again = redis::pipe();
    again.ignore_errors();
    let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
    for &i in &unknown {
        again.add_command(cmds[i].clone());
    }
    let answers = again.query_async::<Vec<RedisResult<Value>>>(conn).await?;
    for (i, answer) in unknown.into_iter().zip(answers) {
        replies[i] = answer;
    }
    Ok(replies)
}

fn is_unknown(reply: &RedisResult<Value>) -> bool {
    matches!(reply, Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
}
