//! Property tests for the parsers that face the internet: link tokens (`/d/{token}`, a `crit`
//! header refused), the `Range` header, `X-Forwarded-For`, the link-request body (a repeated
//! JSON key or form field refused), the address check (what passes can be mailed), and the
//! `Content-Disposition` built from a filename (printable ASCII, the exact name in `filename*`).
//!
//! Anyone can send these bytes, so beyond "never panics" each property checks what the parser
//! promises: a token verifies only when it is byte-for-byte one we signed; a resolved range lies
//! inside the object and matches an independent model; the client address follows the documented
//! walk of `X-Forwarded-For` and never lands on a trusted proxy while an untrusted hop was seen; a
//! body decodes to exactly the fields it carries, and only from a JSON object or a form.
//!
//! The mailbox an address counts as (`address::mailbox`, the per-address budget's key) is checked
//! too: idempotent, and blind to case and `+tags` (and to dots only where the provider is).
//!
//! One module per parser: [`tokens`], [`ranges`], [`mailbox`], [`forwarded`], and [`body`] (the
//! request body, the address check and the `Content-Disposition`).
//!
//! The independent models the properties compare with (the `Range` reading, the
//! `X-Forwarded-For` walk, the body's fields, repeated JSON keys) live in `tests/models/`, one
//! file per model, shared with the fuzz targets, which include them the same way.
//!
//! The number of cases is bounded so the whole suite runs in seconds on every CI push; `fuzz/`
//! holds cargo-fuzz targets over the same functions for longer, coverage-guided runs. No failure
//! persistence file is written: a failure found here is fixed and pinned as a unit test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use docgate::address;
use docgate::config::Secret;
use docgate::http::client::client_ip;
use docgate::http::error::Error;
use docgate::http::request_link::{Fields, decode_fields};
use docgate::range::{self, ByteRange, RangeRequest, Spec};
use docgate::token::{Claims, ISSUER, LEEWAY_SECS, MAX_TOKEN_LEN, TokenCodec, TokenError};
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

mod body;
mod forwarded;
mod mailbox;
mod ranges;
mod tokens;

/// The independent models the properties compare with, shared with the fuzz targets.
#[path = "../models/mod.rs"]
mod models;

use body::*;
use ranges::*;
use tokens::*;

use models::forwarded::{self as xff_model, Hop};
use models::ranges as range_model;
use models::request_body as body_model;

/// `cases` cases, and no `proptest-regressions/` files.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Turns a setup error (not the property under test) into a test failure.
pub(crate) fn setup<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, TestCaseError> {
    result.map_err(|e| TestCaseError::fail(format!("test setup failed: {e}")))
}
