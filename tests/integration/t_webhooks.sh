# Run webhooks, received by a real receiver that checks each signature with
# the Standard Webhooks library: completed, failed and canceled runs are
# delivered and verify; a receiver answering 500 twice gets the delivery on
# the third attempt; a receiver that keeps failing opens its breaker (no
# request reaches it while open), then half-open, then closed; an executor
# SIGKILLed while a delivery is out delivers it after its restart, one
# webhook-id; an address the executor does not allow is never connected
# to; a rotated secret signs beside the new one; the metrics are there.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
conf=$ASSAY_STACK_DIR/conf/executor.conf
ex_pid() { cat "$ASSAY_STACK_DIR/run/assay-executor.pid"; }
metrics() { curl -s "$EXECUTOR_URL/metrics"; }

# Short timings for the test: attempts 1 s apart, a 1 s timeout, breakers
# that stay open 3 s (reloaded; again after a restart, which writes the
# stack's configuration anew).
short_timings() {
  cat >>"$conf" <<'CONF'
# t_webhooks {
[webhooks]
retry_schedule = 1s 1s 1s 1s 1s 1s 1s 1s
timeout_ms = 1000
[outbound]
recovery_ms = 3000
[executor]
# t_webhooks }
CONF
  kill -HUP "$(ex_pid)"
  sleep 0.5
}
short_timings

# receiver NAME: start one; its URL in ${NAME}_url.
receiver() {
  node "$here/webhook-receiver.mjs" "$tmp/$1.port" &
  echo $! >>"$tmp/pids"
  for _ in $(seq 1 100); do [ -s "$tmp/$1.port" ] && break; sleep 0.1; done
  printf -v "$1_url" 'http://127.0.0.1:%s' "$(cat "$tmp/$1.port")"
}
control() { curl -s -d "$2" "$1/control" >/dev/null; }
received() { curl -s "$1/deliveries"; }
count() { received "$1" | jq length; }

name=wh$$
KEY=$(new_tenant "$name" enterprise)
secret=$(assayctl tenant webhook-secret "$name")
check_match "the tenant's signing secret" "$secret" '^whsec_[A-Za-z0-9+/]{43}=$'
receiver main
control "$main_url" "{\"secrets\": [\"$secret\"]}"

hooked() { # ANALYSIS URL [INPUT]: a run with a callback; its id
  api POST /api/v1/runs "{\"name\":\"t\",\"analysis_id\":\"$1\",\"callback_url\":\"$2\"${3:+,\"input\":$3}}"
  json .run.id
}
# The deliveries of a run (GET .../deliveries) in $body.
deliveries() { api GET "/api/v1/runs/$1/deliveries"; }
# The newest delivery's status, from the database (polling the API would
# spend the tenant's requests).
last_status() { sql "SELECT status FROM webhook_deliveries WHERE job_id = '$1' ORDER BY created_at DESC LIMIT 1"; }
delivered() { [ "$(last_status "$1")" = delivered ]; }
got() { [ "$(received "$1" | jq --arg r "$2" '[.[] | select(.run == $r)] | length')" -ge "${3:-1}" ]; }

# Completed, failed, canceled: each delivered once, signed, verified.
ok_a=$(analysis 'function analyze(i) { return {doubled: i.n * 2}; }')
bad_a=$(analysis 'function analyze() { throw new Error("no"); }')
slow_a=$(analysis 'function analyze() { var t = Date.now(); while (Date.now() - t < 20000) {} }')
r1=$(hooked "$ok_a" "$main_url/hook" '{"n":21}')
r2=$(hooked "$bad_a" "$main_url/hook")
r3=$(hooked "$slow_a" "$main_url/hook")
running() { api GET "/api/v1/runs/$r3"; [ "$(json .run.status)" = running ]; }
eventually "the slow run starts" 200 running
api POST "/api/v1/runs/$r3/cancel"
for r in "$r1" "$r2" "$r3"; do eventually "run $r: its delivery is received" 300 got "$main_url" "$r"; done
eventually "run $r1: delivered" 100 delivered "$r1"
one() { received "$main_url" | jq -c --arg r "$1" "[.[] | select(.run == \$r)][0] | $2"; }
check "completed: type and status" "$(one "$r1" '[.type, .run_status, .status]')" '["run.completed","completed",200]'
check "completed: the signature verifies (standardwebhooks)" "$(one "$r1" .verified)" '[true]'
check_match "completed: webhook-id" "$(one "$r1" .id)" '^"msg_[0-9a-f]{32}"$'
check "failed: type, verified" "$(one "$r2" '[.type, .verified[0]]')" '["run.failed",true]'
check "canceled: type, verified" "$(one "$r3" '[.type, .verified[0]]')" '["run.canceled",true]'
deliveries "$r1"
check "the run's deliveries: one, delivered at the first attempt" \
  "$(json -c '[(.data | length), .data[0].status, .data[0].attempts, .data[0].attempt_log[0].status_code]')" '[1,"delivered",1,200]'
