# Schedules: create, list (keyset pages), get, update and delete an
# analysis' schedules, each with its next run in UTC; a 422 naming every
# problem (an unknown member, a bad range, step or name, an unknown zone,
# an expression that never fires); another tenant's analysis or schedule
# is 404. Three executors at once fire an @every 1s schedule for more than
# ten ticks, and ten more due on the same seconds: exactly one run per
# tick, no gaps. With every executor stopped for a few ticks, a schedule
# with catch_up (@every or a cron expression) gets one run for the latest
# missed tick, one without gets none. A disabled schedule makes no runs;
# deleting the analysis stops its schedules. Scheduled runs count in the
# tenant's runs per hour. assayctl schedules list shows them.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
conf=$ASSAY_STACK_DIR/conf/executor.conf
pids=()
trap 'for p in "${pids[@]}"; do kill -CONT "$p"; done 2>/dev/null; for p in "${pids[@]:1}"; do kill -TERM "$p"; done 2>/dev/null; rm -rf "$tmp"' EXIT
name=sched$$
KEY=$(new_tenant "$name" enterprise)
other=$(new_tenant "$name-other" pro)
tenant_id=$(sql "SELECT id FROM tenants WHERE name = '$name'")
a=$(new_analysis)

# --- create, get, list, update, delete
api POST "/api/v1/analyses/$a/schedules" \
  '{"cron":"30 2 * * *","timezone":"Europe/Paris","name":"nightly","input":{"k":1}}'
check "create: 201" "$status" 201
s1=$(json .schedule.id)
check "create: Location" "$(header Location)" "/api/v1/analyses/$a/schedules/$s1"
check "create: the schedule as given, defaults filled" \
  "$(json -c '.schedule | [.analysis_id, .name, .cron, .timezone, .input, .enabled, .catch_up, .last_scheduled_for]')" \
  "[\"$a\",\"nightly\",\"30 2 * * *\",\"Europe/Paris\",{\"k\":1},true,false,null]"
# 02:30 in Paris: 01:30Z in winter, 00:30Z in summer
check_match "create: next_run_at is 02:30 in Paris, in UTC" "$(json -r .schedule.next_run_at)" \
  '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T0[01]:30:00\.000Z$'
api POST "/api/v1/analyses/$a/schedules" '{"cron":"@hourly"}'
check "create with only cron: UTC, named, enabled" \
  "$status $(json -c '.schedule | [.timezone, .name, .enabled, .input]')" '201 ["UTC","scheduled run",true,null]'
s2=$(json .schedule.id)
check_match "@hourly: next_run_at on the hour" "$(json -r .schedule.next_run_at)" 'T[0-9]{2}:00:00\.000Z$'
api GET "/api/v1/analyses/$a/schedules/$s1"
check "get: 200, the schedule" "$status $(json -r .schedule.id)" "200 $s1"
api GET "/api/v1/analyses/$a/schedules?limit=1"
check "list: a page of one, newest first, with a cursor" \
  "$status $(json -c '[.schedules[].id]') $(json -r '.next_cursor != null')" "200 [\"$s2\"] true"
api GET "/api/v1/analyses/$a/schedules?limit=1&cursor=$(json -r .next_cursor)"
check "list: the next page, the last" "$status $(json -c '[.schedules[].id]') $(json -r .next_cursor)" \
  "200 [\"$s1\"] null"
api GET "/api/v1/analyses/$a/schedules?limit=0"
check "list: a bad limit is 400" "$status $(json -r '.errors[0].parameter')" "400 limit"

api PATCH "/api/v1/analyses/$a/schedules/$s1" '{"cron":"0 9 * * mon-fri","timezone":"America/New_York"}'
check "update: 200, the new expression and zone" "$status $(json -c '.schedule | [.cron, .timezone, .name]')" \
  '200 ["0 9 * * mon-fri","America/New_York","nightly"]'
check_match "update: next_run_at is 09:00 in New York on a weekday" \
  "$(json -r .schedule.next_run_at)" 'T1[34]:00:00\.000Z$'
wd=$(date -u -d "$(json -r .schedule.next_run_at)" +%u)
check "  a weekday" "$([ "$wd" -le 5 ] && echo yes)" yes
next=$(json -r .schedule.next_run_at)
api PATCH "/api/v1/analyses/$a/schedules/$s1" '{"name":"renamed","input":"text","catch_up":true}'
check "update: only what is given changes" \
  "$status $(json -c '.schedule | [.name, .input, .catch_up, .cron]') $(json -r .schedule.next_run_at)" \
  "200 [\"renamed\",\"text\",true,\"0 9 * * mon-fri\"] $next"
