# The executor: a run's result and ctx events; hostile scripts each fail
# with the right reason while the executor stays healthy; the same for
# runtime "node"; retries with
# backoff; cancel of a running job and cancel racing the claim; recovery
# after the executor is SIGKILLed mid-job, and after its assay-sandbox is;
# SIGHUP reloads (and keeps the old configuration when the new one is
# broken); SIGTERM drains.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
ex_pid() { cat "$ASSAY_STACK_DIR/run/assay-executor.pid"; }
# analysis, submit, finished: lib.sh. The cases that expect a timeout set
# a short one (the variable "brief").
brief=', timeout_ms: 2000'
status_of() { api GET "/api/v1/runs/$1"; json .run.status; }
wait_run() { eventually "run $2 finishes" "${3:-100}" finished "$1"; api GET "/api/v1/runs/$1"; }

http_ex() { curl -s "$EXECUTOR_URL$1"; }
check "executor /health" "$(http_ex /health | jq -r .status)" healthy
check_match "executor /metrics" "$(http_ex /metrics)" 'assay_executor_jobs_total\{outcome="completed"\}'

# A real analysis, end to end, with its ctx events in order.
a=$(analysis 'export default function analyze(input, ctx) {
  ctx.log("info", "adding"); ctx.progress(50, "half way"); ctx.emit("partial", {a: input.a});
  return {sum: input.a + input.b};
}')
r=$(submit "$a" '{"a":2,"b":40}')
wait_run "$r" "sum"
check "happy path: completed" "$(json .run.status)" completed
check "happy path: result" "$(json -c .run.result)" '{"sum":42}'
check "happy path: attempts" "$(json .run.attempts)" 1
check "happy path: events in order" "$(sql "SELECT string_agg(type, ',' ORDER BY seq) FROM job_events WHERE job_id = '$r'")" \
  "created,pending,running,log,progress,emit,completed"
check "ctx.progress data" "$(sql "SELECT data->>'percent' FROM job_events WHERE job_id = '$r' AND type = 'progress'")" 50

# ctx.progress in a tight loop is coalesced (progress_interval_ms, 250):
# a handful of rows, not thousands, and the last one is never lost.
r=$(submit "$(analysis 'function analyze(i, ctx) { var t = Date.now(), n = 0; while (n < 30000 && Date.now() - t < 1000) ctx.progress(n++ % 100); ctx.progress(100, "done"); return n > 1000; }')")
wait_run "$r" "progress storm"
check "progress storm: completed" "$(json .run.result)" true
check_match "progress storm: coalesced to a few events" "$(sql "SELECT count(*) FROM job_events WHERE job_id = '$r' AND type = 'progress'")" '^[1-9]$'
check "progress storm: the last one is kept" "$(sql "SELECT data->>'percent' || ' ' || (data->>'message') FROM job_events WHERE job_id = '$r' AND type = 'progress' ORDER BY seq DESC LIMIT 1")" "100 done"

# Hostile scripts: each fails for its own reason.
declare -A want
hostile() { # NAME SCRIPT REASON-REGEX [extra members]
  local id; id=$(submit "$(analysis "$2" "${4:-}")")
  want[$1]="$id|$3"
}
hostile loop 'function analyze() { for (;;) {} }' '^timeout' "$brief"
hostile memory 'function analyze() { var a = []; for (;;) a.push(new Uint8Array(1048576)); }' '^memory limit$' ', memory_limit_mb: 64'
hostile recursion 'function f(n) { return f(n + 1) + 1; } function analyze() { return f(0); }' '^script error: RangeError'
hostile output 'function analyze(i, ctx) { var s = new Array(100001).join("y"); for (var k = 0; k < 2000; k++) ctx.log("info", s); }' '^output too large$'
hostile regex 'function analyze() { return /^(a+)+$/.test(new Array(40).join("a") + "b"); }' '^timeout' "$brief"
hostile sort 'function analyze() { var a = []; for (var i = 0; i < 3000000; i++) a.push((i * 7919) % 1000003); a.sort(); a.sort(function (x, y) { return y - x; }); return a.length; }' '^timeout' ", memory_limit_mb: 512$brief"
hostile throw 'function analyze() { throw new Error("boom"); }' '^script error: Error: boom$'
hostile syntax 'function analyze( {' '^script error: SyntaxError'
hostile missing 'var analyze = 3;' 'does not define analyze'
hostile events 'function analyze(i, ctx) { for (;;) ctx.log("info", "x"); }' '^event limit: the script wrote more than 10000 events$'
hostile nulkey 'function analyze() { var o = {}; o["k\u0000"] = 1; o.k = 2; return o; }' '^script error: the result cannot be stored: /k has a member name'
hostile surrogate 'function analyze() { return "a\ud800b"; }' '^script error: the result cannot be stored: the value contains a lone UTF-16 surrogate$'
hostile nullog 'function analyze(i, ctx) { ctx.log("info", "a\u0000b"); return 1; }' '^script error: output cannot be stored: /message contains a NUL'
ok_run=$(submit "$(analysis 'function analyze() { return "still fine"; }')")
for k in "${!want[@]}"; do
  id=${want[$k]%%|*}
  wait_run "$id" "$k" 150
  check "hostile $k: failed" "$(json .run.status)" failed
  check_match "hostile $k: says why" "$(json .run.error_message)" "${want[$k]#*|}"
