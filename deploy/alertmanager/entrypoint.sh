#!/bin/sh
# Usage: entrypoint.sh [alertmanager flags...]
#
# The alertmanager container's entrypoint (docker-compose.yml; POSIX sh + awk, so it
# runs in the busybox-based prom/alertmanager image). Alertmanager does not read
# environment variables, so this:
# 1. renders $ALERTMANAGER_CONFIG_TEMPLATE (default /etc/alertmanager/alertmanager.yml):
#    a line ending in `# env: NAME` gets its single-quoted value replaced by $NAME
#    when NAME is set and not empty (placeholders are kept otherwise, with a warning);
#    paths under /run/alertmanager/ are moved to $ALERTMANAGER_RUN_DIR;
# 2. writes each secret variable to $ALERTMANAGER_RUN_DIR/secrets/<file>, mode 0600
#    (a tmpfs in compose), where the config's *_file / credentials_file fields point;
# 3. execs alertmanager --config.file=$ALERTMANAGER_RUN_DIR/alertmanager.yml "$@".
# ALERTMANAGER_RENDER_ONLY=1 stops after step 2 (bin/check-deploy renders the config
# with deploy/env.example and runs amtool check-config on the result).
set -eu

src=${ALERTMANAGER_CONFIG_TEMPLATE:-/etc/alertmanager/alertmanager.yml}
run=${ALERTMANAGER_RUN_DIR:-/run/alertmanager}

umask 077
mkdir -p "$run/secrets"

# variable -> file under secrets/ (the names alertmanager.yml refers to)
for pair in ALERTMANAGER_SMTP_PASSWORD:smtp_password \
            ALERTMANAGER_CHAT_WEBHOOK_URL:chat_webhook_url \
            ALERTMANAGER_WEBHOOK_TOKEN:webhook_token \
            ALERTMANAGER_SMS_TOKEN:sms_token; do
  var=${pair%%:*}
  file=${pair#*:}
  eval "value=\${$var:-}"
  if [ -n "$value" ]; then
    printf '%s' "$value" > "$run/secrets/$file"
  elif [ ! -e "$run/secrets/$file" ]; then
    echo "entrypoint.sh: $var is not set; $file left empty" >&2
    : > "$run/secrets/$file"
  fi
done

awk -v run="$run" -v q="'" '
{
  line = $0
  if (match(line, /# env: [A-Z_][A-Z0-9_]*[ \t]*$/)) {
    name = substr(line, RSTART + 7)
    sub(/[ \t]+$/, "", name)
    value = ENVIRON[name]
    if (value != "") {
      gsub(q, q q, value)
      if (match(line, q "([^" q "]|" q q ")*" q))
        line = substr(line, 1, RSTART - 1) q value q substr(line, RSTART + RLENGTH)
    } else {
      print "entrypoint.sh: " name " is not set; keeping the placeholder" > "/dev/stderr"
    }
  }
  out = ""
  pat = "/run/alertmanager/"
  while ((i = index(line, pat)) > 0) {
    out = out substr(line, 1, i - 1) run "/"
    line = substr(line, i + length(pat))
  }
  print out line
}' "$src" > "$run/alertmanager.yml"

if [ "${ALERTMANAGER_RENDER_ONLY:-}" = 1 ]; then
  exit 0
fi
exec /bin/alertmanager --config.file="$run/alertmanager.yml" "$@"
