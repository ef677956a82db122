# GET /api/v1/runs/{id}/events through the web server to assay-stream,
# with curl and with a real EventSource client (npm eventsource): order,
# end on completion and on cancel, resume with Last-Event-ID (also across a
# restart of assay-stream), tokens, errors, 1,000 concurrent streams, and
# the stream metrics.
. "$(dirname "$0")/lib.sh"
client=$here/sse-client.mjs
[ -d "$ASSAY_NODE_MODULES/eventsource" ] ||
  { fail "eventsource missing (tools/stack check installs it)"; finish; }
tmp=$(mktemp -d)
KEY=$ASSAY_API_KEY
auth="Authorization: Bearer $KEY"
ids_of() { awk '/^id: / { printf "%s%s", sep, $2; sep = "," }'; }
types_of() { awk '/^event: / { printf "%s%s", sep, $2; sep = "," }'; }
smetric() { curl -s "$STREAM_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

analysis=$(new_analysis)
api POST /api/v1/analyses '{"title":"chatty","script":"function analyze(i, ctx) { ctx.log(\"info\", \"start\"); ctx.progress(50, \"half\"); ctx.emit(\"row\", {n: 1}); return {ok: true}; }"}'
chatty=$(json .analysis.id)

# A backlog far larger than buffer_bytes (300 events of 1,000 bytes, about
# 330 KiB) replays in full to a client that joins after the run ended, at
# the client's pace: an EventSource gets every event and the terminal one.
api POST /api/v1/analyses '{"title":"big","script":"function analyze(i, ctx) { var s = new Array(1001).join(\"z\"); for (var k = 0; k < 300; k++) ctx.log(\"info\", s); return 1; }"}'
api POST /api/v1/runs "{\"name\":\"backlog\",\"analysis_id\":\"$(json .analysis.id)\"}"
big=$(json .run.id)
big_done() { [ "$(sql "SELECT status FROM analysis_jobs WHERE id = '$big'")" = completed ]; }
eventually "a run with 300 large events completes" 300 big_done
out=$(node "$client" "$ASSAY_URL/api/v1/runs/$big/events" 1 --header "$auth" --timeout 60)
check "late EventSource: the whole backlog, to the end" "$(jq -c '[.finished, .events, .errors]' <<<"$out")" \
  "[1,$(sql "SELECT count(*) FROM job_events WHERE job_id = '$big'"),0]"
check "late EventSource: every id once, in order" "$(jq -r '.ids[] | map(tostring) | join(",")' <<<"$out")" \
  "$(sql "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM job_events WHERE job_id = '$big'")"

# A run followed to its end: every event once, in order; the stream ends.
api POST /api/v1/runs "{\"name\":\"s1\",\"analysis_id\":\"$chatty\"}"
run=$(json .run.id)
out=$(timeout 20 curl -sN -D "$tmp/h" -H "$auth" "$ASSAY_URL/api/v1/runs/$run/events"); rc=$?
check "completed run: the stream ends by itself" "$rc" 0
check_match "text/event-stream" "$(tr -d '\r' <"$tmp/h" | grep -i '^content-type')" 'text/event-stream'
check_match "retry hint first" "$(head -n 1 <<<"$out")" '^retry: [0-9]+$'
check "every event, in order" "$(ids_of <<<"$out")" "$(sql "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM job_events WHERE job_id = '$run'")"
check "types as recorded" "$(types_of <<<"$out")" "$(sql "SELECT string_agg(type, ',' ORDER BY seq) FROM job_events WHERE job_id = '$run'")"
check_match "log, progress and emit events" "$(types_of <<<"$out")" '^created,pending,running,log,progress,emit,completed$'
check_match "data is the event's JSON" "$(grep -A1 '^event: emit' <<<"$out" | sed -n 's/^data: //p')" '"n": 1'

# Resume: after id 4, exactly the rest; the header and the query parameter agree.
out=$(timeout 10 curl -sN -H "$auth" -H 'Last-Event-ID: 4' "$ASSAY_URL/api/v1/runs/$run/events")
check "Last-Event-ID 4: the events after it" "$(ids_of <<<"$out")" 5,6,7
out=$(timeout 10 curl -sN -H "$auth" "$ASSAY_URL/api/runs/$run/events?last_event_id=6")
check "?last_event_id=6 (and the /api alias)" "$(ids_of <<<"$out")" 7
code=$(timeout 10 curl -sN -o "$tmp/after" -w '%{http_code}' -H "$auth" -H 'Last-Event-ID: 7' "$ASSAY_URL/api/v1/runs/$run/events"); rc=$?
check "resuming after the terminal event: 204, so that EventSource stops" "$rc:$code:$(wc -c <"$tmp/after")" "0:204:0"

# Errors are problem+json.
http GET "/api/v1/runs/$run/events"
check "no key: 401" "$status:$(json .code)" 401:UNAUTHENTICATED
check_match "no key: challenge" "$(header WWW-Authenticate)" Bearer
KEY=assay_00000000_000000000000000000000000000000000000000000000000 api GET "/api/v1/runs/$run/events"
check "unknown key: 401" "$status" 401
api GET /api/v1/runs/00000000-0000-4000-8000-000000000000/events
check "unknown run: 404" "$status:$(header Content-Type)" "404:application/problem+json"
other=$(new_tenant "stream_$$_$RANDOM" pro)
KEY=$other api GET "/api/v1/runs/$run/events"
check "another tenant's run: 404" "$status" 404
api GET "/api/v1/runs/$run/events" -H 'Last-Event-ID: soon'
check "bad Last-Event-ID: 400" "$status" 400
# Values too long for assay-stream are refused, never taken for absent.
api GET "/api/v1/runs/$run/events" -H "Last-Event-ID: $(printf '9%.0s' $(seq 1 5000))"
check "a 5,000-digit Last-Event-ID: 400" "$status $(json .code)" "400 INVALID_PARAMETER"
http GET "/api/v1/runs/$run/events?token=sse_$(printf 'a%.0s' $(seq 1 5000))"
check "a 5,000-character token: 401, not valid" "$status $(json .detail)" "401 the token is not valid"
api POST "/api/v1/runs/$run/events"
check "POST: 405" "$status:$(header Allow)" "405:GET"

# An idle stream gets heartbeats (the suite's stack sends one every 2 s).
api POST /api/v1/runs "{\"name\":\"idle\",\"analysis_id\":\"$analysis\",\"start\":false}"
out=$(timeout 5 curl -sN -H "$auth" "$ASSAY_URL/api/v1/runs/$(json .run.id)/events")
check_match "heartbeat comments on an idle stream" "$out" '^: heartbeat'

# Tokens: one run, read-only, nothing else.
api POST "/api/v1/runs/$run/events/token"
check "token: 201" "$status" 201
token=$(json .token)
check_match "token shape" "$token" '^sse_[0-9a-f]{48}$'
check "token: its URL" "$(json .events_url)" "/api/v1/runs/$run/events?token=$token"
check "token: Location is the stream it opens" "$(header Location)" "/api/v1/runs/$run/events?token=$token"
out=$(timeout 10 curl -sN "$ASSAY_URL/api/v1/runs/$run/events?token=$token&last_event_id=5")
check "token opens the stream" "$(ids_of <<<"$out")" 6,7
api POST /api/v1/runs "{\"name\":\"s2\",\"analysis_id\":\"$analysis\",\"start\":false}"
run2=$(json .run.id)
http GET "/api/v1/runs/$run2/events?token=$token"
check "token for another run: 401" "$status:$(json .code)" 401:INVALID_TOKEN
http GET "/api/v1/runs/$run?token=$token"
check "token is no API key" "$status" 401
check "only the token's hash is stored" "$(sql "SELECT count(*) FROM stream_tokens WHERE token_hash = sha256('$token'::bytea)")" 1
sql "UPDATE stream_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = sha256('$token'::bytea)" >/dev/null
http GET "/api/v1/runs/$run/events?token=$token"
check_match "expired token: 401" "$status:$(json .detail)" '^401:.*expired'
KEY=$other api POST "/api/v1/runs/$run/events/token"
check "no token for another tenant's run" "$status" 404

# EventSource with a token, canceled while watched: the stream ends with it.
api POST "/api/v1/runs/$run2/events/token"
url="$ASSAY_URL$(json .events_url)"
node "$client" "$url" 1 --print --timeout 20 >"$tmp/es" &
es=$!
opened() { grep -q '^0 open' "$tmp/es"; }
eventually "EventSource connected with the token" 100 opened
api POST "/api/v1/runs/$run2/cancel"
wait "$es"
check "canceled while watched: EventSource saw it end" "$?" 0
check "it received created then canceled" "$(awk '$2 ~ /^[0-9]+$/ { printf "%s%s", s, $3; s = "," }' "$tmp/es")" created,canceled

# Resume across a restart of assay-stream: no gap, no duplicate.
api POST /api/v1/runs "{\"name\":\"s3\",\"analysis_id\":\"$analysis\",\"start\":false}"
run3=$(json .run.id)
node "$client" "$ASSAY_URL/api/v1/runs/$run3/events" 1 --header "$auth" --print --timeout 40 >"$tmp/resume" &
es=$!
eventually "follower connected" 100 grep -q '^0 open' "$tmp/resume"
for i in 1 2 3; do sql "SELECT assay_event('$run3', 'log', '{\"n\": $i}')" >/dev/null; done
got4() { grep -q '^0 4 log' "$tmp/resume"; }
eventually "live events arrive" 100 got4
kill "$(cat "$ASSAY_STACK_DIR/run/assay-stream.pid")"
stream_gone() { ! running "$(cat "$ASSAY_STACK_DIR/run/assay-stream.pid")"; }
eventually "assay-stream stopped" 100 stream_gone
for i in 4 5; do sql "SELECT assay_event('$run3', 'log', '{\"n\": $i}')" >/dev/null; done
stack_up >/dev/null
for i in 6 7; do sql "SELECT assay_event('$run3', 'log', '{\"n\": $i}')" >/dev/null; done
api POST "/api/v1/runs/$run3/cancel"
wait "$es"
check "restart: the follower reached the end" "$?" 0
check "restart: every id once, in order" "$(awk '$2 ~ /^[0-9]+$/ { printf "%s%s", s, $2; s = "," }' "$tmp/resume")" \
  "$(sql "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM job_events WHERE job_id = '$run3'")"

# 1,000 concurrent streams over 10 runs: all receive all their events.
# (Counted from here: assay-stream's counters restarted with it above.)
opened0=$(smetric sse_connections_opened_total)
runs=() urls=
for i in $(seq 1 10); do
  api POST /api/v1/runs "{\"name\":\"many$i\",\"analysis_id\":\"$analysis\",\"start\":false}"
  runs+=("$(json .run.id)")
  urls="$urls${urls:+,}$ASSAY_URL/api/v1/runs/$(json .run.id)/events"
done
node "$client" "$urls" 1000 --header "$auth" --timeout 90 >"$tmp/many" &
es=$!
all_open() { [ "$(smetric sse_active_connections)" -ge 1000 ]; }
eventually "1,000 streams open at once" 600 all_open
for r in "${runs[@]}"; do
  for i in 1 2 3; do sql "SELECT assay_event('$r', 'log', '{\"n\": $i}')" >/dev/null; done
  api POST "/api/v1/runs/$r/cancel" >/dev/null
done
wait "$es"
check "1,000 streams: all ended normally" "$?" 0
check "1,000 streams: every stream got its 5 events" "$(jq -c '[.opened, .finished, .events]' "$tmp/many")" "[1000,1000,5000]"

# Metrics: every stream counted open and closed; none left.
gone() { [ "$(smetric sse_active_connections)" = 0 ]; }
eventually "no stream left open" 100 gone
check_match "opened counted" "$(( $(smetric sse_connections_opened_total) - opened0 ))" '^10[0-9][0-9]$'
check "opened = closed" "$(smetric sse_connections_opened_total)" "$(smetric sse_connections_closed_total)"
check_match "messages counted" "$(smetric sse_messages_total)" '^[0-9]{4,}$'
out=$(curl -s "$STREAM_URL/metrics" | promtool check metrics 2>&1); rc=$?
check "stream metrics pass promtool" "$rc:$out" "0:"
rm -rf "$tmp"
finish
