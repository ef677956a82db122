# POST /api/v1/analyses/check: a script is compiled in the sandbox, never
# run. Valid js and node scripts are 200; syntax errors are 422 naming
# /script with the compiler's message, line and (node) column; scripts
# whose top level would loop, throw or exit are answered at once, and
# nothing runs; the body is checked as an analysis' script and runtime;
# another tenant's checks have a worker of their own; checks of two
# tenants at once each get their own answer and leave nothing behind (one
# nobody waits for leaves the queue too); without an executor the API
# answers 503 within check_timeout_ms. Prints the latency (p50) beside a
# GET of an analysis.
. "$(dirname "$0")/lib.sh"
keep_conf
# chk RUNTIME SCRIPT: a check; sets status, body, headers.
chk() {
  jq -nc --arg r "$1" --arg s "$2" '{runtime: $r, script: $s}' >"$tmp/body"
  api POST /api/v1/analyses/check "@$tmp/body"
}
# where: "line column detail" of the first error.
where() { json '.errors[0] | "\(.line) \(.column) \(.detail)"'; }
runs_before=$(sql "SELECT count(*) FROM analysis_jobs")

chk js 'function analyze(input, ctx) { return input.a + input.b; }'
check "js: a valid script is 200" "$status $(json -c .)" '200 {"success":true,"ok":true}'
chk js 'export default function analyze(input) { return input; }'
check "js: export default is accepted, as runs accept it" "$status" 200
chk node 'import { EOL } from "node:os";
const k = 2;
export default async function analyze(input, ctx) {
  await null;
  return { lines: String(input).split(EOL).length * k };
}'
check "node: a valid module is 200" "$status $(json .ok)" "200 true"
chk node 'const x = await Promise.resolve(1);
function analyze(i) { return i ?? x; }'
check "node: top-level await and plain analyze are 200" "$status" 200

chk js 'function analyze(input) {
  var total = 0;
  total = total + ;
  return total;
}'
check "js: a syntax error is 422" "$status $(json .code)" "422 SCRIPT_DOES_NOT_COMPILE"
check "js: it names /script" "$(json -c '[.errors[].pointer]')" '["/script"]'
check "js: Duktape's message and line (it gives no column)" "$(where)" \
  "3 null SyntaxError: empty expression not allowed (line 3)"
check_match "js: the detail says it too" "$(json .detail)" "does not compile: SyntaxError"
check "js: problem+json" "$(header Content-Type)" "application/problem+json"
chk js 'function analyze(input) {
  return "unterminated;
}'
check "js: an unterminated string" "$status $(json '.errors[0].line')" "422 2"
chk js 'function analyze(i) { return i.map(x => x * 2); }'
check "js: syntax Duktape lacks (arrow functions) is refused as a run would be" \
  "$status $(json '.errors[0].line')" "422 1"

chk node 'import { EOL } from "node:os";
export default function analyze(input) {
  const total = input.a +;
  return total;
}'
check "node: a syntax error is 422" "$status $(json .code)" "422 SCRIPT_DOES_NOT_COMPILE"
check "node: V8's message, line and column" "$(where)" "3 26 SyntaxError: Unexpected token ';'"
chk node 'let a = 1;
  let a = 2;
export default () => a;'
check "node: a redeclaration, where it is" "$(where)" \
  "2 7 SyntaxError: Identifier 'a' has already been declared"
chk node 'export default function analyze(i) {
  return i +'
check "node: the end of the input" "$(where)" "2 13 SyntaxError: Unexpected end of input"
chk node 'const x = 1;
with (x) {}
export default x;'
check "node: module code is strict" "$(where)" \
  "2 1 SyntaxError: Strict mode code may not include a with statement"
chk js 'const x = 1;
with (x) {}
function analyze() { return x; }'
check "js: sloppy script code may use with, as its runs do" "$status" 200

