#!/usr/bin/env python3
"""Usage: deploy/checks/prometheus_live.py [--target HOST:PORT] [--database-target HOST:PORT]

The dashboard's queries and the alert rules on a real Prometheus (Debian's 2.42):

- starts `prometheus` on a free 127.0.0.1 port with its own temporary TSDB, scraping
  every second the two jobs of deploy/prometheus/prometheus.yml (`postrunner` on
  /metrics, `postrunner-database` on /metrics/database) and loading
  deploy/prometheus/rules/*.yml;
- by default the targets are a synthetic exporter started here, which serves every
  metric of docs/metrics.md with the labels the rules and the dashboard expect (two
  "replicas" on /metrics; the database set on /metrics/database): it stands in for
  postrunner until the Rust exporter exists. With --target/--database-target, a running
  postrunner is scraped instead (its --metrics-bind address);
- lints each scraped exposition with `promtool check metrics`;
- waits for a few scrapes, then checks that every rule evaluates without error and
  runs deploy/checks/dashboard.py --prometheus against it (every panel query must
  return series).

Exits 0 when all pass; stops everything it started. Python 3 stdlib only.
"""

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def log(msg):
    print(f"prometheus_live: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- synthetic exporter

PROVIDERS = ["sg-main", "ses-eu", "mg-us"]
CLIENTS = ["acme", "globex"]
SEND_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
CLAIM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]


def labels(**kv):
    return "{" + ",".join(f'{k}="{v}"' for k, v in kv.items()) + "}" if kv else ""


