//! The S3 client's HTTP transport: hyper's HTTP/1.1 connections over rustls in a pool of its own,
//! built here instead of taken from the SDK so that what it buffers per connection is bounded, and
//! so that a connection is driven by the task that reads its response: a download's task reads
//! each piece from S3's socket itself, only when it asks for the next one, and writes it to the
//! client, with no task per connection in between (hyper-util's pooled client runs one, and hands
//! every piece from it to the download through a channel: at 256 concurrent downloads that cost
//! docgate half its CPU per GiB, `docs/benchmarks.md`). A connection read to the end of its
//! response goes back to the pool, as its socket alone (hyper's buffers for it are dropped while it
//! waits and made anew when it is taken); one whose body is dropped before, or that the SDK
//! poisoned, is closed; an idle one is checked for a close by S3 before it is reused.
//!
//! This module owns the transport's settings: the read buffer's upper bound ([`READ_BUFFER_MAX`];
//! hyper's default lets it grow to about 400 KiB per connection, which at a few hundred concurrent
//! downloads was most of docgate's memory) and the wider one a response reads with while the client
//! has few open ([`READ_BUFFER_WIDE`] below [`FEW_RESPONSES`]: fewer, larger reads cost less CPU
//! per byte, and a few streams' buffers cost little memory), the kernel receive buffer each
//! socket asks for ([`ReceiveBuffer`]: how far S3 may send ahead of the reads), TLS (rustls with
//! the aws-lc-rs provider, the operating system's root certificates and the cipher suites the SDK's
//! own client allows), the connect and read timeouts the SDK asks for, and how a failure is
//! classified for the SDK's retries (timeout, I/O, truncated response) and connection poisoning.
//! Bodies stay pull-based: hyper reads the next piece of a body from the socket only when it is
//! polled.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http::Uri;
use http_body::Body as _;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;
use tower::ServiceExt;

/// The size of a connection's HTTP/1 read buffer (every read from S3 asks for exactly this much),
/// and so the largest piece of a body hyper hands over at once. It must also hold a response's
/// headers (S3's are a few KiB). With 32 KiB,
/// 256 concurrent 10 MiB downloads stay under 32 MiB above idle (64 KiB: 42–53 MiB), for about
/// 0.2 CPU seconds more per GiB (more, smaller reads).
pub const READ_BUFFER_MAX: usize = 32 * 1024;

/// The read buffer's bound for a response that starts while its client has fewer than
/// [`FEW_RESPONSES`] others open. A read from S3 costs about the same CPU whatever its size (the
/// socket call and the acknowledgement it sends), so fewer, larger reads cost less per GiB. 120
/// KiB: just under the size from which glibc gives a block a mapping of its own (128 KiB, which
/// `heap` keeps fixed), so each response's buffer comes from the heap, where the one before it was
/// freed, instead of being mapped and faulted in afresh (a 128 KiB or 256 KiB buffer measured
/// slower than 64 KiB for that). With the connections' fixed receive buffer, 120 KiB against 64
/// KiB took 16 concurrent downloads from 0.86 to 0.93 of an nginx hop at 1 MiB and from 0.88 to
/// 1.02 at 10 MiB, and left 256 concurrent ones' memory where it was (`docs/benchmarks.md`).
pub const READ_BUFFER_WIDE: usize = 120 * 1024;

// A buffer of READ_BUFFER_WIDE, and what is left over from the read before it, stay on the heap.
const _: () = assert!(READ_BUFFER_WIDE + 8 * 1024 <= crate::heap::MAPPED_FROM);

/// Below this many open responses (a response is open until its body is finished or dropped),
/// a new one reads with [`READ_BUFFER_WIDE`]; from this many on, with [`READ_BUFFER_MAX`]. Under
/// many downloads only the responses that started while few were open, and the wide pool's idle
/// connections, hold wide buffers: at most this many connections, 1 MiB (the first of a burst
/// read wide to their end; `docs/benchmarks.md` measures 256 concurrent downloads).
pub const FEW_RESPONSES: usize = 16;

