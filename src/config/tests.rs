//! `Config::from_source`: defaults, every variable read, and one clear error per bad value.

use super::*;

fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_follow_the_interface() {
    let config = Config::from_source(&source(&[])).unwrap();
    assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(config.public_url, "http://localhost:8080");
    assert_eq!(config.token_ttl, Duration::from_secs(900));
    assert_eq!(config.approval_ttl, Duration::from_secs(7 * 86_400));
    assert_eq!(
        config.approval_decline_text,
        crate::texts::mail::DECLINE_BODY
    );
    assert!(config.token.generated);
    assert_eq!(config.token.signing_secret().unwrap().expose().len(), 32);
    assert_eq!(config.download_attempts, 3);
    assert_eq!(config.documents_dir, PathBuf::from("./documents"));
    assert_eq!(config.catalog, PathBuf::from("./catalog.toml"));
    assert_eq!(config.outbox_dir, PathBuf::from("./outbox"));
    assert_eq!(config.mail_from.to_string(), "docgate <noreply@localhost>");
    assert!(config.trusted_proxies.is_empty());
    assert_eq!(config.log_format, LogFormat::Text);
    assert!(config.recipients.confirm_page);
    assert_eq!(config.recipients.disposition, Disposition::Attachment);
    assert!(config.recipients.cors_origins.is_empty());
    assert_eq!(config.recipients.redownload_grace, Duration::from_secs(60));
    assert_eq!(config.public_origin(), "http://localhost:8080");
    assert_eq!(config.public_path(), "");
    assert!(!config.request_log_set);
    assert_eq!(
        config.request_log_retention,
        Some(Duration::from_secs(90 * 86_400)),
        "storage limitation: 90 days unless configured"
    );
    assert_eq!(config.request_log_max_entries, 100_000);
    assert_eq!(config.privacy_url, None, "no consent asked");
}

#[test]
fn recipient_settings_parse() {
    let config = Config::from_source(&source(&[
        (ENV_CONFIRM_PAGE, "off"),
        (ENV_DISPOSITION, "inline"),
        (
            ENV_CORS_ORIGINS,
            "https://www.Example.com, http://localhost:3000/",
        ),
        (ENV_REDOWNLOAD_GRACE, "0s"),
        (ENV_PUBLIC_URL, "https://Docs.example.com/base/"),
    ]))
    .unwrap();
    let r = &config.recipients;
    assert!(!r.confirm_page);
    assert_eq!(r.disposition, Disposition::Inline);
    assert_eq!(
        r.cors_origins,
        ["https://www.example.com", "http://localhost:3000"]
    );
    assert_eq!(r.redownload_grace, Duration::ZERO);
    assert_eq!(config.public_origin(), "https://docs.example.com");
    assert_eq!(config.public_path(), "/base");
    for (url, origin) in [
        ("https://docs.example.com:443/x", "https://docs.example.com"),
        ("http://Docs.Example.com:80", "http://docs.example.com"),
        (
            "https://docs.example.com:8443",
            "https://docs.example.com:8443",
        ),
        ("http://[::1]:8080/", "http://[::1]:8080"),
    ] {
        let config = Config::from_source(&source(&[(ENV_PUBLIC_URL, url)])).unwrap();
        assert_eq!(config.public_origin(), origin, "{url}");
    }
}

#[test]
fn privacy_settings_are_read() {
    let config = Config::from_source(&source(&[
        (ENV_REQUEST_LOG, "/var/lib/docgate/requests.jsonl"),
        (ENV_REQUEST_LOG_RETENTION, "90d"),
        (ENV_PRIVACY_URL, "https://example.com/privacy#requests"),
    ]))
    .unwrap();
    assert!(config.request_log_set);
    assert_eq!(
        config.request_log_retention,
        Some(Duration::from_secs(90 * 86_400))
    );
    assert_eq!(
        config.privacy_url.as_deref(),
        Some("https://example.com/privacy#requests")
    );
    for off in ["off", "OFF", "0"] {
        let config = Config::from_source(&source(&[
            (ENV_REQUEST_LOG_RETENTION, off),
            (ENV_REQUEST_LOG_MAX_ENTRIES, "500"),
        ]))
        .unwrap();
        assert_eq!(
            config.request_log_retention, None,
            "{off}: kept until evicted"
        );
        assert_eq!(config.request_log_max_entries, 500);
    }
}

