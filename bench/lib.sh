# Shared by the benchmarks: sourced, not run. Needs $top and $ASSAY_BUILDDIR.
# Sourcing only defines; a benchmark calls bench_init first, which installs
# what benchmarks need and removes what they started when it exits.

# shellcheck source=tools/lib.sh
. "$top/tools/lib.sh"

bench_init() {
  ensure_packages wrk
  trap bench_cleanup EXIT
}

bench_pids=()
bench_dirs=()
bench_cleanup() {
  local p d
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${bench_dirs[@]}"; do "$top/tools/stack" down --purge --dir "$d" >/dev/null 2>&1; done
}

# A fresh stack behind SERVER in DIR, removed on exit.
bench_stack() { # SERVER DIR
  "$top/tools/stack" down --purge --dir "$2" >/dev/null 2>&1
  bench_dirs+=("$2")
  "$top/tools/stack" up --server "$1" --dir "$2" >/dev/null 2>&1
}

# The baseline: a second instance of the stack's web server with the very
# same configuration, pointed at bench/trivial-fcgi (or PROGRAM, another
# build of it) with as many processes as assay-api has workers. Sets
# trivial_port. (Not for $(...): its background processes must be
# remembered here and must not hold a pipe.)
trivial_server() { # SERVER DIR PROCESSES [PROGRAM]
  local server=$1 dir=$2 prog=${4:-trivial-fcgi} port conf f i
  "$ASSAY_BUILDDIR/bench/$prog" "$dir/run/$prog.sock" "$3" >/dev/null 2>&1 &
  bench_pids+=($!)
  port=$(free_port)
  conf=$dir/conf/$prog
  mkdir -p "$conf"
  for f in "$dir"/conf/"$server"*.conf; do
    sed -e "s|$dir/run/api.sock|$dir/run/$prog.sock|g" \
        -e "s|$dir/conf/$server-assay.conf|$conf/$server-assay.conf|g" \
        -e "s|$dir/run/$server.pid|$dir/run/$prog-$server.pid|g" \
        -e "s|port = [0-9]*|port = $port|; s|listen 127.0.0.1:[0-9]*;|listen 127.0.0.1:$port;|" \
        "$f" >"$conf/$(basename "$f")"
  done
  if [ "$server" = lighttpd ]; then
    lighttpd -D -f "$conf/lighttpd.conf" >/dev/null 2>&1 &
  else
    nginx -e "$dir/log/nginx-error.log" -c "$conf/nginx.conf" -p "$dir/nginx" \
      -g 'daemon off;' >/dev/null 2>&1 &
  fi
  bench_pids+=($!)
  for i in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/live" >/dev/null && break; sleep 0.1; done
  trivial_port=$port
}

# wrk [options] URL -> "req/s p99_ms non2xx p50_ms"
load() {
  wrk --latency "$@" | awk '
    /Requests\/sec/ { rps = $2 }
    /Non-2xx or 3xx responses/ { bad = $5 }
    function ms(v,  u) { u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+/, "", v)
                         return (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    END { printf "%.0f %.2f %d %.3f\n", rps, p99, bad, p50 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", a * 100 / b }'; }

median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

# CPU time (user + system) used so far by the processes PID..., in µs.
cpu_us() {
  local p t=0 hz
  hz=$(getconf CLK_TCK)
  for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  echo $((t * 1000000 / hz))
}
