# The HTTP surface browsers and proxies rely on: responses over 1 KiB
# gzipped for clients that accept it (level 6, Vary: Accept-Encoding),
# small ones and those asked for with X-No-Compression sent as they are,
# event streams never compressed nor held back; CORS for allowed origins,
# preflights included, on the API and on event streams.
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
rm -rf "$tmp"
finish