/// The cipher suites the SDK's own rustls client allows (TLS 1.3 and ECDHE with AEAD for 1.2).
const CIPHER_SUITES: [rustls::CipherSuite; 7] = [
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The operating system's root certificates, read once (as the SDK's own client does).
static NATIVE_ROOTS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    let loaded = rustls_native_certs::load_native_certs();
    if !loaded.errors.is_empty() {
        tracing::warn!(
            errors = loaded.errors.len(),
            "some root certificates could not be read"
        );
    }
    if loaded.certs.is_empty() {
        tracing::warn!("no root certificates found: TLS connections to S3 will fail");
    }
    loaded.certs
});

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the S3 client's TLS settings are unusable: {0}")]
pub struct TlsSetupError(#[from] rustls::Error);

/// How each connection's kernel receive buffer is sized: how much S3 may send ahead of docgate's
/// reads.
///
/// Left to itself, Linux starts a connection's buffer small (`net.ipv4.tcp_rmem`'s default, 128
/// KiB) and grows it with how much the reader takes per round trip. docgate reads 32–120 KiB at a
/// time between its writes to the client, so its S3 connections stayed near 1.3 MB where nginx's,
/// reading 256 KiB, grew past 10 MiB. With the window that small every read reopened it, and the
/// store sent its next piece only then: with the store on the same machine (MinIO beside docgate,
/// the benchmark's origin) that send ran on docgate's CPU, and a download of a few MiB cost docgate
/// twice the CPU per GiB (`docs/benchmarks.md`, "The S3 connections' receive buffer"). A fixed
/// buffer lets the store send a document of that size at once. It is kernel memory, not
/// docgate's: a client that stops reading leaves up to twice this much (the kernel's bookkeeping)
/// in the socket, which a container's memory limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveBuffer {
    /// `SO_RCVBUF` of this many bytes, set before connecting (the kernel then no longer resizes
    /// it).
    Fixed(usize),
    /// The kernel sizes it as the connection goes (its receive autotuning).
    Kernel(KernelSized),
}

/// Why the kernel sizes the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSized {
    /// The operator asked for it (a size of 0).
    Chosen,
    /// `net.core.rmem_max` caps `SO_RCVBUF` below the size asked for, and a capped fixed buffer
    /// would do worse than autotuning, which the cap does not bind.
    Capped { rmem_max: usize },
    /// The cap could not be read (not Linux).
    Unknown,
}

impl ReceiveBuffer {
    /// What asking for `wanted` bytes (0: the kernel's sizing) comes to on this host.
    pub fn for_host(wanted: usize) -> Self {
        let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|text| text.trim().parse().ok());
        Self::within(wanted, rmem_max)
    }

    /// What asking for `wanted` bytes comes to under the cap `rmem_max`.
    pub fn within(wanted: usize, rmem_max: Option<usize>) -> Self {
        match (wanted, rmem_max) {
            (0, _) => Self::Kernel(KernelSized::Chosen),
            (_, None) => Self::Kernel(KernelSized::Unknown),
            (wanted, Some(cap)) if cap < wanted => {
                Self::Kernel(KernelSized::Capped { rmem_max: cap })
            }
            (wanted, Some(_)) => Self::Fixed(wanted),
        }
    }

    fn fixed(self) -> Option<usize> {
        match self {
            Self::Fixed(bytes) => Some(bytes),
            Self::Kernel(_) => None,
        }
    }
}

impl fmt::Display for ReceiveBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(bytes) => write!(f, "receive buffer {bytes} bytes per connection"),
            Self::Kernel(KernelSized::Chosen) => f.write_str("receive buffer sized by the kernel"),
            Self::Kernel(KernelSized::Capped { rmem_max }) => write!(
                f,
                "receive buffer sized by the kernel: net.core.rmem_max ({rmem_max}) is below \
                 DOCGATE_S3_RECEIVE_BUFFER_BYTES"
            ),
            Self::Kernel(KernelSized::Unknown) => {
                f.write_str("receive buffer sized by the kernel: net.core.rmem_max is unknown")
            }
        }
    }
}