check "the webhook-id is the delivery's id" "\"$(json '.data[0].id')\"" "$(one "$r1" .id)"
check "the payload carries the run" \
  "$(received "$main_url" | jq -c --arg r "$r1" '[.[] | select(.run == $r)] | length')" 1

# 500, 500, then 200: delivered at the third attempt, each attempt recorded.
control "$main_url" '{"answers": [500, 500]}'
r4=$(hooked "$ok_a" "$main_url/retry" '{"n":1}')
eventually "500 twice: delivered at the third attempt" 200 delivered "$r4"
deliveries "$r4"
check "500 twice: the attempts" "$(json -c '[.data[0].attempts, [.data[0].attempt_log[].status_code]]')" '[3,[500,500,200]]'
check "500 twice: the receiver saw one webhook-id three times" \
  "$(received "$main_url" | jq -c --arg r "$r4" '[.[] | select(.run == $r)] | [length, (map(.id) | unique | length)]')" '[3,1]'

# A receiver that keeps failing: its breaker opens after 5 failed attempts,
# and no request reaches it while open; then a probe (half-open), and 3
# successes close it. The other receiver's breaker stays closed.
receiver down
control "$down_url" "{\"secrets\": [\"$secret\"], \"default\": 503}"
ep=${down_url#http://}
state() { metrics | awk -v e="endpoint=\"http://$ep\"" 'index($0, "assay_executor_outbound_breaker_state{") == 1 && index($0, e) { print $2 }'; }
for i in 1 2 3 4 5 6; do hooked "$ok_a" "$down_url/hook" '{"n":1}' >"$tmp/run-down.$i"; done
opened() { [ "$(state)" = 2 ]; }
eventually "failing receiver: the breaker opens" 300 opened
n_open=$(count "$down_url")
check_match "failing receiver: opened after 5 consecutive failures (or the 6th in flight)" "$n_open" '^[56]$'
sleep 2
check "failing receiver: no request while open" "$(count "$down_url")" "$n_open"
control "$down_url" '{"default": 200}'
closed() { [ "$(state)" = 0 ]; }
eventually "failing receiver: half-open, then closed by successes" 300 closed
check "breaker transitions: open, half-open, closed" \
  "$(metrics | grep "^assay_executor_outbound_breaker_transitions_total{endpoint=\"http://$ep\"" | awk '$2 > 0 { sub(/.*to="/, ""); sub(/".*/, ""); print }' | sort | tr '\n' ' ')" \
  "closed half-open open "
all_down_delivered() { for f in "$tmp"/run-down.*; do delivered "$(cat "$f")" || return 1; done; }
eventually "failing receiver: every delivery arrives in the end" 300 all_down_delivered
check "the other receiver's breaker stayed closed" \
  "$(metrics | awk -v e="endpoint=\"http://${main_url#http://}\"" 'index($0, "assay_executor_outbound_breaker_state{") == 1 && index($0, e) { print $2 }')" 0

# An executor killed while a delivery is out: after its restart the
# delivery is sent again (same webhook-id) and delivered once.
control "$main_url" '{"hang": 1}'
r5=$(hooked "$ok_a" "$main_url/crash" '{"n":5}')
eventually "crash: the delivery reached the receiver" 300 got "$main_url" "$r5"
kill -KILL "$(ex_pid)"
stack_up
short_timings
eventually "crash: delivered after the restart" 300 delivered "$r5"
check "crash: one webhook-id, sent twice, answered once with 200" \
  "$(received "$main_url" | jq -c --arg r "$r5" '[.[] | select(.run == $r)] | [(map(.id) | unique | length), length, (map(select(.status == 200)) | length)]')" '[1,2,1]'
deliveries "$r5"
check "crash: one delivery, delivered" "$(json -c '[(.data | length), .data[0].status]')" '[1,"delivered"]'

# An address the API accepts but the executor does not allow: refused
# when connecting (whatever a name would resolve to), nothing sent.
sed -i 's|^allow_networks = 127.0.0.0/8$|allow_networks = 127.0.0.1/32|' "$conf"
kill -HUP "$(ex_pid)"
sleep 0.5
r6=$(hooked "$ok_a" "http://127.0.0.2:$(cat "$tmp/main.port")/never" '{"n":6}')
attempted() { [ "$(sql "SELECT coalesce(max(jsonb_array_length(attempt_log)), 0) FROM webhook_deliveries WHERE job_id = '$r6'")" -ge 1 ]; }
eventually "refused address: the attempt is recorded" 300 attempted
deliveries "$r6"
check_match "refused address: the attempt says why" "$(json '.data[0].attempt_log[0].error')" 'refused|not allowed|address'
check "refused address: nothing reached the receiver" "$(received "$main_url" | jq '[.[] | select(.path == "/never")] | length')" 0
sed -i 's|^allow_networks = 127.0.0.1/32$|allow_networks = 127.0.0.0/8|' "$conf"
kill -HUP "$(ex_pid)"

