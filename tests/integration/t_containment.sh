# Containment: whatever a script does, it affects only its own process
# tree. Hostile scripts in both runtimes probe the host while a canary
# process this test started, PostgreSQL, the web server and assay-api look
# on, and another tenant's run goes on beside them. The probes are harmless
# if containment fails: signal 0 to the canary, at most SIGKILL to the
# canary itself, never a signal to -1 or to a process this test did not
# start.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
sleep 600 &
canary=$!
pid_of() { cat "$ASSAY_STACK_DIR/run/$1.pid"; }
ex=$(pid_of assay-executor)
sbx=$(pgrep -P "$ex" -x assay-sandbox)
pg=$(head -n 1 "$(cat "$ASSAY_STACK_DIR/pgdata")/postmaster.pid")
api_pid=$(pid_of assay-api)
web=$(pid_of web)
sock=$ASSAY_STACK_DIR/run/api.sock

# analysis, submit, finished: lib.sh.
declare -A runs
hostile() { runs[$1]=$(submit "$(analysis "$2" ", runtime: \"$3\"")"); }

# Another tenant's run, going on while the hostile ones do their worst.
KEY=$(new_tenant "bystander_$$_$RANDOM" pro)
export KEY
jq -nc --arg s 'function analyze() { var t = Date.now(); while (Date.now() - t < 3000) {} return "unharmed"; }' \
  '{title: "bystander", script: $s, max_attempts: 1, timeout_ms: 30000}' >"$tmp/b.json"
api POST /api/v1/analyses "@$tmp/b.json"
api POST /api/v1/runs "{\"name\":\"bystander\",\"analysis_id\":\"$(json .analysis.id)\"}"
bystander=$(json .run.id)
bystander_key=$KEY
unset KEY

# Runtime node: each probe reports what it got; "reached" means it got out.
probe_kill='(p) => { try { process.kill(p, 0); return "reached"; } catch (e) { return e.code; } }'
hostile node-pids "const probe = $probe_kill; export default () => ({
  canary: probe($canary), sandbox: probe($sbx), executor: probe($ex), postgres: probe($pg),
  api: probe($api_pid), web: probe($web), all: probe(-1), pid: process.pid, ppid: process.ppid,
  uid: process.getuid() })" node
# (Only where the parent is pid 1 of the job's own namespace: outside one,
# that pid would be a process this test did not start.)
hostile node-kill-init "export default () => {
  if (process.pid !== 2 || process.ppid !== 1) return 'not in a namespace: nothing sent';
  process.kill(process.ppid, 'SIGKILL'); process.kill(1, 'SIGTERM'); return 'alive'; }" node
hostile node-kill-canary "export default () => { try { process.kill($canary, 'SIGKILL'); return 'sent'; } catch (e) { return e.code; } }" node
hostile node-api-socket "import net from 'node:net'; export default () => new Promise((ok) => {
  const s = net.connect('$sock'); s.on('connect', () => ok('connected')); s.on('error', (e) => ok(e.code)); })" node
hostile node-unix-socket "import net from 'node:net'; export default () => new Promise((ok) => {
  const s = net.createServer().listen('\0assay-hostile'); s.on('listening', () => ok('listening')); s.on('error', (e) => ok(e.code)); })" node
hostile node-files "import fs from 'node:fs'; export default () => {
  const r = {};
  for (const [k, f] of [['environ', () => fs.readFileSync('/proc/1/environ')], ['shadow', () => fs.readFileSync('/etc/shadow')],
      ['var', () => fs.readdirSync('$ASSAY_STACK_DIR')], ['proc', () => fs.readdirSync('/proc')]]) {
    try { f(); r[k] = 'read'; } catch (e) { r[k] = e.code; } }
  return r; }" node
hostile node-workers "import { Worker } from 'node:worker_threads'; export default () => {
  for (let i = 0; i < 1000; i++) new Worker('for (;;) {}', { eval: true }); return 'forked'; }" node
hostile node-descriptors "import fs from 'node:fs'; export default () => {
  for (let fd = 0; fd < 10; fd++) try { fs.writeSync(fd, 'x'.repeat(64)); } catch (e) {} return 'wrote'; }" node