#[test]
fn the_decline_note_is_given_or_turned_off() {
    let config = Config::from_source(&source(&[(
        ENV_APPROVAL_DECLINE_TEXT,
        "  Not this time, sorry.  ",
    )]))
    .unwrap();
    assert_eq!(config.approval_decline_text, "Not this time, sorry.");
    let config = Config::from_source(&source(&[(ENV_APPROVAL_DECLINE_TEXT, "OFF")])).unwrap();
    assert_eq!(config.approval_decline_text, "");
}

#[test]
fn bad_values_name_the_variable() {
    let cases = [
        (ENV_TOKEN_TTL, "15", "DOCGATE_TOKEN_TTL=15 is not valid"),
        (ENV_TOKEN_TTL, "0m", "must be greater than zero"),
        (ENV_APPROVAL_TTL, "7", "DOCGATE_APPROVAL_TTL=7 is not valid"),
        (ENV_APPROVAL_TTL, "0d", "must be greater than zero"),
        (
            ENV_APPROVAL_DECLINE_TEXT,
            &"x".repeat(2001),
            "must be at most 2000 characters, or off",
        ),
        (
            ENV_LISTEN,
            "localhost",
            "DOCGATE_LISTEN=localhost is not valid",
        ),
        (
            ENV_PUBLIC_URL,
            "example.com",
            "DOCGATE_PUBLIC_URL=example.com",
        ),
        (ENV_PUBLIC_URL, "ftp://x", "absolute http"),
        (
            ENV_LIMIT_REQUEST_PER_IP,
            "ten",
            "DOCGATE_LIMIT_REQUEST_PER_IP=ten",
        ),
        (
            ENV_LIMIT_REQUEST_PER_DOMAIN,
            "0/h",
            "DOCGATE_LIMIT_REQUEST_PER_DOMAIN=0/h",
        ),
        (ENV_DOWNLOAD_ATTEMPTS, "0", "DOCGATE_DOWNLOAD_ATTEMPTS=0"),
        (
            ENV_TRUSTED_PROXIES,
            "10.0.0.0/8,nope",
            "\"nope\" is not a CIDR",
        ),
        (ENV_MAIL_FROM, "not an address", "DOCGATE_MAIL_FROM="),
        (ENV_LOG_FORMAT, "xml", "expected text or json"),
        (ENV_CONFIRM_PAGE, "maybe", "expected on or off"),
        (ENV_DISPOSITION, "download", "expected attachment or inline"),
        (
            ENV_CORS_ORIGINS,
            "https://example.com/path",
            "is not an origin",
        ),
        (ENV_CORS_ORIGINS, "example.com", "is not an origin"),
        (
            ENV_REQUEST_LOG_RETENTION,
            "90",
            "DOCGATE_REQUEST_LOG_RETENTION=90 is not valid",
        ),
        (
            ENV_REQUEST_LOG_MAX_ENTRIES,
            "99",
            "DOCGATE_REQUEST_LOG_MAX_ENTRIES=99 is not valid: expected a whole number from 100",
        ),
        (
            ENV_REQUEST_LOG_MAX_ENTRIES,
            "lots",
            "DOCGATE_REQUEST_LOG_MAX_ENTRIES=lots is not valid",
        ),
        (
            ENV_REQUEST_LOG_RETENTION,
            "30m",
            "expected from 1h to 36500d",
        ),
        (
            ENV_REQUEST_LOG_RETENTION,
            "36501d",
            "expected from 1h to 36500d",
        ),
        (
            ENV_PRIVACY_URL,
            "/privacy",
            "DOCGATE_PRIVACY_URL=/privacy is not valid",
        ),
        (ENV_PRIVACY_URL, "mailto:dpo@example.com", "absolute http"),
        (
            ENV_REDIS_URL,
            "http://localhost",
            "DOCGATE_REDIS_URL is not valid",
        ),
        (ENV_S3_BUCKET, "Bad_Bucket", "DOCGATE_S3_BUCKET=Bad_Bucket"),
        (ENV_S3_ENDPOINT, "http://x", "needs DOCGATE_S3_BUCKET"),
        (
            ENV_SMTP_URL,
            "mail.example.com",
            "DOCGATE_SMTP_URL is not valid",
        ),
    ];
    for (name, value, expected) in cases {
        let err = Config::from_source(&source(&[(name, value)])).unwrap_err();
        assert_eq!(err.name, name);
        let line = err.to_string();
        assert!(line.contains(expected), "{line:?} lacks {expected:?}");
        assert!(!line.contains('\n'));
    }
}