# Rotation: for 24 h the previous secret signs beside the new one.
new=$(assayctl tenant webhook-secret "$name" --rotate 2>/dev/null)
check "rotation: a new secret" "$([ "$new" != "$secret" ] && [ "${new#whsec_}" != "$new" ] && echo new)" new
control "$main_url" "{\"secrets\": [\"$secret\", \"$new\"], \"hang\": 0}"
r7=$(hooked "$ok_a" "$main_url/rotated" '{"n":7}')
eventually "rotation: delivered" 300 delivered "$r7"
check "rotation: two signatures, each secret verifies" "$(one "$r7" '[.signatures, .verified]')" '[2,[true,true]]'

# Redelivery: a fresh delivery, a new webhook-id.
api POST "/api/v1/runs/$r1/deliveries/redeliver"
check "redeliver: 202" "$status" 202
eventually "redeliver: received again" 300 got "$main_url" "$r1" 2
check "redeliver: a new webhook-id" \
  "$(received "$main_url" | jq -c --arg r "$r1" '[.[] | select(.run == $r) | .id] | unique | length')" 2

# Two executors deliver at once; neither sends a delivery the other holds.
sed "s/^port = .*/port = $(free_port)/" "$conf" >"$tmp/executor2.conf"
assay-executor -c "$tmp/executor2.conf" 2>"$tmp/executor2.log" &
second=$!
for i in $(seq 1 60); do hooked "$ok_a" "$main_url/pair" "{\"n\":$i}" >/dev/null; done
pair_done() { [ "$(received "$main_url" | jq '[.[] | select(.path == "/pair")] | length')" -ge 60 ]; }
eventually "two executors: 60 deliveries received" 300 pair_done
sleep 1
check "two executors: each delivery sent once" \
  "$(received "$main_url" | jq -c '[.[] | select(.path == "/pair")] | [length, (map(.id) | unique | length)]')" '[60,60]'
ok "two executors: the second delivered $(curl -s "http://127.0.0.1:$(sed -n 's/^port = //p' "$tmp/executor2.conf" | tail -1)/metrics" | awk '$1 ~ /webhook_attempts_total\{outcome="delivered"/ { print $2 }') of them"
kill -TERM "$second"; wait "$second" 2>/dev/null

# A delivery whose run is gone is dropped when it comes due; prune takes
# runs' deliveries with them.
sql "INSERT INTO webhook_deliveries (job_id, url, type) VALUES (gen_random_uuid(), '$main_url/orphan', 'run.completed')" >/dev/null
orphan_gone() { [ "$(sql "SELECT count(*) FROM webhook_deliveries WHERE url = '$main_url/orphan'")" = 0 ]; }
eventually "a delivery of a run that is gone is dropped" 100 orphan_gone
check "nothing sent for it" "$(received "$main_url" | jq '[.[] | select(.path == "/orphan")] | length')" 0
sql "UPDATE analysis_jobs SET created_at = now() - interval '1000 days' WHERE id = '$r1'" >/dev/null
sql "UPDATE tenants SET tier = 'pro' WHERE name = '$name'" >/dev/null # (enterprise keeps all)
assayctl prune --config "$ASSAY_STACK_DIR/conf/assay.conf" >/dev/null 2>&1
check "prune: the run's deliveries go with it" "$(sql "SELECT count(*) FROM webhook_deliveries WHERE job_id = '$r1'")" 0

m=$(metrics)
for fam in assay_executor_outbound_requests_total assay_executor_outbound_request_duration_seconds_bucket \
  assay_executor_outbound_retries_total assay_executor_outbound_breaker_state \
  assay_executor_outbound_breaker_transitions_total assay_executor_webhook_attempts_total; do
  check_match "metrics: $fam" "$m" "^$fam"
done

# The signing secrets never reach a log.
check "no signing secret in any log" \
  "$(grep -rlF -e "${secret#whsec_}" -e "${new#whsec_}" "$ASSAY_STACK_DIR/log" | wc -l)" 0

xargs kill <"$tmp/pids" 2>/dev/null
sed -i '/^# t_webhooks {$/,/^# t_webhooks }$/d' "$conf"
kill -HUP "$(ex_pid)"
rm -rf "$tmp"
finish
