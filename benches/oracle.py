#!/usr/bin/env python3
"""Timing oracle benchmark: does a link request take longer when its address is mailed?

A request for an address over its budget answers the same 202 as a mailed one; this measures
whether the response *time* tells them apart. For each mode it starts docgate (the binary in
DOCGATE_BIN, default target/release/docgate) on loopback, then sends N pairs of requests on one
keep-alive connection, each pair in random order: one for a fresh address (mailed: minted in the
store, the object's size looked up, the mail written or sent) and one for an address over its
budget (`DOCGATE_LIMIT_REQUEST_PER_EMAIL=1/h`, asked once before). It checks that every answer is
202 with the same body, and prints p50/p90/p99 of each side, their differences and the
two-sample Kolmogorov-Smirnov distance D (0: the same distribution; 1: always told apart) with
its 5 % critical value (a D below it: these samples cannot tell the two apart at that level).

Modes (arguments; default "embedded redis"):
  embedded  in-process store and limiter, file outbox
  redis     store and limiter in a redis-server started here (port from the OS), file outbox
  smtp      embedded store, mail sent directly over SMTP to tests/smtp_sink.py (aiosmtpd),
            which waits BENCH_SMTP_DELAY seconds (0.05) before accepting each recipient

Settings (environment): BENCH_N (500 pairs), BENCH_WARMUP (30 mailed requests first),
BENCH_WORK (/tmp/docgate-oracle), DOCGATE_BIN.

Everything listens on 127.0.0.1 and every process started is stopped on exit.
"""

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "oracle-benchmark-secret-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path, deadline_s=30):
    for _ in range(int(deadline_s * 10)):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"nothing answered on port {port}")


def wait_tcp(port, deadline_s=15):
    for _ in range(int(deadline_s * 10)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on port {port}")


def percentile(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ks_distance(a, b):
    """The largest gap between the two empirical distribution functions."""
    a, b = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        x = min(a[i], b[j])
        while i < len(a) and a[i] <= x:
            i += 1
        while j < len(b) and b[j] <= x:
            j += 1
        d = max(d, abs(i / len(a) - j / len(b)))
    return d


def ask(conn, email):
    body = json.dumps({"email": email, "document": "resume"})
    started = time.perf_counter()
    conn.request("POST", "/api/download-requests", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    return response.status, data, elapsed


def run(mode, binary, work, n, warmup):
    base = os.path.join(work, mode)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.join(base, "documents"))
    with open(os.path.join(base, "documents", "resume.pdf"), "wb") as f:
        f.write(os.urandom(100 * 1024))
    with open(os.path.join(base, "catalog.toml"), "w") as f:
        f.write('[documents.resume]\nkey = "resume.pdf"\nfilename = "resume.pdf"\ntitle = "A resume"\n')
    port, admin = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DOCGATE_LISTEN": f"127.0.0.1:{port}",
        "DOCGATE_ADMIN_LISTEN": f"127.0.0.1:{admin}",
        "DOCGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DOCGATE_TOKEN_SECRET": SECRET,
        "DOCGATE_PSEUDONYM_KEY": "oracle-benchmark-pseudonyms-0123456789",
        "DOCGATE_CATALOG": os.path.join(base, "catalog.toml"),
        "DOCGATE_DOCUMENTS_DIR": os.path.join(base, "documents"),
        "DOCGATE_OUTBOX_DIR": os.path.join(base, "outbox"),
        "DOCGATE_REQUEST_LOG": os.path.join(base, "requests.jsonl"),
        "DOCGATE_LIMIT_REQUEST_PER_IP": "1000000/s",
        "DOCGATE_LIMIT_REQUEST_PER_EMAIL": "1/h",
        "DOCGATE_LIMIT_REQUEST_PER_DOMAIN": "1000000/s",
        "DOCGATE_LIMIT_MAIL": "1000000/s",
        "DOCGATE_LOG": "warn",
    }
    helpers = []
    if mode == "redis":
        redis_port = free_port()
        helpers.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", base],
            stdout=subprocess.DEVNULL))
        wait_tcp(redis_port)
        env["DOCGATE_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}"
    elif mode == "smtp":
        smtp_port = free_port()
        sink = os.path.join(base, "smtp")
        os.makedirs(os.path.join(sink, "mail"))
        delay = os.environ.get("BENCH_SMTP_DELAY", "0.05")
        with open(os.path.join(sink, "control"), "w") as f:
            f.write(f"delay {delay}\n")
        helpers.append(subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "tests", "smtp_sink.py"), str(smtp_port), sink],
            stdout=subprocess.DEVNULL))
        wait_tcp(smtp_port)
        env["DOCGATE_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}?tls=none"
    elif mode != "embedded":
        sys.exit(f"unknown mode {mode}")
    log = open(os.path.join(base, "docgate.log"), "w")
    docgate = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)
    try:
        wait_http(port, "/healthz")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        tag = f"{int(time.time())}"
        bodies = set()
        for i in range(warmup):
            status, body, _ = ask(conn, f"warm{i}-{tag}@example.org")
            assert status == 202, (status, body)
            bodies.add(body)
        over = f"over-{tag}@example.net"
        status, body, _ = ask(conn, over)  # spends its budget: every later request is over it
        assert status == 202, (status, body)
        mailed, unmailed = [], []
        for i in range(n):
            pair = [("mailed", f"m{i}-{tag}@example.org"), ("unmailed", over)]
            random.shuffle(pair)
            for side, email in pair:
                status, body, elapsed = ask(conn, email)
                assert status == 202, (status, body)
                bodies.add(body)
                (mailed if side == "mailed" else unmailed).append(elapsed * 1000)
        assert len(bodies) == 1, bodies
        return mailed, unmailed
    finally:
        docgate.terminate()
        docgate.wait(timeout=30)
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=10)


def main():
    modes = sys.argv[1:] or ["embedded", "redis"]
    binary = os.environ.get("DOCGATE_BIN", os.path.join(ROOT, "target", "release", "docgate"))
    if not os.path.exists(binary):
        sys.exit(f"{binary} does not exist: cargo build --release, or set DOCGATE_BIN")
    work = os.environ.get("BENCH_WORK", "/tmp/docgate-oracle")
    n = int(os.environ.get("BENCH_N", "500"))
    warmup = int(os.environ.get("BENCH_WARMUP", "30"))
    print(f"binary {binary}, {n} pairs per mode, {warmup} warm-up requests, times in ms")
    print()
    print("| mode | mailed p50 / p90 / p99 | over budget p50 / p90 / p99 | Δ p50 | Δ p90 | KS D (5 % critical) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for mode in modes:
        mailed, unmailed = run(mode, binary, work, n, warmup)
        m = [percentile(mailed, p) for p in (50, 90, 99)]
        u = [percentile(unmailed, p) for p in (50, 90, 99)]
        print(
            f"| {mode} | {m[0]:.2f} / {m[1]:.2f} / {m[2]:.2f} | {u[0]:.2f} / {u[1]:.2f} / {u[2]:.2f} "
            f"| {m[0] - u[0]:+.2f} | {m[1] - u[1]:+.2f} | {ks_distance(mailed, unmailed):.3f} "
            f"({1.36 * (2 / n) ** 0.5:.3f}) |",
            flush=True,
        )


if __name__ == "__main__":
    main()
