//! The production object source: a private S3 bucket (AWS or any S3-compatible store), read with
//! the AWS SDK and streamed through docgate chunk by chunk.
//!
//! This module owns the S3 client and its settings (region, credentials, endpoint and path-style
//! addressing, timeouts, retries), the mapping of S3's answers onto [`ObjectSource`]
//! (`NoSuchKey` → not found, `InvalidRange` → unsatisfiable, anything else → unavailable), and
//! `If-Range`: the client's validator goes to S3 as `If-Match` with the range, so the check and the
//! bytes come from one request against one version; when S3 answers `412` the object changed and
//! the whole of its current version is fetched instead.
//!
//! A `GetObject` is signed and sent by [`direct`] on the SDK's own connections, without the SDK's
//! per-request pipeline, with the static keys or the credential chain's held by [`keys`]. What it
//! declines (any answer but `200`, `206`, `412` and `416`, any failure before the response head,
//! no keys at hand) is sent through the SDK with the attempts and time left, so the mapping below
//! sees the SDK's errors either way.
//!
//! The body is pulled from the SDK only when the response asks for the next chunk: no task reads
//! ahead, at most one SDK chunk is held, and a slow recipient slows the read from S3. A broken or
//! short transfer surfaces as an `Err` item, never as a clean early end, and the last chunk is only
//! handed over once S3's body has ended cleanly (the SDK checks a whole object's checksum there).
//!
//! Error texts name the S3 operation and S3's error code or the failure's kind, never the bucket,
//! key, endpoint or request id.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use bytes::Bytes;

use super::{ByteStream, CHUNK_SIZE, Object, ObjectError, ObjectMeta, ObjectSource};
use crate::config::S3Config;
use crate::range::{ByteRange, RangeRequest, Spec};

pub mod direct;
pub mod http;
pub mod keys;

/// How long to wait for a TCP (and TLS) connection to the store.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long to wait, once a request is sent, for the first byte of its response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a body being read may stall (deliver under 1 byte/s while docgate waits for it)
/// before the transfer fails. Time spent waiting for a slow recipient does not count.
pub const STALL_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// One attempt of a `HEAD` (`HeadObject`, `HeadBucket`): tiny requests, so a tight bound keeps
/// `HEAD /d/...` and `/readyz` answering promptly when the store hangs.
pub const HEAD_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);

/// All attempts of one request together, up to its response headers (a body's transfer is bounded
/// by [`STALL_GRACE_PERIOD`] instead).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// Attempts per request, the first included ("standard" retry mode: exponential backoff with
/// jitter, transient errors only). Retries happen only before a body starts.
pub const MAX_ATTEMPTS: u32 = 3;

/// The region used with a custom endpoint when neither `AWS_REGION` nor the AWS chain names one:
/// S3-compatible stores accept it, and signatures need some region.
pub const ENDPOINT_DEFAULT_REGION: &str = "us-east-1";

/// Why the S3 client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    /// Neither `AWS_REGION` nor the AWS chain (profile, instance metadata) gave a region.
    #[error("no AWS region: set AWS_REGION (or a region in the AWS profile)")]
    NoRegion,
    /// A static secret is not UTF-8, so it cannot be an AWS key.
    #[error("{0} is not valid UTF-8")]
    Credentials(&'static str),
    /// The HTTP client's TLS settings could not be built.
    #[error(transparent)]
    Tls(#[from] http::TlsSetupError),
}

/// Objects in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Source {
    /// Signed requests, with the configured or chained credentials.
    client: Client,
    /// Unsigned requests through the same endpoint and addressing, for [`Self::publicly_readable`].
    anonymous: Client,
    bucket: String,
    /// How its connections' receive buffers are sized on this host.
    receive: http::ReceiveBuffer,
    /// `GetObject`s sent by docgate itself, when the endpoint is plain SigV4 (with static keys or
    /// the chain's); the SDK sends what it declines.
    direct: Option<direct::DirectGet>,
}