done
wait_run "$ok_run" "beside the hostile ones"
check "other jobs still run" "$(json .run.result)" "still fine"
check "the executor survived" "$(http_ex /health | jq -r .status)" healthy
check "the executor is the same process" "$(running "$(ex_pid)" && echo yes)" yes

# Runtime "node": the same contract in a node process (ES modules, modern
# syntax), and the same refusals: no network, no processes, no files.
node_analysis() { analysis "$1" ", runtime: \"node\"${2:-}"; }
grep -q '^node_path = /' "$ASSAY_STACK_DIR/conf/executor.conf" ||
  fail "runtime node: the stack has no node 20 or later (node_path is empty)"
r=$(submit "$(node_analysis 'export default async function analyze(input, ctx) {
  ctx.log("info", "adding"); ctx.progress(50, "half way"); ctx.emit("partial", { a: input.a });
  const { a, b } = input; return { sum: [a, b].reduce((p, q) => p + q, input?.c ?? 0) };
}')" '{"a":2,"b":40}')
wait_run "$r" "node"
check "node: completed" "$(json .run.status)" completed
check "node: result" "$(json -c .run.result)" '{"sum":42}'
check "node: events in order" "$(sql "SELECT string_agg(type, ',' ORDER BY seq) FROM job_events WHERE job_id = '$r'")" \
  "created,pending,running,log,progress,emit,completed"
r=$(submit "$(node_analysis 'function analyze(i) { return `plain ${i}`; }')" '"x"')
wait_run "$r" "node, not exported"
check "node: a plain analyze() works too" "$(json .run.result)" "plain x"
# ctx.log(message) is ctx.log("info", message), in both runtimes.
for rt in js node; do
  r=$(submit "$(analysis 'function analyze(i, ctx) { ctx.log("just this"); ctx.log("warn", "and that"); return 1; }' ", runtime: \"$rt\"")")
  wait_run "$r" "$rt ctx.log" >/dev/null
  check "$rt: ctx.log with one argument" "$(sql "SELECT string_agg(data->>'level' || ':' || (data->>'message'), ',' ORDER BY seq) FROM job_events WHERE job_id = '$r' AND type = 'log'")" \
    "info:just this,warn:and that"
done
declare -A nwant
node_hostile() { # NAME SCRIPT REASON-REGEX [extra members]
  nwant[$1]="$(submit "$(node_analysis "$2" "${4:-}")")|$3"
}
node_hostile net "export default async function analyze() { return (await fetch('$ASSAY_URL/live')).status; }" '^script error: TypeError: fetch failed'
node_hostile socket "import net from 'node:net'; export default () => new Promise((ok, no) => net.connect(${ASSAY_URL##*:}, '127.0.0.1', () => ok(1)).on('error', no));" '^script error: Error: connect E'
node_hostile process "import cp from 'node:child_process'; export default () => cp.execSync('id').toString();" 'restricted'
node_hostile files "import fs from 'node:fs'; export default () => fs.readFileSync('/etc/passwd', 'utf8');" 'restricted'
node_hostile binding "export default () => typeof process.binding('spawn_sync');" 'ERR_ACCESS_DENIED'
node_hostile loop "export default function analyze() { for (;;) {} }" '^timeout' "$brief"
node_hostile memory "export default function analyze() { const a = []; for (;;) a.push(new Array(1e6).fill(1.5)); }" '^memory limit'
node_hostile output "export default (i, ctx) => { const s = 'y'.repeat(100000); for (let k = 0; k < 2000; k++) ctx.log('info', s); };" '^output too large$'
node_hostile syntax "function analyze( {" '^script error: SyntaxError'
node_hostile abort "export default () => { process.abort(); }" '^script error: process.abort\(\) was called$'
node_hostile unsettled "export default () => new Promise(() => {});" '^script error: analyze\(\) returned a promise that never settles$'
node_hostile surrogate "export default () => ({ s: 'a\\ud800b' });" '^script error: the result cannot be stored: /s contains a lone UTF-16 surrogate$'
for k in "${!nwant[@]}"; do
  wait_run "${nwant[$k]%%|*}" "node hostile $k" 150 >/dev/null
  check "node hostile $k: failed" "$(json .run.status)" failed
  check_match "node hostile $k: says why" "$(json .run.error_message)" "${nwant[$k]#*|}"
