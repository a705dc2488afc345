//! Where docgate's shared state lives: one Redis topology of three (standalone, Redis Cluster,
//! Sentinel), reached through one connection type, [`SharedConnection`], that the store, the
//! limiter, the request log and the mail queue use alike (scripts, pipelines, stream commands).
//!
//! - Standalone: the `redis` crate's `ConnectionManager` (multiplexed, reconnecting).
//! - Cluster: the crate's `cluster_async::ClusterConnection`: the slot map from the seed nodes,
//!   `MOVED`/`ASK` followed, the map refreshed after a failover or a resharding. A command goes to
//!   the primary of its first key's slot (a script: its first `KEYS`; `XREADGROUP`: the first
//!   stream), `PING` to every primary.
//! - Sentinel: the primary the Sentinels name for the master, through one multiplexed connection,
//!   kept once made only if every Sentinel that answers still names that node and none is failing
//!   the master over (an old primary restarted empty before its failover ends is not trusted),
//!   and dropped when a command fails on it, times out or meets `READONLY` (the primary was
//!   demoted): the next command asks the Sentinels again. No restart is needed after a
//!   failover; while there is no primary, every command fails and docgate fails closed.
//!
//! Every command has a response timeout and every connection a connect timeout, and connections
//! are opened lazily, so docgate starts (and reports not ready) while Redis is down. TLS
//! (`rediss://`) trusts `DOCGATE_REDIS_CA_FILE` when set, else the Web PKI roots.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, ServerErrorKind, TlsCertificates, TlsMode, Value,
};

use crate::config::{RedisConfig, Topology};

mod script;
mod sentinel;

pub use script::ScriptCall;
use sentinel::{SentinelPrimary, sentinel_client};

/// How long a command may wait for Redis's answer before the request fails closed.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the commands that settle what has already happened may wait for Redis's answer: a
/// download's completion or release (its client holds every byte but the last piece, or has
/// gone) and the request log's records. Their failing loses something (a download broken after
/// its `200`, an owner's entry), while their waiting costs a client a pause, so they wait longer
/// than [`RESPONSE_TIMEOUT`], which admits new work; less than a download's lease outlives its
/// last renewal (`app::LEASE_TTL` less `app::RENEWAL_GAP`), so a completion still answers for its
/// own lease. On a saturated runtime a reply waits for the task that reads it to be polled: at
/// 1,024 downloads on two cores that took 1–2 s (`benches/overload.sh`, `docs/benchmarks.md`).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(8);

/// A connection to the configured topology, shared by the store, the limiter, the request log and
/// the mail queue: cheap to clone (every clone shares the same connections).
#[derive(Clone)]
pub struct SharedConnection(Inner);

#[derive(Clone)]
enum Inner {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelPrimary>),
}

/// How many commands may wait to be written on one multiplexed connection (the crate's default
/// is 50). Every download in flight has a command on its way at some point (claim, renewal,
/// completion, the request log's entry); at a thousand downloads, 50 slots made commands queue for
/// a slot, and their response timeout ran out while they queued (`benches/overload.sh`). A slot
/// holds one command's bytes until it is written.
pub const PIPELINE_BUFFER: usize = 4096;

/// Opens (lazily) a connection to the configured topology with the standard response timeout.
pub fn connect(config: &RedisConfig) -> RedisResult<SharedConnection> {
    connect_with(config, RESPONSE_TIMEOUT)
}

/// As [`connect`], with another response timeout: a connection for blocking reads (the mail
/// sender's `XREADGROUP BLOCK`) must wait longer than it blocks, and has its own sockets so a
/// blocked read holds up no other command.
pub fn connect_with(
    config: &RedisConfig,
    response_timeout: Duration,
) -> RedisResult<SharedConnection> {
    let certs = certificates(config);
    let urls = config.topology.urls();
    Ok(SharedConnection(match &config.topology {
        Topology::Standalone { .. } => {
            let client = client(&urls[0], certs.as_ref())?;
            let settings = ConnectionManagerConfig::new()
                .set_pipeline_buffer_size(PIPELINE_BUFFER)
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            Inner::Standalone(ConnectionManager::new_lazy_with_config(client, settings)?)
        }
        Topology::Cluster { .. } => {
            let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(response_timeout)
                .retries(3);
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            let config = ClusterConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(response_timeout);
            Inner::Cluster(
                builder
                    .build()?
                    .get_pending_async_connection_with_config(config),
            )
        }
        Topology::Sentinel { master, .. } => Inner::Sentinel(Arc::new(SentinelPrimary::new(
            &urls,
            master,
            certs,
            response_timeout,
            Arc::default(),
        )?)),
    }))
}

