//! What the binary's logs hold, in both formats: the journey, and no personal data or secret.

use super::*;

#[tokio::test]
async fn text_logs_hold_no_personal_data_or_secrets() {
    logs_hold_no_personal_data_or_secrets("text").await;
}

#[tokio::test]
async fn json_logs_hold_no_personal_data_or_secrets() {
    logs_hold_no_personal_data_or_secrets("json").await;
}

/// The access log lines in `log`: `(status, route)` of each.
fn access_lines(log: &str, format: &str) -> Vec<(u64, String)> {
    if format == "json" {
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l:?}"))
            })
            .filter(|v| v["message"] == "request")
            .map(|v| {
                (
                    v["status"].as_u64().unwrap_or_default(),
                    v["route"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    } else {
        let field = |line: &str, name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_default()
                .to_owned()
        };
        strip_ansi(log)
            .lines()
            .filter(|l| l.contains(" request method="))
            .map(|l| {
                (
                    field(l, "status=").parse().unwrap_or_default(),
                    field(l, "route="),
                )
            })
            .collect()
    }
}

async fn logs_hold_no_personal_data_or_secrets(format: &str) {
    const EMAIL: &str = "secret.person@example.org";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let mut env = serve_env(root);
    env.insert("DOCGATE_LOG".to_owned(), "debug".to_owned());
    env.insert("DOCGATE_LOG_FORMAT".to_owned(), format.to_owned());
    let mut server = Server::start(root, &env).await;

    let (mail_path, url) = server.link(EMAIL, "resume").await;
    let token = support::token_of(&url).to_owned();
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "{token}");
    let claims = TokenCodec::single(&Secret::new(SECRET.into()))
        .verify(&token, support::now())
        .expect("the mailed token verifies with the configured secret");
    let jti = claims.jti.clone();

    let response = server.get(&url).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(
        support::sha256(&body),
        support::sha256(&support::content(1, support::RESUME_LEN))
    );
    let again = server.get(&url).await;
    assert_eq!(again.status(), 410);
    let _ = again.bytes().await;
    let garbage = server
        .client
        .get(format!("{}/d/garbage", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let _ = garbage.bytes().await;

    server.process.terminate();
    let status = server.process.exit(EXIT).await;
    assert!(
        status.success(),
        "docgate exited with {status} after SIGTERM"
    );
    let log = server.process.stderr.text();
    let plain = strip_ansi(&log);
    eprintln!("--- {format} log ---\n{plain}--- end of {format} log ---");

    let access = access_lines(&log, format);
    let statuses: Vec<u64> = access.iter().map(|(status, _)| *status).collect();
    for status in [202, 200, 410, 400] {
        assert!(
            statuses.contains(&status),
            "no access line with status {status}: {access:?}"
        );
    }
    assert!(
        access
            .iter()
            .any(|(s, r)| *s == 202 && r == "/api/download-requests"),
        "{access:?}"
    );
    assert!(
        access
            .iter()
            .filter(|(s, _)| [200, 410, 400].contains(s))
            .all(|(_, r)| r == "/d/<redacted>"),
        "download routes are redacted: {access:?}"
    );

    let mut needles = vec![
        ("the email address", EMAIL),
        ("the email's local part", "secret.person"),
        ("the token", token.as_str()),
        ("the full jti", jti.as_str()),
        ("the secret", SECRET),
    ];
    for segment in &segments {
        needles.push(("a token segment", segment));
    }
    for (what, needle) in needles {
        assert!(
            !log.contains(needle) && !plain.contains(needle),
            "the {format} log holds {what} ({needle:?})"
        );
    }

    let mail_file = mail_path.file_name().unwrap().to_str().unwrap();
    assert!(
        plain.contains(mail_file),
        "the {format} log does not name the outbox file {mail_file}"
    );
}
