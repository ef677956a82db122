# Retries of dead runs: POST /api/v1/runs/{id}/retry gives a failed or
# canceled run a new set of attempts (202, a 'retried' event, the cache
# forgotten) and it runs to completion; any other run is 409; a full queue
# 429. GET /api/v1/runs?status=failed&since= lists the dead runs.
# `assayctl runs retry` requeues in bulk, batch by batch, within the queue.
. "$(dirname "$0")/lib.sh"
keep_conf
ex_pid() { cat "$ASSAY_STACK_DIR/run/assay-executor.pid"; }
KEY=$(new_tenant "retry_$$_$RANDOM" pro)
flag=flags/f$$_$RANDOM.txt

# A run that fails until a file exists: its one attempt fails, then the
# file is written and the run retried: it completes.
aid=$(analysis "function analyze(input, ctx) { return ctx.files.read(input.path); }")
api POST /api/v1/runs "{\"name\":\"r\",\"analysis_id\":\"$aid\",\"input\":{\"path\":\"$flag\"}}"
run=$(json .run.id)
eventually "the run fails its one attempt" 300 finished "$run"
api GET "/api/v1/runs/$run"
check "failed" "$(json .run.status) $(json .run.attempts)/$(json .run.max_attempts)" "failed 1/1"
check_match "with why" "$(json .run.error_message)" "404"
check "a failed run may be retried: clients are not told to keep it" \
  "$(header Cache-Control | grep -c max-age)" 0
# now cached, as a finished run is (read often: most API workers read it)
for i in $(seq 1 12); do api GET "/api/v1/runs/$run"; done
printf 'ready\n' >"$tmp/flag"
api PUT "/api/v1/files/$flag" --data-binary "@$tmp/flag" -H 'Content-Type: text/plain'
api POST "/api/v1/runs/$run/retry" -d ''
check "retry: 202" "$status" 202
check "retry: pending again, a new set of attempts" \
  "$(json '"\(.run.status) \(.run.attempts)/\(.run.max_attempts) \(.run.error_message) \(.run.finished_at)"')" \
  "pending 1/2 null null"
seen=
for i in $(seq 1 12); do api GET "/api/v1/runs/$run"; seen="$seen $(json .run.max_attempts)"; done
check "no API worker shows the run as it was before the retry" "$seen" \
  "$(printf ' 2%.0s' $(seq 1 12))"
eventually "the retried run completes" 300 finished "$run"
api GET "/api/v1/runs/$run"
check "completed after the retry" "$(json '"\(.run.status) \(.run.attempts) \(.run.result)"')" "completed 2 ready"
check "events: failed, retried, pending, then the new attempt" \
  "$(sql "SELECT string_agg(type, ',' ORDER BY seq) FROM job_events WHERE job_id = '$run'")" \
  "created,pending,running,script_error,failed,retried,pending,running,completed"
check "the retried event says what was retried" \
  "$(sql "SELECT data->>'previous_status' || ' ' || (data->>'attempts') || ' ' || (data->>'by') FROM job_events WHERE job_id = '$run' AND type = 'retried'")" \
  "failed 1 api"
api POST "/api/v1/runs/$run/retry" -d ''
check "retry of a completed run: 409" "$status $(json .code)" "409 RUN_STATE_CONFLICT"
check_match "says why" "$(json .detail)" "the run is completed; only a failed or canceled run"

# Canceled runs are dead too; created and pending ones are not.
api POST /api/v1/runs "{\"name\":\"c\",\"analysis_id\":\"$aid\",\"input\":{\"path\":\"$flag\"},\"start\":false}"
c=$(json .run.id)
api POST "/api/v1/runs/$c/retry" -d ''
check "retry of a created run: 409" "$status" 409
api POST "/api/v1/runs/$c/cancel" -d ''
api POST "/api/v1/runs/$c/retry" -d ''
check "retry of a canceled run: 202" "$status $(json .run.status) $(json .run.cancel_requested_at)" "202 pending null"
eventually "the retried canceled run completes" 300 finished "$c"
api GET "/api/v1/runs/$c"
check "it completed" "$(json .run.status)" completed
api POST /api/v1/runs/00000000-0000-0000-0000-000000000000/retry -d ''
check "retry of an unknown run: 404" "$status $(json .code)" "404 RUN_NOT_FOUND"
KEY=$ASSAY_API_KEY api POST "/api/v1/runs/$run/retry" -d ''
check "retry of another tenant's run: 404" "$status" 404

# Retried runs are queued again: they count against max_queued.
printf '\n[tiers]\npro_max_queued = 2\npro_requests_per_minute = 0\npro_runs_per_hour = 0\n' >>"$conf"
api_reload
sleep 1
kill "$(ex_pid)" # nothing may start the queued runs now
trap 'cp "$tmp/assay.conf.orig" "$conf"; api_reload; stack_up; rm -rf "$tmp"' EXIT
never=$(analysis "function analyze() { throw new Error('no'); }")
dead=()
for i in 1 2 3; do
  api POST /api/v1/runs "{\"name\":\"d$i\",\"analysis_id\":\"$never\",\"start\":false}"
  dead+=("$(json .run.id)")
  api POST "/api/v1/runs/${dead[-1]}/cancel" -d ''
