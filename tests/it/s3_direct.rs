//! `GetObject` sent by docgate itself (`objects::s3::direct`): what goes on the wire, that the
//! store (s3s, signatures verified) accepts it, that what it declines goes through the SDK within
//! the same attempts, that a body is checked against the checksum S3 stored with it, and that keys
//! from a credential chain are held, sent with their session token, and left to the SDK when the
//! chain fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use docgate::objects::s3::{MAX_ATTEMPTS, S3Source};
use docgate::objects::{ObjectError, ObjectSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::content;
use crate::support::objects::{drain, range, read_all};
use crate::support::s3::{ACCESS_KEY, S3Server, SECRET_KEY, config_at, request_head};

const KEY: &str = "resume/Jane Doe (2026).pdf";

/// The header the SDK's pipeline puts on every request it sends, and docgate's own do not carry.
const SDK_HEADER: &str = "x-amz-user-agent";

/// A TCP proxy in front of `upstream` that keeps every byte clients sent through it.
struct Recorder {
    addr: std::net::SocketAddr,
    sent: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&sent);
        let task = tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let server = TcpStream::connect(upstream).await.unwrap();
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = from_client.read(&mut buf).await.unwrap_or(0);
                            if n == 0 || to_server.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                            kept.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                    };
                    let down = tokio::io::copy(&mut from_server, &mut to_client);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Self { addr, sent, task }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request heads clients sent, in order.
    fn requests(&self) -> Vec<String> {
        let sent = String::from_utf8_lossy(&self.sent.lock().unwrap()).to_ascii_lowercase();
        sent.split("\r\n\r\n")
            .filter(|head| head.starts_with("get ") || head.starts_with("head "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A store that answers each request with the next of `answers` (the last one over and over),
/// and counts the requests.
struct Answers {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Answers {
    async fn start(answers: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let answers = Arc::new(answers);
        let task = tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let (seen, answers) = (Arc::clone(&seen), Arc::clone(&answers));
                tokio::spawn(async move {
                    while let Some(head) = request_head(&mut socket).await {
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(head);
                            seen.len()
                        };
                        let answer = &answers[(n - 1).min(answers.len() - 1)];
                        if socket.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An object's `200`, with `extra` header lines.
fn object_answer(body: &[u8], extra: &str) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nETag: \"e1\"\r\n{extra}\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

/// S3's `503 Slow Down`.
fn slow_down() -> Vec<u8> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    format!(
        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A bucket holding `KEY` (`len` bytes of `seed`), a recorder in front of it, and a source
/// reaching the bucket through the recorder.
async fn recorded(seed: u8, len: usize) -> (S3Server, Recorder, S3Source, Vec<u8>) {
    recorded_with(seed, len, None).await
}

/// [`recorded`], the source signing with `provider`'s keys when given (its static keys if not).
async fn recorded_with(
    seed: u8,
    len: usize,
    provider: Option<SharedCredentialsProvider>,
) -> (S3Server, Recorder, S3Source, Vec<u8>) {
    let server = S3Server::start().await;
    let bytes = content(seed, len);
    server.put(KEY, &bytes).await;
    let recorder = Recorder::start(server.addr).await;
    let mut config = config_at(&recorder.endpoint());
    let source = match provider {
        Some(provider) => {
            config.credentials = None;
            S3Source::with_credentials_provider(&config, provider).await
        }
        None => S3Source::new(&config).await,
    };
    (server, recorder, source.unwrap(), bytes)
}

#[tokio::test]
async fn a_get_is_one_signed_request_the_store_accepts_without_the_sdks_pipeline() {
    let (_server, recorder, source, bytes) = recorded(41, 300_000).await;

    let whole = source.open(KEY, None).await.unwrap();
    assert_eq!(read_all(whole).await, bytes);
    let part = source
        .open(KEY, Some(&range("bytes=1000-1999", None)))
        .await
        .unwrap();
    assert_eq!(read_all(part).await, bytes[1000..2000]);

    // Two requests for two opens: s3s verified both signatures (a refused one would have been
    // sent again, through the SDK), and neither went through the SDK's pipeline.
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for head in &requests {
        assert!(
            head.starts_with("get /documents/resume/jane%20doe%20%282026%29.pdf "),
            "{head}"
        );
        assert!(
            head.contains("\r\nauthorization: aws4-hmac-sha256 "),
            "{head}"
        );
        assert!(head.contains("\r\nx-amz-checksum-mode: enabled"), "{head}");
        assert!(!head.contains(SDK_HEADER), "{head}");
    }
    assert!(requests[1].contains("\r\nrange: bytes=1000-1999"));
}

#[tokio::test]
async fn what_the_store_refuses_is_asked_again_through_the_sdk_and_mapped_as_before() {
    let server = S3Server::start().await;
    let recorder = Recorder::start(server.addr).await;
    let source = S3Source::new(&config_at(&recorder.endpoint()))
        .await
        .unwrap();

    assert!(matches!(
        source.open("no/such.pdf", None).await,
        Err(ObjectError::NotFound)
    ));
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(!requests[0].contains(SDK_HEADER));
    assert!(requests[1].contains(SDK_HEADER));
}

#[tokio::test]
async fn a_store_that_asks_to_slow_down_gets_the_same_attempts_as_before() {
    // Twice 503, then the object: the direct request and the SDK's two retries.
    let bytes = content(42, 40_000);
    let store = Answers::start(vec![slow_down(), slow_down(), object_answer(&bytes, "")]).await;
    let source = S3Source::new(&config_at(&store.endpoint())).await.unwrap();
    assert_eq!(read_all(source.open(KEY, None).await.unwrap()).await, bytes);
    assert_eq!(store.requests().len(), 3);

    // Always 503: given up after exactly the SDK's attempts, as when the SDK sent them all.
    let store = Answers::start(vec![slow_down()]).await;
    let source = S3Source::new(&config_at(&store.endpoint())).await.unwrap();
    let Err(ObjectError::Unavailable(e)) = source.open(KEY, None).await else {
        panic!("a store that always refuses leaves the object unavailable");
    };
    assert_eq!(e.to_string(), "s3 GetObject failed: SlowDown (HTTP 503)");
    assert_eq!(store.requests().len(), MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn a_body_is_checked_against_the_checksum_s3_stored_with_it() {
    // CRC32 of "123456789" is 0xCBF43926.
    let body = b"123456789";
    let cases = [
        ("x-amz-checksum-crc32: y/Q5Jg==\r\n", true),
        ("x-amz-checksum-crc32: AAAAAA==\r\n", false),
        // A multipart upload's checksum of its parts' checksums: nothing to check the body by.
        ("x-amz-checksum-crc32: AAAAAA==-2\r\n", true),
    ];
    for (header, intact) in cases {
        let store = Answers::start(vec![object_answer(body, header)]).await;
        let source = S3Source::new(&config_at(&store.endpoint())).await.unwrap();
        let object = source.open(KEY, None).await.unwrap();
        let (read, error) = drain(object).await;
        if intact {
            assert_eq!(read, body, "{header}");
            assert!(error.is_none(), "{header}: {error:?}");
        } else {
            assert!(
                error.is_some(),
                "{header}: a body that does not match ended cleanly"
            );
        }
        assert_eq!(store.requests().len(), 1, "{header}");
    }
}

#[tokio::test]
async fn answers_s3_gives_by_status_alone_are_not_asked_again() {
    let (_server, recorder, source, bytes) = recorded(43, 5_000).await;

    // `416`: then the size, from one `HEAD` (the SDK's), for the answer.
    let Err(ObjectError::Range(_)) = source.open(KEY, Some(&range("bytes=9000-", None))).await
    else {
        panic!("a range beyond the end is unsatisfiable");
    };
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(requests[0].starts_with("get ") && !requests[0].contains(SDK_HEADER));
    assert!(requests[1].starts_with("head "));

    // `412`: another version than the client's, so the whole of this one, as a second `GET`.
    let object = source
        .open(KEY, Some(&range("bytes=0-99", Some("\"another\""))))
        .await
        .unwrap();
    assert_eq!(read_all(object).await, bytes);
    let requests = recorder.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert!(requests[2].contains("\r\nif-match: \"another\""));
    assert!(
        requests[2..]
            .iter()
            .all(|head| head.starts_with("get ") && !head.contains(SDK_HEADER))
    );
}

/// A credential chain (as IRSA or instance metadata would be) that fails its first `failures`
/// fetches, then gives the bucket's keys with a session token, valid for an hour; it counts how
/// often it is asked.
#[derive(Debug)]
struct Chain {
    failures: usize,
    asked: AtomicUsize,
}

impl Chain {
    fn failing(failures: usize) -> Arc<Self> {
        Arc::new(Self {
            failures,
            asked: AtomicUsize::new(0),
        })
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

/// The test's handle and the source's share one [`Chain`].
#[derive(Debug)]
struct SharedChain(Arc<Chain>);

impl ProvideCredentials for SharedChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self.0.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let failed = n <= self.0.failures;
        future::ProvideCredentials::new(async move {
            if failed {
                return Err(CredentialsError::provider_error(
                    "the web identity token was refused",
                ));
            }
            Ok(Credentials::new(
                ACCESS_KEY,
                SECRET_KEY,
                Some(format!("session-token-{n}")),
                Some(std::time::SystemTime::now() + Duration::from_secs(3600)),
                "test-chain",
            ))
        })
    }
}

/// A bucket holding `KEY`, a recorder in front of it, and a source signing with `chain`'s keys.
async fn chained(chain: &Arc<Chain>) -> (S3Server, Recorder, S3Source, Vec<u8>) {
    let provider = SharedCredentialsProvider::new(SharedChain(Arc::clone(chain)));
    recorded_with(44, 70_000, Some(provider)).await
}

#[tokio::test]
async fn keys_from_the_credential_chain_sign_directly_and_are_fetched_once() {
    let chain = Chain::failing(0);
    let (_server, recorder, source, bytes) = chained(&chain).await;
    assert_eq!(chain.asked(), 0, "nothing is fetched before it is needed");

    for _ in 0..3 {
        assert_eq!(read_all(source.open(KEY, None).await.unwrap()).await, bytes);
    }
    assert_eq!(chain.asked(), 1, "the keys are held between requests");
    let requests = recorder.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for head in &requests {
        assert!(!head.contains(SDK_HEADER), "{head}");
        assert!(
            head.contains(&format!(
                "\r\nauthorization: aws4-hmac-sha256 credential={}/",
                ACCESS_KEY.to_ascii_lowercase()
            )),
            "{head}"
        );
        // The chain's session token goes with the keys, as the SDK sends it.
        assert!(
            head.contains("\r\nx-amz-security-token: session-token-1"),
            "{head}"
        );
    }
}

#[tokio::test]
async fn a_credential_chain_that_fails_leaves_the_request_to_the_sdk() {
    // The first fetch (docgate's) fails; the SDK's own, for the same request, succeeds.
    let chain = Chain::failing(1);
    let (_server, recorder, source, bytes) = chained(&chain).await;

    assert_eq!(read_all(source.open(KEY, None).await.unwrap()).await, bytes);
    assert_eq!(chain.asked(), 2);
    // Nothing was sent without keys: the one request is the SDK's.
    let requests = recorder.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert!(requests[0].contains(SDK_HEADER), "{}", requests[0]);

    // Right after a failure the chain is left alone: the SDK signs with the keys it holds.
    assert_eq!(read_all(source.open(KEY, None).await.unwrap()).await, bytes);
    assert_eq!(chain.asked(), 2);
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(requests[1].contains(SDK_HEADER), "{}", requests[1]);
}
