# Large results: a result longer than result_inline_max (64 KiB) is stored
# apart, in pieces, and shown as null with result_size and result_url in
# every view of the run (GET, listings, the webhook payload); GET .../result
# streams it in its envelope with Content-Length, ETag (304) and gzip when
# asked. The inline boundary to the byte; the tier's result_max_bytes (free:
# 1 MiB) to the byte, and far past it; what jsonb could not hold; several
# at once; a crash of the executor while it writes one; prune. A 50 MiB
# result (enterprise) is written and read back while the executor's and an
# API worker's peak RSS are watched.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A script whose result is a string of i.n characters (JSON text i.n + 2
# bytes); with i.nul, the array of it and a NUL character.
strings=$(analysis 'function analyze(i) { var s = "0123456789abcdef"; while (s.length < i.n) s = s + s; s = s.substring(0, i.n); return i.nul ? [s, String.fromCharCode(0)] : s; }' ', "memory_limit_mb": 512, "timeout_ms": 60000')
# The JSON text of that result, as the runtime writes it.
expected() { python3 -c "import sys; n=int(sys.argv[1]); s=('0123456789abcdef'*(n//16+1))[:n]; sys.stdout.write('\"'+s+'\"')" "$1"; }
status_sql() { sql "SELECT status FROM analysis_jobs WHERE id = '$1'"; }
ended() { case $(status_sql "$1") in completed|failed|canceled) return 0 ;; esac; return 1; }
# run N [nul]: a finished run of strings; prints its id.
run() {
  local r
  r=$(submit "$strings" "{\"n\":$1${2:+,\"nul\":true}}")
  eventually "run of $1 characters finished" 600 ended "$r" >&2
  printf '%s' "$r"
}
pieces() { sql "SELECT count(*) || ' ' || count(DISTINCT attempt) FROM analysis_result_storage WHERE job_id = '$1'"; }
# result_text RUN [curl options]: the result member's JSON text of GET .../result.
result_text() { curl -s -H "Authorization: Bearer ${KEY:-$ASSAY_API_KEY}" "${@:2}" "$ASSAY_URL/api/v1/runs/$1/result" | jq -c .result.result | tr -d '\n'; }

# The boundary: 65536 bytes of JSON stay with the run, 65537 are stored apart.
at=$(run 65534)
api GET "/api/v1/runs/$at"
check "65536 bytes: inline in the run" "$(json -c '.run | [.status, (.result | length), has("result_size"), has("result_url")]')" \
  '["completed",65534,false,false]'
check "65536 bytes: nothing stored apart" "$(pieces "$at")" "0 0"
over=$(run 65535)
api GET "/api/v1/runs/$over"
check "65537 bytes: stored apart, null in the run with its size and URL" \
  "$(json -c '.run | [.status, .result, .result_size, .result_url]')" \
  "[\"completed\",null,65537,\"/api/v1/runs/$over/result\"]"
check "65537 bytes: in one piece of one attempt" "$(pieces "$over")" "1 1"
check "65537 bytes: its SHA-256 is the text's" "$(sql "SELECT result_sha256 FROM analysis_jobs WHERE id = '$over'")" \
  "$(expected 65535 | sha256sum | cut -d' ' -f1)"
api GET "/api/v1/runs/$at/result"
check "GET .../result of 65536 bytes: 200, the whole result" \
  "$status $(json -c '.result | [.run_id, .status, (.result | length), .error_message]')" \
  "200 [\"$at\",\"completed\",65534,null]"
api GET "/api/v1/runs/$over/result"
check "GET .../result of 65537 bytes: 200, the whole result in its envelope" \
  "$status $(json -c '.result | [.run_id, .status, (.result | length), .error_message, (.finished_at | length)]')" \
  "200 [\"$over\",\"completed\",65535,null,24]"