impl S3Source {
    /// A source over `config.bucket`, signing with `config.credentials` or, without them, the
    /// AWS credential chain's keys. Resolves the region now (the AWS chain may ask the profile or
    /// instance metadata); credentials from the chain are fetched on first use.
    pub async fn new(config: &S3Config) -> Result<Self, S3SetupError> {
        Self::build(config, None).await
    }

    /// A source over `config.bucket` signing with the keys `provider` gives, in place of static
    /// keys and the AWS chain: for a program that embeds docgate and has its own.
    pub async fn with_credentials_provider(
        config: &S3Config,
        provider: SharedCredentialsProvider,
    ) -> Result<Self, S3SetupError> {
        Self::build(config, Some(provider)).await
    }

    async fn build(
        config: &S3Config,
        provider: Option<SharedCredentialsProvider>,
    ) -> Result<Self, S3SetupError> {
        let region = RegionProviderChain::first_try(config.region.clone().map(Region::new))
            .or_default_provider();
        let receive = http::ReceiveBuffer::for_host(config.receive_buffer);
        if let http::ReceiveBuffer::Kernel(http::KernelSized::Capped { .. }) = receive {
            tracing::info!(wanted = config.receive_buffer, "S3 connections: {receive}");
        }
        let transport = http::Transport::new(receive)?;
        let stall = StalledStreamProtectionConfig::enabled()
            .grace_period(STALL_GRACE_PERIOD)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(transport.sdk_client())
            .region(region)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .stalled_stream_protection(stall.clone());
        let mut static_keys = None;
        if let Some(provider) = provider {
            loader = loader.credentials_provider(provider);
        } else if let Some(keys) = &config.credentials {
            let secret = String::from_utf8(keys.secret_access_key.expose().to_vec())
                .map_err(|_| S3SetupError::Credentials("AWS_SECRET_ACCESS_KEY"))?;
            let session_token = match &keys.session_token {
                Some(token) => Some(
                    String::from_utf8(token.expose().to_vec())
                        .map_err(|_| S3SetupError::Credentials("AWS_SESSION_TOKEN"))?,
                ),
                None => None,
            };
            let credentials = Credentials::new(
                keys.access_key_id.clone(),
                secret,
                session_token,
                None,
                "docgate-static",
            );
            loader = loader.credentials_provider(credentials.clone());
            static_keys = Some(credentials);
        }
        let shared = loader.load().await;
        if shared.region().is_none() && config.endpoint.is_none() {
            return Err(S3SetupError::NoRegion);
        }
        // The same settings without credentials: nothing to sign with, so requests go unsigned.
        let mut unsigned = shared.to_builder();
        unsigned.set_credentials_provider(None);
        let unsigned = unsigned.build();
        let signed = s3_config(&shared, config);
        let keys = match static_keys {
            Some(credentials) => Some(keys::Keys::Static(credentials.into())),
            None => shared.credentials_provider().map(keys::Keys::chained),
        };
        let direct = match keys {
            Some(keys) => {
                let region = signed
                    .region()
                    .map_or(ENDPOINT_DEFAULT_REGION, |r| r.as_ref());
                let endpoint = direct::Endpoint {
                    bucket: &config.bucket,
                    region,
                    custom: config.endpoint.as_deref(),
                    use_fips: shared.use_fips().unwrap_or(false),
                    use_dual_stack: shared.use_dual_stack().unwrap_or(false),
                };
                let connector = transport.connector(CONNECT_TIMEOUT, READ_TIMEOUT);
                match direct::DirectGet::new(endpoint, keys, connector, stall).await {
                    Ok(direct) => Some(direct),
                    Err(e) => {
                        tracing::info!("S3 GetObject through the SDK's pipeline: {e}");
                        None
                    }
                }
            }
            None => None,
        };
        Ok(Self {
            client: Client::from_conf(signed),
            anonymous: Client::from_conf(
                s3_config(&unsigned, config)
                    .to_builder()
                    .allow_no_auth()
                    .build(),
            ),
            bucket: config.bucket.clone(),
            receive,
            direct,
        })
    }

