//! The keys docgate's own `GetObject`s ([`super::direct`]) are signed with: static keys as they
//! are; keys from the AWS credential chain (web identity / IRSA, container credentials, instance
//! metadata, a profile) held between requests and fetched again before they expire, as the SDK's
//! identity cache does for the requests it sends itself.
//!
//! Only the first request waits for a fetch. Later ones sign with the keys at hand while one
//! fetch of new keys runs beside them. When there are no keys to sign with (the chain failed or
//! did not answer in time, and what it gave before has expired), the request is declined: the
//! SDK sends it through its own cache over the same chain, and the error, if any, is the SDK's,
//! as it was before docgate signed any request itself. After a failed fetch the chain is left
//! alone for [`QUIET_AFTER_FAILURE`], so a failing chain is not asked twice per request. A fetch
//! runs on a task of its own, so a request that goes away does not cancel it for the others
//! waiting. The first failure after keys were fetched is a `warn`, the ones after it `debug`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_runtime_api::client::identity::Identity;

/// Keys that name no expiry (a profile's, the environment's) are fetched again after this long,
/// as the SDK's cache does.
const UNDATED_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Keys are fetched again once less than this is left of them, or less than half their life if
/// that is shorter.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// A fetch that takes longer than this has failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed fetch, requests without keys go to the SDK this long before the chain is
/// asked again.
pub const QUIET_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// What a fetch of new keys leaves the requests with while it fails.
#[derive(Debug, Clone, Copy)]
enum Renewing {
    /// Keys still good.
    Held,
    /// None.
    Nothing,
}

/// What a direct `GetObject` is signed with.
#[derive(Debug, Clone)]
pub enum Keys {
    /// Static keys (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`): the same for the process's
    /// life.
    Static(Identity),
    /// The credential chain's keys, held and renewed.
    Chained(Arc<Chained>),
}

impl Keys {
    /// The chain's keys behind `provider`, none fetched yet.
    pub fn chained(provider: SharedCredentialsProvider) -> Self {
        Self::Chained(Arc::new(Chained::new(
            provider,
            SharedTimeSource::new(SystemTimeSource::new()),
        )))
    }

    /// What to sign with now; `None`: nothing, the SDK sends the request.
    pub async fn identity(&self) -> Option<Identity> {
        match self {
            Self::Static(identity) => Some(identity.clone()),
            Self::Chained(chained) => chained.identity().await,
        }
    }
}

/// The credential chain's keys, as last fetched.
#[derive(Debug)]
pub struct Chained {
    provider: SharedCredentialsProvider,
    clock: SharedTimeSource,
    held: RwLock<Held>,
    /// Held by the one fetch under way.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct Held {
    keys: Option<Fetched>,
    /// When a fetch failed, no other before this.
    quiet_until: Option<SystemTime>,
    /// The last fetch failed (the next failure is logged at `debug`).
    failing: bool,
}

#[derive(Debug, Clone)]
struct Fetched {
    identity: Identity,
    /// Fetched again from this time on.
    renew_at: SystemTime,
    /// Never signed with from this time on.
    expires: SystemTime,
}

impl Fetched {
    fn new(credentials: Credentials, now: SystemTime) -> Self {
        let expires = credentials
            .expiry()
            .unwrap_or_else(|| now + UNDATED_LIFETIME);
        let life = expires.duration_since(now).unwrap_or(Duration::ZERO);
        Self {
            identity: credentials.into(),
            renew_at: expires - RENEW_BEFORE.min(life / 2),
            expires,
        }
    }
}

