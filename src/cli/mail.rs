//! `docgate mail status|dead-letters|retry`: the durable mail queue in Redis, inspected and
//! retried by the operator; and `docgate migrate-keys`, the upgrade of the keys in Redis (the
//! queue's among them) to the hash-tagged layout.

use std::process::ExitCode;

use super::{EXIT_CONFIG, EXIT_DATA, EXIT_UNAVAILABLE, MailCommand};
use crate::config::Config;
use crate::outbox::queue::{RedisOutbox, Revival};

/// Runs one mail queue command, printing JSON (one object per line for lists).
pub async fn run(config: Config, command: MailCommand) -> ExitCode {
    let Some(redis) = &config.redis else {
        eprintln!(
            "docgate: the mail queue lives in Redis; set DOCGATE_REDIS_URL, DOCGATE_REDIS_CLUSTER_URLS or DOCGATE_REDIS_SENTINEL_URLS"
        );
        return ExitCode::from(EXIT_CONFIG);
    };
    let conn = match crate::store::shared::connect(redis) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("docgate: {}: {e}", redis.topology.variable());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let outbox = RedisOutbox::new(conn, &redis.prefix);
    let unavailable = |e: crate::mail::MailError| {
        eprintln!("docgate: {e}");
        ExitCode::from(EXIT_UNAVAILABLE)
    };
    match command {
        MailCommand::Status => match outbox.queue_depth().await {
            Ok(depth) => {
                println!("{}", serde_json::json!(depth));
                ExitCode::SUCCESS
            }
            Err(e) => unavailable(e),
        },
        MailCommand::DeadLetters { limit } => match outbox.dead_letters(limit).await {
            Ok(letters) => {
                for letter in letters {
                    println!("{}", serde_json::json!(letter));
                }
                ExitCode::SUCCESS
            }
            Err(e) => unavailable(e),
        },
        MailCommand::Retry { id } => match outbox.retry_dead_letter(&id).await {
            Ok(Revival::Queued) => {
                println!("queued {id} again");
                ExitCode::SUCCESS
            }
            Ok(Revival::NotFound) => {
                eprintln!("docgate: no dead letter {id}");
                ExitCode::from(EXIT_DATA)
            }
            Ok(Revival::Expired) => {
                eprintln!("docgate: the link in {id} has expired; the visitor must ask again");
                ExitCode::from(EXIT_DATA)
            }
            Ok(Revival::Unreadable) => {
                eprintln!("docgate: {id} is not a complete mail job");
                ExitCode::from(EXIT_DATA)
            }
            Err(e) => unavailable(e),
        },
    }
}

/// Moves an older version's keys to the hash-tagged layout and prints what moved, one line per
/// kind of key. Exits 65 when some old key could not move because its new name was taken.
pub async fn migrate_keys(config: Config) -> ExitCode {
    let Some(redis) = &config.redis else {
        eprintln!("docgate: the keys to migrate live in Redis; set DOCGATE_REDIS_URL");
        return ExitCode::from(EXIT_CONFIG);
    };
    let mut conn = match crate::store::shared::connect(redis) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("docgate: DOCGATE_REDIS_URL: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let report = match crate::migrate::migrate_keys(&mut conn, &redis.prefix).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!(
                "docgate: migrating the keys failed (what moved stays moved; run it again): {e}"
            );
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    for (family, moved) in &report.moved {
        println!("{}: {moved} moved", family.name());
    }
    println!("{} keys moved in all", report.total());
    if report.left.is_empty() {
        return ExitCode::SUCCESS;
    }
    for key in &report.left {
        eprintln!("docgate: {key} not moved: its new name already exists");
    }
    eprintln!(
        "docgate: {} keys left under their old names: was a new docgate started before the \
         migration? See docs/operations.md, \"Upgrading the key layout\"",
        report.left.len()
    );
    ExitCode::from(EXIT_DATA)
}
