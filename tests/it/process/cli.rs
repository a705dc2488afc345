//! The CLI against the running service on embedded defaults: mint, revoke, and refusals.

use super::*;

#[tokio::test]
async fn on_embedded_defaults_the_cli_mints_and_revokes_through_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    support::write_fixtures(dir.path());
    let env = serve_env(dir.path());
    assert!(!env.contains_key("DOCGATE_REDIS_URL") && !env.contains_key("DOCGATE_ADMIN_TOKEN"));
    let mut server = Server::start(dir.path(), &env).await;
    let admin = admin_addr(&server.process.stderr.text()).expect("the admin address is logged");

    // The per-start credential: next to the request log, readable by this user only.
    let credential = dir.path().join("docgate-admin-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&credential).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(std::fs::read_to_string(&credential).unwrap().len() >= 43);

    let mut cli = env.clone();
    cli.insert("DOCGATE_ADMIN_LISTEN".to_owned(), admin.to_string());
    let cli = cli;
    let token_url = |url: &str| {
        assert!(url.starts_with(&format!("{PUBLIC_URL}/d/")), "{url}");
        format!("{}/d/{}", server.base, support::token_of(url))
    };

    // A link printed by `docgate link` downloads.
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &["link", "--email", "cli@example.org", "--document", "resume"],
    );
    assert_eq!(code, 0, "{err}");
    let url = token_url(out.trim());
    let response = server.get(&url).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), support::RESUME_LEN);
    assert_eq!(body.to_vec(), support::content(1, support::RESUME_LEN));
    assert!(server.mails().is_empty(), "no mail without --send");

    // `docgate revoke <jti>` withdraws one: 410 afterwards, and a second revoke finds nothing.
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &[
            "link",
            "--email",
            "cli@example.org",
            "--document",
            "resume",
            "--json",
            "--ttl",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let minted: serde_json::Value = serde_json::from_str(&out).unwrap();
    let jti = minted["jti"].as_str().unwrap().to_owned();
    let url = token_url(minted["url"].as_str().unwrap());
    assert_eq!(server.head(&url).await.status(), 200);
    let (code, out, err) = binary::run(dir.path(), &cli, &["revoke", &jti]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("revoked {jti}").as_str()),
        "{err}"
    );
    assert_eq!(server.get(&url).await.status(), 410);
    let (code, out, err) = binary::run(dir.path(), &cli, &["revoke", &jti]);
    assert_eq!(code, 65, "{out} {err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // `--send` mails it, as a visitor's request would; `revoke --email` withdraws every link.
    let (code, _, err) = binary::run(
        dir.path(),
        &cli,
        &[
            "link",
            "--email",
            "sent@example.org",
            "--document",
            "lebenslauf",
            "--send",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(Mail::read(&mails[0]).to, "sent@example.org");
    let (code, out, err) =
        binary::run(dir.path(), &cli, &["revoke", "--email", "Sent@Example.org"]);
    assert_eq!((code, out.trim()), (0, "revoked 1 links"), "{err}");

    // Refusals are one line with a documented code: a bad address, a wrong credential.
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &[
            "link",
            "--email",
            "\"john doe\"@example.com",
            "--document",
            "resume",
        ],
    );
    assert_eq!(code, 65, "{out} {err}");
    assert!(out.is_empty() && err.lines().count() == 1, "{err}");
    let mut wrong = cli.clone();
    wrong.insert(
        "DOCGATE_ADMIN_TOKEN".to_owned(),
        "not-the-service-token-0123456789".to_owned(),
    );
    let (code, out, err) = binary::run(dir.path(), &wrong, &["revoke", &jti]);
    assert_eq!(code, 64, "{out} {err}");
    assert!(out.is_empty() && err.lines().count() == 1, "{err}");

    // A second service started on the same address fails, and leaves the running one's
    // credential as it was: the command line still reaches the running service.
    let held = std::fs::read(&credential).unwrap();
    let mut second = env.clone();
    second.insert(
        "DOCGATE_LISTEN".to_owned(),
        server.base.trim_start_matches("http://").to_owned(),
    );
    let (code, _, err) = binary::run(dir.path(), &second, &["serve"]);
    assert_eq!(code, 64, "{err}");
    assert_eq!(std::fs::read(&credential).unwrap(), held);
    let (code, _, err) = binary::run(dir.path(), &cli, &["revoke", &jti]);
    assert_eq!(code, 65, "still reached, the link already withdrawn: {err}");

    // Stopped, the service takes its credential with it; the command line says so in one line.
    server.process.terminate();
    assert!(server.process.exit(EXIT).await.success());
    assert!(!credential.exists(), "the credential outlived the service");
    let (code, out, err) = binary::run(
        dir.path(),
        &cli,
        &["link", "--email", "cli@example.org", "--document", "resume"],
    );
    assert_eq!(code, 69, "{out} {err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no running docgate"), "{err}");
    // With the token configured on both sides and nothing listening: the same code.
    let mut configured = cli.clone();
    configured.insert(
        "DOCGATE_ADMIN_TOKEN".to_owned(),
        "a-configured-admin-token-0123456789".to_owned(),
    );
    let (code, _, err) = binary::run(dir.path(), &configured, &["revoke", &jti]);
    assert_eq!(code, 69, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no running docgate"), "{err}");
}
