//! A fault-injecting loopback TCP proxy: forwards faithfully until told to cut, then closes every
//! connection once a shared budget of server-to-client bytes is spent, so a body stops halfway
//! (tests put it in front of the S3 server).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A loopback TCP proxy that forwards faithfully until told to cut: then every connection is
/// closed once the shared budget of server-to-client bytes is spent.
pub struct ChaosProxy {
    pub addr: SocketAddr,
    /// Server-to-client bytes still allowed; `u64::MAX`: no limit.
    budget: Arc<AtomicU64>,
    /// Server-to-client bytes forwarded so far, over all connections.
    forwarded: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ChaosProxy {
    /// A proxy to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let budget = Arc::new(AtomicU64::new(u64::MAX));
        let forwarded = Arc::new(AtomicU64::new(0));
        let (b, f) = (budget.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(relay(client, upstream, b.clone(), f.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            budget,
            forwarded,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, forward `n` more server-to-client bytes in all, then cut every connection.
    pub fn cut_after(&self, n: u64) {
        self.budget.store(n, Ordering::SeqCst);
    }

    /// Server-to-client bytes forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies one connection both ways; the server-to-client direction draws on `budget`.
async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    budget: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let allowed = take(&budget, n as u64) as usize;
        if client_write.write_all(&buf[..allowed]).await.is_err() {
            break;
        }
        forwarded.fetch_add(allowed as u64, Ordering::SeqCst);
        if allowed < n {
            break;
        }
    }
    up.abort();
    // Dropping both halves of both sockets closes the connection mid-response.
}

/// Takes up to `n` bytes from `budget`; returns how many were granted.
fn take(budget: &AtomicU64, n: u64) -> u64 {
    let mut granted = 0;
    let _ = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
        if left == u64::MAX {
            granted = n;
            return None;
        }
        granted = n.min(left);
        Some(left - granted)
    });
    granted
}
