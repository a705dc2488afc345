#!/usr/bin/env python3
"""Redis counters around a wrk run, for the `cluster` suite of benches/download.sh.

    python3 benches/redis_stats.py snapshot PORT... > before.json   # every master of a topology
    python3 benches/redis_stats.py summary /tmp/docgate-bench/results.tsv

`snapshot` records, per Redis (by port on 127.0.0.1), the `calls` of every `INFO commandstats`
line and the CPU seconds of `INFO cpu` (`used_cpu_sys` + `used_cpu_user`). `summary` reads the
`cluster` rows of results.tsv, each with `<raw>.redis-before.json` and `<raw>.redis-after.json`
beside its wrk output, and prints per topology and size the medians over the repetitions of:
downloads per second (2xx responses ÷ wrk's duration), Redis commands per download (the deltas
summed over every master: `EVALSHA`, `EVAL`, `FCALL`, and all calls, those run inside Lua scripts
included, less the `INFO` of the snapshots), each master's CPU fraction (CPU seconds ÷ wrk's
duration) and the downloads per second one master would carry at a full core: downloads/s ÷ the
busiest master's CPU fraction (and ÷ the mean master's). On a cluster it also splits the busiest
master's load: the keys every download shares a slot with (one slot of the request log, the
per-IP rate limit of wrk's one address) cost the busiest master's fraction less the others'
median, which caps the cluster at downloads/s ÷ that, however many masters it has; the links'
own keys cost each other master its fraction for a third of the downloads, so one master carries
(downloads/s ÷ masters) ÷ its fraction of them. Below the table, the commands per download, all
masters summed, and each master's share of the calls.
"""

import json
import re
import statistics
import subprocess
import sys
from collections import defaultdict

# Commands the measurement itself sends (the snapshots' INFO), not docgate.
OURS = {"info"}
TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def info(port: str, section: str) -> str:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", port, "info", section],
                          capture_output=True, check=True, text=True).stdout


def snapshot(ports):
    out = {}
    for port in ports:
        calls = {}
        for line in info(port, "commandstats").splitlines():
            if m := re.match(r"cmdstat_([^:]+):calls=(\d+)", line.strip()):
                calls[m.group(1)] = int(m.group(2))
        cpu = 0.0
        for line in info(port, "cpu").splitlines():
            name, _, value = line.strip().partition(":")
            if name in ("used_cpu_sys", "used_cpu_user"):
                cpu += float(value)
        out[port] = {"calls": calls, "cpu": cpu}
    json.dump(out, sys.stdout)
    print()


def wrk(path):
    text = open(path, errors="replace").read()
    requests = int(m.group(1)) if (m := re.search(r"(\d+) requests in", text)) else 0
    secs = None
    if m := re.search(r"requests in ([\d.]+)(us|ms|s|m|h)", text):
        secs = float(m.group(1)) * TIME[m.group(2)]
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors = sum(int(g) for g in m.groups())
    mibs = None
    if m := re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text):
        units = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
        mibs = float(m.group(1)) * units[m.group(2)] / 1024**2
    return requests - non2xx, secs, non2xx + errors, mibs


