#!/usr/bin/env python3
"""The overload benchmark's helpers (benches/overload.sh calls them).

    python3 benches/overload.py probe --port 18281 --interval 0.1 --out probe.tsv --max-seconds 300
    python3 benches/overload.py summary /tmp/docgate-overload/results.tsv

probe: `GET /healthz` on the admin listener every INTERVAL seconds, each over a fresh TCP
connection (as a kubelet probes), until SIGTERM or --max-seconds; with --control-port, the same
probe of the control server right after each (the machine's own latency under the same load).
One line per probe in OUT: the latency in milliseconds (connect to the last byte of the answer,
`Connection: close`), `ok` or `fail:<reason>` (no answer within 5 s, refused, not a 200), the
Unix time it began, and which server it asked (`docgate` or `control`).

summary: one Markdown table per run of results.tsv: throughput and latency (wrk), every response
by status (docgate's `docgate_http_responses_total` after the run) against wrk's own count of
non-2xx answers, wrk's socket errors by class, how downloads ended, peak RSS above the RSS before
the run and per concurrent stream, docgate's CPU, the admin `/healthz` latencies beside the
control's, and the share of the machine's time its hypervisor took (steal).
"""

import argparse
import re
import signal
import socket
import statistics
import sys
import time

UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
NSTAT = ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpEstabResets", "TcpOutRsts")


def probe_once(host, port):
    """(milliseconds, outcome) of one probe over a fresh connection."""
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(REQUEST)
            answer = b""
            while len(answer) < 65536:
                piece = conn.recv(4096)
                if not piece:
                    break
                answer += piece
    except OSError as e:
        return (time.perf_counter() - started) * 1e3, f"fail:{type(e).__name__}"
    ms = (time.perf_counter() - started) * 1e3
    return ms, "ok" if answer.startswith(b"HTTP/1.1 200") else "fail:status"


