//! The runner: sends every row of a table, checks its answer and that nothing else happened,
//! and reports every row that did not hold.

use super::*;

/// Runs every row against `app`, then downloads the sentinel; fails listing every row that did
/// not hold.
pub(super) async fn run(app: &TestApp, sentinel: &(Claims, String), cases: Vec<Case>) {
    assert_logs_are_captured(app).await;
    let total = cases.len();
    let mut failed = Vec::new();
    for case in &cases {
        if let Err(panic) = AssertUnwindSafe(run_one(app, &sentinel.0, case))
            .catch_unwind()
            .await
        {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("[{}] {message}", case.name));
        }
    }
    // Once more, for anything logged after its row was checked.
    for case in &cases {
        assert_not_logged(case.name, &case.secrets);
    }
    assert_logs_are_json_lines();
    assert_downloads_resume(app, "the sentinel, after every row", &sentinel.1).await;
    assert!(
        failed.is_empty(),
        "{} of {total} rows failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

pub(super) async fn run_one(app: &TestApp, sentinel: &Claims, case: &Case) {
    let name = case.name;
    let mails_before = app.outbox();
    let live_before = app.store().live_links();

    let reply = exchange(app, &case.request).await;
    // The hidden request was never served.
    if let Some(marker) = &case.hidden {
        let recorded = app.request_log();
        assert!(
            recorded
                .iter()
                .all(|e| !e.email.as_deref().unwrap_or("").contains(marker.as_str())),
            "{name}: the hidden request was recorded: {recorded:?}"
        );
        let pseudonym = app.app.pseudonym(&format!("hidden-{marker}@example.org"));
        assert_not_logged(name, &[pseudonym]);
    }
    if let Some(answer) = &reply.answer {
        assert_no_leak(app, name, &answer.sent);
        assert_nothing_echoed(name, &answer.sent, &case.secrets);
    }
    check_answer(name, &case.expect, reply.answer.as_ref());
    assert!(
        reply.extra.is_empty(),
        "{name}: more than one answer; after the first: {:?}",
        String::from_utf8_lossy(&reply.extra)
    );
    assert!(reply.closed, "{name}: the connection was left open");

    // Nothing happened, beyond what the row expects.
    let new_mails: Vec<_> = app
        .outbox()
        .into_iter()
        .filter(|p| !mails_before.contains(p))
        .collect();
    let recipients: Vec<String> = new_mails.iter().map(|p| Mail::read(p).to).collect();
    let mut live = live_before;
    if let Mailed(to) = &case.expect {
        assert_eq!(
            recipients,
            std::slice::from_ref(to),
            "{name}: one mail, to the address validated"
        );
        let entry = app.request_log().pop().expect("a request log entry");
        assert_eq!(entry.event, Event::LinkRequested, "{name}");
        assert_eq!(entry.outcome, "sent", "{name}");
        live += 1;
    } else {
        assert!(
            recipients.is_empty(),
            "{name}: mail was written to {recipients:?}"
        );
    }
    if let Some(link) = &case.link {
        let expected = spent_by(&case.expect);
        if expected == LinkState::Used {
            live -= 1;
        }
        assert_eq!(state(app, link).await, expected, "{name}: the row's link");
    }
    assert_eq!(app.store().live_links(), live, "{name}: links in the store");
    assert_eq!(
        state(app, sentinel).await,
        LinkState::Ready { started: 0 },
        "{name}: the sentinel link was touched"
    );
    assert_not_logged(name, &case.secrets);
}

/// The state a row's own link must be in after it.
pub(super) fn spent_by(expect: &Expect) -> LinkState {
    match expect {
        Document(None) => LinkState::Used,
        Document(Some((_, end))) if end + 1 == RESUME_LEN as u64 => LinkState::Used,
        Document(Some(_)) => LinkState::Ready { started: 1 },
        _ => LinkState::Ready { started: 0 },
    }
}

pub(super) fn check_answer(name: &str, expect: &Expect, answer: Option<&Answer>) {
    let answered = || answer.unwrap_or_else(|| panic!("{name}: no answer, expected {expect:?}"));
    match expect {
        Error(status, code) => {
            let sent = &answered().sent;
            let body = assert_error(name, sent, *status, code);
            assert!(body.get("errors").is_none(), "{name}: {body}");
            if *status == 416 {
                assert_eq!(
                    sent.header("content-range"),
                    Some(format!("bytes */{RESUME_LEN}").as_str()),
                    "{name}"
                );
            }
        }
        Fields(fields) => {
            let body = assert_error(name, &answered().sent, 400, "invalid_request");
            let errors = body["errors"].as_object().cloned().unwrap_or_default();
            let named: Vec<&str> = errors.keys().map(String::as_str).collect();
            assert_eq!(named, *fields, "{name}: fields in {body}");
            // Each field says what is wrong in at least one sentence.
            let sentence = |m: &Value| m.as_str().is_some_and(|m| m.len() > 5);
            let said = |m: &Value| {
                m.as_array()
                    .is_some_and(|m| !m.is_empty() && m.iter().all(sentence))
            };
            assert!(errors.values().all(said), "{name}: {body}");
        }
        Page(status) => {
            let sent = &answered().sent;
            assert_eq!(sent.status, *status, "{name}: {:?}", sent.body);
            assert!(
                sent.header("content-type")
                    .is_some_and(|t| t.starts_with("text/html")),
                "{name}: {:?}",
                sent.headers
            );
            assert!(sent.body.starts_with("<!DOCTYPE html>"), "{name}");
            assert!(sent.header("content-security-policy").is_some(), "{name}");
        }
        Status(status) => assert_eq!(answered().sent.status, *status, "{name}"),
        Refused(statuses) => {
            if let Some(answer) = answer {
                assert!(
                    statuses.contains(&answer.sent.status),
                    "{name}: {} {:?}, expected one of {statuses:?} or a closed connection",
                    answer.sent.status,
                    answer.sent.body
                );
            }
        }
        Mailed(_) => {
            let sent = &answered().sent;
            assert_eq!(sent.status, 202, "{name}: {:?}", sent.body);
            let message = sent.json(name)["message"].as_str().unwrap_or("").to_owned();
            assert!(message.starts_with("Check your inbox"), "{name}: {message}");
            assert!(!sent.body.contains("/d/"), "{name}: a link in the answer");
        }
        Document(range) => {
            let answer = answered();
            let whole = content(1, RESUME_LEN);
            match range {
                None => {
                    assert_eq!(answer.sent.status, 200, "{name}: {:?}", answer.sent.body);
                    assert!(answer.sent.header("content-range").is_none(), "{name}");
                    assert_eq!(sha256(&answer.body), sha256(&whole), "{name}: the bytes");
                }
                Some((start, end)) => {
                    assert_eq!(answer.sent.status, 206, "{name}: {:?}", answer.sent.body);
                    assert_eq!(
                        answer.sent.header("content-range"),
                        Some(format!("bytes {start}-{end}/{RESUME_LEN}").as_str()),
                        "{name}"
                    );
                    let (start, end) = (*start as usize, *end as usize);
                    assert_eq!(answer.body, whole[start..=end], "{name}: the bytes");
                }
            }
        }
    }
}

/// No stack trace, and none of the row's secrets (address, token, injected text) in the answer.
/// A form given back to a person keeps what they typed, escaped in its fields' `value`
/// attributes: those are the one place it may appear.
pub(super) fn assert_nothing_echoed(name: &str, sent: &Sent, secrets: &[String]) {
    let html = sent
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html"));
    let body = if html {
        without_values(&sent.body)
    } else {
        sent.body.clone()
    };
    let mut texts = vec![body];
    for (key, value) in &sent.headers {
        texts.push(format!(
            "{key}: {}",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    for text in texts {
        for trace in ["panicked", "stack backtrace", "RUST_BACKTRACE", ".rs:"] {
            assert!(!text.contains(trace), "{name}: {trace:?} in {text:?}");
        }
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{name}: {secret:?} echoed in {text:?}"
            );
        }
    }
}
