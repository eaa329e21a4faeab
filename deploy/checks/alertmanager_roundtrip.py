#!/usr/bin/env python3
"""Usage: deploy/checks/alertmanager_roundtrip.py [--verbose]

A real Alertmanager, end to end, "one notification per state change":

1. starts a webhook receiver (HTTP) and an SMTP sink on free 127.0.0.1 ports;
2. writes a temporary Alertmanager config whose only receiver sends to both
   (the same group_by and send_resolved as deploy/alertmanager/alertmanager.yml,
   group_wait 1s / group_interval 2s so the test is quick);
3. starts Debian's prometheus-alertmanager (or $ALERTMANAGER_BIN) on a free loopback
   port, clustering off, its own --storage.path in a temp dir;
4. posts one firing alert to /api/v2/alerts as two Prometheus replicas would (the same
   labels twice), re-posts it as Prometheus re-sends, and expects exactly ONE firing
   webhook notification (payload version "4", one alert) and ONE firing email;
5. posts the same alert with endsAt in the past (from both replicas) and expects
   exactly ONE resolved webhook notification and ONE resolved email.

Exits 0 on success, 1 on any failure (printing the Alertmanager log). Python 3 stdlib
only; every process it starts is stopped on exit.
"""

import datetime as dt
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERBOSE = "--verbose" in sys.argv[1:]
GROUP_WAIT = 1
GROUP_INTERVAL = 2
# long enough for Alertmanager to notify again if it were going to (several group
# intervals), short enough to keep the check quick
SETTLE = 4 * GROUP_INTERVAL + 1


