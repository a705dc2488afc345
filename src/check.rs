//! `docgate check`: validates the configuration and reaches every backend, one line each.
//!
//! Beyond "it answers", each check looks for the misconfigurations that silently break the gate:
//! a Redis that may evict docgate's keys (an evicted token key revokes a link, an evicted limit key
//! lets a client start over), a catalog document missing from the store. When the owner is told
//! of downloads, one more line says how, and whether the webhook's host takes connections.

use std::fmt;

use crate::app::App;
use crate::config::{Config, ConfigError, Topology};
use crate::objects::ObjectSource;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What was checked: `config`, `catalog`, `token store`, ...
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.ok { "ok" } else { "FAILED" };
        write!(f, "{}: {verdict} ({})", self.name, self.detail)
    }
}

fn line(name: &'static str, ok: bool, detail: impl Into<String>) -> Line {
    Line {
        name,
        ok,
        detail: detail.into(),
    }
}

/// Runs every check. `Err` when the configuration itself is bad (nothing else can be checked).
pub async fn run(config: Config) -> Result<Vec<Line>, ConfigError> {
    let mut lines = vec![line("config", true, "every variable valid")];
    let token = &config.token;
    let kids: Vec<&str> = token.keys.iter().map(|(kid, _)| kid.as_str()).collect();
    lines.push(line(
        "token keys",
        true,
        if token.generated {
            "none configured: a random key for this process; links die with it".to_owned()
        } else {
            format!(
                "signing with kid {}; verifying {}",
                token.signing,
                kids.join(", ")
            )
        },
    ));
    let redis = config.redis.clone();
    let s3 = config.s3.clone();
    let app = crate::build(config).await?.app;
    lines.push(line(
        "catalog",
        true,
        format!(
            "{} documents, every object present",
            app.catalog.iter().count()
        ),
    ));
    lines.push(match &redis {
        None => store_line(&app, "embedded, in process").await,
        Some(redis) => redis_line(redis).await,
    });
    lines.push(match &s3 {
        Some(s3) => bucket_line(&app, s3).await,
        None => match app.backends.objects.ping().await {
            Ok(()) => line(
                "object store",
                true,
                format!("directory {}", app.config.documents_dir.display()),
            ),
            Err(e) => line("object store", false, e.to_string()),
        },
    });
    lines.push(match &app.config.smtp {
        None => line(
            "mail",
            true,
            format!("outbox directory {}", app.config.outbox_dir.display()),
        ),
        Some(smtp) => match crate::mail::smtp::transport(smtp) {
            Err(e) => line("mail", false, e.to_string()),
            Ok(transport) => match crate::mail::smtp::test_connection(&transport).await {
                Ok(()) => line("mail", true, "SMTP server answers NOOP"),
                Err(e) => line("mail", false, e.to_string()),
            },
        },
    });
    if let Some(line) = notices_line(&app.config).await {
        lines.push(line);
    }
    Ok(lines)
}

/// How the owner learns of downloads, when at all: the webhook's host must take a TCP
/// connection (nothing is sent: a request would be an event). Never shows the URL's path or
/// query, nor the owner's address.
async fn notices_line(config: &Config) -> Option<Line> {
    let owner = &config.owner;
    if !owner.enabled() {
        return None;
    }
    let mut ok = true;
    let mut parts = Vec::new();
    if owner.email.is_some() {
        parts.push("mail to the owner".to_owned());
    }
    if let Some(webhook) = &owner.webhook {
        let host = webhook.url.host().unwrap_or_default();
        match crate::notify::webhook::probe(&webhook.url).await {
            Ok(()) => parts.push(format!("webhook host {host} takes connections")),
            Err(e) => {
                ok = false;
                parts.push(format!("webhook host {host}: {e}"));
            }
        }
    }
    Some(line("owner notices", ok, parts.join("; ")))
}

async fn store_line(app: &App, what: &str) -> Line {
    match app.backends.store.ping().await {
        Ok(()) => line("token store", true, what),
        Err(e) => line("token store", false, e.to_string()),
    }
}

