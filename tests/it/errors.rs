//! Every error path of asking for a link (`POST /api/download-requests`) and of routing, over real
//! HTTP: the status, the body, and that nothing else happened (no mail written, no link minted, no
//! link consumed). Every response seen here is also checked for leaks of the storage layout
//! (documents directory, object key, S3 headers). The download link's own errors are in
//! `link_errors`.

use docgate::token::Claims;

use crate::support::probe::*;
use crate::support::*;

/// Sends a JSON link request for `email` and `document`.
async fn request_json(app: &TestApp, name: &str, email: impl AsRef<str>, document: &str) -> Sent {
    let body = serde_json::json!({ "email": email.as_ref(), "document": document });
    send(
        app,
        name,
        app.client
            .post(format!("{}{REQUESTS}", app.base))
            .json(&body),
    )
    .await
}

/// A refused link request.
struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// Acceptable codes (more than one only where the contract allows either).
    codes: &'static [&'static str],
    /// For 400: exactly these fields have messages.
    fields: &'static [&'static str],
    /// For 400: the first field's first message contains this (case-insensitive).
    mentions: &'static str,
}

fn invalid(
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    fields: &'static [&'static str],
    mentions: &'static str,
) -> Case {
    Case {
        name,
        content_type,
        body,
        status: 400,
        codes: &["invalid_request"],
        fields,
        mentions,
    }
}

/// A request refused as a whole (no field messages): `status` with one of `codes`.
fn refused(
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    codes: &'static [&'static str],
) -> Case {
    Case {
        name,
        content_type,
        body,
        status,
        codes,
        fields: &[],
        mentions: "",
    }
}

fn bad_email(name: &'static str, email: &str, mentions: &'static str) -> Case {
    invalid(
        name,
        JSON,
        json(serde_json::json!({ "email": email, "document": "resume" })),
        &["email"],
        mentions,
    )
}