#[test]
fn production_backends_are_read_and_hide_their_secrets() {
    let config = Config::from_source(&source(&[
        (ENV_REDIS_URL, "redis://:hunter2@redis:6379/0"),
        (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
        (ENV_PSEUDONYM_KEY, "pseudonyms-0123456789abcdef012345"),
        (ENV_S3_BUCKET, "private-docs"),
        (ENV_S3_ENDPOINT, "http://127.0.0.1:9000/"),
        (ENV_AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
        (ENV_AWS_SECRET_ACCESS_KEY, "wJalrXUtnFEMI"),
        (ENV_SMTP_URL, "smtp://user:pass@mail:587?tls=required"),
    ]))
    .unwrap();
    let redis = config.redis.as_ref().unwrap();
    assert_eq!(redis.prefix, "docgate:");
    let s3 = config.s3.as_ref().unwrap();
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(
        s3.credentials.as_ref().unwrap().access_key_id,
        "AKIDEXAMPLE"
    );
    let debug = format!("{config:?}");
    for secret in ["hunter2", "wJalrXUtnFEMI", "user:pass"] {
        assert!(!debug.contains(secret), "{secret} shown in {debug}");
    }

    let err = Config::from_source(&source(&[(ENV_REDIS_URL, "redis://localhost")])).unwrap_err();
    assert_eq!(
        err.name, ENV_TOKEN_SECRET,
        "a shared key is required with Redis"
    );
    let err = Config::from_source(&source(&[
        (ENV_S3_BUCKET, "private-docs"),
        (ENV_AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
    ]))
    .unwrap_err();
    assert_eq!(err.name, ENV_AWS_ACCESS_KEY_ID);
}

#[test]
fn short_secret_is_refused_without_showing_it() {
    let err = Config::from_source(&source(&[(ENV_TOKEN_SECRET, "hunter2")])).unwrap_err();
    let line = err.to_string();
    assert_eq!(
        line,
        "DOCGATE_TOKEN_SECRET is not valid: must be at least 32 bytes, got 7"
    );
}

#[test]
fn secrets_read_from_files_without_the_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
    let config = Config::from_source(&source(&[(
        "DOCGATE_TOKEN_SECRET_FILE",
        path.to_str().unwrap(),
    )]))
    .unwrap();
    assert!(!config.token.generated);
    assert_eq!(
        config.token.signing_secret().unwrap().expose(),
        b"0123456789abcdef0123456789abcdef"
    );

    let both = source(&[
        ("DOCGATE_TOKEN_SECRET_FILE", path.to_str().unwrap()),
        (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
    ]);
    assert!(
        Config::from_source(&both)
            .unwrap_err()
            .to_string()
            .contains("not both")
    );

    let missing = source(&[("DOCGATE_TOKEN_SECRET_FILE", "/nonexistent/secret")]);
    assert_eq!(
        Config::from_source(&missing).unwrap_err().name,
        "DOCGATE_TOKEN_SECRET_FILE"
    );
}

const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[test]
fn token_keys_list_several_and_one_signs() {
    let list = format!("# rotated 2026-11\n2026-11={KEY_B}\n\n2026-05 = {KEY_A}\n");
    let config = Config::from_source(&source(&[(ENV_TOKEN_KEYS, &list)])).unwrap();
    let kids: Vec<&str> = config.token.keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kids, ["2026-11", "2026-05"]);
    assert_eq!(config.token.signing, "2026-11", "the first key signs");
    assert_eq!(
        config.token.signing_secret().unwrap().expose(),
        KEY_B.as_bytes()
    );

    let config = Config::from_source(&source(&[
        (
            ENV_TOKEN_KEYS,
            &format!("# old, then new\nold={KEY_A},new={KEY_B}"),
        ),
        (ENV_TOKEN_SIGNING_KID, "new"),
    ]))
    .unwrap();
    assert_eq!(config.token.signing, "new");
    assert_eq!(
        config.token.signing_secret().unwrap().expose(),
        KEY_B.as_bytes()
    );

    // The single secret stays a verify-only key beside the list, so moving to a list
    // breaks no link.
    let config = Config::from_source(&source(&[
        (ENV_TOKEN_KEYS, &format!("new={KEY_B}")),
        (ENV_TOKEN_SECRET, KEY_A),
    ]))
    .unwrap();
    assert_eq!(config.token.signing, "new");
    assert_eq!(config.token.keys.len(), 2);
    assert_eq!(
        config.token.keys[1].0,
        crate::token::key_id(&Secret::new(KEY_A.into()))
    );
    assert!(!format!("{config:?}").contains(KEY_A));
}

#[test]
fn bad_token_keys_name_the_entry_and_hide_the_secret() {
    let cases = [
        (format!("a={KEY_A},a={KEY_B}"), "lists kid \"a\" twice"),
        (format!("a={KEY_A},{KEY_B}"), "entry 2 is not kid=secret"),
        (
            "a=short".to_owned(),
            "key \"a\" must be at least 32 bytes, got 5",
        ),
        (format!("bad kid={KEY_A}"), "entry 1: a kid is 1 to 64"),
        (format!("={KEY_A}"), "entry 1: a kid is 1 to 64"),
        ("# only a comment".to_owned(), "lists no key"),
    ];
    for (list, expected) in cases {
        let err = Config::from_source(&source(&[(ENV_TOKEN_KEYS, &list)])).unwrap_err();
        let line = err.to_string();
        assert_eq!(err.name, ENV_TOKEN_KEYS, "{line}");
        assert!(line.contains(expected), "{line:?} lacks {expected:?}");
        assert!(!line.contains("aaaa") && !line.contains("bbbb") && !line.contains("short"));
    }
    let err = Config::from_source(&source(&[
        (ENV_TOKEN_KEYS, &format!("a={KEY_A}")),
        (ENV_TOKEN_SIGNING_KID, "b"),
    ]))
    .unwrap_err();
    assert_eq!(err.name, ENV_TOKEN_SIGNING_KID);
    let err = Config::from_source(&source(&[
        (ENV_REDIS_URL, "redis://localhost"),
        (ENV_TOKEN_KEYS, &format!("a={KEY_A}")),
        (ENV_PSEUDONYM_KEY, KEY_B),
    ]));
    assert!(err.is_ok(), "a key list is a shared key");
}

#[test]
fn the_pseudonym_key_is_required_with_redis_and_random_without() {
    let embedded = Config::from_source(&source(&[])).unwrap();
    assert!(embedded.pseudonyms.generated);
    assert_eq!(embedded.pseudonyms.current.expose().len(), 32);

    let shared = [
        (ENV_REDIS_URL, "redis://localhost"),
        (ENV_TOKEN_SECRET, KEY_A),
    ];
    let err = Config::from_source(&source(&shared)).unwrap_err();
    assert_eq!(err.name, ENV_PSEUDONYM_KEY);
    assert!(
        err.to_string()
            .contains("is required with DOCGATE_REDIS_URL")
    );

    let with = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = shared.to_vec();
        pairs.extend_from_slice(extra);
        Config::from_source(&source(&pairs))
    };
    let config = with(&[(ENV_PSEUDONYM_KEY, KEY_B)]).unwrap();
    assert!(!config.pseudonyms.generated);
    assert_eq!(config.pseudonyms.current.expose(), KEY_B.as_bytes());
    assert!(config.pseudonyms.previous.is_empty());
    assert!(
        !format!("{config:?}").contains(KEY_B),
        "the key is never printed"
    );

    let rotated = with(&[
        (ENV_PSEUDONYM_KEY, KEY_B),
        (
            ENV_PSEUDONYM_KEY_PREVIOUS,
            "0123456789abcdef0123456789abcdef, cccccccccccccccccccccccccccccccc",
        ),
    ])
    .unwrap();
    assert_eq!(rotated.pseudonyms.previous.len(), 2);

    for (extra, name, expected) in [
        (
            &[(ENV_PSEUDONYM_KEY, "short")][..],
            ENV_PSEUDONYM_KEY,
            "must be at least 32 bytes, got 5",
        ),
        (
            &[
                (ENV_PSEUDONYM_KEY, KEY_B),
                (ENV_PSEUDONYM_KEY_PREVIOUS, "short"),
            ][..],
            ENV_PSEUDONYM_KEY_PREVIOUS,
            "must be at least 32 bytes, got 5",
        ),
    ] {
        let err = with(extra).unwrap_err();
        assert_eq!(err.name, name);
        let line = err.to_string();
        assert!(line.contains(expected), "{line}");
        assert!(!line.contains("short"), "{line}");
    }
    let err = Config::from_source(&source(&[(ENV_PSEUDONYM_KEY_PREVIOUS, KEY_A)])).unwrap_err();
    assert_eq!(err.name, ENV_PSEUDONYM_KEY_PREVIOUS);
}

#[test]
fn mail_and_owner_settings_are_read() {
    let config = Config::from_source(&source(&[])).unwrap();
    assert_eq!(config.mail_subject, SubjectTemplate::default());
    assert_eq!(config.mail_list_unsubscribe, None);
    assert!(!config.owner.enabled());

    let secret = "w".repeat(32);
    let config = Config::from_source(&source(&[
        (ENV_MAIL_SUBJECT, "Your copy of {title}"),
        (
            ENV_MAIL_LIST_UNSUBSCRIBE,
            "https://example.com/unsubscribe?l=1",
        ),
        (ENV_OWNER_EMAIL, "Jane Doe <jane@example.com>"),
        (
            ENV_OWNER_WEBHOOK_URL,
            "https://hooks.example.com/docgate?token=hunter2",
        ),
        (ENV_OWNER_WEBHOOK_SECRET, &secret),
    ]))
    .unwrap();
    assert_eq!(config.mail_subject.render("X"), "Your copy of X");
    assert_eq!(
        config.mail_list_unsubscribe.as_deref(),
        Some("https://example.com/unsubscribe?l=1")
    );
    assert_eq!(
        config.owner.email.as_ref().unwrap().email.to_string(),
        "jane@example.com"
    );
    let webhook = config.owner.webhook.as_ref().unwrap();
    assert_eq!(webhook.url.host(), Some("hooks.example.com"));
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains(&secret),
        "{debug}"
    );
    assert!(
        Config::from_source(&source(&[(
            ENV_MAIL_LIST_UNSUBSCRIBE,
            "mailto:unsubscribe@example.com?subject=stop"
        )]))
        .is_ok()
    );
}

