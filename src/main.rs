//! The `docgate` command: parses arguments and the environment, sets up logging, and runs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use docgate::admin::remote::{self, Remote, RemoteError};
use docgate::admin::{self, AdminError, Mint};
use docgate::config::{Config, Environment};
use docgate::outbox::queue::{RedisOutbox, Revival};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h).
const EXIT_CONFIG: u8 = 64;
/// Exit code when a backend cannot be reached (`EX_UNAVAILABLE`).
const EXIT_UNAVAILABLE: u8 = 69;
/// Exit code when the thing asked for does not exist or cannot be done (`EX_DATAERR`).
const EXIT_DATA: u8 = 65;

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
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public and admin listeners (the default).
    Serve,
    /// Validate the configuration and reach every backend, one line each; exit non-zero on failure.
    Check,
    /// Mint a link to a document for an address and print it. With DOCGATE_REDIS_URL, in the
    /// shared store; on embedded defaults, through the running service's admin API.
    Link {
        /// The recipient's address.
        #[arg(long)]
        email: String,
        /// The document's id in the catalog.
        #[arg(long)]
        document: String,
        /// How long the link lives, e.g. 15m, 2h, 7d (default: DOCGATE_TOKEN_TTL; at most 30d).
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
    /// Inspect and retry the durable mail queue (needs DOCGATE_REDIS_URL).
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
}

#[derive(Subcommand)]
enum RequestsCommand {
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
enum MailCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_source(&Environment) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("docgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    docgate::telemetry::init(&config.log_filter, config.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("docgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Check => check(config).await,
            Command::Mail { command } => mail(config, command).await,
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
                operate(config, Operation::Link { request, json }).await
            }
            Command::Revoke { jti, email } => {
                operate(config, Operation::Revoke { jti, email }).await
            }
            Command::Requests {
                command: RequestsCommand::Export { email },
            } => operate(config, Operation::Export { email }).await,
            Command::Requests {
                command: RequestsCommand::Erase { email },
            } => operate(config, Operation::Erase { email }).await,
        }
    })
}