impl SharedConnection {
    /// Another connection to the same topology (`config`, which this one was opened with), with
    /// sockets of its own and its own response timeout: commands that block it (`WAIT`) hold up
    /// none of this one's, and commands that may wait longer ([`SETTLE_TIMEOUT`]) do not make
    /// this one's wait. On Sentinel the two follow one primary: once either has found a new one,
    /// the other drops its connection before its next command, rather than meet the old
    /// primary's death (or its demotion) with a command of its own.
    pub fn another(
        &self,
        config: &RedisConfig,
        response_timeout: Duration,
    ) -> RedisResult<SharedConnection> {
        match (&self.0, &config.topology) {
            (Inner::Sentinel(primary), Topology::Sentinel { master, .. }) => Ok(SharedConnection(
                Inner::Sentinel(Arc::new(SentinelPrimary::new(
                    &config.topology.urls(),
                    master,
                    certificates(config),
                    response_timeout,
                    primary.found.clone(),
                )?)),
            )),
            _ => connect_with(config, response_timeout),
        }
    }

    /// Whether the topology can serve: the primary answers `PING`; a cluster's state is `ok` and
    /// every master the client holds a connection to answers `PING` (a master that went away
    /// counts once the cluster marks it failed, which turns its state to `fail`); a Sentinel's
    /// primary still is one.
    pub async fn ping(&self) -> RedisResult<()> {
        let mut conn = self.clone();
        match &self.0 {
            Inner::Standalone(_) => redis::cmd("PING").query_async::<()>(&mut conn).await,
            Inner::Cluster(_) => {
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut conn)
                    .await?;
                cluster_state_ok(&info)
            }
            Inner::Sentinel(primary) => {
                let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
                match role.first() {
                    Some(Value::BulkString(role)) if role == b"master" => Ok(()),
                    _ => {
                        primary.forget(None);
                        Err(RedisError::from((
                            ErrorKind::Server(ServerErrorKind::ReadOnly),
                            "the node the Sentinels named is no longer the primary",
                        )))
                    }
                }
            }
        }
    }

    /// The node commands go to now, for the logs: on Sentinel, the primary's `host:port`, which
    /// connection and its age; the topology's kind otherwise (the client picks the node).
    pub fn node(&self) -> String {
        match &self.0 {
            Inner::Sentinel(primary) => primary.describe(),
            _ => self.kind().to_owned(),
        }
    }

    /// Which topology this is, in a word, for logs and `docgate check`.
    pub fn kind(&self) -> &'static str {
        match &self.0 {
            Inner::Standalone(_) => "standalone",
            Inner::Cluster(_) => "cluster",
            Inner::Sentinel(_) => "sentinel",
        }
    }
}

/// `cluster_state:ok` in `CLUSTER INFO`, else an error saying the cluster cannot serve.
fn cluster_state_ok(info: &str) -> RedisResult<()> {
    let state = info
        .lines()
        .find_map(|l| l.strip_prefix("cluster_state:"))
        .map(str::trim)
        .unwrap_or("unknown");
    if state == "ok" {
        Ok(())
    } else {
        Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ClusterDown),
            "the cluster's state is not ok",
            format!("cluster_state:{state}"),
        )))
    }
}

impl ConnectionLike for SharedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Inner::Standalone(conn) => conn.req_packed_command(cmd),
            Inner::Cluster(conn) => conn.req_packed_command(cmd),
            Inner::Sentinel(primary) => {
                let primary = primary.clone();
                Box::pin(async move {
                    let (generation, mut conn) = primary.connection().await?;
                    let result = conn.req_packed_command(cmd).await;
                    let lost = match &result {
                        Err(e) => primary_lost(e),
                        Ok(value) => demoted(value),
                    };
                    primary.settle(generation, lost);
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Inner::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Inner::Sentinel(primary) => {
                let primary = primary.clone();
                Box::pin(async move {
                    let (generation, mut conn) = primary.connection().await?;
                    let result = conn.req_packed_commands(pipeline, offset, count).await;
                    let lost = match &result {
                        Err(e) => primary_lost(e),
                        Ok(values) => values.iter().any(demoted),
                    };
                    primary.settle(generation, lost);
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Inner::Standalone(conn) => conn.get_db(),
            Inner::Cluster(conn) => conn.get_db(),
            Inner::Sentinel(_) => 0,
        }
    }
}

/// Whether a reply is the server's error saying it is no writable primary now (`READONLY`,
/// `MASTERDOWN`, `LOADING`): the crate hands server errors back as values, the caller turns them
/// into errors.
fn demoted(value: &Value) -> bool {
    let Value::ServerError(e) = value else {
        return false;
    };
    matches!(
        e.kind(),
        Some(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading
        )
    )
}

/// Whether an error means the connection no longer reaches a primary.
fn primary_lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
            )
        )
}

