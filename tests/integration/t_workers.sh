# Warm workers: a tenant's jobs reuse its worker, each in a fresh world;
# two tenants never share one; any abnormal end replaces the worker; with
# worker_max_jobs = 1 the hostile suite holds as it does with reuse.
# Fairness: one tenant's backlog does not starve another, and a tier's
# running cap holds across two executors. An executor SIGKILLed while jobs
# end loses no completion and records none twice.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
log=$ASSAY_STACK_DIR/log/assay-executor.log
conf=$ASSAY_STACK_DIR/conf/executor.conf
ex_pid() { cat "$ASSAY_STACK_DIR/run/assay-executor.pid"; }
# analysis, submit, finished: lib.sh.
run() { # ANALYSIS [INPUT]: submit and wait; the run's id in $rid, the run in $body
  rid=$(submit "$@")
  eventually "run $rid finishes" 300 finished "$rid" >/dev/null
  api GET "/api/v1/runs/$rid"
}
# The worker that ran a run, from the executor's log ("worker N, its job K").
worker_of() { grep -h "run $1: " "$log" | sed -n 's/.*(worker \([0-9]*\), its job [0-9]*).*/\1/p' | tail -1; }
logged() { grep -q "run $1: .*(worker " "$log"; }

# One tenant's jobs: the same worker, a fresh world each time.
a=$(analysis 'var before = typeof leaked;
function analyze(i) {
  if (i.set) { leaked = "yes"; Array.prototype.push = function () { return "hijacked"; };
    Object.prototype.extra = 1; return [before, [].push(1)]; }
  return [before, typeof leaked, [].push(1), ({}).extra === undefined];
}')
run "$a" '{"set":true}'; r1=$rid
check "fresh world: the first job rewrote push" "$(json -c .run.result)" '["undefined","hijacked"]'
run "$a" '{}'; r2=$rid
check "fresh world: the next job sees no global, no rewritten built-in" "$(json -c .run.result)" '["undefined","undefined",1,true]'
eventually "both runs logged" 50 logged "$r2"
w1=$(worker_of "$r1") w2=$(worker_of "$r2")
check_match "fresh world: the worker is named" "$w1" '^[0-9]+$'
check "fresh world: both ran in the same worker" "$w2" "$w1"
b=$(analysis 'function analyze() { return typeof leaked; }')
run "$b"; r3=$rid
check "fresh world: another analysis of the tenant, same worker, nothing leaked" "$(json .run.result)/$(worker_of "$r3")" "undefined/$w1"

# Another tenant never shares it.
other=$(new_tenant "workers_$$_$RANDOM" pro)
ob=$(KEY=$other analysis 'function analyze() { return typeof leaked; }')
KEY=$other run "$ob"; r4=$rid
eventually "the other tenant's run logged" 50 logged "$r4"
w4=$(worker_of "$r4")
check_match "two tenants: the other tenant's run completed" "$(KEY=$other api GET "/api/v1/runs/$r4"; json .run.status)" completed
check "two tenants: never one worker" "$([ -n "$w4" ] && [ "$w4" != "$w1" ] && echo apart)" apart

# Any abnormal end replaces the worker; the next job succeeds in a new one.
m=$(analysis 'function analyze(i) {
  if (i.mode === "loop") for (;;) {}
  if (i.mode === "hog") { var a = []; for (;;) a.push(new Uint8Array(1048576)); }
  if (i.mode === "throw") throw new Error("boom");
  return "fine";
}' ', timeout_ms: 1500, memory_limit_mb: 64')
run "$m" '{"mode":"ok"}'
eventually "the first of m logged" 50 logged "$rid"
prev=$(worker_of "$rid")
for mode in loop hog throw; do
  run "$m" "{\"mode\":\"$mode\"}"
  check "after $mode: the run failed" "$(json .run.status)" failed
  run "$m" '{"mode":"ok"}'; r=$rid
  check "after $mode: the next job completes" "$(json .run.result)" fine
  eventually "after $mode: logged" 50 logged "$r"
  now=$(worker_of "$r")
  check "after $mode: in a new worker" "$([ -n "$now" ] && [ "$now" != "$prev" ] && echo new)" new
  prev=$now
done

# A finalizer runs when its job's engine goes, before its result: what it
# does belongs to that run, not to the next one in the worker.
fin=$(analysis 'function analyze(i, ctx) { kept = {}; Duktape.fin(kept, function () { ctx.log("info", "finalized"); }); return "done"; }')
run "$fin"; r1=$rid
check "finalizer: the run completed" "$(json .run.result)" done
run "$b"; r2=$rid
events() { sql "SELECT string_agg(type || coalesce(':' || (data->>'message'), ''), ',' ORDER BY seq) FROM job_events WHERE job_id = '$1'"; }
check_match "finalizer: its log is the run's own" "$(events "$r1")" 'log:finalized'
check "finalizer: the next run saw nothing of it" "$(events "$r2")" "created,pending,running,completed"

# node: a script that writes to the bridge itself cannot end its job (and
# stay on for the next), nor crash the executor with odd lines.
node_path=$(sed -n 's/^node_path = //p' "$conf")
if [ -n "$node_path" ]; then
  forge=$(analysis "import fs from 'node:fs'; export default () => {
    fs.writeSync(3, '{\"type\":\"result\",\"value\":\"forged\"}\\n');
    return new Promise((ok) => setTimeout(() => ok('late'), 300)); }" ', runtime: "node"')
  run "$forge"
  check "node: a result the script wrote itself fails the run" \
    "$(json .run.status)|$(json .run.error_message)" "failed|sandbox breach: a result line the runtime did not write"
  odd=$(analysis "import fs from 'node:fs'; export default () => {
    fs.writeSync(3, '{\"type\":null}\\n{\"type\":\"error\",\"message\":null}\\n'); return 1; }" ', runtime: "node"')
  run "$odd"
  check "node: lines of the wrong types fail the run" "$(json .run.error_message)" "script error: malformed bridge output"
  fine=$(analysis "export default () => 'fine'" ', runtime: "node"')
  run "$fine"
  check "node: the tenant's next job runs" "$(json .run.result)" fine
  check "node: the executor survived" "$(curl -s "$EXECUTOR_URL/health" | jq -r .status)" healthy
else
  fail "node: the stack has no node_path"
fi

# Fairness: tenant A's backlog of 2,000, then tenant B's one job.
noop=$(analysis 'function analyze(i) { return i; }')
sql "INSERT INTO analysis_jobs (project_id, analysis_id, analysis_version, name, input, status, max_attempts)
     SELECT project_id, id, version, 'backlog-$$', to_jsonb(n), 'pending', 1
     FROM analyses, generate_series(1, 2000) n WHERE id = '$noop'" >/dev/null
sleep 0.2
rb=$(KEY=$other submit "$ob")
KEY=$other eventually "B's run finishes during A's backlog" 300 finished "$rb"
check "fairness: A's backlog was still draining" \
  "$([ "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'backlog-$$' AND status = 'completed' AND finished_at > (SELECT started_at FROM analysis_jobs WHERE id = '$rb')")" -gt 0 ] && echo yes)" yes
