#!/usr/bin/env python3
"""Medians of the benchmark's wrk runs, as Markdown tables (benches/download.sh calls this).

    python3 benches/summarize.py /tmp/docgate-bench/results.tsv

Every row of results.tsv names one wrk run's raw output; the tables give, per configuration, the
median over its repetitions of each number separately, and docgate's ratio to its baseline.
"""

import os
import re
import statistics
import sys
from collections import defaultdict

UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
BASELINE = {"dir": "nginx-sendfile-off", "s3fs": "nginx-proxy", "s3fast": "nginx-proxy",
            "cluster": "docgate-standalone"}
# The ttfb suite measures both modes at 100 KiB: directory mode against nginx from disk; S3 mode
# against the tuned nginx hop (the reference of its throughput and CPU, as for larger objects) and
# against the origin itself (the reference of its time to first byte).
TTFB_BASELINE = {"docgate-dir": ["nginx-sendfile-off"],
                 "docgate-s3fast": ["s3fast-nginx-proxy", "s3fast-origin-direct"]}
# The paced suite runs the ttfb suite's targets (and so has its references) at one paced load.
TTFB_SUITES = ("ttfb", "paced")
SUITE_ORDER = ["dir", "s3fs", "s3fast", "ttfb", "paced", "cluster"]


def baselines(suite, target):
    """The references a docgate target's ratio is taken against (none for a reference)."""
    if not target.startswith("docgate"):
        return [None]
    if suite in TTFB_SUITES:
        return TTFB_BASELINE.get(target, [None])
    return [BASELINE.get(suite)]


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * TIME[m.group(2)] if m else None


def parse(path):
    text = open(path, errors="replace").read()
    out = {"mibs": None, "rps": None, "p50": None, "p99": None, "requests": 0,
           "errors": 0, "timeouts": 0, "non2xx": 0, "reused": 0}
    if m := re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text):
        out["mibs"] = float(m.group(1)) * UNITS[m.group(2)] / 1024**2
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["rps"] = float(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", text, re.M):
        out["p50"] = ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", text, re.M):
        out["p99"] = ms(m.group(1))
    if m := re.search(r"(\d+) requests in", text):
        out["requests"] = int(m.group(1))
    if out["requests"] == 0:
        # No response completed within the run (bytes were still read): no latency to report.
        out["p50"] = out["p99"] = None
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        out["errors"] = sum(int(g) for g in m.groups()[:3])
        out["timeouts"] = int(m.group(4))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        out["non2xx"] = int(m.group(1))
    if m := re.search(r"links: used \d+ of \d+, reused (\d+)", text):
        out["reused"] = int(m.group(1))
    return out


def duration(path):
    m = re.search(r"requests in ([\d.]+)(us|ms|s|m|h)", open(path, errors="replace").read())
    return float(m.group(1)) * TIME[m.group(2)] / 1e3 if m else None


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=".0f"):
    return "–" if v is None else format(v, spec)


