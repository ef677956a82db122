# The HTTP surface browsers and proxies rely on: responses over 1 KiB
# gzipped for clients that accept it (level 6, Vary: Accept-Encoding),
# small ones and those asked for with X-No-Compression sent as they are,
# event streams never compressed nor held back; CORS for allowed origins,
# preflights included, on the API and on event streams; the web server's
# own errors as problem+json; ENABLE_API_DOCS and ENABLE_METRICS.
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
# get PATH [curl options]: the response's headers in $tmp/h, body in $tmp/b.
get() {
  local p=$1; shift
  curl -s -D "$tmp/h" -o "$tmp/b" -H "Authorization: Bearer $ASSAY_API_KEY" "$@" "$ASSAY_URL$p"
  tr -d '\r' <"$tmp/h" >"$tmp/headers"
}
hdr() { grep -i "^$1:" "$tmp/headers" | head -n 1 | cut -d' ' -f2-; }

get /openapi.json -H 'Accept-Encoding: gzip'
check "openapi.json: gzipped" "$(hdr Content-Encoding)" gzip
check_match "openapi.json: Vary" "$(hdr Vary)" 'Accept-Encoding'
check "openapi.json: the same document once inflated" "$(gzip -dc "$tmp/b" | cmp -s - "$srcdir/htdocs/openapi.json" && echo same)" same
ratio=$(( $(wc -c <"$tmp/b") * 100 / $(wc -c <"$srcdir/htdocs/openapi.json") ))
check_match "openapi.json: much smaller on the wire ($ratio%)" "$ratio" '^[1-3]?[0-9]$'

aid=$(new_analysis)
for i in $(seq 1 12); do api POST /api/v1/runs "{\"name\":\"gz$i\",\"analysis_id\":\"$aid\",\"start\":false}"; done
get '/api/v1/runs?limit=12' -H 'Accept-Encoding: gzip'
check "a list of 12 runs: gzipped" "$(hdr Content-Encoding)" gzip
check "a list of 12 runs: still the runs" "$(gzip -dc "$tmp/b" | jq '.runs | length')" 12
get '/api/v1/runs?limit=12' --compressed
check "curl --compressed reads it" "$(jq '.runs | length' "$tmp/b")" 12

get /live -H 'Accept-Encoding: gzip'
check "a small response: not compressed" "$(hdr Content-Encoding)" ""
get /openapi.json -H 'Accept-Encoding: gzip' -H 'X-No-Compression: 1'
check "X-No-Compression: static file as it is" "$(hdr Content-Encoding)" ""
get '/api/v1/runs?limit=12' -H 'Accept-Encoding: gzip' -H 'X-No-Compression: 1'
check "X-No-Compression: API response as it is" "$(hdr Content-Encoding)" ""
check "X-No-Compression: still the runs" "$(jq '.runs | length' "$tmp/b")" 12

# An event stream asked for with gzip: not compressed, and each event
# arrives when it happens (the run logs, works 1.5 s, then completes).
api POST /api/v1/analyses '{"title":"slow","script":"function analyze(i, ctx) { ctx.log(\"info\", \"first\"); var t = Date.now(); while (Date.now() - t < 1500) {} return 1; }"}'
api POST /api/v1/runs "{\"name\":\"gz-sse\",\"analysis_id\":\"$(json .analysis.id)\"}"
run=$(json .run.id)
timeout 30 curl -sN -D "$tmp/sse-h" -H 'Accept-Encoding: gzip' -H "Authorization: Bearer $ASSAY_API_KEY" \
  "$ASSAY_URL/api/v1/runs/$run/events" |
  while IFS= read -r line; do case $line in event:*) echo "$(date +%s%N) ${line#event: }" ;; esac; done >"$tmp/arrivals"
