//! The `docgate` command: parses arguments and the environment, sets up logging, and serves or
//! runs a subcommand ([`docgate::cli`]).

use std::process::ExitCode;

use clap::Parser;

use docgate::cli::serve::Credential;
use docgate::cli::{Cli, Command, EXIT_CONFIG};
use docgate::config::{Config, Environment};

fn main() -> ExitCode {
    // First, before any allocation-heavy work: how the allocator returns freed memory.
    let heap = docgate::heap::tune();
    let cli = Cli::parse();
    let config = match Config::from_source(&Environment) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("docgate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    docgate::telemetry::init(&config.log_filter, config.log_format);
    tracing::debug!(?heap, "allocator thresholds");

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
            command => docgate::cli::run(config, command).await,
        }
    })
}

async fn serve(mut config: Config) -> ExitCode {
    let credential = Credential::prepare(&mut config);
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
    let credential = credential.and_then(Credential::write);
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
    if let Some(credential) = &credential {
        credential.forget();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(cause = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
