# Project files: PUT (201 new, 200 replaced, ETag = SHA-256), GET with
# If-None-Match and one Range, HEAD, DELETE; binary content byte for byte,
# 10 MiB files without an API worker's memory growing with them;
# file_max_bytes and the tier quota (413); bad paths; listing by prefix in
# pages and full text search with snippets; another tenant's files are 404.
# The audit log: every file operation and refused key, paged, in assayctl
# audit, never a key.
. "$(dirname "$0")/lib.sh"
keep_conf
auth=(-H "Authorization: Bearer $ASSAY_API_KEY")
dir=t-files-$$
# put PATH FILE [TYPE]: a PUT of the file's bytes; sets status, body, headers.
put() { api PUT "/api/v1/files/$1" -H "Content-Type: ${3:-application/octet-stream}" --data-binary "@$2"; }
# fetch PATH [curl options]: the file's bytes (not recorded: they may be binary).
fetch() { curl -s "${auth[@]}" "${@:2}" "$ASSAY_URL/api/v1/files/$1"; }
workers() { pgrep -P "$(cat "$ASSAY_STACK_DIR/run/assay-api.pid")"; }
peak_kib() { local p m=0 v; for p in $(workers); do
  v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null); [ "${v:-0}" -gt "$m" ] && m=$v; done; echo "$m"; }
rss_kib() { local p m=0 v; for p in $(workers); do
  v=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null); [ "${v:-0}" -gt "$m" ] && m=$v; done; echo "$m"; }
start=$(peak_kib)

printf 'The quarterly revenue report shows strong growth in the northern region.\n' >"$tmp/a.txt"
put "$dir/docs/report.txt" "$tmp/a.txt" text/plain
check "PUT a new file: 201" "$status" 201
check "its Location" "$(header Location)" "/api/v1/files/$dir/docs/report.txt"
sum=$(sha256sum <"$tmp/a.txt" | cut -d' ' -f1)
check "ETag: the quoted SHA-256" "$(header ETag)" "\"$sum\""
check "the file's metadata" "$(json -c '.file | [.path, .size, .content_type, .etag]')" \
  "[\"$dir/docs/report.txt\",$(wc -c <"$tmp/a.txt"),\"text/plain\",\"\\\"$sum\\\"\"]"
api GET "/api/v1/files/$dir/docs/report.txt"
check "GET: 200 with its Content-Type" "$status $(header Content-Type)" "200 text/plain"
check "GET: the content" "$body" "$(cat "$tmp/a.txt")"
check "GET: Content-Length and ETag" "$(header Content-Length) $(header ETag)" "$(wc -c <"$tmp/a.txt") \"$sum\""
api GET "/api/v1/files/$dir/docs/report.txt" -H "If-None-Match: \"$sum\""
check "If-None-Match: 304 without a body" "$status ${#body} $(header ETag)" "304 0 \"$sum\""
api GET "/api/v1/files/$dir/docs/report.txt" -H 'Range: bytes=4-12'
check "Range: 206 with that part" "$status $body" "206 quarterly"
check "Range: Content-Range" "$(header Content-Range)" "bytes 4-12/$(wc -c <"$tmp/a.txt")"
api GET "/api/v1/files/$dir/docs/report.txt" -H 'Range: bytes=-8'
check "Range: a suffix" "$status $body" "206 region."
api GET "/api/v1/files/$dir/docs/report.txt" -H 'Range: bytes=1000-'
check "Range beyond the end: 416 problem" "$status $(json .code) $(header Content-Range)" \
  "416 RANGE_NOT_SATISFIABLE bytes */$(wc -c <"$tmp/a.txt")"
api GET "/api/v1/files/$dir/docs/report.txt" -H 'Range: bytes=0-1,4-5'
check "several ranges: the whole file" "$status" 200
api HEAD "/api/v1/files/$dir/docs/report.txt"
check "HEAD: as GET, no body" "$status $(header Content-Length) $(header ETag) ${#body}" \
  "200 $(wc -c <"$tmp/a.txt") \"$sum\" 0"
printf 'Replaced: nothing about money.\n' >"$tmp/b.txt"
put "$dir/docs/report.txt" "$tmp/b.txt" text/plain
check "PUT over it: 200, new ETag" "$status $(header ETag)" "200 \"$(sha256sum <"$tmp/b.txt" | cut -d' ' -f1)\""
check "GET: the new content" "$(fetch "$dir/docs/report.txt")" "$(cat "$tmp/b.txt")"

# Metadata is read through memcached; writes forget it.
project=$(sql "SELECT p.id FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE t.name = 'demo' AND p.name = 'default'")
entry="assay:p:$project:file:$(printf '%s' "$dir/docs/report.txt" | sha256sum | cut -d' ' -f1)"
cached() { fetch "$dir/docs/report.txt" >/dev/null
  mc "get $entry" | sed -n 2p | grep -Eq "^[0-9]+ $(wc -c <"$tmp/b.txt") $(sha256sum <"$tmp/b.txt" | cut -d' ' -f1) text/plain$"; }