check "65537 bytes read back byte for byte" "$(result_text "$over" | sha256sum)" "$(expected 65535 | sha256sum)"
api GET "/api/v1/runs/$over/result"
len=${#body}
check "its Content-Length is the body's" "$(header Content-Length)" "$len"
etag=$(header ETag)
check "its ETag and Cache-Control" "$(header Cache-Control) $(printf '%s' "$etag" | grep -Ec '^"[0-9a-f]{32}"$')" \
  "private, max-age=86400 1"
api GET "/api/v1/runs/$over/result" -H "If-None-Match: $etag"
check "If-None-Match: 304 without a body" "$status ${#body} $(header ETag)" "304 0 $etag"
api HEAD "/api/v1/runs/$over/result"
check "HEAD: its length and ETag, no body" "$status $(header Content-Length) $(header ETag) ${#body}" \
  "200 $len $etag 0"
api GET "/api/v1/runs?limit=5"
check "a listing shows it null with its size" \
  "$(json -c ".runs[] | select(.id == \"$over\") | [.result, .result_size, .result_url]")" \
  "[null,65537,\"/api/v1/runs/$over/result\"]"
check "its events carry no result" "$(sql "SELECT max(length(data::text)) < 200 FROM job_events WHERE job_id = '$over'")" t

# 50 MiB, written and read back: neither the executor nor an API worker
# holds it (the figures: their peak RSS, VmHWM, before and after).
ex_pid=$(cat "$ASSAY_STACK_DIR/run/assay-executor.pid")
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null; }
api_peak() { local p m=0 v; for p in $(pgrep -P "$(cat "$ASSAY_STACK_DIR/run/assay-api.pid")"); do
  v=$(hwm "$p"); [ "${v:-0}" -gt "$m" ] && m=$v; done; echo "$m"; }
ex_before=$(hwm "$ex_pid") api_before=$(api_peak)
t0=$(date +%s%N)
big=$(run 52428798)
t1=$(date +%s%N)
api GET "/api/v1/runs/$big"
check "50 MiB (enterprise): completed, stored apart" "$(json -c '.run | [.status, .result, .result_size]')" \
  '["completed",null,52428800]'
check "50 MiB: 200 pieces of one attempt" "$(pieces "$big")" "200 1"
curl -s -D "$tmp/h" -o "$tmp/big.json" -H "Authorization: Bearer $ASSAY_API_KEY" "$ASSAY_URL/api/v1/runs/$big/result"
t2=$(date +%s%N)
check "50 MiB read back: its Content-Length" "$(tr -d '\r' <"$tmp/h" | grep -i '^content-length:' | cut -d' ' -f2)" \
  "$(stat -c %s "$tmp/big.json")"
check "50 MiB read back byte for byte" "$(jq -c .result.result "$tmp/big.json" | tr -d '\n' | sha256sum | cut -d' ' -f1)" \
  "$(sql "SELECT result_sha256 FROM analysis_jobs WHERE id = '$big'")"
check "50 MiB: the text the script returned" "$(sql "SELECT result_sha256 FROM analysis_jobs WHERE id = '$big'")" \
  "$(expected 52428798 | sha256sum | cut -d' ' -f1)"
ex_after=$(hwm "$ex_pid") api_after=$(api_peak)
echo "# 50 MiB result: run in $(((t1 - t0) / 1000000)) ms, read back in $(((t2 - t1) / 1000000)) ms; executor peak RSS $ex_before -> $ex_after KiB (+$((ex_after - ex_before))), API workers' peak RSS $api_before -> $api_after KiB (+$((api_after - api_before)))"
check "the executor's peak RSS grew by less than a tenth of the result (5120 KiB)" \
  "$((ex_after - ex_before < 5120))" 1
check "an API worker's peak RSS grew by less than a tenth of the result (5120 KiB)" \
  "$((api_after - api_before < 5120))" 1
curl -s -D "$tmp/hz" -o "$tmp/big.gz" -H 'Accept-Encoding: gzip' -H "Authorization: Bearer $ASSAY_API_KEY" \
  "$ASSAY_URL/api/v1/runs/$big/result"
check "gzip when asked: Content-Encoding" "$(tr -d '\r' <"$tmp/hz" | grep -i '^content-encoding:' | cut -d' ' -f2)" gzip
check "gzip: far smaller, the same result" \
  "$(($(stat -c %s "$tmp/big.gz") < 5242880)) $(gunzip -c "$tmp/big.gz" | jq -c .result.result | tr -d '\n' | sha256sum | cut -d' ' -f1)" \
  "1 $(sql "SELECT result_sha256 FROM analysis_jobs WHERE id = '$big'")"

# Several at once, from workers of one tenant: each its own, whole.
declare -a many
for k in 1 2 3 4 5 6; do many+=("$(submit "$strings" "{\"n\":$((1048576 + k * 1000))}")"); done
bad=0
for k in 1 2 3 4 5 6; do
  r=${many[$((k - 1))]}
  eventually "concurrent run $k finished" 600 ended "$r"
  [ "$(result_text "$r" | sha256sum)" = "$(expected $((1048576 + k * 1000)) | sha256sum)" ] || bad=$((bad + 1))
  [ "$(pieces "$r")" = "5 1" ] || bad=$((bad + 1))
done
check "six results of 1 MiB at once: each whole, in 5 pieces of one attempt" "$bad" 0

# Canceled while its result is written: canceled, nothing of it left.
r=$(submit "$strings" '{"n":60000000}')
writing() { [ "$(sql "SELECT count(*) > 0 FROM analysis_result_storage WHERE job_id = '$r'")" = t ]; }
eventually "a 60 MB result is being written" 600 writing
api POST "/api/v1/runs/$r/cancel"
check "canceled while written: 202" "$status" 202
eventually "the canceled run ended" 300 ended "$r"
check "canceled while written: canceled, no piece left" "$(status_sql "$r") $(pieces "$r")" "canceled 0 0"

# Cancels racing results being written, at random moments: a run ends
# canceled with no piece left, or completed with its whole result; never
# pieces of another attempt or of a run that did not complete.
declare -a raced
for k in $(seq 1 10); do
  r=$(submit "$strings" '{"n":12000000}')
  raced+=("$r")
  sleep "0.$((RANDOM % 10))"
  api POST "/api/v1/runs/$r/cancel"
done
bad=0 n_canceled=0
for r in "${raced[@]}"; do
  eventually "raced run ended" 600 ended "$r" >/dev/null
  case "$(status_sql "$r") $(pieces "$r")" in
    "canceled 0 0") n_canceled=$((n_canceled + 1)) ;;
    "completed 46 1") ;;
    *) bad=$((bad + 1)); echo "  $r: $(status_sql "$r"), pieces $(pieces "$r")" ;;
  esac
