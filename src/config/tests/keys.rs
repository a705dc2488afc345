//! The keys' settings (`keys.rs`): token secrets and key lists, secrets read from files, the
//! pseudonym keys; errors name the variable and never show the secret.

use super::*;

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
        let line = refused(&[(ENV_TOKEN_KEYS, &list)], ENV_TOKEN_KEYS, expected);
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
