//! The fixtures every test server starts from: the catalog and its documents (deterministic
//! bytes), the known secrets, the settings over them, and checks of the fixtures' downloads.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The signing secret every test server uses, so tests can forge and inspect tokens.
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";
/// The key of the test servers' identifiers of people and networks (`DOCGATE_PSEUDONYM_KEY`).
pub const PSEUDONYM_KEY: &str = "test-pseudonyms-0123456789abcdef01234";

/// The identifiers a test server stores for people and networks.
pub fn pseudonyms() -> docgate::pseudonym::Pseudonyms {
    docgate::pseudonym::Pseudonyms::with_key(PSEUDONYM_KEY.as_bytes())
}

/// The id a test server's owner index and request log keep for the person at `address`.
pub fn owner_id(address: &str) -> String {
    pseudonyms().person(address)
}
/// Size of the `resume` document.
pub const RESUME_LEN: usize = 300 * 1024;
/// Size of the `big` document: larger than loopback socket buffers, so a client that stops
/// reading really stops the transfer.
pub const BIG_LEN: usize = 24 * 1024 * 1024;

pub const CATALOG: &str = r#"
[documents.resume]
key = "resume/Jane_Doe_Resume.pdf"
filename = "Jane_Doe_Resume.pdf"
title = "Jane Doe's resume"

[documents.lebenslauf]
key = "resume/lebenslauf.pdf"
filename = "Lebenslauf Jürgen Müller.pdf"
title = "Jürgen's Lebenslauf"

[documents.big]
key = "big.bin"
filename = "big.bin"
title = "A big file"
"#;

/// The `lebenslauf` download's `Content-Disposition`: an ASCII `filename` for old clients, the
/// exact one in `filename*` (RFC 6266).
pub const LEBENSLAUF_DISPOSITION: &str = "attachment; filename=\"Lebenslauf Jurgen Muller.pdf\"; \
     filename*=UTF-8''Lebenslauf%20J%C3%BCrgen%20M%C3%BCller.pdf";

/// Checks a whole download of `resume`: `200` and all its bytes.
pub async fn assert_whole_resume(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), RESUME_LEN);
}

/// Checks a whole download of `lebenslauf`: `200`, its disposition, its bytes.
pub async fn assert_lebenslauf(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        LEBENSLAUF_DISPOSITION
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), content(2, 4096));
}

/// Deterministic document bytes: distinct per document and position.
pub fn content(seed: u8, len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The SHA-256 of `bytes` in lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Writes the catalog and its documents into `dir`.
pub fn write_fixtures(dir: &Path) {
    std::fs::create_dir_all(dir.join("documents/resume")).unwrap();
    std::fs::write(dir.join("catalog.toml"), CATALOG).unwrap();
    std::fs::write(
        dir.join("documents/resume/Jane_Doe_Resume.pdf"),
        content(1, RESUME_LEN),
    )
    .unwrap();
    std::fs::write(
        dir.join("documents/resume/lebenslauf.pdf"),
        content(2, 4096),
    )
    .unwrap();
    std::fs::write(dir.join("documents/big.bin"), content(3, BIG_LEN)).unwrap();
}

/// The settings of a test server over the fixtures in `dir`: its paths, a known secret, and
/// limits high enough that only tests about limits meet them.
pub fn fixture_env(dir: &Path, public_url: &str, secret: &str) -> Vec<(String, String)> {
    let path = |p: &str| dir.join(p).display().to_string();
    [
        ("DOCGATE_PUBLIC_URL", public_url.to_owned()),
        ("DOCGATE_TOKEN_SECRET", secret.to_owned()),
        ("DOCGATE_PSEUDONYM_KEY", PSEUDONYM_KEY.to_owned()),
        ("DOCGATE_CATALOG", path("catalog.toml")),
        ("DOCGATE_DOCUMENTS_DIR", path("documents")),
        ("DOCGATE_OUTBOX_DIR", path("outbox")),
        ("DOCGATE_REQUEST_LOG", path("requests.jsonl")),
        ("DOCGATE_LIMIT_REQUEST_PER_IP", "1000/s".to_owned()),
        ("DOCGATE_LIMIT_REQUEST_PER_EMAIL", "1000/s".to_owned()),
        ("DOCGATE_LIMIT_REQUEST_PER_DOMAIN", "1000/s".to_owned()),
        ("DOCGATE_LIMIT_DOWNLOAD_PER_IP", "1000/s".to_owned()),
        ("DOCGATE_LIMIT_MAIL", "1000/s".to_owned()),
        // Every test client connects from 127.0.0.1.
        ("DOCGATE_MAX_CONNECTIONS_PER_IP", "100000".to_owned()),
        ("DOCGATE_MAX_DOWNLOADS_PER_IP", "100000".to_owned()),
        ("DOCGATE_DRAIN_TIMEOUT", "5s".to_owned()),
        ("DOCGATE_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// [`fixture_env`] with `settings` in place of the fixture's values of the same names.
pub fn fixture_env_with<'a>(
    dir: &Path,
    public_url: &str,
    secret: &str,
    settings: impl IntoIterator<Item = (&'a str, String)>,
) -> Vec<(String, String)> {
    let mut env = fixture_env(dir, public_url, secret);
    for (name, value) in settings {
        env.retain(|(set, _)| set != name);
        env.push((name.to_owned(), value));
    }
    env
}
