//! A real Redis Cluster per test: 3 masters, optionally a replica each.

use std::process::{Command, Stdio};

use super::*;
use crate::support::process::{ChildProcess, free_port};

/// A real Redis Cluster for one test: 3 masters (`redis-server --cluster-enabled yes`), and with
/// `replicas` one replica each, joined by `redis-cli --cluster create`; ready once every node
/// says `cluster_state:ok`. Killed on drop.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// 3 masters and no replicas: the smallest cluster.
    pub fn start() -> Self {
        Self::with_replicas(false)
    }

    /// 3 masters, and a replica of each with `replicas`.
    pub fn with_replicas(replicas: bool) -> Self {
        let count = if replicas { 6 } else { 3 };
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                // The cluster bus port of its own (the default, port + 10000, may be past 65535).
                let bus = free_port().to_string();
                RedisServer::with_args(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-config-file",
                    &format!("nodes-{bus}.conf"),
                ])
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", if replicas { "1" } else { "0" }])
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = ChildProcess::spawn(&mut create, HINT);
        let mut status = None;
        wait_until("redis-cli --cluster create to finish", FORM, || {
            status = process.exited();
            status.is_some()
        });
        assert!(
            status.is_some_and(|s| s.success()),
            "redis-cli --cluster create: {status:?}"
        );
        let cluster = Self { nodes };
        wait_until("every node's cluster_state:ok", FORM, || {
            cluster
                .nodes
                .iter()
                .all(|n| cluster_info(n.port).contains("cluster_state:ok"))
        });
        if replicas {
            wait_until("every replica in sync", FORM, || {
                cluster.nodes.iter().all(|n| {
                    let replication = info(n.port, "replication");
                    replication.contains("role:master")
                        || replication.contains("master_link_status:up")
                })
            });
        }
        cluster
    }

    /// Waits (bounded) until 3 running nodes are masters and every running node says
    /// `cluster_state:ok`: after a master is lost, its replica has taken over; after a restart,
    /// the nodes have met again.
    pub fn wait_until_serving(&self) {
        wait_until("a replica promoted and cluster_state:ok", FORM, || {
            let running = || self.nodes.iter().filter(|n| n.daemon.running());
            running()
                .filter(|n| info(n.port, "replication").contains("role:master"))
                .count()
                == 3
                && running().all(|n| cluster_info(n.port).contains("cluster_state:ok"))
        });
    }

    /// The index in `nodes` of the replica of the master on `port`.
    pub fn replica_of(&self, port: u16) -> usize {
        let master = format!("master_port:{port}\r\n");
        self.nodes
            .iter()
            .position(|n| info(n.port, "replication").contains(&master))
            .expect("the master has a replica")
    }

    /// Waits (bounded) until every running node says `cluster_state:<state>`.
    pub fn wait_for_state(&self, state: &str) {
        let line = format!("cluster_state:{state}");
        wait_until(&line, FORM, || {
            self.nodes
                .iter()
                .filter(|n| n.daemon.running())
                .all(|n| cluster_info(n.port).contains(&line))
        });
    }

    /// The seed nodes docgate is given: every node.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ports of the nodes that are masters now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| info(n.port, "replication").contains("role:master"))
            .map(|n| n.port)
            .collect()
    }

    /// A cluster client (follows `MOVED`), for test setup and inspection.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let conn = redis::cluster::ClusterClient::new(
            self.nodes.iter().map(RedisServer::url).collect::<Vec<_>>(),
        )
        .unwrap()
        .get_connection()
        .unwrap();
        // As for one node's (`node`): a cluster that stopped answering fails the test.
        conn.set_read_timeout(Some(SETUP)).unwrap();
        conn.set_write_timeout(Some(SETUP)).unwrap();
        conn
    }
}

fn cluster_info(port: u16) -> String {
    ask(port, redis::cmd("CLUSTER").arg("INFO")).unwrap_or_default()
}

impl SharedRedis for RedisCluster {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("DOCGATE_REDIS_CLUSTER_URLS", self.urls())]
    }
}