/// docgate's transport to S3: the SDK's HTTP client, and connectors on the same connection pools
/// for requests docgate sends itself (`objects::s3::direct`).
#[derive(Clone, Debug)]
pub struct Transport(BoundedClient);

impl Transport {
    /// A transport whose connections ask for `receive` as their receive buffer.
    pub fn new(receive: ReceiveBuffer) -> Result<Self, TlsSetupError> {
        Ok(Self(BoundedClient {
            tls: Arc::new(tls_config()?),
            receive: receive.fixed(),
            connectors: Arc::default(),
            open: Arc::default(),
        }))
    }

    /// The transport as the SDK's HTTP client, for docgate's S3 requests (and the credential
    /// chain's).
    pub fn sdk_client(&self) -> SharedHttpClient {
        SharedHttpClient::new(self.0.clone())
    }

    /// The connector the SDK's own requests with these timeouts use: the same pools, and the
    /// same count of open responses.
    pub fn connector(&self, connect: Duration, read: Duration) -> SharedHttpConnector {
        self.0.connector_for(Timeouts {
            connect: Some(connect),
            read: Some(read),
        })
    }
}

fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let base = rustls::crypto::aws_lc_rs::default_provider();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: base
            .cipher_suites
            .iter()
            .filter(|suite| CIPHER_SUITES.contains(&suite.suite()))
            .copied()
            .collect(),
        ..base
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(NATIVE_ROOTS.iter().cloned());
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One connector (and so one pair of connection pools, wide and bounded) per distinct pair of
/// timeouts the SDK asks for.
#[derive(Clone)]
struct BoundedClient {
    tls: Arc<rustls::ClientConfig>,
    /// `SO_RCVBUF` for every connection; `None`: the kernel's autotuning.
    receive: Option<usize>,
    connectors: Arc<Mutex<HashMap<Timeouts, SharedHttpConnector>>>,
    /// Responses open now, across all connectors.
    open: Arc<AtomicUsize>,
}

impl fmt::Debug for BoundedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedClient")
            .field("read_buffer_max", &READ_BUFFER_MAX)
            .field("receive_buffer", &self.receive)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Timeouts {
    connect: Option<Duration>,
    read: Option<Duration>,
}

impl HttpClient for BoundedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector_for(Timeouts {
            connect: settings.connect_timeout(),
            read: settings.read_timeout(),
        })
    }
}

impl BoundedClient {
    /// The connector for `timeouts`, made on first use.
    fn connector_for(&self, timeouts: Timeouts) -> SharedHttpConnector {
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(timeouts)
            .or_insert_with(|| SharedHttpConnector::new(self.connector(timeouts)))
            .clone()
    }

    fn connector(&self, timeouts: Timeouts) -> Connector {
        Connector {
            bounded: Arc::new(self.pool(timeouts, READ_BUFFER_MAX)),
            wide: Arc::new(self.pool(timeouts, READ_BUFFER_WIDE)),
            open: self.open.clone(),
            read_timeout: timeouts.read,
        }
    }

