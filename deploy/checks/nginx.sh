#!/usr/bin/env bash
# Usage: deploy/checks/nginx.sh [path/to/nginx.conf]
#
# Checks deploy/nginx/nginx.conf on this machine, without Docker:
# 1. `nginx -t` on a temporary copy in which only what exists inside the compose
#    network is replaced: the certificate paths (/etc/nginx/tls/ -> a throw-away
#    self-signed certificate made with openssl) and the upstream host (web:8080 ->
#    127.0.0.1, since `nginx -t` resolves upstream names);
# 2. a real run of a second copy on free 127.0.0.1 ports (pid and temp files in the
#    temp dir, IPv6 listeners dropped) in front of a stand-in backend, checking:
#    HTTP -> HTTPS redirect; TLS with the certificate; /webhooks/, /u/, /healthz,
#    /readyz, /status proxied with X-Forwarded-For/-Proto and Host; /metrics and
#    /metrics/database refused (403) and never reaching the backend; other paths 404;
#    bodies over 2 MiB refused (413).
# Exits non-zero on any failure; stops the nginx it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

conf=${1:-deploy/nginx/nginx.conf}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "nginx.sh: nginx not installed (apt-get install nginx)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "nginx.sh: openssl not installed" >&2; exit 1; }

tmp=$(mktemp -d /tmp/nginx-check.XXXXXX)
nginx_pid=
cleanup() {
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nginx_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# nginx's workers run as nobody when started by root: they need to reach the temp dirs.
chmod 755 "$tmp"
mkdir -p "$tmp/tls"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$tmp/tls/server.key" -out "$tmp/tls/server.crt" 2>/dev/null

# 1. nginx -t: the configuration as deployed, but for the certificate and upstream host.
sed -e "s#/etc/nginx/tls/#$tmp/tls/#g" \
    -e "s#server web:8080#server 127.0.0.1:8080#" \
    "$conf" > "$tmp/nginx-t.conf"
grep -q "server 127.0.0.1:8080" "$tmp/nginx-t.conf" || { echo "nginx.sh: no 'server web:8080' upstream in $conf" >&2; exit 1; }
"$NGINX" -t -q -p "$tmp/" -c "$tmp/nginx-t.conf"
echo "nginx.sh: nginx -t: OK"

# 2. A real run.
read -r http_port https_port backend_port < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)
sed -e "s#/etc/nginx/tls/#$tmp/tls/#g" \
    -e "s#server web:8080#server 127.0.0.1:$backend_port#" \
    -e "s#^pid .*#pid $tmp/nginx.pid;#" \
    -e "/listen \[::\]/d" \
    -e "s#listen 80 #listen 127.0.0.1:$http_port #" \
    -e "s#listen 443 ssl #listen 127.0.0.1:$https_port ssl #" \
    -e "s#^http {#http {\n    client_body_temp_path $tmp/body;\n    proxy_temp_path $tmp/proxy;#" \
    "$conf" > "$tmp/nginx-run.conf"
grep -q "listen 127.0.0.1:$https_port ssl" "$tmp/nginx-run.conf" || { echo "nginx.sh: could not rewrite the listen ports" >&2; exit 1; }

"$NGINX" -p "$tmp/" -c "$tmp/nginx-run.conf" -g "daemon off;" >"$tmp/nginx.log" 2>&1 &
nginx_pid=$!

if ! HTTP_PORT=$http_port HTTPS_PORT=$https_port BACKEND_PORT=$backend_port CERT=$tmp/tls/server.crt \
     python3 - <<'EOF'
import http.client, json, os, socket, ssl, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

seen = []

class Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        seen.append({"method": self.command, "path": self.path, "len": len(body),
                     "headers": {k.lower(): v for k, v in self.headers.items()}})
        out = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = handle_any
    def log_message(self, *a): pass

srv = ThreadingHTTPServer(("127.0.0.1", int(os.environ["BACKEND_PORT"])), Backend)
srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()