/// The CA to trust for `rediss://`, when configured.
fn certificates(config: &RedisConfig) -> Option<TlsCertificates> {
    config.ca.as_ref().map(|pem| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.clone()),
    })
}

/// A client for one node's URL, trusting the configured CA.
pub(crate) fn client(url: &str, certs: Option<&TlsCertificates>) -> RedisResult<Client> {
    match certs {
        Some(certs) => Client::build_with_tls(url, certs.clone()),
        None => Client::open(url),
    }
}

/// A primary of the topology, as `docgate check` reports it.
pub struct Primary {
    /// `host:port`, as the topology names it (no credentials).
    pub address: String,
    /// A client for it alone, with the configured credentials and CA.
    pub client: Client,
}

/// Every primary of the topology: the one node; each master of a cluster whose state is `ok`;
/// the primary the Sentinels name. An error says why none can be named.
pub async fn primaries(config: &RedisConfig) -> RedisResult<Vec<Primary>> {
    let certs = certificates(config);
    let urls = config.topology.urls();
    let bounded = |what: &'static str| {
        move |_| {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{what}: no answer within {}s",
                    (CONNECT_TIMEOUT + RESPONSE_TIMEOUT).as_secs()
                ),
            ))
        }
    };
    match &config.topology {
        Topology::Standalone { .. } => {
            let client = client(&urls[0], certs.as_ref())?;
            Ok(vec![Primary {
                address: address(client.get_connection_info().addr()),
                client,
            }])
        }
        Topology::Cluster { .. } => {
            let mut conn = connect(config)?;
            let info: String = tokio::time::timeout(
                CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
                redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn),
            )
            .await
            .map_err(bounded("cluster"))??;
            cluster_state_ok(&info)?;
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut conn)
                .await?;
            let template = urls[0].as_str().into_connection_info()?;
            let mut primaries = Vec::new();
            for (host, port) in cluster_masters(&nodes) {
                let addr = match template.addr() {
                    ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port,
                        insecure: *insecure,
                        tls_params: None,
                    },
                    _ => ConnectionAddr::Tcp(host.clone(), port),
                };
                let info = template.clone().set_addr(addr);
                let client = match &certs {
                    Some(certs) => Client::build_with_tls(info, certs.clone())?,
                    None => Client::open(info)?,
                };
                primaries.push(Primary {
                    address: format!("{host}:{port}"),
                    client,
                });
            }
            Ok(primaries)
        }
        Topology::Sentinel { master, .. } => {
            let mut sentinels = sentinel_client(&urls, master, certs)?;
            let client = tokio::time::timeout(
                CONNECT_TIMEOUT + RESPONSE_TIMEOUT,
                sentinels.async_get_client(),
            )
            .await
            .map_err(bounded("sentinels"))??;
            Ok(vec![Primary {
                address: address(client.get_connection_info().addr()),
                client,
            }])
        }
    }
}

/// The masters in a `CLUSTER NODES` answer that serve slots: `(host, port)`.
fn cluster_masters(nodes: &str) -> Vec<(String, u16)> {
    let mut masters = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        // A master that serves no slot (a failed one whose replica took over) is left out; one
        // that still serves slots is checked, even if the cluster suspects it (`fail?`).
        if !flags.split(',').any(|f| f == "master") || fields.len() < 9 {
            continue;
        }
        // `ip:port@cport[,hostname]`
        let addr = addr.split(['@', ',']).next().unwrap_or("");
        if let Some((host, port)) = addr.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            masters.push((host.to_owned(), port));
        }
    }
    masters.sort();
    masters
}

fn address(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_masters_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 connected
f6 127.0.0.1:7006@17006 master,fail? - 0 0 6 connected 16000
d4 127.0.0.1:7004@17004 slave a1 0 0 1 connected
e5 127.0.0.1:7005@17005,node5.example master - 0 0 5 connected 10923-16383
";
        assert_eq!(
            cluster_masters(nodes),
            vec![
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7002),
                ("127.0.0.1".to_owned(), 7005),
                ("127.0.0.1".to_owned(), 7006),
            ]
        );
    }

    #[test]
    fn only_an_ok_cluster_serves() {
        assert!(cluster_state_ok("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n").is_ok());
        assert!(cluster_state_ok("cluster_state:fail\r\n").is_err());
        assert!(cluster_state_ok("").is_err());
    }

    #[test]
    fn a_lost_primary_is_looked_up_again() {
        let readonly = RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "READONLY"));
        assert!(primary_lost(&readonly));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(primary_lost(&refused));
        let script = RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "ERR"));
        assert!(
            !primary_lost(&script),
            "a script's own error keeps the connection"
        );
    }
}
