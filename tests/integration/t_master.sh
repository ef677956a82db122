# The prefork master: replaces killed workers (with backoff when they crash
# in a loop), keeps serving through a broken SIGHUP, applies a good one by
# replacing its workers, and stops cleanly on SIGTERM leaving no process.
. "$(dirname "$0")/lib.sh"

conf=$ASSAY_STACK_DIR/conf/assay.conf
master=$(cat "$ASSAY_STACK_DIR/run/assay-api.pid")
workers() { pgrep -P "$master" | sort; }
nworkers() { workers | wc -l; }
serving() {
  local i
  for i in 1 2 3 4 5 6 7 8; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$ASSAY_URL/live")" = 200 ] || return 1
  done
}
count_is() { [ "$(nworkers)" = "$1" ]; }

eventually "4 workers running" 50 count_is 4

# A worker killed with SIGKILL is replaced.
log_mark
victim=$(workers | head -n 1)
kill -KILL "$victim"
replaced() { count_is 4 && ! workers | grep -qx "$victim"; }
eventually "SIGKILLed worker replaced" 50 replaced
check_match "the death is logged" "$(log_since | grep -m1 "pid $victim")" "killed by signal 9"
serving && ok "serving after the kill" || fail "not serving after the kill"

# Kill the replacement of one slot again and again: the restart backs off.
newest() { ps -o pid= --sort=start_time --ppid "$master" | tail -n 1 | tr -d ' '; }
log_mark
for i in 1 2 3; do
  sleep 0.3
  pid=$(newest)
  kill -KILL "$pid"
  sleep 0.05
  gone() { ! running "$pid"; }
  eventually "crash $i reaped" 20 gone >/dev/null
done
eventually "crash-looping slot restarted" 50 count_is 4
check_match "backoff grows" "$(log_since | grep -c 'restarting in [1-9][0-9]* ms')" '^[1-9]'
check_match "backoff doubles" "$(log_since | grep -o 'restarting in [0-9]* ms' | tail -n 1)" 'restarting in (200|400|800|1600) ms'

# SIGHUP with a broken file: logged, old config and workers kept.
cp "$conf" "$conf.good"
before=$(workers)
printf 'bogus_key = 1\nworkers = 0\n' >>"$conf"
log_mark
kill -HUP "$master"
logged_failure() { log_since | grep -q 'reload failed'; }
eventually "broken reload logged" 50 logged_failure
check_match "broken reload names file and line" "$(log_since | grep -m1 bogus_key)" "assay.conf:[0-9]+: unknown key 'bogus_key'"
check "broken reload keeps the workers" "$(workers)" "$before"
serving && ok "serving after a broken reload" || fail "not serving after a broken reload"

# SIGHUP with a good file: the workers are replaced with the new count.
cp "$conf.good" "$conf"
printf '[api]\nworkers = 2\n' >>"$conf"
kill -HUP "$master"
two_new() { count_is 2 && [ -z "$(comm -12 <(workers) <(printf '%s\n' "$before"))" ]; }
eventually "good reload: 2 new workers" 100 two_new
serving && ok "serving after a good reload" || fail "not serving after a good reload"
cp "$conf.good" "$conf"
kill -HUP "$master"
eventually "reload back to 4 workers" 100 count_is 4

# SIGTERM: the master and every worker exit; the socket is removed.
all=$(workers)
log_mark
kill -TERM "$master"
master_gone() { ! running "$master"; }
eventually "master exits on SIGTERM" 150 master_gone
orphans=""
for p in $all; do running "$p" && orphans="$orphans $p"; done
check "no worker outlives the master" "$orphans" ""
check_match "clean exit logged" "$(log_since | tail -n 1)" "all workers stopped; exiting"
[ ! -e "$ASSAY_STACK_DIR/run/api.sock" ] && ok "socket removed" || fail "socket left behind"

stack_up
eventually "restarted by tools/stack up" 50 serving
finish
