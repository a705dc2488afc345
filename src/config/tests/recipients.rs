//! What recipients' browsers meet (`recipients.rs`): confirm page, disposition, CORS origins, the
//! second fetch's grace, the watermark's text and fallback.

use super::*;

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
