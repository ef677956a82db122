# Tier rate limits (shared by every worker and by API instances sharing
# memcached), the per-address limit, the memcached outage fallback, the
# cache's invalidation and statistics, and history retention.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
conf=$ASSAY_STACK_DIR/conf/assay.conf
mc_port() { cat "$ASSAY_STACK_DIR/run/memcached.port"; }

# burst N PATH [curl args]: N requests from one curl, 8 at a time; one status per line.
burst() {
  local n=$1 path=$2 urls=() i
  shift 2
  for i in $(seq 1 "$n"); do urls+=(-o /dev/null "$ASSAY_URL$path"); done
  curl -s -Z --parallel-max 8 -w '%{http_code}\n' "$@" "${urls[@]}" 2>/dev/null
}
count_of() { grep -c "^$1\$" || true; }

# Free tier: 20 requests a minute, whichever workers serve them.
KEY=$(new_tenant "free_$$_$RANDOM" free)
out=$(burst 20 /api/v1/runs -H "Authorization: Bearer $KEY")
check "free tier: 20 requests pass, over all workers" "$(count_of 200 <<<"$out")" 20
api GET /api/v1/runs
check "free tier: the 21st gets 429" "$status" 429
check "429 is problem+json" "$(header Content-Type)" application/problem+json
check "code" "$(json .code)" RATE_LIMIT_EXCEEDED
check "current_tier" "$(json .current_tier)" free
check "limits name this tier and the next" "$(json '.limits.current, .limits.pro' | tr '\n' ' ')" "20 100 "
check_match "upgrade_url" "$(json .upgrade_url)" .
check_match "retry_after in the body" "$(json .retry_after)" '^[0-9]+$'
check "Retry-After header agrees" "$(header Retry-After)" "$(json .retry_after)"
check "X-RateLimit-Tier" "$(header X-RateLimit-Tier)" free
check "X-RateLimit-Limit" "$(header X-RateLimit-Limit)" 20
check "X-RateLimit-Window" "$(header X-RateLimit-Window)" 60
check "X-RateLimit-Remaining" "$(header X-RateLimit-Remaining)" 0
check_match "X-RateLimit-Reset is a time" "$(header X-RateLimit-Reset)" '^1[0-9]{9}$'
check "RateLimit-Policy" "$(header RateLimit-Policy)" '"requests";q=20;w=60'
check_match "RateLimit" "$(header RateLimit)" '^"requests";r=0;t=[0-9]+$'
check "one figure: RateLimit t= is Retry-After" "$(header RateLimit | sed 's/.*t=//')" "$(header Retry-After)"
check_match "one figure: X-RateLimit-Reset is now + Retry-After" \
  "$(( $(header X-RateLimit-Reset) - $(date +%s) - $(header Retry-After) ))" '^-?[0-2]$'

# Runs per hour are limited separately from requests.
KEY=$(new_tenant "runs_$$_$RANDOM" free)
analysis=$(new_analysis)
for i in $(seq 1 10); do
  api POST /api/v1/runs "{\"name\":\"r$i\",\"analysis_id\":\"$analysis\"}"
  [ "$status" = 201 ] || fail "run $i of 10: $status $body"
done
check "runs: a POST shows both policies" "$(header RateLimit-Policy)" '"requests";q=20;w=60, "runs";q=10;w=3600'
api POST /api/v1/runs "{\"name\":\"r11\",\"analysis_id\":\"$analysis\"}"
check "runs: the 11th in an hour gets 429" "$status" 429
check "runs: the runs window decides" "$(header X-RateLimit-Window)" 3600
check "runs: its limit" "$(header X-RateLimit-Limit)" 10
check_match "runs: says so" "$(json .detail)" "10 new runs per 3600 s"
first=$(header Retry-After)
for i in 1 2 3 4 5 6; do api POST /api/v1/runs "{\"name\":\"again$i\",\"analysis_id\":\"$analysis\"}"; done
# Refused early in an hour, the wait runs into the next one: the previous
# window's 10 weigh until 10% of it has passed (at most 3,600 + 360 s).
check "runs: refused again, the wait does not grow with refusals" \
  "$(( $(header Retry-After) <= first + 1 && $(header Retry-After) <= 3960 ))" 1