done
check "10 cancels racing 12 MB results: canceled with nothing left, or completed whole ($n_canceled canceled)" "$bad" 0
check "no piece belongs to a run that is not completed, or to another attempt" \
  "$(sql "SELECT count(*) FROM analysis_result_storage s JOIN analysis_jobs j ON j.id = s.job_id WHERE j.status <> 'running' AND (j.status <> 'completed' OR j.result_size IS NULL OR s.attempt <> j.attempts)")" 0

# Runtime node writes its result line as js does: stored apart the same way.
node_strings=$(analysis 'export default (i) => "0123456789abcdef".repeat(i.n / 16 + 1).slice(0, i.n);' ', "runtime": "node", "memory_limit_mb": 256')
r=$(submit "$node_strings" '{"n":3000000}')
eventually "node: run of 3000000 characters finished" 600 ended "$r"
check "node: 3 MB stored apart in 12 pieces" "$(status_sql "$r") $(pieces "$r")" "completed 12 1"
check "node: read back byte for byte" "$(result_text "$r" | sha256sum)" "$(expected 3000000 | sha256sum)"

# What jsonb could not hold fails the run, saying where, as for a small result.
r=$(run 100000 nul)
check "a NUL character in a large result: failed, saying where" \
  "$(status_sql "$r") $(sql "SELECT error_message FROM analysis_jobs WHERE id = '$r'")" \
  'failed script error: the result cannot be stored: /1 contains a NUL character (\u0000)'
check "nothing of it is left" "$(pieces "$r")" "0 0"

# The free tier's result_max_bytes (1 MiB): to the byte, and far past it;
# the worker is replaced and the tenant's next run completes.
KEY=$(new_tenant "results-free-$$" free)
free_strings=$(analysis 'function analyze(i) { var s = "0123456789abcdef"; while (s.length < i.n) s = s + s; return s.substring(0, i.n); }' ', "memory_limit_mb": 128')
free_run() { local r; r=$(submit "$free_strings" "{\"n\":$1}"); eventually "free run of $1 finished" 600 ended "$r" >&2; printf '%s' "$r"; }
limit=$(free_run 1048574)
check "free: 1048576 bytes, its limit: completed" "$(status_sql "$limit") $(sql "SELECT result_size FROM analysis_jobs WHERE id = '$limit'")" \
  "completed 1048576"
