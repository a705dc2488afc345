//! docgate's logs, captured at `debug` as JSON for the whole test binary, and the checks on them.

use super::*;

/// Appends every write to the shared buffer.
pub(super) struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) fn lock(buffer: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buffer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything docgate has logged in this test binary since the first call, at `debug`, as JSON
/// lines: the global subscriber is installed once, here.
pub(super) fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("docgate=debug"))
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("no other global subscriber in the test binary");
        buffer
    });
    String::from_utf8_lossy(&lock(buffer)).into_owned()
}

pub(super) fn assert_not_logged(name: &str, secrets: &[String]) {
    let logs = logs();
    for secret in secrets {
        if let Some(at) = logs.find(secret.as_str()) {
            let line = logs[..at].rsplit('\n').next().unwrap_or("");
            panic!("{name}: {secret:?} is in the logs: {line}...");
        }
    }
}

/// The capture is live: a request to a unique path shows up in the access log.
pub(super) async fn assert_logs_are_captured(app: &TestApp) {
    logs();
    let path = format!("/probe-{}", nonce());
    let reply = exchange(app, &get(&path, &[])).await;
    assert_eq!(reply.answer.map(|a| a.sent.status), Some(404));
    eventually(
        &format!("the access log line for {path}"),
        Duration::from_secs(5),
        || async { logs().contains(&path).then_some(()) },
    )
    .await;
}

/// No input split a log line: every line is one JSON object.
pub(super) fn assert_logs_are_json_lines() {
    for line in logs().lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.as_ref().is_ok_and(Value::is_object),
            "not a JSON log line: {line:?}"
        );
    }
}

/// `html` with the contents of every `value="..."` attribute removed.
pub(super) fn without_values(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find(" value=\"") {
        let (before, after) = rest.split_at(at + " value=\"".len());
        out.push_str(before);
        let end = after.find('"').expect("a closed attribute");
        assert!(
            !after[..end].contains(['<', '>']),
            "markup in an attribute: {:?}",
            &after[..end]
        );
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}