done
check "node: the executor survived" "$(running "$(ex_pid)" && echo yes)" yes

# Retries: a failing attempt goes back to pending until max_attempts.
r=$(submit "$(analysis 'function analyze() { throw new Error("flaky"); }' ', max_attempts: 2')")
wait_run "$r" "retried" 100
check "retry: failed after 2 attempts" "$(json .run.attempts)" 2
check "retry: events" "$(sql "SELECT string_agg(type, ',' ORDER BY seq) FROM job_events WHERE job_id = '$r' AND type NOT IN ('script_error')")" \
  "created,pending,running,pending,running,failed"

# Cancel a running job.
slow=$(analysis 'function analyze() { for (;;) {} }' ', timeout_ms: 60000')
r=$(submit "$slow")
is_running() { [ "$(status_of "$r")" = running ]; }
eventually "slow job running" 50 is_running
start=$(date +%s%N)
api POST "/api/v1/runs/$r/cancel"
check "cancel running: 202" "$status" 202
wait_run "$r" "canceled" 50
check "cancel running: canceled" "$(json .run.status)" canceled
check_match "cancel running: within 5 s" "$(( ($(date +%s%N) - start) / 1000000 ))" '^([0-9]{1,3}|[1-4][0-9]{3})$'

# Cancel racing the claim: a run whose cancel got 202 ends canceled, one
# that got 409 had finished before; none is lost or left running.
quick=$(analysis 'function analyze() { var t = Date.now(); while (Date.now() - t < 300) {} return 1; }')
race=()
for i in $(seq 1 12); do race+=("$(submit "$quick")"); done
for id in "${race[@]}"; do
  curl -s -o /dev/null -w "$id %{http_code}\n" -X POST -d '' -H "Authorization: Bearer $ASSAY_API_KEY" \
    "$ASSAY_URL/api/v1/runs/$id/cancel" >>"$tmp/cancels" &
done
wait
for id in "${race[@]}"; do wait_run "$id" "raced" 50 >/dev/null; done
bad=0
while read -r id code; do
  st=$(status_of "$id")
  case "$code $st" in "202 canceled"|"409 completed") ;; *) bad=$((bad + 1)); echo "  $id: cancel $code, status $st" ;; esac
done <"$tmp/cancels"
check "cancel vs claim: 202 means canceled, 409 means finished first" "$bad" 0
check "cancel vs claim: all 12 answered" "$(wc -l <"$tmp/cancels")" 12

# SIGKILL the executor mid-job: after the lease expires, a restarted executor finishes it.
# The job runs 5 s, so that the kill lands mid-job even on a loaded machine.
long=$(analysis 'function analyze() { var t = Date.now(); while (Date.now() - t < 5000) {} return "survived"; }' ', max_attempts: 3, timeout_ms: 20000')
r=$(submit "$long")
eventually "long job running" 50 is_running
pid=$(ex_pid)
kill -KILL "$pid"
gone() { ! running "$pid"; }
eventually "killed executor gone" 50 gone
stack_up
wait_run "$r" "after executor crash" 300
check "crash: completed by the new executor" "$(json .run.result)" survived
check "crash: second attempt" "$(json .run.attempts)" 2
check_match "crash: the event log says so" "$(sql "SELECT data->>'error_message' FROM job_events WHERE job_id = '$r' AND type = 'pending' ORDER BY seq DESC LIMIT 1")" "lease expired"

# The children come from assay-sandbox, a program of its own (not a copy of
# the executor). Killed, it takes only its running children with it: their
# runs are retried, and the executor starts a new one. (The job runs 6 s so
# that it is still running when a loaded machine's test gets to see it.)
sbx() { pgrep -P "$(ex_pid)" -x assay-sandbox; }
check_match "the sandbox is its own program" "$(readlink "/proc/$(sbx)/exe")" '/assay-sandbox$'
r=$(submit "$(analysis 'function analyze() { var t = Date.now(); while (Date.now() - t < 6000) {} return "again"; }' ', max_attempts: 2, timeout_ms: 20000')")
eventually "job running in the sandbox" 150 is_running
old=$(sbx)
kill -KILL "$old"
wait_run "$r" "after the sandbox was killed" 300
check "sandbox killed: the run is retried and completes" "$(json .run.result)" again
check_match "sandbox killed: the event log says why" "$(sql "SELECT data->>'error_message' FROM job_events WHERE job_id = '$r' AND type = 'pending' ORDER BY seq DESC LIMIT 1")" "sandbox process stopped"
check_match "sandbox killed: a new one runs" "$(sbx)" '^[0-9]+$'
check "sandbox killed: the executor stayed" "$(http_ex /health | jq -r .status)" healthy

