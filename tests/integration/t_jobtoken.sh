# Job tokens: what the executor presents for a running script. One made
# with assayctl job-token for a run that stays running reads its tenant's
# files (list, search, get, HEAD) and its own run, nothing else (403);
# another tenant's file is 404, another run 403. Without both headers, with
# one that does not match, forged or expired: 401. Once the attempt has
# ended the same token is 401, and the refusal is in the audit log. Its own
# rate limit (job_rate_limit_per_sec). No token in a log or in audit_log.
. "$(dirname "$0")/lib.sh"
keep_conf
dir=t-jobtoken-$$
# job METHOD PATH [curl options]: a call with the token and its headers
# (X-Job-ID $JOB_ID, X-Project-ID $PROJECT_ID when set, else the token's).
job() { local m=$1 p=$2; shift 2; http "$m" "$p" -H "Authorization: Bearer $token" \
  -H "X-Job-ID: ${JOB_ID:-$run}" -H "X-Project-ID: ${PROJECT_ID:-$project}" "$@"; }
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

printf 'Northern region revenue grew strongly this quarter.\n' >"$tmp/a.txt"
api PUT "/api/v1/files/$dir/report.txt" -H 'Content-Type: text/plain' --data-binary "@$tmp/a.txt"
check "a file of the tenant" "$status" 201
other=$(new_tenant "jt-other-$$" pro)
KEY=$other api PUT "/api/v1/files/$dir/secret.txt" -H 'Content-Type: text/plain' --data-binary 'not yours'
check "a file of another tenant" "$status" 201

a=$(analysis 'function analyze(i) { var t = Date.now(); while (Date.now() - t < 20000) {} return 1; }' \
  ', timeout_ms: 30000')
run=$(submit "$a")
project=$(sql "SELECT project_id FROM analysis_jobs WHERE id = '$run'")
running() { [ "$(sql "SELECT status FROM analysis_jobs WHERE id = '$run'")" = running ]; }
eventually "the run is running" 100 running
token=$(assayctl job-token --config "$conf" "$run")
check_match "assayctl job-token prints a JWT" "$token" '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$'

job GET "/api/v1/files?prefix=$dir/"
check "list: 200, the tenant's file only" "$status $(json -c '[.files[].path]')" "200 [\"$dir/report.txt\"]"
job GET "/api/v1/files/$dir/report.txt"
check "read: 200, the content" "$status $body" "200 $(cat "$tmp/a.txt")"
job HEAD "/api/v1/files/$dir/report.txt"
check "HEAD: 200" "$status" 200
job GET "/api/v1/files?q=northern+revenue"
check "search: 200, the file" "$status $(json -r '[.files[].path] | index("'"$dir/report.txt"'") != null')" "200 true"
job GET "/api/v1/files/$dir/secret.txt"
check "another tenant's file: 404" "$status" 404
job GET "/api/v1/runs/$run"
check "its own run: 200" "$status $(json -r .run.id)" "200 $run"
other_run=$(submit "$a")
job GET "/api/v1/runs/$other_run"
check "another run: 403 JOB_TOKEN_FORBIDDEN" "$status $(json -r .code)" "403 JOB_TOKEN_FORBIDDEN"
api POST "/api/v1/runs/$other_run/cancel"
job POST /api/v1/runs --data-binary "{\"name\":\"t\",\"analysis_id\":\"$a\"}" -H 'Content-Type: application/json'
check "POST /runs: 403 saying what a job token may do" "$status $(json -r .code)" "403 JOB_TOKEN_FORBIDDEN"
check_match "  its detail" "$(json -r .detail)" 'only list, search and read'
job PUT "/api/v1/files/$dir/x.txt" --data-binary x
check "PUT a file: 403" "$status" 403
job GET /api/v1/runs
check "list runs: 403" "$status" 403
job GET /api/v1/audit
check "the audit log: 403" "$status" 403
job GET "/api/v1/analyses/$a/schedules"
check "schedules: 403" "$status $(json -r .code)" "403 JOB_TOKEN_FORBIDDEN"
job POST "/api/v1/analyses/$a/schedules" --data-binary '{"cron":"@daily"}' -H 'Content-Type: application/json'
check "a new schedule: 403" "$status $(json -r .code)" "403 JOB_TOKEN_FORBIDDEN"

