//! What clients may cost (`limits.rs`): the slow-client limits and their defaults.

use super::*;

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