    /// How this source's connections' receive buffers are sized (`docgate check` reports it).
    pub fn receive_buffer(&self) -> http::ReceiveBuffer {
        self.receive
    }

    /// True when anyone can read the object at `key` without credentials: an unsigned `HEAD`
    /// answered `200`. A public object defeats the gate, so `docgate check` refuses it.
    pub async fn publicly_readable(&self, key: &str) -> Result<bool, ObjectError> {
        match self.head_object(&self.anonymous, key).await {
            Ok(_) => Ok(true),
            // Refused (403), or hidden (404): not readable anonymously.
            Err(e) if status(&e).is_some_and(|s| (400..500).contains(&s)) => Ok(false),
            Err(e) => Err(ObjectError::Unavailable(failure("HeadObject", &e))),
        }
    }

    /// One `HeadObject` of `key` by `client` (the signing one, or the anonymous one), within the
    /// head timeouts.
    async fn head_object(
        &self,
        client: &Client,
        key: &str,
    ) -> Result<HeadObjectOutput, SdkError<HeadObjectError>> {
        client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .customize()
            .config_override(head_timeouts())
            .send()
            .await
    }

    /// One `GetObject`, with `range` as a `Range` header value and `if_match` as `If-Match`.
    async fn get(
        &self,
        key: &str,
        range: Option<String>,
        if_match: Option<&str>,
    ) -> Result<Object, GetError> {
        // How long a direct request took before it declined, and the attempts it used: the SDK
        // gets the rest.
        let mut declined = None;
        if let Some(direct) = &self.direct {
            let started = std::time::Instant::now();
            match direct.get(key, range.as_deref(), if_match).await {
                direct::Answer::Object(output) => return object(*output).map_err(GetError::Failed),
                direct::Answer::PreconditionFailed => return Err(GetError::PreconditionFailed),
                direct::Answer::InvalidRange => return Err(GetError::InvalidRange),
                direct::Answer::Declined => declined = Some((started.elapsed(), 1)),
                direct::Answer::NotSent => declined = Some((started.elapsed(), 0)),
            }
        }
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .set_if_match(if_match.map(str::to_owned));
        let result = match declined {
            // A direct request sent was the first attempt: the SDK has the rest of them.
            Some((spent, used)) => {
                let (attempts, within) =
                    direct::left_after(spent, used, MAX_ATTEMPTS, OPERATION_TIMEOUT);
                request
                    .customize()
                    .config_override(
                        aws_sdk_s3::config::Builder::default()
                            .retry_config(RetryConfig::standard().with_max_attempts(attempts))
                            .timeout_config(
                                TimeoutConfig::builder().operation_timeout(within).build(),
                            ),
                    )
                    .send()
                    .await
            }
            None => request.send().await,
        };
        match result {
            Ok(output) => object(output).map_err(GetError::Failed),
            Err(e) => Err(match (status(&e), e.code()) {
                (Some(404), Some("NoSuchKey" | "NotFound") | None) => GetError::NotFound,
                (Some(412), _) => GetError::PreconditionFailed,
                (Some(416), _) | (_, Some("InvalidRange")) => GetError::InvalidRange,
                _ => GetError::Failed(failure("GetObject", &e)),
            }),
        }
    }

    /// The whole current version of the object.
    async fn get_whole(&self, key: &str) -> Result<Object, ObjectError> {
        self.get(key, None, None)
            .await
            .map_err(GetError::into_object_error)
    }

    /// After S3 found `request` unsatisfiable: the object's size for the `416`, or, if the
    /// object changed meanwhile, what the request selects now.
    async fn unsatisfiable(
        &self,
        key: &str,
        request: &RangeRequest,
    ) -> Result<Object, ObjectError> {
        let meta = self.head(key).await?;
        match request.select(&meta.etag, meta.size)? {
            None => self.get_whole(key).await,
            Some(_) => self
                .get(
                    key,
                    Some(range_header(request.spec)),
                    request.if_range.as_deref(),
                )
                .await
                .map_err(GetError::into_object_error),
        }
    }
}