impl Chained {
    fn new(provider: SharedCredentialsProvider, clock: SharedTimeSource) -> Self {
        Self {
            provider,
            clock,
            held: RwLock::new(Held::default()),
            fetching: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    async fn identity(self: &Arc<Self>) -> Option<Identity> {
        let now = self.clock.now();
        let (keys, due) = self.read(now);
        if !due {
            return keys.map(|k| k.identity);
        }
        if let Some(keys) = keys {
            // Still good for a while: one fetch runs beside the requests, which do not wait.
            if let Ok(fetching) = Arc::clone(&self.fetching).try_lock_owned() {
                self.spawn_fetch(fetching, Renewing::Held);
            }
            return Some(keys.identity);
        }
        // Nothing to sign with: wait for the one fetch, whoever makes it.
        let fetching = Arc::clone(&self.fetching).lock_owned().await;
        let (keys, due) = self.read(self.clock.now());
        match (keys, due) {
            (Some(keys), false) => Some(keys.identity),
            (None, false) => None,
            (_, true) => self
                .spawn_fetch(fetching, Renewing::Nothing)
                .await
                .ok()
                .flatten(),
        }
    }

    /// Asks the chain on a task of its own, which holds `fetching` until it is done: a request
    /// that goes away does not cancel it.
    fn spawn_fetch(
        self: &Arc<Self>,
        fetching: tokio::sync::OwnedMutexGuard<()>,
        renewing: Renewing,
    ) -> tokio::task::JoinHandle<Option<Identity>> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _fetching = fetching;
            this.fetch(renewing).await
        })
    }

    /// The keys good at `now`, and whether a fetch is due (the keys are near their end, or there
    /// are none, and no failure asks for quiet).
    fn read(&self, now: SystemTime) -> (Option<Fetched>, bool) {
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        let keys = held.keys.as_ref().filter(|k| now < k.expires).cloned();
        let due = keys.as_ref().is_none_or(|k| now >= k.renew_at)
            && held.quiet_until.is_none_or(|until| now >= until);
        (keys, due)
    }

    /// Asks the chain; the caller holds `fetching` ([`Self::spawn_fetch`]).
    async fn fetch(&self, renewing: Renewing) -> Option<Identity> {
        let fetched =
            tokio::time::timeout(FETCH_TIMEOUT, self.provider.provide_credentials()).await;
        let now = self.clock.now();
        let failure = match fetched {
            Ok(Ok(credentials)) => {
                let keys = Fetched::new(credentials, now);
                if now < keys.expires {
                    let identity = keys.identity.clone();
                    let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
                    *held = Held {
                        keys: Some(keys),
                        ..Held::default()
                    };
                    return Some(identity);
                }
                "the chain gave keys that have already expired".to_owned()
            }
            Ok(Err(e)) => DisplayErrorContext(&e).to_string(),
            Err(_) => format!("no answer within {FETCH_TIMEOUT:?}"),
        };
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        let already = std::mem::replace(&mut held.failing, true);
        held.quiet_until = Some(now + QUIET_AFTER_FAILURE);
        drop(held);
        let then = match renewing {
            Renewing::Held => "the keys held are used until they expire",
            Renewing::Nothing => "docgate's own GetObjects go through the SDK meanwhile",
        };
        if already {
            tracing::debug!(error = %failure, "S3 credentials could not be fetched; {then}");
        } else {
            tracing::warn!(error = %failure, "S3 credentials could not be fetched; {then}");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::{self, future};
    use aws_smithy_async::time::TimeSource;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const T0: Duration = Duration::from_secs(1_800_000_000);

    /// A clock the test moves.
    #[derive(Debug, Clone)]
    struct Clock(Arc<Mutex<SystemTime>>);

    impl Clock {
        fn new() -> Self {
            Self(Arc::new(Mutex::new(SystemTime::UNIX_EPOCH + T0)))
        }
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl TimeSource for Clock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    /// What the chain does when asked.
    #[derive(Debug, Clone, Copy)]
    enum Gives {
        /// Keys valid for this long (`None`: undated).
        Keys(Option<Duration>),
        Fails,
        /// Never answers.
        Hangs,
        /// Keys valid for an hour, after a second.
        Slow,
    }

    /// A chain that counts how often it is asked, and names its keys by that count.
    #[derive(Debug)]
    struct Chain {
        clock: Clock,
        gives: Mutex<Gives>,
        asked: AtomicUsize,
    }

    impl Chain {
        fn set(&self, gives: Gives) {
            *self.gives.lock().unwrap() = gives;
        }
        fn asked(&self) -> usize {
            self.asked.load(Ordering::SeqCst)
        }
    }

    impl provider::ProvideCredentials for Chain {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
            let gives = *self.gives.lock().unwrap();
            let now = self.clock.now();
            future::ProvideCredentials::new(async move {
                // A fetch takes a moment, so that others come while it runs.
                tokio::task::yield_now().await;
                match gives {
                    Gives::Keys(life) => Ok(Credentials::new(
                        format!("AKID{n}"),
                        "secret",
                        None,
                        life.map(|life| now + life),
                        "test",
                    )),
                    Gives::Fails => Err(provider::error::CredentialsError::not_loaded(
                        "no web identity token",
                    )),
                    Gives::Hangs => std::future::pending().await,
                    Gives::Slow => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok(Credentials::new(
                            format!("AKID{n}"),
                            "secret",
                            None,
                            Some(now + Duration::from_secs(3600)),
                            "test",
                        ))
                    }
                }
            })
        }
    }

    fn keys(gives: Gives) -> (Arc<Chained>, Arc<Chain>, Clock) {
        let clock = Clock::new();
        let chain = Arc::new(Chain {
            clock: clock.clone(),
            gives: Mutex::new(gives),
            asked: AtomicUsize::new(0),
        });
        let chained = Arc::new(Chained::new(
            SharedCredentialsProvider::new(ArcChain(Arc::clone(&chain))),
            SharedTimeSource::new(clock.clone()),
        ));
        (chained, chain, clock)
    }

    /// The test keeps its own handle on the chain.
    #[derive(Debug)]
    struct ArcChain(Arc<Chain>);

    impl provider::ProvideCredentials for ArcChain {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.provide_credentials()
        }
    }

    fn key_id(identity: &Identity) -> String {
        identity
            .data::<Credentials>()
            .unwrap()
            .access_key_id()
            .to_owned()
    }

    /// Lets a fetch spawned beside the requests run to its end.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn static_keys_are_signed_with_as_they_are() {
        let keys = Keys::Static(Credentials::new("AKIDSTATIC", "secret", None, None, "t").into());
        assert_eq!(key_id(&keys.identity().await.unwrap()), "AKIDSTATIC");
    }

    #[tokio::test]
    async fn the_chain_is_asked_once_for_many_requests() {
        let (chained, chain, clock) = keys(Gives::Keys(Some(Duration::from_secs(3600))));
        let first: Vec<_> = futures_util::future::join_all((0..32).map(|_| {
            let chained = Arc::clone(&chained);
            async move { chained.identity().await }
        }))
        .await;
        assert_eq!(chain.asked(), 1, "the first requests share one fetch");
        assert!(first.iter().all(|i| key_id(i.as_ref().unwrap()) == "AKID1"));
        // Within the keys' life, short of the last five minutes: not asked again.
        clock.advance(Duration::from_secs(54 * 60));
        assert_eq!(key_id(&chained.identity().await.unwrap()), "AKID1");
        settle().await;
        assert_eq!(chain.asked(), 1);
    }

    #[tokio::test]
    async fn keys_near_their_end_are_renewed_while_requests_go_on() {
        let (chained, chain, clock) = keys(Gives::Keys(Some(Duration::from_secs(3600))));
        chained.identity().await.unwrap();
        // Four minutes left: each request signs with the keys at hand at once, and one fetch
        // runs beside them.
        clock.advance(Duration::from_secs(56 * 60));
        for _ in 0..8 {
            assert_eq!(key_id(&chained.identity().await.unwrap()), "AKID1");
        }
        settle().await;
        assert_eq!(
            chain.asked(),
            2,
            "one renewal, however many requests saw it due"
        );
        assert_eq!(key_id(&chained.identity().await.unwrap()), "AKID2");
    }

    #[tokio::test]
    async fn short_lived_keys_are_renewed_at_half_their_life() {
        let (chained, chain, clock) = keys(Gives::Keys(Some(Duration::from_secs(4 * 60))));
        chained.identity().await.unwrap();
        clock.advance(Duration::from_secs(119));
        chained.identity().await.unwrap();
        settle().await;
        assert_eq!(chain.asked(), 1);
        clock.advance(Duration::from_secs(2));
        chained.identity().await.unwrap();
        settle().await;
        assert_eq!(chain.asked(), 2);
    }

    #[tokio::test]
    async fn undated_keys_are_fetched_again_as_the_sdk_would() {
        let (chained, chain, clock) = keys(Gives::Keys(None));
        chained.identity().await.unwrap();
        clock.advance(Duration::from_secs(9 * 60));
        chained.identity().await.unwrap();
        settle().await;
        assert_eq!(chain.asked(), 1);
        clock.advance(Duration::from_secs(2 * 60));
        chained.identity().await.unwrap();
        settle().await;
        assert_eq!(chain.asked(), 2);
    }

    #[tokio::test]
    async fn a_failing_chain_declines_and_is_left_alone_for_a_while() {
        let (chained, chain, clock) = keys(Gives::Fails);
        assert!(chained.identity().await.is_none());
        assert!(chained.identity().await.is_none());
        assert_eq!(chain.asked(), 1, "not asked again while quiet");
        clock.advance(QUIET_AFTER_FAILURE);
        chain.set(Gives::Keys(Some(Duration::from_secs(3600))));
        assert_eq!(key_id(&chained.identity().await.unwrap()), "AKID2");
    }

    #[tokio::test]
    async fn expired_keys_are_never_signed_with() {
        let (chained, chain, clock) = keys(Gives::Keys(Some(Duration::from_secs(3600))));
        chained.identity().await.unwrap();
        // The renewal fails while the old keys are still good: they are used to their end...
        chain.set(Gives::Fails);
        clock.advance(Duration::from_secs(58 * 60));
        assert_eq!(key_id(&chained.identity().await.unwrap()), "AKID1");
        settle().await;
        assert_eq!(chain.asked(), 2);
        // ...and not after it, when the chain still fails.
        clock.advance(Duration::from_secs(2 * 60));
        assert!(chained.identity().await.is_none());
        assert_eq!(chain.asked(), 3);
        // Keys that come already expired are not signed with either.
        clock.advance(QUIET_AFTER_FAILURE);
        chain.set(Gives::Keys(Some(Duration::ZERO)));
        assert!(chained.identity().await.is_none());
        assert_eq!(chain.asked(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_goes_away_does_not_cancel_the_fetch_for_the_others() {
        let (chained, chain, _clock) = keys(Gives::Slow);
        let gone = tokio::time::timeout(Duration::from_millis(100), chained.identity()).await;
        assert!(gone.is_err(), "the first request gave up waiting");
        let started = tokio::time::Instant::now();
        assert_eq!(key_id(&chained.identity().await.unwrap()), "AKID1");
        assert_eq!(chain.asked(), 1, "the fetch it began went on");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not begun again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_chain_that_does_not_answer_declines_after_the_fetch_timeout() {
        let (chained, chain, _clock) = keys(Gives::Hangs);
        let started = tokio::time::Instant::now();
        assert!(chained.identity().await.is_none());
        assert_eq!(started.elapsed(), FETCH_TIMEOUT);
        assert_eq!(chain.asked(), 1);
    }
}