api GET /api/v1/runs
check "runs: other requests still pass" "$status" 200
check "runs: no run was lost or added" "$(json '.runs | length')" 10

# Pro is higher.
KEY=$(new_tenant "pro_$$_$RANDOM" pro)
out=$(burst 30 /api/v1/runs -H "Authorization: Bearer $KEY")
check "pro tier: 30 requests pass" "$(count_of 200 <<<"$out")" 30
api GET /api/v1/runs
check "pro tier: limit 100" "$(header X-RateLimit-Limit)" 100

# Without a key: limited per client address; the probes never are.
out=$(burst 150 /health/detailed)
check_match "per address: some of 150 quick anonymous requests get 429" "$(count_of 429 <<<"$out")" '^[1-9]'
check "per address: none fail otherwise" "$(grep -vc '^\(200\|429\)$' <<<"$out")" 0
http GET /health/detailed
[ "$status" = 429 ] && check "per address: policy" "$(header RateLimit-Policy)" '"address";q=50;w=1'
out=$(burst 150 /live)
check "probes are never limited" "$(count_of 200 <<<"$out")" 150
sleep 2

# Two API instances sharing two memcached servers: one limit.
mc2=$(free_port)
user=(); [ "$(id -u)" -eq 0 ] && user=(-u nobody)
memcached "${user[@]}" -l 127.0.0.1 -p "$mc2" -U 0 -m 16 &
mc2_pid=$!
mc2_up() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$mc2"; }
eventually "a second memcached" 50 mc2_up
for i in 1 2; do
  { cat "$conf"; printf '[api]\nlisten = %s\nworkers = 2\nmemcached_servers = 127.0.0.1:%s,127.0.0.1:%s\n' \
      "$tmp/api$i.sock" "$(mc_port)" "$mc2"; } >"$tmp/api$i.conf"
  env -u MEMCACHED_SERVERS assay-api -c "$tmp/api$i.conf" 2>"$tmp/api$i.log" &
  echo $! >"$tmp/api$i.pid"
done
sock_up() { [ -S "$tmp/api1.sock" ] && [ -S "$tmp/api2.sock" ]; }
eventually "two extra API instances up" 50 sock_up
fcgi() { # fcgi INSTANCE KEY PATH: the status the instance answers
  env -i REQUEST_METHOD=GET REQUEST_URI="$3" REMOTE_ADDR=127.0.0.1 HTTP_AUTHORIZATION="Bearer $2" \
    cgi-fcgi -bind -connect "$tmp/api$1.sock" | sed -n 's/^Status: \([0-9]*\).*/\1/p' | tr -d '\r'
}
KEY=$(new_tenant "shared_$$_$RANDOM" free)
codes=
for i in $(seq 1 21); do codes="$codes $(fcgi $((i % 2 + 1)) "$KEY" /api/v1/runs)"; done
check "two instances, two memcached: one limit of 20" "$(tr ' ' '\n' <<<"$codes" | count_of 200)" 20
check "two instances: the 21st refused" "${codes##* }" 429
stats=$(env -i REQUEST_METHOD=GET REQUEST_URI=/internal/cache-stats REMOTE_ADDR=127.0.0.1 \
  cgi-fcgi -bind -connect "$tmp/api1.sock" | sed '1,/^\r*$/d')
check "cache-stats lists both servers" "$(jq -r '[.servers[].status] | join(",")' <<<"$stats")" "up,up"
far=$(env -i REQUEST_METHOD=GET REQUEST_URI=/internal/cache-stats REMOTE_ADDR=192.0.2.7 \
  cgi-fcgi -bind -connect "$tmp/api1.sock" | sed -n 's/^Status: \([0-9]*\).*/\1/p' | tr -d '\r')
check "cache-stats: refused to non-loopback callers" "$far" 403
far=$(env -i REQUEST_METHOD=GET REQUEST_URI=/metrics REMOTE_ADDR=192.0.2.7 \
  cgi-fcgi -bind -connect "$tmp/api1.sock" | tr -d '\r')
