//! The mail's and the owner's settings (`mail.rs`): subject, `List-Unsubscribe`, owner mail and
//! webhook; each mistake one line naming its variable.

use super::*;

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
        let line = refused(&pairs, name, expected);
        assert!(!line.contains('\r'), "{line:?}");
        assert!(!line.contains("hunter2"), "{line:?}");
    }
}
