//! `docgate mail status|dead-letters|retry`: the durable mail queue in Redis, inspected and
//! retried by the operator.

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