def main():
    runs = defaultdict(list)
    for line in open(sys.argv[1]):
        if line.startswith(("#", "suite\t")) or not line.strip():
            continue
        suite, target, size, conns, rep, raw, idle, peak, load = line.rstrip("\n").split("\t")
        r = parse(raw)
        # CPU seconds the serving processes used per GiB transferred (when the run recorded it).
        r["cpu_gib"] = None
        if os.path.exists(raw + ".cpu") and r["mibs"]:
            cpu = float(open(raw + ".cpu").read())
            secs = duration(raw)
            r["cpu_gib"] = cpu / (r["mibs"] * secs / 1024) if secs else None
        # CPU per request (µs) of the serving processes, of Redis and of wrk itself, when recorded:
        # on 2 cores all three share the machine, so a request's cost to it is their sum.
        reqs = r["requests"] or None
        for field, suffix in (("us_serve", ".cpu"), ("us_redis", ".redis-cpu"), ("us_wrk", ".wrk-cpu")):
            r[field] = None
            if reqs and os.path.exists(raw + suffix):
                text = open(raw + suffix).read().strip()
                r[field] = float(text) / reqs * 1e6 if text else None
        # The whole machine's busy CPU per request (µs), and its busy share of all its CPUs.
        r["us_machine"] = r["busy"] = None
        if reqs and os.path.exists(raw + ".machine-cpu"):
            busy, ncpu = open(raw + ".machine-cpu").read().split()
            secs = duration(raw)
            r["us_machine"] = float(busy) / reqs * 1e6
            r["busy"] = float(busy) / (secs * int(ncpu)) * 100 if secs else None
        r["load"] = float(load)
        r["rss_delta"] = (int(peak) - int(idle)) / 1024 if idle.isdigit() and peak.isdigit() else None
        r["rss_idle"] = int(idle) / 1024 if idle.isdigit() else None
        runs[(suite, size, int(conns), target)].append(r)

    suites = sorted({k[0] for k in runs}, key=SUITE_ORDER.index)
    for suite in suites:
        print(f"\n### {suite}\n")
        print("| size | c | target | runs | MiB/s | req/s | p50 ms | p99 ms | ratio | "
              "errors/timeouts/non-2xx/reused (sum) | RSS idle MiB | RSS peak−idle MiB | "
              "CPU s/GiB | CPU µs/request: serving, Redis, wrk | machine CPU µs/request "
              "(busy %) | bound, as measured / wrk as for the reference |")
        print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | "
              "---: | ---: | ---: | ---: |")
        keys = sorted((k for k in runs if k[0] == suite),
                      key=lambda k: (["100k", "1m", "10m"].index(k[1]), k[2], k[3]))
        rows = [(key, base) for key in keys for base in baselines(suite, key[3])]
        for key, base in rows:
            _, size, conns, target = key
            rs = runs[key]
            mibs = med(r["mibs"] for r in rs)
            ratio = bound = bound_wrk = None
            label = target
            if base and sum(1 for k, _ in rows if k == key) > 1:
                label = f"{target} ÷ {base}"
            if base and (suite, size, conns, base) in runs:
                bs = runs[(suite, size, conns, base)]
                b = med(r["mibs"] for r in bs)
                ratio = mibs / b if mibs and b else None
                # The most docgate's ratio could be on this machine if it cost exactly what the
                # reference server costs per request, all else (Redis, wrk, the origin, the
                # kernel) as measured: both sides CPU-bound, throughput goes as 1 / machine CPU.
                m_d, s_d = med(r["us_machine"] for r in rs), med(r["us_serve"] for r in rs)
                m_r, s_r = med(r["us_machine"] for r in bs), med(r["us_serve"] for r in bs)
                if None not in (m_d, s_d, m_r, s_r) and m_d - s_d + s_r > 0:
                    bound = m_r / (m_d - s_d + s_r)
                # The same with wrk's CPU per request taken as the reference's: docgate's pieces
                # can make the load generator's work larger or smaller than the reference's, and
                # this bound leaves that out (what is left is mostly Redis's share).
                w_d, w_r = med(r["us_wrk"] for r in rs), med(r["us_wrk"] for r in bs)
                if None not in (bound, w_d, w_r) and m_d - s_d + s_r - w_d + w_r > 0:
                    bound_wrk = m_r / (m_d - s_d + s_r - w_d + w_r)
            bad = "/".join(str(sum(r[f] for r in rs)) for f in ("errors", "timeouts", "non2xx", "reused"))
            print(f"| {size} | {conns} | {label} | {len(rs)} | {fmt(mibs)} | "
                  f"{fmt(med(r['rps'] for r in rs))} | {fmt(med(r['p50'] for r in rs), '.2f')} | "
                  f"{fmt(med(r['p99'] for r in rs), '.2f')} | {fmt(ratio, '.2f')} | {bad} | "
                  f"{fmt(med(r['rss_idle'] for r in rs), '.1f')} | "
                  f"{fmt(med(r['rss_delta'] for r in rs), '.1f')} | "
                  f"{fmt(med(r['cpu_gib'] for r in rs), '.2f')} | "
                  f"{fmt(med(r['us_serve'] for r in rs))}, {fmt(med(r['us_redis'] for r in rs))}, "
                  f"{fmt(med(r['us_wrk'] for r in rs))} | "
                  f"{fmt(med(r['us_machine'] for r in rs))} ({fmt(med(r['busy'] for r in rs))}) | "
                  f"{fmt(bound, '.2f')} / {fmt(bound_wrk, '.2f')} |")
        print("\n(per run, MiB/s: " + "; ".join(
            f"{k[3]} {k[1]} c={k[2]}: " + ", ".join(fmt(r["mibs"]) for r in runs[k]) for k in keys) + ")")
        with_client(runs, rows)
        if suite == "paced":
            latency(runs, rows)


