# Runs: validation (every violation), create/start/cancel/result with their
# status codes, events and notifications, filters and keyset pagination
# under concurrent inserts, idempotency including many rounds of races on a
# busy machine.
. "$(dirname "$0")/lib.sh"

# These tests drive run states by hand: no executor may take the runs.
kill "$(cat "$ASSAY_STACK_DIR/run/assay-executor.pid")"
trap stack_up EXIT
aid=$(new_analysis)
tag=t$$_$RANDOM

api POST /api/v1/runs "{\"name\":\"first\",\"analysis_id\":\"$aid\",\"input\":{\"a\":1},\"tags\":[\"$tag\"]}"
check "create: 201" "$status" 201
run=$(json .run.id)
check "create: Location" "$(header Location)" "/api/v1/runs/$run"
check "create: pending by default" "$(json .run.status)" pending
check "create: records the analysis version" "$(json .run.analysis_version)" 1
check "create: input kept" "$(json -c .run.input)" '{"a":1}'
check "create: events" "$(sql "SELECT string_agg(type, ',' ORDER BY seq) FROM job_events WHERE job_id = '$run'")" "created,pending"

api POST /api/v1/runs '{"name":"","analysis_id":"nope","input":5,"tags":[1],"client_token":"short","callback_url":"ftp://x","priority":"high","start":"yes","extra":1}'
check "invalid: 422" "$status" 422
check "invalid: every violation" "$(json '[.errors[].pointer] | sort | join(",")')" \
  "/analysis_id,/callback_url,/client_token,/extra,/input,/name,/priority,/start,/tags/0"
api POST /api/v1/runs '{}'
check "missing: both required fields" "$(json '[.errors[] | .pointer + " " + .detail] | sort | join(",")')" \
  "/analysis_id is required,/name is required"
api POST /api/v1/runs '{"name":"x","analysis_id":"00000000-0000-0000-0000-000000000000"}'
check "unknown analysis: 422" "$status" 422
check "unknown analysis: pointer" "$(json '.errors[0].pointer')" /analysis_id
tmp=$(mktemp -d)
{ printf '{"name":"x","analysis_id":"%s","input":"' "$aid"; head -c 70000 /dev/zero | tr '\0' x; printf '"}'; } >"$tmp/str.json"
api POST /api/v1/runs "@$tmp/str.json"
check "string input over 64 KiB: 422" "$(json '.errors[0].pointer')" /input
{ printf '{"name":"x","analysis_id":"%s","input":{"k":"' "$aid"; head -c 140000 /dev/zero | tr '\0' x; printf '"}}'; } >"$tmp/obj.json"
api POST /api/v1/runs "@$tmp/obj.json"
check "object input over 128 KiB: 422" "$(json '.errors[0].pointer')" /input
# What PostgreSQL cannot store is refused with the member's pointer, never
# rewritten and never a 5xx: NUL characters in values or member names, at
# any depth, and lone surrogates.
nul_case() { # DESCRIPTION INPUT-JSON POINTER
  local runs_before; runs_before=$(sql "SELECT count(*) FROM analysis_jobs")
  api POST /api/v1/runs "{\"name\":\"nul\",\"analysis_id\":\"$aid\",\"input\":$2}"
  check "$1: 422" "$status" 422
  check "$1: names $3" "$(json '.errors[0].pointer')" "$3"
  check "$1: nothing stored" "$(sql "SELECT count(*) FROM analysis_jobs")" "$runs_before"
}
nul_case "NUL in an object value" '{"k":"v\u0000"}' /input/k
nul_case "NUL deep in an array" '{"a":{"b":["x","\u0000"]}}' /input/a/b/1
nul_case "NUL in a member name" '{"k\u0000a":1,"k":2}' /input/k
nul_case "a lone surrogate" '{"s":"a\ud800b"}' /input/s
# A member named twice (json-c would keep the last silently) is refused,
# named by its pointer, wherever it is.
api POST /api/v1/runs "{\"name\":\"a\",\"name\":\"b\",\"analysis_id\":\"$aid\"}"
check "a member named twice: 422" "$status" 422
check "a member named twice: named" "$(json '.errors[0].pointer + " " + .errors[0].detail')" "/name appears twice"
nul_case "a member named twice in input" '{"a":{"k":1,"\u006b":2}}' /input/a/k
api POST /api/v1/runs "{\"name\":\"pair\",\"analysis_id\":\"$aid\",\"input\":{\"s\":\"\\ud83d\\ude00\"},\"start\":false}"
check "a surrogate pair is fine" "$(json -c .run.input)" '{"s":"😀"}'
api POST /api/v1/runs "{\"name\":\"$(printf 'é%.0s' $(seq 1 128))\",\"analysis_id\":\"$aid\",\"start\":false}"
check "128 two-byte characters are a valid name" "$status" 201
tags=$(printf '"t%s",' $(seq 1 17)); tags="[${tags%,}]"
api POST /api/v1/runs "{\"name\":\"x\",\"analysis_id\":\"$aid\",\"tags\":$tags}"
check "17 tags: 422" "$(json '.errors[0].pointer')" /tags