# Three executors on 2,000 jobs: every job completed exactly once.
noop=$(analysis 'function analyze(i) { return i; }' ', max_attempts: 1')
extra=()
for n in 1 2; do
  sed "s/^port = .*/port = $(free_port)/" \
    "$ASSAY_STACK_DIR/conf/executor.conf" >"$tmp/executor$n.conf"
  assay-executor -c "$tmp/executor$n.conf" 2>"$tmp/executor$n.log" &
  extra+=($!)
done
sql "INSERT INTO analysis_jobs (project_id, analysis_id, analysis_version, name, input, status, max_attempts)
     SELECT project_id, id, version, 'many-$$', to_jsonb(n), 'pending', 1
     FROM analyses, generate_series(1, 2000) n WHERE id = '$noop'" >/dev/null
drained() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'many-$$' AND status IN ('pending', 'running')")" = 0 ]; }
eventually "2,000 jobs drained by three executors" 1200 drained
check "all 2,000 completed" "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'many-$$' AND status = 'completed'")" 2000
check "each ran once" "$(sql "SELECT count(*) FROM job_events e JOIN analysis_jobs j ON j.id = e.job_id WHERE j.name = 'many-$$' AND e.type = 'running'")" 2000
check "each result is its own input" "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'many-$$' AND result <> input")" 0
check "all three took part" "$(sql "SELECT count(DISTINCT worker_id) FROM analysis_jobs WHERE name = 'many-$$'")" 3
kill -TERM "${extra[@]}"
wait "${extra[@]}" 2>/dev/null

# SIGHUP: a changed file is taken; a broken one is refused, the old
# configuration stays, and the log says why.
conf=$ASSAY_STACK_DIR/conf/executor.conf
cp "$conf" "$tmp/executor.conf.orig"
capacity() { http_ex /health | jq -r .capacity; }
echo "max_concurrent_jobs = 2" >>"$conf"
kill -HUP "$(ex_pid)"
is_two() { [ "$(capacity)" = 2 ]; }
eventually "SIGHUP: new max_concurrent_jobs taken" 50 is_two
echo "max_concurrent_jobs = lots" >>"$conf"
kill -HUP "$(ex_pid)"
reload_refused() {
  grep -q 'config: .*executor.conf:[0-9]*: max_concurrent_jobs' "$ASSAY_STACK_DIR/log/assay-executor.log" &&
    grep -q 'reload failed' "$ASSAY_STACK_DIR/log/assay-executor.log"
}
eventually "SIGHUP: broken file refused and logged" 50 reload_refused
check "SIGHUP: the old configuration stays" "$(capacity)" 2
check "SIGHUP: the executor is the same process" "$(running "$(ex_pid)" && echo yes)" yes
cp "$tmp/executor.conf.orig" "$conf"
kill -HUP "$(ex_pid)"
is_back() { [ "$(capacity)" != 2 ]; }
eventually "SIGHUP: restored" 50 is_back

# SIGTERM: running jobs finish, then the executor exits; nothing is lost.
# The job runs 8 s, so that it is still running when a loaded machine's
# test gets to see it, within a grace raised to 30 s by SIGHUP.
log=$ASSAY_STACK_DIR/log/assay-executor.log
reloads=$(grep -c 'configuration reloaded' "$log")
echo "shutdown_grace_seconds = 30" >>"$conf"
kill -HUP "$(ex_pid)"
reloaded() { [ "$(grep -c 'configuration reloaded' "$log")" -gt "$reloads" ]; }
eventually "SIGTERM: grace raised to 30 s" 50 reloaded
r=$(submit "$(analysis 'function analyze() { var t = Date.now(); while (Date.now() - t < 8000) {} return "drained"; }' ', timeout_ms: 40000')")
eventually "job running before SIGTERM" 150 is_running
pid=$(ex_pid)
kill -TERM "$pid"
eventually "executor exits after draining" 300 gone
check "drained job completed" "$(status_of "$r")" completed
check_match "drain logged" "$(grep -h "stopped after" "$ASSAY_STACK_DIR/log/assay-executor.log" | tail -n 1)" stopped
stack_up
rm -rf "$tmp"
finish
