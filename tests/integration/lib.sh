# Helpers for integration tests. A test sources this, talks to the stack
# named by ASSAY_URL / ASSAY_STACK_DIR like a real client, and ends with
# `finish`. Checks never stop the test: every failure is reported.
set -u
fails=0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; fails=$((fails + 1)); }
finish() { [ "$fails" -eq 0 ]; exit; }

# check DESCRIPTION ACTUAL EXPECTED
check() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1: expected '$3', got '$2'"; fi; }
# check_match DESCRIPTION TEXT REGEX
check_match() {
  if printf '%s' "$2" | grep -Eq -- "$3"; then ok "$1"; else fail "$1: '$2' !~ /$3/"; fi
}

# http METHOD PATH [curl options]: sets status, body, headers.
http() {
  local method=$1 path=$2 h b
  shift 2
  h=$(mktemp) b=$(mktemp)
  if [ "$method" = HEAD ]; then
    status=$(curl -s -I -o "$h" -w '%{http_code}' "$@" "$ASSAY_URL$path")
    : >"$b"
  else
    status=$(curl -s -o "$b" -D "$h" -w '%{http_code}' -X "$method" "$@" "$ASSAY_URL$path")
  fi
  body=$(cat "$b")
  headers=$(tr -d '\r' <"$h")
  # Every response is kept for the contract check against the OpenAPI document.
  [ -n "${ASSAY_RESPONSES:-}" ] &&
    jq -nc --arg m "$method" --arg p "$path" --argjson s "${status:-0}" \
      --arg t "$(header Content-Type)" --rawfile b "$b" \
      '{method: $m, path: $p, status: $s, type: $t, body: $b}' >>"$ASSAY_RESPONSES" 2>/dev/null
  rm -f "$h" "$b"
}
header() { printf '%s\n' "$headers" | grep -i "^$1:" | head -n 1 | cut -d' ' -f2-; }
json() { printf '%s' "$body" | jq -r "$@" 2>/dev/null; }

# Wait up to $2 tenths of a second for the command to succeed, times
# ASSAY_TEST_PATIENCE (3 unless set): a busy machine is slow, not wrong.
eventually() {
  local what=$1 tries=$(($2 * ${ASSAY_TEST_PATIENCE:-3})) i
  shift 2
  for i in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && { ok "$what"; return 0; }
    sleep 0.1
  done
  fail "$what (gave up)"
  return 1
}

api_log="$ASSAY_STACK_DIR/log/assay-api.log"
# Node tools (tools/node/package.json), fetched by tools/stack check.
export ASSAY_NODE_MODULES=${ASSAY_NODE_MODULES:-$srcdir/var/tools/node/node_modules}
# Lines the api logged since the mark: log_mark; ...; log_since | grep ...
log_mark() { mark=$(wc -l <"$api_log"); }
log_since() { tail -n +"$((mark + 1))" "$api_log"; }

# running, as_pg, free_port, pg_bin: the stack's own helpers.
# shellcheck source=tools/lib.sh
. "$srcdir/tools/lib.sh"
pg_ctl() { as_pg "$pg_bin/pg_ctl" -D "$(cat "$ASSAY_STACK_DIR/pgdata")" "$@"; }
# Bring every stopped part of the stack back.
stack_up() {
  "$srcdir/tools/stack" up --no-build --server "$ASSAY_SERVER" --dir "$ASSAY_STACK_DIR" 2>&1 |
    grep -v '^stack: up'
}

# api METHOD PATH [JSON|@FILE] [curl options]: an authenticated call with the
# key in $KEY (default: the stack's demo key); JSON, if given, is the body.
api() {
  local m=$1 p=$2 d=
  shift 2
  case ${1-} in -*|'') ;; *) d=$1; shift ;; esac
  local auth=(-H "Authorization: Bearer ${KEY:-$ASSAY_API_KEY}")
  if [ -n "$d" ]; then
    http "$m" "$p" "${auth[@]}" -H 'Content-Type: application/json' --data-binary "$d" "$@"
  elif [ "$m" = POST ]; then
    http "$m" "$p" "${auth[@]}" -d '' "$@"
  else
    http "$m" "$p" "${auth[@]}" "$@"
  fi
}
# A new tenant with a key: new_tenant NAME TIER -> prints the key.
new_tenant() {
  assayctl tenant create "$1" --tier "$2" >/dev/null && assayctl key create --tenant "$1" 2>/dev/null
}
# An analysis for the current $KEY: prints its id.
new_analysis() {
  api POST /api/v1/analyses '{"title":"t","script":"function analyze(i) { return i; }"}'
  json .analysis.id
}
sql() { psql -tAq "$DATABASE_URL" -c "$1"; }
# analysis SCRIPT [extra JSON members] -> the id of an analysis for $KEY,
# run once, with a generous timeout (a busy machine is slow, not wrong);
# tests that expect a timeout set a short one of their own.
analysis() {
  local f; f=$(mktemp)
  jq -nc --arg s "$1" "{title: \"t\", script: \$s, max_attempts: 1, timeout_ms: 20000 ${2:-}}" >"$f"
  api POST /api/v1/analyses "@$f"
  rm -f "$f"
  json .analysis.id
}
# submit ANALYSIS [INPUT] -> the id of a new run of it.
submit() {
  api POST /api/v1/runs "{\"name\":\"t\",\"analysis_id\":\"$1\"${2:+,\"input\":$2}}"
  json .run.id
}
# finished RUN: true once the run has ended.
finished() {
  api GET "/api/v1/runs/$1"
  case $(json .run.status) in completed|failed|canceled) return 0 ;; esac
  return 1
}
# The stack's assay.conf, which a test may change: keep_conf saves it and,
# when the test exits, puts it back and reloads the API; $tmp is the test's
# scratch directory, removed then.
conf=$ASSAY_STACK_DIR/conf/assay.conf
api_reload() { kill -HUP "$(cat "$ASSAY_STACK_DIR/run/assay-api.pid")"; }
keep_conf() {
  tmp=$(mktemp -d)
  cp "$conf" "$tmp/assay.conf.orig"
  trap 'cp "$tmp/assay.conf.orig" "$conf"; api_reload; rm -rf "$tmp"' EXIT
}
# A memcached command to the stack's server; prints the reply.
mc() {
  local hp=${MEMCACHED_SERVERS%%,*}
  printf '%s\r\nquit\r\n' "$1" |
    timeout 2 bash -c "exec 3<>/dev/tcp/${hp%:*}/${hp#*:}; cat >&3; cat <&3" | tr -d '\r'
}