class Synthetic:
    """Counters grow between scrapes; gauges hold plausible values."""

    def __init__(self):
        self.lock = threading.Lock()
        self.n = {}

    def bump(self, key, by):
        with self.lock:
            self.n[key] = self.n.get(key, 0) + by
            return self.n[key]

    def process(self, replica):
        out = []

        def family(name, kind, help_):
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        def counter(name, lbl, rate):
            out.append(f"{name}{labels(**lbl)} {self.bump((replica, name, tuple(lbl.items())), rate)}")

        def histogram(name, lbl, buckets, rate):
            total = self.bump((replica, name, "count", tuple(lbl.items())), rate)
            for i, b in enumerate(buckets):
                share = min(1.0, (i + 1) / (len(buckets) - 2))
                out.append(f"{name}_bucket{labels(**lbl, le=b)} {int(total * share)}")
            out.append(f"{name}_bucket{labels(**lbl, le='+Inf')} {total}")
            out.append(f"{name}_sum{labels(**lbl)} {total * buckets[2]}")
            out.append(f"{name}_count{labels(**lbl)} {total}")

        family("postrunner_build_info", "gauge", "Which build runs in which role.")
        out.append(f"postrunner_build_info{labels(version='0.0.0-test', role=replica.split('-')[0])} 1")
        family("postrunner_sends_total", "counter", "Provider calls by outcome.")
        for p in PROVIDERS:
            for o in ("sent", "rejected", "recipient_refused", "transient", "rate_limited", "unavailable", "uncertain"):
                counter("postrunner_sends_total", {"provider": p, "outcome": o}, 20 if o == "sent" else 1)
        family("postrunner_send_duration_seconds", "histogram", "Provider call latency.")
        for p in PROVIDERS:
            histogram("postrunner_send_duration_seconds", {"provider": p}, SEND_BUCKETS, 20)
        family("postrunner_claims_total", "counter", "Claim statements run.")
        family("postrunner_claimed_jobs_total", "counter", "Jobs those claims took.")
        for q in ("generic", "routed"):
            counter("postrunner_claims_total", {"queue": q}, 5)
            counter("postrunner_claimed_jobs_total", {"queue": q}, 30)
        family("postrunner_claim_duration_seconds", "histogram", "Claim statement latency.")
        for q in ("generic", "routed"):
            histogram("postrunner_claim_duration_seconds", {"queue": q}, CLAIM_BUCKETS, 5)
        family("postrunner_jobs_finished_total", "counter", "Job attempts finished.")
        for o in ("completed", "retried", "failed", "held"):
            counter("postrunner_jobs_finished_total", {"kind": "email.send", "outcome": o}, 20 if o == "completed" else 1)
        family("postrunner_retries_total", "counter", "Attempts that ended in a retry.")
        counter("postrunner_retries_total", {"kind": "email.send"}, 1)
        family("postrunner_reroutes_total", "counter", "Messages re-routed (failover).")
        for p in PROVIDERS:
            counter("postrunner_reroutes_total", {"provider": p}, 1)
        family("postrunner_events_total", "counter", "Provider events stored.")
        for p in PROVIDERS:
            for k in ("delivered", "bounced", "complained"):
                counter("postrunner_events_total", {"provider": p, "kind": k}, 15 if k == "delivered" else 1)
        family("postrunner_webhooks_refused_total", "counter", "Webhook requests refused.")
        counter("postrunner_webhooks_refused_total", {"provider": "sg-main", "reason": "bad_signature"}, 1)
        family("postrunner_unsubscribes_total", "counter", "One-click unsubscribe POSTs.")
        for o in ("new", "repeated", "invalid"):
            counter("postrunner_unsubscribes_total", {"outcome": o}, 1)
        family("postrunner_database_errors_total", "counter", "Statements that failed.")
        counter("postrunner_database_errors_total", {"doing": "claim"}, 1)
        return "\n".join(out) + "\n"

    def database(self):
        out = []

        def gauge(name, help_, rows):
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} gauge")
            for lbl, v in rows:
                out.append(f"{name}{labels(**lbl)} {v}")

        gauge("postrunner_queue_jobs", "Jobs by kind and state.",
              [({"kind": "email.send", "state": s}, v) for s, v in
               (("available", 120), ("scheduled", 40), ("running", 16), ("retryable", 3), ("held", 0))])
        gauge("postrunner_queue_oldest_waiting_seconds", "Age of the oldest runnable job.", [({"kind": "email.send"}, 4.5)])
        gauge("postrunner_address_sends_today", "Reservations per sender address today.",
              [({"address": f"a{i}@mail.{c}.test", "provider": p, "client": c}, random.randint(0, 50))
               for i in range(15) for c in CLIENTS for p in [PROVIDERS[i % 3]]])
        gauge("postrunner_provider_sends_today", "Reservations per provider today.", [({"provider": p}, 300) for p in PROVIDERS])
        gauge("postrunner_client_sends_today", "Reservations per client today.", [({"client": c}, 450) for c in CLIENTS])
        gauge("postrunner_capacity_left_today", "Messages the active addresses may still send today.",
              [({"client": c, "provider": p}, 100) for c in CLIENTS for p in PROVIDERS])
        gauge("postrunner_capacity_today", "Their effective limits today.",
              [({"client": c, "provider": p}, 400) for c in CLIENTS for p in PROVIDERS])
        gauge("postrunner_provider_health", "Current state per provider.",
              [({"provider": p, "state": "up"}, 1) for p in PROVIDERS])
        gauge("postrunner_provider_up", "1 up, 0.5 degraded, 0 down.", [({"provider": p}, 1) for p in PROVIDERS])
        gauge("postrunner_provider_latency_seconds", "Latency of the last health probe.", [({"provider": p}, 0.12) for p in PROVIDERS])
        rates = [({"level": "provider", "name": p, "window": w}, 0.01) for p in PROVIDERS for w in ("24h", "7d")]
        rates += [({"level": "client", "name": c, "window": w}, 0.02) for c in CLIENTS for w in ("24h", "7d")]
        gauge("postrunner_bounce_rate", "Hard bounces / sends.", rates)
        gauge("postrunner_complaint_rate", "Complaints / sends.", [(l, 0.0005) for l, _ in rates])
        gauge("postrunner_month_spend_dollars", "This UTC month's spend.", [({"provider": p}, 120) for p in PROVIDERS])
        gauge("postrunner_month_budget_dollars", "The hard monthly budget.", [({"provider": p}, 400) for p in PROVIDERS[:2]])
        gauge("postrunner_month_forecast_dollars", "Month-end spend at the current rate.", [({"provider": p}, 310) for p in PROVIDERS])
        gauge("postrunner_alerts_firing", "postrunner's own alerts firing.", [({"kind": "provider_down"}, 0)])
        gauge("postrunner_workers_live", "Processes with a fresh heartbeat.",
              [({"role": r}, 2) for r in ("worker", "scheduler", "web")])
        gauge("postrunner_backup_last_success_timestamp_seconds", "End of the last verified backup.", [({}, int(time.time()) - 3600)])
        gauge("postrunner_database_metrics_scrape_duration_seconds", "How long this snapshot took.", [({}, 0.004)])
        return "\n".join(out) + "\n"