/// Sends one refused link request; checks its answer and that nothing else happened.
async fn check_refused(app: &TestApp, sentinel: &Claims, case: Case) {
    let name = case.name;
    let mut request = app
        .client
        .post(format!("{}{REQUESTS}", app.base))
        .body(case.body);
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    let sent = send(app, name, request).await;
    assert_eq!(sent.status, case.status, "{name}: {:?}", sent.body);
    let body = sent.json(name);
    let code = body["error"].as_str().unwrap_or_default();
    assert!(case.codes.contains(&code), "{name}: code in {body}");
    assert_error(name, &sent, case.status, code);

    if case.status == 400 {
        let errors = body["errors"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: no errors object in {body}"));
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(fields, case.fields, "{name}: fields in {body}");
        for (field, messages) in errors {
            let messages = messages
                .as_array()
                .unwrap_or_else(|| panic!("{name}: errors.{field} is not an array"));
            assert!(!messages.is_empty(), "{name}: errors.{field} is empty");
            assert!(
                messages
                    .iter()
                    .all(|m| m.as_str().is_some_and(|m| m.len() > 5)),
                "{name}: errors.{field} = {messages:?}"
            );
        }
        let first = errors[case.fields[0]][0].as_str().unwrap().to_lowercase();
        assert!(
            first.contains(&case.mentions.to_lowercase()),
            "{name}: {first:?} should mention {:?}",
            case.mentions
        );
    } else {
        assert!(body.get("errors").is_none(), "{name}: {body}");
    }
    assert_untouched(app, name, 1, sentinel).await;
}

#[tokio::test]
async fn refused_link_requests_send_nothing_and_mint_nothing() {
    let app = TestApp::start().await;
    std::fs::create_dir_all(app.path("etc")).unwrap();
    std::fs::write(app.path("etc/passwd"), PASSWD_SENTINEL).unwrap();
    let (sentinel, _) = app.mint("resume").await;
    let too_long = format!("{}@example.com", "a".repeat(250));
    assert!(too_long.len() > 254);
    let injection = "a@b.com\r\nBcc: x@y.com";

    let cases = vec![
        // The body itself.
        invalid(
            "malformed JSON",
            JSON,
            b"{\"email\": \"visitor@example.org\", \"document\": ".to_vec(),
            &["body"],
            "JSON",
        ),
        invalid(
            "email as a number",
            JSON,
            json(serde_json::json!({ "email": 42, "document": "resume" })),
            &["body"],
            "JSON",
        ),
        invalid("empty JSON body", JSON, Vec::new(), &["body"], "JSON"),
        invalid("JSON null", JSON, b"null".to_vec(), &["body"], "JSON"),
        // Missing fields.
        invalid(
            "missing email",
            JSON,
            json(serde_json::json!({ "document": "resume" })),
            &["email"],
            "email",
        ),
        invalid(
            "missing document",
            JSON,
            json(serde_json::json!({ "email": "visitor@example.org" })),
            &["document"],
            "document",
        ),
        invalid(
            "both missing",
            JSON,
            json(serde_json::json!({})),
            &["document", "email"],
            "",
        ),
        invalid(
            "both empty strings",
            JSON,
            json(serde_json::json!({ "email": " ", "document": "" })),
            &["document", "email"],
            "",
        ),
        invalid(
            "form missing email",
            FORM,
            form(&[("document", "resume")]),
            &["email"],
            "email",
        ),
        // Addresses.
        bad_email("plainaddress", "plainaddress", "not a valid"),
        bad_email("no domain", "a@", "not a valid"),
        bad_email("space in local part", "a b@example.com", "not a valid"),
        bad_email("header injection (JSON)", injection, "not a valid"),
        invalid(
            "header injection (form)",
            FORM,
            form(&[("email", injection), ("document", "resume")]),
            &["email"],
            "not a valid",
        ),
        invalid(
            "LF header injection (form)",
            FORM,
            form(&[("email", "a@b.com\nBcc: x@y.com"), ("document", "resume")]),
            &["email"],
            "not a valid",
        ),
        bad_email("IP literal", "a@[127.0.0.1]", ""),
        bad_email("dotless domain", "a@localhost", "domain"),
        bad_email("over 254 bytes", &too_long, "too long"),
        bad_email("disposable", "someone@mailinator.com", "disposable"),
        bad_email(
            "disposable, upper case",
            "someone@MAILINATOR.COM",
            "disposable",
        ),
        bad_email(
            "subdomain of a disposable",
            "someone@eu.mailinator.com",
            "disposable",
        ),
        // Documents.
        refused(
            "unknown document",
            JSON,
            json(serde_json::json!({ "email": "visitor@example.org", "document": "nope" })),
            404,
            &["unknown_document"],
        ),
        refused(
            "unknown document (form)",
            FORM,
            form(&[("email", "visitor@example.org"), ("document", "nope")]),
            404,
            &["unknown_document"],
        ),
        // Content types.
        refused(
            "text/plain",
            Some("text/plain"),
            json(serde_json::json!({ "email": "visitor@example.org", "document": "resume" })),
            415,
            &["unsupported_media_type"],
        ),
        refused(
            "no content type",
            None,
            json(serde_json::json!({ "email": "visitor@example.org", "document": "resume" })),
            415,
            &["unsupported_media_type"],
        ),
        refused(
            "multipart/form-data",
            Some("multipart/form-data; boundary=XyZ"),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n\
                    visitor@example.org\r\n--XyZ\r\nContent-Disposition: form-data; \
                    name=\"document\"\r\n\r\nresume\r\n--XyZ--\r\n"
                .to_vec(),
            415,
            &["unsupported_media_type"],
        ),
    ];

    for case in cases {
        check_refused(&app, &sentinel, case).await;
    }

    // Path traversal in the document id: refused, and the file it points at is not read.
    let name = "path traversal document";
    let sent = send(
        &app,
        name,
        app.client.post(format!("{}{REQUESTS}", app.base)).json(
            &serde_json::json!({ "email": "visitor@example.org", "document": "../etc/passwd" }),
        ),
    )
    .await;
    assert!(
        matches!(sent.status, 400 | 404),
        "{name}: status {} {:?}",
        sent.status,
        sent.body
    );
    let body = sent.json(name);
    assert!(
        ["unknown_document", "invalid_request"].contains(&body["error"].as_str().unwrap_or("")),
        "{name}: {body}"
    );
    assert_untouched(&app, name, 1, &sentinel).await;
}

/// The contract's JSON body is an object. serde's derived `Deserialize` also takes a struct from a
/// sequence of its fields, in order; an array must not become a mailed link all the same.
#[tokio::test]
async fn a_json_array_is_not_a_link_request() {
    let app = TestApp::start().await;
    let (sentinel, _) = app.mint("resume").await;
    for (name, body) in [
        (
            "array of the two fields, in order",
            serde_json::json!(["visitor@example.org", "resume"]),
        ),
        ("empty array", serde_json::json!([])),
    ] {
        let sent = send(
            &app,
            name,
            app.client
                .post(format!("{}{REQUESTS}", app.base))
                .json(&body),
        )
        .await;
        let body = assert_error(name, &sent, 400, "invalid_request");
        assert!(body["errors"]["body"].is_array(), "{name}: {body}");
        assert_untouched(&app, name, 1, &sentinel).await;
    }
}

#[tokio::test]
async fn bodies_over_4_kib_are_refused_however_they_are_sent() {
    let app = TestApp::start().await;
    let (sentinel, _) = app.mint("resume").await;
    // A valid request padded with an unknown (ignored) field: only its size is wrong.
    let padded = |size: usize| {
        let base =
            serde_json::json!({ "email": "visitor@example.org", "document": "resume", "pad": "" })
                .to_string();
        let body = serde_json::json!({
            "email": "visitor@example.org",
            "document": "resume",
            "pad": "x".repeat(size - base.len()),
        })
        .to_string();
        assert_eq!(body.len(), size);
        body
    };

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = padded(5 * 1024)
        .into_bytes()
        .chunks(1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let refused: [(&str, &str, reqwest::Body); 3] = [
        (
            "5 KiB with Content-Length",
            "application/json",
            padded(5 * 1024).into(),
        ),
        (
            "5 KiB chunked, no Content-Length",
            "application/json",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        ),
        (
            "5 KiB form with Content-Length",
            "application/x-www-form-urlencoded",
            format!(
                "email=visitor%40example.org&document=resume&pad={}",
                "x".repeat(5 * 1024)
            )
            .into(),
        ),
    ];
    for (name, content_type, body) in refused {
        let sent = send(&app, name, post_request(&app, REQUESTS, content_type, body)).await;
        assert_error(name, &sent, 413, "body_too_large");
        assert_untouched(&app, name, 1, &sentinel).await;
    }

    // The limit is "over 4 KiB": exactly 4 KiB is a normal request.
    let name = "exactly 4 KiB";
    let sent = send(
        &app,
        name,
        post_request(&app, REQUESTS, "application/json", padded(4096)),
    )
    .await;
    assert_eq!(sent.status, 202, "{name}: {:?}", sent.body);
    assert_eq!(app.outbox().len(), 1, "{name}: one mail");
}

#[tokio::test]
async fn link_requests_over_the_per_ip_rate_are_refused_with_retry_after() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_REQUEST_PER_IP", "2/m")]).await;
    for i in 0..2 {
        let name = format!("request {}", i + 1);
        let sent = send(
            &app,
            &name,
            app.client.post(format!("{}{REQUESTS}", app.base)).json(
                &serde_json::json!({ "email": format!("v{i}@example.org"), "document": "resume" }),
            ),
        )
        .await;
        assert_eq!(sent.status, 202, "{name}: {:?}", sent.body);
    }
    assert_eq!(app.outbox().len(), 2);
    assert_eq!(app.store().live_links(), 2);

    let name = "third request";
    let sent = request_json(&app, name, "v3@example.org", "resume").await;
    assert_error(name, &sent, 429, "rate_limited");
    assert_retry_after(name, &sent, 1..=30);
    assert_eq!(app.outbox().len(), 2, "{name}: no third mail");
    assert_eq!(app.store().live_links(), 2, "{name}: no third link");
}

#[tokio::test]
async fn over_the_per_address_rate_the_answer_is_the_same_and_nothing_is_mailed() {
    let app = TestApp::with(&[("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1/h")]).await;
    let first = request_json(&app, "first", "Jane.Doe@Example.org", "resume").await;
    assert_eq!(first.status, 202);
    assert_eq!(app.outbox().len(), 1);

    let over = [
        (
            "same address, other case",
            app.client
                .post(format!("{}{REQUESTS}", app.base))
                .json(&serde_json::json!({"email": "jane.doe@example.org", "document": "resume"})),
        ),
        (
            "same address, form-encoded and padded",
            app.client
                .post(format!("{}{REQUESTS}", app.base))
                .form(&[("email", " JANE.DOE@EXAMPLE.ORG "), ("document", "resume")]),
        ),
    ];
    for (name, request) in over {
        let sent = send(&app, name, request).await;
        assert_eq!(sent.status, 202, "{name}: the same answer as a mail sent");
        assert_eq!(sent.body, first.body, "{name}: the same body");
        assert_eq!(sent.header("retry-after"), None, "{name}");
        assert_eq!(app.outbox().len(), 1, "{name}: no second mail");
        assert_eq!(app.store().live_links(), 1, "{name}: no second link");
    }
    let log = app.wait_for_log(3).await;
    let outcomes: Vec<&str> = log.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["sent", "not_sent_address_limit", "not_sent_address_limit"],
        "the owner sees which requests were not mailed"
    );

    let other = app.request_link("someone.else@example.org", "resume").await;
    assert_eq!(other.status(), 202, "another address is not limited");
    assert_eq!(app.outbox().len(), 2);
    assert_eq!(app.store().live_links(), 2);
}

