#!/usr/bin/env python3
"""Checks docgate's alerts and Grafana dashboard against the metrics docgate exports.

The truth is src/metrics.rs: the registry's prefix and every `register` call, with the kind of
what is registered (a counter renders as `<name>_total`, a histogram as `_bucket`, `_sum` and
`_count`, an info metric as `_info`). Every `docgate_*` name a PromQL expression in
deploy/prometheus/alerts.yaml or deploy/grafana/docgate.json names must be one of those series.
Besides: each alert's `for`, severity, summary, description and runbook anchor
(deploy/prometheus/runbook-anchors.txt, and docs/operations.md's headings once it exists); the
PrometheusRule in every rendered bundle holding the same groups, beside the ServiceMonitor; rate
windows long enough for the scrape interval; the dashboard's structure, its `${datasource}`
everywhere, and every exported metric on it; a PromQL lint; and, with --promtool, promtool's
own parse of the rules and of every dashboard query, and the unit tests in
deploy/prometheus/alerts_test.yaml. One line per check; exit status 1 if any fails.

    check_observability.py [--k8s base=base.yaml ...] [--promtool PATH] [--self-test]
    check_observability.py --write-prometheusrule    # k8s/base/prometheusrule.yaml from alerts.yaml

`--self-test` breaks a copy of the inputs once per check, in memory, and fails unless that check
reports the breakage. Standard library and PyYAML only, like check_manifests.py (whose Problem,
Bundle and runner it shares).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

from check_manifests import Bundle, Passed, Problem, parse_duration, require, run

PROMETHEUS_RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yaml by
#   python3 deploy/check_observability.py --write-prometheusrule
# Edit alerts.yaml, then run that; deploy/validate fails while the two differ.
#
# Prometheus Operator's PrometheusRule (needs its CRDs; the dev overlay drops it, as it drops the
# ServiceMonitor). It carries the ServiceMonitor's labels and lands in its namespace: the
# Prometheus's ruleSelector and ruleNamespaceSelector must match them, as its ServiceMonitor
# selectors match the ServiceMonitor's.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: docgate
  labels:
    app.kubernetes.io/name: docgate
    app.kubernetes.io/instance: docgate
spec:
"""

SEVERITIES = ("critical", "warning", "info")
RUNBOOK_DOC = "docs/operations.md"
# Grafana's built-in variables a query may use, and what stands in for them when promtool parses
# the query.
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600",
                    "__interval_ms": "60000", "__range_ms": "3600000"}
SCRAPES_PER_WINDOW = 4

# ---- src/metrics.rs ----------------------------------------------------------------------------

KINDS = ("Counter", "Gauge", "Histogram", "Info")
UNITS = {"Amperes": "amperes", "Bytes": "bytes", "Celsius": "celsius", "Grams": "grams", "Joules": "joules",
         "Meters": "meters", "Ratios": "ratios", "Seconds": "seconds", "Volts": "volts"}


