# assay-api -t, errors with file and line, environment overrides with
# secrets masked, and serving on a socket inherited as fd 0.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
out=$(assay-api -t -c "$srcdir/etc/assay/assay.conf"); rc=$?
check "the sample config passes -t" "$rc" 0
check_match "-t says ok" "$out" "configuration ok"

printf '[api]\nworkers = 0\nbogus = 1\nlog_level = loud\n' >"$tmp/bad.conf"
out=$(assay-api -t -c "$tmp/bad.conf" 2>&1); rc=$?
check "a bad config fails -t" "$rc" 1
check_match "bad value with file and line" "$out" "$tmp/bad.conf:2: workers: '0' is out of range \(1..256\)"
check_match "unknown key with file and line" "$out" "$tmp/bad.conf:3: unknown key 'bogus' in \[api\]"
check_match "bad enum with choices" "$out" "$tmp/bad.conf:4: log_level: 'loud' is not one of the allowed values \(debug, info, warn, error\)"

out=$(DATABASE_URL=postgresql://app:hunter2@db.internal/assay assay-api -t -c "$srcdir/etc/assay/assay.conf")
check_match "DATABASE_URL overrides the file" "$out" "database_url = user='app' password='\*\*\*' dbname='assay' host='db.internal'"
case $out in *hunter2*) fail "-t prints the password" ;; *) ok "-t masks the password" ;; esac
# Every form libpq reads a password in is masked: a query parameter, a
# quoted keyword value with a space.
for url in "postgresql://app@db.internal/assay?password=hunter2" "host=db password='hunter2 more' dbname=assay"; do
  out=$(DATABASE_URL=$url assay-api -t -c "$srcdir/etc/assay/assay.conf")
  case $out in *hunter2*|*more*) fail "-t prints the password of $url" ;; *) ok "-t masks the password of ${url%%\?*}" ;; esac
done
out=$(LOG_LEVEL=loud assay-api -t -c "$srcdir/etc/assay/assay.conf" 2>&1); rc=$?
check "a bad LOG_LEVEL fails" "$rc" 1
check_match "and names the variable" "$out" "environment LOG_LEVEL"

out=$(assay-api -c "$tmp/missing.conf" 2>&1); rc=$?
check "a missing -c file fails" "$rc" 1
check_match "and says so" "$out" "missing.conf: cannot open"

# No listen address and no socket on fd 0: refuse to start.
printf '[api]\nlisten =\n' >"$tmp/fd0.conf"
out=$(assay-api -c "$tmp/fd0.conf" </dev/null 2>&1); rc=$?
check "no socket: exits 1" "$rc" 1
check_match "no socket: says why" "$out" "fd 0 is not a listening socket"

# The socket inherited on fd 0, as lighttpd's bin-path or spawn-fcgi pass it.
printf '[api]\nlisten =\nworkers = 2\ndatabase_url = %s\n' "$DATABASE_URL" >"$tmp/fd0.conf"
spawn-fcgi -n -s "$tmp/fd0.sock" -- "$(command -v assay-api)" -c "$tmp/fd0.conf" 2>"$tmp/fd0.log" &
spawned=$!
sock_ready() { [ -S "$tmp/fd0.sock" ]; }
eventually "fd 0 socket created" 50 sock_ready
fcgi_live() {
  env -i REQUEST_METHOD=GET REQUEST_URI=/live SERVER_PROTOCOL=HTTP/1.1 \
    cgi-fcgi -bind -connect "$tmp/fd0.sock" | grep -q '^Status: 200'
}
eventually "serves on the socket inherited as fd 0" 50 fcgi_live
kill -TERM "$spawned"
wait "$spawned" 2>/dev/null
check_match "fd 0 mode logged" "$(cat "$tmp/fd0.log")" "inherited as fd 0"
rm -rf "$tmp"
finish
