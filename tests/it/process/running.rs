//! The binary at work: memory while streaming a big file, draining in-flight downloads on SIGTERM,
//! and fifty clients racing across two processes on one Redis.

use super::*;

#[tokio::test]
async fn memory_stays_bounded_while_streaming_a_big_file() {
    const HUGE_LEN: usize = 200 * MIB;
    const BOUND_KIB: u64 = 32 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let written = Instant::now();
    let expected = write_document(&root.join("documents/huge.bin"), HUGE_LEN, 7);
    eprintln!("wrote 200 MiB in {:?}", written.elapsed());
    add_to_catalog(root, "huge", "huge.bin");
    let server = Server::start(root, &serve_env(root)).await;
    let pid = server.process.pid();

    let live = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let _ = live.bytes().await;
    let before = memory(pid);

    let (_, url) = server.link("reader@example.org", "huge").await;
    let response = server.get(&url).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.content_length(),
        Some(HUGE_LEN as u64),
        "Content-Length"
    );
    let started = Instant::now();
    let mut stream = response.bytes_stream();
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    let mut next_sample = 0usize;
    let mut max_rss_kib = before.rss_kib;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.unwrap_or_else(|e| panic!("the download broke after {received} bytes: {e}"));
        received += chunk.len();
        hasher.update(&chunk);
        if received >= next_sample {
            max_rss_kib = max_rss_kib.max(memory(pid).rss_kib);
            next_sample += 8 * MIB;
        }
    }
    let elapsed = started.elapsed();
    let after = memory(pid);
    eprintln!(
        "docgate memory: before VmHWM {} KiB VmRSS {} KiB; after VmHWM {} KiB VmRSS {} KiB; \
         max sampled VmRSS {} KiB; VmHWM growth {} KiB; 200 MiB streamed in {:?} ({:.0} MiB/s)",
        before.hwm_kib,
        before.rss_kib,
        after.hwm_kib,
        after.rss_kib,
        max_rss_kib,
        after.hwm_kib.saturating_sub(before.hwm_kib),
        elapsed,
        HUGE_LEN as f64 / MIB as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(received, HUGE_LEN);
    assert_eq!(format!("{:x}", hasher.finalize()), expected);
    assert!(
        after.hwm_kib.saturating_sub(before.hwm_kib) < BOUND_KIB,
        "VmHWM grew from {} KiB to {} KiB while streaming 200 MiB",
        before.hwm_kib,
        after.hwm_kib
    );
}

/// Waits (bounded) until connecting to `addr` is refused; returns how long that took.
///
/// While the listening socket closes, a connection may still be reset (it sat in the accept
/// queue) or its SYN dropped (retransmitted only after a second): both are retried with a fresh
/// socket, so the first attempt after the close is the one that sees the refusal.
async fn wait_until_refused(addr: SocketAddr, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let attempt = tokio::net::TcpStream::connect(addr);
        match tokio::time::timeout(Duration::from_millis(200), attempt).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return started.elapsed();
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(Err(e)) => panic!("connecting to {addr} failed otherwise than refused: {e}"),
            Ok(Ok(stream)) => drop(stream),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < within,
            "{addr} still accepts connections {within:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Two workers: the download and the connection probes each get one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_then_refuses_connections_and_drains_the_download() {
    const LEN: usize = 200 * MIB;
    /// Reading pace: the download takes about 2.5 s.
    const BYTES_PER_SEC: f64 = 80.0 * MIB as f64;
    const DELAY: Duration = Duration::from_millis(1000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_fixtures(root);
    let expected = write_document(&root.join("documents/drain.bin"), LEN, 11);
    add_to_catalog(root, "drain", "drain.bin");
    let mut env = serve_env(root);
    env.insert("DOCGATE_DRAIN_TIMEOUT".to_owned(), "20s".to_owned());
    env.insert("DOCGATE_SHUTDOWN_DELAY".to_owned(), "1s".to_owned());
    let mut server = Server::start(root, &env).await;
    let (_, url) = server.link("patient@example.org", "drain").await;
    let readyz = format!("http://{}/readyz", server.addr);
    assert_eq!(server.get(&readyz).await.status(), 200);

    let (first_bytes, arrived) = tokio::sync::oneshot::channel::<()>();
    let client = server.client.clone();
    let download = tokio::spawn(async move {
        let response = client.get(&url).send().await.map_err(|e| e.to_string())?;
        if response.status() != 200 {
            return Err(format!("status {}", response.status()));
        }
        let started = Instant::now();
        let mut first_bytes = Some(first_bytes);
        let mut stream = response.bytes_stream();
        let mut hasher = Sha256::new();
        let mut received = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("cut off after {received} bytes: {e}"))?;
            received += chunk.len();
            hasher.update(&chunk);
            if let Some(tx) = first_bytes.take() {
                let _ = tx.send(());
            }
            let due = Duration::from_secs_f64(received as f64 / BYTES_PER_SEC);
            match due.checked_sub(started.elapsed()) {
                Some(wait) => tokio::time::sleep(wait).await,
                // Hashing is slow in debug builds: let the probes run between chunks.
                None => tokio::task::yield_now().await,
            }
        }
        Ok::<_, String>((
            received,
            format!("{:x}", hasher.finalize()),
            started.elapsed(),
        ))
    });

    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("the first bytes arrive within 10 s")
        .expect("the download task is alive");
    let terminated = Instant::now();
    server.process.terminate();

    // Readiness turns 503 at once, on a new connection: the listener still accepts.
    let draining = support::eventually(
        "readiness to turn 503 after SIGTERM",
        Duration::from_secs(2),
        || async {
            let response = server.get(&readyz).await;
            if response.status() == 503 {
                Some(response.json::<serde_json::Value>().await.unwrap())
            } else {
                None
            }
        },
    )
    .await;
    assert_eq!(draining["status"], "draining");
    assert!(terminated.elapsed() < DELAY, "readiness turned too late");

    // After the delay, new connections are refused; the download is still in flight.
    wait_until_refused(server.addr, Duration::from_secs(5)).await;
    let refused_after = terminated.elapsed();
    eprintln!("new connections refused {refused_after:?} after SIGTERM");
    assert!(
        refused_after >= DELAY,
        "refused before the delay: {refused_after:?}"
    );
    assert!(
        !download.is_finished(),
        "the download should still be in flight when the listener closes"
    );

    let (received, hash, took) = tokio::time::timeout(Duration::from_secs(30), download)
        .await
        .expect("the download finishes within 30 s")
        .expect("the download task did not panic")
        .unwrap_or_else(|e| panic!("the in-flight download failed: {e}"));
    eprintln!("the in-flight download took {took:?}");
    assert_eq!(received, LEN);
    assert_eq!(hash, expected);

    let status = server.process.exit(EXIT).await;
    let log = strip_ansi(&server.process.stderr.text());
    assert_eq!(status.code(), Some(0), "exit {status}; stderr:\n{log}");
    assert!(
        !log.contains("drain timeout reached"),
        "the drain timed out:\n{log}"
    );
}

