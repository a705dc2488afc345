//! docgate's integration tests: one binary, one module per area. Every test starts its own server
//! on a free loopback port and talks to it over real HTTP. The harness (a docgate per test, the
//! real Redis, SMTP, S3 and Chromium beside it) lives in [`support`].

mod support;

mod admin;
mod approval;
mod browser;
mod bucket;
mod check;
mod copies;
mod dir_reads;
mod downloads;
mod durable;
mod errors;
mod hostile;
mod http2;
mod identifiers;
mod inboxes;
mod inert;
mod journey;
mod key_layout;
mod key_migration;
mod limits;
mod link_errors;
mod link_rate;
mod mail_contract;
mod mail_http;
mod mail_queue;
mod metrics;
mod notify;
mod objects_contract;
mod overload;
mod owner_browser;
mod owner_page;
mod owner_page_log;
mod policy;
mod privacy;
mod process;
mod production;
mod ratelimit_contract;
mod recipients;
mod replicas;
mod request_form;
mod requestlog_contract;
mod round_trips;
mod s3;
mod s3_client;
mod scanner;
mod sentinel_tls;
mod slow;
mod soak;
mod store_contract;
mod topologies;
mod watermark;
mod watermark_downloads;
