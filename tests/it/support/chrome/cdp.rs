//! The Chrome DevTools Protocol over the browser's pipe: commands out, answers routed back by id,
//! events kept in order.

#![allow(dead_code)]

use super::*;

/// One CDP event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The page session it belongs to (`None`: the browser's).
    pub session: Option<String>,
    pub method: String,
    pub params: Value,
}

pub(super) type Answer = Result<Value, Value>;

/// The pipe to one browser: commands out, answers routed back by id, events kept in order.
pub(super) struct Conn {
    pub(super) stdin: tokio::sync::Mutex<ChildStdin>,
    pub(super) next_id: AtomicU64,
    pub(super) pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    pub(super) events: Mutex<Vec<Event>>,
    /// Bumped on every event and when the pipe closes, to wake waiters.
    pub(super) bumps: watch::Sender<u64>,
    pub(super) closed: AtomicBool,
    pub(super) log: PathBuf,
}

impl Conn {
    /// Sends a command and waits (bounded) for its answer; `Err` holds the CDP error object.
    pub(super) async fn try_call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Answer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        if self.closed.load(Ordering::SeqCst) {
            panic!("{method}: {}", self.exited());
        }
        let written = self.stdin.lock().await.write_all(&bytes).await;
        if written.is_err() {
            panic!("{method}: {}", self.exited());
        }
        match tokio::time::timeout(TIMEOUT, rx).await {
            Err(_) => panic!("{method}: Chromium did not answer within {TIMEOUT:?}"),
            Ok(Err(_)) => panic!("{method}: {}", self.exited()),
            Ok(Ok(answer)) => answer,
        }
    }

    /// Sends a command that must succeed and returns its result.
    pub(super) async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params.clone()).await {
            Ok(result) => result,
            Err(error) => panic!("{method} {params} failed: {error}"),
        }
    }

    pub(super) fn exited(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("Chromium exited; the end of its log:\n{}", tail.join("\n"))
    }

    /// How many events have arrived: a mark to wait for events after.
    pub(super) fn mark(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Waits (bounded) for the first event at or after `from` that matches; returns its index.
    pub(super) async fn wait_event(
        &self,
        from: usize,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> (usize, Event) {
        let mut bumps = self.bumps.subscribe();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            {
                let events = self.events.lock().unwrap();
                if let Some((i, event)) = events
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, e)| matches(e))
                {
                    return (i, event.clone());
                }
            }
            if self.closed.load(Ordering::SeqCst) {
                panic!("waiting for {what}: {}", self.exited());
            }
            if tokio::time::timeout_at(deadline, bumps.changed())
                .await
                .is_err()
            {
                panic!("{what} did not happen within {TIMEOUT:?}");
            }
        }
    }

    pub(super) fn events_of(&self, session: &str) -> Vec<Event> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.session.as_deref() == Some(session))
            .cloned()
            .collect()
    }
}

/// Reads NUL-separated messages from fd 4 until the browser closes it.
pub(super) async fn read_messages(conn: Arc<Conn>, stdout: ChildStdout) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(0, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.last() == Some(&0) {
            buf.pop();
        }
        let Ok(message) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let waiter = conn.pending.lock().unwrap().remove(&id);
            if let Some(waiter) = waiter {
                let answer = match message.get("error") {
                    Some(error) => Err(error.clone()),
                    None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = waiter.send(answer);
            }
        } else if let Some(method) = message.get("method").and_then(Value::as_str) {
            conn.events.lock().unwrap().push(Event {
                session: message
                    .get("sessionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                method: method.to_owned(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            });
            conn.bumps.send_modify(|n| *n += 1);
        }
    }
    conn.closed.store(true, Ordering::SeqCst);
    conn.pending.lock().unwrap().clear();
    conn.bumps.send_modify(|n| *n += 1);
}