# (for 5 seconds after a write its entry is a tombstone, which reads do not replace)
eventually "a GET leaves the file's metadata in memcached" 100 cached
printf 'Third version.\n' >"$tmp/c.txt"
put "$dir/docs/report.txt" "$tmp/c.txt" text/plain
api HEAD "/api/v1/files/$dir/docs/report.txt"
check "a PUT forgets it: HEAD at once sees the new ETag" "$(header ETag)" \
  "\"$(sha256sum <"$tmp/c.txt" | cut -d' ' -f1)\""
check "GET: the third content" "$(fetch "$dir/docs/report.txt")" "$(cat "$tmp/c.txt")"
# A write the cache was not told of (another host's, say): a GET's pieces
# are checked against the version it has, and it reads the metadata again.
sql "UPDATE files SET sha256 = repeat('a', 64) WHERE path = '$dir/docs/report.txt'" >/dev/null
api GET "/api/v1/files/$dir/docs/report.txt"
check "a stale entry is noticed by GET and read again" "$status $(header ETag) $body" \
  "200 \"$(printf 'a%.0s' $(seq 1 64))\" $(cat "$tmp/c.txt")"

# Binary content round trips byte for byte, in any range.
head -c 1048576 /dev/urandom >"$tmp/bin"
put "$dir/bin/random" "$tmp/bin"
check "1 MiB of random bytes: 201" "$status" 201
check "read back byte for byte (sha256)" "$(fetch "$dir/bin/random" | sha256sum)" "$(sha256sum <"$tmp/bin")"
check "a range across pieces (256 KiB each)" \
  "$(fetch "$dir/bin/random" -H 'Range: bytes=262000-600000' | sha256sum)" \
  "$(tail -c +262001 "$tmp/bin" | head -c 338001 | sha256sum)"
check "stored as application/octet-stream" \
  "$(curl -s -I "${auth[@]}" "$ASSAY_URL/api/v1/files/$dir/bin/random" | tr -d '\r' | grep -i '^content-type:' | cut -d' ' -f2)" \
  application/octet-stream

# 10 MiB, written and read: an API worker's memory does not follow the file
# (the figures: the workers' peak RSS before any file, before and after 10 MiB).
head -c $((10 * 1048576)) /dev/urandom >"$tmp/big"
before=$(peak_kib)
put "$dir/big" "$tmp/big"
check "10 MiB: 201" "$status" 201
check "10 MiB read back byte for byte" "$(fetch "$dir/big" | sha256sum)" "$(sha256sum <"$tmp/big")"
after=$(peak_kib)
echo "# API workers' peak RSS (VmHWM, the largest of them): $start KiB before any file, $before KiB after 1 MiB files, $after KiB after writing and reading 10 MiB; largest RSS now $(rss_kib) KiB"
check "the workers' peak RSS grew by less than the file (10240 KiB)" \
  "$(( after - before < 10240 ))" 1
head -c $((16 * 1048576 + 1)) /dev/zero >"$tmp/over"
put "$dir/over" "$tmp/over"
check "over file_max_bytes (16 MiB): 413 BODY_TOO_LARGE" "$status $(json .code)" "413 BODY_TOO_LARGE"

# Paths.
for p in "$dir/a%20b" "$dir/../x" "$dir//x" "$dir/x/" "$dir/./x" "$dir/a~b"; do
  api PUT "/api/v1/files/$p" --path-as-is --data-binary x
  check "bad path $p: 400 INVALID_PARAMETER" "$status $(json .code) $(json '.errors[0].parameter')" \
    "400 INVALID_PARAMETER path"
done
long=$(printf 'a%.0s' $(seq 1 513))
api PUT "/api/v1/files/$long" --data-binary x
check "a path of 513 bytes: 400" "$status $(json .code)" "400 INVALID_PARAMETER"
api GET "/api/v1/files/$dir/none"
check "GET a missing file: 404" "$status $(json .code)" "404 FILE_NOT_FOUND"

# Listing by prefix, in pages, sorted by path.
for n in 1 2 3 4 5; do printf 'list %s\n' "$n" >"$tmp/l"; put "$dir/list/f$n.txt" "$tmp/l" text/plain; done
api GET "/api/v1/files?prefix=$dir/list/&limit=2"
check "a page of 2 by path" "$status $(json -c '[.files[].path]')" "200 [\"$dir/list/f1.txt\",\"$dir/list/f2.txt\"]"
check "each with size, type, etag, updated_at" \
  "$(json -c '.files[0] | [.size, .content_type, (.etag | test("^\"[0-9a-f]{64}\"$")), (.updated_at | test("Z$"))]')" \
  '[7,"text/plain",true,true]'
