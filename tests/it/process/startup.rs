//! Bad configuration stops startup with one line naming the variable, and never prints a secret.

use super::*;

/// A bad configuration value and what its startup failure must say.
struct BadConfig {
    /// The variable the message must name.
    var: &'static str,
    set: Vec<(&'static str, String)>,
    unset: &'static [&'static str],
    /// A value that must not be printed.
    hidden: Option<&'static str>,
}

#[tokio::test]
async fn bad_configuration_stops_startup_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let path = |p: &str| root.join(p).display().to_string();
    std::fs::write(root.join("outside.pdf"), b"%PDF-1.4 outside the documents").unwrap();
    std::fs::write(
        root.join("missing-object.toml"),
        "[documents.gone]\nkey = \"gone/nothing-here.pdf\"\nfilename = \"gone.pdf\"\ntitle = \"Gone\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("traversal.toml"),
        "[documents.outside]\nkey = \"../outside.pdf\"\nfilename = \"outside.pdf\"\ntitle = \"Outside\"\n",
    )
    .unwrap();
    // Distinctive, so finding it in the output means the value leaked (not a word like "short").
    const SHORT_SECRET: &str = "shortQz7Secret";

    let cases = [
        BadConfig {
            var: "DOCGATE_TOKEN_TTL",
            set: vec![("DOCGATE_TOKEN_TTL", "15x".to_owned())],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_TOKEN_SECRET",
            set: vec![("DOCGATE_TOKEN_SECRET", SHORT_SECRET.to_owned())],
            unset: &[],
            hidden: Some(SHORT_SECRET),
        },
        BadConfig {
            var: "DOCGATE_CATALOG",
            set: vec![("DOCGATE_CATALOG", path("no-such-catalog.toml"))],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_CATALOG",
            set: vec![("DOCGATE_CATALOG", path("missing-object.toml"))],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_CATALOG",
            set: vec![("DOCGATE_CATALOG", path("traversal.toml"))],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_LIMIT_REQUEST_PER_IP",
            set: vec![("DOCGATE_LIMIT_REQUEST_PER_IP", "lots".to_owned())],
            unset: &[],
            hidden: None,
        },
        BadConfig {
            var: "DOCGATE_TOKEN_SECRET_FILE",
            set: vec![("DOCGATE_TOKEN_SECRET_FILE", "/nonexistent".to_owned())],
            unset: &["DOCGATE_TOKEN_SECRET"],
            hidden: None,
        },
    ];

    for case in cases {
        let mut env = serve_env(root);
        for name in case.unset {
            env.remove(*name);
        }
        for (name, value) in &case.set {
            env.insert((*name).to_owned(), value.clone());
        }
        let shown = format!("{:?} {:?}", case.set, case.unset);
        let (stderr, stdout) = refused_startup(root, &env, case.var, &shown).await;
        if let Some(hidden) = case.hidden {
            assert!(
                !stderr.contains(hidden) && !stdout.contains(hidden),
                "{shown}: the secret value is printed: {stderr:?} {stdout:?}"
            );
        }
    }

    // A secret mounted as a file, with the newline `echo` leaves: accepted.
    let file_secret = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
    assert_eq!(file_secret.len(), 40);
    std::fs::write(root.join("token-secret"), format!("{file_secret}\n")).unwrap();
    let mut env = serve_env(root);
    env.remove("DOCGATE_TOKEN_SECRET");
    env.insert("DOCGATE_TOKEN_SECRET_FILE".to_owned(), path("token-secret"));
    let mut process = Docgate::spawn(root, &env, &["check"]);
    let status = process.exit(EXIT).await;
    let stdout = process.stdout.text();
    let stderr = process.stderr.text();
    eprintln!("docgate check with DOCGATE_TOKEN_SECRET_FILE -> {status}:\n{stdout}{stderr}");
    assert_eq!(
        status.code(),
        Some(0),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("config: ok")),
        "{stdout:?}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("catalog: ok")),
        "{stdout:?}"
    );
    assert!(!stdout.contains(file_secret) && !stderr.contains(file_secret));
}

/// With no secret configured (embedded mode's default), a bad value still stops startup with one
/// line: the warning about the random per-start secret concerns a service that starts.
#[tokio::test]
async fn bad_configuration_without_a_secret_still_stops_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let mut env = serve_env(root);
    env.remove("DOCGATE_TOKEN_SECRET");
    env.insert(
        "DOCGATE_CATALOG".to_owned(),
        root.join("no-such-catalog.toml").display().to_string(),
    );
    refused_startup(
        root,
        &env,
        "DOCGATE_CATALOG",
        "DOCGATE_CATALOG missing, no DOCGATE_TOKEN_SECRET",
    )
    .await;
}
