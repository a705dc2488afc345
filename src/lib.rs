//! docgate gates document downloads behind emailed, signed, single-use links, and streams the
//! bytes from a private store through itself.
//!
//! # Layout
//!
//! - [`config`]: every environment variable, parsed and validated once at startup.
//! - [`catalog`]: the documents on offer (`catalog.toml`), ids, keys and filenames checked.
//! - [`token`]: signing and verifying link tokens (JWT, HS256). Pure: no I/O, no clock.
//! - [`address`]: email address validation (syntax, domain, disposable providers).
//! - [`store`]: the single-use state of links, behind the `TokenStore` trait.
//! - [`ratelimit`]: GCRA rate limits per client IP and per address, behind `RateLimiter`.
//! - [`objects`]: document bytes, streamed in chunks, behind `ObjectSource`.
//! - [`range`]: `Range` / `If-Range` parsing and selection.
//! - [`mail`]: composing the link mail and delivering it, behind `Mailer`.
//! - [`requestlog`]: the owner's record of who asked and who downloaded, behind `RequestLog`.
//! - [`app`]: the shared state, and the choice of implementation behind each trait.
//! - [`http`]: the hyper server, routes, response bodies, and the one error-to-response mapping.
//! - [`telemetry`]: logging setup and pseudonyms for personal data in logs.
//! - [`check`]: `docgate check`, reaching every backend and looking for dangerous settings.
//! - [`shutdown`]: waiting for SIGTERM or SIGINT.
//! - [`units`], [`html`]: small shared helpers.

#![forbid(unsafe_code)]

pub mod address;
pub mod app;
pub mod catalog;
pub mod check;
pub mod config;
pub mod html;
pub mod http;
pub mod mail;
pub mod objects;
pub mod range;
pub mod ratelimit;
pub mod requestlog;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod units;

use std::sync::Arc;

use tokio::net::TcpListener;

use app::{App, Backends};
use config::{Config, ConfigError, ENV_LISTEN};
use token::TokenCodec;

/// Builds the service on the embedded backends from a validated configuration.
pub async fn build(config: Config) -> Result<Arc<App>, ConfigError> {
    for (set, name) in [(config.smtp.is_some(), config::ENV_SMTP_URL)] {
        if set {
            return Err(ConfigError::hidden(
                name,
                "this backend is not available in this build yet; unset it to run embedded",
            ));
        }
    }
    let catalog = App::load_catalog(&config)?;
    let codec = Arc::new(TokenCodec::new(&config.token.secret));
    let built = Backends::from_config(&config, codec.clone()).await?;
    Ok(Arc::new(
        App::new(config, catalog, codec, built.backends).await?,
    ))
}

/// Binds the public listener named by the configuration.
pub async fn bind(config: &Config) -> Result<TcpListener, ConfigError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|e| ConfigError::value(ENV_LISTEN, &config.listen.to_string(), e))
}
