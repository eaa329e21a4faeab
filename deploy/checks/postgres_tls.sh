#!/usr/bin/env bash
# Usage: deploy/checks/postgres_tls.sh
#
# The compose stack's PostgreSQL TLS set-up, on this machine's PostgreSQL binaries
# (no Docker): makes certificates with deploy/tls/make-certs.sh into a temp dir,
# installs the server key the way the compose `certs` service does (postgres-owned,
# 0600), starts a throw-away cluster on a free 127.0.0.1 port with the same settings
# as docker-compose.yml (ssl=on, ssl_cert_file, ssl_key_file, ssl_min_protocol_version,
# hba_file=deploy/postgres/pg_hba.conf), then checks with psql (libpq):
#   - sslmode=verify-full&sslrootcert=ca.crt to host `postgres` connects over TLS;
#   - a connection without TLS is rejected (pg_hba: hostnossl -> reject);
#   - verify-full to a name not in the certificate fails.
# Runs the server as the postgres user when run as root. Exits non-zero on failure;
# stops the cluster and removes the temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] || { echo "postgres_tls.sh: PostgreSQL not installed (apt-get install postgresql)" >&2; exit 1; }
psql=$bindir/psql

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

tmp=$(mktemp -d /tmp/pg-tls-check.XXXXXX)
started=no
cleanup() {
  if [ "$started" = yes ]; then as_pg "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp"

deploy/tls/make-certs.sh "$tmp/certs" >/dev/null
mkdir -p "$tmp/tls" "$tmp/sock" "$tmp/log"
# what the compose `certs` service does
owner=$([ "$(id -u)" = 0 ] && echo postgres || id -un)
install -o "$owner" -m 0644 "$tmp/certs/postgres.crt" "$tmp/tls/server.crt"
install -o "$owner" -m 0600 "$tmp/certs/postgres.key" "$tmp/tls/server.key"
cp deploy/postgres/pg_hba.conf "$tmp/pg_hba.conf"
chmod 644 "$tmp/pg_hba.conf"
[ "$(id -u)" = 0 ] && chown -R postgres "$tmp/sock" "$tmp/tls" "$tmp/log"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
password=check-$RANDOM$RANDOM
pwfile=$tmp/pw
printf '%s\n' "$password" > "$pwfile"
[ "$(id -u)" = 0 ] && chown postgres "$pwfile"
mkdir "$tmp/data"
[ "$(id -u)" = 0 ] && chown postgres "$tmp/data"
as_pg "$bindir/initdb" -D "$tmp/data" -U postgres --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null

as_pg "$bindir/pg_ctl" -D "$tmp/data" -w -t 30 -l "$tmp/log/server.log" \
  -o "-p $port -k $tmp/sock -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=$tmp/tls/server.crt -c ssl_key_file=$tmp/tls/server.key -c ssl_min_protocol_version=TLSv1.2 -c hba_file=$tmp/pg_hba.conf" \
  start >/dev/null || { cat "$tmp/log/server.log" >&2; exit 1; }
started=yes

fail=0
base="hostaddr=127.0.0.1 port=$port user=postgres dbname=postgres password=$password connect_timeout=5"

# 1. verify-full to `postgres`, as every role connects
got=$("$psql" -X -At "$base host=postgres sslmode=verify-full sslrootcert=$tmp/certs/ca.crt" \
  -c "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1) || true
case "$got" in
  t\|TLSv1.[23]) echo "postgres_tls.sh: verify-full to host postgres: OK ($got)" ;;
  *) echo "postgres_tls.sh: FAIL: verify-full to host postgres: $got" >&2; fail=1 ;;
esac

# 2. without TLS: refused by pg_hba
if got=$("$psql" -X -At "$base host=postgres sslmode=disable" -c "SELECT 1" 2>&1); then
  echo "postgres_tls.sh: FAIL: a connection without TLS was accepted" >&2; fail=1
elif grep -q "no encryption" <<<"$got"; then
  echo "postgres_tls.sh: without TLS: refused: OK"
else
  echo "postgres_tls.sh: FAIL: without TLS: unexpected error: $got" >&2; fail=1
fi

# 3. verify-full to a name the certificate does not carry
if got=$("$psql" -X -At "$base host=db.example.invalid sslmode=verify-full sslrootcert=$tmp/certs/ca.crt" -c "SELECT 1" 2>&1); then
  echo "postgres_tls.sh: FAIL: verify-full accepted a host name not in the certificate" >&2; fail=1
elif grep -qi "does not match" <<<"$got"; then
  echo "postgres_tls.sh: verify-full to another name: refused: OK"
else
  echo "postgres_tls.sh: FAIL: wrong host name: unexpected error: $got" >&2; fail=1
fi

if [ "$fail" != 0 ]; then
  echo "--- server log ---" >&2; cat "$tmp/log/server.log" >&2
fi
exit "$fail"