check "metrics: refused outside metrics_allow" "$(sed -n 's/^Status: \([0-9]*\).*/\1/p' <<<"$far")" 403
check_match "metrics: refused as problem+json" "$far" 'only served to the networks in metrics_allow'
near=$(env -i REQUEST_METHOD=GET REQUEST_URI=/metrics REMOTE_ADDR=::ffff:127.0.0.1 \
  cgi-fcgi -bind -connect "$tmp/api1.sock" | tr -d '\r' | sed -n 's/^Status: \([0-9]*\).*/\1/p')
check "metrics: served to loopback" "${near:-200}" 200
kill "$mc2_pid"
wait "$mc2_pid" 2>/dev/null
KEY=$(new_tenant "onedown_$$_$RANDOM" free)
codes=
for i in $(seq 1 22); do codes="$codes $(fcgi $((i % 2 + 1)) "$KEY" /api/v1/runs)"; done
check "one of two memcached down: no 5xx" "$(tr ' ' '\n' <<<"$codes" | grep -c '^5')" 0
for i in 1 2; do kill "$(cat "$tmp/api$i.pid")"; wait "$(cat "$tmp/api$i.pid")" 2>/dev/null; done

# memcached killed: no 5xx, limits still hold on this host, and it says so.
KEY=$(new_tenant "outage_$$_$RANDOM" free)
api GET /api/v1/runs
log_mark
kill "$(cat "$ASSAY_STACK_DIR/run/memcached.pid")"
gone() { ! bash -c "exec 3<>/dev/tcp/127.0.0.1/$(mc_port)"; }
eventually "memcached stopped" 50 gone
out=$(burst 24 /api/v1/runs -H "Authorization: Bearer $KEY")
check "memcached down: zero 5xx" "$(grep -c '^5' <<<"$out")" 0
check "memcached down: the limit still holds on this host" "$(count_of 200 <<<"$out")" 19
http GET /health/detailed
check "health/detailed shows the degradation" "$(json .degraded)" true
check "health/detailed: memcached warns" "$(json '.checks["memcached:responseTime"][0].status')" warn
check "the outage is logged once" "$(log_since | grep -c 'memcached unreachable')" 1
stack_up
back() { http GET /health/detailed && [ "$(json .degraded)" = false ]; }
eventually "memcached back: shared again" 150 back
KEY=$(new_tenant "back_$$_$RANDOM" free)
api GET /api/v1/runs
tid=$(sql "SELECT t.id FROM tenants t JOIN api_keys k ON k.tenant_id = t.id WHERE k.prefix = '${KEY:0:14}'")
w=$(( $(date +%s) / 60 ))
mcv=$(printf 'get assay:rl:t:%s:requests:%s\r\nquit\r\n' "$tid" "$w" | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$(mc_port); cat >&3; cat <&3" | sed -n 2p | tr -d '\r')
[ -z "$mcv" ] && { w=$((w - 1)); mcv=1; }  # a minute boundary between the two reads
check "memcached back: counters live in memcached again" "$mcv" 1

# Cache: a write is seen by the next read, whichever worker caches.
KEY=$ASSAY_API_KEY
analysis=$(new_analysis)
for i in 1 2 3 4 5 6 7 8; do api GET "/api/v1/analyses/$analysis" >/dev/null; done
api PATCH "/api/v1/analyses/$analysis" '{"title":"renamed"}'
stale=0
for i in 1 2 3 4 5 6 7 8; do api GET "/api/v1/analyses/$analysis"; [ "$(json .analysis.title)" = renamed ] || stale=1; done
check "analysis update: no worker serves the old copy" "$stale" 0
api DELETE "/api/v1/analyses/$analysis"
gone=1
for i in 1 2 3 4 5 6 7 8; do api GET "/api/v1/analyses/$analysis"; [ "$status" = 404 ] || gone=0; done
check "analysis delete: 404 everywhere at once" "$gone" 1
analysis=$(new_analysis)
api POST /api/v1/runs "{\"name\":\"c\",\"analysis_id\":\"$analysis\",\"start\":false}"
run=$(json .run.id)
for i in 1 2 3 4; do api GET "/api/v1/runs/$run" >/dev/null; done
api POST "/api/v1/runs/$run/cancel"
api GET "/api/v1/runs/$run"
check "cancel: the next read says canceled" "$(json .run.status)" canceled
# Runs in progress are cached briefly; every change forgets them: the API's
# own (start) and the executor's (claim, outcome).
api POST /api/v1/runs "{\"name\":\"live\",\"analysis_id\":\"$analysis\",\"start\":false}"
live=$(json .run.id)
for i in 1 2 3 4; do api GET "/api/v1/runs/$live" >/dev/null; done
live_key=assay:p:$(sql "SELECT project_id FROM analysis_jobs WHERE id = '$live'"):run:$live
check "a created run is cached" "$(mc "get $live_key" | grep -c '"status": "created"')" 1
api POST "/api/v1/runs/$live/start"
api GET "/api/v1/runs/$live"
check_match "start: the next read is not the cached 'created'" "$(json .run.status)" '^(pending|running|completed)$'
done_in_db() { [ "$(sql "SELECT status FROM analysis_jobs WHERE id = '$live'")" = completed ]; }
eventually "the executor completes it" 100 done_in_db
# The executor forgets the cached run just after its commit.
forgotten() { ! mc "get $live_key" | grep -q '"status"'; }
eventually "the executor forgot the cached run" 50 forgotten
stale=0
for i in 1 2 3 4 5 6 7 8; do api GET "/api/v1/runs/$live"; [ "$(json .run.status)" = completed ] || stale=1; done
check "executor's change: no worker serves the cached run in progress" "$stale" 0
# The canceled run's tombstone (left by the cancel, a few seconds) gone,
# its first read stores it and the others are hits.
run_key=assay:p:$(sql "SELECT project_id FROM analysis_jobs WHERE id = '$run'"):run:$run
no_tombstone() { ! mc "get $run_key" | grep -q '^VALUE'; }
eventually "the cancel's tombstone expires" 100 no_tombstone
before=$(curl -s "$ASSAY_URL/internal/cache-stats" | jq ".hits + .local_hits")
for i in 1 2 3 4 5 6; do api GET "/api/v1/runs/$run" >/dev/null; done
after=$(curl -s "$ASSAY_URL/internal/cache-stats" | jq ".hits + .local_hits")
check "finished runs are served from the cache" "$((after - before))" 5
check_match "cache-stats: hit ratio" "$(curl -s "$ASSAY_URL/internal/cache-stats" | jq .hit_ratio)" '^0?\.[0-9]+|1'
other=$(new_tenant "peek_$$_$RANDOM" pro)
KEY=$other api GET "/api/v1/runs/$run"
check "a cached run is still another tenant's 404" "$status" 404

# History: a free tenant keeps 7 days; older runs are hidden, then pruned.
KEY=$(new_tenant "old_$$_$RANDOM" free)
analysis=$(new_analysis)
api POST /api/v1/runs "{\"name\":\"old\",\"analysis_id\":\"$analysis\"}"
old=$(json .run.id)
api POST /api/v1/runs "{\"name\":\"new\",\"analysis_id\":\"$analysis\"}"
sql "UPDATE analysis_jobs SET created_at = now() - interval '8 days' WHERE id = '$old'" >/dev/null
api GET "/api/v1/runs/$old"
check "a run past the tier's history: 404" "$status" 404
api GET /api/v1/runs
check "and not listed" "$(json '[.runs[].name] | join(",")')" new
out=$(assayctl prune --config "$conf" --batch 1)
check_match "prune reports per tier" "$out" "free: [1-9][0-9]* run\(s\) older than 7 days deleted"
check "prune deleted it" "$(sql "SELECT count(*) FROM analysis_jobs WHERE id = '$old'")" 0
check "and kept the recent one" "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'new' AND analysis_id = '$analysis'")" 1
out=$(assayctl prune --batch 0 2>&1); rc=$?
check "prune: bad batch is a usage error" "$rc" 2
rm -rf "$tmp"
finish
