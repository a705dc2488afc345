//! `docgate link`, `docgate revoke`, `docgate requests export|erase`, `docgate approvals`,
//! `docgate approve|decline`: operator actions on links, the request log and pending requests, run against the shared store as the admin API would ([`crate::admin`]),
//! or, on embedded defaults, through the running service's admin API
//! ([`crate::admin::remote`]).

use std::process::ExitCode;

use super::{EXIT_CONFIG, EXIT_DATA, EXIT_UNAVAILABLE};
use crate::admin::remote::{Remote, RemoteError};
use crate::admin::{self, AdminError, Mint};
use crate::approval::Verdict;
use crate::config::Config;
use crate::link::LinkError;

/// What an operator asked the command line to do to links or the request log.
pub enum Operation {
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
    /// List the pending requests.
    Approvals,
    /// Decide one pending request.
    Decide {
        id: String,
        verdict: Verdict,
    },
}

/// What a decided request's line says.
fn decided(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Approve => "approved",
        Verdict::Decline => "declined",
    }
}

/// The line for an id that names no pending request.
fn not_pending(id: &str) -> ExitCode {
    eprintln!(
        "docgate: no pending request has the id {} (decided already, expired, or unknown)",
        id.chars().take(80).collect::<String>()
    );
    ExitCode::from(EXIT_DATA)
}

/// Runs an operator action against the configured store, as the admin API would.
pub async fn run(config: Config, operation: Operation) -> ExitCode {
    if config.redis.is_none() {
        // The links and the request log live in the running service: ask it.
        return operate_remote(&config, operation).await;
    }
    let service = match crate::build(config).await {
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
            AdminError::Store(_)
            | AdminError::Log(_)
            | AdminError::Approval(_)
            | AdminError::Link(LinkError::Approval(_))
            | AdminError::Link(LinkError::Store(_) | LinkError::Mail(_) | LinkError::Limiter(_)) => {
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
        Operation::Approvals => match admin::approvals(&app).await {
            Ok(rows) => {
                for row in rows {
                    println!("{}", serde_json::json!(row));
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed(e),
        },
        Operation::Decide { id, verdict } => match admin::decide(&app, &id, verdict).await {
            Ok(true) => {
                println!("{} {id}", decided(verdict));
                ExitCode::SUCCESS
            }
            Ok(false) | Err(AdminError::BadApprovalId(_)) => not_pending(&id),
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
            if !crate::token::is_valid_jti(jti) {
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
        Operation::Approvals => (http::Method::GET, "/admin/approvals".to_owned(), None),
        Operation::Decide { id, verdict } => {
            if !crate::token::is_valid_jti(id) {
                return not_pending(id);
            }
            (
                http::Method::POST,
                format!("/admin/approvals/{id}"),
                Some(serde_json::json!({ "decision": verdict.tag() })),
            )
        }
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
            Operation::Approvals => {
                for row in answer.body["pending"].as_array().into_iter().flatten() {
                    println!("{row}");
                }
            }
            Operation::Decide { id, verdict } => println!("{} {id}", decided(verdict)),
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
        (Operation::Decide { id, .. }, http::StatusCode::NOT_FOUND) => not_pending(id),
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