    /// A connection pool whose connections' read buffers grow to at most `read_buffer`.
    fn pool(&self, timeouts: Timeouts, read_buffer: usize) -> Pool {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_recv_buffer_size(self.receive);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(&self.tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Pool {
            connect: Connect {
                inner: https,
                timeout: timeouts.connect,
            },
            read_buffer,
            idle: Mutex::default(),
            reaping: AtomicBool::new(false),
        }
    }
}

/// Requests through the wide pool while few responses are open, else the bounded one, each
/// bounded by the read timeout up to its response's headers.
#[derive(Clone)]
struct Connector {
    bounded: Arc<Pool>,
    wide: Arc<Pool>,
    open: Arc<AtomicUsize>,
    read_timeout: Option<Duration>,
}

/// One open response, counted until dropped.
struct Open(Arc<AtomicUsize>);

impl Open {
    /// Counts a new response; `true` when fewer than [`FEW_RESPONSES`] others were open.
    fn count(open: &Arc<AtomicUsize>) -> (Self, bool) {
        let before = open.fetch_add(1, Ordering::AcqRel);
        (Self(open.clone()), before < FEW_RESPONSES)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // Lets the SDK poison the connection after a transient failure, so a retry opens a new one.
        let chosen: Arc<OnceLock<Arc<AtomicBool>>> = Arc::default();
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            let chosen = chosen.clone();
            smithy.set_connection_retriever(move || {
                let poisoned = chosen.get()?.clone();
                Some(
                    ConnectionMetadata::builder()
                        .proxied(false)
                        .poison_fn(move || poisoned.store(true, Ordering::Release))
                        .build(),
                )
            });
        }
        let (open, wide) = Open::count(&self.open);
        let pool = if wide { &self.wide } else { &self.bounded };
        let exchange = pool.clone().send(request, chosen);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, exchange).await {
                    Ok(response) => response,
                    Err(_) => return Err(ConnectorError::timeout(Box::new(TimedOut("read")))),
                },
                None => exchange.await,
            }?;
            HttpResponse::try_from(response.map(|mut body| {
                body.open = Some(open);
                SdkBody::from_body_1_x(body)
            }))
            .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// How long an idle connection is kept for the next request (as in hyper-util's pool).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The most idle connections kept per origin.
const IDLE_MAX: usize = 1024;

type Stream = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;

/// Where a connection goes: scheme and authority.
type Origin = (http::uri::Scheme, http::uri::Authority);

/// HTTP/1 connections of one read-buffer bound, kept open between requests.
///
/// A connection is driven by the task that uses it: while a request waits for its response head,
/// by the SDK's call; while its body is read, by the body's reader (docgate's download). So a
/// piece of the body is read from the socket in the task that writes it to the client, and only
/// when that task asks for the next one: no task per connection, no hand-over between tasks. A
/// connection goes back to the pool once its response has been read to the end, and is closed
/// when its body is dropped before that, when the SDK poisoned it, or when it is found closed.
struct Pool {
    connect: Connect,
    read_buffer: usize,
    /// Idle connections by origin, the most recently used last.
    idle: Mutex<HashMap<Origin, Vec<(Idle, Instant)>>>,
    /// Whether the task that closes connections idle for [`IDLE_TIMEOUT`] runs.
    reaping: AtomicBool,
}

/// An idle connection: its socket alone. hyper's state for it (the read buffer, the write buffer,
/// the request channel: about 45 KiB) is dropped while it waits, and made anew when it is taken
/// (an HTTP/1 handshake over an open socket sends nothing). Otherwise each idle connection would
/// keep the read buffer hyper reserves at a body's end, and after a burst a thousand of them
/// would hold about 45 MiB until they time out (`docs/profiles/overload.md`).
struct Idle {
    io: Stream,
    poisoned: Arc<AtomicBool>,
}

/// One open connection: the request side, and the connection's I/O, which whoever holds it polls.
struct Pooled {
    sender: http1::SendRequest<SdkBody>,
    conn: http1::Connection<Stream, SdkBody>,
    /// Set by the SDK (after a transient failure on it): never reused.
    poisoned: Arc<AtomicBool>,
}

impl Pooled {
    /// Polls the connection's I/O; `true` once it has ended (closed, or failed).
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        Pin::new(&mut self.conn).poll(cx).is_ready()
    }

    /// Waits until the connection takes a request; `false` if it ended meanwhile.
    async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            if self.drive(cx) {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|ready| ready.is_ok())
        })
        .await
    }
}