api GET "/api/v1/runs/$run"
check "get: 200" "$status" 200
check "get: same run" "$(json .run.id)" "$run"
api GET /api/v1/runs/00000000-0000-0000-0000-000000000000
check "get unknown: 404" "$status" 404
check "get unknown: code" "$(json .code)" RUN_NOT_FOUND
api GET /api/v1/runs/xyz
check "get malformed id: 404" "$status" 404

# listen_for CHANNEL: a psql session LISTENing for 3 s in the background
# (its pid in $listener, what it printed in $tmp/listen), returning once
# it is listening.
listen_for() {
  PGAPPNAME=listen_$1 psql -q "$DATABASE_URL" -c "LISTEN $1" -c "SELECT pg_sleep(3)" -c "SELECT 1" >"$tmp/listen" 2>&1 &
  listener=$!
  listening() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'listen_$1' AND query LIKE '%pg_sleep%'")" = 1 ]; }
  eventually "listening on $1" 100 listening "$1"
}

# start: created -> pending, else 409; new pending work is announced.
api POST /api/v1/runs "{\"name\":\"later\",\"analysis_id\":\"$aid\",\"start\":false}"
check "start:false: created" "$(json .run.status)" created
later=$(json .run.id)
listen_for assay_jobs
api POST "/api/v1/runs/$later/start"
check "start: 200" "$status" 200
check "start: pending" "$(json .run.status)" pending
wait $listener
check_match "start: executors notified" "$(cat "$tmp/listen")" 'notification "assay_jobs"'
api POST "/api/v1/runs/$later/start"
check "start twice: 409" "$status" 409
check "409 code" "$(json .code)" RUN_STATE_CONFLICT

# cancel: pending at once; running via cancel_requested_at and NOTIFY; terminal 409.
api POST "/api/v1/runs/$later/cancel"
check "cancel pending: 202" "$status" 202
check "cancel pending: canceled" "$(json .run.status)" canceled
api POST "/api/v1/runs/$later/cancel"
check "cancel canceled: 409" "$status" 409
api POST /api/v1/runs/00000000-0000-0000-0000-000000000000/cancel
check "cancel unknown: 404" "$status" 404
sql "UPDATE analysis_jobs SET status = 'running', started_at = now() WHERE id = '$run'" >/dev/null
listen_for assay_cancel
api POST "/api/v1/runs/$run/cancel"
check "cancel running: 202" "$status" 202
check "cancel running: still running" "$(json .run.status)" running
check_match "cancel running: requested" "$(json .run.cancel_requested_at)" '^20'
wait $listener
check_match "cancel running: executor notified" "$(cat "$tmp/listen")" "notification \"assay_cancel\" with payload \"$run\""
check "cancel running: event" "$(sql "SELECT type FROM job_events WHERE job_id = '$run' ORDER BY seq DESC LIMIT 1")" cancel_requested

# Conditional GETs: every run carries an ETag; one in progress may not be kept.
api GET "/api/v1/runs/$run"
etag=$(header ETag)
check_match "run in progress: an ETag" "$etag" '^"[0-9a-f]{32}"$'
check "run in progress: not to be kept" "$(header Cache-Control)" no-store
api GET "/api/v1/runs/$run" -H "If-None-Match: $etag"
check "run in progress, unchanged: 304 without a body" "$status:${#body}" "304:0"