def one_run(raw):
    ok, secs, bad, mibs = wrk(raw)
    before = json.load(open(raw + ".redis-before.json"))
    after = json.load(open(raw + ".redis-after.json"))
    if not ok or not secs:
        return None
    calls = defaultdict(int)
    cpu = {}
    per_master = {}
    for port, a in after.items():
        b = before.get(port, {"calls": {}, "cpu": 0.0})
        per_master[port] = 0
        for name, n in a["calls"].items():
            if name not in OURS:
                calls[name] += n - b["calls"].get(name, 0)
                per_master[port] += n - b["calls"].get(name, 0)
        cpu[port] = (a["cpu"] - b["cpu"]) / secs
    fractions = sorted(cpu.values(), reverse=True)
    busiest = fractions[0]
    mean = statistics.mean(fractions)
    shared = links_only = None
    if len(fractions) > 1:
        others = statistics.median(fractions[1:])
        shared = ok / secs / (busiest - others) if busiest > others else None
        links_only = ok / secs / len(fractions) / others if others > 0 else None
    total = sum(per_master.values()) or 1
    return {
        "shared": shared,
        "links_only": links_only,
        "commands": {name: n / ok for name, n in calls.items()},
        "shares": sorted((n / total for n in per_master.values()), reverse=True),
        "dls": ok / secs,
        "mibs": mibs,
        "bad": bad,
        "evalsha": calls["evalsha"] / ok,
        "eval": calls["eval"] / ok,
        "fcall": calls["fcall"] / ok,
        "all": sum(calls.values()) / ok,
        "cpu_ms": sum(a * secs for a in cpu.values()) * 1e3 / ok,
        "fractions": fractions,
        "per_busiest": ok / secs / busiest if busiest > 0 else None,
        "per_mean": ok / secs / mean if mean > 0 else None,
    }


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def summary(results):
    runs = defaultdict(list)
    loads = defaultdict(list)
    for line in open(results):
        if line.startswith(("#", "suite\t")) or not line.strip():
            continue
        suite, target, size, conns, _rep, raw, _idle, _peak, load = line.rstrip("\n").split("\t")
        if suite != "cluster":
            continue
        r = one_run(raw)
        if r:
            runs[(target, size, conns)].append(r)
            loads[(target, size, conns)].append(float(load))
    order = {"docgate-standalone": 0, "docgate-cluster": 1}
    sizes = ["100k", "1m", "10m"]
    keys = sorted(runs, key=lambda k: (sizes.index(k[1]), int(k[2]), order.get(k[0], 9), k[0]))
    print("\n### Redis: one node against a 3-master cluster\n")
    print("| target | size | c | runs | downloads/s | MiB/s | errors (sum) | EVALSHA/dl | EVAL/dl | "
          "FCALL/dl | all calls/dl | Redis CPU ms/dl | CPU fraction per master | "
          "downloads/s per shard (busiest) | (mean) | shared-slot ceiling | links-only master | "
          "load |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | "
          "---: | ---: | ---: | ---: | --- |")
    for key in keys:
        rs = runs[key]
        # Per master, busiest first, each the median over the runs.
        n = max(len(r["fractions"]) for r in rs)
        per_master = " / ".join(fmt(med(r["fractions"][i] for r in rs if i < len(r["fractions"])),
                                    ".2f") for i in range(n))
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(rs)} | {fmt(med(r['dls'] for r in rs), '.0f')} | "
              f"{fmt(med(r['mibs'] for r in rs), '.0f')} | {sum(r['bad'] for r in rs)} | "
              f"{fmt(med(r['evalsha'] for r in rs), '.2f')} | {fmt(med(r['eval'] for r in rs), '.2f')} | "
              f"{fmt(med(r['fcall'] for r in rs), '.2f')} | {fmt(med(r['all'] for r in rs), '.2f')} | "
              f"{fmt(med(r['cpu_ms'] for r in rs), '.3f')} | {per_master} | "
              f"{fmt(med(r['per_busiest'] for r in rs), '.0f')} | "
              f"{fmt(med(r['per_mean'] for r in rs), '.0f')} | "
              f"{fmt(med(r['shared'] for r in rs), '.0f')} | "
              f"{fmt(med(r['links_only'] for r in rs), '.0f')} | "
              f"{min(loads[key]):.2f}–{max(loads[key]):.2f} |")
    print()
    for key in keys:
        rs = runs[key]
        names = sorted({n for r in rs for n in r["commands"]},
                       key=lambda n: -med(r["commands"].get(n, 0) for r in rs))
        per_dl = ", ".join(f"{n} {med(r['commands'].get(n, 0) for r in rs):.2f}" for n in names
                           if med(r["commands"].get(n, 0) for r in rs) >= 0.005)
        shares = " / ".join(f"{med(r['shares'][i] for r in rs) * 100:.0f} %"
                            for i in range(len(rs[0]["shares"])))
        print(f"- {key[0]} {key[1]}: per download {per_dl}; calls per master {shares}")
    print("\n(per run, downloads/s: " + "; ".join(
        f"{k[0]} {k[1]}: " + ", ".join(fmt(r["dls"], ".0f") for r in runs[k]) for k in keys) + ")")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "snapshot":
        snapshot(sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