done
api POST /api/v1/runs "{\"name\":\"q\",\"analysis_id\":\"$never\",\"start\":false}"
api POST "/api/v1/runs/${dead[0]}/retry" -d ''
check "retry with room for one: 202" "$status" 202
api POST "/api/v1/runs/${dead[1]}/retry" -d ''
check "retry on a full queue: 429 QUEUE_FULL" "$status $(json .code) $(json .queue_depth) $(json .max_queued)" "429 QUEUE_FULL 2 2"
check "with Retry-After" "$(header Retry-After)" 5
api GET "/api/v1/runs/${dead[1]}"
check "the run stays canceled" "$(json .run.status)" canceled

# The dead runs: status and since.
api GET "/api/v1/runs?status=failed,canceled&since=1h"
check "since=1h lists the dead runs" "$(json '[.runs[].id] | length')" 2
check "only dead ones" "$(json '[.runs[].status] | unique | join(",")')" canceled
api GET "/api/v1/runs?status=failed&since=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
check "since a time to come: none" "$status $(json '.runs | length')" "200 0"
api GET "/api/v1/runs?since=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%S.5%%2B00:00)"
check "since an RFC 3339 time with a fraction and an offset" "$(json '.runs | length')" 6
since=$(sql "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM analysis_jobs WHERE id = '${dead[2]}'")
api GET "/api/v1/runs?since=$since"
check "since is inclusive: created at or after" "$(json '[.runs[].name] | join(",")')" "q,d3"
for bad in 1x 2026-02-30T00:00:00Z 2026-01-01 yesterday 2026-01-01T00:00:00 3000000d 999999999h; do
  api GET "/api/v1/runs?since=$bad"
  check "since=$bad: 400 naming it" "$status $(json '.errors[0].parameter')" "400 since"
done

# assayctl runs retry: 12 dead runs, max_queued 10 with 1 queued: 9 are
# retried, 3 per transaction, and 3 left dead, the queue full.
printf '\n[tiers]\npro_max_queued = 10\n' >>"$conf"
sql "UPDATE analysis_jobs SET status = 'canceled', finished_at = now() WHERE id = '${dead[0]}'" >/dev/null
name=bulk_$$_$RANDOM
KEY=$(new_tenant "$name" pro)
never=$(analysis "function analyze() { throw new Error('no'); }")
for i in $(seq 1 12); do
  api POST /api/v1/runs "{\"name\":\"b$i\",\"analysis_id\":\"$never\",\"start\":false}"
  sql "UPDATE analysis_jobs SET status = 'failed', attempts = 1, finished_at = now(), error_message = 'no' WHERE id = '$(json .run.id)'" >/dev/null
done
api POST /api/v1/runs "{\"name\":\"waiting\",\"analysis_id\":\"$never\",\"start\":false}"
b1=$(sql "SELECT j.id FROM analysis_jobs j JOIN tenants t ON t.id = j.tenant_id WHERE t.name = '$name' AND j.name = 'b1'")
for i in $(seq 1 12); do api GET "/api/v1/runs/$b1"; done # cached, failed
out=$(assayctl runs retry --config "$conf" --status failed --tenant "$name" --since 1h --batch 3)
check "assayctl runs retry: exit 0" "$?" 0
check "assayctl runs retry: what it did" "$out" "$name/default: 9 run(s) retried, 3 left dead: its queue is full (pro_max_queued 10)
total: 9 run(s) retried, 3 left dead"
check "the queue is full, not over" \
  "$(sql "SELECT count(*) FROM analysis_jobs j JOIN tenants t ON t.id = j.tenant_id WHERE t.name = '$name' AND j.status IN ('created', 'pending')")" 10
check "each retried run has its event" \
  "$(sql "SELECT count(*) FROM job_events e JOIN analysis_jobs j ON j.id = e.job_id JOIN tenants t ON t.id = j.tenant_id WHERE t.name = '$name' AND e.type = 'retried' AND e.data->>'by' = 'assayctl'")" 9
seen=
for i in $(seq 1 12); do api GET "/api/v1/runs/$b1"; seen="$seen $(json .run.max_attempts)"; done
check "the API forgot what it had cached of a run assayctl retried" "$seen" \
  "$(printf ' 2%.0s' $(seq 1 12))"
check "assayctl retried them oldest first" \
  "$(sql "SELECT string_agg(j.name, ',' ORDER BY j.name) FROM analysis_jobs j JOIN tenants t ON t.id = j.tenant_id WHERE t.name = '$name' AND j.status = 'failed'")" "b10,b11,b12"
out=$(assayctl runs retry --config "$conf" --status failed --analysis "$never" --tenant "$name")
check "again on a full queue: none" "$out" "$name/default: 0 run(s) retried, 3 left dead: its queue is full (pro_max_queued 10)
total: 0 run(s) retried, 3 left dead"
out=$(assayctl runs retry --config "$conf" --status failed --tenant "$name" --since 1h --analysis 00000000-0000-0000-0000-000000000000)
check "another analysis: nothing to do" "$out" "total: 0 run(s) retried, 0 left dead"
assayctl runs retry --status running >/dev/null 2>&1
check "only dead statuses: usage error" "$?" 2
assayctl runs retry --status failed --since soon >/dev/null 2>&1
check "a bad --since: usage error" "$?" 2
finish
