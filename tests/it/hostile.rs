//! Hostile input over real HTTP/1.1, sent byte for byte on raw TCP: malformed and oversized
//! bodies, odd content types, duplicated fields, unicode and overlong addresses, CRLF injection,
//! path traversal, forged tokens, `Range` abuse, oversized headers and request smuggling.
//!
//! Each row of a table is a raw request and the answer it must get (a JSON error and its code, a
//! 400 naming the bad fields, an HTML page, the document, or a refusal by the HTTP layer). For
//! every row the suite also proves that nothing else happened: no mail written (or exactly one,
//! to the address validated, for the few rows the contract accepts), no link minted, no link
//! consumed (a sentinel link stays ready throughout and downloads at the end), exactly one answer
//! on a connection the server then closes, nothing leaked in the answer (storage layout, S3,
//! stack traces, the row's own address, token or injected text), and none of that in docgate's
//! logs, captured at `debug` as JSON for the whole test binary. A failing row does not hide the
//! others: each table runs to its end and reports every row that did not hold.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use docgate::requestlog::Event;
use docgate::store::LinkState;
use docgate::token::Claims;
use futures_util::FutureExt;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::probe::*;
use crate::support::*;

/// How long a connection may stay silent before the answer is taken as complete.
const IDLE: Duration = Duration::from_secs(3);
const AS_JSON: (&str, &str) = ("Content-Type", "application/json");
const AS_FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
const MEDIA: &str = "unsupported_media_type";
const UNKNOWN: &str = "unknown_document";

#[tokio::test]
async fn hostile_link_requests_mail_nothing_mint_nothing_and_log_nothing() {
    let app = TestApp::start().await;
    plant_passwd(&app);
    let sentinel = app.mint("resume").await;
    run(&app, &sentinel, link_request_rows()).await;
}

#[tokio::test]
async fn oddly_sent_acceptable_requests_mail_once_to_the_validated_address() {
    let app = TestApp::start().await;
    let sentinel = app.mint("resume").await;
    run(&app, &sentinel, accepted_rows()).await;
}

#[tokio::test]
async fn forged_and_damaged_tokens_are_invalid_links_and_consume_nothing() {
    let app = TestApp::start().await;
    plant_passwd(&app);
    let sentinel = app.mint("resume").await;
    // A genuine, recorded link whose claims the forgeries reuse: accepting one would spend it.
    // Its token holds a '-' or '_', so that the standard-alphabet row differs from it.
    let (victim, link) = loop {
        let (claims, link) = app.mint("resume").await;
        if token_of(&link).contains(['-', '_']) {
            break (claims, link);
        }
    };
    run(&app, &sentinel, token_rows(&app, &victim, token_of(&link))).await;
    assert_eq!(state(&app, &victim).await, LinkState::Ready { started: 0 });
    assert_downloads_resume(&app, "the link the forgeries copied", &link).await;
}

#[tokio::test]
async fn range_abuse_is_answered_as_rfc_9110_allows_and_a_416_consumes_nothing() {
    let app = TestApp::start().await;
    let sentinel = app.mint("resume").await;
    let size = RESUME_LEN as u64;
    let hundred: Vec<String> = (0..100)
        .map(|i| format!("{}-{}", 2 * i, 2 * i + 1))
        .collect();
    let unsatisfiable = || Error(416, "range_not_satisfiable");
    // Several ranges, bad syntax and other units are ignored: the whole document, as RFC 9110
    // allows. Each row downloads a link of its own.
    #[rustfmt::skip]
    let rows = [
        ("100 ranges",                  format!("bytes={}", hundred.join(",")),       Document(None)),
        ("overlapping ranges",          "bytes=0-100,50-150".to_owned(),              Document(None)),
        ("the last zero bytes",         "bytes=-0".to_owned(),                        unsatisfiable()),
        ("end before start",            "bytes=5-1".to_owned(),                       Document(None)),
        ("a negative start",            "bytes=-5-10".to_owned(),                     Document(None)),
        ("beyond the end",              "bytes=400000-500000".to_owned(),             unsatisfiable()),
        ("from exactly the size",       format!("bytes={size}-"),                     unsatisfiable()),
        ("a 19-digit start",            "bytes=9999999999999999999-".to_owned(),      unsatisfiable()),
        ("a 20-digit end",              "bytes=0-99999999999999999999".to_owned(),    Document(None)),
        ("a 20-digit start",            "bytes=99999999999999999999-".to_owned(),     Document(None)),
        ("another unit",                "items=0-1".to_owned(),                       Document(None)),
        ("no range at all",             "bytes=".to_owned(),                          Document(None)),
        ("parameters after the range",  "bytes=0-1;q=1".to_owned(),                   Document(None)),
        ("one byte",                    "bytes=0-0".to_owned(),                       Document(Some((0, 0)))),
        ("the last byte",               "bytes=-1".to_owned(),                        Document(Some((size - 1, size - 1)))),
        ("an end past the size",        format!("bytes={}-{}", size - 10, size * 2),  Document(Some((size - 10, size - 1)))),
    ];
    let mut cases = Vec::new();
    for (name, range, expect) in rows {
        let (claims, link) = app.mint("resume").await;
        let path = format!("/d/{}", token_of(&link));
        cases.push(case(name, expect, |_| get(&path, &[("Range", &range)])).link(claims));
    }
    run(&app, &sentinel, cases).await;
}

#[tokio::test]
async fn oversized_heads_smuggling_and_injected_headers_are_refused_before_anything_happens() {
    let app = TestApp::start().await;
    let sentinel = app.mint("resume").await;
    let (victim, link) = app.mint("resume").await;
    let hidden = nonce();
    run(
        &app,
        &sentinel,
        wire_rows(&victim, &link[app.base.len()..], &hidden),
    )
    .await;

    // The hidden request is a genuine one: sent on its own, it is mailed. So the rows above
    // would have seen its mail, had any of them let it through.
    let reply = exchange(
        &app,
        &[hidden_request(&hidden), get("/healthz", &[])].concat(),
    )
    .await;
    let answer = reply.answer.expect("an answer to the hidden request");
    assert_eq!(answer.sent.status, 202, "{:?}", answer.sent.body);
    let mails = app.outbox();
    assert_eq!(mails.len(), 1, "the hidden request alone is mailed once");
    assert_eq!(
        Mail::read(&mails[0]).to,
        format!("hidden-{hidden}@example.org")
    );
}

// ---------------------------------------------------------------------------------------------
// The tables.