def strip_rust_comments(src: str) -> str:
    """Removes // and /* */ comments, keeping string literals (and line numbers) intact."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            out.append("\n" * src.count("\n", i, n if j < 0 else j))
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call_args(src: str, start: int) -> list[str]:
    """The top-level, comma-separated arguments of the call whose `(` ends just before `start`.
    Generic arguments (`Family::<Label, Counter>`, `Gauge<f64>`) count as brackets."""
    args, stack, i, begin = [], [], start, start
    while i < len(src):
        c = src[i]
        if c == '"':
            i += 1
            while i < len(src) and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
        elif c in "([{":
            stack.append({"(": ")", "[": "]", "{": "}"}[c])
        elif c == "<" and (src.endswith("::", 0, i) or re.search(r"\b[A-Z]\w*$", src[max(0, i - 64):i])):
            stack.append(">")
        elif c == ">" and stack and stack[-1] == ">" and src[i - 1] != "-":
            stack.pop()
        elif c in ")]}":
            if not stack:
                args.append(src[begin:i].strip())
                return [a for a in args if a]
            require(stack.pop() == c, f"unbalanced {c!r} at offset {i}")
        elif c == "," and not stack:
            args.append(src[begin:i].strip())
            begin = i + 1
        i += 1
    raise Problem(f"unterminated call at offset {start}")


def metric_kind(expr: str, src: str) -> str:
    """Counter, Gauge, Histogram or Info: what `expr` (a registered value) is."""
    def kind_in(text: str) -> str | None:
        family = re.search(r"Family\s*(?:::)?\s*<[^,]+,\s*(\w+)", text)
        if family and family.group(1) in KINDS:
            return family.group(1)
        found = re.search(r"\b(" + "|".join(KINDS) + r")\b", text)
        return found.group(1) if found else None

    direct = kind_in(expr)
    if direct:
        return direct
    ident = re.fullmatch(r"(?:self\.)?(\w+)(?:\.clone\(\))?", expr.strip())
    if ident:
        name = ident.group(1)
        for pattern in (rf"\blet\s+(?:mut\s+)?{name}\s*(?::\s*([^=;]+))?=\s*([^;]+);",
                        rf"\b(?:pub(?:\([^)]*\))?\s+)?{name}\s*:\s*([^,;=\n]+)[,\n]"):
            for m in re.finditer(pattern, src):
                kind = kind_in(" ".join(g for g in m.groups() if g))
                if kind:
                    return kind
    raise Problem(f"cannot tell what kind of metric `{expr}` is")


def exported_series(source: str) -> dict[str, tuple[str, str]]:
    """{series name: (kind, family name)} for everything src/metrics.rs registers."""
    src = strip_rust_comments(source)
    prefixes = set(re.findall(r'Registry::with_prefix\(\s*"([^"]+)"\s*\)', src))
    require(len(prefixes) == 1, f"expected one Registry::with_prefix(\"...\"), found {sorted(prefixes) or 'none'}")
    prefix = prefixes.pop()
    out: dict[str, tuple[str, str]] = {}
    calls = list(re.finditer(r"\.register(_with_unit)?\s*\(", src))
    require(calls, "no registry.register(...) calls")
    for call in calls:
        args = call_args(src, call.end())
        require(len(args) == (4 if call.group(1) else 3), f"register call with {len(args)} arguments: {args}")
        name = re.fullmatch(r'"([a-z_][a-z0-9_]*)"', args[0])
        require(name, f"metric name {args[0]} is not a lower-case string literal")
        family = f"{prefix}_{name.group(1)}"
        if call.group(1):
            unit = re.fullmatch(r"(?:\w+::)*Unit::(\w+)", args[2])
            require(unit and unit.group(1) in UNITS, f"{family}: unit {args[2]} unknown")
            family += "_" + UNITS[unit.group(1)]
        kind = metric_kind(args[-1], src)
        names = {"Counter": [family + "_total"], "Gauge": [family],
                 "Histogram": [family + s for s in ("_bucket", "_sum", "_count")],
                 "Info": [family + "_info"]}[kind]
        for series in names:
            require(series not in out, f"{series} is registered twice")
            out[series] = (kind, family)
    return out


# ---- PromQL ------------------------------------------------------------------------------------

FUNCTIONS = set("""
abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp
floor histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
holt_winters hour idelta increase irate label_join label_replace last_over_time ln log10 log2
mad_over_time max_over_time min_over_time minute month pi predict_linear present_over_time
quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc sqrt stddev_over_time
stdvar_over_time sum_over_time tan tanh time timestamp vector year
""".split())
AGGREGATIONS = set("sum min max avg group stddev stdvar count count_values bottomk topk quantile".split())
PAREN_KEYWORDS = set("by without on ignoring group_left group_right".split())
COUNTER_FUNCTIONS = ("rate", "irate", "increase", "resets")
DURATION = r"(?:\d+(?:ms|s|m|h|d|w|y))+"
METRIC_RE = re.compile(r"\bdocgate_[a-z0-9_]+\b")


def strip_strings(expr: str) -> str:
    """The expression with every string literal emptied (label values may hold anything)."""
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            j = i + 1
            while j < len(expr) and expr[j] != c:
                j += 2 if expr[j] == "\\" and c != "`" else 1
            require(j < len(expr), f"unterminated string in {expr!r}")
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def referenced_metrics(expr: str) -> set[str]:
    return set(METRIC_RE.findall(strip_strings(expr)))


def missing_metrics(exprs: list[str], exported: dict) -> list[str]:
    problems = []
    for name in sorted(set().union(*(referenced_metrics(e) for e in exprs)) if exprs else set()):
        if name in exported:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        family = next((v for v in exported.values() if v[1] == base), None)
        problems.append(f"{name} ({base} is a {family[0].lower()})" if family and base != name else name)
    return problems


def lint_promql(expr: str, exported: dict, variables: set[str] | None = None) -> None:
    """A light parse: strings closed, brackets balanced, known functions, valid ranges, counters
    under rate(), histogram_quantile over buckets by `le`. `variables`: Grafana's, if a panel's."""
    where = " ".join(expr.split())
    refs = re.findall(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))", expr)
    if variables is None:
        require(not refs, f"a template variable in a rule: {where}")
    else:
        unknown = sorted({a or b for a, b in refs} - variables - set(GRAFANA_BUILTINS))
        require(not unknown, f"undefined variable ${', $'.join(unknown)} in {where}")
        for var, value in GRAFANA_BUILTINS.items():
            expr = expr.replace("${" + var + "}", value).replace("$" + var, value)
    bare = strip_strings(expr)
    stack = []
    for c in bare:
        if c in "([{":
            stack.append({"(": ")", "[": "]", "{": "}"}[c])
        elif c in ")]}":
            require(stack and stack.pop() == c, f"unbalanced {c!r} in {where}")
    require(not stack, f"{stack[-1] if stack else ''!r} missing in {where}")
    for m in re.finditer(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(", bare):
        word = m.group(1)
        require(word in FUNCTIONS | AGGREGATIONS | PAREN_KEYWORDS | {"bool"},
                f"unknown function {word}() in {where}")
    for m in re.finditer(r"\[([^\]]*)\]", bare):
        require(re.fullmatch(rf"\s*{DURATION}\s*(:\s*(?:{DURATION})?\s*)?", m.group(1)),
                f"[{m.group(1)}] is not a range in {where}")
    for m in re.finditer(r"\b(" + "|".join(COUNTER_FUNCTIONS) + r")\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", bare):
        fn, name = m.groups()
        if not name.startswith("docgate_"):
            continue
        kind = exported.get(name, ("", ""))[0]
        counter_like = kind in ("Counter", "Histogram") if kind else re.search(r"_(total|bucket|sum|count)$", name)
        require(counter_like, f"{fn}() of {name}, which is not a counter: {where}")
    for m in re.finditer(r"\bhistogram_quantile\s*\(", bare):
        args = call_args(bare, m.end())
        require(len(args) == 2, f"histogram_quantile takes 2 arguments: {where}")
        require(re.search(r"_bucket\b", args[1]), f"histogram_quantile over no _bucket series: {where}")
        if re.search(r"\b(" + "|".join(AGGREGATIONS) + r")\b", args[1]):
            require(re.search(r"\b(by)\s*\([^)]*\ble\b", args[1]),
                    f"histogram_quantile's aggregation drops `le`: {where}")


# ---- inputs ------------------------------------------------------------------------------------

def rules_doc(o: dict) -> dict:
    try:
        doc = yaml.safe_load(o["rules_text"])
    except yaml.YAMLError as e:
        raise Problem(f"alerts.yaml is not YAML: {e}") from None
    require(isinstance(doc, dict) and isinstance(doc.get("groups"), list) and doc["groups"],
            "alerts.yaml has no groups")
    return doc


def alerts(o: dict) -> list[dict]:
    return [r for g in rules_doc(o)["groups"] for r in g.get("rules") or [] if "alert" in r]


def dashboard(o: dict) -> dict:
    try:
        doc = json.loads(o["dashboard_text"])
    except json.JSONDecodeError as e:
        raise Problem(f"docgate.json is not JSON: {e}") from None
    require(isinstance(doc, dict), "docgate.json is not an object")
    return doc


def all_panels(doc: dict) -> list[dict]:
    out = []
    for p in doc.get("panels") or []:
        out.append(p)
        out += p.get("panels") or []  # a collapsed row holds its panels
    return out


def panel_queries(doc: dict) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    return [(f"panel {p.get('id')} {p.get('title')!r} {t.get('refId')}", t["expr"])
            for p in all_panels(doc) for t in p.get("targets") or [] if t.get("expr")]


def variable_metrics(doc: dict) -> list[str]:
    """The metric selectors the template variables' label_values() queries name."""
    out = []
    for v in (doc.get("templating") or {}).get("list") or []:
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            m = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,)?\s*\w+\s*\)\s*", q)
            require(m, f"variable {v.get('name')}: query {q!r} is not label_values(metric, label)")
            if m.group(1):
                out.append(m.group(1))
    return out