/// Two docgate processes sharing one Redis: 50 clients race for one link, split across both, and
/// exactly one of them gets the whole document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_racing_across_two_processes_get_one_download() {
    let redis = crate::support::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    support::write_fixtures(dir.path());
    let mut env = serve_env(dir.path());
    env.insert("DOCGATE_REDIS_URL".to_owned(), redis.url());
    let first = Server::start(dir.path(), &env).await;
    let second = Server::start(dir.path(), &env).await;

    let (_, link) = first.link("racer@example.org", "big").await;
    let token = support::token_of(&link).to_owned();
    let urls = [
        format!("{}/d/{token}", first.base),
        format!("{}/d/{token}", second.base),
    ];
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let url = urls[i % 2].clone();
            tokio::spawn(async move {
                let response = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .unwrap()
                    .get(&url)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let mut hasher = Sha256::new();
                let mut len = 0usize;
                let mut stream = response.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.unwrap();
                    len += chunk.len();
                    hasher.update(&chunk);
                }
                (status, len, format!("{:x}", hasher.finalize()))
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let winners: Vec<_> = results.iter().filter(|(s, _, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "{:?}", statuses(&results));
    assert_eq!(winners[0].1, support::BIG_LEN);
    assert_eq!(
        winners[0].2,
        support::sha256(&support::content(3, support::BIG_LEN))
    );
    assert!(
        results.iter().all(|(s, _, _)| matches!(s, 200 | 409 | 410)),
        "{:?}",
        statuses(&results)
    );
}

fn statuses(results: &[(u16, usize, String)]) -> Vec<u16> {
    results.iter().map(|(s, _, _)| *s).collect()
}

/// Each thread of process `pid`: its name and its time slice in nanoseconds (`se.slice` in
/// `/proc/<pid>/task/<tid>/sched`).
fn thread_slices(pid: u32) -> Vec<(String, u64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap();
        let sched = std::fs::read_to_string(task.join("sched")).unwrap();
        let slice = sched
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "se.slice").then(|| value.trim().parse::<u64>().ok())?
            })
            .expect("se.slice in the thread's sched (Linux 6.6 and later)");
        threads.push((name.trim().to_owned(), slice));
    }
    threads
}

#[tokio::test]
async fn the_admin_listeners_thread_alone_runs_with_short_slices() {
    use docgate::sched::{SHORT_SLICE_NS, Slice, prefer_short_slices};
    // What this kernel does with the request, tried on a thread of the test's own.
    let kernel = std::thread::spawn(prefer_short_slices).join().unwrap();
    assert!(
        matches!(kernel, Slice::Short | Slice::Unsupported),
        "{kernel:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    support::write_fixtures(dir.path());
    let server = Server::start(dir.path(), &serve_env(dir.path())).await;
    let threads = thread_slices(server.process.pid());

    let admin: Vec<u64> = threads
        .iter()
        .filter(|(name, _)| name == "docgate-admin")
        .map(|(_, slice)| *slice)
        .collect();
    assert_eq!(admin.len(), 1, "one admin thread: {threads:?}");
    let others: Vec<&(String, u64)> = threads
        .iter()
        .filter(|(name, _)| name != "docgate-admin")
        .collect();
    assert!(others.len() >= 2, "the serving workers: {threads:?}");
    assert!(
        others.iter().all(|(_, slice)| *slice != SHORT_SLICE_NS),
        "only the admin thread asks for a short slice: {threads:?}"
    );
    if kernel == Slice::Short {
        assert_eq!(admin[0], SHORT_SLICE_NS, "{threads:?}");
    } else {
        eprintln!("this kernel keeps no per-thread slices (before 6.12): nothing to see");
    }
}