/// Reaches the bucket, and makes sure no catalog object can be read without credentials: a
/// public object defeats the whole gate.
async fn bucket_line(app: &App, s3: &crate::config::S3Config) -> Line {
    let source = match crate::objects::s3::S3Source::new(s3).await {
        Ok(source) => source,
        Err(e) => return line("object store", false, e.to_string()),
    };
    if let Err(e) = source.ping().await {
        return line("object store", false, format!("bucket {}: {e}", s3.bucket));
    }
    let mut public = Vec::new();
    for document in app.catalog.iter() {
        match source.publicly_readable(&document.key).await {
            Ok(false) => {}
            Ok(true) => public.push(document.id.clone()),
            Err(e) => {
                return line(
                    "object store",
                    false,
                    format!("bucket {}: cannot probe {:?}: {e}", s3.bucket, document.id),
                );
            }
        }
    }
    if public.is_empty() {
        line(
            "object store",
            true,
            format!(
                "bucket {} answers; no catalog object is readable without credentials; {}",
                s3.bucket,
                source.receive_buffer()
            ),
        )
    } else {
        line(
            "object store",
            false,
            format!(
                "bucket {}: documents {} can be downloaded by anyone without a link; make them private",
                s3.bucket,
                public.join(", ")
            ),
        )
    }
}

/// Every Lua script docgate runs on Redis, by name.
fn lua_scripts() -> Vec<(&'static str, String)> {
    [
        crate::store::shared::scripts(),
        crate::ratelimit::shared::scripts(),
        crate::requestlog::shared::scripts(),
        crate::outbox::queue::scripts(),
        crate::migrate::scripts(),
    ]
    .concat()
}

/// Reaches every primary of the Redis topology, reads its eviction policy and loads every script
/// docgate runs (`SCRIPT LOAD`: a server too old for `#!lua` flags, or an ACL user without
/// `SCRIPT`, fails here rather than on the first download): only `noeviction`
/// keeps docgate's keys (all of which have TTLs, so `volatile-*` policies evict them too). A
/// cluster must be in state `ok`; a Sentinel setup must name a primary. The first failure is
/// reported with the node it concerns.
async fn redis_line(redis: &crate::config::RedisConfig) -> Line {
    let kind = match &redis.topology {
        Topology::Standalone { .. } => "redis",
        Topology::Cluster { .. } => "redis cluster",
        Topology::Sentinel { .. } => "redis sentinel",
    };
    let primaries = match crate::topology::primaries(redis).await {
        Ok(primaries) if !primaries.is_empty() => primaries,
        Ok(_) => {
            return line(
                "token store",
                false,
                format!("{kind}: no primary serves slots"),
            );
        }
        Err(e) => return line("token store", false, format!("{kind} unreachable: {e}")),
    };
    let scripts = lua_scripts();
    let settings = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(crate::topology::CONNECT_TIMEOUT))
        .set_response_timeout(Some(crate::topology::RESPONSE_TIMEOUT));
    for primary in &primaries {
        let address = &primary.address;
        let info: Result<_, redis::RedisError> = async {
            let mut conn = primary
                .client
                .get_multiplexed_async_connection_with_config(&settings)
                .await?;
            let info: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut conn)
                .await?;
            Ok((conn, info))
        }
        .await;
        let (mut conn, info) = match info {
            Ok(found) => found,
            Err(e) => {
                return line(
                    "token store",
                    false,
                    format!("{kind}: primary {address} unreachable: {e}"),
                );
            }
        };
        let policy = info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(str::trim)
            .unwrap_or("unknown");
        if policy != "noeviction" {
            return line(
                "token store",
                false,
                format!(
                    "{kind}: primary {address}: redis maxmemory-policy is {policy}: under memory pressure Redis may evict docgate's keys \
                     (an evicted link is revoked, an evicted rate limit starts over); set it to noeviction"
                ),
            );
        }
        for (script, source) in &scripts {
            let loaded: Result<String, _> = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(source)
                .query_async(&mut conn)
                .await;
            if let Err(e) = loaded {
                return line(
                    "token store",
                    false,
                    format!("{kind}: primary {address}: the {script} script does not load: {e}"),
                );
            }
        }
    }
    let detail = match &redis.topology {
        Topology::Standalone { .. } => format!(
            "redis answers; maxmemory-policy noeviction; {} scripts load",
            scripts.len()
        ),
        Topology::Cluster { .. } => format!(
            "redis cluster state ok; {} primaries answer ({}); maxmemory-policy noeviction and {} scripts load on each",
            primaries.len(),
            primaries
                .iter()
                .map(|p| p.address.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            scripts.len()
        ),
        Topology::Sentinel { master, .. } => format!(
            "redis sentinel: primary of {master} at {} answers; maxmemory-policy noeviction; {} scripts load",
            primaries[0].address,
            scripts.len()
        ),
    };
    line("token store", true, detail)
}