#[async_trait]
impl ObjectSource for S3Source {
    async fn head(&self, key: &str) -> Result<ObjectMeta, ObjectError> {
        match self.head_object(&self.client, key).await {
            Ok(output) => {
                let size = output
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| {
                        ObjectError::Unavailable(invalid("HeadObject", "a Content-Length"))
                    })?;
                let etag = output
                    .e_tag()
                    .map(quoted)
                    .ok_or_else(|| ObjectError::Unavailable(invalid("HeadObject", "an ETag")))?;
                Ok(ObjectMeta {
                    size,
                    etag,
                    content_type: output.content_type().map(str::to_owned),
                })
            }
            Err(e) if status(&e) == Some(404) => Err(ObjectError::NotFound),
            Err(e) => Err(ObjectError::Unavailable(failure("HeadObject", &e))),
        }
    }

    async fn open(&self, key: &str, range: Option<&RangeRequest>) -> Result<Object, ObjectError> {
        let Some(request) = range else {
            return self.get_whole(key).await;
        };
        match &request.if_range {
            // A date or a weak tag never validates a range (RFC 9110 §13.1.5): whole body.
            Some(validator) if !is_strong(validator) => return self.get_whole(key).await,
            _ => {}
        }
        if request.spec == Spec::Suffix(0) {
            // Unsatisfiable whatever the size; S3 implementations disagree about `bytes=-0`.
            return self.unsatisfiable(key, request).await;
        }
        let header = range_header(request.spec);
        match self
            .get(key, Some(header), request.if_range.as_deref())
            .await
        {
            Ok(object) => Ok(object),
            // `If-Match` failed: the client holds another version, so it gets all of this one.
            Err(GetError::PreconditionFailed) => self.get_whole(key).await,
            Err(GetError::InvalidRange) => self.unsatisfiable(key, request).await,
            Err(e) => Err(e.into_object_error()),
        }
    }

    async fn ping(&self) -> Result<(), ObjectError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .customize()
            .config_override(head_timeouts())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ObjectError::Unavailable(failure("HeadBucket", &e)))
    }
}

/// How a `GetObject` failed.
#[derive(Debug)]
enum GetError {
    NotFound,
    /// `412`: `If-Match` did not match.
    PreconditionFailed,
    /// `416`: the range lies outside the object.
    InvalidRange,
    Failed(io::Error),
}

impl GetError {
    fn into_object_error(self) -> ObjectError {
        match self {
            GetError::NotFound => ObjectError::NotFound,
            GetError::PreconditionFailed => ObjectError::Unavailable(io::Error::other(
                "s3 GetObject failed: PreconditionFailed (HTTP 412) without If-Match",
            )),
            // Only reached when the object changed between two requests; the size is unknown.
            GetError::InvalidRange => ObjectError::Unavailable(io::Error::other(
                "s3 GetObject failed: InvalidRange (HTTP 416) for a range the object satisfies",
            )),
            GetError::Failed(e) => ObjectError::Unavailable(e),
        }
    }
}

/// The S3 client's settings: `shared`'s, plus the endpoint with path-style addressing and the
/// fallback region for it.
fn s3_config(shared: &aws_config::SdkConfig, config: &S3Config) -> aws_sdk_s3::Config {
    let mut builder = aws_sdk_s3::config::Builder::from(shared);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint).force_path_style(true);
        if shared.region().is_none() {
            builder = builder.region(Region::from_static(ENDPOINT_DEFAULT_REGION));
        }
    }
    builder.build()
}

/// Per-request timeouts for `HEAD`s, on top of the client's.
fn head_timeouts() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .operation_attempt_timeout(HEAD_ATTEMPT_TIMEOUT)
            .build(),
    )
}

