//! Overload stays graceful, over real sockets: the admin listener's liveness probe is answered at
//! once while every worker of the serving runtime is busy, and fails once that runtime has stopped
//! running tasks. (Throughput, memory and refusals at a thousand downloads are measured by
//! `benches/overload.sh`.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use docgate::http::health::STALLED_AFTER;
use tokio::task::JoinHandle;

use crate::support::TestApp;

/// `GET path` on `addr` over a fresh connection, as a kubelet probes, with blocking I/O (the
/// test's runtime is what is kept busy): the whole answer, and how long it took.
fn probe(addr: SocketAddr, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    (answer, started.elapsed())
}

/// Keeps `workers` workers of the test's runtime (the one docgate serves on) busy for `how_long`
/// each, as downloads to fast readers keep them, only without a break; returns once all are.
async fn occupy_workers(workers: usize, how_long: Duration) -> Vec<JoinHandle<()>> {
    let busy = Arc::new(AtomicUsize::new(0));
    let handles = (0..workers)
        .map(|_| {
            let busy = busy.clone();
            tokio::spawn(async move {
                busy.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(how_long);
            })
        })
        .collect();
    for _ in 0..500 {
        if busy.load(Ordering::SeqCst) == workers {
            return handles;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the workers never all took the work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_answers_while_the_serving_workers_are_busy_and_fails_once_they_stop() {
    let app = TestApp::start().await;
    let admin: SocketAddr = app
        .admin_base
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let (answer, _) = probe(admin, "/healthz");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let stopped_for = STALLED_AFTER + Duration::from_secs(2);
    let started = Instant::now();
    let workers = occupy_workers(2, stopped_for).await;

    // Busy: the probe does not wait for a worker.
    let (answer, took) = probe(admin, "/healthz");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
    assert!(
        took < Duration::from_secs(2),
        "answered after {took:?}: it waited for the busy workers"
    );
    // /readyz asks the backends, on the serving runtime: it waits (not asserted), /healthz not.

    // Stopped for longer than the heartbeat allows: the probe fails, still at once.
    std::thread::sleep((STALLED_AFTER + Duration::from_secs(1)).saturating_sub(started.elapsed()));
    let (answer, took) = probe(admin, "/healthz");
    assert!(
        started.elapsed() < stopped_for,
        "the machine was too slow to probe while the workers were still stopped"
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"stalled"}"#), "{answer}");
    assert!(answer.contains("cache-control: no-store"), "{answer}");
    assert!(took < Duration::from_secs(1), "answered after {took:?}");

    // Running again: alive again.
    for worker in workers {
        worker.await.unwrap();
    }
    let mut alive = false;
    for _ in 0..50 {
        let (answer, _) = probe(admin, "/healthz");
        if answer.starts_with("HTTP/1.1 200") {
            alive = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(alive, "the probe kept failing after the runtime ran again");
}
