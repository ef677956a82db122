# Operations endpoints, errors as problem+json, request ids, and behaviour
# while PostgreSQL or memcached are down and after they come back.
. "$(dirname "$0")/lib.sh"

http GET /live
check "/live answers 200" "$status" 200
check "/live is health+json" "$(header Content-Type)" "application/health+json"
check "/live says pass" "$(json .status)" pass

http HEAD /live
check "HEAD /live answers 200" "$status" 200

version=$(assay-api --version | cut -d' ' -f2)
http GET /health
check "/health answers 200" "$status" 200
check "/health says pass" "$(json .status)" pass
check "/health gives the version" "$(json .version)" "$version"
check "/health summarises the config" "$(json .config.workers)" 4
check "/health shows no connection details" "$(json -c '.config | keys')" '["log_level","workers"]'
check "/health names no server" "$(grep -cE '127\.0\.0\.1|postgres|:[0-9]{4,5}' <<<"$body")" 0

http GET /health/detailed
check "/health/detailed answers 200" "$status" 200
check "postgres check passes" "$(json '.checks["postgres:responseTime"][0].status')" pass
check "postgres latency in ms" "$(json '.checks["postgres:responseTime"][0].observedUnit')" ms
check_match "postgres latency observed" "$(json '.checks["postgres:responseTime"][0].observedValue')" '^[0-9]+(\.[0-9]+)?$'
check "memcached check passes" "$(json '.checks["memcached:responseTime"][0].status')" pass

http GET /ready
check "/ready answers 200" "$status" 200

http GET /api/v1/no-such-thing
check "unknown path is 404" "$status" 404
check "404 is problem+json" "$(header Content-Type)" "application/problem+json"
check "404 has a code" "$(json .code)" NOT_FOUND
check "404 has status" "$(json .status)" 404
check_match "404 says what was not found" "$(json .detail)" "/api/v1/no-such-thing"
check "problem carries the request id" "$(json .request_id)" "$(header X-Request-ID)"

http GET /api/no-such-thing
check_match "/api is an alias of /api/v1" "$(json .detail)" "/api/v1/no-such-thing"

http POST /health -d ''
check "wrong method is 405" "$status" 405
check "405 lists allowed methods" "$(header Allow)" "GET, HEAD"
check "405 is problem+json" "$(header Content-Type)" "application/problem+json"
check "405 code" "$(json .code)" METHOD_NOT_ALLOWED

http GET /live -H 'X-Request-ID: trace-42.a_b'
check "a well-formed X-Request-ID is echoed" "$(header X-Request-ID)" "trace-42.a_b"
http GET /live -H 'X-Request-ID: not ok!'
check_match "a malformed X-Request-ID is replaced" "$(header X-Request-ID)" '^[0-9a-f]{32}$'
http GET /live
check_match "a missing X-Request-ID is generated" "$(header X-Request-ID)" '^[0-9a-f]{32}$'

# memcached down: the service keeps answering; the cache shows as a warning.
kill "$(cat "$ASSAY_STACK_DIR/run/memcached.pid")"
memcached_warns() { curl -s "$ASSAY_URL/health/detailed" | jq -e '.status == "warn"'; }
eventually "memcached down: noticed" 50 memcached_warns
http GET /health/detailed
check "memcached down: /health/detailed still 200" "$status" 200
check "memcached down: overall warn" "$(json .status)" warn
check "memcached down: its check warns" "$(json '.checks["memcached:responseTime"][0].status')" warn
http GET /health
check "memcached down: /health still passes" "$(json .status)" pass
stack_up
memcached_back() { curl -s "$ASSAY_URL/health/detailed" | jq -e '.status == "pass"'; }
eventually "memcached back: detailed passes again" 50 memcached_back

# PostgreSQL down: 503 with a health or problem body from every worker, never a crash.
log_mark
pg_ctl -m fast -w stop >/dev/null
for i in 1 2 3 4 5 6 7 8; do
  http GET /health
  [ "$status" = 503 ] && [ "$(json .status)" = fail ] || fail "postgres down: /health #$i gave $status $body"
done
ok "postgres down: /health is 503 fail on every request"
http GET /health/detailed
check "postgres down: /health/detailed 503" "$status" 503
check "postgres down: postgres check fails" "$(json '.checks["postgres:responseTime"][0].status')" fail
check "postgres down: says why" "$(json '.checks["postgres:responseTime"][0].output')" "database unavailable"
http GET /ready
check "postgres down: /ready 503" "$status" 503
http GET /live
check "postgres down: /live still 200" "$status" 200
check "postgres down: no worker died" "$(log_since | grep -c 'killed by signal\|exited with status')" 0
check_match "postgres down: logged" "$(log_since | grep -m1 'database connection failed')" "database connection failed"

stack_up
health_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$ASSAY_URL/health")" = 200 ]; }
eventually "postgres back: /health recovers" 100 health_ok
for i in 1 2 3 4 5 6 7 8; do
  http GET /ready
  [ "$status" = 200 ] || fail "postgres back: /ready #$i gave $status"
done
ok "postgres back: every worker reconnected"

# Connections end cleanly both ways: a request read to its end is closed at
# once, one whose body was refused unread is drained first. Every answer
# arrives whole and the web server logs no error for either.
errlog=$ASSAY_STACK_DIR/log/$ASSAY_SERVER-error.log
lines=$(wc -l <"$errlog")
tally() { sort | uniq -c | awk '{ print $2 "x" $1 }'; } # "200x3" for three lines "200"
check "200 probes in a row: all 200" \
  "$(curl -s -o /dev/null -w '%{http_code}\n' "$ASSAY_URL/live?[1-200]" | tally)" 200x200
head -c 300000 /dev/zero >"$ASSAY_STACK_DIR/zeros"
for i in $(seq 1 20); do
  curl -s -H 'Content-Type: application/json' --data-binary "@$ASSAY_STACK_DIR/zeros" "$ASSAY_URL/api/v1/runs"
  echo
done >"$ASSAY_STACK_DIR/refused"
check "bodies refused unread: 20 whole problem answers" \
  "$(jq -r .status "$ASSAY_STACK_DIR/refused" | tally)" 401x20
check "the web server logged nothing" "$(tail -n +"$((lines + 1))" "$errlog")" ""
rm -f "$ASSAY_STACK_DIR/zeros" "$ASSAY_STACK_DIR/refused"
finish