#[tokio::test]
async fn other_methods_and_routes_are_refused() {
    let app = TestApp::start().await;
    let (sentinel, link) = app.mint("resume").await;

    let cases = [
        (
            "GET link requests",
            reqwest::Method::GET,
            REQUESTS.to_owned(),
            "POST",
        ),
        (
            "PUT link requests",
            reqwest::Method::PUT,
            REQUESTS.to_owned(),
            "POST",
        ),
        (
            "DELETE link requests",
            reqwest::Method::DELETE,
            REQUESTS.to_owned(),
            "POST",
        ),
        (
            "PUT a download link",
            reqwest::Method::PUT,
            format!("/d/{}", token_of(&link)),
            "GET, HEAD, POST",
        ),
        (
            "DELETE a download link",
            reqwest::Method::DELETE,
            format!("/d/{}", token_of(&link)),
            "GET, HEAD, POST",
        ),
    ];
    for (name, method, path, allow) in cases {
        let sent = send(
            &app,
            name,
            app.client
                .request(method, format!("{}{path}", app.base))
                .json(&serde_json::json!({ "email": "visitor@example.org", "document": "resume" })),
        )
        .await;
        assert_error(name, &sent, 405, "method_not_allowed");
        let allowed: Vec<&str> = sent
            .header("allow")
            .unwrap_or_else(|| panic!("{name}: no Allow header"))
            .split(',')
            .map(str::trim)
            .collect();
        let expected: Vec<&str> = allow.split(", ").collect();
        assert_eq!(allowed, expected, "{name}: Allow");
        assert_untouched(&app, name, 1, &sentinel).await;
    }

    for path in [
        "/nope",
        "/api/download-requests/extra",
        "/api",
        "/d",
        "/documents/resume/Jane_Doe_Resume.pdf",
    ] {
        let name = format!("GET {path}");
        let sent = send(&app, &name, app.client.get(format!("{}{path}", app.base))).await;
        assert_error(&name, &sent, 404, "not_found");
        assert_untouched(&app, &name, 1, &sentinel).await;
    }

    // The link survived all of that.
    assert_downloads_resume(&app, "sentinel", &link).await;
}
