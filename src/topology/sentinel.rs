//! The primary of a Sentinel-monitored master: asked of the Sentinels, connected to, and kept
//! only while every Sentinel that answers still names that node and none is failing it over
//! (an old primary restarted empty before its failover ends is not trusted); dropped when a
//! command on it fails, so the next command asks again. Connections opened beside one another
//! ([`SharedConnection::another`]) follow one primary: the node one of them found is where the
//! others go, until a command there says it is no primary.

use super::*;

/// The current primary of a Sentinel-monitored master, found again after a failover.
pub(super) struct SentinelPrimary {
    /// Asks the Sentinels; one lookup at a time.
    sentinels: tokio::sync::Mutex<Lookup>,
    /// A client for each Sentinel, to confirm what a lookup found.
    witnesses: Vec<Client>,
    /// The master's name.
    master: String,
    /// The connection to the primary last found, and its generation (so a failure on an old
    /// connection does not drop a newer one).
    current: std::sync::Mutex<Option<Current>>,
    generation: AtomicU64,
    settings: AsyncConnectionConfig,
    /// Bounds a lookup through the Sentinels too.
    response_timeout: Duration,
    /// The node the last lookup of this connection, or of one opened beside it
    /// ([`SharedConnection::another`]), found: a connection to another node is dropped, and a
    /// connection opened beside it goes there without asking the Sentinels again. Forgotten when
    /// a command on that node says it is no primary.
    pub(super) found: Arc<std::sync::Mutex<Option<Found>>>,
}

/// A primary a lookup found and the Sentinels confirmed: its `host:port`, and a client for it.
#[derive(Clone)]
pub(super) struct Found {
    node: String,
    client: Client,
}

/// The connection to the primary last found: its generation, which node it reaches and since
/// when (for the logs).
#[derive(Clone)]
struct Current {
    generation: u64,
    conn: MultiplexedConnection,
    node: String,
    since: tokio::time::Instant,
}

/// The Sentinels' client, and when its last lookup failed.
struct Lookup {
    client: SentinelClient,
    failed_at: Option<tokio::time::Instant>,
}

/// After a failed lookup, commands fail at once for this long instead of asking again: while
/// there is no primary, requests that waited for the lookup in progress do not each wait for one
/// of their own.
const LOOKUP_PAUSE: Duration = Duration::from_millis(250);

