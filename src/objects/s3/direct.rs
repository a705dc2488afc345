//! `GetObject` sent by docgate itself: the request signed with the SDK's SigV4 signer and sent on
//! the SDK's own connection pools, the body checked with the SDK's checksum and stall wrappers,
//! without the SDK's per-request pipeline (configuration layers, some thirty interceptor hooks,
//! the response's sixty-odd optional headers). That pipeline cost about 100 µs of CPU per
//! download whatever its size (`docs/profiles/s3-client.md`).
//!
//! It is used when the SDK's endpoint rules give the bucket a plain SigV4 endpoint, with static
//! keys or the credential chain's ([`super::keys`]). A `200` or `206` is the object; a `412`
//! (`If-Match` failed) and a `416` (a range outside the object) are answers S3 gives by status
//! alone, passed on as they are. Anything else, any failure before the response head, or no keys
//! at hand, declines, and [`super::S3Source`] sends the
//! same request through the SDK with what is left of its attempts and time, so errors, retries,
//! timeouts and their texts are the SDK's as before.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::SystemTimeSource;
use aws_smithy_checksums::ChecksumAlgorithm;
use aws_smithy_checksums::body::validate::ChecksumBody;
use aws_smithy_http::label::{EncodingStrategy, fmt_string};
use aws_smithy_runtime::client::http::body::minimum_throughput::MinimumThroughputDownloadBody;
use aws_smithy_runtime::client::http::body::minimum_throughput::options::MinimumThroughputBodyOptions;
use aws_smithy_runtime_api::client::http::{HttpConnector, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_smithy_types::Document;
use aws_smithy_types::body::SdkBody;

use super::keys::Keys;

/// The SHA-256 of an empty payload: a `GET` has none.
const EMPTY_PAYLOAD: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How docgate sends its own `GetObject`s to one bucket.
#[derive(Debug, Clone)]
pub struct DirectGet {
    connector: SharedHttpConnector,
    /// The bucket's endpoint (`https://bucket.s3.region.amazonaws.com`, or `endpoint/bucket`
    /// path-style): an object's URL is this, `/`, and its key.
    base: String,
    /// `Host` as the signature names it.
    host: http::HeaderValue,
    signing_region: String,
    signing_name: String,
    keys: Keys,
    /// S3's signing settings: single percent-encoding, no path normalisation, the payload hash.
    settings: SigningSettings,
    /// The minimum download rate, from the SDK's stall settings; `None`: not checked.
    stall: Option<MinimumThroughputBodyOptions>,
}

/// What a [`DirectGet`] got.
#[derive(Debug)]
pub enum Answer {
    /// `200` or `206`.
    Object(Box<GetObjectOutput>),
    /// `412`: `If-Match` did not match.
    PreconditionFailed,
    /// `416`: the range lies outside the object.
    InvalidRange,
    /// Anything else, or no response: for the SDK to send.
    Declined,
    /// Nothing sent: no keys at hand, or a request that could not be signed. For the SDK to
    /// send, with all its attempts.
    NotSent,
}

/// Why a bucket gets no [`DirectGet`]: the SDK then sends every `GetObject`, as before.
#[derive(Debug, thiserror::Error)]
pub enum Unsupported {
    #[error("the endpoint rules refused the bucket: {0}")]
    Endpoint(String),
    #[error("the bucket's endpoint asks for {0}, not SigV4")]
    Auth(String),
    #[error("the bucket's endpoint is not a URL with a host")]
    Url,
    #[error("the bucket's endpoint adds headers of its own")]
    Headers,
}

/// What the bucket's endpoint is, from the SDK's endpoint rules.
pub struct Endpoint<'a> {
    pub bucket: &'a str,
    pub region: &'a str,
    /// A custom endpoint (then path-style addressing, as the SDK client is set up).
    pub custom: Option<&'a str>,
    pub use_fips: bool,
    pub use_dual_stack: bool,
}

impl DirectGet {
    /// Resolves the bucket's endpoint the way the SDK would for a `GetObject`, and signs with
    /// `keys`. `connector` is the SDK's for its `GetObject`s.
    pub async fn new(
        endpoint: Endpoint<'_>,
        keys: Keys,
        connector: SharedHttpConnector,
        stall: StalledStreamProtectionConfig,
    ) -> Result<Self, Unsupported> {
        let params = Params::builder()
            .bucket(endpoint.bucket)
            .region(endpoint.region)
            .set_endpoint(endpoint.custom.map(str::to_owned))
            .force_path_style(endpoint.custom.is_some())
            .use_fips(endpoint.use_fips)
            .use_dual_stack(endpoint.use_dual_stack)
            .build()
            .map_err(|e| Unsupported::Endpoint(e.to_string()))?;
        let resolved = DefaultResolver::new()
            .resolve_endpoint(&params)
            .await
            .map_err(|e| Unsupported::Endpoint(e.to_string()))?;
        if resolved.headers().next().is_some() {
            return Err(Unsupported::Headers);
        }
        let (signing_name, signing_region) =
            sigv4_scheme(resolved.properties().get("authSchemes"))?;
        let base = resolved.url().trim_end_matches('/').to_owned();
        let uri: http::Uri = base.parse().map_err(|_| Unsupported::Url)?;
        let host = uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
            .ok_or(Unsupported::Url)?;
        Ok(Self {
            connector,
            base,
            host,
            signing_region: signing_region.unwrap_or_else(|| endpoint.region.to_owned()),
            signing_name: signing_name.unwrap_or_else(|| "s3".to_owned()),
            keys,
            settings: s3_signing(),
            stall: stall
                .is_enabled()
                .then(|| MinimumThroughputBodyOptions::from(stall)),
        })
    }