async fn serve(mut config: Config) -> ExitCode {
    // Embedded defaults without an admin token: a per-start credential for the command line.
    // The file is written only once the listeners are bound: a second service failing to start
    // here never replaces or removes the running one's.
    let mut credential = if config.redis.is_none() && config.admin_token.is_none() {
        match remote::new_credential() {
            Ok(secret) => {
                config.admin_token = Some(secret.clone());
                Some((remote::credential_path(&config), secret))
            }
            Err(e) => {
                tracing::warn!(cause = %e, "admin credential not made: the admin API stays off");
                None
            }
        }
    } else {
        None
    };
    let service = match docgate::build(config).await {
        Ok(service) => service,
        Err(e) => {
            eprintln!("docgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let app = service.app.clone();
    let listeners = match docgate::bind(&app.config).await {
        Ok(listeners) => listeners,
        Err(e) => {
            eprintln!("docgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some((path, secret)) = &credential {
        match remote::write_credential(path, secret) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "admin credential for the command line written (readable by this user only)"
            ),
            // A convenience for the command line, not a reason to refuse to serve.
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    cause = %e,
                    "admin credential not written: the command line cannot reach this service \
                     (set DOCGATE_ADMIN_TOKEN to use it)"
                );
                credential = None;
            }
        }
    }
    let forget = || {
        if let Some((path, secret)) = &credential {
            remote::remove_credential(path, secret);
        }
    };
    if app.config.token.generated {
        tracing::warn!(
            "neither DOCGATE_TOKEN_SECRET nor DOCGATE_TOKEN_KEYS is set: using a random key for this run; links stop working when docgate restarts"
        );
    }
    let addr = listeners
        .public
        .local_addr()
        .map_or_else(|_| app.config.listen.to_string(), |a| a.to_string());
    let admin = listeners
        .admin
        .local_addr()
        .map_or_else(|_| app.config.admin_listen.to_string(), |a| a.to_string());
    tracing::info!(
        listen = %addr,
        admin = %admin,
        public_url = %app.config.public_url,
        documents = app.catalog.iter().count(),
        "docgate serving"
    );
    drop(app);
    let result = service.run(listeners, docgate::shutdown::signal()).await;
    forget();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(cause = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

fn parse_ttl(value: &str) -> Result<std::time::Duration, String> {
    docgate::units::parse_duration(value).map_err(|e| e.to_string())
}

/// What an operator asked the command line to do to links or the request log.
enum Operation {
    Export {
        email: String,
    },
    Erase {
        email: String,
    },
    Link {
        request: Mint,
        json: bool,
    },
    Revoke {
        jti: Option<String>,
        email: Option<String>,
    },
}

/// Runs an operator action against the configured store, as the admin API would.
async fn operate(config: Config, operation: Operation) -> ExitCode {
    if config.redis.is_none() {
        // The links and the request log live in the running service: ask it.
        return operate_remote(&config, operation).await;
    }
    let service = match docgate::build(config).await {
        Ok(service) => service,
        Err(e) => {
            eprintln!("docgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let app = service.app;
    let failed = |e: AdminError| {
        eprintln!("docgate: {e}");
        match e {
            AdminError::Store(_) | AdminError::Mail(_) | AdminError::Log(_) => {
                ExitCode::from(EXIT_UNAVAILABLE)
            }
            _ => ExitCode::from(EXIT_DATA),
        }
    };
    let code = match operation {
        Operation::Link { request, json } => match admin::mint(&app, &request).await {
            Ok(minted) if json => {
                println!("{}", serde_json::json!(minted));
                ExitCode::SUCCESS
            }
            Ok(minted) => {
                println!("{}", minted.url);
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
        Operation::Revoke { jti: Some(jti), .. } => match admin::revoke(&app, &jti).await {
            Ok(true) => {
                println!("revoked {jti}");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!("docgate: no usable link has the id {jti}");
                ExitCode::from(EXIT_DATA)
            }
            Err(e) => failed(e),
        },
        Operation::Revoke {
            email: Some(email), ..
        } => match admin::revoke_address(&app, &email).await {
            Ok(n) => {
                println!("revoked {n} links");
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
        Operation::Revoke { .. } => ExitCode::from(EXIT_CONFIG),
        Operation::Export { email } => match admin::export_person(&app, &email).await {
            Ok(entries) => {
                for entry in entries {
                    println!("{}", serde_json::json!(entry));
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
        Operation::Erase { email } => match admin::erase_person(&app, &email).await {
            Ok(n) => {
                println!("erased {n} entries");
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
    };
    app.tasks.close();
    app.tasks.wait().await;
    code
}

/// Runs an operator action through the running service's admin API (embedded defaults).
async fn operate_remote(config: &Config, operation: Operation) -> ExitCode {
    let remote = match Remote::from_config(config) {
        Ok(remote) => remote,
        Err(e) => return remote_failed(&e),
    };
    let (method, path, body) = match &operation {
        Operation::Link { request, .. } => {
            let mut body = serde_json::json!({
                "email": request.email,
                "document": request.document,
                "send": request.send,
            });
            if let Some(ttl) = request.ttl {
                body["ttl"] = format!("{}s", ttl.as_secs()).into();
            }
            (http::Method::POST, "/admin/links".to_owned(), Some(body))
        }
        Operation::Revoke { jti: Some(jti), .. } => {
            if !docgate::token::is_valid_jti(jti) {
                eprintln!(
                    "docgate: {}",
                    AdminError::BadJti(jti.chars().take(80).collect())
                );
                return ExitCode::from(EXIT_DATA);
            }
            (http::Method::DELETE, format!("/admin/tokens/{jti}"), None)
        }
        Operation::Revoke {
            email: Some(email), ..
        } => (
            http::Method::POST,
            "/admin/revocations".to_owned(),
            Some(serde_json::json!({ "email": email })),
        ),
        Operation::Revoke { .. } => return ExitCode::from(EXIT_CONFIG),
        Operation::Export { email } => {
            let query = serde_urlencoded::to_string([("email", email)]).unwrap_or_default();
            (http::Method::GET, format!("/admin/people?{query}"), None)
        }
        Operation::Erase { email } => (
            http::Method::POST,
            "/admin/erasures".to_owned(),
            Some(serde_json::json!({ "email": email })),
        ),
    };
    let answer = match remote.call(method, &path, body.as_ref()).await {
        Ok(answer) => answer,
        Err(e) => return remote_failed(&e),
    };
    let status = answer.status;
    if status.is_success() {
        match operation {
            Operation::Link { json: true, .. } => println!("{}", answer.body),
            Operation::Link { .. } => println!("{}", answer.body["url"].as_str().unwrap_or("")),
            Operation::Revoke { jti: Some(jti), .. } => println!("revoked {jti}"),
            Operation::Revoke { .. } => println!("revoked {} links", answer.body["revoked"]),
            Operation::Export { .. } => {
                for entry in answer.body["entries"].as_array().into_iter().flatten() {
                    println!("{entry}");
                }
            }
            Operation::Erase { .. } => println!("erased {} entries", answer.body["erased"]),
        }
        return ExitCode::SUCCESS;
    }
    match (&operation, status) {
        (Operation::Revoke { jti: Some(jti), .. }, http::StatusCode::NOT_FOUND) => {
            eprintln!("docgate: no usable link has the id {jti}");
            ExitCode::from(EXIT_DATA)
        }
        (Operation::Link { request, .. }, http::StatusCode::NOT_FOUND) => {
            eprintln!(
                "docgate: {}",
                AdminError::UnknownDocument(request.document.clone())
            );
            ExitCode::from(EXIT_DATA)
        }
        (_, http::StatusCode::UNAUTHORIZED) => {
            eprintln!(
                "docgate: the service at DOCGATE_ADMIN_LISTEN refused the admin credential: \
                 give the command line the service's DOCGATE_ADMIN_TOKEN"
            );
            ExitCode::from(EXIT_CONFIG)
        }
        (_, status) if status.is_client_error() => {
            eprintln!("docgate: {}", answer.message());
            ExitCode::from(EXIT_DATA)
        }
        _ => {
            eprintln!("docgate: the running service failed: {}", answer.message());
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

/// One line for an admin API that could not be asked, and its exit code.
fn remote_failed(e: &RemoteError) -> ExitCode {
    eprintln!("docgate: {e}");
    match e {
        RemoteError::NoPort(_) => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::from(EXIT_UNAVAILABLE),
    }
}

async fn check(config: Config) -> ExitCode {
    match docgate::check::run(config).await {
        Err(e) => {
            println!("config: FAILED ({e})");
            ExitCode::from(EXIT_CONFIG)
        }
        Ok(lines) => {
            for line in &lines {
                println!("{line}");
            }
            if lines.iter().all(|l| l.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_UNAVAILABLE)
            }
        }
    }
}

async fn mail(config: Config, command: MailCommand) -> ExitCode {
    let Some(redis) = &config.redis else {
        eprintln!("docgate: the mail queue lives in Redis; set DOCGATE_REDIS_URL");
        return ExitCode::from(EXIT_CONFIG);
    };
    let conn = match docgate::store::shared::connect(redis) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("docgate: DOCGATE_REDIS_URL: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let outbox = RedisOutbox::new(conn, &redis.prefix);
    let unavailable = |e: docgate::mail::MailError| {
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
