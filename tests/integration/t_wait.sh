# GET /api/v1/runs/{id}?wait=N: a long-poll served by assay-stream (the web
# server sends it there only with wait). It answers at once for a finished
# run, within moments of the end of a running one, at N for one still
# going, with GET's body and headers; bad values are a 400 like assay-api's;
# keys, tenants and the history window as GET; 1,000 concurrent waiters are
# all answered and cost assay-stream about what 1,000 idle event streams
# do (both measured here); a 60 s wait is not cut by the web server.
. "$(dirname "$0")/lib.sh"
[ -d "$ASSAY_NODE_MODULES/eventsource" ] ||
  { fail "eventsource missing (tools/stack check installs it)"; finish; }
keep_conf # sets $tmp
KEY=$ASSAY_API_KEY
auth="Authorization: Bearer $KEY"
smetric() { curl -s "$STREAM_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
waits() { smetric "run_waits_total{outcome=\"$1\"}"; }
now_ms() { date +%s%3N; }
ms_of() { date -d "$1" +%s%3N; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$(cat "$ASSAY_STACK_DIR/run/assay-stream.pid")/status"; }
held() { [ "$(smetric run_waits_active)" -ge "$1" ]; }
# wait_for RUN N [curl options]: the wait's answer, with elapsed (ms) set.
wait_for() {
  local run=$1 n=$2 t0
  shift 2
  t0=$(now_ms)
  api GET "/api/v1/runs/$run?wait=$n" "$@"
  elapsed=$(( $(now_ms) - t0 ))
}

idle=$(analysis 'function analyze(i) { return i; }')
sleepy=$(analysis 'function analyze(i) { var t = Date.now(); while (Date.now() - t < 1000) {} return {slept: true}; }')
parked() { # a run that is never started: it stays "created" until canceled
  api POST /api/v1/runs "{\"name\":\"parked\",\"analysis_id\":\"$idle\",\"start\":false}"
  json .run.id
}

# Streams and waits share max_streams: with 3, one stream and two waiters
# leave no room for another of either. Stopping, assay-stream answers its
# waiters 503 with Retry-After; started again (with the stack's
# max_streams), it starts with a fresh heap, whose growth is measured below.
stream_gone() { ! running "$(cat "$ASSAY_STACK_DIR/run/assay-stream.pid")"; }
restart_stream() {
  kill "$(cat "$ASSAY_STACK_DIR/run/assay-stream.pid")"
  eventually "assay-stream stopped" 100 stream_gone
  stack_up >/dev/null
}
sed -i 's/^max_streams = .*/max_streams = 3/' "$conf"
restart_stream
run=$(parked)
curl -sN -H "$auth" "$ASSAY_URL/api/v1/runs/$run/events" >/dev/null &
sse=$!
stopped=()
for i in 1 2; do
  ( api GET "/api/v1/runs/$run?wait=30"; echo "$status $(json .code) $(header Retry-After)" >"$tmp/stop$i" ) &
  stopped+=($!)
done
full() { [ "$(smetric sse_active_connections) $(smetric run_waits_active)" = "1 2" ]; }
eventually "one stream and two waiters held" 100 full
api GET "/api/v1/runs/$run?wait=5"
check "max_streams reached: a wait gets 503, Retry-After" "$status $(json .code) $(header Retry-After)" "503 TOO_MANY_STREAMS 5"
api GET "/api/v1/runs/$run/events"
check "max_streams reached: a stream too" "$status $(json .code)" "503 TOO_MANY_STREAMS"
cp "$tmp/assay.conf.orig" "$conf"
kill "$(cat "$ASSAY_STACK_DIR/run/assay-stream.pid")"
wait "${stopped[@]}"
check "assay-stream stopping: its waiters get 503, Retry-After" "$(cat "$tmp/stop1"; cat "$tmp/stop2")" \
  "503 SHUTTING_DOWN 1
503 SHUTTING_DOWN 1"
wait "$sse"
eventually "assay-stream stopped" 100 stream_gone
stack_up >/dev/null

# Admission counts the waits whose key is still being checked: with
# assay-stream's PostgreSQL backend stopped, a burst of five against
# max_streams = 3 has three admitted and two refused at once.
sed -i 's/^max_streams = .*/max_streams = 3/' "$conf"
restart_stream
run=$(parked)
backend=$(sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'assay-stream' LIMIT 1")
kill -STOP "$backend"
burst=()
for i in 1 2 3 4 5; do
  ( api GET "/api/v1/runs/$run?wait=1"; echo "$status $(json .code)" >"$tmp/burst$i" ) &
  burst+=($!)
done
refused() { [ "$(cat "$tmp"/burst* 2>/dev/null | grep -c '503 TOO_MANY_STREAMS')" -ge 2 ]; }
eventually "a burst while keys are being checked: two refused at once" 100 refused
kill -CONT "$backend"
wait "${burst[@]}"
check "  and three admitted, answered when their wait ended" \
  "$(cat "$tmp"/burst* | sort | uniq -c | awk '{ print $1, $2, $3 }' | tr '\n' ';')" \
  "3 200 null;2 503 TOO_MANY_STREAMS;"
cp "$tmp/assay.conf.orig" "$conf"
restart_stream

# A run that 60 s of waiting cannot see end: the web server must not cut
# the wait (nginx's default read timeout is 60 s). Answered in the background
# while the rest runs.
long=$(parked)
( t0=$(now_ms)
  code=$(curl -s -o "$tmp/long" -w '%{http_code}' -H "$auth" "$ASSAY_URL/api/v1/runs/$long?wait=60")
  echo "$code $(( $(now_ms) - t0 ))" >"$tmp/long.status" ) &
long_pid=$!
eventually "the 60 s waiter is held" 100 held 1

# A finished run: answered at once, exactly as GET without wait answers.
run=$(submit "$idle" '{"a": 1}')
eventually "a run completes" 200 finished "$run"
api GET "/api/v1/runs/$run"
plain_body=$body plain_etag=$(header ETag) plain_cc=$(header Cache-Control)
ended0=$(waits ended)
wait_for "$run" 30
check "finished run: 200 at once" "$status $(( elapsed < 1000 ))" "200 1"
check "finished run: the body GET sends" "$body" "$plain_body"
check "finished run: the same ETag" "$(header ETag)" "$plain_etag"
check "finished run: the same Cache-Control" "$(header Cache-Control)" "$plain_cc"
check_match "finished run: X-Request-ID" "$(header X-Request-ID)" '^[0-9a-f]{32}$'
check "served by assay-stream (counted there)" "$(( $(waits ended) - ended0 ))" 1
api GET "/api/v1/runs/$run" -H 'X-Request-ID: wait-test-0001'
api GET "/api/v1/runs/$run?wait=5" -H 'X-Request-ID: wait-test-0002'
check "a client's X-Request-ID is kept" "$(header X-Request-ID)" wait-test-0002
check "without wait it stays with assay-api" "$(( $(waits ended) - ended0 ))" 2
check "the /api alias waits too" "$(api GET "/api/runs/$run?wait=3"; echo "$status $(json .run.id)")" "200 $run"
api GET "/api/v1/runs/$run?wait=10" -H "If-None-Match: $plain_etag"
check "If-None-Match: 304 with its ETag" "$status $(header ETag) ${#body}" "304 $plain_etag 0"
http HEAD "/api/v1/runs/$run?wait=10" -H "$auth"
check "HEAD: 200, no body, GET's length" "$status $(header Content-Length)" "200 ${#plain_body}"

# A run that ends while waited for: answered as it ends, not at N.
# (Timed by assay-stream's log line of the answer: when it was sent, not
# when the shell, past curl and jq, saw it.)
run=$(submit "$sleepy")
wait_for "$run" 30 -H "X-Request-ID: wait-end-$$"
check "running run: 200 once it has ended" "$status $(json .run.status) $(json .run.result.slept)" "200 completed true"
sent=$(grep -F "\"request_id\":\"wait-end-$$\"" "$ASSAY_STACK_DIR/log/assay-stream.log" | jq -r .time)
lag=$(( $(ms_of "$sent") - $(ms_of "$(json .run.finished_at)") ))
echo "     answered $lag ms after the run's finished_at (waited $elapsed ms)"
check "answered within 200 ms of the run's end" "$(( lag >= 0 && lag < 200 ))" 1
check "not at N" "$(( elapsed < 10000 ))" 1
check "a finished run may be kept" "$(header Cache-Control)" "private, max-age=86400"

# A run still going when N is up: answered at N, as it is then.
run=$(parked)
timeouts0=$(waits timeout)
wait_for "$run" 2
check "still going at N: 200 with the run as it is" "$status $(json .run.status)" "200 created"
echo "     wait=2 answered after $elapsed ms"
check "answered at N (2 s), not before, not much after" "$(( elapsed >= 2000 && elapsed < 2600 ))" 1
check "a run in progress is not kept" "$(header Cache-Control)" no-store
check "counted as a timeout" "$(( $(waits timeout) - timeouts0 ))" 1
wait_for "$run" 0
check "wait=0: at once, as it is" "$status $(json .run.status) $(( elapsed < 1000 ))" "200 created 1"
etag=$(header ETag)
wait_for "$run" 1 -H "If-None-Match: $etag"
check "If-None-Match while unchanged: 304 at N" "$status $(( elapsed >= 1000 ))" "304 1"

# Canceled while waited for, and ended with an event too large for its
# notice (it is read back): both answered at once.
run=$(parked)
( api GET "/api/v1/runs/$run?wait=30"; echo "$status $(json .run.status)" >"$tmp/cancel" ) &
w=$!
eventually "a waiter is held" 100 held 2
api POST "/api/v1/runs/$run/cancel"
wait "$w"
check "canceled while waited for" "$(cat "$tmp/cancel")" "200 canceled"
run=$(parked)
( api GET "/api/v1/runs/$run?wait=30"; echo "$status $(json .run.status) $(json '.run.error_message | length')" >"$tmp/big" ) &
w=$!
eventually "a waiter is held" 100 held 2
t0=$(now_ms)
sql "UPDATE analysis_jobs SET status = 'failed', finished_at = now(), error_message = repeat('x', 9000) WHERE id = '$run'" >/dev/null
wait "$w"
check "ended with a notice too large to carry the event" "$(cat "$tmp/big") $(( $(now_ms) - t0 < 2000 ))" "200 failed 9000 1"

# A client that hangs up leaves no waiter behind: at once behind nginx,
# which closes assay-stream's connection with the client's; lighttpd does
# not notice before it has an answer to write, so there it is held to N.
run=$(parked)
curl -s -m 1 -o /dev/null -H "$auth" "$ASSAY_URL/api/v1/runs/$run?wait=4"
just_one() { [ "$(smetric run_waits_active)" = 1 ]; } # the 60 s waiter
if [ "$ASSAY_SERVER" = nginx ]; then
  eventually "a client that hangs up leaves no waiter behind" 10 just_one
else
  eventually "a client that hangs up leaves no waiter behind after N" 40 just_one
fi

# PostgreSQL away: a waiter whose time comes is answered 503; one still
# waiting is answered when its run ends after PostgreSQL is back (the
# LISTEN is made again and its run read).
a=$(parked) b=$(parked)
( api GET "/api/v1/runs/$a?wait=30"; echo "$status $(json .run.status)" >"$tmp/pga" ) &
wa=$!
( api GET "/api/v1/runs/$b?wait=2"; echo "$status $(json .code) $(header Retry-After)" >"$tmp/pgb" ) &
wb=$!
eventually "two waiters held" 100 held 3
pg_ctl -m fast -w stop >/dev/null
wait "$wb"
check "PostgreSQL away at N: 503, Retry-After" "$(cat "$tmp/pgb")" "503 DATABASE_UNAVAILABLE 1"
stack_up >/dev/null
api POST "/api/v1/runs/$a/cancel"
wait "$wa"
check "PostgreSQL back: the other waiter sees its run end" "$(cat "$tmp/pga")" "200 canceled"

# Bad values: 400 problem+json naming each, as assay-api's query tables do.
run=$(parked)
bad() { # QUERY STATUS CODE ERRORS(parameter:detail;...)
  api GET "/api/v1/runs/$run?$1"
  check "?$1: $2 $3" "$status $(header Content-Type) $(json .code)" "$2 application/problem+json $3"
  check "?$1: errors" "$(json '[.errors[] | "\(.parameter):\(.detail)"] | join(";")')" "$4"
}
bad 'wait=abc' 400 INVALID_PARAMETER 'wait:must be an integer, not a string'
bad 'wait=61' 400 INVALID_PARAMETER 'wait:must be between 0 and 60'
bad 'wait=-1' 400 INVALID_PARAMETER 'wait:must be between 0 and 60'
bad 'wait=' 400 INVALID_PARAMETER 'wait:must be an integer, not a string'
bad 'wait=1.5' 400 INVALID_PARAMETER 'wait:must be an integer, not a string'
bad 'wait=99999999999999999999999' 400 INVALID_PARAMETER 'wait:must be between 0 and 60'
bad 'wait=1&wait=2' 400 INVALID_PARAMETER 'wait:is given more than once'
bad 'wait=5&status=running' 400 INVALID_PARAMETER 'status:is not a parameter of this resource'
bad 'x=1&wait=abc&y=2' 400 INVALID_PARAMETER 'x:is not a parameter of this resource;y:is not a parameter of this resource;wait:must be an integer, not a string'
check "the detail names the first and counts the rest" "$(json .detail)" "x is not a parameter of this resource, and 2 more; see errors"
check "the same shape as assay-api's 400" \
  "$(api GET "/api/v1/runs?limit=0"; json -c 'keys')" "$(api GET "/api/v1/runs/$run?wait=99"; json -c 'keys')"

# Who may wait: as GET.
api GET "/api/v1/runs/00000000-0000-4000-8000-000000000000?wait=5"
check "unknown run: 404" "$status $(json .code)" "404 RUN_NOT_FOUND"
api GET "/api/v1/runs/not-a-run?wait=5"
check "not a run id: 404" "$status $(json .code)" "404 RUN_NOT_FOUND"
other=$(new_tenant "wait_$$_$RANDOM" free)
KEY=$other api GET "/api/v1/runs/$run?wait=5"
check "another tenant's run: 404" "$status $(json .code)" "404 RUN_NOT_FOUND"
http GET "/api/v1/runs/$run?wait=5"
check "no key: 401 with a challenge" "$status $(json .code) $(header WWW-Authenticate | cut -d' ' -f1)" "401 UNAUTHENTICATED Bearer"
KEY=assay_00000000_000000000000000000000000000000000000000000000000 api GET "/api/v1/runs/$run?wait=5"
check "unknown key: 401" "$status $(json .code)" "401 INVALID_API_KEY"
KEY=not-a-key api GET "/api/v1/runs/$run?wait=5"
check "a malformed key: 401" "$status $(json .code)" "401 INVALID_API_KEY"
revoked=$(new_tenant "wait_r_$$_$RANDOM" pro)
assayctl key revoke "$(cut -d_ -f1-2 <<<"$revoked")" >/dev/null
KEY=$revoked api GET "/api/v1/runs/$run?wait=5"
check "revoked key: 401" "$status $(json .detail)" "401 the API key has been revoked"
http GET "/api/v1/runs/$run?wait=5" -H "X-API-Key: $KEY"
check "X-API-Key works too" "$status" 200
KEY=eyJhbGciOiJIUzI1NiJ9.e30.c2ln api GET "/api/v1/runs/$run?wait=5" -H "X-Job-ID: $run"
check "a job token may not wait" "$status $(json .code)" "403 JOB_TOKEN_FORBIDDEN"
api POST "/api/v1/runs/$run?wait=5"
check "POST with wait: 405 naming GET, HEAD" "$status $(header Allow)" "405 GET, HEAD"
out=$(curl -s -D - -o /dev/null -X OPTIONS -H 'Origin: http://localhost:3000' "$ASSAY_URL/api/v1/runs/$run?wait=5" | tr -d '\r')
check "preflight with wait: 204, GET and HEAD allowed" \
  "$(head -n 1 <<<"$out" | cut -d' ' -f2) $(grep -i '^Access-Control-Allow-Methods:' <<<"$out" | cut -d' ' -f2-)" "204 GET, HEAD"
# The tier's history window: a free tenant's run older than 7 days is gone.
KEY=$other
mine=$(submit "$(new_analysis)")
sql "UPDATE analysis_jobs SET created_at = now() - interval '8 days' WHERE id = '$mine'" >/dev/null
api GET "/api/v1/runs/$mine"
plain=$status
api GET "/api/v1/runs/$mine?wait=1"
check "outside the tier's history: 404 as without wait" "$plain $status $(json .code)" "404 404 RUN_NOT_FOUND"
sql "UPDATE analysis_jobs SET created_at = now() - interval '6 days' WHERE id = '$mine'" >/dev/null
api GET "/api/v1/runs/$mine?wait=0"
check "inside it: 200" "$status" 200
KEY=$ASSAY_API_KEY

# 1,000 idle event streams, then 1,000 waiters on the same 10 runs: both
# held at once, assay-stream's RSS measured around each; the waiters are
# all answered when their runs are canceled, and assay-api stays free.
runs=() streams= waiters=
for i in $(seq 1 10); do
  r=$(parked)
  runs+=("$r")
  streams="$streams${streams:+,}$ASSAY_URL/api/v1/runs/$r/events"
  waiters="$waiters${waiters:+,}$ASSAY_URL/api/v1/runs/$r?wait=60"
done
# hold METRIC CLIENT URLS OUT: 1,000 clients held (METRIC up by 1,000);
# sets pid to the client's.
hold() {
  local base
  base=$(smetric "$1")
  node "$here/$2" "$3" 1000 --header "$auth" --timeout 120 >"$4" &
  pid=$!
  more() { [ "$(smetric "$1")" -ge $(($2 + 1000)) ]; }
  eventually "1,000 held ($1)" 600 more "$1" "$base"
  sleep 1
}
rss0=$(rss_kib)
hold sse_active_connections sse-client.mjs "$streams" "$tmp/streams"
es=$pid rss1=$(rss_kib)
hold run_waits_active wait-client.mjs "$waiters" "$tmp/waiters"
wc=$pid rss2=$(rss_kib)
stream_kib=$((rss1 - rss0)) wait_kib=$((rss2 - rss1))
echo "     assay-stream RSS: $rss0 KiB; +1,000 idle streams: +$stream_kib KiB; +1,000 waiters: +$wait_kib KiB"
check "1,000 waiters cost no more than 1,000 idle streams (+10%, +256 KiB)" \
  "$(( wait_kib <= stream_kib + stream_kib / 10 + 256 ))" 1
t0=$(now_ms)
api GET "/api/v1/runs/${runs[0]}"
check "assay-api answers while 1,000 wait" "$status $(( $(now_ms) - t0 < 1000 ))" "200 1"
t0=$(now_ms)
for r in "${runs[@]}"; do api POST "/api/v1/runs/$r/cancel" >/dev/null; done
wait "$wc"
check "1,000 waiters: all answered, none failed" "$?" 0
check "1,000 waiters: each 200 with its own run, canceled" \
  "$(jq -c '[.answered, .status, .run_status, .run_ids_match, .errors]' "$tmp/waiters")" \
  '[1000,{"200":1000},{"canceled":1000},1000,0]'
echo "     the last of 1,000 answered $(( $(jq .last_ms "$tmp/waiters") - t0 )) ms after the first cancel was sent"
check "answered as their runs ended, not at N" "$(( $(jq .last_ms "$tmp/waiters") - t0 < 10000 ))" 1
wait "$es"
check "1,000 streams: all ended with their runs" "$(jq -c '[.opened, .finished]' "$tmp/streams")" "[1000,1000]"
out=$(curl -s "$STREAM_URL/metrics" | promtool check metrics 2>&1); rc=$?
check "stream metrics pass promtool" "$rc:$out" "0:"

# The 60 s wait, answered by assay-stream at 60 s, not cut at the web server.
wait "$long_pid"
read -r code ms <"$tmp/long.status"
echo "     wait=60 answered after $ms ms"
check "wait=60: 200 after 60 s, not cut by the web server" \
  "$code $(( ms >= 60000 && ms < 62000 )) $(jq -r .run.status "$tmp/long")" "200 1 created"
none_left() { [ "$(smetric run_waits_active)" = 0 ]; }
eventually "no waiter left" 100 none_left
check_match "/health counts waits" "$(curl -s "$STREAM_URL/health")" '"waits":0'
finish