paths=$(json -r '.files[].path')
while [ "$(json -r .next_cursor)" != null ]; do
  api GET "/api/v1/files?prefix=$dir/list/&limit=2&cursor=$(json -r .next_cursor)"
  paths="$paths $(json -r '.files[].path')"
done
check "the pages hold every file once" "$(echo $paths)" \
  "$(echo $dir/list/f1.txt $dir/list/f2.txt $dir/list/f3.txt $dir/list/f4.txt $dir/list/f5.txt)"
api GET "/api/v1/files?prefix=$dir/list/&limit=0"
check "limit=0: 400" "$status $(json .code)" "400 INVALID_PARAMETER"
api GET "/api/v1/files?prefix=$dir&sort=size"
check "an unknown parameter: 400 naming it" "$status $(json -r '.errors[0].parameter')" "400 sort"

# Search: text files' content, ranked, with a highlighted snippet.
printf 'Glaciers retreat as the climate warms; the glacier in the valley lost a third of its ice.\n' >"$tmp/s1"
printf 'A note on bread: the glacier of flour.\n' >"$tmp/s2"
put "$dir/search/glaciers.txt" "$tmp/s1" text/plain
put "$dir/search/bread.md" "$tmp/s2" text/markdown
api GET "/api/v1/files?q=glacier&prefix=$dir/search/"
check "search: both hits, the better first" "$status $(json -c '[.files[].path]')" \
  "200 [\"$dir/search/glaciers.txt\",\"$dir/search/bread.md\"]"
check_match "each with a highlighted snippet" "$(json -r '.files[0].snippet')" '<mark>Glaciers</mark>.*<mark>glacier</mark>'
check "and a rank" "$(json '.files[0].rank > .files[1].rank')" true
api GET "/api/v1/files?q=glacier%20-bread&prefix=$dir/search/"
check "search syntax: -word" "$(json -c '[.files[].path]')" "[\"$dir/search/glaciers.txt\"]"
api GET "/api/v1/files?q=random&prefix=$dir/"
check "binary files are not searched" "$(json '.files | length')" 0
api GET "/api/v1/files?q=glacier&cursor=x"
check "q with cursor: 400" "$status $(json -r '.errors[0].parameter')" "400 cursor"

# Another tenant: none of these files exist for it.
other=$(new_tenant "files-other-$$" pro)
KEY=$other api GET "/api/v1/files/$dir/bin/random"
check "another tenant's file: 404" "$status" 404
KEY=$other api DELETE "/api/v1/files/$dir/bin/random"
check "nor can it delete it" "$status" 404
KEY=$other api GET "/api/v1/files?prefix=$dir/"
check "nor list it" "$(json '.files | length')" 0

# Delete.
api DELETE "/api/v1/files/$dir/docs/report.txt"
check "DELETE: 204" "$status" 204
api DELETE "/api/v1/files/$dir/docs/report.txt"
check "DELETE again: 404" "$status" 404
api GET "/api/v1/files/$dir/docs/report.txt"
check "gone" "$status" 404

# The tier quota: a free tenant's, made 1,000,000 bytes, counts every file of the
# tenant; a replacement frees what it replaces.
small=$(new_tenant "files-free-$$" free)
{ cat "$tmp/assay.conf.orig"; printf '[tiers]\nfree_file_quota_bytes = 1000000\n'; } >"$conf"
head -c 700000 /dev/urandom >"$tmp/q1"
old=$(workers)
api_reload
replaced() { local p; for p in $old; do [ -d "/proc/$p" ] && return 1; done; return 0; }
eventually "the api's workers are replaced (SIGHUP)" 50 replaced
KEY=$small api PUT /api/v1/files/q/big --data-binary "@$tmp/bin"
check "over the quota: 413 FILE_QUOTA_EXCEEDED" "$(json .code) $(json .quota_bytes) $(json .used_bytes)" \
  "FILE_QUOTA_EXCEEDED 1000000 0"
KEY=$small api PUT /api/v1/files/q/one --data-binary "@$tmp/q1"
check "within it: 201" "$status" 201
KEY=$small api PUT /api/v1/files/q/two --data-binary "@$tmp/q1"
check "two of them would not fit: 413" "$status $(json .used_bytes)" "413 700000"
KEY=$small api PUT /api/v1/files/q/one --data-binary "@$tmp/q1"
check "replacing one does: 200" "$status" 200
KEY=$small api DELETE /api/v1/files/q/one
KEY=$small api PUT /api/v1/files/q/two --data-binary "@$tmp/q1"
check "after a delete there is room again" "$status" 201

api DELETE "/api/v1/files/$dir/big"

