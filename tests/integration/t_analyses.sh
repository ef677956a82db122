# Analyses: create with defaults, validation, get, update with versions,
# keyset listing, soft delete; request body errors (400, 413, 415, 422).
. "$(dirname "$0")/lib.sh"

api POST /api/v1/analyses '{"title":"Sum","script":"function analyze(i) { return i.a + i.b; }"}'
check "create: 201" "$status" 201
id=$(json .analysis.id)
check "create: Location" "$(header Location)" "/api/v1/analyses/$id"
check "create: defaults runtime" "$(json .analysis.runtime)" js
check "create: default timeout" "$(json .analysis.timeout_ms)" 30000
check "create: version 1" "$(json .analysis.version)" 1

api POST /api/v1/analyses '{"runtime":"python","timeout_ms":5,"max_attempts":0}'
check "invalid: 422" "$status" 422
check "invalid: code" "$(json .code)" VALIDATION_FAILED
check "invalid: every violation" "$(json '[.errors[].pointer] | sort | join(",")')" "/max_attempts,/runtime,/script,/timeout_ms,/title"

tmp=$(mktemp -d)
{ printf '{"title":"big","script":"'; head -c 140000 /dev/zero | tr '\0' x; printf '"}'; } >"$tmp/big.json"
api POST /api/v1/analyses "@$tmp/big.json"
check "script over the limit: 422" "$status" 422
check "script over the limit: pointer" "$(json '.errors[0].pointer')" /script

api GET "/api/v1/analyses/$id"
check "get: 200" "$status" 200
check "get: title" "$(json .analysis.title)" Sum
api GET /api/v1/analyses/not-a-uuid
check "get malformed id: 404" "$status" 404
api GET /api/v1/analyses/00000000-0000-0000-0000-000000000000
check "get unknown id: 404" "$status" 404
check "404 code" "$(json .code)" ANALYSIS_NOT_FOUND

api PATCH "/api/v1/analyses/$id" '{"title":"Sum 2"}'
check "patch title: 200" "$status" 200
check "patch title: same version" "$(json .analysis.version)" 1
api PATCH "/api/v1/analyses/$id" '{"script":"function analyze(i) { return i.a * i.b; }"}'
check "patch script: new version" "$(json .analysis.version)" 2
api PATCH "/api/v1/analyses/$id" '{"script":"function analyze(i) { return i.a * i.b; }"}'
check "same script again: no new version" "$(json .analysis.version)" 2
api PATCH "/api/v1/analyses/$id" '{"timeout_ms":"long"}'
check "patch invalid: 422" "$status" 422
api GET "/api/v1/analyses/$id/versions"
check "versions: 200" "$status" 200
check "versions: newest first" "$(json '[.versions[].version] | join(",")')" "2,1"
check_match "versions keep scripts" "$(json '.versions[1].script')" 'i.a \+ i.b'

for n in 1 2 3; do api POST /api/v1/analyses "{\"title\":\"page $n\",\"script\":\"x\"}"; done
api GET '/api/v1/analyses?limit=2'
check "list: 2 per page" "$(json '.analyses | length')" 2
first=$(json '[.analyses[].id] | join(",")')
cursor=$(json .next_cursor)
api GET "/api/v1/analyses?limit=2&cursor=$cursor"
second=$(json '[.analyses[].id] | join(",")')
case ",$first," in *",${second%%,*},"*) fail "list: pages overlap" ;; *) ok "list: pages do not overlap" ;; esac
api GET '/api/v1/analyses?limit=101'
check "list: limit over 100 is 400" "$status" 400
api GET '/api/v1/analyses?cursor=bogus'
check "list: bad cursor is 400" "$status" 400

api DELETE "/api/v1/analyses/$id"
check "delete: 204" "$status" 204
api GET "/api/v1/analyses/$id"
check "deleted: 404" "$status" 404
api DELETE "/api/v1/analyses/$id"
check "delete again: 404" "$status" 404

# Body errors, through the web server.
http POST /api/v1/analyses -H "Authorization: Bearer $ASSAY_API_KEY" -H 'Content-Type: text/plain' -d 'title=x'
check "not JSON: 415" "$status" 415
check "415 is problem+json" "$(header Content-Type)" "application/problem+json"
api POST /api/v1/analyses '{"title": "x", "script": }'
check "invalid JSON: 400" "$status" 400
check_match "invalid JSON: says where" "$(json .detail)" 'at byte [0-9]+'
api POST /api/v1/analyses '{"title":"x","script":"y"} trailing'
check "trailing data: 400" "$status" 400
api POST /api/v1/analyses '[1, 2]'
check "not an object: 422" "$status" 422
check "not an object: root pointer" "$(json '.errors[0].pointer')" ""
api PATCH "/api/v1/analyses/$id" '{}'
check "PATCH {}: 422, nothing to change" "$status $(json '.errors[0].detail')" "422 give at least one member to change"
api PATCH "/api/v1/analyses/$id" '{"title":null}'
check "PATCH a null title: 422" "$status $(json '.errors[0].pointer') $(json '.errors[0].detail')" "422 /title must be a string, not null"
for doc in null 0 true '"text"' 12.5; do
  api POST /api/v1/analyses "$doc"
  check "valid JSON that is no object ($doc): 422 saying so" "$status $(json '.errors[0].detail')" \
    "422 the body must be a JSON object"
done
printf '{"title":"\xff\xfe","script":"x"}' >/tmp/badutf8.$$
http POST /api/v1/analyses -H "Authorization: Bearer $ASSAY_API_KEY" -H 'Content-Type: application/json' --data-binary @/tmp/badutf8.$$
rm -f /tmp/badutf8.$$
check "invalid UTF-8: 400" "$status" 400
{ printf '{"title":"x","script":"'; head -c 300000 /dev/zero | tr '\0' x; printf '"}'; } >"$tmp/huge.json"
api POST /api/v1/analyses "@$tmp/huge.json"
check "body over the limit: 413" "$status" 413
check "413 is problem+json" "$(header Content-Type)" "application/problem+json"
check "413 code" "$(json .code)" BODY_TOO_LARGE
rm -rf "$tmp"
finish