def log(msg):
    print(f"alertmanager_roundtrip: {msg}", flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """Notifications received, shared by the HTTP and SMTP servers."""

    def __init__(self):
        self.lock = threading.Condition()
        self.webhooks = []  # decoded JSON payloads
        self.emails = []  # raw DATA

    def add(self, kind, item):
        with self.lock:
            getattr(self, kind).append(item)
            self.lock.notify_all()

    def wait(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def webhook_statuses(self):
        with self.lock:
            return [p.get("status") for p in self.webhooks]

    def email_statuses(self):
        with self.lock:
            out = []
            for raw in self.emails:
                subject = next(
                    (l for l in raw.splitlines() if l.lower().startswith("subject:")), ""
                )
                out.append("resolved" if "[RESOLVED]" in subject else "firing" if "[FIRING" in subject else subject)
            return out


RECORDER = Recorder()


class WebhookHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"status": "<invalid json>", "raw": body.decode("utf-8", "replace")}
        if VERBOSE:
            log(f"webhook: {json.dumps(payload)[:400]}")
        RECORDER.add("webhooks", payload)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for Alertmanager's email notifier, without TLS."""

    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self):
        self.reply("220 sink.test ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink.test\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                self.wfile.flush()
            elif verb == "HELO":
                self.reply("250 sink.test")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    lines.append(l.decode("utf-8", "replace"))
                RECORDER.add("emails", "".join(lines))
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class ThreadingSMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def rfc3339(t):
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def post_alerts(am_url, alerts):
    req = urllib.request.Request(
        am_url + "/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        if resp.status != 200:
            raise RuntimeError(f"POST /api/v2/alerts: HTTP {resp.status}")


def alert(starts, ends, replica_delay=0):
    """The alert as Prometheus's notifier sends it (labels include the rule's)."""
    return {
        "labels": {
            "alertname": "PostrunnerProviderDown",
            "job": "postrunner-database",
            "provider": "sg-main",
            "severity": "critical",
        },
        "annotations": {
            "summary": "Provider sg-main is down",
            "description": "postrunner's circuit breaker has held provider sg-main down for more than 5 minutes.",
        },
        "startsAt": rfc3339(starts + dt.timedelta(seconds=replica_delay)),
        "endsAt": rfc3339(ends),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=postrunner_provider_up",
    }


def am_binary():
    for name in (os.environ.get("ALERTMANAGER_BIN"), "prometheus-alertmanager", "alertmanager"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise RuntimeError("no prometheus-alertmanager binary (apt-get install prometheus-alertmanager)")


def main():
    failures = []
    tmp = tempfile.mkdtemp(prefix="am-roundtrip-")
    servers = []
    am = None
    am_log_path = os.path.join(tmp, "alertmanager.log")

    def stop_everything(*_):
        if am is not None and am.poll() is None:
            am.terminate()
            try:
                am.wait(10)
            except subprocess.TimeoutExpired:
                am.kill()
                am.wait()
        for s in servers:
            s.shutdown()
            s.server_close()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        hook = ThreadingHTTPServer(("127.0.0.1", 0), WebhookHandler)
        hook.daemon_threads = True
        smtp = ThreadingSMTPServer(("127.0.0.1", 0), SmtpHandler)
        for s in (hook, smtp):
            servers.append(s)
            threading.Thread(target=s.serve_forever, daemon=True).start()
        hook_url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
        smtp_addr = f"127.0.0.1:{smtp.server_address[1]}"

        cfg = os.path.join(tmp, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write(
                f"""global:
  resolve_timeout: 5m
  smtp_smarthost: '{smtp_addr}'
  smtp_from: 'alertmanager@roundtrip.test'
  smtp_hello: 'localhost'
  smtp_require_tls: false
route:
  receiver: roundtrip
  group_by: [alertname, provider, client]
  group_wait: {GROUP_WAIT}s
  group_interval: {GROUP_INTERVAL}s
  repeat_interval: 1h
receivers:
  - name: roundtrip
    webhook_configs:
      - url: '{hook_url}'
        send_resolved: true
    email_configs:
      - to: 'ops@roundtrip.test'
        send_resolved: true
"""
            )
        check = subprocess.run(
            [shutil.which("amtool") or "amtool", "check-config", cfg], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError("amtool check-config on the test config failed:\n" + check.stdout + check.stderr)

        port = free_port()
        am_url = f"http://127.0.0.1:{port}"
        am_log = open(am_log_path, "w")
        am = subprocess.Popen(
            [
                am_binary(),
                f"--config.file={cfg}",
                f"--storage.path={os.path.join(tmp, 'data')}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug" if VERBOSE else "--log.level=info",
            ],
            stdout=am_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if am.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {am.returncode}")
            try:
                with urllib.request.urlopen(am_url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("alertmanager not ready after 30 s")
            time.sleep(0.2)
        log(f"alertmanager {am_url}, webhook {hook_url}, smtp {smtp_addr}")

        # --- firing: two replicas, then their re-sends -------------------------------
        now = dt.datetime.now(dt.timezone.utc)
        starts = now - dt.timedelta(minutes=5)
        valid_until = now + dt.timedelta(minutes=4)  # Prometheus: 4 x resend delay
        post_alerts(am_url, [alert(starts, valid_until)])  # replica A
        post_alerts(am_url, [alert(starts, valid_until, replica_delay=3)])  # replica B
        if not RECORDER.wait(lambda: "firing" in RECORDER.webhook_statuses(), 20):
            failures.append("no firing webhook notification within 20 s")
        for _ in range(SETTLE):
            time.sleep(1)
            # the replicas re-send while the alert fires
            post_alerts(am_url, [alert(starts, valid_until)])
            post_alerts(am_url, [alert(starts, valid_until, replica_delay=3)])
        RECORDER.wait(lambda: "firing" in RECORDER.email_statuses(), 10)

        hooks = RECORDER.webhook_statuses()
        mails = RECORDER.email_statuses()
        if hooks != ["firing"]:
            failures.append(f"after firing: webhook notifications {hooks}, expected exactly ['firing']")
        if mails != ["firing"]:
            failures.append(f"after firing: emails {mails}, expected exactly ['firing']")
        with RECORDER.lock:
            first = RECORDER.webhooks[0] if RECORDER.webhooks else {}
        if first:
            if first.get("version") != "4":
                failures.append(f"webhook payload version {first.get('version')!r}, expected '4'")
            alerts = first.get("alerts", [])
            if len(alerts) != 1:
                failures.append(f"firing notification carries {len(alerts)} alerts, expected 1")
            elif alerts[0].get("labels", {}).get("provider") != "sg-main":
                failures.append(f"firing alert labels {alerts[0].get('labels')}")
            if first.get("groupLabels") != {"alertname": "PostrunnerProviderDown", "provider": "sg-main"}:
                failures.append(f"groupLabels {first.get('groupLabels')}")

        # --- resolved: endsAt in the past, from both replicas ------------------------
        ended = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        post_alerts(am_url, [alert(starts, ended)])
        post_alerts(am_url, [alert(starts, ended, replica_delay=3)])
        if not RECORDER.wait(lambda: "resolved" in RECORDER.webhook_statuses(), 20):
            failures.append("no resolved webhook notification within 20 s")
        RECORDER.wait(lambda: "resolved" in RECORDER.email_statuses(), 10)
        time.sleep(SETTLE)
        post_alerts(am_url, [alert(starts, ended, replica_delay=3)])  # a late replica
        time.sleep(2 * GROUP_INTERVAL + 1)

        hooks = RECORDER.webhook_statuses()
        mails = RECORDER.email_statuses()
        if hooks != ["firing", "resolved"]:
            failures.append(f"webhook notifications {hooks}, expected exactly ['firing', 'resolved']")
        if mails != ["firing", "resolved"]:
            failures.append(f"emails {mails}, expected exactly ['firing', 'resolved']")
        with RECORDER.lock:
            last = RECORDER.webhooks[-1] if RECORDER.webhooks else {}
        if last.get("status") == "resolved":
            alerts = last.get("alerts", [])
            if len(alerts) != 1 or alerts[0].get("status") != "resolved":
                failures.append(f"resolved notification alerts: {alerts}")
    except Exception as e:  # noqa: BLE001 - report any failure, then clean up
        failures.append(f"{type(e).__name__}: {e}")
    finally:
        stop_everything()
        if failures:
            try:
                with open(am_log_path) as f:
                    sys.stderr.write("--- alertmanager log ---\n" + f.read() + "---\n")
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        for f in failures:
            log("FAIL: " + f)
        return 1
    log("OK: one firing and one resolved notification (webhook and email), two replicas posting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