# result: 409 until finished, then the result.
api GET "/api/v1/runs/$run/result"
check "result while running: 409" "$status" 409
check "result while running: code" "$(json .code)" RUN_NOT_FINISHED
sql "UPDATE analysis_jobs SET status = 'completed', result = '{\"sum\": 3}', finished_at = now() WHERE id = '$run'" >/dev/null
api GET "/api/v1/runs/$run/result"
check "result: 200" "$status" 200
check "result: value" "$(json -c .result.result)" '{"sum":3}'
check "result: status" "$(json .result.status)" completed
etag=$(header ETag)
check_match "finished result: an ETag" "$etag" '^"[0-9a-f]{32}"$'
check "finished result: the client may keep it" "$(header Cache-Control)" "private, max-age=86400"
api GET "/api/v1/runs/$run/result" -H "If-None-Match: W/\"other\", $etag"
check "If-None-Match naming it: 304 without a body" "$status:${#body}" "304:0"
check "the 304 names the ETag" "$(header ETag)" "$etag"
api GET "/api/v1/runs/$run/result" -H 'If-None-Match: "0123"'
check "If-None-Match naming another: 200" "$status" 200
check "every change is an event" "$(sql "SELECT string_agg(type, ',' ORDER BY seq) FROM job_events WHERE job_id = '$run'")" \
  "created,pending,running,cancel_requested,completed"
api POST "/api/v1/runs/$run/cancel"
check "cancel completed: 409" "$status" 409

# Listing: filters and validation.
api GET "/api/v1/runs?tag=$tag"
check "filter by tag" "$(json '[.runs[].id] | join(",")')" "$run"
api GET "/api/v1/runs?status=canceled&analysis_id=$aid"
check "filter by status and analysis" "$(json '[.runs[].id] | join(",")')" "$later"
api GET '/api/v1/runs?status=bogus'
check "bad status filter: 400" "$status" 400
api GET "/api/v1/runs?status=canceled,completed,failed&analysis_id=$aid"
check "several statuses in one filter" "$(json '[.runs[] | select(.id == "'"$later"'")] | length')" 1
check "several statuses: only those" "$(json '[.runs[].status] | map(select(. != "canceled" and . != "completed" and . != "failed")) | length')" 0
api GET '/api/v1/runs?status=completed,'
check "a status list with an empty item: 400" "$status" 400
# Values longer than the API reads are refused, naming the parameter,
# never silently dropped.
for q in "tag=$(printf 'x%.0s' $(seq 1 300))" "cursor=$(printf '1%.0s' $(seq 1 200))" \
  "limit=99999999999999999999" "status=$(printf 'failed,%.0s' $(seq 1 12))failed" \
  "analysis_id=$(printf 'a%.0s' $(seq 1 60))"; do
  api GET "/api/v1/runs?$q"
  check "over-long ${q%%=*}: 400 naming it" "$status $(json .detail | cut -d' ' -f1)" "400 ${q%%=*}"
done
# A cursor of the right shape whose time is out of range is the client's
# mistake (400), not the database's (503).
api GET "/api/v1/runs?cursor=99999999999999999999_$aid"
check "cursor with too many digits: 400 naming it" "$status $(json .detail | cut -d' ' -f1)" "400 cursor"
api GET '/api/v1/runs?analysis_id=x'
check "bad analysis filter: 400" "$status" 400
api GET '/api/v1/runs?limit=0'
check "limit 0: 400" "$status" 400
# The parameters are checked by a table, as bodies are: a parameter the
# listing does not take is refused (a misspelt filter never widens it),
# and every bad one is listed by name.
api GET "/api/v1/runs?stauts=failed&analysis_id=$aid"
check "unknown parameter: 400 naming it" "$status $(json .code) $(json .detail)" \
  "400 INVALID_PARAMETER stauts is not a parameter of this resource"
api GET '/api/v1/runs?limit=0&status=done&tag=&cursor=x&analysis_id=y&limit=3'
check "every bad parameter: one error each" \
  "$(json '[.errors[] | .parameter] | join(",")')" "limit,cursor,status,tag,analysis_id"
check "every bad parameter: the detail names the first" "$(json .detail)" \
  "limit is given more than once, and 4 more; see errors"