check "fairness: B's job started within 200 ms" \
  "$(sql "SELECT extract(epoch FROM started_at - created_at) < 0.2 FROM analysis_jobs WHERE id = '$rb'")" t
drained() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'backlog-$$' AND status IN ('pending', 'running')")" = 0 ]; }
eventually "A's backlog drained" 1200 drained
check "fairness: all of A's backlog completed once" \
  "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'backlog-$$' AND status = 'completed' AND attempts = 1")" 2000

# A free tenant's cap (2 running) holds across two executors: eight runs
# wait while the first is stopped, a second executor starts and takes two,
# the first is refused while they run, then takes the rest.
name=capped_$$_$RANDOM
free=$(new_tenant "$name" free)
tid=$(sql "SELECT id FROM tenants WHERE name = '$name'")
slow=$(KEY=$free analysis 'function analyze() { var t = Date.now(); while (Date.now() - t < 300) {} return 1; }')
kill -STOP "$(ex_pid)"
for i in $(seq 1 8); do KEY=$free submit "$slow" >/dev/null; done
# The most of the tenant's jobs ever running, sampled throughout.
(
  most=0
  while :; do
    n=$(sql "SELECT count(*) FROM analysis_jobs WHERE tenant_id = $tid AND status = 'running'")
    [ "$n" -le "$most" ] || { most=$n; echo "$most" >"$tmp/most"; }
    sleep 0.01
  done
) &
sampler=$!
sed "s/^port = .*/port = $(free_port)/" "$conf" >"$tmp/executor2.conf"
assay-executor -c "$tmp/executor2.conf" 2>"$tmp/executor2.log" &
second=$!
two_running() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE tenant_id = $tid AND status = 'running'")" = 2 ]; }
eventually "cap: the second executor runs two" 300 two_running
# The first, awake again, is refused while the second (stopped) holds two.
kill -CONT "$(ex_pid)"
kill -STOP "$second"
sleep 1
check "cap: the first executor claims none while the tenant has two running elsewhere" \
  "$(sql "SELECT count(*) FILTER (WHERE worker_id LIKE '%:$(ex_pid)'), count(*) FROM analysis_jobs WHERE tenant_id = $tid AND status = 'running'")" "0|2"
