//! The `docgate` command line: its arguments and subcommands, and what each prints and exits
//! with. `main.rs` parses the arguments, reads the configuration, installs logging and
//! dispatches here (serving itself is wired there).
//!
//! - [`links`]: `docgate link`, `docgate revoke`, `docgate requests` (operator actions on links
//!   and the request log, in the shared store or through the running service's admin API);
//! - [`check`]: `docgate check`;
//! - [`mail`]: `docgate mail` (the durable mail queue), and `docgate migrate-keys` (the key
//!   layout upgrade);
//! - [`serve`]: the per-start admin credential `docgate serve` leaves for the command line.
//!
//! Exit codes follow sysexits.h: [`EXIT_CONFIG`], [`EXIT_DATA`], [`EXIT_UNAVAILABLE`].

pub mod check;
pub mod links;
pub mod mail;
pub mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin::Mint;
use crate::approval::Verdict;
use crate::config::Config;
use links::Operation;

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when a backend cannot be reached (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code when the thing asked for does not exist or cannot be done (`EX_DATAERR`).
pub const EXIT_DATA: u8 = 65;

/// Gates document downloads behind emailed, signed, single-use links.
///
/// Configuration comes from DOCGATE_* environment variables; see README.md. With none set,
/// docgate runs on embedded defaults: documents from ./documents, mails written to ./outbox.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Exit codes: 0 success; 64 bad configuration or usage; 65 no such item, or \
                  invalid input; 69 a backend cannot be reached or failed a check, or (link, \
                  revoke, requests on embedded defaults) no running docgate answers at \
                  DOCGATE_ADMIN_LISTEN."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the public and admin listeners (the default).
    Serve,
    /// Validate the configuration and reach every backend, one line each; exit non-zero on failure.
    Check,
    /// Mint a link to a document for an address and print it. With Redis (any topology), in the
    /// shared store; on embedded defaults, through the running service's admin API.
    Link {
        /// The recipient's address.
        #[arg(long)]
        email: String,
        /// The document's id in the catalog.
        #[arg(long)]
        document: String,
        /// How long the link lives, e.g. 15m, 2h, 7d (default: the document's link_ttl, else
        /// DOCGATE_TOKEN_TTL; at most 30d).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<std::time::Duration>,
        /// Also mail the link to the address, as a visitor's request would.
        #[arg(long)]
        send: bool,
        /// Print {"url", "jti", "expires_at"} as JSON instead of the bare URL.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a link by its id (the jti), or every link of one address (in the shared store,
    /// or through the running service's admin API). A download in flight stops within a second.
    Revoke {
        /// The link's id, as the admin API, the request log or `docgate link --json` shows it.
        #[arg(
            required_unless_present = "email",
            conflicts_with = "email",
            allow_hyphen_values = true
        )]
        jti: Option<String>,
        /// Withdraw every usable link made for this address instead.
        #[arg(long)]
        email: Option<String>,
    },
    /// Export or erase one person's entries in the owner's request log (in Redis, or through the
    /// running service's admin API).
    Requests {
        #[command(subcommand)]
        command: RequestsCommand,
    },
    /// List the requests waiting for the owner's decision (documents with approval = true),
    /// oldest first, one JSON object per line: {"id", "email", "document", "asked_at"}.
    Approvals,
    /// Approve a pending request by its id (`docgate approvals` shows it): the person gets the
    /// usual link mail.
    Approve {
        /// The pending request's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Decline a pending request by its id: the person gets DOCGATE_APPROVAL_DECLINE_TEXT, or
    /// nothing when it is off.
    Decline {
        /// The pending request's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Inspect and retry the durable mail queue (needs Redis: DOCGATE_REDIS_URL, _CLUSTER_URLS or
    /// _SENTINEL_URLS).
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Move the Redis keys an older docgate wrote to this version's hash-tagged names, keeping
    /// every live link, queued mail and request log entry; print what moved. Run it with every
    /// docgate stopped, before the new version starts; running it again moves nothing more.
    MigrateKeys,
}

#[derive(Subcommand)]
pub enum RequestsCommand {
    /// Print every entry of one person, newest first, one JSON object per line: their link
    /// requests, and the downloads and opens of the links made for them.
    Export {
        /// The person's address (any case).
        #[arg(long)]
        email: String,
    },
    /// Delete every entry of one person (what `export` prints), and stop joining later uses of
    /// their links to them; print how many entries were deleted.
    Erase {
        /// The person's address (any case).
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
pub enum MailCommand {
    /// How many mails are queued, waiting for a retry, and dead, as JSON.
    Status,
    /// Mails that will not be sent (rejected by the server, or their link expired), newest
    /// first, one JSON object per line.
    DeadLetters {
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Queue a dead letter again, by the id `dead-letters` shows (its link must still be live).
    Retry {
        /// The dead letter's id, e.g. 1764000000000-0.
        id: String,
    },
}

/// Runs a subcommand, printing its output, and returns its exit code. Serving is the binary's
/// own wiring (`main.rs` builds and runs the service): `Command::Serve` is not run here, and is
/// answered as a usage error.
pub async fn run(config: Config, command: Command) -> ExitCode {
    match command {
        Command::Serve => ExitCode::from(EXIT_CONFIG),
        Command::Check => check::run(config).await,
        Command::Mail { command } => mail::run(config, command).await,
        Command::MigrateKeys => mail::migrate_keys(config).await,
        Command::Link {
            email,
            document,
            ttl,
            send,
            json,
        } => {
            let request = Mint {
                email,
                document,
                ttl,
                send,
            };
            links::run(config, Operation::Link { request, json }).await
        }
        Command::Revoke { jti, email } => {
            links::run(config, Operation::Revoke { jti, email }).await
        }
        Command::Requests {
            command: RequestsCommand::Export { email },
        } => links::run(config, Operation::Export { email }).await,
        Command::Requests {
            command: RequestsCommand::Erase { email },
        } => links::run(config, Operation::Erase { email }).await,
        Command::Approvals => links::run(config, Operation::Approvals).await,
        Command::Approve { id } => {
            let verdict = Verdict::Approve;
            links::run(config, Operation::Decide { id, verdict }).await
        }
        Command::Decline { id } => {
            let verdict = Verdict::Decline;
            links::run(config, Operation::Decide { id, verdict }).await
        }
    }
}

fn parse_ttl(value: &str) -> Result<std::time::Duration, String> {
    crate::units::parse_duration(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Command>, clap::Error> {
        Cli::try_parse_from(std::iter::once("docgate").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn the_arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_serves() {
        assert!(parse(&[]).unwrap().is_none());
        assert!(matches!(parse(&["serve"]).unwrap(), Some(Command::Serve)));
    }

    #[test]
    fn link_reads_its_flags_and_a_lifetime() {
        let link = ["link", "--email", "a@example.org", "--document", "resume"];
        match parse(&[&link[..], &["--ttl", "2h", "--send", "--json"]].concat()).unwrap() {
            Some(Command::Link {
                email,
                document,
                ttl,
                send,
                json,
            }) => {
                assert_eq!(
                    (email.as_str(), document.as_str()),
                    ("a@example.org", "resume")
                );
                assert_eq!(ttl, Some(std::time::Duration::from_secs(7200)));
                assert!(send && json);
            }
            _ => panic!("not a link command"),
        }
        match parse(&link).unwrap() {
            Some(Command::Link {
                ttl, send, json, ..
            }) => assert!(ttl.is_none() && !send && !json),
            _ => panic!("not a link command"),
        }
        assert!(parse(&[&link[..], &["--ttl", "soon"]].concat()).is_err());
        assert!(parse(&["link", "--email", "a@example.org"]).is_err());
    }

    #[test]
    fn revoke_takes_a_link_id_or_an_address_not_both() {
        assert!(parse(&["revoke"]).is_err());
        assert!(parse(&["revoke", "abc", "--email", "a@example.org"]).is_err());
        // A jti may begin with a hyphen (base64url).
        match parse(&["revoke", "-Abc_1"]).unwrap() {
            Some(Command::Revoke { jti, email }) => {
                assert_eq!(jti.as_deref(), Some("-Abc_1"));
                assert!(email.is_none());
            }
            _ => panic!("not a revoke command"),
        }
        match parse(&["revoke", "--email", "a@example.org"]).unwrap() {
            Some(Command::Revoke { jti, email }) => {
                assert!(jti.is_none());
                assert_eq!(email.as_deref(), Some("a@example.org"));
            }
            _ => panic!("not a revoke command"),
        }
    }

    #[test]
    fn mail_dead_letters_shows_twenty_unless_told() {
        for (args, want) in [
            (&["mail", "dead-letters"][..], 20),
            (&["mail", "dead-letters", "--limit", "3"][..], 3),
        ] {
            match parse(args).unwrap() {
                Some(Command::Mail {
                    command: MailCommand::DeadLetters { limit },
                }) => assert_eq!(limit, want),
                _ => panic!("not a dead-letters command"),
            }
        }
        assert!(parse(&["requests", "export"]).is_err());
    }
}