hostile node-spawn "import cp from 'node:child_process'; export default () => cp.execFileSync('/usr/bin/su', ['-c', 'id']).toString()" node
# Runtime js: values the engine cannot encode fail the run, once, saying so.
hostile js-function 'function analyze() { return function () {}; }' js
hostile js-pointer 'function analyze() { return Duktape.Pointer("x"); }' js
hostile js-cyclic 'function analyze() { var a = {}; a.a = a; return a; }' js

for k in "${!runs[@]}"; do
  eventually "hostile $k finishes" 300 finished "${runs[$k]}"
done
result() { api GET "/api/v1/runs/${runs[$1]}"; json -c "${2:-.run.result}"; }
r=$(result node-pids)
for p in canary sandbox executor postgres api web all; do
  check "node: kill($p, 0) reaches nothing" "$(jq -r ".$p" <<<"$r")" ESRCH
done
check "node: alone with its init (PID 1), no host parent in sight" "$(jq -c '[.pid, .ppid]' <<<"$r")" '[2,1]'
check "node: runs as the sandbox user" "$(jq -r .uid <<<"$r")" "$(id -u assay-sandbox)"
check "node: a kill of its parent (its own init) changes nothing" "$(result node-kill-init)" alive
check "node: SIGKILL to the canary does not reach it" "$(result node-kill-canary)" ESRCH
check_match "node: the API's socket cannot be reached" "$(result node-api-socket)" '^(ENOENT|EACCES)$'
check "node: no unix socket can be made" "$(result node-unix-socket)" EACCES
check "node: /proc/1/environ, /etc/shadow, var/, /proc unreadable" \
  "$(result node-files '.run.result | map_values(. == "read") | to_entries | map(select(.value)) | length')" 0
check "node: worker threads refused" "$(result node-workers .run.status)" failed
check_match "node: worker threads refused, saying why" "$(result node-workers .run.error_message)" 'restricted|ERR_ACCESS_DENIED'
check_match "node: writing to descriptors 0-9 crashes nothing" "$(result node-descriptors .run.error_message)" '^(null|script error: malformed bridge output)$'
check_match "node: no setuid program can run" "$(result node-spawn .run.error_message)" 'restricted|ERR_ACCESS_DENIED'
check "js: a function is not JSON" "$(result js-function .run.error_message)" 'script error: result is not JSON (a function)'
check "js: a pointer is not JSON" "$(result js-pointer .run.error_message)" 'script error: result is not JSON (a pointer)'
check_match "js: a cycle is not JSON" "$(result js-cyclic .run.error_message)" '^script error: result is not JSON \(TypeError'
check "js: failed once, not retried" "$(result js-function .run.attempts)" 1

KEY=$bystander_key eventually "the other tenant's run finishes" 300 finished "$bystander"
check "the other tenant's run completed" "$(KEY=$bystander_key; api GET "/api/v1/runs/$bystander"; json .run.result)" unharmed
for p in canary ex sbx pg api_pid web; do
  check "$p survived" "$(running "${!p}" && echo yes)" yes
done
check "the stack still answers" "$(curl -s -o /dev/null -w '%{http_code}' "$ASSAY_URL/live")" 200

# The stack's sockets are not world-writable.
for s in api stream; do
  check "$s.sock is 0660" "$(stat -c %a "$ASSAY_STACK_DIR/run/$s.sock")" 660
done

# assay-executor -t says how its children are contained.
check_match "assay-executor -t: contained" "$(assay-executor -t -c "$ASSAY_STACK_DIR/conf/executor.conf")" \
  '# sandbox: children run as assay-sandbox in namespaces of their own'
# Without a sandbox user it could become, runtime node is refused, saying why.
sed 's/^sandbox_user = .*//' "$ASSAY_STACK_DIR/conf/executor.conf" >"$tmp/nouser.conf"
echo "sandbox_user = no-such-user-$$" >>"$tmp/nouser.conf"
check_match "assay-executor -t: refuses node without its user" "$(assay-executor -t -c "$tmp/nouser.conf")" \
  'warning: assay-sandbox could not become sandbox_user.*runtime node is refused'

kill "$canary"
rm -rf "$tmp"
finish