    /// One signed `GET` of `key` (with `range` as `Range` and `if_match` as `If-Match`), up to
    /// its response head.
    pub async fn get(&self, key: &str, range: Option<&str>, if_match: Option<&str>) -> Answer {
        let Some(identity) = self.keys.identity().await else {
            return Answer::NotSent;
        };
        let Some(request) = self.signed(&identity, key, range, if_match) else {
            return Answer::NotSent;
        };
        let response = match self.connector.call(request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(error = %e, "s3 GetObject sent directly failed; through the SDK");
                return Answer::Declined;
            }
        };
        match response.status().as_u16() {
            200 | 206 => Answer::Object(Box::new(self.output(response))),
            412 => Answer::PreconditionFailed,
            416 => Answer::InvalidRange,
            status => {
                tracing::debug!(
                    status,
                    "s3 GetObject sent directly declined; through the SDK"
                );
                Answer::Declined
            }
        }
    }

    /// The signed request.
    fn signed(
        &self,
        identity: &Identity,
        key: &str,
        range: Option<&str>,
        if_match: Option<&str>,
    ) -> Option<HttpRequest> {
        let uri = format!(
            "{}/{}",
            self.base,
            fmt_string(key, EncodingStrategy::Greedy)
        );
        let mut builder = http::Request::get(&uri)
            .header(http::header::HOST, self.host.clone())
            .header("x-amz-content-sha256", EMPTY_PAYLOAD)
            // S3 then sends the checksum it stored with the object, which [`Self::output`] checks.
            .header("x-amz-checksum-mode", "ENABLED");
        if let Some(range) = range {
            builder = builder.header(http::header::RANGE, range);
        }
        if let Some(if_match) = if_match {
            builder = builder.header(http::header::IF_MATCH, if_match);
        }
        let mut request = builder.body(SdkBody::empty()).ok()?;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(identity)
            .region(&self.signing_region)
            .name(&self.signing_name)
            .time(SystemTime::now())
            .settings(self.settings.clone())
            .build()
            .ok()?
            .into();
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect::<Option<Vec<_>>>()?;
        let signable = SignableRequest::new(
            "GET",
            uri.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(&[]),
        )
        .ok()?;
        let (instructions, _signature) = sign(signable, &params).ok()?.into_parts();
        instructions.apply_to_request_http1x(&mut request);
        HttpRequest::try_from(request).ok()
    }

    /// The response as the SDK's output, with what docgate reads of it (`super::object`), its
    /// body checked against S3's checksum when S3 sent one for the whole object, and failed when
    /// it stalls, as the SDK's client would.
    fn output(&self, response: HttpResponse) -> GetObjectOutput {
        let header = |name: &str| response.headers().get(name).map(str::to_owned);
        let builder = GetObjectOutput::builder()
            .set_e_tag(header("etag"))
            .set_content_length(header("content-length").and_then(|n| n.parse().ok()))
            .set_content_range(header("content-range"))
            .set_content_type(header("content-type"));
        let checksum = stored_checksum(response.headers());
        let mut body = response.into_body();
        if let Some((algorithm, expected)) = checksum {
            body = SdkBody::from_body_1_x(ChecksumBody::new(body, algorithm.into_impl(), expected));
        }
        if let Some(stall) = &self.stall {
            body = SdkBody::from_body_1_x(MinimumThroughputDownloadBody::new(
                SystemTimeSource::new(),
                TokioSleep::new(),
                body,
                stall.clone(),
            ));
        }
        builder.body(ByteStream::new(body)).build()
    }
}

/// SigV4's settings for S3, as the SDK signs its requests.
fn s3_signing() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings
}

/// The signing name and region of the endpoint's first auth scheme, which must be SigV4.
fn sigv4_scheme(
    schemes: Option<&Document>,
) -> Result<(Option<String>, Option<String>), Unsupported> {
    let Some(Document::Array(schemes)) = schemes else {
        return Ok((None, None));
    };
    let Some(Document::Object(scheme)) = schemes.first() else {
        return Ok((None, None));
    };
    let text = |name: &str| match scheme.get(name) {
        Some(Document::String(value)) => Some(value.clone()),
        _ => None,
    };
    match text("name").as_deref() {
        Some("sigv4") => Ok((text("signingName"), text("signingRegion"))),
        other => Err(Unsupported::Auth(other.unwrap_or("no scheme").to_owned())),
    }
}

