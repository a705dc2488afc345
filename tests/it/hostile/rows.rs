//! A row: a raw request, the answer it must get, and the builders of common rows.

use super::*;

/// One hostile request and what must come of it.
pub(super) struct Case {
    pub(super) name: &'static str,
    /// The bytes sent, exactly.
    pub(super) request: Vec<u8>,
    pub(super) expect: Expect,
    /// Strings of the request that must never come back in the answer nor appear in the logs.
    pub(super) secrets: Vec<String>,
    /// The row's own genuine link: spent by a whole document, else untouched.
    pub(super) link: Option<Claims>,
    /// The unique marker of a request hidden in this one: never mailed, logged or recorded.
    pub(super) hidden: Option<String>,
}

/// The answer a row must get.
#[derive(Debug)]
pub(super) enum Expect {
    /// `{"error": code, "message": ...}` with this status (and `Content-Range` for a 416).
    Error(u16, &'static str),
    /// `400 {"error": "invalid_request", "errors": {...}}` naming exactly these fields.
    Fields(&'static [&'static str]),
    /// A short HTML page with this status.
    Page(u16),
    /// This status from the HTTP layer, whatever the body.
    Status(u16),
    /// Refused by the HTTP layer: one of these statuses, or the connection closed unanswered.
    Refused(&'static [u16]),
    /// `202`, and exactly one mail, to this address.
    Mailed(String),
    /// The `resume` document: whole (`200`), or this inclusive range (`206`).
    Document(Option<(u64, u64)>),
}
pub(super) use Expect::*;

/// A row whose request is built from a fresh nonce; the nonce is one of its secrets.
pub(super) fn case(
    name: &'static str,
    expect: Expect,
    build: impl FnOnce(&str) -> Vec<u8>,
) -> Case {
    let n = nonce();
    Case {
        name,
        request: build(&n),
        expect,
        secrets: vec![n],
        link: None,
        hidden: None,
    }
}

/// A row that must mail once: `build` gives the address mailed and the request.
pub(super) fn mailed(name: &'static str, build: impl FnOnce(&str) -> (String, Vec<u8>)) -> Case {
    let n = nonce();
    let (to, request) = build(&n);
    case(name, Mailed(to), |_| request).secret(n)
}

impl Case {
    pub(super) fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    pub(super) fn link(mut self, claims: Claims) -> Self {
        self.link = Some(claims);
        self
    }

    pub(super) fn hiding(mut self, marker: &str) -> Self {
        self.hidden = Some(marker.to_owned());
        self.secret(marker)
    }
}

/// A link request for a valid address and this document id.
pub(super) fn traversal(name: &'static str, document: &str) -> Case {
    case(name, Error(404, UNKNOWN), |n| {
        post(JSON, json!({ "email": addr(n), "document": document }))
    })
}

/// A download of `/d/{path}`, where no token is, refused as a malformed link.
pub(super) fn not_a_token(name: &'static str, path: &str) -> Case {
    case(name, Error(400, "invalid_link"), |_| {
        get(&format!("/d/{path}"), &[])
    })
}

/// A download of `/d/{token}` refused as a malformed or tampered link; the token is a secret.
pub(super) fn invalid_link(name: &'static str, token: String) -> Case {
    case(name, Error(400, "invalid_link"), |_| {
        get(&format!("/d/{token}"), &[])
    })
    .secret(token)
}

/// A unique marker: 24 lowercase letters and digits.
pub(super) fn nonce() -> String {
    let n = docgate::token::new_jti()
        .to_ascii_lowercase()
        .replace(['-', '_'], "0");
    assert_eq!(n.len(), 24);
    n
}

/// A valid address holding the nonce.
pub(super) fn addr(n: &str) -> String {
    format!("visitor-{n}@example.org")
}

/// Another address holding the nonce, for injection attempts.
pub(super) fn evil(n: &str) -> String {
    format!("evil-{n}@example.net")
}

/// A header injection adding a recipient.
pub(super) fn inject(n: &str) -> String {
    format!("\r\nBcc: {}", evil(n))
}

/// A JSON link request for `resume` from this address.
pub(super) fn ask(email: impl Into<String>) -> Value {
    json!({ "email": email.into(), "document": "resume" })
}

/// The same, form-encoded.
pub(super) fn ask_form(email: &str) -> Vec<u8> {
    form(&[("email", email), ("document", "resume")])
}

/// A valid JSON link request body.
pub(super) fn valid(n: &str) -> Vec<u8> {
    ask(addr(n)).to_string().into_bytes()
}

/// A JSON link request whose address has these raw bytes inside it.
pub(super) fn raw_email(n: &str, inside: &[u8]) -> Vec<u8> {
    let (start, end) = (
        r#"{"email": "visitor-"#,
        r#"@example.org", "document": "resume"}"#,
    );
    [start.as_bytes(), inside, n.as_bytes(), end.as_bytes()].concat()
}

/// A valid link request padded over 4 KiB with an ignored field.
pub(super) fn padded(n: &str) -> Value {
    json!({ "email": addr(n), "document": "resume", "pad": "x".repeat(5 * 1024) })
}

/// The same, form-encoded.
pub(super) fn padded_form(n: &str) -> Vec<u8> {
    let pad = "x".repeat(5 * 1024);
    form(&[("email", &addr(n)), ("document", "resume"), ("pad", &pad)])
}

/// UTF-16LE.
pub(super) fn utf16(utf8: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(utf8).unwrap();
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Plants the file `../etc/passwd` leads to from the documents directory.
pub(super) fn plant_passwd(app: &TestApp) {
    std::fs::create_dir_all(app.path("etc")).unwrap();
    std::fs::write(app.path("etc/passwd"), PASSWD_SENTINEL).unwrap();
}