def variables(doc: dict) -> set[str]:
    return {v.get("name") for v in (doc.get("templating") or {}).get("list") or []}


def anchor_of(alert: str) -> str:
    return "alert-" + alert.lower()


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings, plus explicit id/name anchors."""
    seen: dict[str, int] = {}
    out = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', markdown))
    fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        m = None if fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


# ---- checks ------------------------------------------------------------------------------------

CHECKS: list[tuple[str, object]] = []


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn
    return register


@check("metrics source")
def check_metrics_source(o: dict) -> str:
    exported = exported_series(o["metrics_text"])
    families = {v[1] for v in exported.values()}
    return f"{len(families)} metrics, {len(exported)} series names"


@check("alerts structure")
def check_alerts_structure(o: dict) -> str:
    doc = rules_doc(o)
    names = []
    for g in doc["groups"]:
        require(g.get("name") and isinstance(g.get("rules"), list) and g["rules"], f"group {g.get('name')!r} is empty")
        for r in g["rules"]:
            require("alert" in r, f"group {g['name']}: a rule that is not an alert ({r.get('record')})")
            name = r["alert"]
            require(re.fullmatch(r"Docgate[A-Z][A-Za-z0-9]*", str(name)), f"alert name {name!r} is not DocgateCamelCase")
            names.append(name)
            require(isinstance(r.get("expr"), str) and r["expr"].strip(), f"{name}: no expr")
            require("for" in r, f"{name}: no `for:`")
            parse_duration(r["for"])
            severity = (r.get("labels") or {}).get("severity")
            require(severity in SEVERITIES, f"{name}: severity {severity!r}, not one of {', '.join(SEVERITIES)}")
            notes = r.get("annotations") or {}
            for key in ("summary", "description", "runbook_url"):
                require(str(notes.get(key) or "").strip(), f"{name}: no {key} annotation")
    require(len(names) == len(set(names)), f"alert names repeat: {sorted(n for n in names if names.count(n) > 1)}")
    return f"{len(names)} alerts"


@check("alerts runbooks")
def check_alerts_runbooks(o: dict) -> str:
    wanted = []
    for r in alerts(o):
        url = str((r.get("annotations") or {}).get("runbook_url", ""))
        path, _, anchor = url.partition("#")
        require(path.endswith(RUNBOOK_DOC) and anchor == anchor_of(r["alert"]),
                f"{r['alert']}: runbook_url {url!r} is not {RUNBOOK_DOC}#{anchor_of(r['alert'])}")
        wanted.append(anchor)
    listed = [line.split()[0] for line in o["anchors_text"].splitlines() if line.strip() and not line.startswith("#")]
    if listed != wanted:
        extra, missing = [a for a in listed if a not in wanted], [a for a in wanted if a not in listed]
        raise Problem("runbook-anchors.txt " + "; ".join(
            [f"lacks {', '.join(missing)}"] * bool(missing) + [f"has no alert for {', '.join(extra)}"] * bool(extra)
            or ["is not in the alerts' order"]))
    if o["operations_text"] is None:
        return f"{len(wanted)} anchors; {RUNBOOK_DOC} not written yet"
    missing = [a for a in wanted if a not in github_anchors(o["operations_text"])]
    require(not missing, f"{RUNBOOK_DOC} has no heading for #{', #'.join(missing)}")
    return f"{len(wanted)} anchors, all in {RUNBOOK_DOC}"


@check("alerts metrics")
def check_alerts_metrics(o: dict) -> None:
    missing = missing_metrics([r["expr"] for r in alerts(o)], exported_series(o["metrics_text"]))
    require(not missing, "not exported by src/metrics.rs: " + ", ".join(missing))


@check("alerts promql")
def check_alerts_promql(o: dict) -> None:
    exported = exported_series(o["metrics_text"])
    for r in alerts(o):
        lint_promql(r["expr"], exported)


@check("alerts scrape")
def check_alerts_scrape(o: dict) -> str:
    """Windows of at least four scrapes; `job` matchers naming the job the ServiceMonitor makes."""
    scraped = [(b, sm) for b in o["bundles"] for sm in b.of_kind("ServiceMonitor")]
    if not scraped:
        return "no ServiceMonitor rendered"
    b, sm = scraped[0]
    interval = max(parse_duration(ep.get("interval", "30s")) for ep in sm["spec"]["endpoints"])
    for r in alerts(o):
        for m in re.finditer(r"\[(" + DURATION + r")", strip_strings(r["expr"])):
            require(parse_duration(m.group(1)) >= SCRAPES_PER_WINDOW * interval,
                    f"{r['alert']}: [{m.group(1)}] holds fewer than {SCRAPES_PER_WINDOW} scrapes {interval:g}s apart")
    # Prometheus Operator names the job after the Service, unless spec.jobLabel names a label.
    job = None if sm["spec"].get("jobLabel") else b.service()["metadata"]["name"]
    for r in alerts(o):
        for value in re.findall(r'\bjob\s*=\s*"([^"]*)"', r["expr"]):
            require(job is None or value == job, f"{r['alert']}: job=\"{value}\", but the ServiceMonitor's job is {job!r}")
    return f"windows >= {SCRAPES_PER_WINDOW} x {interval:g}s; job {job!r}"


@check("alerts tests")
def check_alerts_tests(o: dict) -> str:
    """Every alert has a unit test in which it fires and one in which it stays quiet."""
    tests = yaml.safe_load(o["tests_text"]) or {}
    require([os.path.basename(f) for f in tests.get("rule_files") or []] == ["alerts.yaml"],
            f"alerts_test.yaml tests {tests.get('rule_files')}, not alerts.yaml")
    fires, quiet = set(), set()
    for t in tests.get("tests") or []:
        for a in t.get("alert_rule_test") or []:
            (fires if a.get("exp_alerts") else quiet).add(a.get("alertname"))
    names = [r["alert"] for r in alerts(o)]
    untested = [n for n in names if n not in fires or n not in quiet]
    require(not untested, "no firing and quiet test case for " + ", ".join(untested))
    return f"{len(names)} alerts, firing and quiet"


@check("alerts prometheus-rule")
def check_prometheus_rule(o: dict) -> str:
    groups = rules_doc(o)["groups"]
    carried = []
    for b in o["bundles"]:
        monitors, rules = b.of_kind("ServiceMonitor"), b.of_kind("PrometheusRule")
        require(bool(monitors) == bool(rules), f"k8s/{b.name} renders a "
                + ("ServiceMonitor without the PrometheusRule" if monitors else "PrometheusRule without the ServiceMonitor"))
        if not rules:
            continue
        require(len(rules) == 1, f"k8s/{b.name} renders {len(rules)} PrometheusRules")
        pr, sm = rules[0], monitors[0]
        require(pr.get("apiVersion") == "monitoring.coreos.com/v1", f"k8s/{b.name}: apiVersion {pr.get('apiVersion')}")
        labels = pr["metadata"].get("labels") or {}
        for k, v in (sm["metadata"].get("labels") or {}).items():
            require(labels.get(k) == v, f"k8s/{b.name}: the PrometheusRule lacks the ServiceMonitor's label {k}={v}")
        require(pr["metadata"].get("namespace") == sm["metadata"].get("namespace"),
                f"k8s/{b.name}: the PrometheusRule and the ServiceMonitor are in different namespaces")
        theirs = (pr.get("spec") or {}).get("groups")
        if theirs != groups:
            ours = {r.get("alert"): r for g in groups for r in g["rules"]}
            other = {r.get("alert"): r for g in theirs or [] for r in g.get("rules") or []}
            differ = sorted(n for n in set(ours) | set(other) if ours.get(n) != other.get(n)) or ["group names or order"]
            raise Problem(f"k8s/{b.name}: the PrometheusRule differs from alerts.yaml ({', '.join(differ)}); "
                          "run python3 deploy/check_observability.py --write-prometheusrule")
        carried.append(b.name)
    require(carried or not o["bundles"], "no bundle carries the PrometheusRule")
    return "in " + ", ".join(carried) if carried else "no bundle given"


@check("dashboard structure")
def check_dashboard_structure(o: dict) -> str:
    doc = dashboard(o)
    require(isinstance(doc.get("schemaVersion"), int) and doc["schemaVersion"] >= 36,
            f"schemaVersion {doc.get('schemaVersion')}: older than Grafana 9")
    require(doc.get("uid") and doc.get("title"), "no uid or title")
    panels = all_panels(doc)
    require(panels, "no panels")
    ids = [p.get("id") for p in panels]
    require(all(isinstance(i, int) for i in ids), "a panel without a numeric id")
    require(len(ids) == len(set(ids)), f"panel ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p.get("gridPos") or {}
        require(all(isinstance(g.get(k), int) for k in "xywh"), f"panel {p['id']}: gridPos {g}")
        require(g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, f"panel {p['id']}: wider than the grid")
        if p.get("type") == "row":
            require(not p.get("targets"), f"row {p['id']} has queries")
        else:
            require(p.get("title"), f"panel {p['id']} has no title")
            targets = p.get("targets") or []
            require(targets and all(t.get("expr") for t in targets), f"panel {p['id']} has no PromQL query")
            refs = [t.get("refId") for t in targets]
            require(len(refs) == len(set(refs)) and all(refs), f"panel {p['id']}: refIds {refs}")
        if p in (doc.get("panels") or []):  # collapsed rows' panels are laid out when opened
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    require((x, y) not in cells, f"panels {cells.get((x, y))} and {p['id']} overlap")
                    cells[(x, y)] = p["id"]
    return f"{len(panels)} panels"


@check("dashboard datasource")
def check_dashboard_datasource(o: dict) -> None:
    doc = dashboard(o)
    var = [v for v in (doc.get("templating") or {}).get("list") or [] if v.get("name") == "datasource"]
    require(var and var[0].get("type") == "datasource" and var[0].get("query") == "prometheus",
            "no `datasource` variable of type datasource, query prometheus")
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for p in all_panels(doc):
        if p.get("type") == "row":
            continue
        require(p.get("datasource") == wanted, f"panel {p['id']}: datasource {p.get('datasource')}, not {wanted}")
        for t in p.get("targets") or []:
            require(t.get("datasource", wanted) == wanted, f"panel {p['id']} {t.get('refId')}: datasource {t.get('datasource')}")

    def walk(node, path):
        if isinstance(node, dict):
            if "datasource" in node:
                require(node["datasource"] == wanted, f"{path}: datasource {node['datasource']}, not {wanted}")
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for n, v in enumerate(node):
                walk(v, f"{path}[{n}]")
    walk(doc, "dashboard")


@check("dashboard metrics")
def check_dashboard_metrics(o: dict) -> None:
    doc = dashboard(o)
    exprs = [e for _, e in panel_queries(doc)] + variable_metrics(doc)
    missing = missing_metrics(exprs, exported_series(o["metrics_text"]))
    require(not missing, "not exported by src/metrics.rs: " + ", ".join(missing))


@check("dashboard promql")
def check_dashboard_promql(o: dict) -> None:
    doc = dashboard(o)
    exported, names = exported_series(o["metrics_text"]), variables(doc)
    for where, expr in panel_queries(doc):
        try:
            lint_promql(expr, exported, names)
        except Problem as e:
            raise Problem(f"{where}: {e}") from None


@check("dashboard coverage")
def check_dashboard_coverage(o: dict) -> str:
    """Every metric docgate exports is on the dashboard."""
    exported = exported_series(o["metrics_text"])
    shown = set().union(*(referenced_metrics(e) for _, e in panel_queries(dashboard(o))))
    families = {v[1] for v in exported.values()}
    absent = sorted(f for f in families if not any(exported.get(s, ("", ""))[1] == f for s in shown))
    require(not absent, "no panel shows " + ", ".join(absent))
    return f"{len(families)} metrics"


def _promtool(o: dict, *args: str, files: dict[str, str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
        done = subprocess.run([o["promtool"], *args], cwd=tmp, capture_output=True, text=True, timeout=60)
    out = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        # The failing rule, or the failing alert test, without promtool's dump of every label.
        lines = [line.strip() for line in out.splitlines()
                 if re.search(r"could not parse|parse error|alertname: |expr: |FAILED:$|error", line)
                 and "FAILED:" not in line]
        raise Problem("promtool: " + ("; ".join(lines) or " ".join(out.split()))[:400])
    return out


@functools.cache
def _promtool_version(promtool: str) -> str:
    done = subprocess.run([promtool, "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"version (\S+)", done.stdout + done.stderr)
    return m.group(1) if m else "?"


@check("alerts promtool check")
def check_promtool_rules(o: dict) -> str:
    out = _promtool(o, "check", "rules", "alerts.yaml", files={"alerts.yaml": o["rules_text"]})
    require("SUCCESS" in out, out)
    return f"promtool {_promtool_version(o['promtool'])}"


@check("alerts promtool test")
def check_promtool_tests(o: dict) -> str:
    _promtool(o, "test", "rules", "alerts_test.yaml",
              files={"alerts.yaml": o["rules_text"], "alerts_test.yaml": o["tests_text"]})
    cases = sum(len(t.get("alert_rule_test") or []) for t in (yaml.safe_load(o["tests_text"]) or {}).get("tests") or [])
    return f"{cases} cases"


def dashboard_as_rules(doc: dict) -> str:
    """Every dashboard query as a recording rule, Grafana's variables filled in: promtool parses
    it as it parses a rule."""
    fills = {**GRAFANA_BUILTINS, **{v: "x" for v in variables(doc)}}
    rules = []
    for p in all_panels(doc):
        for t in p.get("targets") or []:
            expr = t.get("expr") or ""
            for var, value in sorted(fills.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace("${" + var + "}", value).replace("$" + var, value)
            rules.append({"record": f"dashboard:panel_{p.get('id')}:{str(t.get('refId')).lower()}", "expr": expr})
    return yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, sort_keys=False)


@check("dashboard promtool")
def check_promtool_dashboard(o: dict) -> str:
    out = _promtool(o, "check", "rules", "dashboard.yaml", files={"dashboard.yaml": dashboard_as_rules(dashboard(o))})
    found = re.search(r"(\d+) rules found", out)
    return f"{found.group(1) if found else '?'} queries parsed"


PROMTOOL_CHECKS = {"alerts promtool check", "alerts promtool test", "dashboard promtool"}


# ---- running -----------------------------------------------------------------------------------

def active_checks(o: dict):
    return [(n, fn) for n, fn in CHECKS if o["promtool"] or n not in PROMTOOL_CHECKS]


def run_all(o: dict, verbose=True) -> dict[str, object]:
    results = {}
    for name, fn in active_checks(o):
        result = run(name, fn, o)
        results[name] = result
        if verbose:
            scope, _, what = name.partition(" ")
            if isinstance(result, Passed):
                print(f"ok   {scope}: {what}" + (f" ({result.note})" if result.note else ""))
            else:
                print(f"FAIL {scope}: {what}: {result}")
    return results


# ---- self-test ---------------------------------------------------------------------------------

def _sub(o: dict, key: str, old: str, new: str, count: int = 1) -> None:
    require(old in o[key], f"self-test: {old!r} not in {key}")
    o[key] = o[key].replace(old, new, count)


def _edit_dashboard(o: dict, fn) -> None:
    doc = json.loads(o["dashboard_text"])
    fn(doc)
    o["dashboard_text"] = json.dumps(doc, indent=2)


def _first_panel(doc: dict) -> dict:
    return next(p for p in all_panels(doc) if p.get("type") != "row")


def _add_target(expr: str):
    def add(doc):
        p = _first_panel(doc)
        p["targets"].append({"datasource": p["datasource"], "refId": "Z", "expr": expr})
    return add


def _drop_panels_showing(metric: str):
    def drop(doc):
        doc["panels"] = [p for p in doc["panels"]
                         if not any(metric in t.get("expr", "") for t in p.get("targets") or [])]
    return drop


def _set_rule_expr(bundle: str, expr: str):
    def edit(o):
        b = next(b for b in o["bundles"] if b.name == bundle)
        b.of_kind("PrometheusRule")[0]["spec"]["groups"][0]["rules"][0]["expr"] = expr
    return edit


def _rule_without_monitor(o):
    b = next(b for b in o["bundles"] if not b.of_kind("ServiceMonitor"))
    donor = next(x for x in o["bundles"] if x.of_kind("PrometheusRule"))
    b.objects.append(copy.deepcopy(donor.of_kind("PrometheusRule")[0]))


BOGUS = "docgate_no_such_metric_total"
# check name -> [(what, mutation, marker)]: the mutated inputs must fail the check; when the
# unmodified inputs fail it already, the failure must name the marker.
MUTATIONS = {
    "metrics source": [("no registry prefix", lambda o: _sub(o, "metrics_text", 'Registry::with_prefix("docgate")',
                                                            "Registry::default()"), None)],
    "alerts structure": [("an alert without for:", lambda o: _sub(o, "rules_text", "        for: 5m\n", ""), None),
                         ("severity page", lambda o: _sub(o, "rules_text", "severity: critical", "severity: page"), None)],
    "alerts runbooks": [("anchor alert-docgate-down", lambda o: _sub(o, "rules_text", "#alert-docgatedown",
                                                                    "#alert-docgate-down"), None),
                        ("an anchor missing from the list", lambda o: _sub(o, "anchors_text", "alert-docgatedown ", "# "), None),
                        ("docs/operations.md without the headings",
                         lambda o: o.update(operations_text="# Operating docgate\n\n## Alert: DocgateDown\n"), None)],
    "alerts metrics": [(BOGUS, lambda o: _sub(o, "rules_text", "expr: absent(up", f"expr: {BOGUS} or absent(up"), BOGUS)],
    "alerts promql": [("rate() of a gauge", lambda o: _sub(o, "rules_text", "expr: absent(up",
                                                           "expr: rate(docgate_downloads_in_flight[5m]) or absent(up"),
                       None),
                      ("an unclosed (", lambda o: _sub(o, "rules_text", "expr: absent(up", "expr: absent((up"), None),
                      ("rates()", lambda o: _sub(o, "rules_text", "(rate(", "(rates("), None)],
    "alerts scrape": [("a [1m] window", lambda o: _sub(o, "rules_text", "[2m]", "[1m]"), None),
                      ('job="prometheus"', lambda o: _sub(o, "rules_text", 'up{job="docgate"}', 'up{job="prometheus"}'), None)],
    "alerts tests": [("DocgateDown untested", lambda o: _sub(o, "tests_text", "alertname: DocgateDown\n",
                                                             "alertname: DocgateGone\n", count=99), None)],
    "alerts prometheus-rule": [("base's copy edited", _set_rule_expr("base", "vector(1)"), None),
                               ("a PrometheusRule without the ServiceMonitor", _rule_without_monitor, None)],
    "alerts promtool check": [("an unbalanced expr", lambda o: _sub(o, "rules_text", "expr: absent(up",
                                                                    "expr: absent((up"), None)],
    "alerts promtool test": [("a 50% threshold", lambda o: _sub(o, "rules_text", ") > 0.05", ") > 0.5"), None)],
    "dashboard structure": [("a repeated panel id", lambda o: _edit_dashboard(
        o, lambda d: _first_panel(d).update(id=all_panels(d)[0]["id"])), None),
                            ("not JSON", lambda o: o.update(dashboard_text=o["dashboard_text"][:-3]), None)],
    "dashboard datasource": [("a hard-coded uid", lambda o: _edit_dashboard(
        o, lambda d: _first_panel(d).update(datasource={"type": "prometheus", "uid": "P1809F7CD0C75ACF3"})), None)],
    "dashboard metrics": [(BOGUS, lambda o: _edit_dashboard(o, _add_target(f"sum(rate({BOGUS}[5m]))")), BOGUS)],
    "dashboard promql": [("an undefined $instance", lambda o: _edit_dashboard(
        o, _add_target('sum(docgate_downloads_in_flight{instance="$instance"})')), None)],
    "dashboard coverage": [("no bytes panel", lambda o: _edit_dashboard(
        o, _drop_panels_showing("docgate_download_bytes_total")), None)],
    "dashboard promtool": [("a query promtool rejects", lambda o: _edit_dashboard(
        o, _add_target("sum by (le (docgate_downloads_in_flight)")), None)],
}


def self_test(o: dict) -> int:
    baseline = run_all(o, verbose=False)
    failures = 0
    for name, _ in active_checks(o):
        fn = dict(CHECKS)[name]
        for what, mutate, marker in MUTATIONS.get(name, [("(no mutation)", None, None)]):
            if mutate is None:
                problem = "no mutation"
            else:
                broken = copy.deepcopy(o)
                try:
                    mutate(broken)
                    problem = run(name, fn, broken)
                except Problem as e:
                    problem = f"internal error: {e}"
            base = baseline[name]
            if isinstance(problem, Passed):
                caught = False
            elif problem.startswith(("internal error", "no mutation")):
                caught = False
            elif isinstance(base, Passed):
                caught = True
            else:
                caught = marker is not None and marker in problem and marker not in base
                if not caught:
                    problem = f"{problem}; but the unmodified inputs fail it already"
            failures += not caught
            print(f"ok   self-test {name}: {what}: caught ({problem})" if caught
                  else f"FAIL self-test {name}: {what}: not caught ({problem})")
    return failures


# ---- command line ------------------------------------------------------------------------------

def write_prometheus_rule(rules_path: str, out_path: str) -> None:
    text = open(rules_path, encoding="utf-8").read()
    body = text[text.index("\ngroups:") + 1:]
    indented = "".join("  " + line if line.strip() else line for line in body.splitlines(keepends=True))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(PROMETHEUS_RULE_HEADER + indented)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", default="src/metrics.rs")
    parser.add_argument("--rules", default="deploy/prometheus/alerts.yaml")
    parser.add_argument("--rules-tests", default="deploy/prometheus/alerts_test.yaml")
    parser.add_argument("--anchors", default="deploy/prometheus/runbook-anchors.txt")
    parser.add_argument("--operations", default=RUNBOOK_DOC, help="checked only if it exists")
    parser.add_argument("--dashboard", default="deploy/grafana/docgate.json")
    parser.add_argument("--prometheusrule", default="k8s/base/prometheusrule.yaml")
    parser.add_argument("--k8s", action="append", default=[], metavar="NAME=RENDERED.yaml")
    parser.add_argument("--promtool", help="promtool, to parse the rules and queries and run the unit tests")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--write-prometheusrule", action="store_true",
                        help="write --prometheusrule from --rules, then exit")
    args = parser.parse_args()
    if args.write_prometheusrule:
        write_prometheus_rule(args.rules, args.prometheusrule)
        print(f"wrote {args.prometheusrule} from {args.rules}")
        return 0

    def read(path):
        with open(path, encoding="utf-8") as f:
            return f.read()

    bundles = []
    for spec in args.k8s:
        name, _, path = spec.partition("=")
        with open(path, encoding="utf-8") as f:
            bundles.append(Bundle(name, [o for o in yaml.safe_load_all(f) if o]))
    o = {"metrics_text": read(args.metrics), "rules_text": read(args.rules), "tests_text": read(args.rules_tests),
         "anchors_text": read(args.anchors), "dashboard_text": read(args.dashboard),
         "operations_text": read(args.operations) if os.path.exists(args.operations) else None,
         "bundles": bundles, "promtool": args.promtool}
    if args.self_test:
        return 1 if self_test(o) else 0
    results = run_all(o)
    return 1 if any(not isinstance(r, Passed) for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
