# Scripts reach their project: ctx.files.list, .read and .search and
# ctx.fetch, in both runtimes, performed by the executor with the job's
# token. Text comes back as a string, bytes as a Uint8Array (byte-exact);
# another tenant's file is not found; ctx.fetch takes only the API's paths
# and says what the API answered; a run may make job_api_calls_max calls;
# with the API unreachable a call fails after its retries and the run with
# it; a 10 MiB file is read within the run's memory limit; no token is
# logged.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
conf=$ASSAY_STACK_DIR/conf/executor.conf
ex_pid() { cat "$ASSAY_STACK_DIR/run/assay-executor.pid"; }
KEY=$(new_tenant "calls$$" pro)
other=$(new_tenant "calls_other$$" pro)
put() { # PATH FILE TYPE [KEY]
  KEY=${4:-$KEY} api PUT "/api/v1/files/$1" --data-binary "@$2" -H "Content-Type: $3"
}
printf 'hello world from the docs\n' >"$tmp/a.txt"
head -c 4096 /dev/urandom >"$tmp/b.bin"
head -c 10485760 /dev/urandom >"$tmp/big.bin"
put docs/a.txt "$tmp/a.txt" text/plain
check "a text file stored" "$status" 201
put data/b.bin "$tmp/b.bin" application/octet-stream
put data/big.bin "$tmp/big.bin" application/octet-stream
check "a 10 MiB file stored" "$status" 201
printf 'secret of another tenant\n' >"$tmp/o.txt"
put docs/theirs.txt "$tmp/o.txt" text/plain "$other"
sum() { od -An -tu1 -v "$1" | tr -s ' ' '\n' | awk '{ s = (s + $1) % 1000000007 } END { print s }'; }
bsum=$(sum "$tmp/b.bin")

run() { # RUNTIME SCRIPT [extra members]: the run's outcome in $body
  local a r
  a=$(analysis "$2" ", runtime: \"$1\", memory_limit_mb: 256 ${3:-}")
  r=$(submit "$a")
  eventually "$1: the run finishes" 600 finished "$r" >/dev/null
  api GET "/api/v1/runs/$r"
}
js='function analyze(i, ctx) {
  var b = ctx.files.read("data/b.bin"), s = 0, k;
  for (k = 0; k < b.length; k++) s = (s + b[k]) % 1000000007;
  var other; try { ctx.files.read("docs/theirs.txt"); other = "read!"; } catch (e) { other = e.message; }
  var outside; try { ctx.fetch("http://127.0.0.1:1/x"); outside = "fetched!"; } catch (e) { outside = e.message; }
  return { text: ctx.files.read("docs/a.txt"), bytes: [b.length, s],
    list: ctx.files.list("docs/").map(function (f) { return f.path; }),
    search: ctx.files.search("hello").length, other: other, outside: outside,
    fetch: ctx.fetch("/api/v1/files?prefix=data/").status,
    forbidden: ctx.fetch("/api/v1/analyses").status };
}'
node='export default async function analyze(i, ctx) {
  const b = await ctx.files.read("data/b.bin");
  let s = 0; for (const x of b) s = (s + x) % 1000000007;
  const other = await ctx.files.read("docs/theirs.txt").then(() => "read!", (e) => e.message);
  const outside = await ctx.fetch("http://127.0.0.1:1/x").then(() => "fetched!", (e) => e.message);
  return { text: await ctx.files.read("docs/a.txt"), bytes: [b.length, s],
    list: (await ctx.files.list("docs/")).map((f) => f.path),
    search: (await ctx.files.search("hello")).length, other, outside,
    fetch: (await ctx.fetch("/api/v1/files?prefix=data/")).status,
    forbidden: (await ctx.fetch("/api/v1/analyses")).status };
}'
for rt in js node; do
  [ "$rt" = js ] && src=$js || src=$node
  run "$rt" "$src"
  check "$rt: completed" "$(json .run.status)/$(json .run.error_message)" "completed/null"
  check "$rt: a text file is a string" "$(json .run.result.text)" "hello world from the docs"
  check "$rt: a binary file is bytes, byte-exact" "$(json -c .run.result.bytes)" "[4096,$bsum]"
  check "$rt: list by prefix" "$(json -c .run.result.list)" '["docs/a.txt"]'
  check "$rt: search" "$(json .run.result.search)" 1
  check "$rt: another tenant's file is not found" "$(json .run.result.other)" "HTTP 404: Not Found"
  check_match "$rt: ctx.fetch takes only the API's paths" "$(json .run.result.outside)" 'path of the Assay API'
  check "$rt: ctx.fetch of a file listing" "$(json .run.result.fetch)" 200
  check "$rt: ctx.fetch of what a job may not do: 403" "$(json .run.result.forbidden)" 403
done

# A 10 MiB file, read within the run's memory limit.
run js 'function analyze(i, ctx) { return ctx.files.read("data/big.bin").length; }'
check "js: a 10 MiB file read" "$(json .run.result)" 10485760
run node 'export default async (i, ctx) => (await ctx.files.read("data/big.bin")).length;'
check "node: a 10 MiB file read" "$(json .run.result)" 10485760

# At most job_api_calls_max calls a run.
echo "job_api_calls_max = 3" >>"$conf"
kill -HUP "$(ex_pid)"
sleep 0.5
run js 'function analyze(i, ctx) { var n = 0;
  try { for (;;) { ctx.files.list(""); n++; } } catch (e) { return [n, e.message]; } }'
check_match "a run's calls are limited" "$(json -c .run.result)" '^\[3,"too many API calls'
sed -i '/^job_api_calls_max = 3$/d' "$conf"

# The API unreachable: retried, then the script sees the error, and an
# uncaught one fails the run with it.
dead=$(free_port)
echo "api_url = http://127.0.0.1:$dead" >>"$conf"
kill -HUP "$(ex_pid)"
sleep 0.5
run node 'export default async (i, ctx) => ctx.files.read("docs/a.txt");'
check_match "API down: the run fails with the call's error" "$(json .run.status) $(json .run.error_message)" '^failed .*fetch failed'
check_match "API down: the call was retried (4 attempts)" \
  "$(grep -c '"outbound request".*"attempt":4' "$ASSAY_STACK_DIR/log/assay-executor.log")" '^[1-9]'
sed -i "/^api_url = http:\/\/127.0.0.1:$dead\$/d" "$conf"
kill -HUP "$(ex_pid)"

check "no job token in any log" "$(grep -rlE 'eyJ[A-Za-z0-9_-]{10,}\.eyJ' "$ASSAY_STACK_DIR/log" | wc -l)" 0
rm -rf "$tmp"
finish