#[test]
fn bad_mail_and_owner_settings_name_the_variable() {
    let secret = "w".repeat(32);
    /// The settings, the variable named, and what the message says.
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec![(ENV_MAIL_SUBJECT, "Link for {document}")],
            ENV_MAIL_SUBJECT,
            "unknown placeholder {document}",
        ),
        (
            vec![(ENV_MAIL_SUBJECT, "Link\r\nBcc: x@example.org")],
            ENV_MAIL_SUBJECT,
            "Bcc",
        ),
        (
            vec![(ENV_MAIL_SUBJECT, "Link\nfor {title}")],
            ENV_MAIL_SUBJECT,
            "one line",
        ),
        (
            vec![(ENV_MAIL_LIST_UNSUBSCRIBE, "http://example.com/u")],
            ENV_MAIL_LIST_UNSUBSCRIBE,
            "mailto: or https:",
        ),
        (
            vec![(ENV_MAIL_LIST_UNSUBSCRIBE, "mailto:nobody")],
            ENV_MAIL_LIST_UNSUBSCRIBE,
            "followed by an address",
        ),
        (
            vec![(ENV_MAIL_LIST_UNSUBSCRIBE, "https://example.com/u>, <x")],
            ENV_MAIL_LIST_UNSUBSCRIBE,
            "without spaces",
        ),
        (
            vec![(ENV_OWNER_EMAIL, "jane at example")],
            ENV_OWNER_EMAIL,
            "DOCGATE_OWNER_EMAIL=jane at example",
        ),
        (
            vec![(ENV_OWNER_WEBHOOK_URL, "https://hooks.example.com/x")],
            ENV_OWNER_WEBHOOK_SECRET,
            "is required with DOCGATE_OWNER_WEBHOOK_URL",
        ),
        (
            vec![(ENV_OWNER_WEBHOOK_SECRET, &secret)],
            ENV_OWNER_WEBHOOK_SECRET,
            "needs DOCGATE_OWNER_WEBHOOK_URL",
        ),
        (
            vec![
                (ENV_OWNER_WEBHOOK_URL, "ftp://hooks.example.com/hunter2"),
                (ENV_OWNER_WEBHOOK_SECRET, &secret),
            ],
            ENV_OWNER_WEBHOOK_URL,
            "expected an http:// or https:// URL",
        ),
        (
            vec![
                (
                    ENV_OWNER_WEBHOOK_URL,
                    "https://user:hunter2@hooks.example.com/",
                ),
                (ENV_OWNER_WEBHOOK_SECRET, &secret),
            ],
            ENV_OWNER_WEBHOOK_URL,
            "must not hold a user or password",
        ),
        (
            vec![
                (ENV_OWNER_WEBHOOK_URL, "https://hooks.example.com/"),
                (ENV_OWNER_WEBHOOK_SECRET, "hunter2"),
            ],
            ENV_OWNER_WEBHOOK_SECRET,
            "must be at least 32 bytes, got 7",
        ),
        (
            vec![(ENV_REDIS_WAIT_REPLICAS, "1")],
            ENV_REDIS_WAIT_REPLICAS,
            "needs DOCGATE_REDIS_URL",
        ),
        (
            vec![
                (ENV_REDIS_URL, "redis://a"),
                (ENV_REDIS_WAIT_REPLICAS, "17"),
            ],
            ENV_REDIS_WAIT_REPLICAS,
            "from 0 (off) to 16",
        ),
        (
            vec![
                (ENV_REDIS_URL, "redis://a"),
                (ENV_REDIS_WAIT_REPLICAS, "-1"),
            ],
            ENV_REDIS_WAIT_REPLICAS,
            "from 0 (off) to 16",
        ),
        (
            vec![
                (ENV_REDIS_URL, "redis://a"),
                (ENV_REDIS_WAIT_TIMEOUT, "0ms"),
            ],
            ENV_REDIS_WAIT_TIMEOUT,
            "from 1ms to 1s",
        ),
        (
            vec![(ENV_REDIS_URL, "redis://a"), (ENV_REDIS_WAIT_TIMEOUT, "2s")],
            ENV_REDIS_WAIT_TIMEOUT,
            "from 1ms to 1s",
        ),
        (
            vec![
                (ENV_REDIS_URL, "redis://a"),
                (ENV_REDIS_WAIT_TIMEOUT, "fast"),
            ],
            ENV_REDIS_WAIT_TIMEOUT,
            "from 1ms to 1s",
        ),
    ];
    for (pairs, name, expected) in cases {
        let err = Config::from_source(&source(&pairs)).unwrap_err();
        let line = err.to_string();
        assert_eq!(err.name, name, "{line}");
        assert!(line.contains(expected), "{line:?} lacks {expected:?}");
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        assert!(!line.contains("hunter2"), "{line:?}");
    }
}

