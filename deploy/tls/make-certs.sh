#!/usr/bin/env bash
# Usage: deploy/tls/make-certs.sh [--force] [OUTPUT_DIR]
#
# Makes the TLS files docker-compose.yml mounts (default OUTPUT_DIR: deploy/tls), with
# openssl:
#   ca.crt, ca.key              a private CA (10 years); every postrunner role trusts
#                               ca.crt (DATABASE_URL ...&sslrootcert=/certs/ca.crt)
#   postgres.crt, postgres.key  PostgreSQL's server certificate, signed by the CA, for
#                               the host names `postgres` (inside the compose network),
#                               `localhost` and 127.0.0.1 (the published port), so
#                               sslmode=verify-full holds
#   nginx.crt, nginx.key        a certificate for the load balancer, signed by the same
#                               CA, for $PUBLIC_HOST (default localhost): for trying the
#                               stack; in production put your real certificate and key
#                               there (e.g. from Let's Encrypt) under the same names
# Keys are ECDSA P-256, certificates X.509 v3 with subjectAltName, key usage and
# extended key usage (rustls, which sqlx uses, rejects certificates without them).
# Keys are written mode 0600, certificates 0644. PostgreSQL also wants its key owned by
# the server's user: the one-shot `certs` service of docker-compose.yml copies
# postgres.crt/.key into the `pgtls` volume as postgres:postgres 0600, whatever their
# owner on the host.
#
# Existing files are kept (so the CA survives re-runs) unless --force is given.
# Never commit the keys (.gitignore lists deploy/tls/*.key).
set -euo pipefail

force=no
if [ "${1:-}" = "--force" ]; then force=yes; shift; fi
out=${1:-"$(dirname "$0")"}
public_host=${PUBLIC_HOST:-localhost}
days_ca=3650
days_leaf=825
mkdir -p "$out"
cd "$out"
umask 077

if [ "$force" = no ] && [ -e ca.key ] && [ -e postgres.key ] && [ -e nginx.key ]; then
  echo "make-certs.sh: $out already has ca, postgres and nginx certificates (--force to remake)"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

if [ "$force" = yes ] || [ ! -e ca.key ] || [ ! -e ca.crt ]; then
  newkey ca.key
  openssl req -x509 -new -key ca.key -sha256 -days "$days_ca" \
    -subj "/CN=postrunner private CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out ca.crt
fi

# leaf NAME CN SAN
leaf() {
  local name=$1 cn=$2 san=$3
  newkey "$name.key"
  openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
  cat > "$tmp/$name.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
  openssl x509 -req -in "$tmp/$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -CAserial "$tmp/ca.srl" -sha256 -days "$days_leaf" -extfile "$tmp/$name.ext" \
    -out "$name.crt" 2>/dev/null
  openssl verify -CAfile ca.crt "$name.crt" >/dev/null
}

leaf postgres postgres "DNS:postgres,DNS:localhost,IP:127.0.0.1"
if [ "$public_host" = localhost ]; then
  leaf nginx localhost "DNS:localhost,IP:127.0.0.1"
else
  leaf nginx "$public_host" "DNS:$public_host,DNS:localhost,IP:127.0.0.1"
fi

chmod 0600 ca.key postgres.key nginx.key
chmod 0644 ca.crt postgres.crt nginx.crt
echo "make-certs.sh: wrote $(pwd)/{ca,postgres,nginx}.{crt,key}"