def start_exporter(synthetic):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/metrics":
                # one port per "replica", named by its server
                body = synthetic.process(self.server.replica)
            elif path == "/metrics/database" and self.server.database:
                body = synthetic.database()
            else:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    servers = []
    for replica, database in (("worker-1", False), ("web-1", True)):
        s = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        s.replica, s.database = replica, database
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
    return servers


# --------------------------------------------------------------------------- checks


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def promtool_check_metrics(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read()
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    # promtool 2.42 exits 1 for lint problems (e.g. a counter without _total)
    return res.returncode, (res.stdout + res.stderr).decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", action="append", default=[], help="per-process /metrics endpoint(s), HOST:PORT")
    ap.add_argument("--database-target", help="the /metrics/database endpoint, HOST:PORT")
    ap.add_argument("--scrapes", type=int, default=4, help="scrapes to wait for before querying")
    args = ap.parse_args()
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        log("prometheus/promtool not installed (apt-get install prometheus)")
        return 1

    failures = []
    tmp = tempfile.mkdtemp(prefix="prom-live-")
    servers, prom = [], None
    prom_log = os.path.join(tmp, "prometheus.log")
    try:
        if args.target or args.database_target:
            targets = args.target
            db_target = args.database_target or (args.target[0] if args.target else None)
        else:
            servers = start_exporter(Synthetic())
            targets = [f"127.0.0.1:{s.server_address[1]}" for s in servers]
            db_target = targets[1]

        for url in [f"http://{t}/metrics" for t in targets] + [f"http://{db_target}/metrics/database"]:
            rc, out = promtool_check_metrics(url)
            if rc != 0:
                failures.append(f"promtool check metrics {url}:\n{out}")

        rules_dir = os.path.join(ROOT, "deploy", "prometheus", "rules")
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(
                f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {json.dumps(os.path.join(rules_dir, '*.yml'))}
scrape_configs:
  - job_name: postrunner
    metrics_path: /metrics
    static_configs:
      - targets: {json.dumps(targets)}
  - job_name: postrunner-database
    metrics_path: /metrics/database
    static_configs:
      - targets: {json.dumps([db_target])}
"""
            )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with open(prom_log, "w") as logf:
            prom = subprocess.Popen(
                ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if prom.poll() is not None:
                raise RuntimeError(f"prometheus exited with {prom.returncode}")
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus not ready after 60 s")
            time.sleep(0.3)
        log(f"prometheus {base} scraping {targets} and {db_target}/metrics/database")

        # wait until every target has been scraped a few times
        deadline = time.monotonic() + 60
        while True:
            q = urllib.parse.quote(f"min(count_over_time(up[1m])) >= {args.scrapes} and min(up) == 1")
            res = get_json(f"{base}/api/v1/query?query={q}")["data"]["result"]
            if res:
                break
            if time.monotonic() > deadline:
                failures.append("targets not up for enough scrapes: " + json.dumps(get_json(base + "/api/v1/targets")["data"]["activeTargets"])[:2000])
                break
            time.sleep(1)

        time.sleep(2)  # at least one rule evaluation after the scrapes
        for group in get_json(base + "/api/v1/rules")["data"]["groups"]:
            for rule in group["rules"]:
                if rule.get("health") != "ok":
                    failures.append(f"rule {rule.get('name')}: health {rule.get('health')}: {rule.get('lastError')}")
        # with the synthetic data nothing should be wrong
        if not (args.target or args.database_target):
            firing = [a["labels"]["alertname"] for a in get_json(base + "/api/v1/alerts")["data"]["alerts"]]
            if firing:
                failures.append(f"alerts active on healthy synthetic data: {firing}")

        r = subprocess.run([sys.executable, os.path.join(HERE, "dashboard.py"), "--prometheus", base])
        if r.returncode != 0:
            failures.append("dashboard.py --prometheus failed")
    except Exception as e:  # noqa: BLE001
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        if prom is not None and prom.poll() is None:
            prom.terminate()
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        for s in servers:
            s.shutdown()
            s.server_close()
        if failures and os.path.exists(prom_log):
            with open(prom_log) as f:
                sys.stderr.write("--- prometheus log ---\n" + f.read()[-4000:] + "---\n")
        shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        for f in failures:
            log("FAIL: " + f)
        return 1
    log("OK: rules evaluate, every dashboard query returns series")
    return 0


if __name__ == "__main__":
    sys.exit(main())
