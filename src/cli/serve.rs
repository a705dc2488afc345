//! The per-start admin credential `docgate serve` leaves for the command line on embedded
//! defaults without `DOCGATE_ADMIN_TOKEN`: `docgate link`, `revoke` and `requests` then reach the
//! running service's admin API with it ([`crate::admin::remote`]).
//!
//! The file is written only once the listeners are bound: a second service failing to start
//! never replaces or removes the running one's; it is removed at exit only while it still holds
//! this start's secret.

use std::path::PathBuf;

use crate::admin::remote;
use crate::config::Config;
use crate::secret::Secret;

/// This start's admin credential, and the file the command line reads it from.
pub struct Credential {
    path: PathBuf,
    secret: Secret,
}

impl Credential {
    /// A new credential, set as `config`'s admin token, when the service runs on embedded
    /// defaults without one; `None` otherwise (or when none could be made: the admin API then
    /// stays off, with a warning).
    pub fn prepare(config: &mut Config) -> Option<Self> {
        if config.redis.is_some() || config.admin_token.is_some() {
            return None;
        }
        match remote::new_credential() {
            Ok(secret) => {
                config.admin_token = Some(secret.clone());
                Some(Self {
                    path: remote::credential_path(config),
                    secret,
                })
            }
            Err(e) => {
                tracing::warn!(cause = %e, "admin credential not made: the admin API stays off");
                None
            }
        }
    }

    /// Writes the credential for the command line, once the listeners are bound; `None` when it
    /// could not be written (a convenience for the command line, not a reason to refuse to
    /// serve: a warning says so).
    pub fn write(self) -> Option<Self> {
        match remote::write_credential(&self.path, &self.secret) {
            Ok(()) => {
                tracing::info!(
                    path = %self.path.display(),
                    "admin credential for the command line written (readable by this user only)"
                );
                Some(self)
            }
            Err(e) => {
                tracing::warn!(
                    path = %self.path.display(),
                    cause = %e,
                    "admin credential not written: the command line cannot reach this service \
                     (set DOCGATE_ADMIN_TOKEN to use it)"
                );
                None
            }
        }
    }

    /// Removes the file at exit, unless another start has replaced it since.
    pub fn forget(&self) {
        remote::remove_credential(&self.path, &self.secret);
    }
}
