# /api-docs: Swagger UI from swagger-ui-dist, pointed at /openapi.json. A
# headless Chromium authorizes with a key and runs "Try it out" on
# POST /api/v1/runs; the run must exist afterwards. The screenshot is kept
# under the stack's directory (swagger.png).
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/chromium ] || { fail "chromium missing (tools/stack check installs it)"; finish; }
[ -d "$ASSAY_NODE_MODULES/playwright-core" ] ||
  { fail "playwright-core missing (tools/stack check installs it)"; finish; }

http GET /api-docs/
check "/api-docs/ serves the page" "$status" 200
check_match "it loads Swagger UI" "$body" 'swagger-ui-bundle.js'
http GET /api-docs/dist/swagger-ui-bundle.js
check "Swagger UI's script is served" "$status" 200

analysis=$(new_analysis)
shot=$ASSAY_STACK_DIR/swagger.png
out=$(timeout 120 node "$here/swagger-try.mjs" "$ASSAY_URL" "$ASSAY_API_KEY" "$analysis" "$shot" 2>&1)
check_match "Try it out on POST /runs shows 201" "$out" '^201'
[ -s "$shot" ] && ok "screenshot saved: $shot" || fail "no screenshot"
check "the run was created" "$(sql "SELECT count(*) FROM analysis_jobs WHERE name = 'from swagger ui' AND analysis_id = '$analysis'")" 1
finish