/// The `Range` header value for one range.
fn range_header(spec: Spec) -> String {
    match spec {
        Spec::Bounded(first, last) => format!("bytes={first}-{last}"),
        Spec::From(first) => format!("bytes={first}-"),
        Spec::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// A strong entity tag: quoted and not `W/`.
fn is_strong(validator: &str) -> bool {
    validator.len() >= 2 && validator.starts_with('"') && validator.ends_with('"')
}

/// S3 quotes its ETags; some compatible stores do not.
fn quoted(etag: &str) -> String {
    let etag = etag.trim();
    if etag.starts_with('"') || etag.starts_with("W/") {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

/// The HTTP status of a failed request, when a response came back.
fn status<E>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    error.raw_response().map(|r| r.status().as_u16())
}

/// A generic description of a failed request: the operation and S3's error code, or the kind of
/// failure. The full error (which may name the endpoint) goes to the debug log only.
fn failure<E>(
    operation: &str,
    error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> io::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    tracing::debug!(operation, error = %DisplayErrorContext(error), "s3 request failed");
    let (kind, what) = match error {
        SdkError::TimeoutError(_) => (io::ErrorKind::TimedOut, "timed out".to_owned()),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (io::ErrorKind::TimedOut, "timed out".to_owned())
        }
        SdkError::DispatchFailure(d) if d.is_io() => {
            (io::ErrorKind::Other, "connection failed".to_owned())
        }
        SdkError::DispatchFailure(_) => (io::ErrorKind::Other, "request not sent".to_owned()),
        SdkError::ResponseError(_) => {
            (io::ErrorKind::InvalidData, "unreadable response".to_owned())
        }
        SdkError::ConstructionFailure(_) => (
            io::ErrorKind::InvalidInput,
            "request could not be built".to_owned(),
        ),
        _ => {
            let code: String = error
                .code()
                .unwrap_or("no error code")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
                .take(64)
                .collect();
            let what = match status(error) {
                Some(status) => format!("{code} (HTTP {status})"),
                None => code,
            };
            (io::ErrorKind::Other, what)
        }
    };
    io::Error::new(kind, format!("s3 {operation} failed: {what}"))
}

/// A response that does not describe an object.
fn invalid(operation: &str, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("s3 {operation} answered without {what}"),
    )
}

/// The object a `GetObject` answered with: the whole object's size and ETag, the range served
/// (from `Content-Range`), and the body.
fn object(output: GetObjectOutput) -> Result<Object, io::Error> {
    let etag = output
        .e_tag()
        .map(quoted)
        .ok_or_else(|| invalid("GetObject", "an ETag"))?;
    let length = output.content_length().and_then(|n| u64::try_from(n).ok());
    let (size, range) = match output.content_range() {
        Some(value) => {
            let (range, size) = parse_content_range(value)
                .ok_or_else(|| invalid("GetObject", "a readable Content-Range"))?;
            (size, Some(range))
        }
        None => (
            length.ok_or_else(|| invalid("GetObject", "a Content-Length"))?,
            None,
        ),
    };
    let len = range.map_or(size, |r| r.len());
    if length.is_some_and(|n| n != len) {
        return Err(invalid("GetObject", "a Content-Length matching its range"));
    }
    let content_type = output.content_type().map(str::to_owned);
    Ok(Object {
        meta: ObjectMeta {
            size,
            etag,
            content_type,
        },
        range,
        body: chunks(output.body, len),
    })
}

/// Parses `bytes first-last/size` (a satisfied range of a known size).
fn parse_content_range(value: &str) -> Option<(ByteRange, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, size) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (start, end, size) = (number(first)?, number(last)?, number(size)?);
    (start <= end && end < size).then_some((ByteRange { start, end }, size))
}

/// Where a body stream stands.
struct Reader {
    sdk: aws_sdk_s3::primitives::ByteStream,
    /// Received from the SDK, not yet handed out.
    pending: Bytes,
    /// Bytes still to come from the SDK.
    unread: u64,
}