check "a status list names the statuses" "$(json '.errors[] | select(.parameter == "status") | .detail')" \
  "must be 1 to 6 of created, pending, running, completed, failed, canceled"
api GET '/api/v1/runs?tag=%c3%28'
check "a value that is not UTF-8: 400" "$status $(json .detail)" "400 tag must be UTF-8 text"
api GET '/api/v1/runs?limit=ten'
check "a limit that is no integer: 400" "$status $(json .detail)" "400 limit must be an integer, not a string"
api GET "/api/v1/runs?l%69mit=1&analysis_id=$aid"
check "names are percent-decoded" "$status $(json '.runs | length')" "200 1"
api GET '/api/v1/analyses?status=failed'
check "the analyses' listing takes no status: 400" "$status $(json .errors[0].parameter)" "400 status"

# Keyset pagination stays exact while new runs arrive between pages.
ptag=p$$_$RANDOM
for i in 1 2 3 4 5; do api POST /api/v1/runs "{\"name\":\"p$i\",\"analysis_id\":\"$aid\",\"tags\":[\"$ptag\"],\"start\":false}"; done
expected=$(sql "SELECT string_agg(id::text, ',' ORDER BY created_at DESC, id DESC) FROM analysis_jobs WHERE '$ptag' = ANY(tags)")
api GET "/api/v1/runs?tag=$ptag&limit=2"
seen=$(json '[.runs[].id] | join(",")')
cursor=$(json .next_cursor)
for i in 1 2 3; do api POST /api/v1/runs "{\"name\":\"new$i\",\"analysis_id\":\"$aid\",\"tags\":[\"$ptag\"],\"start\":false}" & done
wait
while [ "$cursor" != null ]; do
  api GET "/api/v1/runs?tag=$ptag&limit=2&cursor=$cursor"
  seen="$seen,$(json '[.runs[].id] | join(",")')"
  cursor=$(json .next_cursor)
done
check "pagination under inserts: no gap, no duplicate" "$seen" "$expected"

# Idempotency.
req="{\"name\":\"idem\",\"analysis_id\":\"$aid\",\"client_token\":\"tok_$tag\"}"
api POST /api/v1/runs "$req"
check "token first: 201" "$status" 201
idem=$(json .run.id)
api POST /api/v1/runs "$req"
check "token replay: 200" "$status" 200
check "token replay: same run" "$(json .run.id)" "$idem"
check "token replay: flagged" "$(json .idempotent)" true
api POST /api/v1/runs "{\"name\":\"other\",\"analysis_id\":\"$aid\",\"client_token\":\"tok_$tag\"}"
check "token, different request: 422" "$status" 422
check "token, different request: code" "$(json .code)" IDEMPOTENCY_KEY_REUSED
api POST /api/v1/runs "{\"name\":\"h\",\"analysis_id\":\"$aid\"}" -H "Idempotency-Key: hdr_$tag"
check "header key: 201" "$status" 201
hid=$(json .run.id)
api POST /api/v1/runs "{\"name\":\"h\",\"analysis_id\":\"$aid\"}" -H "Idempotency-Key: hdr_$tag"
check "header key replay: same run" "$(json .run.id)" "$hid"
api POST /api/v1/runs "{\"name\":\"h\",\"analysis_id\":\"$aid\",\"client_token\":\"zzz_$tag\"}" -H "Idempotency-Key: hdr_$tag"
check "header and token disagree: 422" "$status" 422
api POST /api/v1/runs "{\"name\":\"h\",\"analysis_id\":\"$aid\"}" -H "Idempotency-Key: bad key!"
check "bad header key: 422" "$status" 422
check "bad header key: one error, saying it is the header" \
  "$(json '[.errors[] | .pointer + " " + .detail] | join(",")')" \
  "/client_token (the Idempotency-Key header) must be 8 to 128 characters of A-Z, a-z, 0-9, _ and -"
# Replays are answered from memcached when it has the key (PostgreSQL decides
# otherwise): expire the key in both, as time would.
project=$(sql "SELECT p.id FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE t.name = 'demo'")
check_match "the key is remembered in memcached" "$(mc "get assay:p:$project:idem:tok_$tag")" "VALUE .*
[0-9a-f]{64} $idem [0-9]+"
sql "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'tok_$tag'" >/dev/null
mc "delete assay:p:$project:idem:tok_$tag" >/dev/null
api POST /api/v1/runs "$req"
check "expired key: a new run" "$status" 201
[ "$(json .run.id)" != "$idem" ] && ok "expired key: different run" || fail "expired key replayed"