JOB_ID=00000000-0000-4000-8000-000000000000 job GET "/api/v1/files/$dir/report.txt"
check "another X-Job-ID: 401 JOB_TOKEN_INVALID" "$status $(json -r .code)" "401 JOB_TOKEN_INVALID"
PROJECT_ID=$((project + 1000)) job GET "/api/v1/files/$dir/report.txt"
check "another X-Project-ID: 401" "$status $(json -r .detail)" "401 X-Project-ID is not the job token's project"
http GET "/api/v1/files/$dir/report.txt" -H "Authorization: Bearer $token"
check "without the headers: 401" "$status $(json -r .code)" "401 JOB_TOKEN_INVALID"
check_match "  with a challenge" "$(header WWW-Authenticate)" 'invalid_token'
sig=${token##*.} c=${sig:0:1}
[ "$c" = A ] && c=B || c=A
forged="${token%.*}.$c${sig:1}"
http GET "/api/v1/files/$dir/report.txt" -H "Authorization: Bearer $forged" -H "X-Job-ID: $run" -H "X-Project-ID: $project"
check "a forged token: 401" "$status $(json -r .detail)" "401 the job token is not signed by a known key"
check "  audited as job:?" \
  "$(sql "SELECT actor || ' ' || action || ' ' || outcome FROM audit_log WHERE request_id = '$(header X-Request-ID)'")" \
  "job:? auth.job_token denied"
# An expired token, signed with the stack's key as the executor would.
attempt=$(sql "SELECT attempts FROM analysis_jobs WHERE id = '$run'")
head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
claims=$(printf '{"sub":"%s","att":%s,"prj":"%s","exp":%s}' "$run" "$attempt" "$project" "$(($(date +%s) - 10))" | b64url)
key=$(head -n 1 "$ASSAY_STACK_DIR/conf/job-token.key")
mac=$(printf '%s.%s' "$head" "$claims" | openssl dgst -sha256 -hmac "$key" -binary | b64url)
http GET "/api/v1/files/$dir/report.txt" -H "Authorization: Bearer $head.$claims.$mac" -H "X-Job-ID: $run" -H "X-Project-ID: $project"
check "an expired token: 401" "$status $(json -r .detail)" "401 the job token has expired"

# Its own limit: job_rate_limit_per_sec per attempt.
printf '\n[api]\njob_rate_limit_per_sec = 3\n' >>"$conf"
api_reload
limited() { local i; for i in 1 2 3 4 5 6 7 8; do job GET "/api/v1/runs/$run"; [ "$status" = 429 ] && return 0; done; return 1; }
eventually "more than job_rate_limit_per_sec in a second: 429" 50 limited
limited
check "  a RATE_LIMIT_EXCEEDED problem for the job" "$status $(json -r .code) $(header RateLimit-Policy)" \
  '429 RATE_LIMIT_EXCEEDED "job";q=3;w=1'
cp "$tmp/assay.conf.orig" "$conf"
api_reload
sleep 1.2

# The attempt ends: the token dies with it.
api POST "/api/v1/runs/$run/cancel"
eventually "the run ends" 300 finished "$run"
job GET "/api/v1/files/$dir/report.txt"
check "after the attempt: 401" "$status $(json -r .detail)" "401 the job token's attempt is not running"
rid=$(header X-Request-ID)
check "  audited for the tenant, by the job" \
  "$(sql "SELECT actor || ' ' || action || ' ' || outcome || ' ' || status FROM audit_log a JOIN tenants t ON t.id = a.tenant_id WHERE t.name = 'demo' AND request_id = '$rid'")" \
  "job:$run auth.job_token denied 401"
api GET "/api/v1/audit?action=auth.job_token&limit=100"
check "  GET /api/v1/audit shows it" "$(json -r --arg r "$rid" '[.entries[] | select(.request_id == $r) | .actor] | .[0]')" "job:$run"
check_match "  assayctl audit shows it" "$(assayctl audit --tenant demo --since 1h | grep "$rid")" "job:$run +auth.job_token"
check "the uses were audited by the job" \
  "$(sql "SELECT string_agg(DISTINCT action || ' ' || outcome, ',' ORDER BY action || ' ' || outcome) FROM audit_log WHERE actor = 'job:$run'")" \
  "auth.job_token denied,file.get not_found,file.get success,file.head success,file.list success,file.search success,run.get refused,run.get success"
check "assayctl job-token refuses a run that is not running" \
  "$(assayctl job-token --config "$conf" "$run" 2>&1 >/dev/null; echo $?)" \
  "assayctl: the run is canceled, not running: it has no live attempt
1"
check "no token in audit_log" \
  "$(sql "SELECT count(*) FROM audit_log WHERE concat_ws(' ', actor, target, client) LIKE '%eyJ%'")" 0
if grep -qF -- "${token%%.*}.${claims:0:8}" "$api_log" || grep -qF -- "$sig" "$api_log"; then
  fail "a token is in the API's log"
else ok "no token in the API's log"; fi
finish
