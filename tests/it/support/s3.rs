//! An S3 server per test, in process: s3s-fs over a temporary directory, on a free loopback port,
//! verifying SigV4 signatures against one fixed key pair. Unsigned requests are refused, except
//! `GetObject` / `HeadObject` of keys under [`PUBLIC_PREFIX`] (a "public object", the
//! misconfiguration `docgate check` looks for). Two S3 behaviours s3s-fs lacks are added:
//! `If-Match` on `GetObject` (checked before the range; `412` on mismatch), and a suffix range
//! longer than the object serving the whole object.
//!
//! [`S3Server::stop`] takes the server down (listener and open connections) to simulate an
//! outage; a [`ChaosProxy`] in front of it ([`proxied`]) cuts a body halfway or counts what S3
//! sent.

#![allow(dead_code)]

use std::net::SocketAddr;

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use docgate::config::{AwsKeys, S3_RECEIVE_BUFFER_DEFAULT, S3Config, Secret};
use docgate::objects::ObjectSource;
use docgate::objects::s3::S3Source;
use docgate::objects::s3::http::{ReceiveBuffer, Transport};
use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::dto::{
    CreateBucketInput, CreateBucketOutput, ETag, ETagCondition, GetObjectInput, GetObjectOutput,
    HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput, PutObjectInput,
    PutObjectOutput, Range,
};
use s3s::path::S3Path;
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use s3s_fs::FileSystem;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::chaos::ChaosProxy;
use super::objects::read_on;
use super::sha256;

/// The key pair the server verifies signatures with.
pub const ACCESS_KEY: &str = "DOCGATETESTACCESSKEY";
pub const SECRET_KEY: &str = "docgate-test-secret-key-0123456789abcdef";
/// The bucket every test server has.
pub const BUCKET: &str = "documents";
pub const REGION: &str = "us-east-1";
/// Keys under this prefix may be read without a signature.
pub const PUBLIC_PREFIX: &str = "public/";

/// A running s3s-fs server.
pub struct S3Server {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    admin: aws_sdk_s3::Client,
    task: Option<JoinHandle<()>>,
}