impl Pool {
    /// Sends `request` on an idle connection to its origin, or on a new one, and waits for the
    /// response head. `chosen` learns the connection's poison flag.
    async fn send(
        self: Arc<Self>,
        mut request: http::Request<SdkBody>,
        chosen: Arc<OnceLock<Arc<AtomicBool>>>,
    ) -> Result<http::Response<Driven>, ConnectorError> {
        let uri = request.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ConnectorError::user(
                "a request to S3 without a scheme and host".into(),
            ));
        };
        let origin = (scheme.clone(), authority.clone());
        set_host(&mut request, &uri);
        *request.uri_mut() = origin_form(&uri);
        let mut pooled = match self.checkout(&origin).await {
            Some(pooled) => pooled,
            None => self.open(uri).await?,
        };
        let _ = chosen.set(pooled.poisoned.clone());
        let response = {
            let mut sending = std::pin::pin!(pooled.sender.send_request(request));
            std::future::poll_fn(|cx| {
                // A connection that ends fails the request, which reports it.
                pooled.drive(cx);
                sending.as_mut().poll(cx)
            })
            .await
        };
        match response {
            Ok(response) => Ok(response.map(|body| Driven {
                body,
                pooled: Some(pooled),
                pool: self.clone(),
                origin,
                open: None,
            })),
            Err(e) => Err(classify(e.into())),
        }
    }

    /// The most recently used idle connection to `origin` that is still open.
    async fn checkout(&self, origin: &Origin) -> Option<Pooled> {
        loop {
            let (idle, since) = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let list = idle.get_mut(origin)?;
                let next = list.pop();
                if list.is_empty() {
                    idle.remove(origin);
                }
                next?
            };
            if since.elapsed() >= IDLE_TIMEOUT || idle.poisoned.load(Ordering::Acquire) {
                continue;
            }
            // The first poll of the new HTTP/1 state reads the socket: a close by S3 while the
            // connection waited ends it here, before a request is sent on it.
            if let Ok(mut pooled) = self.handshake(idle.io, idle.poisoned).await
                && pooled.ready().await
            {
                return Some(pooled);
            }
        }
    }

    /// A new connection to `uri`'s origin (TCP, TLS for `https`, then HTTP/1).
    async fn open(&self, uri: Uri) -> Result<Pooled, ConnectorError> {
        let stream = self.connect.clone().oneshot(uri).await.map_err(|e| {
            match find::<TimedOut>(e.as_ref()) {
                Some(_) => ConnectorError::timeout(e),
                None => ConnectorError::io(e),
            }
        })?;
        self.handshake(stream, Arc::default())
            .await
            .map_err(|e| ConnectorError::io(e.into()))
    }

    /// hyper's HTTP/1 state over an open socket (nothing is sent).
    async fn handshake(
        &self,
        stream: Stream,
        poisoned: Arc<AtomicBool>,
    ) -> Result<Pooled, hyper::Error> {
        // Every read asks for exactly the bound: hyper then never grows the buffer past it (its
        // adaptive reads grow a buffer nothing else refers to by doubling), reuses it once the
        // last piece read from it has been written, and a response head must fit in it.
        let (sender, conn) = http1::Builder::new()
            .read_buf_exact_size(Some(self.read_buffer))
            .handshake(stream)
            .await?;
        Ok(Pooled {
            sender,
            conn,
            poisoned,
        })
    }

    /// Keeps `pooled`'s socket for the next request to `origin`, if hyper would send one on it.
    fn put(self: &Arc<Self>, origin: Origin, pooled: Pooled) {
        let Pooled {
            sender,
            conn,
            poisoned,
        } = pooled;
        // Not waiting for a request (S3 asked to close it, or it is not idle), or poisoned.
        if !sender.is_ready() || poisoned.load(Ordering::Acquire) {
            return;
        }
        drop(sender);
        let parts = conn.into_parts();
        // Bytes S3 sent that no request asked for: not a connection to send another on.
        if !parts.read_buf.is_empty() {
            return;
        }
        let idle_conn = Idle {
            io: parts.io,
            poisoned,
        };
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let list = idle.entry(origin).or_default();
            if list.len() < IDLE_MAX {
                list.push((idle_conn, Instant::now()));
            }
        }
        if !self.reaping.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(reap(Arc::downgrade(self)))),
                // Outside a runtime (a body dropped while it shuts down): the next put starts it.
                Err(_) => self.reaping.store(false, Ordering::Release),
            }
        }
    }

    /// Closes the connections idle for [`IDLE_TIMEOUT`] or more.
    fn close_expired(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, list| {
            list.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
            !list.is_empty()
        });
    }
}