/// The SDK's body as docgate's [`ByteStream`]: pulled one SDK chunk at a time, handed out in
/// pieces of at most [`CHUNK_SIZE`] without copying. A failed read, or a body that ends before
/// (or runs past) its announced `len`, becomes an `Err` item.
fn chunks(sdk: aws_sdk_s3::primitives::ByteStream, len: u64) -> ByteStream {
    let reader = Reader {
        sdk,
        pending: Bytes::new(),
        unread: len,
    };
    Box::pin(futures_util::stream::try_unfold(
        reader,
        |mut reader| async move {
            if reader.pending.is_empty() {
                if reader.unread == 0 {
                    return Ok(None);
                }
                reader.pending = next_chunk(&mut reader.sdk).await?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "s3 object body ended before its length",
                    )
                })?;
                let received = reader.pending.len() as u64;
                if received > reader.unread {
                    return Err(too_long());
                }
                reader.unread -= received;
                if reader.unread == 0 {
                    // The last bytes are only handed over once the body ended cleanly: that is
                    // where the SDK reports a checksum mismatch.
                    if next_chunk(&mut reader.sdk).await?.is_some() {
                        return Err(too_long());
                    }
                }
            }
            let take = reader.pending.len().min(CHUNK_SIZE);
            let chunk = reader.pending.split_to(take);
            Ok(Some((chunk, reader)))
        },
    ))
}

/// The SDK body's next non-empty chunk, or `None` at its end.
async fn next_chunk(sdk: &mut aws_sdk_s3::primitives::ByteStream) -> io::Result<Option<Bytes>> {
    loop {
        match sdk.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(chunk)) => return Ok(Some(chunk)),
            Some(Err(e)) => {
                tracing::debug!(error = %DisplayErrorContext(&e), "s3 object body failed");
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "s3 object body failed mid-transfer",
                ));
            }
            None => return Ok(None),
        }
    }
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "s3 object body is longer than announced",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((ByteRange { start: 0, end: 99 }, 1000))
        );
        assert_eq!(
            parse_content_range("bytes 900-999/1000"),
            Some((
                ByteRange {
                    start: 900,
                    end: 999
                },
                1000
            ))
        );
        for bad in [
            "bytes */1000",
            "bytes 0-99/*",
            "bytes 5-1/10",
            "bytes 0-10/10",
            "items 0-1/2",
            "bytes 0-1",
            "bytes -1-2/3",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn range_headers_render_each_spec() {
        assert_eq!(range_header(Spec::Bounded(0, 9)), "bytes=0-9");
        assert_eq!(range_header(Spec::From(10)), "bytes=10-");
        assert_eq!(range_header(Spec::Suffix(5)), "bytes=-5");
    }

    #[test]
    fn etags_are_quoted_and_strength_is_recognised() {
        assert_eq!(quoted("\"abc\""), "\"abc\"");
        assert_eq!(quoted("abc"), "\"abc\"");
        assert_eq!(quoted("W/\"abc\""), "W/\"abc\"");
        assert!(is_strong("\"abc\""));
        assert!(!is_strong("W/\"abc\""));
        assert!(!is_strong("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert!(!is_strong("\""));
    }

    #[tokio::test]
    async fn bodies_are_split_and_checked_against_their_length() {
        use futures_util::StreamExt;

        let data = Bytes::from(vec![7u8; CHUNK_SIZE * 2 + 10]);
        let sdk = aws_sdk_s3::primitives::ByteStream::from(data.clone());
        let pieces: Vec<Bytes> = chunks(sdk, data.len() as u64)
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(
            pieces.iter().map(Bytes::len).collect::<Vec<_>>(),
            [CHUNK_SIZE, CHUNK_SIZE, 10]
        );
        assert_eq!(pieces.concat(), data);

        let short = aws_sdk_s3::primitives::ByteStream::from(Bytes::from_static(b"abc"));
        let items: Vec<io::Result<Bytes>> = chunks(short, 5).collect().await;
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].as_ref().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );

        let long = aws_sdk_s3::primitives::ByteStream::from(Bytes::from_static(b"abcdef"));
        let items: Vec<io::Result<Bytes>> = chunks(long, 5).collect().await;
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }
}