/// The whole object's checksum S3 sent, as the SDK picks it: the quickest algorithm first, none
/// when it is a multipart upload's checksum of checksums (`...-3`), which no body can be checked
/// against.
fn stored_checksum(
    headers: &aws_smithy_runtime_api::http::Headers,
) -> Option<(ChecksumAlgorithm, bytes::Bytes)> {
    for name in aws_smithy_checksums::http::CHECKSUM_ALGORITHMS_IN_PRIORITY_ORDER {
        let Ok(algorithm) = name.parse::<ChecksumAlgorithm>() else {
            continue;
        };
        let Some(value) = headers.get(algorithm.into_impl().header_name()) else {
            continue;
        };
        if of_parts(value) {
            return None;
        }
        return aws_smithy_types::base64::decode(value)
            .ok()
            .map(|expected| (algorithm, expected.into()));
    }
    None
}

/// A multipart upload's checksum: base64, a dash, the number of parts.
fn of_parts(checksum: &str) -> bool {
    checksum
        .rsplit_once('-')
        .is_some_and(|(_, parts)| !parts.is_empty() && parts.bytes().all(|b| b.is_ascii_digit()))
}

/// Attempts and time the SDK has left for a request [`DirectGet`] declined after `spent`, having
/// used `used` of the `attempts`.
pub fn left_after(spent: Duration, used: u32, attempts: u32, within: Duration) -> (u32, Duration) {
    (
        attempts.saturating_sub(used).max(1),
        within.saturating_sub(spent).max(Duration::from_secs(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_checksum_is_told_from_a_whole_objects() {
        assert!(of_parts("i5Jvkg==-3"));
        assert!(of_parts("AAAAAA==-12"));
        assert!(!of_parts("i5Jvkg=="));
        assert!(!of_parts("i5Jvkg==-"));
        assert!(!of_parts("ab-c"));
    }

    #[test]
    fn the_sdk_gets_what_is_left_of_the_attempts_and_time() {
        let within = Duration::from_secs(20);
        assert_eq!(
            left_after(Duration::from_secs(10), 1, 3, within),
            (2, Duration::from_secs(10))
        );
        assert_eq!(
            left_after(Duration::from_secs(25), 1, 1, within),
            (1, Duration::from_secs(1))
        );
        // Nothing sent (no keys at hand): every attempt is left, not the time spent.
        assert_eq!(
            left_after(Duration::from_secs(5), 0, 3, within),
            (3, Duration::from_secs(15))
        );
    }

    /// A `DirectGet` for `bucket` in `region`, at `custom` if given.
    async fn direct(bucket: &str, region: &str, custom: Option<&str>) -> DirectGet {
        let transport = crate::objects::s3::http::Transport::new(
            crate::objects::s3::http::ReceiveBuffer::for_host(0),
        )
        .unwrap();
        DirectGet::new(
            Endpoint {
                bucket,
                region,
                custom,
                use_fips: false,
                use_dual_stack: false,
            },
            Keys::Static(
                aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test")
                    .into(),
            ),
            transport.connector(Duration::from_secs(1), Duration::from_secs(1)),
            StalledStreamProtectionConfig::disabled(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_bucket_is_addressed_as_the_sdks_endpoint_rules_say() {
        let aws = direct("docs-bucket", "eu-west-1", None).await;
        assert_eq!(aws.base, "https://docs-bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(aws.host, "docs-bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(
            (aws.signing_name.as_str(), aws.signing_region.as_str()),
            ("s3", "eu-west-1")
        );
        // A dotted name would not match the wildcard certificate: path style, as the SDK does.
        let dotted = direct("docs.example.com", "eu-west-1", None).await;
        assert_eq!(
            dotted.base,
            "https://s3.eu-west-1.amazonaws.com/docs.example.com"
        );
        let custom = direct("docs", "us-east-1", Some("http://127.0.0.1:9000")).await;
        assert_eq!(custom.base, "http://127.0.0.1:9000/docs");
        assert_eq!(custom.host, "127.0.0.1:9000");
    }

    #[test]
    fn only_sigv4_endpoints_are_signed_directly() {
        let scheme = |name: &str| {
            Document::Array(vec![Document::Object(
                [
                    ("name".to_owned(), Document::String(name.to_owned())),
                    ("signingName".to_owned(), Document::String("s3".to_owned())),
                    (
                        "signingRegion".to_owned(),
                        Document::String("eu-west-1".to_owned()),
                    ),
                ]
                .into_iter()
                .collect(),
            )])
        };
        assert_eq!(
            sigv4_scheme(Some(&scheme("sigv4"))).ok(),
            Some((Some("s3".to_owned()), Some("eu-west-1".to_owned())))
        );
        assert!(matches!(
            sigv4_scheme(Some(&scheme("sigv4a"))),
            Err(Unsupported::Auth(name)) if name == "sigv4a"
        ));
        assert!(matches!(
            sigv4_scheme(Some(&scheme("sigv4-s3express"))),
            Err(Unsupported::Auth(_))
        ));
        assert_eq!(sigv4_scheme(None).ok(), Some((None, None)));
    }
}