impl SentinelPrimary {
    pub(super) fn new(
        urls: &[String],
        master: &str,
        certs: Option<TlsCertificates>,
        response_timeout: Duration,
        found: Arc<std::sync::Mutex<Option<Found>>>,
    ) -> RedisResult<Self> {
        Ok(Self {
            witnesses: sentinel_nodes(urls, certs.as_ref())?,
            master: master.to_owned(),
            sentinels: tokio::sync::Mutex::new(Lookup {
                client: sentinel_client(urls, master, certs)?,
                failed_at: None,
            }),
            current: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            settings: AsyncConnectionConfig::new()
                .set_pipeline_buffer_size(PIPELINE_BUFFER)
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(CONNECT_TIMEOUT)),
            response_timeout,
            found,
        })
    }

    /// The connection to the primary, unless a connection beside it has found another one since.
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let found = self.found.lock().ok().and_then(|f| f.clone());
        let mut current = self.current.lock().ok()?;
        let c = current.as_ref()?;
        if found.is_some_and(|found| found.node != c.node) {
            tracing::debug!(node = %c.node, "another connection found a new primary: this one follows");
            *current = None;
            return None;
        }
        Some((c.generation, c.conn.clone()))
    }

    /// The node the current connection reaches, its generation and age, for the logs.
    pub(super) fn describe(&self) -> String {
        match self.current.lock().ok().and_then(|c| c.clone()) {
            Some(c) => format!(
                "{} (connection {}, made {} ms ago)",
                c.node,
                c.generation,
                c.since.elapsed().as_millis()
            ),
            None => "no connection".to_owned(),
        }
    }

    /// The connection to the primary, looked up through the Sentinels when there is none.
    pub(super) async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut lookup = self.sentinels.lock().await;
        // Another command may have found it, or failed to, while this one waited.
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // A connection beside this one found the primary and the Sentinels confirmed it: go
        // there too, rather than ask them again while a failover may still be settling (a
        // completion's connection opened just after a failover would otherwise find none, or the
        // old primary, where the claim beside it found the new one).
        let beside = self.found.lock().ok().and_then(|f| f.clone());
        if let Some(found) = beside {
            let connected = tokio::time::timeout(
                CONNECT_TIMEOUT,
                found
                    .client
                    .get_multiplexed_async_connection_with_config(&self.settings),
            )
            .await;
            if let Ok(Ok(conn)) = connected {
                return Ok(self.install(conn, found.node));
            }
        }
        if lookup
            .failed_at
            .is_some_and(|at| at.elapsed() < LOOKUP_PAUSE)
        {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "no primary: the Sentinels named none that answers",
            )));
        }
        let sentinels = &mut lookup.client;
        let found = async {
            let named = sentinels.async_get_client().await?;
            let node = address(named.get_connection_info().addr());
            let conn = named
                .get_multiplexed_async_connection_with_config(&self.settings)
                .await?;
            // The crate's lookup reads the master's address from `SENTINEL MASTERS`, which names
            // the old primary until a failover ends; restarted meanwhile (a node without
            // persistence comes back empty, and a primary until the Sentinels demote it), it
            // passes the crate's role check. So, once connected, the node is kept only if every
            // Sentinel that answers still names it and none is failing it over.
            self.confirm(&node).await?;
            Ok((
                conn,
                Found {
                    node,
                    client: named,
                },
            ))
        };
        let found = tokio::time::timeout(CONNECT_TIMEOUT + self.response_timeout * 2, found)
            .await
            .map_err(|_| {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no primary found through the Sentinels in time",
                ))
            })
            .and_then(|found| found);
        lookup.failed_at = found.is_err().then(tokio::time::Instant::now);
        let (conn, found) = found.inspect_err(|e| {
            tracing::debug!(cause = %e, "no primary through the Sentinels");
        })?;
        tracing::debug!(node = %found.node, "connected to the primary the Sentinels name");
        let node = found.node.clone();
        if let Ok(mut beside) = self.found.lock() {
            *beside = Some(found);
        }
        Ok(self.install(conn, node))
    }

    /// Makes `conn`, to `node`, the current connection, of a new generation.
    fn install(&self, conn: MultiplexedConnection, node: String) -> (u64, MultiplexedConnection) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(Current {
                generation,
                conn: conn.clone(),
                node,
                since: tokio::time::Instant::now(),
            });
        }
        (generation, conn)
    }

    /// Asks every Sentinel (at once, each within the response timeout) what it says of the
    /// master: `node` is confirmed when one names it and vouches for it, and no Sentinel that
    /// answers is failing the master over or names another node it believes up. A Sentinel that
    /// does not answer, or believes its node down, neither confirms nor objects.
    async fn confirm(&self, node: &str) -> RedisResult<()> {
        let asks = self.witnesses.iter().map(|sentinel| async move {
            let ask = async {
                let mut conn = sentinel
                    .get_multiplexed_async_connection_with_config(&self.settings)
                    .await?;
                redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(&self.master)
                    .query_async::<HashMap<String, String>>(&mut conn)
                    .await
            };
            tokio::time::timeout(self.response_timeout, ask).await.ok()
        });
        let mut confirmed = false;
        for answer in futures_util::future::join_all(asks).await {
            let Some(Ok(entry)) = answer else {
                continue;
            };
            match verdict(&entry, node) {
                Verdict::Confirms => confirmed = true,
                Verdict::Down => {}
                Verdict::FailingOver => {
                    return Err(RedisError::from((
                        ErrorKind::Server(ServerErrorKind::MasterDown),
                        "a failover of the primary is in progress",
                    )));
                }
                Verdict::Another => {
                    return Err(RedisError::from((
                        ErrorKind::Server(ServerErrorKind::MasterDown),
                        "the Sentinels disagree on the primary",
                    )));
                }
            }
        }
        if confirmed {
            Ok(())
        } else {
            Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::MasterDown),
                "no Sentinel confirmed the primary",
            )))
        }
    }

    /// After a command on the connection of `generation`: when it said the primary is gone or
    /// demoted, the next command looks it up again.
    pub(super) fn settle(&self, generation: u64, lost: bool) {
        if lost {
            self.forget(Some(generation));
        }
    }

    /// Drops the connection of `generation` (any, with `None`), and the finding of its node, so
    /// no connection beside this one goes there next.
    pub(super) fn forget(&self, generation: Option<u64>) {
        let Ok(mut current) = self.current.lock() else {
            return;
        };
        let Some(c) = current.take_if(|c| generation.is_none_or(|wanted| c.generation == wanted))
        else {
            return;
        };
        if let Ok(mut found) = self.found.lock()
            && found.as_ref().is_some_and(|f| f.node == c.node)
        {
            *found = None;
        }
    }
}

/// What one Sentinel's `SENTINEL MASTER` answer says of the node docgate connected to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// It names that node and believes it up.
    Confirms,
    /// It believes the node it names down (or cannot tell): no opinion.
    Down,
    /// It is failing the master over: the node it names may be the one being replaced.
    FailingOver,
    /// It names another node, and believes that one up.
    Another,
}

