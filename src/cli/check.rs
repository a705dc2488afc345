//! `docgate check`: the configuration validated and every backend reached, one line each
//! ([`crate::check`]).

use std::process::ExitCode;

use super::{EXIT_CONFIG, EXIT_UNAVAILABLE};
use crate::config::Config;

/// Prints one line per check; exits non-zero when the configuration or any check failed.
pub async fn run(config: Config) -> ExitCode {
    match crate::check::run(config).await {
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