#[test]
fn slow_client_limits_parse_and_bad_ones_name_the_variable() {
    let config = Config::from_source(&source(&[])).unwrap();
    assert_eq!(config.http.body_timeout, Duration::from_secs(5));
    assert_eq!(config.http.max_connections_per_ip, 64);
    assert_eq!(config.http.max_downloads, 1024);
    assert_eq!(config.http.max_downloads_per_ip, 8);
    assert_eq!(config.http.download_min_rate, Some(4096));
    assert_eq!(config.http.download_rate_window, Duration::from_secs(60));
    let config = Config::from_source(&source(&[
        (ENV_DOWNLOAD_MIN_RATE, "off"),
        (ENV_BODY_TIMEOUT, "2s"),
    ]))
    .unwrap();
    assert_eq!(config.http.download_min_rate, None);
    assert_eq!(config.http.body_timeout, Duration::from_secs(2));
    for (value, rate) in [("512", 512), ("512/s", 512), ("1MiB/s", 1 << 20)] {
        let config = Config::from_source(&source(&[(ENV_DOWNLOAD_MIN_RATE, value)])).unwrap();
        assert_eq!(config.http.download_min_rate, Some(rate), "{value}");
    }
    for (name, value) in [
        (ENV_DOWNLOAD_MIN_RATE, "0"),
        (ENV_DOWNLOAD_MIN_RATE, "4 kB/s"),
        (ENV_BODY_TIMEOUT, "0s"),
        (ENV_MAX_CONNECTIONS_PER_IP, "0"),
        (ENV_MAX_DOWNLOADS, "none"),
        (ENV_MAX_DOWNLOADS_PER_IP, "0"),
        (ENV_DOWNLOAD_RATE_WINDOW, "60"),
    ] {
        let err = Config::from_source(&source(&[(name, value)])).unwrap_err();
        assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
    }
}