def probe(args):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    deadline = time.monotonic() + args.max_seconds
    with open(args.out, "w") as out:
        next_at = time.monotonic()
        targets = [("docgate", args.port)]
        if args.control_port:
            targets.append(("control", args.control_port))
        while not stop and time.monotonic() < deadline:
            for name, port in targets:
                began = time.time()
                ms, outcome = probe_once(args.host, port)
                out.write(f"{ms:.3f}\t{outcome}\t{began:.3f}\t{name}\n")
            out.flush()
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def wrk_numbers(path):
    text = open(path, errors="replace").read()
    out = {"mibs": None, "rps": None, "p50": None, "p99": None, "requests": 0,
           "connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0, "used": None,
           "reused": 0}
    if m := re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text):
        out["mibs"] = float(m.group(1)) * UNITS[m.group(2)] / 1024**2
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["rps"] = float(m.group(1))
    for q in ("50", "99"):
        if m := re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m|h)", text, re.M):
            out["p" + q] = float(m.group(1)) * TIME[m.group(2)]
    if m := re.search(r"(\d+) requests in", text):
        out["requests"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        for key, value in zip(("connect", "read", "write", "timeout"), m.groups()):
            out[key] = int(value)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        out["non2xx"] = int(m.group(1))
    if m := re.search(r"links: used (\d+) of \d+, reused (\d+)", text):
        out["used"], out["reused"] = int(m.group(1)), int(m.group(2))
    return out


def metrics(path):
    """Responses by status (download route) and downloads by outcome, from the exposition."""
    statuses, outcomes = {}, {}
    for line in open(path, errors="replace"):
        if m := re.match(r'docgate_http_responses_total\{route="download",status="(\d+)"\} (\S+)',
                         line):
            statuses[int(m.group(1))] = int(float(m.group(2)))
        elif m := re.match(r'docgate_downloads_total\{outcome="(\w+)"\} (\S+)', line):
            outcomes[m.group(1)] = int(float(m.group(2)))
    return statuses, outcomes


def nstat(path):
    values = {}
    for line in open(path, errors="replace"):
        fields = line.split()
        if len(fields) >= 2 and fields[0] in NSTAT:
            values[fields[0]] = int(fields[1])
    return values


def probes(path, target="docgate"):
    """(latencies of the answered probes, count of failed ones) of one server in a probe file."""
    latencies, failed = [], 0
    for line in open(path, errors="replace"):
        fields = line.rstrip("\n").split("\t")
        ms, outcome = fields[:2]
        if (fields[3] if len(fields) > 3 else "docgate") != target:
            continue
        if outcome == "ok":
            latencies.append(float(ms))
        else:
            failed += 1
    return latencies, failed


def pct(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def fmt(v, spec=".0f"):
    return "–" if v is None else format(v, spec)


def summary(args):
    rows = []
    for line in open(args.results):
        if line.startswith(("#", "mode\t")) or not line.strip():
            continue
        (mode, size, conns, rep, raw, probe_file, metrics_file, rss_before, hwm_idle, hwm_peak,
         cpu, streams, load) = line.rstrip("\n").split("\t")
        rows.append(dict(mode=mode, size=size, conns=int(conns), rep=rep, raw=raw,
                         probe=probe_file, metrics=metrics_file, rss_before=int(rss_before),
                         hwm_idle=int(hwm_idle), hwm_peak=int(hwm_peak), cpu=float(cpu),
                         streams=int(streams), load=load))

    print("\n### Throughput, answers and failures\n")
    print("| mode | size | c | MiB/s | req/s | p50 / p99 ms | answers by status (docgate) | "
          "wrk: non-2xx | wrk socket errors connect/read/write | wrk late (> --timeout) | "
          "downloads ended: completed/interrupted/failed | links used | load |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | --- | ---: | ---: |")
    for r in rows:
        w = wrk_numbers(r["raw"])
        statuses, outcomes = metrics(r["metrics"])
        by_status = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())) or "–"
        ended = "/".join(str(outcomes.get(k, 0)) for k in ("completed", "interrupted", "failed"))
        print(f"| {r['mode']} | {r['size']} | {r['conns']} | {fmt(w['mibs'])} | "
              f"{fmt(w['rps'])} | {fmt(w['p50'])} / {fmt(w['p99'])} | {by_status} | "
              f"{w['non2xx']} | {w['connect']}/{w['read']}/{w['write']} | {w['timeout']} | "
              f"{ended} | {fmt(w['used'], 'd')} | {r['load']} |")

    print("\n### Memory, CPU and the admin `/healthz`\n")
    print("| mode | size | c | RSS before MiB | peak − before MiB | streams at once (max seen) | "
          "KiB per stream | CPU s | CPU s/GiB | probes | p50 / p99 / max ms | over 10 ms | "
          "failed | control: p50 / p99 / max ms | control over 10 ms | steal | "
          "kernel: listen overflows, resets sent |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: "
          "| --- | ---: | ---: | --- |")
    for r in rows:
        w = wrk_numbers(r["raw"])
        above = (r["hwm_peak"] - r["rss_before"]) / 1024
        per_stream = above * 1024 / r["streams"] if r["streams"] else None
        secs = duration(r["raw"])
        gib = w["mibs"] * secs / 1024 if w["mibs"] and secs else None
        latencies, failed = probes(r["probe"])
        control, control_failed = probes(r["probe"], "control")
        before, after = nstat(r["raw"] + ".nstat-before"), nstat(r["raw"] + ".nstat-after")
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in NSTAT}
        print(f"| {r['mode']} | {r['size']} | {r['conns']} | {r['rss_before'] / 1024:.1f} | "
              f"{above:.1f} | {r['streams']} | {fmt(per_stream)} | {r['cpu']:.1f} | "
              f"{fmt(r['cpu'] / gib if gib else None, '.2f')} | {len(latencies) + failed} | "
              f"{spread(latencies)} | {over_10ms(latencies)} | {failed} | "
              f"{spread(control) if control else '–'} | "
              f"{over_10ms(control) if control else '–'}"
              f"{f' (failed {control_failed})' if control_failed else ''} | "
              f"{fmt(steal(r['raw']), '.1%')} | "
              f"{delta['TcpExtListenOverflows']}, {delta['TcpOutRsts']} |")


def spread(latencies):
    """p50 / p99 / max of probe latencies, in ms."""
    return (f"{fmt(statistics.median(latencies) if latencies else None, '.1f')} / "
            f"{fmt(pct(latencies, 99), '.1f')} / {fmt(max(latencies, default=None), '.1f')}")


def over_10ms(latencies):
    return sum(1 for v in latencies if v > 10.0)


def steal(raw):
    """The share of the machine's CPU time its hypervisor took during the run (/proc/stat)."""
    try:
        before, after = (open(f"{raw}.stat-{when}").read().split()[1:] for when in ("before", "after"))
    except OSError:
        return None
    delta = [int(a) - int(b) for a, b in zip(after, before)]
    # user nice system idle iowait irq softirq steal guest guest_nice: guest time is in user.
    total = sum(delta[:8])
    return delta[7] / total if total and len(delta) > 7 else None


def duration(path):
    m = re.search(r"requests in ([\d.]+)(us|ms|s|m|h)", open(path, errors="replace").read())
    return float(m.group(1)) * TIME[m.group(2)] / 1e3 if m else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--control-port", type=int)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--out", required=True)
    p.add_argument("--max-seconds", type=float, default=600)
    s = sub.add_parser("summary")
    s.add_argument("results")
    args = parser.parse_args()
    {"probe": probe, "summary": summary}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