check "event stream: not compressed" "$(tr -d '\r' <"$tmp/sse-h" | grep -ci '^content-encoding')" 0
first=$(awk '$2 == "log" { print $1 }' "$tmp/arrivals")
last=$(awk '$2 == "completed" { print $1 }' "$tmp/arrivals")
check_match "event stream: the log event came about 1.5 s before the end" "$(( (${last:-0} - ${first:-0}) / 1000000 ))" '^(1[0-9]{3}|[2-9][0-9]{3})$'
# CORS: the development stack allows http://localhost:3000 (cors_allow_origins).
front=http://localhost:3000
get /api/v1/runs -H "Origin: $front"
check "CORS: an allowed origin is named" "$(hdr Access-Control-Allow-Origin)" "$front"
check_match "CORS: the headers a client needs are exposed" "$(hdr Access-Control-Expose-Headers)" \
  'X-Request-ID, Location, Retry-After, ETag.*RateLimit'
check_match "CORS: caches keep origins apart" "$(grep -i '^vary:' "$tmp/headers" | tr '\n' ' ')" 'Origin'
get /api/v1/runs -H 'Origin: http://elsewhere.example'
check "CORS: another origin is not" "$(hdr Access-Control-Allow-Origin)" ""
pre() { curl -s -D "$tmp/h" -o /dev/null -X OPTIONS -H "Origin: $1" -H 'Access-Control-Request-Method: POST' \
  -H 'Access-Control-Request-Headers: authorization, content-type, idempotency-key' "$ASSAY_URL$2"
  tr -d '\r' <"$tmp/h" >"$tmp/headers"; }
pre "$front" /api/v1/runs
check "preflight: 204" "$(head -n 1 "$tmp/headers" | cut -d' ' -f2)" 204
check "preflight: the origin" "$(hdr Access-Control-Allow-Origin)" "$front"
check_match "preflight: the route's methods" "$(hdr Access-Control-Allow-Methods)" 'GET.*POST|POST.*GET'
check_match "preflight: the request headers" "$(hdr Access-Control-Allow-Headers)" 'Authorization.*Content-Type.*Idempotency-Key'
check "preflight: may be cached" "$(hdr Access-Control-Max-Age)" 600
pre http://elsewhere.example /api/v1/runs
check "preflight from another origin: no permission" "$(hdr Access-Control-Allow-Origin)" ""
pre "$front" "/api/v1/runs/$run/events"
check "preflight of an event stream: 204 from assay-stream" \
  "$(head -n 1 "$tmp/headers" | cut -d' ' -f2) $(hdr Access-Control-Allow-Methods)" "204 GET"
curl -s -D "$tmp/h" -o /dev/null --max-time 5 -H "Origin: $front" -H "Authorization: Bearer $ASSAY_API_KEY" \
  "$ASSAY_URL/api/v1/runs/$run/events"
tr -d '\r' <"$tmp/h" >"$tmp/headers"
check "an event stream names the allowed origin" "$(hdr Access-Control-Allow-Origin)" "$front"