#[test]
fn public_url_loses_its_trailing_slash() {
    let config = Config::from_source(&source(&[(
        ENV_PUBLIC_URL,
        "https://docs.example.com/get/",
    )]))
    .unwrap();
    assert_eq!(config.public_url, "https://docs.example.com/get");
}

#[test]
fn redis_topologies_are_read_one_at_a_time() {
    let keys = [
        (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
        (ENV_PSEUDONYM_KEY, "pseudonyms-0123456789abcdef012345"),
    ];
    let with = |pairs: &[(&str, &str)]| {
        let mut all = keys.to_vec();
        all.extend_from_slice(pairs);
        Config::from_source(&source(&all))
    };

    let config = with(&[(
        ENV_REDIS_CLUSTER_URLS,
        "redis://:hunter2@10.0.0.1:6379, redis://:hunter2@10.0.0.2:6379",
    )])
    .unwrap();
    let redis = config.redis.as_ref().unwrap();
    match &redis.topology {
        Topology::Cluster { urls } => assert_eq!(urls.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(redis.topology.variable(), ENV_REDIS_CLUSTER_URLS);
    assert!(!format!("{config:?}").contains("hunter2"));

    let config = with(&[
        (
            ENV_REDIS_SENTINEL_URLS,
            "redis://10.0.0.1:26379,redis://10.0.0.2:26379",
        ),
        (ENV_REDIS_SENTINEL_MASTER, "mymaster"),
    ])
    .unwrap();
    match &config.redis.as_ref().unwrap().topology {
        Topology::Sentinel { urls, master } => {
            assert_eq!(urls.len(), 2);
            assert_eq!(master, "mymaster");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        with(&[(ENV_REDIS_URL, "redis://localhost")])
            .unwrap()
            .redis
            .is_some_and(|r| matches!(r.topology, Topology::Standalone { .. }) && r.ca.is_none())
    );
}

#[test]
fn completions_wait_for_replicas_only_when_asked() {
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
            (ENV_PSEUDONYM_KEY, "pseudonyms-0123456789abcdef012345"),
            (ENV_REDIS_URL, "redis://localhost"),
        ];
        all.extend_from_slice(pairs);
        Config::from_source(&source(&all))
            .unwrap()
            .redis
            .unwrap()
            .wait
    };
    assert_eq!(with(&[]), None, "off by default");
    assert_eq!(with(&[(ENV_REDIS_WAIT_REPLICAS, "0")]), None);
    assert_eq!(
        with(&[(ENV_REDIS_WAIT_REPLICAS, "2")]),
        Some(WaitReplicas {
            replicas: 2,
            timeout: Duration::from_millis(250)
        })
    );
    assert_eq!(
        with(&[
            (ENV_REDIS_WAIT_REPLICAS, "1"),
            (ENV_REDIS_WAIT_TIMEOUT, "1s")
        ]),
        Some(WaitReplicas {
            replicas: 1,
            timeout: Duration::from_secs(1)
        })
    );
}

#[test]
fn every_redis_mistake_is_one_line_naming_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = dir.path().join("missing.pem");
    let (not_pem, missing) = (not_pem.display().to_string(), missing.display().to_string());
    // The variables set, the variable the error names, and what it says.
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                (ENV_REDIS_URL, "redis://a"),
                (ENV_REDIS_CLUSTER_URLS, "redis://b"),
            ],
            ENV_REDIS_CLUSTER_URLS,
            "set only one of DOCGATE_REDIS_URL and DOCGATE_REDIS_CLUSTER_URLS",
        ),
        (
            vec![
                (ENV_REDIS_CLUSTER_URLS, "redis://b"),
                (ENV_REDIS_SENTINEL_URLS, "redis://c"),
                (ENV_REDIS_SENTINEL_MASTER, "m"),
            ],
            ENV_REDIS_SENTINEL_URLS,
            "set only one of",
        ),
        (
            vec![(ENV_REDIS_SENTINEL_URLS, "redis://c:26379")],
            ENV_REDIS_SENTINEL_MASTER,
            "is required with DOCGATE_REDIS_SENTINEL_URLS",
        ),
        (
            vec![(ENV_REDIS_SENTINEL_MASTER, "mymaster")],
            ENV_REDIS_SENTINEL_MASTER,
            "needs DOCGATE_REDIS_SENTINEL_URLS",
        ),
        (
            vec![
                (ENV_REDIS_SENTINEL_URLS, "redis://c:26379"),
                (ENV_REDIS_SENTINEL_MASTER, "my master"),
            ],
            ENV_REDIS_SENTINEL_MASTER,
            "without spaces",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379,,redis://b:6379")],
            ENV_REDIS_CLUSTER_URLS,
            "URL 2 of the list is empty",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379,http://b:6379")],
            ENV_REDIS_CLUSTER_URLS,
            "URL 2 of the list: expected a redis:// or rediss:// URL",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379,rediss://b:6379")],
            ENV_REDIS_CLUSTER_URLS,
            "mixes redis:// and rediss://",
        ),
        (
            vec![(
                ENV_REDIS_CLUSTER_URLS,
                "redis://:x@a:6379,redis://:y@b:6379",
            )],
            ENV_REDIS_CLUSTER_URLS,
            "the same user, password and database",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379/2")],
            ENV_REDIS_CLUSTER_URLS,
            "only database 0",
        ),
        (
            vec![(ENV_REDIS_CA_FILE, "/etc/ca.pem")],
            ENV_REDIS_CA_FILE,
            "needs DOCGATE_REDIS_URL",
        ),
        (
            vec![(ENV_REDIS_URL, "redis://a"), (ENV_REDIS_CA_FILE, &not_pem)],
            ENV_REDIS_CA_FILE,
            "applies to rediss:// URLs only",
        ),
        (
            vec![(ENV_REDIS_URL, "rediss://a"), (ENV_REDIS_CA_FILE, &not_pem)],
            ENV_REDIS_CA_FILE,
            "holds no PEM certificate",
        ),
        (
            vec![(ENV_REDIS_URL, "rediss://a"), (ENV_REDIS_CA_FILE, &missing)],
            ENV_REDIS_CA_FILE,
            "is not valid",
        ),
    ];
    for (pairs, name, expected) in cases {
        let err = Config::from_source(&source(&pairs)).unwrap_err();
        let line = err.to_string();
        assert_eq!(err.name, name, "{line}");
        assert!(line.contains(expected), "{line:?} lacks {expected:?}");
        assert!(!line.contains('\n'));
        assert!(!line.contains("://:"), "no credentials shown: {line}");
    }
}

