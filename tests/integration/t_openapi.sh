# The OpenAPI document: it lists exactly the routes of assay-api's table
# and assay-stream's (HEAD included), says what a wrong method gets, passes
# the redocly and Spectral linters, makes a TypeScript client (openapi-typescript
# and openapi-fetch) with which the README's flow type-checks and runs, and
# is served by the web server. (Responses recorded by all tests are checked
# against it at the end of the suite.)
. "$(dirname "$0")/lib.sh"
doc=$srcdir/htdocs/openapi.json
[ -d "$ASSAY_NODE_MODULES" ] ||
  { fail "node tools missing in $ASSAY_NODE_MODULES (tools/stack check installs them)"; finish; }

# "GET, HEAD /path": one line per method. The document itself and Swagger
# UI are no operations of the API.
table=$( { assay-api --routes; assay-stream --routes; } |
  awk '$NF !~ /^\/(openapi\.json|api-docs)/ { for (i = 1; i < NF; i++) { m = $i; sub(/,/, "", m); print m, $NF } }' |
  sort -u)
documented=$(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | "\(ascii_upcase) \($p)"' "$doc" | sort)
check "every route is documented" "$(comm -23 <(echo "$table") <(echo "$documented"))" ""
check "every documented operation is routed" "$(comm -13 <(echo "$table") <(echo "$documented"))" ""
check "OpenAPI 3.1" "$(jq -r .openapi "$doc")" 3.1.0
check "auth schemes documented" "$(jq -r '.components.securitySchemes | keys | join(",")' "$doc")" apiKey,bearer,jobId,jobProject,jobToken,streamToken
check "rate-limit headers documented" "$(jq -r '.components.headers | has("X-RateLimit-Limit") and has("RateLimit-Policy") and has("Retry-After")' "$doc")" true

check "every operation has a description" \
  "$(jq -r '[.paths[][] | select((.description // "") == "")] | length' "$doc")" 0
check "every 201 names what it created (Location)" \
  "$(jq -r '[.paths[][].responses["201"] // empty | select(.headers.Location == null)] | length' "$doc")" 0

# Linters, from the source tree: .redocly.lint-ignore.yaml and .spectral.yaml are there.
bin=$ASSAY_NODE_MODULES/.bin
out=$(cd "$srcdir" && "$bin/redocly" lint --format=stylish htdocs/openapi.json 2>&1); rc=$?
check "redocly lint passes" "$rc" 0
check "redocly: no warnings" "$(printf '%s\n' "$out" | grep -c 'warning ')" 0
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -20
out=$(cd "$srcdir" && "$bin/spectral" lint --fail-severity=hint --ruleset .spectral.yaml htdocs/openapi.json 2>&1); rc=$?
check "spectral:oas reports nothing" "$rc" 0
[ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -20

# A TypeScript client generated with the defaults: the README's flow
# type-checks under --strict (no emit on a type error) and runs.
tmp=$(mktemp -d)
ln -s "$ASSAY_NODE_MODULES" "$tmp/node_modules"
out=$("$bin/openapi-typescript" "$doc" -o "$tmp/schema.d.ts" 2>&1)
check "openapi-typescript generates a client" "$?" 0
cp "$here/openapi-flow.mts" "$tmp/"
out=$("$bin/tsc" --strict --noEmitOnError --target es2022 --module nodenext \
  --outDir "$tmp/out" "$tmp/openapi-flow.mts" 2>&1)
check "the flow type-checks (tsc --strict)" "$?" 0
[ -z "$out" ] || printf '%s\n' "$out" | head -20
if [ -f "$tmp/out/openapi-flow.mjs" ]; then
  out=$(cd "$tmp" && timeout 60 node out/openapi-flow.mjs 2>&1)
  check "the flow runs through openapi-fetch" "$?" 0
  check "to its last step" "$(printf '%s\n' "$out" | tail -n 1)" "ok   create an events token: 201"
  printf '%s\n' "$out" | grep -v '^ok ' | head -20
fi
rm -rf "$tmp"

# Methods: each path answers those documented (HEAD as GET does), any other
# gets 405 naming them in Allow, OPTIONS 204 with the same Allow.
allowed() { header Allow | tr -d ' ' | tr ',' '\n' | sort | paste -sd, | sed 's/,/, /g'; }
aid=$(new_analysis)
api POST /api/v1/runs "{\"name\":\"openapi\",\"analysis_id\":\"$aid\"}"
rid=$(json .run.id)
api POST "/api/v1/analyses/$aid/schedules" '{"cron":"@yearly","enabled":false}'
sid=$(json .schedule.id)
for p in $(jq -r '.paths | keys[]' "$doc"); do
  path=${p//\{id\}/$aid}
  case $p in /api/v1/runs/*) path=${p//\{id\}/$rid} ;; esac
  path=${path//\{path\}/openapi/a.txt}
  path=${path//\{sid\}/$sid}
  allow=$(jq -r --arg p "$p" '.paths[$p] | keys | map(ascii_upcase) | sort | join(", ")' "$doc")
  wrong=PUT
  case ", $allow," in *", PUT,"*) wrong=PATCH ;; esac
  api "$wrong" "$path" -d ''
  check "$wrong $p: 405" "$status" 405
  check "$wrong $p: Allow" "$(allowed)" "$allow"
  ASSAY_RESPONSES='' api OPTIONS "$path"
  check "OPTIONS $p: 204 with the same Allow" "$status $(allowed)" "204 $allow"
  if jq -e --arg p "$p" '.paths[$p].head' "$doc" >/dev/null; then
    api GET "$path"
    get=$status
    api HEAD "$path"
    check "HEAD $p: as GET, without a body" "$status ${#body}" "$get 0"
  fi
done

http GET /openapi.json
check "served at /openapi.json" "$status" 200
check_match "as JSON" "$(header Content-Type)" '^application/json'
check "the same document" "$(json .info.title)" "Assay API"
finish
