# GET /metrics: the sum over every prefork worker, in the Prometheus text
# format (promtool check metrics), with no high-cardinality labels.
. "$(dirname "$0")/lib.sh"
command -v promtool >/dev/null ||
  { fail "promtool not found (tools/stack check fetches it into var/tools/bin)"; finish; }

metric() { # metric 'NAME{LABELS}' -> its value, 0 when absent
  curl -s "$ASSAY_URL/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}
ready='http_requests_total{route="/ready",method="GET",status="2xx"}'
before=$(metric "$ready")
for i in $(seq 1 40); do curl -s -o /dev/null "$ASSAY_URL/ready"; done
check "40 requests counted, whichever of the workers served them" "$(metric "$ready")" "$((before + 40))"

http GET /metrics
apimetrics=$body
check "200" "$status" 200
check_match "text format 0.0.4" "$(header Content-Type)" '^text/plain; version=0.0.4'
out=$(printf '%s\n' "$body" | promtool check metrics 2>&1); rc=$?
check "promtool check metrics accepts it" "$rc:$out" "0:"
for family in http_request_duration_seconds http_requests_total http_requests_in_flight \
  assay_runs idempotency_store_size database_query_duration_seconds \
  database_connections_active database_connections_idle database_query_errors_total \
  cache_hits_total cache_misses_total cache_operation_duration_seconds \
  rate_limit_exceeded_total assay_build_info memcached_up runs_total; do
  grep -q "^# TYPE $family " <<<"$body" && ok "family $family" || fail "family $family missing"
done
check_match "request histogram has buckets per route" "$body" \
  'http_request_duration_seconds_bucket\{route="/ready",method="GET",status="2xx",le="\+Inf"\}'
check "no id, key or raw path in any label" \
  "$(grep -v '^#' <<<"$body" | grep -Eic '[0-9a-f]{8}-[0-9a-f]{4}|assay_[0-9a-f]{8}_')" 0
check_match "in flight counts this request" "$(metric http_requests_in_flight)" '^[1-9]'
check_match "database connections are open" "$(metric database_connections_idle)" '^[1-9]'

# runs_total counts runs created (the seed's counter, beside assay_runs).
before=$(metric runs_total)
aid=$(new_analysis)
api POST /api/v1/runs "{\"name\":\"counted\",\"analysis_id\":\"$aid\",\"start\":false}"
api POST /api/v1/runs '{"name":"refused"}'
check "runs_total: one more run created, the refused one not counted" "$(( $(metric runs_total) - before ))" 1

# A 429 is counted under its tier.
free='rate_limit_exceeded_total{tier="free"}'
before=$(metric "$free")
KEY=$(new_tenant "metrics_$$_$RANDOM" free)
for i in $(seq 1 21); do api GET /api/v1/runs; done
check "last of 21 free requests refused" "$status" 429
check "429 counted for the free tier" "$(metric "$free")" "$((before + 1))"

# The executor's metrics: outcomes, durations, failure reasons, queue depth.
KEY=$ASSAY_API_KEY
analysis=$(new_analysis)
api POST /api/v1/runs "{\"name\":\"m\",\"analysis_id\":\"$analysis\"}"
run=$(json .run.id)
finished() { api GET "/api/v1/runs/$run" && [ "$(json .run.status)" = completed ]; }
eventually "a run completes" 100 finished
ex=$(curl -s "$EXECUTOR_URL/metrics")
out=$(printf '%s\n' "$ex" | promtool check metrics 2>&1); rc=$?
check "executor: promtool check metrics accepts it" "$rc:$out" "0:"
for family in assay_executor_jobs_total assay_executor_job_duration_seconds \
  assay_executor_failures_total assay_executor_leases_recovered_total \
  assay_executor_running_jobs assay_executor_queue_depth assay_executor_workers \
  assay_executor_workers_started_total assay_executor_outcome_batches_total; do
  grep -q "^# TYPE $family " <<<"$ex" && ok "executor family $family" || fail "executor family $family missing"
done
check_match "executor: completions counted" "$(grep '^assay_executor_jobs_total{outcome="completed"}' <<<"$ex")" ' [1-9]'
check_match "executor: durations observed" "$(grep '^assay_executor_job_duration_seconds_count' <<<"$ex")" ' [1-9]'

# The Grafana dashboard only uses metrics that exist.
missing=
for name in $(grep -oE '(http|database|cache|rate_limit|memcached|assay)_[a-z_]+' "$srcdir/etc/grafana/assay-dashboard.json" |
  sed 's/_bucket$//' | sort -u); do
  grep -q "^# TYPE $name " <<<"$apimetrics
$ex" || missing="$missing $name"
done
check "the dashboard's metrics all exist" "$missing" ""

# Database query time is recorded by every worker.
check_match "database queries observed" "$(metric database_query_duration_seconds_count)" '^[1-9]'
finish