#[test]
fn watermark_settings_parse_and_fail_closed_by_default() {
    let config = Config::from_source(&source(&[])).unwrap();
    assert_eq!(
        config
            .recipients
            .watermark_text
            .render("a@example.com", "2026-01-02"),
        "Downloaded by a@example.com on 2026-01-02"
    );
    assert_eq!(config.recipients.watermark_fallback, StampFallback::Refuse);

    let config = Config::from_source(&source(&[
        (ENV_WATERMARK_TEXT, "Copy of {email}"),
        (ENV_WATERMARK_FALLBACK, "serve"),
    ]))
    .unwrap();
    assert_eq!(
        config
            .recipients
            .watermark_text
            .render("a@example.com", "2026-01-02"),
        "Copy of a@example.com"
    );
    assert_eq!(config.recipients.watermark_fallback, StampFallback::Serve);

    for (name, value, reason) in [
        (
            ENV_WATERMARK_TEXT,
            "For {name}",
            "unknown placeholder {name}",
        ),
        (ENV_WATERMARK_FALLBACK, "maybe", "expected serve or refuse"),
    ] {
        let err = Config::from_source(&source(&[(name, value)])).unwrap_err();
        assert_eq!(err.name, name);
        assert!(err.to_string().contains(reason), "{err}");
    }
}
