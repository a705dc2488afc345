//! A fault-injecting loopback TCP proxy: forwards faithfully until told to cut, then closes every
//! connection once a shared budget of server-to-client bytes is spent, so a body stops halfway
//! (tests put it in front of the S3 server). Started [`ChaosProxy::delayed`], it holds every
//! piece it forwards for a fixed time in each direction (a distant server) and notes when each
//! server-to-client piece was delivered, so a test counts a client's sequential round trips.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// A loopback TCP proxy that forwards faithfully until told to cut: then every connection is
/// closed once the shared budget of server-to-client bytes is spent.
pub struct ChaosProxy {
    pub addr: SocketAddr,
    /// Server-to-client bytes still allowed; `u64::MAX`: no limit.
    budget: Arc<AtomicU64>,
    /// Server-to-client bytes forwarded so far, over all connections.
    forwarded: Arc<AtomicU64>,
    /// When each server-to-client piece was delivered (a delayed proxy only).
    deliveries: Arc<Mutex<Vec<Instant>>>,
    /// Connections accepted so far.
    accepted: Arc<AtomicU64>,
    /// Connections open now (accepted, not yet closed by either side).
    active: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ChaosProxy {
    /// A proxy to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        Self::with_delay(upstream, None).await
    }

    /// A faithful proxy to `upstream` that delivers every piece `delay` after it arrived, in
    /// each direction (a round trip through it takes at least twice `delay`), in order.
    pub async fn delayed(upstream: SocketAddr, delay: Duration) -> Self {
        Self::with_delay(upstream, Some(delay)).await
    }

    async fn with_delay(upstream: SocketAddr, delay: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let budget = Arc::new(AtomicU64::new(u64::MAX));
        let forwarded = Arc::new(AtomicU64::new(0));
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicU64::new(0));
        let (b, f, d, a, live) = (
            budget.clone(),
            forwarded.clone(),
            deliveries.clone(),
            accepted.clone(),
            active.clone(),
        );
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                live.fetch_add(1, Ordering::SeqCst);
                let (b, f, d, live) = (b.clone(), f.clone(), d.clone(), live.clone());
                connections.spawn(async move {
                    match delay {
                        None => relay(client, upstream, b, f).await,
                        Some(delay) => relay_delayed(client, upstream, delay, d).await,
                    }
                    live.fetch_sub(1, Ordering::SeqCst);
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            budget,
            forwarded,
            deliveries,
            accepted,
            active,
            task,
        }
    }

    /// Connections open through the proxy now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::SeqCst)
    }

    /// Connections the proxy has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// When each server-to-client piece was delivered so far (a delayed proxy only).
    pub fn deliveries(&self) -> Vec<Instant> {
        self.deliveries.lock().unwrap().clone()
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

    /// The server-to-client bytes forwarded once the flow has stopped (two readings 250 ms apart
    /// agree); fails the test if it still flows after `within`.
    pub async fn settled(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        let mut before = self.forwarded();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.forwarded();
            if now == before {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "the server kept sending for {within:?}"
            );
            before = now;
        }
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

/// Copies one connection both ways, each piece `delay` late; notes each server-to-client delivery.
async fn relay_delayed(
    client: TcpStream,
    upstream: SocketAddr,
    delay: Duration,
    deliveries: Arc<Mutex<Vec<Instant>>>,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(late(client_read, server_write, delay, None));
    late(server_read, client_write, delay, Some(deliveries)).await;
    up.abort();
}

/// Forwards what `from` reads to `to`, each piece `delay` after it was read; a reader task and
/// this writer, so a delay never holds up the next read.
async fn late(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    deliveries: Option<Arc<Mutex<Vec<Instant>>>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    while let Some((due, piece)) = rx.recv().await {
        tokio::time::sleep_until(due.into()).await;
        if to.write_all(&piece).await.is_err() {
            break;
        }
        if let Some(deliveries) = &deliveries {
            deliveries.lock().unwrap().push(Instant::now());
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}
