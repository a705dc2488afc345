//! The command line acting through a running service's admin API, for embedded mode: there the
//! links and the request log live in the service's memory and files, so `docgate link`,
//! `docgate revoke` and `docgate requests` ask the service at `DOCGATE_ADMIN_LISTEN` instead of
//! opening a store of their own.
//!
//! The credential is `DOCGATE_ADMIN_TOKEN` when set. Without it, a service on embedded defaults
//! makes a random credential at each start and writes it to [`credential_path`] (next to the
//! request log, mode `0600`, so only the service's own user can read it), the way local tools
//! such as Jupyter or Docker's socket trust their own user; the command line reads it from there.
//! It is a bearer token of the admin listener only, and is removed when the service stops.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::Config;
use crate::secret::Secret;

/// The credential file's name, in the request log's directory.
pub const CREDENTIAL_FILE: &str = "docgate-admin-token";

/// How long one call may take in all (a `--send` through direct SMTP waits for the server).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Random bytes in a per-start credential (256 bits).
const CREDENTIAL_BYTES: usize = 32;

/// Why the admin API could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// `DOCGATE_ADMIN_LISTEN` names no address a client can connect to.
    #[error("DOCGATE_ADMIN_LISTEN={0} has port 0: set it to the running service's admin address")]
    NoPort(SocketAddr),
    /// No token configured and no credential file: the service is not running here.
    #[error(
        "no running docgate found: {} does not exist (a service on embedded defaults writes it \
         at start; or set DOCGATE_ADMIN_TOKEN for both)",
        .0.display()
    )]
    NoCredential(PathBuf),
    #[error("cannot read {}: {cause}", path.display())]
    Credential {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no running docgate answers at {0} (DOCGATE_ADMIN_LISTEN): {1}")]
    NotRunning(SocketAddr, std::io::Error),
    #[error("the admin API at {0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("the admin API at {0} failed: {1}")]
    Protocol(SocketAddr, String),
}

/// The path of the per-start credential for this configuration.
pub fn credential_path(config: &Config) -> PathBuf {
    config
        .request_log
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(CREDENTIAL_FILE)
}

/// A fresh random credential.
pub fn new_credential() -> std::io::Result<Secret> {
    let mut bytes = [0u8; CREDENTIAL_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(bytes).into_bytes()))
}

/// Writes `credential` to `path`, readable by this user only (written to a new file beside it,
/// then renamed over any old one). Called once the service's listeners are bound, so a second
/// service that fails to start never replaces (or removes) a running one's credential.
pub fn write_credential(path: &Path, credential: &Secret) -> std::io::Result<()> {
    let token = credential.expose();
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(&temporary)
        .and_then(|mut file| std::io::Write::write_all(&mut file, token))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(())
}

/// Removes the credential file at `path` if it still holds `credential` (a newer service may
/// have replaced it).
pub fn remove_credential(path: &Path, credential: &Secret) {
    if std::fs::read(path).is_ok_and(|held| held == credential.expose()) {
        let _ = std::fs::remove_file(path);
    }
}

/// A running service's admin API.
#[derive(Debug)]
pub struct Remote {
    addr: SocketAddr,
    token: Secret,
}

/// An answer of the admin API: its status and its JSON body (`null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl Answer {
    /// The message of an error answer: each field's problems, or the error's message.
    pub fn message(&self) -> String {
        if let Some(fields) = self.body["errors"].as_object() {
            let problems: Vec<String> = fields
                .iter()
                .flat_map(|(field, messages)| {
                    messages
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m.as_str())
                        .map(move |m| format!("{field}: {m}"))
                })
                .collect();
            if !problems.is_empty() {
                return problems.join("; ");
            }
        }
        self.body["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {}", self.status), str::to_owned)
    }
}

impl Remote {
    /// The admin API the configuration names, with its credential: `DOCGATE_ADMIN_TOKEN`, else
    /// the running service's per-start credential file.
    pub fn from_config(config: &Config) -> Result<Self, RemoteError> {
        let listen = config.admin_listen;
        if listen.port() == 0 {
            return Err(RemoteError::NoPort(listen));
        }
        // A service listening on every address is reached on loopback.
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let token = match &config.admin_token {
            Some(token) => token.clone(),
            None => {
                let path = credential_path(config);
                match std::fs::read(&path) {
                    Ok(bytes) => Secret::new(bytes.trim_ascii().to_vec()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(RemoteError::NoCredential(path));
                    }
                    Err(cause) => return Err(RemoteError::Credential { path, cause }),
                }
            }
        };
        Ok(Self {
            addr: SocketAddr::new(ip, listen.port()),
            token,
        })
    }

    /// Sends one request (`body` as JSON) and reads the answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, RemoteError> {
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| RemoteError::Timeout(self.addr, CALL_TIMEOUT))?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, RemoteError> {
        let failed = |e: &dyn std::fmt::Display| RemoteError::Protocol(self.addr, e.to_string());
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| RemoteError::NotRunning(self.addr, e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(&e))?;
        tokio::spawn(connection);

        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(self.token.expose());
        let mut authorization = HeaderValue::from_bytes(&bearer)
            .map_err(|_| failed(&"the admin token is not a valid header value"))?;
        authorization.set_sensitive(true);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::AUTHORIZATION, authorization)
            .header(header::ACCEPT, "application/json");
        let bytes = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).map_err(|e| failed(&e))?;
        let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| failed(&e))?
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_is_random_private_and_removed_only_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIAL_FILE);
        let first = new_credential().unwrap();
        write_credential(&path, &first).unwrap();
        assert_eq!(first.expose().len(), 43);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = new_credential().unwrap();
        write_credential(&path, &second).unwrap();
        assert_ne!(first.expose(), second.expose());
        assert_eq!(std::fs::read(&path).unwrap(), second.expose());
        remove_credential(&path, &first);
        assert!(path.exists(), "a newer service's credential stays");
        remove_credential(&path, &second);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