/// Every [`IDLE_TIMEOUT`], closes a pool's connections idle that long (after a burst, the
/// connections it opened beyond the load that follows), until the pool is gone.
async fn reap(pool: std::sync::Weak<Pool>) {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT).await;
        let Some(pool) = pool.upgrade() else { return };
        pool.close_expired();
    }
}

/// A response body read through its own connection, which it drives; the connection goes back to
/// the pool as soon as the body's last piece has been read (or, for a body nobody reads, once it
/// is dropped at its end).
struct Driven {
    body: hyper::body::Incoming,
    pooled: Option<Pooled>,
    pool: Arc<Pool>,
    origin: Origin,
    /// Counts this response among the open ones until it is dropped (set by the connector).
    open: Option<Open>,
}

impl http_body::Body for Driven {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        // Asking first tells the connection a piece is wanted; then it reads one from the socket.
        let mut polled = Pin::new(&mut this.body).poll_frame(cx);
        if polled.is_pending() {
            if let Some(pooled) = this.pooled.as_mut()
                && pooled.drive(cx)
            {
                this.pooled = None;
            }
            polled = Pin::new(&mut this.body).poll_frame(cx);
        }
        // The last piece is out: the connection can carry the next request now, while that piece
        // is written and the download settled, instead of holding hyper's buffers till then.
        // (Not yet waiting for a request: it is tried again when the body is dropped.)
        if this.body.is_end_stream()
            && this
                .pooled
                .as_ref()
                .is_some_and(|pooled| pooled.sender.is_ready())
            && let Some(pooled) = this.pooled.take()
        {
            this.pool.put(this.origin.clone(), pooled);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        // Read to its end: the connection can carry the next request. Otherwise it is closed
        // here, which also stops the store sending the rest.
        if self.body.is_end_stream()
            && let Some(pooled) = self.pooled.take()
        {
            self.pool.put(self.origin.clone(), pooled);
        }
    }
}

/// `Host` as hyper-util's client sets it: the URI's host, and its port unless it is the scheme's.
fn set_host(request: &mut http::Request<SdkBody>, uri: &Uri) {
    let Some(host) = uri.host() else { return };
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    if let Ok(value) = http::HeaderValue::from_str(&value) {
        request
            .headers_mut()
            .entry(http::header::HOST)
            .or_insert(value);
    }
}

/// The request target of an HTTP/1 request to the origin itself: the path and query.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path) => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(path.clone());
            Uri::from_parts(parts).unwrap_or_default()
        }
        None => Uri::default(),
    }
}

/// The TLS connector with the connect timeout around TCP and TLS together.
#[derive(Clone)]
struct Connect {
    inner: HttpsConnector<TcpConnector>,
    timeout: Option<Duration>,
}

type Connecting = Pin<
    Box<
        dyn Future<
                Output = Result<
                    hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>,
                    BoxError,
                >,
            > + Send,
    >,
>;

impl tower::Service<Uri> for Connect {
    type Response = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.timeout;
        Box::pin(async move {
            match limit {
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(connected) => connected,
                    Err(_) => Err(Box::new(TimedOut("connect")) as BoxError),
                },
                None => connecting.await,
            }
        })
    }
}

