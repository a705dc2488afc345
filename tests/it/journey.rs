//! The recipient's journey, end to end over real HTTP: ask, read the mail, download once.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn ask_read_the_mail_download_once() {
    let app = TestApp::start().await;

    let response = app.request_link("visitor@example.org", "resume").await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "message": "Check your inbox: the link expires in 15 minutes." })
    );

    let mails = app.outbox();
    assert_eq!(mails.len(), 1);
    let mail = Mail::read(&mails[0]);
    assert_eq!(mail.to, "visitor@example.org");
    assert_eq!(mail.from, "noreply@localhost");
    assert_eq!(mail.from_name.as_deref(), Some("docgate"));
    assert_eq!(mail.subject, "Your download link for Jane Doe's resume");
    assert!(mail.link.starts_with(&format!("{}/d/", app.base)));
    assert!(mail.text.contains("expires in 15 minutes"));
    assert!(
        mail.html.contains(&format!("href=\"{}\"", mail.link)),
        "the HTML part links to the same URL"
    );
    assert!(
        !body.to_string().contains(token_of(&mail.link)),
        "the token travels by mail only"
    );

    let response = app.get(&mail.link).await;
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["content-length"], RESUME_LEN.to_string().as_str());
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"Jane_Doe_Resume.pdf\"; filename*=UTF-8''Jane_Doe_Resume.pdf"
    );
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["accept-ranges"], "bytes");
    assert!(h["etag"].to_str().unwrap().starts_with('"'));
    assert!(h.keys().all(|k| !k.as_str().starts_with("x-amz")));
    let bytes = response.bytes().await.unwrap();
    assert_eq!(sha256(&bytes), sha256(&content(1, RESUME_LEN)));

    let again = app.get(&mail.link).await;
    assert_eq!(again.status(), 410);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"], "link_used");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already been used")
    );

    // The owner's log: who asked, and that the link was downloaded.
    let log = app.wait_for_log(3).await;
    assert_eq!(log[0].email.as_deref(), Some("visitor@example.org"));
    assert_eq!(log[0].document.as_deref(), Some("resume"));
    assert_eq!(log[0].outcome, "sent");
    assert_eq!(log[0].client_ip.to_string(), "127.0.0.1");
    let jti = log[0].jti.clone().unwrap();
    let downloads: Vec<_> = log[1..].iter().map(|e| e.outcome.as_str()).collect();
    assert!(downloads.contains(&"completed"), "{downloads:?}");
    assert!(downloads.contains(&"link_used"), "{downloads:?}");
    assert!(
        log[1..]
            .iter()
            .all(|e| e.jti.as_deref() == Some(jti.as_str()))
    );
}

#[tokio::test]
async fn a_plain_html_form_post_works_too() {
    let app = TestApp::start().await;
    let response = app
        .client
        .post(format!("{}/api/download-requests", app.base))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .form(&[("email", "form.user@example.org"), ("document", "resume")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.headers().contains_key("content-security-policy"));
    let page = response.text().await.unwrap();
    assert!(page.contains("emailed you a download link. It works once and expires in 15 minutes."));
    assert_eq!(Mail::read(&app.outbox()[0]).to, "form.user@example.org");
}

#[tokio::test]
async fn non_ascii_filenames_follow_rfc_6266() {
    let app = TestApp::start().await;
    let link = app.link("visitor@example.org", "lebenslauf").await;
    let response = app.get(&link).await;
    assert_lebenslauf(response).await;

    // curl -OJ reads only the plain `filename`, which is ASCII (RFC 6266 appendix D): it saves
    // the transliterated name. Browsers read `filename*` and save the exact one (browser.rs).
    let link = app.link("visitor@example.org", "lebenslauf").await;
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("curl")
        .current_dir(dir.path())
        .args(["--silent", "--show-error", "--fail", "-O", "-J", &link])
        .output()
        .await
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = dir.path().join("Lebenslauf Jurgen Muller.pdf");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        std::fs::read(&saved).ok(),
        Some(content(2, 4096)),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_lifetime_in_answers_and_mails_is_the_configured_one() {
    let app = TestApp::with(&[("DOCGATE_TOKEN_TTL", "2h")]).await;
    let response = app.request_link("visitor@example.org", "resume").await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Check your inbox: the link expires in 2 hours."
    );
    let mail = Mail::read(&app.outbox()[0]);
    assert!(mail.text.contains("expires in 2 hours"));
    let claims = app.app.codec.verify(token_of(&mail.link), now()).unwrap();
    assert_eq!(claims.exp - claims.iat, 7200);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::start().await;
    let live = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let (status, body) = app.readyz().await;
    assert_eq!(status, 200);
    assert_eq!(body["checks"]["token_store"], "ok");
    assert_eq!(body["checks"]["object_store"], "ok");

    // The documents directory disappears: not ready once the last answer (cached for a second)
    // has aged, and the body names no path.
    std::fs::rename(app.path("documents"), app.path("moved")).unwrap();
    let answer = eventually("readiness to notice", Duration::from_secs(5), || async {
        let answer = app.readyz().await;
        (answer.0 != 200).then_some(answer)
    })
    .await;
    let (status, body) = answer;
    assert_eq!(status, 503);
    let text = body.to_string();
    assert!(text.contains("\"object_store\":\"unavailable\""), "{text}");
    assert!(!text.contains("documents"), "{text}");
}