fn verdict(entry: &HashMap<String, String>, node: &str) -> Verdict {
    let flags = entry.get("flags").map(String::as_str).unwrap_or("");
    let flag = |wanted: &str| flags.split(',').any(|f| f == wanted);
    if flag("failover_in_progress") {
        return Verdict::FailingOver;
    }
    if flag("s_down") || flag("o_down") || !flag("master") {
        return Verdict::Down;
    }
    match (entry.get("ip"), entry.get("port")) {
        (Some(ip), Some(port)) if format!("{ip}:{port}") == node => Verdict::Confirms,
        (Some(_), Some(_)) => Verdict::Another,
        _ => Verdict::Down,
    }
}

/// The Sentinels' URLs parsed, at least one.
fn sentinel_infos(urls: &[String]) -> RedisResult<Vec<redis::ConnectionInfo>> {
    let infos = urls
        .iter()
        .map(|u| u.as_str().into_connection_info())
        .collect::<RedisResult<Vec<_>>>()?;
    if infos.is_empty() {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "no Sentinel configured",
        )));
    }
    Ok(infos)
}

/// A client of the Sentinels, whose scheme and credentials are the primary's too.
pub(super) fn sentinel_client(
    urls: &[String],
    master: &str,
    certs: Option<TlsCertificates>,
) -> RedisResult<SentinelClient> {
    let infos = sentinel_infos(urls)?;
    let first = &infos[0];
    let tls = match first.addr() {
        ConnectionAddr::TcpTls { .. } => Some(TlsMode::Secure),
        _ => None,
    };
    let settings = first.redis_settings().clone();
    let mut builder = SentinelClientBuilder::new(
        infos.iter().map(|i| i.addr().clone()),
        master,
        SentinelServerType::Master,
    )?;
    if let Some(user) = settings.username() {
        builder = builder
            .set_client_to_sentinel_username(user)
            .set_client_to_redis_username(user);
    }
    if let Some(password) = settings.password() {
        builder = builder
            .set_client_to_sentinel_password(password)
            .set_client_to_redis_password(password);
    }
    if settings.db() != 0 {
        builder = builder.set_client_to_redis_db(settings.db());
    }
    if let Some(tls) = tls {
        builder = builder
            .set_client_to_sentinel_tls_mode(tls)
            .set_client_to_redis_tls_mode(tls);
    }
    if let Some(certs) = certs {
        builder = builder
            .set_client_to_sentinel_certificates(certs.clone())
            .set_client_to_redis_certificates(certs);
    }
    builder.build()
}

/// A client for each Sentinel, with the first URL's credentials as [`sentinel_client`] uses them.
fn sentinel_nodes(urls: &[String], certs: Option<&TlsCertificates>) -> RedisResult<Vec<Client>> {
    let infos = sentinel_infos(urls)?;
    let first = &infos[0];
    let settings = first.redis_settings().clone().set_db(0);
    infos
        .iter()
        .map(|info| {
            let info = first
                .clone()
                .set_addr(info.addr().clone())
                .set_redis_settings(settings.clone());
            match certs {
                Some(certs) => Client::build_with_tls(info, certs.clone()),
                None => Client::open(info),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_primary_is_kept_only_while_the_sentinels_vouch_for_it() {
        let entry = |ip: &str, port: &str, flags: &str| {
            HashMap::from([
                ("ip".to_owned(), ip.to_owned()),
                ("port".to_owned(), port.to_owned()),
                ("flags".to_owned(), flags.to_owned()),
            ])
        };
        let node = "127.0.0.1:7001";
        assert_eq!(
            verdict(&entry("127.0.0.1", "7001", "master"), node),
            Verdict::Confirms
        );
        // Its link to the node is being made again: no doubt on the node itself.
        assert_eq!(
            verdict(&entry("127.0.0.1", "7001", "master,disconnected"), node),
            Verdict::Confirms
        );
        // Until a failover ends, `SENTINEL MASTER(S)` names the primary being replaced.
        assert_eq!(
            verdict(
                &entry(
                    "127.0.0.1",
                    "7001",
                    "master,disconnected,failover_in_progress,force_failover"
                ),
                node
            ),
            Verdict::FailingOver
        );
        assert_eq!(
            verdict(&entry("127.0.0.1", "7002", "master"), node),
            Verdict::Another
        );
        assert_eq!(
            verdict(&entry("127.0.0.1", "7002", "master,s_down,o_down"), node),
            Verdict::Down
        );
        assert_eq!(verdict(&HashMap::new(), node), Verdict::Down);
    }
}