/// Link requests that must be refused, and send nothing.
#[rustfmt::skip]
fn link_request_rows() -> Vec<Case> {
    vec![
        // Malformed JSON.
        case("truncated JSON",                          Fields(&["body"]), |n| post(JSON, &valid(n)[..40])),
        case("garbage after the object",                Fields(&["body"]), |n| post(JSON, [valid(n), b"}x".to_vec()].concat())),
        case("two objects back to back",                Fields(&["body"]), |n| post(JSON, [valid(n), valid(n)].concat())),
        case("email as a number",                       Fields(&["body"]), |_| post(JSON, r#"{"email": 5, "document": "resume"}"#)),
        case("email as an object",                      Fields(&["body"]), |n| post(JSON, json!({"email": {"address": addr(n)}, "document": "resume"}))),
        case("email as a list of addresses",            Fields(&["body"]), |n| post(JSON, json!({"email": [addr(n), evil(n)], "document": "resume"}))),
        case("both fields null",                        Fields(&["document", "email"]), |_| post(JSON, r#"{"email": null, "document": null}"#)),
        case("email as a number beyond f64",            Fields(&["body"]), |_| post(JSON, r#"{"email": 1e999999, "document": "resume"}"#)),
        case("email as a 400-digit integer",            Fields(&["body"]), |_| post(JSON, format!(r#"{{"email": {}, "document": "resume"}}"#, "9".repeat(400)))),
        case("nesting deeper than the parser allows",   Fields(&["body"]), |_| post(JSON, format!("{}{}", "[".repeat(200), "]".repeat(200)))),
        case("a byte order mark before the object",     Fields(&["body"]), |n| post(JSON, [b"\xEF\xBB\xBF".to_vec(), valid(n)].concat())),
        case("invalid UTF-8 in the email",              Fields(&["body"]), |n| post(JSON, raw_email(n, b"\xFF"))),
        case("a lone surrogate escape in the email",    Fields(&["body"]), |n| post(JSON, format!(r#"{{"email": "\ud800{}", "document": "resume"}}"#, addr(n)))),
        case("UTF-16 JSON",                             Fields(&["body"]), |n| post(JSON, utf16(&valid(n)))),
        case("field names in another case",             Fields(&["document", "email"]), |n| post(JSON, json!({"Email": addr(n), "DOCUMENT": "resume"}))),
        // Oversized bodies.
        case("JSON over 4 KiB, Content-Length",         Error(413, "body_too_large"), |n| post(JSON, padded(n))),
        case("JSON over 4 KiB, chunked",                Error(413, "body_too_large"), |n| post_chunked(JSON, padded(n))),
        case("form over 4 KiB, Content-Length",         Error(413, "body_too_large"), |n| post(FORM, padded_form(n))),
        case("form over 4 KiB, chunked",                Error(413, "body_too_large"), |n| post_chunked(FORM, padded_form(n))),
        case("1 GiB announced, a few bytes sent",       Error(413, "body_too_large"), |n| announced("1073741824", &valid(n), &[])),
        case("1 GiB announced, Expect: 100-continue",   Error(413, "body_too_large"), |n| announced("1073741824", &valid(n), &[("Expect", "100-continue")])),
        case("a Content-Length beyond u64",             Refused(&[400]), |n| announced("99999999999999999999999", &valid(n), &[])),
        // Wrong, missing and odd content types.
        case("no content type",                         Error(415, MEDIA), |n| post(None, valid(n))),
        case("text/plain",                              Error(415, MEDIA), |n| post(Some("text/plain"), valid(n))),
        case("application/jsonx",                       Error(415, MEDIA), |n| post(Some("application/jsonx"), valid(n))),
        case("application/json-patch+json",             Error(415, MEDIA), |n| post(Some("application/json-patch+json"), valid(n))),
        case("two media types in one header",           Error(415, MEDIA), |n| post(Some("application/json, text/plain"), valid(n))),
        case("only parameters",                         Error(415, MEDIA), |n| post(Some("; application/json"), valid(n))),
        case("JSON declared Latin-1, a Latin-1 byte",   Fields(&["body"]), |n| post(Some("application/json; charset=iso-8859-1"), raw_email(n, b"\xFC"))),
        // Observed: the first Content-Type decides; a JSON body read as a form has no fields.
        case("two Content-Types, form first",           Fields(&["document", "email"]), |n| http("POST", REQUESTS, &[AS_FORM, AS_JSON], Some(&valid(n)))),
        // Duplicated fields: refused in a form and in JSON, at any depth (one of the two would
        // silently win, and a filter in front may have checked the other).
        case("email twice in a form",                   Fields(&["body"]), |n| post(FORM, form(&[("email", &addr(n)), ("email", &evil(n)), ("document", "resume")]))),
        case("document twice in a form",                Fields(&["body"]), |n| post(FORM, form(&[("email", &addr(n)), ("document", "resume"), ("document", "resume")]))),
        case("email twice in JSON",                     Fields(&["body"]), |n| post(JSON, format!(r#"{{"email": "{}", "email": "{}", "document": "resume"}}"#, addr(n), evil(n)))),
        case("email twice in JSON, the same address",   Fields(&["body"]), |n| post(JSON, format!(r#"{{"email": "{0}", "document": "resume", "email": "{0}"}}"#, addr(n)))),
        case("email twice, one spelt with an escape",   Fields(&["body"]), |n| post(JSON, format!(r#"{{"email": "{}", "\u0065mail": "{}", "document": "resume"}}"#, addr(n), evil(n)))),
        case("document twice in JSON, the last unknown", Fields(&["body"]), |n| post(JSON, format!(r#"{{"email": "{}", "document": "resume", "document": "../etc/passwd"}}"#, addr(n)))),
        case("an ignored field twice in JSON",          Fields(&["body"]), |n| post(JSON, format!(r#"{{"email": "{}", "document": "resume", "pad": 1, "pad": 2}}"#, addr(n)))),
        case("a key twice in a nested object",          Fields(&["body"]), |n| post(JSON, format!(r#"{{"email": "{}", "document": "resume", "x": {{"y": 1, "y": 2}}}}"#, addr(n)))),
        // Addresses the parser accepts but no mail can be addressed to: refused at the door.
        case("a quoted local part with a space",        Fields(&["email"]), |n| post(JSON, ask(format!("\"visitor {n}\"@example.org")))),
        case("a quoted local part",                     Fields(&["email"]), |n| post(JSON, ask(format!("\"visitor-{n}\"@example.org")))),
        case("a quoted local part, form",               Fields(&["email"]), |n| post(FORM, ask_form(&format!("\"visitor {n}\"@example.org")))),
        case("a quoted local part with an escaped quote", Fields(&["email"]), |n| post(JSON, ask(format!("\"visitor\\\"{n}\"@example.org")))),
        // Unicode addresses that are not addresses (valid ones: `accepted_rows`).
        case("right-to-left override in the address",   Fields(&["email"]), |n| post(JSON, ask(format!("visitor-{n}\u{202E}gro@example.org")))),
        case("invalid UTF-8 in a form's email",         Fields(&["email"]), |n| post(FORM, format!("email=visitor-{n}%FF%40example.org&document=resume"))),
        case("a fullwidth at sign",                     Fields(&["email"]), |n| post(JSON, ask(format!("visitor-{n}\u{FF20}example.org")))),
        // CRLF and other control characters in every field.
        case("CRLF in the email",                       Fields(&["email"]), |n| post(JSON, ask(format!("{}{}", addr(n), inject(n))))),
        case("CRLF in the email, form",                 Fields(&["email"]), |n| post(FORM, ask_form(&format!("{}{}", addr(n), inject(n))))),
        case("bare CR in the email",                    Fields(&["email"]), |n| post(JSON, ask(format!("{}\rBcc: {}", addr(n), evil(n))))),
        case("bare LF in the email",                    Fields(&["email"]), |n| post(JSON, ask(format!("{}\nBcc: {}", addr(n), evil(n))))),
        case("CRLF in the email, for a browser",        Page(400), |n| http("POST", REQUESTS, &[AS_FORM, ("Accept", BROWSER_ACCEPT)], Some(&ask_form(&format!("{}{}", addr(n), inject(n)))))),
        case("ANSI escapes in the email",               Fields(&["email"]), |n| post(JSON, ask(format!("\u{1b}[2J\u{1b}[31m{}", addr(n))))),
        case("CRLF in the document",                    Error(404, UNKNOWN), |n| post(JSON, json!({"email": addr(n), "document": format!("resume{}", inject(n))}))),
        case("CRLF in a JSON key",                      Fields(&["email"]), |n| post(JSON, json!({format!("email{}", inject(n)): addr(n), "document": "resume"}))),
        case("CRLF in a form key",                      Fields(&["email"]), |n| post(FORM, form(&[(&format!("email{}", inject(n)), &addr(n)), ("document", "resume")]))),
        // Overlong addresses.
        case("an address over 254 bytes",               Fields(&["email"]), |n| post(JSON, ask(format!("{n}{}@example.org", "a".repeat(240))))),
        case("a local part over 64 bytes",              Fields(&["email"]), |n| post(JSON, ask(format!("{n}{}@example.org", "a".repeat(65 - n.len()))))),
        case("a 300-character domain label",            Fields(&["email"]), |n| post(JSON, ask(format!("{n}@{}.example.org", "d".repeat(300))))),
        case("a 64-character label, short address",     Fields(&["email"]), |n| post(JSON, ask(format!("{n}@{}.org", "d".repeat(64))))),
        // Path traversal and lookalikes in the document id: never a file outside the catalog.
        traversal("parent directories",                 "../etc/passwd"),
        traversal("parent directories, encoded slashes", "..%2f..%2fetc%2fpasswd"),
        traversal("encoded dots",                       "%2e%2e/%2e%2e/etc/passwd"),
        traversal("an absolute path",                   "/etc/passwd"),
        traversal("backslashes",                        "..\\..\\etc\\passwd"),
        traversal("a NUL after the id",                 "resume\0"),
        traversal("a NUL before a suffix",              "resume\0.pdf"),
        traversal("through the id and back",            "resume/../resume"),
        traversal("the object key",                     RESUME_KEY),
        traversal("fullwidth letters",                  "ｒｅｓｕｍｅ"),
        traversal("a Cyrillic e",                       "r\u{0435}sume"),
        traversal("a zero-width space",                 "resume\u{200B}"),
        traversal("one-dot leaders",                    "\u{2024}\u{2024}/etc/passwd"),
        case("parent directories, form",                Error(404, UNKNOWN), |n| post(FORM, form(&[("email", &addr(n)), ("document", "../../etc/passwd")]))),
        case("a NUL, form",                             Error(404, UNKNOWN), |n| post(FORM, format!("email=visitor-{n}%40example.org&document=resume%00"))),
    ]
}

/// What the contract lets through, however oddly sent: each row mails once, to the address
/// validated.
#[rustfmt::skip]
fn accepted_rows() -> Vec<Case> {
    vec![
        mailed("upper-case JSON type with parameters",  |n| (addr(n), post(Some("APPLICATION/JSON ; Charset=\"UTF-8\"; q=x"), valid(n)))),
        mailed("mixed-case form type with a charset",   |n| (addr(n), post(Some("Application/X-WWW-Form-Urlencoded;charset=utf-8"), ask_form(&addr(n))))),
        // Keys differing only in case are different keys: `Email` is ignored, not a duplicate.
        mailed("email and Email in JSON",               |n| (addr(n), post(JSON, format!(r#"{{"email": "{}", "Email": "{}", "document": "resume"}}"#, addr(n), evil(n))))),
        // A non-ASCII local part is valid (RFC 6531): mailed as is, with SMTPUTF8 where sent by SMTP.
        mailed("non-ASCII local part",                  |n| (format!("jürgen-{n}@example.com"), post(JSON, ask(format!("jürgen-{n}@example.com"))))),
        mailed("non-ASCII local part, form",            |n| (format!("zoë-{n}@example.com"), post(FORM, ask_form(&format!("zoë-{n}@example.com"))))),
        // IDN domains are accepted and mailed as punycode.
        mailed("IDN domain",                            |n| (format!("jane-{n}@xn--bcher-kva.example"), post(JSON, ask(format!("jane-{n}@bücher.example"))))),
        mailed("IDN domain, form",                      |n| (format!("jane-{n}@xn--mnchen-3ya.example"), post(FORM, ask_form(&format!("jane-{n}@münchen.example"))))),
    ]
}

/// Forged and damaged tokens, most of them made from `token`, the genuine link of `victim`.
#[rustfmt::skip]
fn token_rows(app: &TestApp, victim: &Claims, token: &str) -> Vec<Case> {
    let segments: Vec<&str> = token.split('.').collect();
    let [h, c, s] = segments[..] else { panic!("a JWT: {token}") };
    let (header, claims) = (decoded(h), decoded(c));
    let ours = SECRET.as_bytes();
    let signed = |header: &Value, claims: &Value| forge(header, claims, Algorithm::HS256, ours);
    let alg = |name: &str| edit(&header, "alg", Some(name.into()));
    let claim = |key: &str, value: Option<Value>| edit(&claims, key, value);
    let ours_with = |claims: Claims| sign(app, &claims);
    let now = now();
    let expired = ours_with(Claims { iat: now - 2000, exp: now - 1100, ..victim.clone() });
    vec![
        invalid_link("alg none, no signature",              format!("{}.{c}.", b64(&alg("none").to_string()))),
        invalid_link("alg none, the genuine signature",     format!("{}.{c}.{s}", b64(&alg("none").to_string()))),
        invalid_link("alg None, capitalised",               format!("{}.{c}.", b64(&alg("None").to_string()))),
        invalid_link("HS384, signed with our key",          forge(&alg("HS384"), &claims, Algorithm::HS384, ours)),
        invalid_link("HS512, signed with our key",          forge(&alg("HS512"), &claims, Algorithm::HS512, ours)),
        invalid_link("RS256 claimed, HMAC with our key",    signed(&alg("RS256"), &claims)),
        invalid_link("ES256 claimed, HMAC with our key",    signed(&alg("ES256"), &claims)),
        invalid_link("EdDSA claimed, HMAC with our key",    signed(&alg("EdDSA"), &claims)),
        invalid_link("HS256 with another key",              forge(&header, &claims, Algorithm::HS256, b"another secret that is long enough!!")),
        invalid_link("an unknown kid",                      signed(&edit(&header, "kid", Some("0123456789abcdef".into())), &claims)),
        invalid_link("a kid that is a path",                signed(&edit(&header, "kid", Some("../../etc/passwd".into())), &claims)),
        invalid_link("no kid",                              signed(&edit(&header, "kid", None), &claims)),
        // RFC 7515 §4.1.11: a `crit` names extensions the verifier must understand; docgate
        // understands none, so any `crit` is refused, before the signature matters.
        invalid_link("crit naming exp",                     signed(&edit(&header, "crit", Some(json!(["exp"]))), &claims)),
        invalid_link("crit naming b64, b64 false",          signed(&edit(&edit(&header, "crit", Some(json!(["b64"]))), "b64", Some(false.into())), &claims)),
        invalid_link("crit empty",                          signed(&edit(&header, "crit", Some(json!([]))), &claims)),
        invalid_link("crit null",                           signed(&edit(&header, "crit", Some(Value::Null)), &claims)),
        invalid_link("crit, signed with another key",       forge(&edit(&header, "crit", Some(json!(["x"]))), &claims, Algorithm::HS256, b"another secret that is long enough!!")),
        invalid_link("kid twice in the header",             forge_raw(&format!(r#"{{"alg":"HS256","kid":"0123456789abcdef","kid":{}}}"#, header["kid"]), &claims, ours)),
        invalid_link("alg twice, none then HS256",          forge_raw(&format!(r#"{{"alg":"none","alg":"HS256","kid":{}}}"#, header["kid"]), &claims, ours)),
        case("expired", Error(410, "link_expired"), |_| get(&format!("/d/{expired}"), &[])).secret(&expired),
        invalid_link("issued an hour from now",             ours_with(Claims { iat: now + 3600, exp: now + 4500, ..victim.clone() })),
        invalid_link("expiring before it is issued",        ours_with(Claims { iat: now, exp: now - 1, ..victim.clone() })),
        invalid_link("no jti",                              signed(&header, &claim("jti", None))),
        invalid_link("no doc",                              signed(&header, &claim("doc", None))),
        invalid_link("no iat",                              signed(&header, &claim("iat", None))),
        invalid_link("no exp",                              signed(&header, &claim("exp", None))),
        invalid_link("no iss",                              signed(&header, &claim("iss", None))),
        invalid_link("exp as a string",                     signed(&header, &claim("exp", Some(claims["exp"].to_string().into())))),
        invalid_link("iat as a float",                      signed(&header, &claim("iat", Some((claims["iat"].as_f64().unwrap() + 0.5).into())))),
        invalid_link("jti as a number",                     signed(&header, &claim("jti", Some(12345.into())))),
        invalid_link("a negative exp",                      signed(&header, &claim("exp", Some((-1).into())))),
        invalid_link("another issuer",                      signed(&header, &claim("iss", Some("someone-else".into())))),
        invalid_link("an extra claim",                      signed(&header, &claim("email", Some("jane@example.com".into())))),
        invalid_link("doc is a path, signed with our key",  ours_with(Claims { doc: "../etc/passwd".to_owned(), ..victim.clone() })),
        invalid_link("jti too short, signed with our key",  ours_with(Claims { jti: "x".to_owned(), ..victim.clone() })),
        invalid_link("an extra dot",                        format!("{token}.")),
        invalid_link("extra segments",                      format!("{token}.{s}.{s}")),
        not_a_token("only dots",                            ".."),
        invalid_link("an empty signature",                  format!("{h}.{c}.")),
        invalid_link("an empty header",                     format!(".{c}.{s}")),
        invalid_link("an empty claims segment",             format!("{h}..{s}")),
        invalid_link("padding after the signature",         format!("{token}=")),
        invalid_link("padding after the claims",            format!("{h}.{c}=.{s}")),
        invalid_link("padding after the header",            format!("{h}==.{c}.{s}")),
        invalid_link("the standard base64 alphabet",        token.replace('-', "+").replace('_', "/")),
        invalid_link("8 KiB, over the token limit",         format!("{token}{}", "A".repeat(8 * 1024))),
        invalid_link("a NUL after the token",               format!("{token}%00")),
        // Too long for the request head: refused before any route.
        case("100 KiB", Refused(&[414, 431]), |_| get(&format!("/d/{token}{}", "A".repeat(100 * 1024)), &[])).secret(token),
        case("a damaged token, for a browser", Page(400), |_| get(&format!("/d/{token}x"), &[("Accept", BROWSER_ACCEPT)])).secret(token),
        case("CRLF encoded in the path", Error(400, "invalid_link"), |n| get(&format!("/d/{token}%0D%0ASet-Cookie:%20session={n}"), &[])).secret(token),
        // Path traversal where a token belongs.
        not_a_token("parent directories",                   "../../etc/passwd"),
        not_a_token("parent directories, encoded slashes",  "..%2f..%2fetc%2fpasswd"),
        not_a_token("encoded dots",                         "%2e%2e/%2e%2e/etc/passwd"),
        not_a_token("overlong UTF-8 dots",                  "%C0%AE%C0%AE/%C0%AE%C0%AE/etc/passwd"),
        not_a_token("an absolute path",                     "/etc/passwd"),
        not_a_token("backslashes",                          "..\\..\\etc\\passwd"),
        not_a_token("fullwidth dots, unencoded",            "\u{FF0E}\u{FF0E}/etc/passwd"),
        case("parent directories outside /d/", Error(404, "not_found"), |_| get("/documents/../etc/passwd", &[])),
        case("a double slash",                 Error(404, "not_found"), |_| get("//etc/passwd", &[])),
    ]
}

/// Requests the HTTP layer must refuse, or frame as a single request, whatever they hide: the
/// smuggling rows hide a genuine link request for `hidden-{hidden}@example.org`.
#[rustfmt::skip]
fn wire_rows(victim: &Claims, download: &str, hidden: &str) -> Vec<Case> {
    let smuggled = hidden_request(hidden);
    let after_last_chunk = [b"0\r\n\r\n".as_slice(), &smuggled].concat();
    let after_json = [b"{}".as_slice(), &smuggled].concat();
    let length = |body: &[u8]| body.len().to_string();
    let chunk_size = format!("{:x}\r\n", smuggled.len());
    let in_one_chunk = [chunk_size.as_bytes(), &smuggled, b"\r\n0\r\n\r\n"].concat();
    let many: Vec<String> = (0..200).map(|i| format!("X-Header-{i}")).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|name| (name.as_str(), "v")).collect();
    vec![
        case("one 100 KiB header",                      Status(431), |_| get("/healthz", &[("X-Padding", &"a".repeat(100 * 1024))])),
        case("200 small headers",                       Refused(&[431]), |_| get("/healthz", &many)),
        // Smuggling: on a kept-alive connection, whatever follows the first request's end.
        case("Content-Length and Transfer-Encoding",    Refused(&[400]), |_| smuggle(&[("Content-Length", &length(&after_last_chunk)), ("Transfer-Encoding", "chunked")], &after_last_chunk)).hiding(hidden),
        case("Transfer-Encoding, short Content-Length", Refused(&[400]), |_| smuggle(&[("Transfer-Encoding", "chunked"), ("Content-Length", &chunk_size.len().to_string())], &in_one_chunk)).hiding(hidden),
        case("two different Content-Lengths",           Refused(&[400]), |_| smuggle(&[("Content-Length", "2"), ("Content-Length", &length(&after_json))], &after_json)).hiding(hidden),
        case("a signed Content-Length",                 Refused(&[400]), |_| smuggle(&[("Content-Length", &format!("+{}", after_json.len()))], &after_json)).hiding(hidden),
        case("Transfer-Encoding: chunked, identity",    Refused(&[400]), |_| smuggle(&[("Transfer-Encoding", "chunked, identity")], &after_last_chunk)).hiding(hidden),
        case("a space before the colon",                Refused(&[400]), |_| smuggle(&[("Content-Length", &length(&after_last_chunk)), ("Transfer-Encoding ", "chunked")], &after_last_chunk)).hiding(hidden),
        case("obs-fold continuation",                   Refused(&[400]), |_| smuggle(&[("X-Folded", "a\r\n Transfer-Encoding: chunked"), ("Content-Length", &length(&after_last_chunk))], &after_last_chunk)).hiding(hidden),
        case("Transfer-Encoding on HTTP/1.0",           Refused(&[400]), |_| http10(smuggle(&[("Transfer-Encoding", "chunked")], &after_last_chunk))).hiding(hidden),
        case("a chunk size beyond u64",                 Refused(&[400]), |_| smuggle(&[("Transfer-Encoding", "chunked")], &[b"10000000000000000000\r\n{}\r\n0\r\n\r\n".as_slice(), &smuggled].concat())).hiding(hidden),
        case("a request inside a JSON body's length",   Fields(&["body"]), |n| http("POST", REQUESTS, &[AS_JSON], Some(&[valid(n), smuggled.clone()].concat()))).hiding(hidden),
        // CR and LF in headers and the request line.
        case("bare CR in Accept",                       Refused(&[400]), |n| get(download, &[("Accept", &format!("application/json\rX-Injected: {n}"))])).link(victim.clone()),
        // RFC 9112 §2.2 allows a bare LF as a line end: the header after it is another header.
        case("bare LF in Accept ends the header",       Page(400), |n| get("/d/not-a-token", &[("Accept", &format!("text/html\nX-Injected: {n}"))])),
        case("bare CR in X-Forwarded-For",              Refused(&[400]), |n| get(download, &[("X-Forwarded-For", &format!("203.0.113.9\rX-Injected: {n}"))])).link(victim.clone()),
        case("CRLF in the request target",              Refused(&[400]), |n| get(&format!("{download}\r\nX-Injected: {n}"), &[])).link(victim.clone()),
        case("bare CR in the request target",           Refused(&[400]), |n| get(&format!("{download}\rX-Injected: {n}"), &[])).link(victim.clone()),
        case("a NUL in the request target",             Refused(&[400]), |_| get(&format!("{download}\0"), &[])).link(victim.clone()),
        case("CRLF encoded in a route's path",          Error(404, "not_found"), |_| get(&format!("{REQUESTS}%0D%0ASet-Cookie:%20a=b"), &[])),
        // A download takes no body.
        case("a body on a download",                    Error(413, "body_not_allowed"), |_| http("GET", download, &[], Some(b"0123456789"))).link(victim.clone()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Rows.

/// One hostile request and what must come of it.
struct Case {
    name: &'static str,
    /// The bytes sent, exactly.
    request: Vec<u8>,
    expect: Expect,
    /// Strings of the request that must never come back in the answer nor appear in the logs.
    secrets: Vec<String>,
    /// The row's own genuine link: spent by a whole document, else untouched.
    link: Option<Claims>,
    /// The unique marker of a request hidden in this one: never mailed, logged or recorded.
    hidden: Option<String>,
}

/// The answer a row must get.
#[derive(Debug)]
enum Expect {
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
use Expect::*;

/// A row whose request is built from a fresh nonce; the nonce is one of its secrets.
fn case(name: &'static str, expect: Expect, build: impl FnOnce(&str) -> Vec<u8>) -> Case {
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
fn mailed(name: &'static str, build: impl FnOnce(&str) -> (String, Vec<u8>)) -> Case {
    let n = nonce();
    let (to, request) = build(&n);
    case(name, Mailed(to), |_| request).secret(n)
}

impl Case {
    fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    fn link(mut self, claims: Claims) -> Self {
        self.link = Some(claims);
        self
    }

    fn hiding(mut self, marker: &str) -> Self {
        self.hidden = Some(marker.to_owned());
        self.secret(marker)
    }
}

/// A link request for a valid address and this document id.
fn traversal(name: &'static str, document: &str) -> Case {
    case(name, Error(404, UNKNOWN), |n| {
        post(JSON, json!({ "email": addr(n), "document": document }))
    })
}

/// A download of `/d/{path}`, where no token is, refused as a malformed link.
fn not_a_token(name: &'static str, path: &str) -> Case {
    case(name, Error(400, "invalid_link"), |_| {
        get(&format!("/d/{path}"), &[])
    })
}

/// A download of `/d/{token}` refused as a malformed or tampered link; the token is a secret.
fn invalid_link(name: &'static str, token: String) -> Case {
    case(name, Error(400, "invalid_link"), |_| {
        get(&format!("/d/{token}"), &[])
    })
    .secret(token)
}

/// A unique marker: 24 lowercase letters and digits.
fn nonce() -> String {
    let n = docgate::token::new_jti()
        .to_ascii_lowercase()
        .replace(['-', '_'], "0");
    assert_eq!(n.len(), 24);
    n
}

/// A valid address holding the nonce.
fn addr(n: &str) -> String {
    format!("visitor-{n}@example.org")
}

/// Another address holding the nonce, for injection attempts.
fn evil(n: &str) -> String {
    format!("evil-{n}@example.net")
}

/// A header injection adding a recipient.
fn inject(n: &str) -> String {
    format!("\r\nBcc: {}", evil(n))
}

/// A JSON link request for `resume` from this address.
fn ask(email: impl Into<String>) -> Value {
    json!({ "email": email.into(), "document": "resume" })
}

/// The same, form-encoded.
fn ask_form(email: &str) -> Vec<u8> {
    form(&[("email", email), ("document", "resume")])
}

/// A valid JSON link request body.
fn valid(n: &str) -> Vec<u8> {
    ask(addr(n)).to_string().into_bytes()
}

/// A JSON link request whose address has these raw bytes inside it.
fn raw_email(n: &str, inside: &[u8]) -> Vec<u8> {
    let (start, end) = (
        r#"{"email": "visitor-"#,
        r#"@example.org", "document": "resume"}"#,
    );
    [start.as_bytes(), inside, n.as_bytes(), end.as_bytes()].concat()
}

/// A valid link request padded over 4 KiB with an ignored field.
fn padded(n: &str) -> Value {
    json!({ "email": addr(n), "document": "resume", "pad": "x".repeat(5 * 1024) })
}

/// The same, form-encoded.
fn padded_form(n: &str) -> Vec<u8> {
    let pad = "x".repeat(5 * 1024);
    form(&[("email", &addr(n)), ("document", "resume"), ("pad", &pad)])
}

/// UTF-16LE.
fn utf16(utf8: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(utf8).unwrap();
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// Plants the file `../etc/passwd` leads to from the documents directory.
fn plant_passwd(app: &TestApp) {
    std::fs::create_dir_all(app.path("etc")).unwrap();
    std::fs::write(app.path("etc/passwd"), PASSWD_SENTINEL).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The runner.

/// Runs every row against `app`, then downloads the sentinel; fails listing every row that did
/// not hold.
async fn run(app: &TestApp, sentinel: &(Claims, String), cases: Vec<Case>) {
    assert_logs_are_captured(app).await;
    let total = cases.len();
    let mut failed = Vec::new();
    for case in &cases {
        if let Err(panic) = AssertUnwindSafe(run_one(app, &sentinel.0, case))
            .catch_unwind()
            .await
        {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("[{}] {message}", case.name));
        }
    }
    // Once more, for anything logged after its row was checked.
    for case in &cases {
        assert_not_logged(case.name, &case.secrets);
    }
    assert_logs_are_json_lines();
    assert_downloads_resume(app, "the sentinel, after every row", &sentinel.1).await;
    assert!(
        failed.is_empty(),
        "{} of {total} rows failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

async fn run_one(app: &TestApp, sentinel: &Claims, case: &Case) {
    let name = case.name;
    let mails_before = app.outbox();
    let live_before = app.store().live_links();

    let reply = exchange(app, &case.request).await;
    // The hidden request was never served.
    if let Some(marker) = &case.hidden {
        let recorded = app.request_log();
        assert!(
            recorded
                .iter()
                .all(|e| !e.email.as_deref().unwrap_or("").contains(marker.as_str())),
            "{name}: the hidden request was recorded: {recorded:?}"
        );
        let pseudonym = app.app.pseudonym(&format!("hidden-{marker}@example.org"));
        assert_not_logged(name, &[pseudonym]);
    }
    if let Some(answer) = &reply.answer {
        assert_no_leak(app, name, &answer.sent);
        assert_nothing_echoed(name, &answer.sent, &case.secrets);
    }
    check_answer(name, &case.expect, reply.answer.as_ref());
    assert!(
        reply.extra.is_empty(),
        "{name}: more than one answer; after the first: {:?}",
        String::from_utf8_lossy(&reply.extra)
    );
    assert!(reply.closed, "{name}: the connection was left open");

    // Nothing happened, beyond what the row expects.
    let new_mails: Vec<_> = app
        .outbox()
        .into_iter()
        .filter(|p| !mails_before.contains(p))
        .collect();
    let recipients: Vec<String> = new_mails.iter().map(|p| Mail::read(p).to).collect();
    let mut live = live_before;
    if let Mailed(to) = &case.expect {
        assert_eq!(
            recipients,
            std::slice::from_ref(to),
            "{name}: one mail, to the address validated"
        );
        let entry = app.request_log().pop().expect("a request log entry");
        assert_eq!(entry.event, Event::LinkRequested, "{name}");
        assert_eq!(entry.outcome, "sent", "{name}");
        live += 1;
    } else {
        assert!(
            recipients.is_empty(),
            "{name}: mail was written to {recipients:?}"
        );
    }
    if let Some(link) = &case.link {
        let expected = spent_by(&case.expect);
        if expected == LinkState::Used {
            live -= 1;
        }
        assert_eq!(state(app, link).await, expected, "{name}: the row's link");
    }
    assert_eq!(app.store().live_links(), live, "{name}: links in the store");
    assert_eq!(
        state(app, sentinel).await,
        LinkState::Ready { started: 0 },
        "{name}: the sentinel link was touched"
    );
    assert_not_logged(name, &case.secrets);
}

/// The state a row's own link must be in after it.
fn spent_by(expect: &Expect) -> LinkState {
    match expect {
        Document(None) => LinkState::Used,
        Document(Some((_, end))) if end + 1 == RESUME_LEN as u64 => LinkState::Used,
        Document(Some(_)) => LinkState::Ready { started: 1 },
        _ => LinkState::Ready { started: 0 },
    }
}

fn check_answer(name: &str, expect: &Expect, answer: Option<&Answer>) {
    let answered = || answer.unwrap_or_else(|| panic!("{name}: no answer, expected {expect:?}"));
    match expect {
        Error(status, code) => {
            let sent = &answered().sent;
            let body = assert_error(name, sent, *status, code);
            assert!(body.get("errors").is_none(), "{name}: {body}");
            if *status == 416 {
                assert_eq!(
                    sent.header("content-range"),
                    Some(format!("bytes */{RESUME_LEN}").as_str()),
                    "{name}"
                );
            }
        }
        Fields(fields) => {
            let body = assert_error(name, &answered().sent, 400, "invalid_request");
            let errors = body["errors"].as_object().cloned().unwrap_or_default();
            let named: Vec<&str> = errors.keys().map(String::as_str).collect();
            assert_eq!(named, *fields, "{name}: fields in {body}");
            // Each field says what is wrong in at least one sentence.
            let sentence = |m: &Value| m.as_str().is_some_and(|m| m.len() > 5);
            let said = |m: &Value| {
                m.as_array()
                    .is_some_and(|m| !m.is_empty() && m.iter().all(sentence))
            };
            assert!(errors.values().all(said), "{name}: {body}");
        }
        Page(status) => {
            let sent = &answered().sent;
            assert_eq!(sent.status, *status, "{name}: {:?}", sent.body);
            assert!(
                sent.header("content-type")
                    .is_some_and(|t| t.starts_with("text/html")),
                "{name}: {:?}",
                sent.headers
            );
            assert!(sent.body.starts_with("<!DOCTYPE html>"), "{name}");
            assert!(sent.header("content-security-policy").is_some(), "{name}");
        }
        Status(status) => assert_eq!(answered().sent.status, *status, "{name}"),
        Refused(statuses) => {
            if let Some(answer) = answer {
                assert!(
                    statuses.contains(&answer.sent.status),
                    "{name}: {} {:?}, expected one of {statuses:?} or a closed connection",
                    answer.sent.status,
                    answer.sent.body
                );
            }
        }
        Mailed(_) => {
            let sent = &answered().sent;
            assert_eq!(sent.status, 202, "{name}: {:?}", sent.body);
            let message = sent.json(name)["message"].as_str().unwrap_or("").to_owned();
            assert!(message.starts_with("Check your inbox"), "{name}: {message}");
            assert!(!sent.body.contains("/d/"), "{name}: a link in the answer");
        }
        Document(range) => {
            let answer = answered();
            let whole = content(1, RESUME_LEN);
            match range {
                None => {
                    assert_eq!(answer.sent.status, 200, "{name}: {:?}", answer.sent.body);
                    assert!(answer.sent.header("content-range").is_none(), "{name}");
                    assert_eq!(sha256(&answer.body), sha256(&whole), "{name}: the bytes");
                }
                Some((start, end)) => {
                    assert_eq!(answer.sent.status, 206, "{name}: {:?}", answer.sent.body);
                    assert_eq!(
                        answer.sent.header("content-range"),
                        Some(format!("bytes {start}-{end}/{RESUME_LEN}").as_str()),
                        "{name}"
                    );
                    let (start, end) = (*start as usize, *end as usize);
                    assert_eq!(answer.body, whole[start..=end], "{name}: the bytes");
                }
            }
        }
    }
}

/// No stack trace, and none of the row's secrets (address, token, injected text) in the answer.
/// A form given back to a person keeps what they typed, escaped in its fields' `value`
/// attributes: those are the one place it may appear.
fn assert_nothing_echoed(name: &str, sent: &Sent, secrets: &[String]) {
    let html = sent
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html"));
    let body = if html {
        without_values(&sent.body)
    } else {
        sent.body.clone()
    };
    let mut texts = vec![body];
    for (key, value) in &sent.headers {
        texts.push(format!(
            "{key}: {}",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    for text in texts {
        for trace in ["panicked", "stack backtrace", "RUST_BACKTRACE", ".rs:"] {
            assert!(!text.contains(trace), "{name}: {trace:?} in {text:?}");
        }
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{name}: {secret:?} echoed in {text:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1.

/// What came back on one connection.
struct Reply {
    /// The first answer, if any.
    answer: Option<Answer>,
    /// Bytes after the first answer: a second answer means a second request was served.
    extra: Vec<u8>,
    /// The server closed the connection (it did not sit idle for [`IDLE`]).
    closed: bool,
}

struct Answer {
    /// Status, headers, and the body as text (empty for a document).
    sent: Sent,
    body: Vec<u8>,
}

/// Sends `request` on a fresh connection, reading while writing (the server may answer and close
/// before it has read everything), until the server closes or goes quiet.
async fn exchange(app: &TestApp, request: &[u8]) -> Reply {
    let (mut rx, mut tx) = TcpStream::connect(app.addr).await.unwrap().into_split();
    let request = request.to_vec();
    // The write half is kept open until the reading is done: closing it could end the exchange.
    let writer = tokio::spawn(async move {
        let _ = tx.write_all(&request).await;
        tx
    });
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let closed = loop {
        match tokio::time::timeout(IDLE, rx.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    drop(writer.await);
    match parse(&bytes) {
        Some((answer, used)) => Reply {
            answer: Some(answer),
            extra: bytes[used..].to_vec(),
            closed,
        },
        None => {
            assert!(
                bytes.is_empty(),
                "unparseable answer: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            Reply {
                answer: None,
                extra: Vec::new(),
                closed,
            }
        }
    }
}

/// The first HTTP/1.1 response in `bytes`, and how many bytes it took.
fn parse(bytes: &[u8]) -> Option<(Answer, usize)> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.get(9..12)?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(key.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let rest = &bytes[head_end..];
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let (body, used) = if chunked {
        dechunk(rest)?
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len.to_str().ok()?.parse().ok()?;
        (rest.get(..len)?.to_vec(), len)
    } else {
        (rest.to_vec(), rest.len())
    };
    let text = if headers
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"application/pdf"))
    {
        String::new()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let sent = Sent {
        status,
        headers,
        body: text,
    };
    Some((Answer { sent, body }, head_end + used))
}

/// A chunked body's bytes, and how many bytes of `bytes` it took.
fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // No trailers from docgate: the final CRLF.
            return Some((body, at + 2));
        }
        body.extend_from_slice(bytes.get(at..at + size)?);
        at += size + 2;
    }
}

/// A request with `Host` and `Connection: close`, and a `Content-Length` when it has a body.
fn http(method: &str, target: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: docgate.test\r\nConnection: close\r\n");
    for (key, value) in headers {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    [head.as_bytes(), body.unwrap_or_default()].concat()
}

fn get(target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    http("GET", target, headers, None)
}

/// A link request body as the tables write it: bytes, text or a JSON value.
trait Payload {
    fn into_bytes(self) -> Vec<u8>;
}

impl Payload for Vec<u8> {
    fn into_bytes(self) -> Vec<u8> {
        self
    }
}

impl Payload for &[u8] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl Payload for &str {
    fn into_bytes(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl Payload for String {
    fn into_bytes(self) -> Vec<u8> {
        self.into()
    }
}

impl Payload for Value {
    fn into_bytes(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// A link request with this content type (none when `None`).
fn post(content_type: Option<&str>, body: impl Payload) -> Vec<u8> {
    let headers: Vec<(&str, &str)> = content_type
        .map(|t| ("Content-Type", t))
        .into_iter()
        .collect();
    http("POST", REQUESTS, &headers, Some(&body.into_bytes()))
}

/// A link request sent in 1 KiB chunks, without `Content-Length`.
fn post_chunked(content_type: Option<&str>, body: impl Payload) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = content_type
        .map(|t| ("Content-Type", t))
        .into_iter()
        .collect();
    headers.push(("Transfer-Encoding", "chunked"));
    let mut request = http("POST", REQUESTS, &headers, None);
    for chunk in body.into_bytes().chunks(1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// A JSON link request announcing `length` bytes, whatever `body` holds.
fn announced(length: &str, body: &[u8], extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![AS_JSON, ("Content-Length", length)];
    headers.extend_from_slice(extra);
    [http("POST", REQUESTS, &headers, None), body.to_vec()].concat()
}

/// A link request with exactly these framing headers, on a connection kept alive: if the server
/// read the body's end differently from a proxy, what follows would be served as a request.
fn smuggle(framing: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {REQUESTS} HTTP/1.1\r\nHost: docgate.test\r\nContent-Type: application/json\r\n"
    );
    for (key, value) in framing {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    head.push_str("\r\n");
    [head.as_bytes(), body].concat()
}

/// The same request, as HTTP/1.0.
fn http10(request: Vec<u8>) -> Vec<u8> {
    let line_end = request.windows(2).position(|w| w == b"\r\n").unwrap();
    let version = line_end - "HTTP/1.1".len();
    assert_eq!(&request[version..line_end], b"HTTP/1.1");
    [&request[..version], b"HTTP/1.0", &request[line_end..]].concat()
}

/// A complete, valid link request for `hidden-{marker}@example.org`.
fn hidden_request(marker: &str) -> Vec<u8> {
    let body = ask(format!("hidden-{marker}@example.org")).into_bytes();
    let head = format!(
        "POST {REQUESTS} HTTP/1.1\r\nHost: docgate.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body].concat()
}

// ---------------------------------------------------------------------------------------------
// Tokens.

/// A base64url JSON segment, parsed.
fn decoded(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// `value` with `key` set, or removed when `None`.
fn edit(value: &Value, key: &str, new: Option<Value>) -> Value {
    let mut value = value.clone();
    let object = value.as_object_mut().unwrap();
    match new {
        Some(new) => object.insert(key.to_owned(), new),
        None => object.remove(key),
    };
    value
}

/// A token with this header and claims, signed with `alg` and `key`.
fn forge(header: &Value, claims: &Value, alg: Algorithm, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(key), alg).unwrap();
    format!("{input}.{signature}")
}

/// A token with this header text as is (so it may repeat a key), signed HS256 with `key`.
fn forge_raw(header: &str, claims: &Value, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(&claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(key),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}

// ---------------------------------------------------------------------------------------------
// docgate's logs.

/// Appends every write to the shared buffer.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lock(buffer: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    buffer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything docgate has logged in this test binary since the first call, at `debug`, as JSON
/// lines: the global subscriber is installed once, here.
fn logs() -> String {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("docgate=debug"))
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("no other global subscriber in the test binary");
        buffer
    });
    String::from_utf8_lossy(&lock(buffer)).into_owned()
}

fn assert_not_logged(name: &str, secrets: &[String]) {
    let logs = logs();
    for secret in secrets {
        if let Some(at) = logs.find(secret.as_str()) {
            let line = logs[..at].rsplit('\n').next().unwrap_or("");
            panic!("{name}: {secret:?} is in the logs: {line}...");
        }
    }
}

/// The capture is live: a request to a unique path shows up in the access log.
async fn assert_logs_are_captured(app: &TestApp) {
    logs();
    let path = format!("/probe-{}", nonce());
    let reply = exchange(app, &get(&path, &[])).await;
    assert_eq!(reply.answer.map(|a| a.sent.status), Some(404));
    for _ in 0..100 {
        if logs().contains(&path) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the access log line for {path} was never captured");
}

/// No input split a log line: every line is one JSON object.
fn assert_logs_are_json_lines() {
    for line in logs().lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.as_ref().is_ok_and(Value::is_object),
            "not a JSON log line: {line:?}"
        );
    }
}

/// `html` with the contents of every `value="..."` attribute removed.
fn without_values(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find(" value=\"") {
        let (before, after) = rest.split_at(at + " value=\"".len());
        out.push_str(before);
        let end = after.find('"').expect("a closed attribute");
        assert!(
            !after[..end].contains(['<', '>']),
            "markup in an attribute: {:?}",
            &after[..end]
        );
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}