api PATCH "/api/v1/analyses/$a/schedules/$s1" '{"enabled":false}'
check "update: disabled, no next run" "$status $(json -c '.schedule | [.enabled, .next_run_at]')" '200 [false,null]'
api PATCH "/api/v1/analyses/$a/schedules/$s1" '{}'
check "update: nothing to change is 422" "$status $(json -r .code)" "422 VALIDATION_FAILED"
api PATCH "/api/v1/analyses/$a/schedules/$s1" '{"cron":"* * *","timezone":"Nowhere/Atlantis"}'
check "update: validated like create" "$status $(json -c '[.errors[].pointer]')" '422 ["/cron","/timezone"]'
api PATCH "/api/v1/analyses/$a/schedules/$s1" '{"cron":null}'
check "update: null is refused" "$status $(json -c '[.errors[].pointer]')" '422 ["/cron"]'

# --- validation: every problem named
bad() { # DESCRIPTION BODY POINTER DETAIL-REGEX
  api POST "/api/v1/analyses/$a/schedules" "$2"
  check "$1: 422 at $3" "$status $(json -r .code) $(json -r '.errors[0].pointer')" "422 VALIDATION_FAILED $3"
  check_match "  saying $4" "$(json -r '.errors[0].detail')" "$4"
}
bad "an unknown member" '{"cron":"@daily","cronn":"x"}' /cronn 'unknown member'
bad "a bad range" '{"cron":"0 25 * * *"}' /cron 'the hour field: 25 is out of range 0-23'
bad "a backwards range" '{"cron":"0 5-2 * * *"}' /cron 'the hour field: the range 5-2 goes backwards'
bad "a bad step" '{"cron":"*/0 * * * *"}' /cron "the minute field: the step '0' must be a number from 1 to 60"
bad "a bad month name" '{"cron":"0 0 1 foo *"}' /cron "the month field: 'foo' is not a month"
bad "a bad day name" '{"cron":"0 0 * * mon-funday"}' /cron "the day-of-week field: 'funday' is not a day of the week"
bad "too few fields" '{"cron":"* * *"}' /cron 'expected 5 fields .* not 3'
bad "an unknown macro" '{"cron":"@fortnightly"}' /cron "'@fortnightly' is not one of"
bad "a bad interval" '{"cron":"@every 5d"}' /cron '@every takes an interval'
bad "an expression that never fires" '{"cron":"0 0 30 2 *"}' /cron 'never fires'
bad "an unknown zone" '{"cron":"@daily","timezone":"Mars/Olympus_Mons"}' /timezone \
  "'Mars/Olympus_Mons' is not a time zone"
bad "a zone that is a path" '{"cron":"@daily","timezone":"../../etc/passwd"}' /timezone 'is not a time zone'
bad "no cron" '{"name":"x"}' /cron 'is required'
bad "a bad type" '{"cron":"@daily","enabled":"yes"}' /enabled 'must be a boolean'
api POST "/api/v1/analyses/$a/schedules" '{"cron":"61 * * * * *","timezone":"Atlantis","catch_up":1,"x":2}'
check "every violation at once" "$status $(json -c '[.errors[].pointer] | sort')" \
  '422 ["/catch_up","/cron","/timezone","/x"]'
api POST "/api/v1/analyses/$a/schedules" '{"cron":'
check "invalid JSON: 400" "$status" 400

# --- another tenant's: 404
KEY=$other api GET "/api/v1/analyses/$a/schedules"
check "another tenant's analysis: list 404" "$status $(json -r .code)" "404 ANALYSIS_NOT_FOUND"
KEY=$other api POST "/api/v1/analyses/$a/schedules" '{"cron":"@daily"}'
check "another tenant's analysis: create 404" "$status $(json -r .code)" "404 ANALYSIS_NOT_FOUND"
for m in GET DELETE; do
  KEY=$other api $m "/api/v1/analyses/$a/schedules/$s2"
  check "another tenant's schedule: $m 404" "$status $(json -r .code)" "404 SCHEDULE_NOT_FOUND"
