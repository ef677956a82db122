# Run webhooks from the API's side: where a run's callback_url may point
# (checked when the run is created; nothing is ever sent to a refused
# address), a run's deliveries and their redelivery, the check of
# webhook_allow_networks, and the tenant's signing secret (assayctl tenant
# webhook-secret). Sending deliveries is t_webhooks.sh's.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
aid=$(analysis 'function analyze(i) { return 1; }')

# callback_url: refused with a 422 naming it and saying why, nothing stored.
runs_before=$(sql "SELECT count(*) FROM analysis_jobs")
create() { # URL [more members]
  api POST /api/v1/runs "{\"name\":\"cb\",\"analysis_id\":\"$aid\",\"callback_url\":\"$1\"${2:+,$2}}"
}
refused() { # URL DETAIL-REGEX [LABEL]
  create "$1" '"start":false'
  check "${3:-$1}: 422" "$status" 422
  check "${3:-$1}: names callback_url alone" "$(json '[.errors[].pointer] | join(",")')" /callback_url
  check_match "${3:-$1}: says why" "$(json '.errors[0].detail')" "$2"
}
allow='such addresses are refused unless listed in webhook_allow_networks$'
refused http://169.254.169.254/latest "^points to 169\.254\.169\.254, a link-local address; $allow"
refused http://10.0.0.1/x "^points to 10\.0\.0\.1, a private address; $allow"
refused 'http://[::1]/x' "^points to ::1, a loopback address; $allow"
refused 'http://[fd00::1]:8080/x' "^points to fd00::1, a private address"
refused http://100.64.0.1/x "carrier-grade NAT"
refused http://0.0.0.0:9/x "^points to 0\.0\.0\.0, a special-purpose address"
refused http://user:pw@example.com/x '^must not contain credentials'
refused 'http://x.example/#frag' '^must not contain a fragment'
refused ftp://example.com/x '^must be an http or https URL of at most 2048 bytes$'
refused "http://example.com/$(head -c 2030 /dev/zero | tr '\0' x)" 'at most 2048 bytes' '2049 bytes'
check "refused callback URLs store nothing" "$(sql "SELECT count(*) FROM analysis_jobs")" "$runs_before"
# .invalid never resolves (RFC 6761); where no DNS server answers at all,
# the lookup cannot be made now: 503, to be tried again.
create http://nowhere.invalid/x '"start":false'
case $status in
  422) check "a host that does not resolve: named" "$(json '.errors[0].pointer + " " + .errors[0].detail')" \
    "/callback_url host nowhere.invalid does not resolve" ;;
  503) check "no DNS answer: DNS_UNAVAILABLE" "$(json .code)" DNS_UNAVAILABLE ;;
  *) fail "a host that does not resolve: 422 or 503, got $status" ;;
esac
api POST /api/v1/runs "{\"name\":\"\",\"analysis_id\":\"$aid\",\"callback_url\":\"http://10.0.0.1/x\"}"
check "with other violations, all are listed" "$(json '[.errors[].pointer] | sort | join(",")')" \
  "/callback_url,/name"
# The stack allows 127.0.0.0/8 (webhook_allow_networks); port 9 is discard,
# so that nothing listens if a delivery is ever attempted.
create http://127.0.0.1:9/hook '"start":false'
check "an allowed network: 201" "$status" 201
check "an allowed network: kept" "$(json .run.callback_url)" http://127.0.0.1:9/hook
idle=$(json .run.id)

# webhook_allow_networks: a list that does not parse is refused at start
# and by -t, naming the entry.
out=$(WEBHOOK_ALLOW_NETWORKS='10.0.0.0/8, intranet' assay-api -t -c "$ASSAY_STACK_DIR/conf/assay.conf" 2>&1)
check "a bad webhook_allow_networks: -t fails" "$?" 1
check_match "a bad webhook_allow_networks: named" "$out" \
  "webhook_allow_networks: '10\.0\.0\.0/8, intranet' is not a list of networks: 'intranet' is neither a CIDR nor an address"
out=$(WEBHOOK_ALLOW_NETWORKS='10.0.0.0/8, fd00::/8, 192.168.1.1' assay-api -t -c "$ASSAY_STACK_DIR/conf/assay.conf" 2>&1)
check "a good webhook_allow_networks: -t passes" "$?" 0

# Deliveries: the outbox has one when a run with a callback_url finishes.
# Whether it is sent yet is not this test's business (pending or failed).
create http://127.0.0.1:9/hook
run=$(json .run.id)
eventually "a run with a callback_url finishes" 100 finished "$run"
api GET "/api/v1/runs/$run/deliveries"
check "deliveries: 200" "$status" 200
check "deliveries: one, for its completion" "$(json '[.data[].type] | join(",")')" run.completed
check_match "deliveries: a message id" "$(json '.data[0].id')" '^msg_[0-9a-f]{32}$'
check "deliveries: to the callback_url" "$(json '.data[0].url')" http://127.0.0.1:9/hook
check_match "deliveries: pending or failed (nothing listens)" "$(json '.data[0].status')" '^(pending|failed)$'
check "deliveries: an attempt log" "$(json '.data[0].attempt_log | type')" array
first=$(json '.data[0].id')
api GET "/api/runs/$run/deliveries"
check "deliveries under /api: the same" "$status $(json '.data[0].id')" "200 $first"
api GET "/api/v1/runs/$idle/deliveries"
check "a run not finished has none" "$status $(json -c .data)" "200 []"

# Redelivery: a new delivery of the finished run's state, newest first.
api POST "/api/v1/runs/$run/deliveries/redeliver"
check "redeliver: 202" "$status" 202
again=$(json '.delivery.id')
check "redeliver: a new delivery, pending, not yet tried" \
  "$(json '[.delivery.type, .delivery.status, .delivery.attempts, (.delivery.attempt_log | length)] | map(tostring) | join(" ")')" \
  "run.completed pending 0 0"