check "the expired key was pruned and replaced" "$(sql "SELECT count(*) FROM idempotency_keys WHERE key = 'tok_$tag' AND expires_at > now()")" 1
sql "INSERT INTO idempotency_keys (tenant_id, key, request_hash, expires_at) SELECT id, 'old_$tag', '\\x00', now() - interval '1 day' FROM tenants WHERE name = 'demo'" >/dev/null
api POST /api/v1/runs "{\"name\":\"prune\",\"analysis_id\":\"$aid\",\"client_token\":\"prune_$tag\"}"
check "expired keys are pruned" "$(sql "SELECT count(*) FROM idempotency_keys WHERE key = 'old_$tag'")" 0

# The same request with its input's members in another order is the same
# request: replayed, not refused as a reused key.
api POST /api/v1/runs "{\"name\":\"order\",\"analysis_id\":\"$aid\",\"input\":{\"a\":1,\"b\":{\"x\":[1,{\"p\":1,\"q\":2}],\"y\":2}},\"client_token\":\"order_$tag\"}"
check "member order: first is created" "$status" 201
api POST /api/v1/runs "{\"input\":{\"b\":{\"y\":2,\"x\":[1,{\"q\":2,\"p\":1}]},\"a\":1},\"client_token\":\"order_$tag\",\"analysis_id\":\"$aid\",\"name\":\"order\"}"
check "member order: reordered members replay" "$status" 200
api POST /api/v1/runs "{\"name\":\"order\",\"analysis_id\":\"$aid\",\"input\":{\"a\":1,\"b\":{\"x\":[{\"p\":1,\"q\":2},1],\"y\":2}},\"client_token\":\"order_$tag\"}"
check "member order: array order still matters" "$status" 422

# Races: many rounds of 20 identical requests at once, while the machine
# is kept busy: each key makes exactly one run, and every answer names it.
busy() { while :; do :; done; }
busy & burner=$!
rounds=60
for k in $(seq 1 "$rounds"); do
  race="{\"name\":\"race\",\"analysis_id\":\"$aid\",\"client_token\":\"race_${tag}_$k\"}"
  pids=()
  for i in $(seq 1 20); do
    curl -s -o "$tmp/race.$k.$i" -w "$k %{http_code}\n" -H "Authorization: Bearer $ASSAY_API_KEY" \
      -H 'Content-Type: application/json' -d "$race" "$ASSAY_URL/api/v1/runs" >>"$tmp/race" &
    pids+=($!)
  done
  wait "${pids[@]}"
done 2>/dev/null
kill "$burner"
check "races: every request answered" "$(wc -l <"$tmp/race")" $((rounds * 20))
check "races: exactly one 201 per key" "$(awk '$2 == 201 { n[$1]++ } END { for (k in n) if (n[k] == 1) ok++; print ok + 0 }' "$tmp/race")" "$rounds"
check "races: only 201, 200 or 409" "$(awk '$2 != 201 && $2 != 200 && $2 != 409' "$tmp/race" | wc -l)" 0
check "races: one run per key in the database" \
  "$(sql "SELECT count(*) FROM (SELECT client_token FROM analysis_jobs WHERE client_token LIKE 'race_${tag}_%' GROUP BY client_token HAVING count(*) = 1) x")" "$rounds"
check "races: no extra run" "$(sql "SELECT count(*) FROM analysis_jobs WHERE client_token LIKE 'race_${tag}_%'")" "$rounds"
check "races: every answer names its key's one run" \
  "$(for k in $(seq 1 "$rounds"); do cat "$tmp"/race.$k.* | jq -r '.run.id // empty' | sort -u | wc -l; done | sort -u | tr '\n' ' ')" "1 "
check "races: each key points at its run" \
  "$(sql "SELECT count(*) FROM idempotency_keys k JOIN analysis_jobs j ON j.id = k.job_id AND j.client_token = k.key WHERE k.key LIKE 'race_${tag}_%'")" "$rounds"
rm -rf "$tmp"
finish