done
KEY=$other api PATCH "/api/v1/analyses/$a/schedules/$s2" '{"enabled":false}'
check "another tenant's schedule: PATCH 404" "$status $(json -r .code)" "404 SCHEDULE_NOT_FOUND"
b=$(new_analysis)
api GET "/api/v1/analyses/$b/schedules/$s2"
check "a schedule under another analysis: 404" "$status" 404
api GET "/api/v1/analyses/$a/schedules/not-a-uuid"
check "a schedule id that is no UUID: 404" "$status $(json -r .code)" "404 SCHEDULE_NOT_FOUND"
api GET "/api/v1/analyses/not-a-uuid/schedules"
check "an analysis id that is no UUID: 404" "$status $(json -r .code)" "404 ANALYSIS_NOT_FOUND"
api DELETE "/api/v1/analyses/$a/schedules/$s2"
check "delete: 204" "$status" 204
api GET "/api/v1/analyses/$a/schedules/$s2"
check "deleted: 404" "$status" 404
api DELETE "/api/v1/analyses/$a/schedules/$s2"
check "deleted twice: 404" "$status" 404
api PUT "/api/v1/analyses/$a/schedules/$s1"
check "a wrong method: 405 with Allow" "$status $(header Allow)" "405 GET, HEAD, PATCH, DELETE"

# --- three executors fire an @every 1s schedule: one run per tick
ex_pid() { cat "$ASSAY_STACK_DIR/run/assay-executor.pid"; }
pids=("$(ex_pid)")
for n in 2 3; do
  sed "s/^port = .*/port = $(free_port)/" "$conf" >"$tmp/executor$n.conf"
  assay-executor -c "$tmp/executor$n.conf" 2>"$tmp/executor$n.log" &
  pids+=($!)
done
# ticks SCHEDULE: its runs' ticks, epoch seconds, in order
ticks() { sql "SELECT extract(epoch FROM scheduled_for)::bigint FROM analysis_jobs WHERE schedule_id = '$1' ORDER BY 1"; }
# consecutive FIRST LAST TICKS...: true when the ticks are FIRST..LAST, each once
consecutive() { local f=$1 l=$2; shift 2; [ "$*" = "$(seq "$f" "$l" | tr '\n' ' ' | sed 's/ $//')" ]; }
in_range() { awk -v lo="$1" -v hi="$2" '$1 > lo && $1 <= hi' | tr '\n' ' ' | sed 's/ $//'; }

api POST "/api/v1/analyses/$a/schedules" '{"cron":"@every 1s","name":"every second","input":{"n":1}}'
every=$(json .schedule.id)
api POST "/api/v1/analyses/$a/schedules" '{"cron":"@every 1s","enabled":false}'
disabled=$(json .schedule.id)
# ten more at once, due at the same instants: the executors contend for them
crowd=()
for i in $(seq 1 10); do
  api POST "/api/v1/analyses/$a/schedules" "{\"cron\":\"*/1 * * * * *\",\"name\":\"crowd $i\"}"
  crowd+=("$(json .schedule.id)")
done
many() { [ "$(ticks "$every" | wc -l)" -ge 12 ]; }
eventually "three executors: twelve ticks fired" 300 many
api PATCH "/api/v1/analyses/$a/schedules/$every" '{"enabled":false}'
for s in "${crowd[@]}"; do api PATCH "/api/v1/analyses/$a/schedules/$s" '{"enabled":false}'; done
sleep 1.5
t=$(ticks "$every" | tr '\n' ' ' | sed 's/ $//')
set -- $t
check "three executors: no tick twice" \
  "$(sql "SELECT count(*) FROM (SELECT 1 FROM analysis_jobs WHERE schedule_id = '$every' GROUP BY scheduled_for HAVING count(*) > 1) d")" 0
if consecutive "$1" "${!#}" $t; then ok "three executors: $# ticks, one run each, no gap"
else fail "three executors: ticks with gaps or twice: $t"; fi
check "the runs: triggered by the schedule, its name and input" \
  "$(sql "SELECT DISTINCT triggered_by || ' ' || name || ' ' || input::text FROM analysis_jobs WHERE schedule_id = '$every'")" \
  'schedule every second {"n": 1}'