# Never run: what the top level would do, if it ran, does not happen.
start=$(date +%s%N)
chk js 'for (;;) {}
function analyze() { return 1; }'
check "js: a top level that loops forever is 200" "$status" 200
chk node 'while (true) {}
export default () => 1;'
check "node: a top level that loops forever is 200" "$status" 200
ms=$((($(date +%s%N) - start) / 1000000))
check "both answered at once, not after the check's timeout (${ms} ms)" "$([ "$ms" -lt 2500 ] && echo yes)" yes
chk js 'throw new Error("ran");'
check "js: a top level that throws is 200" "$status" 200
chk node 'process.exit(3);'
check "node: a top level that exits is 200" "$status" 200
chk node 'await new Promise(() => {});
export default () => 1;'
check "node: a top level that never settles is 200" "$status" 200
chk node 'import { writeSync } from "node:fs";
writeSync(3, JSON.stringify({ type: "log", level: "info", message: "ran" }) + "\n");
export default () => 1;'
check "node: a top level that writes to the bridge is 200 (had it run: a breach, 503)" "$status" 200
chk node 'import "data:text/javascript,process.exit(4)";
export default () => 1;'
check "node: a module it imports does not run either" "$status" 200
check "no run or event was made by any check" \
  "$(sql "SELECT count(*) FROM analysis_jobs")" "$runs_before"
# The tenant's workers serve runs as before.
aid=$(analysis 'function analyze(i) { return typeof globalThis.ran; }')
rid=$(submit "$aid")
eventually "a run after the checks completes" 100 finished "$rid"
api GET "/api/v1/runs/$rid/result"
check "with its result" "$(json .result.result)" undefined

# The body, checked as an analysis' script and runtime.
api POST /api/v1/analyses/check '{"runtime":"python","script":""}'
check "bad runtime and empty script: 422" "$status $(json .code)" "422 VALIDATION_FAILED"
check "each named" "$(json -c '[.errors[].pointer] | sort')" '["/runtime","/script"]'
api POST /api/v1/analyses/check '{}'
check "missing script: named" "$status $(json -c '[.errors[].pointer]')" '422 ["/script"]'
api POST /api/v1/analyses/check '{"script":"function analyze() {}","runtime":null,"title":"x"}'
check "null runtime and an unknown member: each named" \
  "$status $(json -c '[.errors[].pointer] | sort')" '422 ["/runtime","/title"]'
max=$(grep -E '^#? *script_max_bytes' "$conf" | grep -oE '[0-9]+' | head -n 1)
head -c $((${max:-131072} + 1)) /dev/zero | tr '\0' ' ' >"$tmp/big"
jq -nc --rawfile s "$tmp/big" '{script: $s}' >"$tmp/body"
api POST /api/v1/analyses/check "@$tmp/body"
check "a script over script_max_bytes: 422 naming /script" \
  "$status $(json -c '[.errors[].pointer]')" '422 ["/script"]'
api GET /api/v1/analyses/check
check "GET: 405, only POST" "$status $(header Allow)" "405 POST"

# Another tenant's check is compiled in a worker of its own, never in one
# of this tenant's warm workers; its next check reuses it.
KEY2=$(new_tenant "t-check-$$" pro)
started() { curl -s "$EXECUTOR_URL/metrics" | awk '$1 == "assay_executor_workers_started_total" { print $2 }'; }
n=$(started)
KEY=$KEY2 chk js 'function analyze() { return 2; }'
check "another tenant's first check: 200, in a new worker" "$status $(($(started) - n))" "200 1"
KEY=$KEY2 chk js 'function analyze() { return 3; }'
check "its second: in that same worker" "$status $(($(started) - n))" "200 1"

# Two tenants at once: each check gets its own answer, and nothing stays.
counted() { curl -s "$EXECUTOR_URL/metrics" |
  awk -v a="$1" '$1 == "assay_executor_checks_total{answer=\"" a "\"}" { print $2 }'; }
before=$(counted does_not_compile)
for i in $(seq 1 12); do
  for who in 1 2; do
    line=$((i + who * 20))
    jq -nc --argjson n "$line" '{script: ("\n" * $n + "x = ;")}' >"$tmp/b$i-$who"
    key=$ASSAY_API_KEY; [ "$who" = 2 ] && key=$KEY2
    curl -s -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      --data-binary "@$tmp/b$i-$who" "$ASSAY_URL/api/v1/analyses/check" >"$tmp/r$i-$who" &
  done
done
wait
wrong=0
for i in $(seq 1 12); do
  for who in 1 2; do
    [ "$(jq -r '.errors[0].line' "$tmp/r$i-$who")" = $((i + who * 20 + 1)) ] || wrong=$((wrong + 1))
  done
