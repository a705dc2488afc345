//! `Config::from_source`: defaults, every variable read, and one clear error per bad value. Here
//! what `mod.rs` and `env.rs` read (listeners, URLs, lifetimes, privacy); beside it one file of tests
//! per config file.

mod backends;
mod keys;
mod limits;
mod mail;
mod recipients;

use super::*;

fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The error line `pairs` stop the configuration with, once checked: it names the variable `name`,
/// says `expected` and is one line.
fn refused(pairs: &[(&str, &str)], name: &str, expected: &str) -> String {
    let err = Config::from_source(&source(pairs)).unwrap_err();
    let line = err.to_string();
    assert_eq!(err.name, name, "{line}");
    assert!(line.contains(expected), "{line:?} lacks {expected:?}");
    assert!(!line.contains('\n'), "{line:?}");
    line
}

/// The configuration from `pairs` and the two keys a shared (Redis) setup requires.
fn with_shared_keys(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut all = vec![
        (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
        (ENV_PSEUDONYM_KEY, "pseudonyms-0123456789abcdef012345"),
    ];
    all.extend_from_slice(pairs);
    Config::from_source(&source(&all))
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
            ENV_S3_RECEIVE_BUFFER_BYTES,
            "4194304",
            "needs DOCGATE_S3_BUCKET",
        ),
        (
            ENV_SMTP_URL,
            "mail.example.com",
            "DOCGATE_SMTP_URL is not valid",
        ),
    ];
    for (name, value, expected) in cases {
        refused(&[(name, value)], name, expected);
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
