#!/usr/bin/env python3
"""Usage: deploy/checks/dashboard.py [--promtool] [--prometheus URL] [DASHBOARD.json ...]

Checks the provisioned Grafana dashboards without Grafana (Python 3 stdlib only).

Static checks (always), for deploy/grafana/dashboards/*.json unless files are given:
- the JSON parses; uid, title and schemaVersion are present;
- panel ids are unique (rows and panels nested in rows included);
- every gridPos has x >= 0, w > 0, h > 0, x + w <= 24, and panels do not overlap;
- every panel and target uses the datasource uid provisioned in
  deploy/grafana/provisioning/datasources/*.yml (type prometheus);
- the dashboard provider's path is where docker-compose.yml mounts
  deploy/grafana/dashboards;
- every metric name in every expr is in the tables of docs/metrics.md (histograms
  also as _bucket, _sum, _count), and every range selector is [$__rate_interval].

--promtool: also checks that every expr parses, by loading them as recording rules
with `promtool check rules` (Prometheus 2.42).

--prometheus URL: also runs every expr (with $__rate_interval -> 1m, $__interval ->
15s, $__range -> 1h) against URL/api/v1/query and fails for any query that errors or
returns no series. Use it against a Prometheus that has scraped a running postrunner
(both jobs, at least two scrapes so rate() has two samples).

Exits 0 when every check passes, 1 otherwise.
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GRID_COLUMNS = 24
SUBSTITUTIONS = [
    ("$__rate_interval", "1m"),
    ("${__rate_interval}", "1m"),
    ("$__interval", "15s"),
    ("${__interval}", "15s"),
    ("$__range", "1h"),
    ("${__range}", "1h"),
]

# Words that look like identifiers in PromQL but are not metric names.
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "bool", "offset", "inf", "nan", "atan2",
}


def fail_list():
    errors = []

    def fail(msg):
        errors.append(msg)

    return errors, fail


# --------------------------------------------------------------------------- inputs


def documented_metrics(path):
    """Metric names from the tables of docs/metrics.md: | `name` | type | ... |"""
    names = set()
    row = re.compile(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*([^|]*)\|")
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = row.match(line.strip())
            if not m:
                continue
            name, kind = m.group(1), m.group(2).strip().lower()
            names.add(name)
            if kind.startswith("histogram"):
                names.update({name + "_bucket", name + "_sum", name + "_count"})
            if kind.startswith("summary"):
                names.update({name + "_sum", name + "_count"})
    return names


def provisioned_datasource_uids(directory):
    """uids of type-prometheus datasources in Grafana provisioning YAML (no YAML
    library: list items under `datasources:` are read key by key)."""
    uids = set()
    for path in sorted(glob.glob(os.path.join(directory, "*.y*ml"))):
        items, current = [], None
        with open(path, encoding="utf-8") as f:
            for raw in f:
                line = raw.split("#", 1)[0].rstrip()
                if not line.strip():
                    continue
                m = re.match(r"^(\s*)-\s+(\w+):\s*(.*)$", line)
                if m and len(m.group(1)) <= 2:
                    current = {}
                    items.append(current)
                    current[m.group(2)] = m.group(3).strip().strip("'\"")
                    continue
                m = re.match(r"^\s+(\w+):\s*(.*)$", line)
                if m and current is not None and m.group(1) not in current:
                    current[m.group(1)] = m.group(2).strip().strip("'\"")
        for item in items:
            if item.get("type") == "prometheus" and item.get("uid"):
                uids.add(item["uid"])
    return uids


def provider_paths(directory):
    paths = []
    for path in sorted(glob.glob(os.path.join(directory, "*.y*ml"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^\s*path:\s*['\"]?([^'\"\s#]+)", line)
                if m:
                    paths.append(m.group(1))
    return paths


def compose_dashboard_mounts(compose_path):
    if not os.path.exists(compose_path):
        return None
    with open(compose_path, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"\./deploy/grafana/dashboards/?:([^:\s\"']+)", text)


# --------------------------------------------------------------------------- PromQL


def substitute(expr):
    for var, value in SUBSTITUTIONS:
        expr = expr.replace(var, value)
    return expr


def metric_names(expr):
    """Metric names referenced by a PromQL expression (a lexical approximation that
    is exact for the selectors, functions and aggregations dashboards use)."""
    s = expr
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', s)  # strings
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges, subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)", s):
        word = m.group(1)
        rest = s[m.end():].lstrip()
        if rest.startswith("("):  # function or aggregation
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    if "__name__" in expr:
        names.add("<selector by __name__>")
    return names


def range_selectors(expr):
    return re.findall(r"\[([^\]]*)\]", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr))


# --------------------------------------------------------------------------- dashboard


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def check_dashboard(path, ds_uids, known, fail):
    """Static checks; returns [(panel title, refId, expr)]."""
    exprs = []
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: does not parse: {e}")
        return exprs
    name = os.path.relpath(path, ROOT)
    for key in ("uid", "title", "schemaVersion"):
        if not dash.get(key):
            fail(f"{name}: no {key}")
    if not isinstance(dash.get("schemaVersion"), int):
        fail(f"{name}: schemaVersion must be an integer")

    seen_ids = {}
    rects = []
    panels = list(walk_panels(dash.get("panels")))
    if not panels:
        fail(f"{name}: no panels")
    for p in panels:
        title = p.get("title", "<untitled>")
        where = f"{name}: panel {p.get('id')} {title!r}"
        pid = p.get("id")
        if not isinstance(pid, int):
            fail(f"{where}: id missing or not an integer")
        elif pid in seen_ids:
            fail(f"{where}: id {pid} also used by {seen_ids[pid]!r}")
        else:
            seen_ids[pid] = title
        g = p.get("gridPos") or {}
        try:
            x, y, w, h = (int(g[k]) for k in ("x", "y", "w", "h"))
        except (KeyError, TypeError, ValueError):
            fail(f"{where}: gridPos needs integer x, y, w, h")
        else:
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > GRID_COLUMNS:
                fail(f"{where}: gridPos {g} outside the {GRID_COLUMNS}-column grid")
            for other, (ox, oy, ow, oh) in rects:
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    fail(f"{where}: gridPos overlaps panel {other!r}")
            rects.append((title, (x, y, w, h)))

        if p.get("type") == "row":
            continue
        ds = p.get("datasource")
        if ds is not None and (not isinstance(ds, dict) or ds.get("uid") not in ds_uids):
            fail(f"{where}: panel datasource {ds!r} is not the provisioned uid {sorted(ds_uids)}")
        targets = p.get("targets") or []
        if not targets:
            fail(f"{where}: no targets")
        for t in targets:
            ref = t.get("refId", "?")
            tds = t.get("datasource")
            if not isinstance(tds, dict) or tds.get("uid") not in ds_uids:
                fail(f"{where} target {ref}: datasource {tds!r} is not the provisioned uid {sorted(ds_uids)}")
            expr = t.get("expr")
            if not expr or not expr.strip():
                fail(f"{where} target {ref}: no expr")
                continue
            for name_ in sorted(metric_names(expr)):
                if name_ not in known:
                    fail(f"{where} target {ref}: metric {name_} is not in docs/metrics.md")
            for r in range_selectors(expr):
                if r.strip() not in ("$__rate_interval", "${__rate_interval}"):
                    fail(f"{where} target {ref}: range [{r}] should be [$__rate_interval]")
            exprs.append((f"{name}: {title!r} {ref}", expr))
    return exprs


def check_with_promtool(exprs, fail):
    promtool = shutil.which("promtool")
    if not promtool:
        fail("--promtool: promtool not found (apt-get install prometheus)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "dashboard_exprs.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, (where, expr) in enumerate(exprs):
                f.write(f"      # {where}\n")
                f.write(f"      - record: dashboard:expr_{i}\n")
                f.write(f"        expr: {json.dumps(substitute(expr))}\n")
        r = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
        if r.returncode != 0:
            fail("promtool check rules on the dashboard's exprs failed:\n" + r.stdout + r.stderr)


def check_against_prometheus(url, exprs, fail):
    base = url.rstrip("/")
    for where, expr in exprs:
        q = substitute(expr)
        req = urllib.request.Request(
            base + "/api/v1/query",
            data=urllib.parse.urlencode({"query": q}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                detail = json.load(e).get("error", "")
            except ValueError:
                detail = ""
            fail(f"{where}: HTTP {e.code} {detail} for {q}")
            continue
        except (urllib.error.URLError, OSError, ValueError) as e:
            fail(f"{where}: {e} for {q}")
            continue
        if body.get("status") != "success":
            fail(f"{where}: {body.get('errorType')}: {body.get('error')} for {q}")
            continue
        data = body.get("data", {})
        if data.get("resultType") in ("vector", "matrix") and not data.get("result"):
            fail(f"{where}: no series for {q}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboards", nargs="*")
    ap.add_argument("--metrics-doc", default=os.path.join(ROOT, "docs", "metrics.md"))
    ap.add_argument("--datasources", default=os.path.join(ROOT, "deploy", "grafana", "provisioning", "datasources"))
    ap.add_argument("--providers", default=os.path.join(ROOT, "deploy", "grafana", "provisioning", "dashboards"))
    ap.add_argument("--compose", default=os.path.join(ROOT, "docker-compose.yml"))
    ap.add_argument("--promtool", action="store_true", help="check every expr parses (promtool check rules)")
    ap.add_argument("--prometheus", metavar="URL", help="run every expr against this Prometheus")
    args = ap.parse_args()

    errors, fail = fail_list()
    known = documented_metrics(args.metrics_doc)
    if not known:
        fail(f"{args.metrics_doc}: no metric tables found")
    ds_uids = provisioned_datasource_uids(args.datasources)
    if not ds_uids:
        fail(f"{args.datasources}: no provisioned prometheus datasource with a uid")

    paths = provider_paths(args.providers)
    if not paths:
        fail(f"{args.providers}: no dashboard provider with options.path")
    mounts = compose_dashboard_mounts(args.compose)
    if mounts is not None:
        if not mounts:
            fail(f"{args.compose}: does not mount ./deploy/grafana/dashboards")
        for p in paths:
            if p.rstrip("/") not in [m.rstrip("/") for m in mounts]:
                fail(f"dashboard provider path {p} is not where {os.path.basename(args.compose)} mounts ./deploy/grafana/dashboards ({mounts})")

    files = args.dashboards or sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "dashboards", "*.json")))
    if not files:
        fail("no dashboards found")
    exprs = []
    for path in files:
        exprs += check_dashboard(path, ds_uids, known, fail)

    if args.promtool and exprs:
        check_with_promtool(exprs, fail)
    if args.prometheus and exprs:
        check_against_prometheus(args.prometheus, exprs, fail)

    mode = "static" + (" + promtool" if args.promtool else "") + (f" + {args.prometheus}" if args.prometheus else "")
    if errors:
        for e in errors:
            print(f"dashboard.py: FAIL: {e}", file=sys.stderr)
        print(f"dashboard.py: {len(errors)} problem(s) ({mode})", file=sys.stderr)
        return 1
    print(f"dashboard.py: OK: {len(files)} dashboard(s), {len(exprs)} queries ({mode}); datasource uid {sorted(ds_uids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
