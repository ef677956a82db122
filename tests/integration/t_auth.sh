# API keys: missing, malformed, unknown and revoked keys get 401 with a
# challenge; both header forms work; keys are stored hashed, never logged.
. "$(dirname "$0")/lib.sh"

http GET /api/v1/runs
check "no key: 401" "$status" 401
check_match "no key: challenge" "$(header WWW-Authenticate)" '^Bearer realm="assay"'
check "no key: problem+json" "$(header Content-Type)" "application/problem+json"
check "no key: code" "$(json .code)" UNAUTHENTICATED
check "no key: audited as an authentication failure, no actor" \
  "$(sql "SELECT count(*) FROM audit_log WHERE action = 'auth.failure' AND actor IS NULL AND request_id = '$(header X-Request-ID)'")" 1

KEY=garbage api GET /api/v1/runs
check "malformed key: 401" "$status" 401
check "malformed key: code" "$(json .code)" INVALID_API_KEY
check_match "malformed key: invalid_token" "$(header WWW-Authenticate)" 'error="invalid_token"'

KEY=assay_00000000_000000000000000000000000000000000000000000000000 api GET /api/v1/runs
check "unknown key: 401" "$status" 401

api GET /api/v1/runs
check "Bearer key: 200" "$status" 200
http GET /api/v1/runs -H "X-API-Key: $ASSAY_API_KEY"
check "X-API-Key: 200" "$status" 200
http GET /api/runs -H "X-API-Key: $ASSAY_API_KEY"
check "/api alias: 200" "$status" 200

tenant=auth_$$_$RANDOM
key=$(new_tenant "$tenant" free)
check_match "key create prints the key alone" "$key" '^assay_[0-9a-f]{8}_[0-9a-f]{48}$'
check "only its hash is stored" "$(sql "SELECT count(*) FROM api_keys WHERE hash = sha256('$key'::bytea) AND prefix = '${key:0:14}'")" 1
check "the key is nowhere in clear" "$(sql "SELECT count(*) FROM api_keys WHERE prefix = '$key' OR encode(hash, 'escape') LIKE '%${key:15}%'")" 0
KEY=$key api GET /api/v1/runs
check "new key works" "$status" 200
digest=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
check_match "the lookup is shared through memcached" "$(mc "get assay:key:$digest")" "VALUE assay:key:$digest"
check "and it holds no secret" "$(mc "get assay:key:$digest" | grep -c -- "${key:15}")" 0
# The shared entry is what the workers read, once their own second is over:
# renamed there, the tenant is logged under the new name.
shared=$(mc "get assay:key:$digest" | sed -n 2p)
renamed=${shared/$tenant/shared_$tenant}
mc "$(printf 'set assay:key:%s 0 60 %d\r\n%s' "$digest" "${#renamed}" "$renamed")" >/dev/null
sleep 1.1
log_mark
for i in 1 2 3 4 5 6 7 8; do KEY=$key api GET /api/v1/runs; done
check "the workers read the shared entry" "$(log_since | grep -c "\"tenant\":\"shared_$tenant\"")" 8
# Same prefix, wrong secret: refused.
KEY=${key:0:15}000000000000000000000000000000000000000000000000 api GET /api/v1/runs
check "right prefix, wrong secret: 401" "$status" 401
check "revoke" "$(assayctl key revoke "${key:0:14}")" "key ${key:0:14} revoked"
check "revoke leaves a tombstone in memcached" "$(mc "get assay:key:$digest" | sed -n 1p)" "VALUE assay:key:$digest 0 0"
out=$(MEMCACHED_SERVERS=127.0.0.1:1 assayctl key revoke "${key:0:14}" 2>&1); rc=$?
check "revoke with memcached unreachable: fails" "$rc" 1
check_match "and says what it means" "$out" "could not be told"

# Workers remember a good key for a second; after that it must be refused.
sleep 1.1
for i in 1 2 3 4 5 6 7 8; do
  KEY=$key api GET /api/v1/runs
  [ "$status" = 401 ] || fail "revoked key accepted more than a second later (worker $i of 8)"
done
ok "revoked key: 401 on every worker within a second"
check_match "revoked key: says so" "$(json .detail)" revoked
out=$(assayctl key revoke assay_ffffffff 2>&1); rc=$?
check "revoking an unknown key fails" "$rc" 1

# A second key, revoked by giving it whole: found by its digest, never
# echoed; the stream tokens it made die with it.
key2=$(assayctl key create --tenant "$tenant" 2>/dev/null)
listing=$(assayctl key list --tenant "$tenant")
check "key list: both keys, by prefix" "$(grep -cE "^(${key:0:14}|${key2:0:14}) " <<<"$listing")" 2
check "key list: the revoked one says when" "$(grep "^${key:0:14} " <<<"$listing" | awk '{ print $NF }' | grep -c '^20')" 1
check "key list: no secret" "$(grep -cF -e "${key:15}" -e "${key2:15}" <<<"$listing")" 0
KEY=$key2 api POST /api/v1/analyses '{"title":"t","script":"function analyze(i) { return i; }"}'
KEY=$key2 api POST /api/v1/runs "{\"name\":\"tok\",\"analysis_id\":\"$(json .analysis.id)\",\"start\":false}"
tok_run=$(json .run.id)
KEY=$key2 api POST "/api/v1/runs/$tok_run/events/token"
tok=$(json .token)
sse_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ASSAY_URL/api/v1/runs/$tok_run/events?token=$tok"; }
check "stream token works while its key does" "$(sse_code)" 200
out=$(assayctl key revoke "$key2" 2>&1); rc=$?
check "revoke by the whole key" "$out" "key ${key2:0:14} revoked"
check "revoke by the whole key: exit 0" "$rc" 0
check "the stream token died with its key" "$(sse_code)" 401
check_match "and says why" "$(curl -s --max-time 2 "$ASSAY_URL/api/v1/runs/$tok_run/events?token=$tok")" 'revoked'
out=$(assayctl key revoke "${key2:0:15}0000000000000000000000000000000000000000000000ff" 2>&1); rc=$?
check "an unknown whole key: fails" "$rc" 1
check "an unknown whole key: not echoed" "$(grep -c '0000ff' <<<"$out")" 0
out=$(assayctl key create --tenant no_such_tenant_$$ 2>&1); rc=$?
check "a key for an unknown tenant fails" "$rc" 1
out=$(assayctl tenant create "$tenant" --tier free 2>&1); rc=$?
check_match "duplicate tenant refused" "$out" "already exists"
out=$(assayctl tenant create x_$$ --tier gold 2>&1); rc=$?
check "bad tier is a usage error" "$rc" 2

# The access log names the tenant and never holds a key.
api GET /api/v1/runs -H 'X-Request-ID: auth-log-check'
check_match "access log line has tenant and route" "$(grep auth-log-check "$api_log")" '"route":"/api/v1/runs","status":200.*"tenant":"demo"'
for k in "$ASSAY_API_KEY" "$key" "${key:15}" "${key2:15}"; do
  grep -rqF -- "$k" "$ASSAY_STACK_DIR/log" && fail "a key appears in the logs" || ok "no key in the logs"
done
finish