done
check "24 checks of two tenants at once: each its own answer" "$wrong" 0
check "the executor counts them (/metrics)" "$(($(counted does_not_compile) - before))" 24
check "no check is left in the queue" "$(sql "SELECT count(*) FROM script_checks")" 0
# One whose API gave up (its session died): an executor drops it unchecked.
sql "INSERT INTO script_checks (tenant_id, runtime, script, expires_at)
  SELECT id, 'js', 'for (;;) ;', now() - interval '1 second' FROM tenants LIMIT 1;
  NOTIFY assay_checks" >/dev/null
left() { [ "$(sql "SELECT count(*) FROM script_checks")" = 0 ]; }
eventually "a check nobody waits for any more leaves the queue" 50 left

# Latency (p50) of a check beside a GET of an analysis, the same way.
p50() {
  local i; for i in $(seq 1 40); do "$@" >/dev/null; printf '%s\n' "$t"; done |
    sort -n | sed -n 20p
}
timed() { t=$(curl -s -o /dev/null -w '%{time_total}' "$@"); }
auth=(-H "Authorization: Bearer $ASSAY_API_KEY" -H 'Content-Type: application/json')
jq -nc '{script: "function analyze(i) { return i; }"}' >"$tmp/js"
jq -nc '{script: "export default (i) => i;", runtime: "node"}' >"$tmp/node"
base=$(p50 timed "${auth[@]}" "$ASSAY_URL/api/v1/analyses/$aid")
js=$(p50 timed "${auth[@]}" --data-binary "@$tmp/js" "$ASSAY_URL/api/v1/analyses/check")
node=$(p50 timed "${auth[@]}" --data-binary "@$tmp/node" "$ASSAY_URL/api/v1/analyses/check")
echo "# check latency p50: js ${js}s, node ${node}s; baseline GET /analyses/{id} ${base}s"

# Without an executor: 503 CHECK_UNAVAILABLE within check_timeout_ms, and
# the check is withdrawn.
{ cat "$tmp/assay.conf.orig"; printf '[api]\ncheck_timeout_ms = 1500\n'; } >"$conf"
api_reload
sleep 1
kill -TERM "$(cat "$ASSAY_STACK_DIR/run/assay-executor.pid")"
gone() { ! running "$(cat "$ASSAY_STACK_DIR/run/assay-executor.pid")"; }
eventually "the executor stopped" 100 gone
start=$(date +%s%N)
chk js 'function analyze() { return 1; }'
ms=$((($(date +%s%N) - start) / 1000000))
check "no executor: 503 CHECK_UNAVAILABLE" "$status $(json .code)" "503 CHECK_UNAVAILABLE"
check "with Retry-After" "$(header Retry-After)" 5
check_match "the detail says so" "$(json .detail)" "no executor checked the script within 1500 ms"
check "after check_timeout_ms (${ms} ms)" "$([ "$ms" -ge 1500 ] && [ "$ms" -lt 4000 ] && echo yes)" yes
check "the check was withdrawn" "$(sql "SELECT count(*) FROM script_checks")" 0
# At most half the API's workers (4 here) wait for checks: of 4 at once,
# 2 are answered 503 soon (within half a second), saying so, the others
# after the timeout.
jq -nc '{script: "function analyze() { return 1; }"}' >"$tmp/one"
for i in 1 2 3 4; do
  curl -s -o "$tmp/w$i" -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $ASSAY_API_KEY" \
    -H 'Content-Type: application/json' --data-binary "@$tmp/one" \
    "$ASSAY_URL/api/v1/analyses/check" >"$tmp/t$i" &
done
wait
check "4 checks at once: 2 wait, 2 are answered soon" \
  "$(cat "$tmp"/t? | awk '$1 == 503 { print ($2 < 1.2) ? "soon" : "waited" }' | sort | uniq -c | tr -s ' ' | paste -sd,)" \
  " 2 soon, 2 waited"
check "those say that checks are waited for already" \
  "$(cat "$tmp"/w? | jq -r .detail | grep -c 'checks are being waited for on this host already')" 2
stack_up
chk js 'function analyze() { return 1; }'
check "an executor again: 200" "$status" 200
finish