impl S3Server {
    /// A server with an empty [`BUCKET`].
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fs = FileSystem::new(dir.path()).unwrap();
        let service = {
            let mut builder = S3ServiceBuilder::new(Conditional(fs));
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.set_access(PublicPrefix);
            builder.build()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Dropping (aborting) this task drops the listener and the set of connections with it.
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                connections.spawn(async move {
                    let _ = conn.await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        let admin = client(&format!("http://{addr}"), ACCESS_KEY, SECRET_KEY);
        admin.create_bucket().bucket(BUCKET).send().await.unwrap();
        Self {
            addr,
            dir,
            admin,
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Puts the fixture documents in the bucket under their catalog keys.
    pub async fn put_fixtures(&self) {
        use super::{BIG_LEN, RESUME_LEN, content};
        self.put("resume/Jane_Doe_Resume.pdf", &content(1, RESUME_LEN))
            .await;
        self.put("resume/lebenslauf.pdf", &content(2, 4096)).await;
        self.put("big.bin", &content(3, BIG_LEN)).await;
    }

    /// Stores `bytes` at `key` and returns the object's ETag.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> String {
        let output = self
            .admin
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(bytes.to_vec().into())
            .send()
            .await
            .unwrap();
        output.e_tag().unwrap().to_owned()
    }

    /// Stores `bytes` at `key` with a `Content-Type`.
    pub async fn put_typed(&self, key: &str, bytes: &[u8], content_type: &str) {
        self.admin
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type(content_type)
            .body(bytes.to_vec().into())
            .send()
            .await
            .unwrap();
    }

    /// docgate's configuration for this server's bucket, reached at `endpoint`.
    pub fn config_at(&self, endpoint: &str) -> S3Config {
        config_at(endpoint)
    }

    /// docgate's configuration for this server's bucket.
    pub fn config(&self) -> S3Config {
        self.config_at(&self.endpoint())
    }

    /// An [`S3Source`] over this server's bucket.
    pub async fn source(&self) -> S3Source {
        S3Source::new(&self.config()).await.unwrap()
    }

    /// Takes the server down: the port refuses connections and open ones are closed.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Where the objects are stored on disk.
    pub fn root(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The settings of a docgate on the bucket at `endpoint` (the server itself or a proxy in front
/// of it), with no documents directory at all: every byte comes from the bucket.
pub fn bucket_settings(endpoint: &str) -> [(&'static str, &str); 6] {
    [
        ("DOCGATE_S3_BUCKET", BUCKET),
        ("DOCGATE_S3_ENDPOINT", endpoint),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("DOCGATE_DOCUMENTS_DIR", "/nonexistent/documents"),
    ]
}

/// A server holding `bytes` at `key`, a [`ChaosProxy`] in front of it, and an [`S3Source`] that
/// reaches the bucket through the proxy.
pub async fn proxied(key: &str, bytes: &[u8]) -> (S3Server, ChaosProxy, S3Source) {
    let server = S3Server::start().await;
    server.put(key, bytes).await;
    let proxy = ChaosProxy::start(server.addr).await;
    let source = S3Source::new(&server.config_at(&proxy.endpoint()))
        .await
        .unwrap();
    (server, proxy, source)
}

/// How many bytes S3 sent to a reader of `bytes` (through [`proxied`]) that took one chunk and
/// then stood still, once the flow stopped; the body is then read on to its end and checked.
pub async fn sent_to_a_reader_standing_still(key: &str, bytes: &[u8]) -> u64 {
    let (_server, proxy, source) = proxied(key, bytes).await;
    let mut body = source.open(key, None).await.unwrap().body;
    let first = body.next().await.unwrap().unwrap();
    let settled = proxy.settled(Duration::from_secs(10)).await;
    let got = read_on(first, body).await;
    assert_eq!(sha256(&got), sha256(bytes));
    settled
}

/// A plain SDK client for this kind of server (tests use it to upload).
pub fn client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(sdk_config(endpoint, access_key, secret_key).build())
}

/// An SDK client with this server's keys on docgate's own HTTP transport, as `S3Source` builds it.
pub fn client_on_docgate_transport(endpoint: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(on_docgate_transport(endpoint, default_receive()).build())
}

/// As [`client_on_docgate_transport`], its connections' receive buffers sized by `receive`.
pub fn client_on_docgate_transport_with(
    endpoint: &str,
    receive: ReceiveBuffer,
) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(on_docgate_transport(endpoint, receive).build())
}

/// An SDK client on docgate's S3 transport that tries each request once: a request the transport
/// sends on a dead connection fails instead of being retried on a new one.
pub fn client_on_docgate_transport_without_retries(endpoint: &str) -> aws_sdk_s3::Client {
    let config = on_docgate_transport(endpoint, default_receive())
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// How `S3Source` sizes its connections' receive buffers on this host, by default.
fn default_receive() -> ReceiveBuffer {
    ReceiveBuffer::for_host(S3_RECEIVE_BUFFER_DEFAULT)
}

/// The SDK's settings for this server's keys on docgate's transport with `receive`.
fn on_docgate_transport(endpoint: &str, receive: ReceiveBuffer) -> aws_sdk_s3::config::Builder {
    sdk_config(endpoint, ACCESS_KEY, SECRET_KEY)
        .http_client(Transport::new(receive).unwrap().sdk_client())
}

fn sdk_config(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
}

/// s3s-fs with S3's `If-Match` on `GetObject`, and only the operations docgate and the tests use.
struct Conditional(FileSystem);

#[async_trait::async_trait]
impl S3 for Conditional {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.0.create_bucket(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.0.put_object(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.0.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.0.head_object(req).await
    }

    async fn get_object(
        &self,
        mut req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let suffix = matches!(req.input.range, Some(Range::Suffix { .. }));
        if req.input.if_match.is_none() && !suffix {
            return self.0.get_object(req).await;
        }
        let head = req.clone().map_input(|input| {
            HeadObjectInput::builder()
                .bucket(input.bucket)
                .key(input.key)
                .build()
                .unwrap()
        });
        let current = self.0.head_object(head).await?.output;
        if let Some(condition) = &req.input.if_match {
            let matches = match (condition, &current.e_tag) {
                (ETagCondition::Any, Some(_)) => true,
                (ETagCondition::ETag(ETag::Strong(want)), Some(ETag::Strong(have))) => want == have,
                _ => false,
            };
            if !matches {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        // S3 serves a suffix longer than the object as the whole object; s3s-fs fails on it.
        let size = current.content_length.unwrap_or(0).max(0) as u64;
        if let Some(Range::Suffix { length }) = req.input.range
            && length > size
            && size > 0
        {
            req.input.range = Some(Range::Suffix { length: size });
        }
        self.0.get_object(req).await
    }
}

/// Signed requests may do anything; unsigned ones may only read objects under [`PUBLIC_PREFIX`].
struct PublicPrefix;

#[async_trait::async_trait]
impl S3Access for PublicPrefix {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        let public_read = matches!(cx.s3_op().name(), "GetObject" | "HeadObject")
            && matches!(cx.s3_path(), S3Path::Object { key, .. } if key.starts_with(PUBLIC_PREFIX));
        if public_read {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "Signature is required"))
        }
    }
}

/// docgate's configuration for the test servers' bucket and keys, reached at `endpoint`.
pub fn config_at(endpoint: &str) -> S3Config {
    S3Config {
        bucket: BUCKET.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        region: Some(REGION.to_owned()),
        receive_buffer: S3_RECEIVE_BUFFER_DEFAULT,
        credentials: Some(AwsKeys {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: Secret::new(SECRET_KEY.as_bytes().to_vec()),
            session_token: None,
        }),
    }
}

/// One HTTP request head read from a raw store's `socket`, lower-cased; `None` once the client
/// closed the connection.
pub async fn request_head(socket: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).to_ascii_lowercase())
}