def compared(runs, rows):
    """Each docgate row with its reference's runs: (size, conns, target, base, its runs, the
    reference's runs)."""
    for key, base in rows:
        suite, size, conns, target = key
        if base and (suite, size, conns, base) in runs:
            yield size, conns, target, base, runs[key], runs[(suite, size, conns, base)]


def table(title, header, lines):
    """A Markdown table under a title line, when it has rows."""
    if lines:
        print(f"\n{title}\n")
        print("| " + " | ".join(header) + " |")
        print("| --- | ---: | --- |" + " ---: |" * (len(header) - 3))
        print("\n".join(lines))


def latency(runs, rows):
    """The paced suite: docgate's latency against its reference's at the same offered load. Both
    sides get about the same requests per second (connections ÷ pause), so the difference in p50
    is what a download's own work adds, not how long it queues behind others on a saturated
    machine (which at a fixed concurrency goes as 1 ÷ throughput)."""
    lines = []
    for size, conns, target, base, rs, bs in compared(runs, rows):
        vals = [med(r[f] for r in xs) for xs in (rs, bs) for f in ("rps", "p50", "p99")]
        if None in vals:
            continue
        rps_d, p50_d, p99_d, rps_r, p50_r, p99_r = vals
        lines.append(f"| {size} | {conns} | {target} ÷ {base} | {rps_d:.0f} / {rps_r:.0f} | "
                     f"{p50_d:.2f} / {p50_r:.2f} ({p50_d - p50_r:+.2f}) | "
                     f"{p99_d:.2f} / {p99_r:.2f} ({p99_d - p99_r:+.2f}) |")
    table("Latency at the same paced load, docgate / its reference (ms; req/s shows the load was "
          "the same)", ["size", "c", "target", "req/s", "p50", "p99"], lines)


def with_client(runs, rows):
    """docgate's CPU per download against its reference's: its own, then with its client's (wrk)
    and its Redis's added. On loopback the kernel runs the delivery of a server's bytes (the
    transmit, the receiver's side of TCP) in whichever process's context it happens to be in when
    the window opens: the server's when it writes to a waiting client, the client's when its ACK
    releases bytes the server queued ahead. The server's own figure therefore moves with which
    side is the faster one; the sum with the client's does not."""
    lines = []
    for size, conns, target, base, rs, bs in compared(runs, rows):
        own_d, own_r = med(r["us_serve"] for r in rs), med(r["us_serve"] for r in bs)
        wrk_d, wrk_r = med(r["us_wrk"] for r in rs), med(r["us_wrk"] for r in bs)
        redis_d = med(r["us_redis"] for r in rs) or 0
        if None in (own_d, own_r, wrk_d, wrk_r) or not own_r:
            continue
        pair = lambda d, r: f"{d:.0f} / {r:.0f} ({d / r:.2f}×)"
        lines.append(f"| {size} | {conns} | {target} ÷ {base} | {pair(own_d, own_r)} | "
                     f"{pair(own_d + wrk_d, own_r + wrk_r)} | "
                     f"{pair(own_d + redis_d + wrk_d, own_r + wrk_r)} |")
    table("CPU µs per download, docgate / its reference: the server alone, with its client (wrk), "
          "and with docgate's Redis too",
          ["size", "c", "target", "serving", "serving + wrk", "serving + Redis + wrk"], lines)


if __name__ == "__main__":
    main()