check "redeliver: its own id" "$([ "$again" != "$first" ] && echo new)" new
api GET "/api/v1/runs/$run/deliveries"
check "redeliver: the list grows, newest first" "$(json '[.data[].id] | join(",")')" "$again,$first"
check "redeliver: the same body" \
  "$(sql "SELECT count(DISTINCT payload) FROM webhook_deliveries WHERE job_id = '$run'")" 1
api POST "/api/runs/$run/deliveries/redeliver"
check "redeliver under /api: 202" "$status" 202
api POST "/api/v1/runs/$idle/deliveries/redeliver"
check "redeliver a created run: 409" "$status $(json .code)" "409 RUN_NOT_FINISHED"
check "redeliver a created run: nothing enqueued" \
  "$(sql "SELECT count(*) FROM webhook_deliveries WHERE job_id = '$idle'")" 0
# A run still running, then canceled: its cancellation is delivered.
slow=$(analysis 'function analyze(i) { var t = Date.now(); while (Date.now() - t < 20000) {} return 1; }')
api POST /api/v1/runs "{\"name\":\"slow\",\"analysis_id\":\"$slow\",\"callback_url\":\"http://127.0.0.1:9/hook\"}"
busy=$(json .run.id)
running() { api GET "/api/v1/runs/$busy"; [ "$(json .run.status)" = running ]; }
eventually "a slow run is running" 100 running
api POST "/api/v1/runs/$busy/deliveries/redeliver"
check "redeliver a running run: 409" "$status $(json .code)" "409 RUN_NOT_FINISHED"
api POST "/api/v1/runs/$busy/cancel"
eventually "the slow run is canceled" 100 finished "$busy"
api GET "/api/v1/runs/$busy/deliveries"
check "a canceled run: its delivery says so" "$(json '[.data[].type] | join(",")')" run.canceled
# Without a callback_url there is nowhere to deliver to.
plain=$(submit "$aid")
eventually "a run without a callback_url finishes" 100 finished "$plain"
api GET "/api/v1/runs/$plain/deliveries"
check "no callback_url: no deliveries" "$status $(json -c .data)" "200 []"
api POST "/api/v1/runs/$plain/deliveries/redeliver"
check "redeliver without a callback_url: 409" "$status $(json .code)" "409 NO_CALLBACK_URL"

# Unknown runs and other tenants' runs are not found.
api GET /api/v1/runs/00000000-0000-0000-0000-000000000000/deliveries
check "deliveries of an unknown run: 404" "$status $(json .code)" "404 RUN_NOT_FOUND"
api GET /api/v1/runs/xyz/deliveries
check "deliveries of a malformed id: 404" "$status" 404
api POST /api/v1/runs/00000000-0000-0000-0000-000000000000/deliveries/redeliver
check "redeliver an unknown run: 404" "$status" 404
other=cb$$_$RANDOM
KEY=$(new_tenant "$other" free)
KEY=$KEY api GET "/api/v1/runs/$run/deliveries"
check "another tenant's deliveries: 404" "$status" 404
KEY=$KEY api POST "/api/v1/runs/$run/deliveries/redeliver"
check "another tenant's redeliver: 404" "$status" 404
check "another tenant enqueued nothing" \
  "$(sql "SELECT count(*) FROM webhook_deliveries WHERE job_id = '$run'")" 3

# The signing secret: whsec_ and the base64 of the tenant's 32 bytes.
secret=$(assayctl tenant webhook-secret "$other")
check "webhook-secret: exit 0" "$?" 0
check_match "webhook-secret: whsec_ and base64" "$secret" '^whsec_[A-Za-z0-9+/]{43}=$'
check "webhook-secret: 32 bytes" "$(printf '%s' "${secret#whsec_}" | base64 -d | wc -c)" 32
check "webhook-secret: the stored one" \
  "$(sql "SELECT encode(webhook_secret, 'hex') FROM tenants WHERE name = '$other'")" \
  "$(printf '%s' "${secret#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \n')"
check "webhook-secret: the same when asked again" "$(assayctl tenant webhook-secret "$other")" "$secret"
rotated=$(assayctl tenant webhook-secret "$other" --rotate 2>"$tmp/err")
check "--rotate: exit 0" "$?" 0
check_match "--rotate: a new secret" "$rotated" '^whsec_[A-Za-z0-9+/]{43}=$'
check "--rotate: not the old one" "$([ "$rotated" != "$secret" ] && echo changed)" changed
check_match "--rotate: says the old one signs for 24 hours" "$(cat "$tmp/err")" '24 hours'
check "--rotate: the old one is the previous" \
  "$(sql "SELECT 'whsec_' || encode(webhook_secret_previous, 'base64') FROM tenants WHERE name = '$other'")" "$secret"
check "--rotate: now current" "$(assayctl tenant webhook-secret "$other")" "$rotated"
check "--rotate: when" \
  "$(sql "SELECT webhook_secret_rotated_at > now() - interval '1 minute' FROM tenants WHERE name = '$other'")" t
assayctl tenant webhook-secret "no_such_$other" >"$tmp/out" 2>"$tmp/err"
check "an unknown tenant: exit 1" "$?" 1
check "an unknown tenant: nothing on stdout" "$(cat "$tmp/out")" ""
check "an unknown tenant: said" "$(cat "$tmp/err")" "assayctl: no tenant no_such_$other"
assayctl tenant webhook-secret "$other" --tier pro >/dev/null 2>&1
check "webhook-secret takes no --tier: usage" "$?" 2

rm -rf "$tmp"
finish
