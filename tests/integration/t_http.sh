# The HTTP surface the web servers add: responses over 1 KiB gzipped for
# clients that accept it (level 6, Vary: Accept-Encoding), small ones and
# those asked for with X-No-Compression sent as they are, and event
# streams never compressed nor held back.
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
rm -rf "$tmp"
finish