# Errors the web server answers itself are problem+json, as the API's are.
# ask [curl options] PATH, or raw REQUEST (bytes on a fresh connection):
# the answer's headers in $tmp/headers, its body in $tmp/b.
split_answer() {
  : >"$tmp/b"
  tr -d '\r' <"$tmp/resp" |
    awk -v h="$tmp/headers" -v b="$tmp/b" 'body { print >b; next } /^$/ { body = 1; next } { print >h }'
}
ask() {
  local p=${*: -1}
  curl -s -i -H 'Expect:' "${@:1:$#-1}" "$ASSAY_URL$p" >"$tmp/resp"
  split_answer
}
hostport=${ASSAY_URL#http://}
raw() {
  timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf "$3" >&3; cat <&3' _ \
    "${hostport%:*}" "${hostport##*:}" "$1" >"$tmp/resp"
  split_answer
}
# is_problem WHAT STATUSES: the answer has one of the statuses (a regular
# expression), is application/problem+json, and its body says the same.
is_problem() {
  local st; st=$(head -n 1 "$tmp/headers" | cut -d' ' -f2)
  check_match "$1: $st" "$st" "^($2)$"
  check "$1: application/problem+json" "$(hdr Content-Type)" application/problem+json
  check "$1: the body's status" "$(jq -r .status "$tmp/b" 2>/dev/null)" "$st"
  check "$1: type, title and detail" \
    "$(jq -r '[.type, .title, .detail, .code] | map(type == "string" and length > 0) | all' "$tmp/b" 2>/dev/null)" true
}
for f in "$srcdir"/errors/problem-*.html; do
  n=${f##*problem-}; n=${n%.html}
  check "errors/problem-$n.html: a problem with status $n" "$(jq -r .status "$f" 2>/dev/null)" "$n"
done
ask /no-such-file.html
is_problem "a static path with no file" 404
ask /api-docs/dist/no-such-file.js
is_problem "an aliased path with no file" 404
ask -X FOO /index.html
is_problem "an unknown method on a static file (lighttpd 501, nginx 405)" '405|501'
ask -X POST -H 'Transfer-Encoding: bogus' -d x /api/v1/runs
is_problem "an unknown Transfer-Encoding" 501
ask -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' a)" /live
is_problem "headers over the server's limit" 431
ask "/live?q=$(head -c 70000 /dev/zero | tr '\0' a)"
is_problem "a URI over the server's limit (lighttpd counts it as a header)" '414|431'
head -c 1100000 /dev/zero >"$tmp/big"
ask -X POST -H "Authorization: Bearer $ASSAY_API_KEY" -H 'Content-Type: application/json' \
  --data-binary @"$tmp/big" /api/v1/runs
is_problem "a body over the server's limit (client_max_body_size, max-request-size)" 413
ask -H 'Range: bytes=99999999-' /index.html
is_problem "a range beyond the file" 416
raw 'GARBAGE\r\n\r\n'
is_problem "a malformed request line" 400
raw 'GET /live HTTP/1.1\r\nHost: x\r\nno colon here\r\nConnection: close\r\n\r\n'
is_problem "a malformed header" 400
raw 'POST /api/v1/runs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n'
is_problem "a malformed Content-Length" 400
raw 'GET /live HTTP/3.0\r\n\r\n'
is_problem "an HTTP version it does not speak" 505
# lighttpd wants a length for a POST; nginx takes none as an empty body
# and passes the request on (assay-api then asks for a key).
raw 'POST /api/v1/runs HTTP/1.0\r\n\r\n'
is_problem "a POST without Content-Length (lighttpd 411)" '411|401'
# What assay-api answers passes as it is: its detail and request id stay.
ask /api/v1/no-such-route
is_problem "assay-api's own 404" 404
check_match "assay-api's own 404: its body, not the web server's" \
  "$(jq -r '"\(.request_id) \(.detail)"' "$tmp/b")" '^[0-9a-f]{32} no resource at /api/v1/no-such-route$'

# assay-api stopped: the web server's 502 (nginx) or 503 (lighttpd) is a
# problem too. Then assay-api with ENABLE_API_DOCS=false and
# ENABLE_METRICS=false, which override the stack's assay.conf (both on):
# the API reference and /metrics are 404, behind either web server.
api_pid=$(cat "$ASSAY_STACK_DIR/run/assay-api.pid")
kill -TERM "$api_pid"
api_gone() { ! running "$api_pid"; }
eventually "assay-api stopped" 100 api_gone
ask /health
is_problem "assay-api unreachable" '502|503'
ENABLE_API_DOCS=false ENABLE_METRICS=false assay-api -c "$ASSAY_STACK_DIR/conf/assay.conf" \
  >>"$tmp/api.log" 2>&1 &
off_pid=$!
answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$ASSAY_URL$1")" = "$2" ]; }
eventually "assay-api serves again (docs and metrics off)" 100 answers /live 200
for p in /openapi.json /api-docs/ /api-docs /api-docs/index.html /openapi.json/x \
  /api-docs/index.html/x /metrics; do
  ask "$p"
  is_problem "off: $p" 404
done
check_match "off: the reason is given" "$(jq -r .detail "$tmp/b")" 'metrics = false'
ask /api-docs/
check_match "off: the reason is given" "$(jq -r .detail "$tmp/b")" 'api_docs = false'
kill -TERM "$off_pid"
wait "$off_pid" 2>/dev/null
stack_up
eventually "docs back on with the stack's assay-api" 100 answers /openapi.json 200
eventually "metrics back on" 100 answers /metrics 200
ask /api-docs/
check "on: /api-docs/ is Swagger UI's page" "$(grep -c swagger-ui-bundle.js "$tmp/b")" 1
rm -rf "$tmp"
finish