/// A connect or read timeout ran out.
#[derive(Debug)]
struct TimedOut(&'static str);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} timeout", self.0)
    }
}

impl StdError for TimedOut {}

/// What the SDK's retry classifier needs to know about a failed request: timeouts and I/O
/// failures are transient, as is a response cut before it was complete.
fn classify(error: BoxError) -> ConnectorError {
    if find::<TimedOut>(error.as_ref()).is_some() {
        return ConnectorError::timeout(error);
    }
    if let Some(hyper_error) = find::<hyper::Error>(error.as_ref()) {
        if hyper_error.is_timeout() {
            return ConnectorError::timeout(error);
        }
        if hyper_error.is_user() {
            return ConnectorError::user(error);
        }
        if hyper_error.is_closed()
            || hyper_error.is_canceled()
            || find::<std::io::Error>(hyper_error).is_some()
        {
            return ConnectorError::io(error);
        }
        if hyper_error.is_incomplete_message() {
            return ConnectorError::other(error, Some(ErrorKind::TransientError));
        }
        return ConnectorError::other(error, None);
    }
    ConnectorError::other(error, None)
}

/// The first error of type `E` in `error`'s chain. After an `io::Error` the next one is its
/// payload (`io::Error::source` would skip it).
fn find<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_found_anywhere_in_the_chain() {
        assert!(classify(Box::new(TimedOut("read"))).is_timeout());
        let wrapped = std::io::Error::other(TimedOut("connect"));
        assert!(classify(Box::new(wrapped)).is_timeout());
        let unknown = classify(Box::new(std::io::Error::other("something else")));
        assert!(unknown.is_other() && unknown.as_other().is_none());
    }

    #[test]
    fn a_receive_buffer_is_fixed_only_when_the_kernel_allows_all_of_it() {
        const MIB: usize = 1 << 20;
        assert_eq!(
            ReceiveBuffer::within(4 * MIB, Some(4 * MIB)),
            ReceiveBuffer::Fixed(4 * MIB)
        );
        assert_eq!(
            ReceiveBuffer::within(MIB, Some(64 * MIB)).fixed(),
            Some(MIB)
        );
        // Debian's default cap: SO_RCVBUF would be cut to 208 KiB and lose the autotuning.
        assert_eq!(
            ReceiveBuffer::within(4 * MIB, Some(212_992)),
            ReceiveBuffer::Kernel(KernelSized::Capped { rmem_max: 212_992 })
        );
        assert_eq!(
            ReceiveBuffer::within(0, Some(64 * MIB)),
            ReceiveBuffer::Kernel(KernelSized::Chosen)
        );
        assert_eq!(
            ReceiveBuffer::within(4 * MIB, None),
            ReceiveBuffer::Kernel(KernelSized::Unknown)
        );
        assert_eq!(ReceiveBuffer::within(4 * MIB, None).fixed(), None);
        assert_eq!(
            ReceiveBuffer::Fixed(4 * MIB).to_string(),
            "receive buffer 4194304 bytes per connection"
        );
        assert!(
            ReceiveBuffer::within(4 * MIB, Some(212_992))
                .to_string()
                .contains("net.core.rmem_max (212992) is below DOCGATE_S3_RECEIVE_BUFFER_BYTES")
        );
    }

    #[test]
    fn responses_read_wide_only_while_few_are_open() {
        let counter = Arc::new(AtomicUsize::new(0));
        let mut open = Vec::new();
        for _ in 0..FEW_RESPONSES {
            let (one, wide) = Open::count(&counter);
            assert!(wide);
            open.push(one);
        }
        let (extra, wide) = Open::count(&counter);
        assert!(!wide, "the response after the few reads bounded");
        drop(extra);
        open.pop();
        assert!(Open::count(&counter).1, "a finished response makes room");
        drop(open);
        assert_eq!(counter.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_tls_settings_build() {
        let config = tls_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
    }
}
