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

mod logs;
mod rows;
mod runner;
mod tables;
mod tokens;
mod wire;

use logs::*;
use rows::*;
use runner::*;
use tables::*;
use tokens::*;
use wire::*;

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
    // Bounded: about one token in a hundred has neither, so 64 tries all failing never happens.
    let mut found = None;
    for _ in 0..64 {
        let (claims, link) = app.mint("resume").await;
        if token_of(&link).contains(['-', '_']) {
            found = Some((claims, link));
            break;
        }
    }
    let (victim, link) = found.expect("a token with '-' or '_' among 64 minted");
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