# The audit log.
api GET "/api/v1/audit?action=file.put&limit=100"
check "audit: the puts, with their outcomes" \
  "$(json -c "[.entries[] | select(.target == \"$dir/docs/report.txt\") | [.action, .outcome, .status]]")" \
  '[["file.put","success",200],["file.put","success",200],["file.put","success",201]]'
check "audit: by the key's prefix, with the request id and client" \
  "$(json -r '.entries[0] | [.actor, (.request_id | length > 0), .client] | @tsv')" \
  "$(printf '%s\ttrue\t127.0.0.1' "${ASSAY_API_KEY:0:14}")"
api GET "/api/v1/audit?limit=100"
check "audit: a missing file's get" \
  "$(json -c "[.entries[] | select(.target == \"$dir/none\") | [.action, .outcome, .status]]")" \
  '[["file.get","not_found",404]]'
check "audit: head, list, search and delete too" \
  "$(json -r "[.entries[] | select(.action | test(\"head|list|search|delete\")) | .action] | unique | join(\" \")")" \
  "file.delete file.head file.list file.search"
check "audit: a bad path, refused" \
  "$(json -c "[.entries[] | select(.target == \"$dir/a~b\") | [.action, .outcome, .status]]")" \
  '[["file.put","refused",400]]'
api GET "/api/v1/files?prefix=$dir&sort=size"
check "audit: a listing refused for its query" \
  "$(sql "SELECT action || ' ' || outcome || ' ' || status FROM audit_log WHERE request_id = '$(header X-Request-ID)'")" \
  "file.list refused 400"
# Refused keys: one no tenant has (NULL tenant), a revoked one of this tenant.
fake=assay_0000beef_$(printf '0%.0s' $(seq 1 48))
KEY=$fake api GET "/api/v1/files/$dir/x"
check "an unknown key: 401" "$status" 401
check "audited without a tenant, by its prefix" \
  "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id IS NULL AND actor = 'assay_0000beef' AND action = 'auth.failure' AND outcome = 'denied' AND target = '/api/v1/files/$dir/x'")" 1
KEY=not-a-key api GET /api/v1/files
check "a malformed key: 401, audited without an actor" \
  "$(sql "SELECT count(*) FROM audit_log WHERE actor IS NULL AND action = 'auth.failure' AND target = '/api/v1/files' AND request_id = '$(header X-Request-ID)'") $status" "1 401"
revoked=$(assayctl key create --tenant demo 2>/dev/null)
assayctl key revoke "$revoked" >/dev/null
KEY=$revoked api GET /api/v1/files
check "a revoked key: 401" "$status" 401
api GET "/api/v1/audit?action=auth.failure"
check "the tenant sees the refusal of its revoked key" \
  "$(json -r "[.entries[] | select(.actor == \"${revoked:0:14}\")] | length")" 1
# Pages, newest first.
api GET "/api/v1/audit?limit=3"
ids=$(json -r '.entries[].id')
api GET "/api/v1/audit?limit=3&cursor=$(json -r .next_cursor)"
ids="$ids $(json -r '.entries[].id')"
check "audit: pages of 3, newest first, none twice" "$(echo $ids | tr ' ' '\n' | sort -rn | uniq | paste -sd' ')" "$(echo $ids)"
check "audit: 6 entries in two pages" "$(echo $ids | wc -w)" 6
api GET "/api/v1/audit?action=file.rename"
check "audit: an unknown action: 400" "$status $(json -r '.errors[0].parameter')" "400 action"
KEY=$other api GET "/api/v1/audit?limit=100"
check "another tenant sees only its own entries (its three tries at these files)" \
  "$(json -r "[.entries[].actor] | unique | join(\" \")") $(json '.entries | length')" "${other:0:14} 3"
out=$(assayctl audit --tenant demo --since 1h)
check_match "assayctl audit prints the entries, one a line" "$(printf '%s\n' "$out" | grep "$dir/docs/report.txt" | head -1)" \
  "^[0-9T:.-]+Z +demo +${ASSAY_API_KEY:0:14} +file.put +success 20[01] "
check "assayctl audit --since takes units" "$(assayctl audit --since 2w >/dev/null 2>&1; echo $?)" 2
check "assayctl audit: an unknown tenant" "$(assayctl audit --tenant "nobody-$$" >/dev/null 2>&1; echo $?)" 1
# Never a key: not in the table, not in the API's log.
check "no key in the audit log" \
  "$(sql "SELECT count(*) FROM audit_log WHERE concat_ws(' ', actor, target, client, request_id) ~ 'assay_[0-9a-f]{8}_[0-9a-f]{48}'")" 0
for k in "$ASSAY_API_KEY" "$fake" "$revoked" "$other" "$small"; do
  if grep -qF -- "$k" "$api_log"; then fail "a key is in the API's log"; fi
done
finish
