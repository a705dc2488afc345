//! The `docgate` command: parses arguments and the environment, sets up logging, and runs.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use docgate::config::{Config, Environment};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h).
const EXIT_CONFIG: u8 = 64;
/// Exit code when a backend cannot be reached (`EX_UNAVAILABLE`).
const EXIT_UNAVAILABLE: u8 = 69;

/// Gates document downloads behind emailed, signed, single-use links.
///
/// Configuration comes from DOCGATE_* environment variables; see README.md. With none set,
/// docgate runs on embedded defaults: documents from ./documents, mails written to ./outbox.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public listener (the default).
    Serve,
    /// Validate the configuration and reach every backend, one line each; exit non-zero on failure.
    Check,
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
        }
    })
}

async fn serve(config: Config) -> ExitCode {
    let service = match docgate::build(config).await {
        Ok(service) => service,
        Err(e) => {
            eprintln!("docgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let app = service.app.clone();
    let listener = match docgate::bind(&app.config).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("docgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if app.config.token.generated {
        tracing::warn!(
            "DOCGATE_TOKEN_SECRET is not set: using a random key for this run; links stop working when docgate restarts"
        );
    }
    let addr = listener
        .local_addr()
        .map_or_else(|_| app.config.listen.to_string(), |a| a.to_string());
    tracing::info!(
        listen = %addr,
        public_url = %app.config.public_url,
        documents = app.catalog.iter().count(),
        "docgate serving"
    );
    drop(app);
    match service.run(listener, docgate::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(cause = %e, "server failed");
            ExitCode::FAILURE
        }
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