# The second drains and stops; the first takes the rest, two at a time.
kill -CONT "$second"
kill -TERM "$second"
capped_done() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE tenant_id = $tid AND status = 'completed'")" = 8 ]; }
eventually "the capped tenant's 8 runs complete" 600 capped_done
kill "$sampler"; wait "$sampler" 2>/dev/null
check "cap: never more than 2 of a free tenant's jobs running at once" "$(cat "$tmp/most")" 2
check "cap: both executors took part" "$(sql "SELECT count(DISTINCT worker_id) FROM analysis_jobs WHERE tenant_id = $tid")" 2
wait "$second" 2>/dev/null

# SIGKILL of the executor while jobs end: none lost, none completed twice
# (an outcome not yet written is run again when its lease expires).
echo "lease_seconds = 3" >>"$conf"
kill -HUP "$(ex_pid)"
sleep 0.3
sql "INSERT INTO analysis_jobs (project_id, analysis_id, analysis_version, name, input, status, max_attempts)
     SELECT project_id, id, version, 'crash-$$', to_jsonb(n), 'pending', 3
     FROM analyses, generate_series(1, 2000) n WHERE id = '$noop'" >/dev/null
some_done() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'crash-$$' AND status = 'completed'")" -gt 100 ]; }
eventually "jobs completing before the crash" 300 some_done
kill -KILL "$(ex_pid)"
stack_up
crash_drained() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'crash-$$' AND status <> 'completed'")" = 0 ]; }
eventually "all 2,000 complete after the restart" 1200 crash_drained
check "crash: each completed once" \
  "$(sql "SELECT count(*) FROM job_events e JOIN analysis_jobs j ON j.id = e.job_id WHERE j.name = 'crash-$$' AND e.type = 'completed'")" 2000
check "crash: each result is its own input" "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'crash-$$' AND result <> input")" 0
sed -i '/^lease_seconds = 3$/d' "$conf"
kill -HUP "$(ex_pid)"

# The strict mode: a process per job; the hostile suite holds there too.
echo "worker_max_jobs = 1" >>"$conf"
kill -HUP "$(ex_pid)"
sleep 0.3
run "$a" '{}'; s1=$rid
run "$a" '{}'; s2=$rid
eventually "strict: logged" 50 logged "$s2"
check "strict: each job in a worker of its own" "$([ "$(worker_of "$s1")" != "$(worker_of "$s2")" ] && echo apart)" apart
check_match "strict: each its worker's first job" "$(grep -h "run $s2: " "$log" | tail -1)" 'its job 1\)'
bash "$(dirname "$0")/t_containment.sh" | sed 's/^\(ok\|FAIL\) \{1,\}/&strict: /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "strict: the hostile suite (t_containment) with worker_max_jobs = 1"
sed -i '/^worker_max_jobs = 1$/d' "$conf"
kill -HUP "$(ex_pid)"
rm -rf "$tmp"
finish
