//! The tables: each hostile request as a row, with the answer it must get.

use super::*;

/// Link requests that must be refused, and send nothing.
#[rustfmt::skip]
pub(super) fn link_request_rows() -> Vec<Case> {
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
pub(super) fn accepted_rows() -> Vec<Case> {
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
pub(super) fn token_rows(app: &TestApp, victim: &Claims, token: &str) -> Vec<Case> {
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
        invalid_link("jti too short, signed with our key",  ours_with(Claims { jti: "x".into(), ..victim.clone() })),
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
pub(super) fn wire_rows(victim: &Claims, download: &str, hidden: &str) -> Vec<Case> {
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
