# The OpenAPI document: it lists exactly the routes of assay-api's table
# and assay-stream's,
# passes the redocly linter, and is served by the web server. (Responses
# recorded by all tests are checked against it at the end of the suite.)
. "$(dirname "$0")/lib.sh"
doc=$srcdir/htdocs/openapi.json
[ -d "$ASSAY_NODE_MODULES" ] ||
  { fail "node tools missing in $ASSAY_NODE_MODULES (tools/stack check installs them)"; finish; }

table=$( { assay-api --routes; assay-stream --routes; } | awk '{ sub(/,/, "", $1); print $1, $NF }' | sort)
documented=$(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | "\(ascii_upcase) \($p)"' "$doc" | sort)
check "every route is documented" "$(comm -23 <(echo "$table") <(echo "$documented"))" ""
check "every documented operation is routed" "$(comm -13 <(echo "$table") <(echo "$documented"))" ""
check "OpenAPI 3.1" "$(jq -r .openapi "$doc")" 3.1.0
check "auth schemes documented" "$(jq -r '.components.securitySchemes | keys | join(",")' "$doc")" apiKey,bearer,streamToken
check "rate-limit headers documented" "$(jq -r '.components.headers | has("X-RateLimit-Limit") and has("RateLimit-Policy") and has("Retry-After")' "$doc")" true

out=$("$ASSAY_NODE_MODULES/.bin/redocly" lint --format=stylish "$doc" 2>&1); rc=$?
check "redocly lint passes" "$rc" 0
check_match "redocly: no warnings" "$out" "valid|Woohoo"
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -20

http GET /openapi.json
check "served at /openapi.json" "$status" 200
check_match "as JSON" "$(header Content-Type)" '^application/json'
check "the same document" "$(json .info.title)" "Assay API"
finish