bad_crowd=0 crowd_runs=0
for s in "${crowd[@]}"; do
  t=$(ticks "$s" | tr '\n' ' ' | sed 's/ $//')
  set -- $t
  crowd_runs=$((crowd_runs + $#))
  [ $# -ge 5 ] && consecutive "$1" "${!#}" $t || { bad_crowd=$((bad_crowd + 1)); echo "# crowd $s: $t"; }
done
check "ten more schedules on the same seconds: each tick once, no gaps ($crowd_runs runs)" "$bad_crowd" 0
t=$(ticks "$every" | tr '\n' ' ' | sed 's/ $//')
set -- $t
for n in 1 2 3; do
  port=$(sed -n 's/^port = //p' "$([ $n = 1 ] && echo "$conf" || echo "$tmp/executor$n.conf")" | tail -1)
  fired[$n]=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "assay_executor_schedule_runs_total" { print $2 }')
done
ok "three executors: they made ${fired[1]:-?}, ${fired[2]:-?} and ${fired[3]:-?} of the runs"
sql "INSERT INTO analysis_jobs (project_id, analysis_id, analysis_version, name, schedule_id, scheduled_for)
     SELECT project_id, analysis_id, analysis_version, name, schedule_id, scheduled_for
     FROM analysis_jobs WHERE schedule_id = '$every' LIMIT 1" >"$tmp/dup.out" 2>&1
check_match "the database refuses a second run of a tick" "$(cat "$tmp/dup.out")" 'analysis_jobs_schedule_tick'
api GET "/api/v1/analyses/$a/schedules/$every"
last=$(json -r .schedule.last_run_id)
check "the schedule shows its last tick" \
  "$(date -u -d "$(json -r .schedule.last_scheduled_for)" +%s)" "${!#}"
api GET "/api/v1/runs/$last"
check "  and its last run" "$status $(json -r .run.name)" "200 every second"
check "a disabled schedule made no run" "$(ticks "$disabled" | wc -l)" 0
all_done() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE schedule_id = '$every' AND status <> 'completed'")" = 0 ]; }
eventually "the scheduled runs completed" 300 all_done

# --- every executor stopped for a few ticks: catch_up or not
api POST "/api/v1/analyses/$a/schedules" '{"cron":"@every 1s","catch_up":false}'
skip=$(json .schedule.id)
api POST "/api/v1/analyses/$a/schedules" '{"cron":"@every 1s","catch_up":true}'
catch=$(json .schedule.id)
api POST "/api/v1/analyses/$a/schedules" '{"cron":"* * * * * *","timezone":"America/New_York","catch_up":true}'
catch_cron=$(json .schedule.id)
some() { [ "$(ticks "$1" | wc -l)" -ge 2 ]; }
eventually "before the stop: ticks fired" 100 some "$catch"
kill -STOP "${pids[@]}"
sleep 8 # beyond the executors' window (2 poll intervals + 2 s): a gap
kill -CONT "${pids[@]}"
after() { [ "$(ticks "$1" | awk -v t="$(date +%s)" '$1 >= t - 1' | wc -l)" -ge 1 ]; }
eventually "after the restart: ticks fired" 100 after "$skip"
sleep 2
api PATCH "/api/v1/analyses/$a/schedules/$skip" '{"enabled":false}'
api PATCH "/api/v1/analyses/$a/schedules/$catch" '{"enabled":false}'
api PATCH "/api/v1/analyses/$a/schedules/$catch_cron" '{"enabled":false}'
sleep 1.5
read -r gap_from gap_to <<<"$(sql "SELECT floor(extract(epoch FROM gap_from))::bigint, floor(extract(epoch FROM gap_to))::bigint FROM schedule_clock" | tr '|' ' ')"
check_match "the clock recorded the gap (${gap_from}..${gap_to})" "$((gap_to - gap_from))" '^([7-9]|1[0-9])$'
ts=$(ticks "$skip" | tr '\n' ' '); tc=$(ticks "$catch" | tr '\n' ' ')
check "without catch_up: no run for a tick missed while no executor ran" \
  "$(printf '%s\n' $ts | in_range "$gap_from" "$gap_to")" ""
check "with catch_up: one run, for the latest missed tick" \
  "$(printf '%s\n' $tc | in_range "$gap_from" "$gap_to")" "$gap_to"
before=$(printf '%s\n' $ts | awk -v g="$gap_from" '$1 <= g' | tr '\n' ' ' | sed 's/ $//')
later=$(printf '%s\n' $ts | awk -v g="$gap_to" '$1 > g' | tr '\n' ' ' | sed 's/ $//')
set -- $before
if [ $# -ge 1 ] && consecutive "$1" "${!#}" $before; then ok "without catch_up: every tick before the gap ($#)"
else fail "without catch_up: ticks before the gap: $before"; fi
set -- $later
if [ $# -ge 1 ] && [ "$1" = $((gap_to + 1)) ] && consecutive "$1" "${!#}" $later; then
  ok "without catch_up: every tick after the gap ($#), from the first"
else fail "without catch_up: ticks after the gap (which ended at $gap_to): $later"; fi
for s in "$catch" "$catch_cron"; do
  what=$([ "$s" = "$catch" ] && echo "@every 1s" || echo "a cron expression")
  later=$(ticks "$s" | awk -v g="$gap_from" '$1 > g' | tr '\n' ' ' | sed 's/ $//')
  set -- $later
  if consecutive "$gap_to" "${!#}" $later; then ok "with catch_up ($what): the catch-up run, then every tick"
  else fail "with catch_up ($what): ticks from the gap on (which was $gap_from..$gap_to): $later"; fi
done

# --- deleting the analysis stops its schedules
c=$(new_analysis)
api POST "/api/v1/analyses/$c/schedules" '{"cron":"@every 1s"}'
gone=$(json .schedule.id)
eventually "a schedule of an analysis to delete fires" 100 some "$gone"
api DELETE "/api/v1/analyses/$c"
check "the analysis deleted" "$status" 204
n1=$(ticks "$gone" | wc -l)
sleep 2.5
check "no run after the analysis was deleted" "$(ticks "$gone" | wc -l)" "$n1"
check "its schedules are gone" "$(sql "SELECT count(*) FROM analysis_schedules WHERE analysis_id = '$c'")" 0
api GET "/api/v1/analyses/$c/schedules"
check "its schedules: 404" "$status $(json -r .code)" "404 ANALYSIS_NOT_FOUND"

# --- what a run says of its origin; a schedule never piles up waiting runs
api GET "/api/v1/runs/$last"
check "a scheduled run shows its schedule and tick" \
  "$(json -r '[.run.triggered_by, .run.schedule_id, .run.scheduled_for] | @tsv')" \
  "$(sql "SELECT 'schedule' || chr(9) || schedule_id || chr(9) || assay_ts(scheduled_for) FROM analysis_jobs WHERE id = '$last'")"
api POST /api/v1/runs "{\"name\":\"by hand\",\"analysis_id\":\"$a\"}"
check "a run made through the API says so, with no schedule" \
  "$(json -c '[.run.triggered_by, .run.schedule_id, .run.scheduled_for]')" '["api",null,null]'
if [ -n "$(sed -n 's/^node_path = //p' "$conf")" ]; then
  main_key=$KEY
  KEY=$(new_tenant "$name-free" free) # at most 2 running
  free_id=$(sql "SELECT id FROM tenants WHERE name = '$name-free'")
  long=$(analysis 'export default () => new Promise((ok) => setTimeout(ok, 15000));' ', runtime: "node"')
  holders=("$(submit "$long")" "$(submit "$long")")
  holding() { [ "$(sql "SELECT count(*) FROM analysis_jobs WHERE tenant_id = $free_id AND status = 'running'")" = 2 ]; }
  eventually "a free tenant's two runs hold its running cap" 200 holding
  d=$(new_analysis)
  api POST "/api/v1/analyses/$d/schedules" '{"cron":"@every 1s"}'
  piling=$(json .schedule.id)
  waiting() { sql "SELECT count(*) FROM analysis_jobs WHERE schedule_id = '$piling' AND status IN ('created', 'pending')"; }
  ten() { [ "$(waiting)" -ge 10 ]; }
  eventually "the schedule's runs wait behind the cap" 300 ten
  sleep 2.5
  check "no more than ten of its runs wait: later ticks make none" "$(waiting)" 10
  api GET "/api/v1/analyses/$d/schedules/$piling"
  check "  and the schedule moves on: its next run is not in the past" \
    "$(( $(date -u -d "$(json -r .schedule.next_run_at)" +%s) >= $(date +%s) - 1 ))" 1
  api PATCH "/api/v1/analyses/$d/schedules/$piling" '{"enabled":false}'
  for h in "${holders[@]}"; do api POST "/api/v1/runs/$h/cancel"; done
  drained() { [ "$(waiting)" = 0 ]; }
  eventually "once the cap frees, the waiting runs start" 300 drained
  KEY=$main_key
fi

# --- runs per hour, assayctl
made=$(sql "SELECT count(*) FROM analysis_jobs WHERE tenant_id = $tenant_id AND schedule_id IS NOT NULL")
w=$(($(date +%s) / 3600))
counted=$(( $(mc "get assay:rl:t:$tenant_id:runs:$w" | sed -n 2p) + $(mc "get assay:rl:t:$tenant_id:runs:$((w - 1))" | sed -n 2p) + 0 ))
check "scheduled runs count in the tenant's runs per hour" "$counted" "$made"
out=$(assayctl schedules list --tenant "$name")
check_match "assayctl schedules list: the tenant's schedules" "$out" "$s1 +$a +no catch-up +- "
check "assayctl schedules list: one line each, and a heading" "$(printf '%s\n' "$out" | wc -l)" \
  $(( $(sql "SELECT count(*) FROM analysis_schedules s JOIN projects p ON p.id = s.project_id WHERE p.tenant_id = $tenant_id") + 1 ))
check "assayctl schedules list: an unknown tenant is an error" \
  "$(assayctl schedules list --tenant "no-such-$$" 2>&1 >/dev/null; echo $?)" "assayctl: no such tenant
1"
finish