http_port, https_port = int(os.environ["HTTP_PORT"]), int(os.environ["HTTPS_PORT"])
ctx = ssl.create_default_context(cafile=os.environ["CERT"])
ctx.minimum_version = ssl.TLSVersion.TLSv1_2

deadline = time.time() + 15
while True:
    try:
        socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            print("nginx did not start listening", file=sys.stderr); sys.exit(1)
        time.sleep(0.1)

failures = []
def check(cond, msg):
    if not cond:
        failures.append(msg)

def req(method, path, body=None, tls=True, headers=None):
    if tls:
        c = http.client.HTTPSConnection("localhost", https_port, context=ctx, timeout=10)
    else:
        c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    h = {"Host": "postrunner.example"}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

# HTTP -> HTTPS
st, h, _ = req("GET", "/webhooks/sg-main?x=1", tls=False)
check(st == 301 and h.get("location") == "https://postrunner.example/webhooks/sg-main?x=1",
      f"http: expected 301 to https://postrunner.example/webhooks/sg-main?x=1, got {st} {h.get('location')}")

# proxied routes
for method, path in [("POST", "/webhooks/sg-main"), ("GET", "/u/abc.def"), ("POST", "/u/abc.def"),
                     ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/status"), ("GET", "/status/providers")]:
    before = len(seen)
    body = b'[{"event":"delivered"}]' if method == "POST" else None
    st, h, data = req(method, path, body=body, headers={"X-Forwarded-For": "203.0.113.9"})
    check(st == 200 and len(seen) == before + 1, f"{method} {path}: expected 200 from the backend, got {st}")
    if len(seen) == before + 1:
        got = seen[-1]
        check(got["path"] == path and got["method"] == method, f"{method} {path}: backend saw {got['method']} {got['path']}")
        check(got["headers"].get("x-forwarded-proto") == "https", f"{path}: X-Forwarded-Proto {got['headers'].get('x-forwarded-proto')}")
        check(got["headers"].get("x-forwarded-for") == "203.0.113.9, 127.0.0.1", f"{path}: X-Forwarded-For {got['headers'].get('x-forwarded-for')}")
        check(got["headers"].get("host") == "postrunner.example", f"{path}: Host {got['headers'].get('host')}")
        if body:
            check(got["len"] == len(body), f"{path}: body of {got['len']} bytes, sent {len(body)}")
    check(h.get("strict-transport-security", "").startswith("max-age="), f"{path}: no HSTS header")

# never public
for path in ["/metrics", "/metrics/database", "/metrics/", "/webhooks/../metrics", "/webhooks/%2e%2e/metrics/database"]:
    before = len(seen)
    st, _, _ = req("GET", path)
    check(st == 403 and len(seen) == before, f"GET {path}: expected 403 without reaching the backend, got {st}")

# nothing else
for path in ["/", "/admin", "/webhooksX"]:
    before = len(seen)
    st, _, _ = req("GET", path)
    check(st == 404 and len(seen) == before, f"GET {path}: expected 404, got {st}")

# body limit: 2 MiB passes, more is refused before the backend
before = len(seen)
st, _, _ = req("POST", "/webhooks/sg-main", body=b"x" * (2 * 1024 * 1024))
check(st == 200 and len(seen) == before + 1 and seen[-1]["len"] == 2 * 1024 * 1024, f"2 MiB body: got {st}")
before = len(seen)
st, _, _ = req("POST", "/webhooks/sg-main", body=b"x" * (2 * 1024 * 1024 + 1))
check(st == 413 and len(seen) == before, f"2 MiB + 1 body: expected 413, got {st}")

srv.shutdown()
for f in failures:
    print("nginx.sh: FAIL: " + f, file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
then
  echo "--- nginx log ---" >&2; cat "$tmp/nginx.log" >&2
  exit 1
fi
echo "nginx.sh: running proxy: OK (redirect, TLS, routes, forwarded headers, /metrics denied, 404, 2m body limit)"