one=$(free_run 1048575)
check "free: one byte over: failed, saying so" \
  "$(status_sql "$one") $(sql "SELECT error_message FROM analysis_jobs WHERE id = '$one'")" \
  "failed result too large (1048577 bytes, limit 1048576)"
far=$(free_run 8000000)
check_match "free: 8 MB: failed once past the limit, not read further" \
  "$(status_sql "$far") $(sql "SELECT error_message FROM analysis_jobs WHERE id = '$far'")" \
  '^failed result too large \(1[0-9]{6} bytes, limit 1048576\)$'
check "free: nothing is left of either" "$(pieces "$one") $(pieces "$far")" "0 0 0 0"
after=$(free_run 10)
check "free: the next run gets a new worker and completes" "$(status_sql "$after")" completed
unset KEY

# The webhook payload shows a stored result as the run does (its body is
# made when first taken; the receiver here is closed, which does not matter).
port=$(free_port)
hooked=$(api POST /api/v1/runs "{\"name\":\"t\",\"analysis_id\":\"$strings\",\"input\":{\"n\":70000},\"callback_url\":\"http://127.0.0.1:$port/hook\"}"; json .run.id)
eventually "run with a callback finished" 600 ended "$hooked"
payload() { sql "SELECT r->>'status', r->'result', r->'result_size', r->>'result_url' FROM (SELECT payload->'data'->'run' AS r FROM webhook_deliveries WHERE job_id = '$hooked' AND payload IS NOT NULL) d"; }
has_payload() { [ -n "$(payload)" ]; }
eventually "its delivery was taken" 300 has_payload
check "the webhook payload: result null with its size and URL" "$(payload)" \
  "completed|null|70002|/api/v1/runs/$hooked/result"

# An executor killed while it writes a result: the run runs again after its
# lease expires, and only the second attempt's pieces remain.
crash=$(analysis 'function analyze(i) { var s = "0123456789abcdef"; while (s.length < i.n) s = s + s; return s.substring(0, i.n); }' ', "memory_limit_mb": 512, "timeout_ms": 60000, "max_attempts": 3')
r=$(submit "$crash" '{"n":60000000}')
eventually "its pieces are being written" 600 writing
kill -KILL "$ex_pid"
gone() { ! running "$ex_pid"; }
eventually "killed executor gone" 50 gone
partial=$(sql "SELECT count(*) FROM analysis_result_storage WHERE job_id = '$r'")
stack_up
eventually "the run finished after the crash" 900 ended "$r"
check "crash: completed by its second attempt" "$(sql "SELECT status, attempts, result_size FROM analysis_jobs WHERE id = '$r'")" \
  "completed|2|60000002"
check "crash: only the second attempt's pieces, all of them ($partial of the first were written)" \
  "$(sql "SELECT count(*), min(attempt), max(attempt), sum(length(data)) FROM analysis_result_storage WHERE job_id = '$r'")" \
  "229|2|2|60000002"
check "crash: the pieces hold the result, in order" \
  "$(sql "SELECT encode(sha256(string_agg(data, '' ORDER BY seq)), 'hex') FROM analysis_result_storage WHERE job_id = '$r'")" \
  "$(expected 60000000 | sha256sum | cut -d' ' -f1)"

# A stored result gone between reading the run and reading its pieces
# (pruned meanwhile): 404, not a 503 to retry.
api HEAD "/api/v1/runs/$r/result"
check "a stored result: HEAD 200" "$status" 200
sql "DELETE FROM analysis_result_storage WHERE job_id = '$r'" >/dev/null
api GET "/api/v1/runs/$r/result"
check "its pieces gone: 404 RUN_NOT_FOUND" "$status $(json -r .code)" "404 RUN_NOT_FOUND"

# Prune takes a run's stored result and events with it (free keeps 7 days).
sql "UPDATE analysis_jobs SET created_at = now() - interval '8 days' WHERE id = '$limit'" >/dev/null
assayctl prune --config "$ASSAY_STACK_DIR/conf/assay.conf" >/dev/null
check "prune: the run, its pieces and its events are gone" \
  "$(sql "SELECT (SELECT count(*) FROM analysis_jobs WHERE id = '$limit') || ' ' || (SELECT count(*) FROM analysis_result_storage WHERE job_id = '$limit') || ' ' || (SELECT count(*) FROM job_events WHERE job_id = '$limit')")" \
  "0 0 0"
finish
