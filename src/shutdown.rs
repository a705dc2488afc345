//! Waiting for the signal to stop, and what kind of stop it asks for.

/// Why the service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: an orchestrator rolling the service. Readiness turns `503` first and the
    /// listener keeps accepting for the shutdown delay, while load balancers catch up.
    Terminate,
    /// SIGINT (Ctrl-C): a person at a terminal. No delay.
    Interrupt,
}

/// Resolves on SIGTERM (Kubernetes stopping a pod) or SIGINT (Ctrl-C), logging which.
pub async fn signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("received SIGINT");
                return Signal::Interrupt;
            }
        };
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("received SIGTERM");
                Signal::Terminate
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("received SIGINT");
                Signal::Interrupt
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("received Ctrl-C");
        Signal::Interrupt
    }
}
