# Batches of runs and back-pressure: POST /api/v1/runs/batch with valid,
# invalid and replayed items answered in order in one transaction; the
# batch body limit behind the web server; a tier's max_queued reached by
# single and by batch creates, never passed by many concurrent creates,
# round after round; replays never refused; runs per hour counted item by
# item.
. "$(dirname "$0")/lib.sh"
keep_conf
aid=$(new_analysis)
tag=b$$_$RANDOM
runs_tagged() { sql "SELECT count(*) FROM analysis_jobs WHERE '$1' = ANY (tags)"; }
# item NAME [TOKEN] [EXTRA MEMBERS]: one run of the batch, not started.
item() {
  printf '{"name":"%s","analysis_id":"%s","tags":["%s"],"start":false%s%s}\n' "$1" "$aid" "$tag" \
    "${2:+,\"client_token\":\"$2\"}" "${3:+,$3}"
}
batch_of() { local IFS=,; printf '{"runs":[%s]}' "$*"; }

# Four runs made one by one: three replayed by the batch, one's key
# reused there with another request.
for i in 1 2 3 4; do
  api POST /api/v1/runs "$(item "one$i" "$tag-k$i")"
  [ "$status" = 201 ] || fail "single create $i: $status $body"
done
items=()
for i in 1 2 3; do items+=("$(item "one$i" "$tag-k$i")"); done
items+=("$(item other "$tag-k4")")                                      # 3: key reused
items+=('{"name":"","analysis_id":"nope","priority":"high","extra":1}') # 4: every violation
items+=("$(item ghost "" | sed 's/"analysis_id":"[^"]*"/"analysis_id":"00000000-0000-0000-0000-000000000000"/')") # 5
items+=('5')                                                            # 6: no object
items+=("$(item dup "$tag-k9")" "$(item dup2 "$tag-k9")")               # 7, 8: a key given twice
items+=("$(item cb "" '"callback_url":"http://10.0.0.1/x"')")           # 9: private address
for i in $(seq 10 99); do items+=("$(item "run$i" "$tag-n$i")"); done
batch_of "${items[@]}" >"$tmp/batch.json"
api POST /api/v1/runs/batch "@$tmp/batch.json"
check "batch of 100: 200" "$status" 200
check "batch: one result per item, in order" "$(json '[.results[].index] == [range(100)]')" true
check "batch: replays of earlier runs" "$(json '[.results[0:3][] | .status, .idempotent] | join(",")')" \
  "200,true,200,true,200,true"
check "batch: the replays are those runs" "$(json '[.results[0:3][].run.name] | join(",")')" one1,one2,one3
check "batch: a key reused with another request" "$(json '.results[3] | "\(.status) \(.code)"')" \
  "422 IDEMPOTENCY_KEY_REUSED"
check "batch: every violation of an item, pointers into it" \
  "$(json '.results[4] | "\(.status) \(.code) " + ([.errors[].pointer] | sort | join(","))')" \
  "422 VALIDATION_FAILED /analysis_id,/extra,/name,/priority"
check "batch: an unknown analysis" "$(json '.results[5] | "\(.status) \(.errors[0].pointer) \(.errors[0].detail)"')" \
  "422 /analysis_id no such analysis"
check "batch: an item that is no object" "$(json '.results[6] | "\(.status) \(.errors[0].pointer)|"')" "422 |"
check "batch: a key given twice: the first is created" "$(json '.results[7].status')" 201
check "batch: the second is refused, naming the first" "$(json '.results[8] | "\(.status) \(.errors[0].detail)"')" \
  "422 repeats the client_token of item 7 of this batch"
check "batch: a callback_url is checked as for one run" "$(json '.results[9].errors[0].pointer')" /callback_url
check "batch: the 90 valid runs created" "$(json '[.results[10:][] | select(.status == 201)] | length')" 90
check "batch: in order" "$(json '[.results[10:][].run.name] == [range(10; 100) | "run\(.)"]')" true
check "batch: counts" "$(json '"\(.created) \(.replayed) \(.refused)"')" "91 3 6"
check "batch: what it created is stored, nothing more" "$(runs_tagged "$tag")" 95
check "batch: each new run has its key" \
  "$(sql "SELECT count(*) FROM idempotency_keys k JOIN analysis_jobs j ON j.id = k.job_id WHERE '$tag' = ANY (j.tags)")" 95
check "batch: created runs have their events" \
  "$(sql "SELECT count(*) FROM job_events e JOIN analysis_jobs j ON j.id = e.job_id WHERE '$tag' = ANY (j.tags)")" 95
api POST /api/v1/runs/batch "@$tmp/batch.json"
check "the same batch again: 200" "$status" 200
check "again: every run created before is replayed" "$(json '"\(.created) \(.replayed) \(.refused)"')" "0 94 6"
check "again: nothing new stored" "$(runs_tagged "$tag")" 95
check "again: the runs are the same" "$(json '.results[50].run.name, .results[50].idempotent' | paste -sd' ')" "run50 true"

# The request as a whole.
api POST /api/v1/runs/batch "$(batch_of $(for i in $(seq 0 100); do item "x$i"; done))"
check "101 items: 422" "$status" 422
check "101 items: says so" "$(json '.errors[0] | .pointer + " " + .detail')" "/runs must have 1 to 100 items, got 101"
check "101 items: nothing stored" "$(runs_tagged "$tag")" 95
api POST /api/v1/runs/batch '{"runs":[]}'
check "no items: 422" "$status $(json '.errors[0].pointer')" "422 /runs"
api POST /api/v1/runs/batch '{"runs":{},"more":1}'
check "runs not an array, an unknown member: both named" "$(json '[.errors[].pointer] | sort | join(",")')" "/more,/runs"
api POST /api/v1/runs/batch '[]'
check "not an object: 422" "$status" 422
api GET /api/v1/runs/batch
check "GET on the batch path: 405, not a run id" "$status $(header Allow)" "405 POST"

# A batch of 100 of the largest runs is far above body_limit_bytes (256
# KiB): the web server and assay-api let it through on this path only.
big=$(head -c 120000 /dev/zero | tr '\0' x)
{ printf '{"runs":['
  for i in $(seq 1 100); do
    [ "$i" = 1 ] || printf ','
    printf '{"name":"big%s","analysis_id":"%s","tags":["%s-big"],"start":false,"input":{"k":"%s"}}' "$i" "$aid" "$tag" "$big"
  done
  printf ']}'; } >"$tmp/big.json"
check_match "the batch of large runs is over 10 MiB" "$(stat -c %s "$tmp/big.json")" '^1[0-9]{7}$'
api POST /api/v1/runs/batch "@$tmp/big.json"
check "100 large runs: 200" "$status" 200
check "100 large runs: all created" "$(json .created)" 100
check "the same body is too large for POST /runs: 413" \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ASSAY_API_KEY" \
     -H 'Content-Type: application/json' --data-binary "@$tmp/big.json" "$ASSAY_URL/api/v1/runs")" 413
{ cat "$tmp/big.json"; head -c 7000000 /dev/zero | tr '\0' ' '; } >"$tmp/huge.json"
api POST /api/v1/runs/batch "@$tmp/huge.json"
check "over batch_body_limit_bytes: 413" "$status $(json .code)" "413 BODY_TOO_LARGE"
rm -f "$tmp/big.json" "$tmp/huge.json"

# max_queued: a pro tenant here may queue 10 runs (its rate limits lifted).
printf '\n[tiers]\npro_max_queued = 10\npro_requests_per_minute = 0\npro_runs_per_hour = 0\n' >>"$conf"
api_reload
sleep 1
KEY=$(new_tenant "queue_$$_$RANDOM" pro)
aid=$(new_analysis)
tenant_queued() { sql "SELECT count(*) FROM analysis_jobs j JOIN api_keys k ON k.tenant_id = j.tenant_id WHERE k.prefix = '${KEY:0:14}' AND j.status IN ('created', 'pending')"; }
for i in $(seq 1 10); do
  api POST /api/v1/runs "$(item "q$i" "$tag-q$i")"
  [ "$status" = 201 ] || fail "queued run $i: $status $body"
done
api POST /api/v1/runs "$(item q11)"
check "the 11th queued run: 429" "$status" 429
check "QUEUE_FULL" "$(json .code)" QUEUE_FULL
check "with the depth and the limit" "$(json '"\(.queue_depth) \(.max_queued)"')" "10 10"
check "and Retry-After" "$(header Retry-After)" 5
check_match "says why" "$(json .detail)" "10 runs are queued"
api POST /api/v1/runs "$(item q1 "$tag-q1")"
check "a replay is not refused by a full queue" "$status $(json .idempotent)" "200 true"
api POST /api/v1/runs/batch "$(batch_of "$(item q1 "$tag-q1")" "$(item q12)")"
check "batch on a full queue: replay 200, new run 429 QUEUE_FULL" \
  "$(json '[.results[] | "\(.status)\(.code // "")"] | join(",")')" "200,429QUEUE_FULL"
check "the queue is still 10" "$(tenant_queued)" 10
# Canceling three makes room for three: a batch of five gets three.
for id in $(sql "SELECT id FROM analysis_jobs WHERE client_token IN ('$tag-q1', '$tag-q2', '$tag-q3')"); do
  api POST "/api/v1/runs/$id/cancel"
done
api POST /api/v1/runs/batch "$(batch_of $(for i in 1 2 3 4 5; do item "r$i"; done))"
check "a batch fills the room in order" \
  "$(json '[.results[] | "\(.status)\(.code // "")"] | join(",")')" "201,201,201,429QUEUE_FULL,429QUEUE_FULL"
check "batch QUEUE_FULL items say the depth" "$(json '.results[3] | "\(.queue_depth) \(.max_queued)"')" "10 10"
check "the queue is 10 again" "$(tenant_queued)" 10

# Concurrent creates never pass the limit: each round empties the queue,
# then 40 creates race for its 10 places, single and batch alike.
cancel_queue() { sql "UPDATE analysis_jobs j SET status = 'canceled', finished_at = now() FROM api_keys k WHERE k.tenant_id = j.tenant_id AND k.prefix = '${KEY:0:14}' AND j.status IN ('created', 'pending')" >/dev/null; }
race() { # URL BODY N -> status codes, one per line
  local urls=() i
  for i in $(seq 1 "$3"); do urls+=(-o /dev/null "$ASSAY_URL$1"); done
  curl -s -Z --parallel-immediate --parallel-max "$3" -w '%{http_code}\n' \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data-binary "$2" "${urls[@]}" 2>/dev/null
}
over=0 wrong=0
for round in $(seq 1 8); do
  cancel_queue
  out=$(race /api/v1/runs "$(item race)" 40)
  created=$(grep -c '^201$' <<<"$out")
  full=$(grep -c '^429$' <<<"$out")
  depth=$(tenant_queued)
  [ "$depth" -le 10 ] || over=$((over + 1))
  [ "$created $full $depth" = "10 30 10" ] || { wrong=$((wrong + 1)); echo "round $round: $created created, $full refused, $depth queued"; }
done
check "40 concurrent creates, 8 rounds: the queue never passes 10" "$over" 0
check "each round exactly 10 created and 30 refused" "$wrong" 0
over=0 wrong=0
for round in $(seq 1 8); do
  cancel_queue
  out=$(race /api/v1/runs/batch "$(batch_of "$(item b1)" "$(item b2)" "$(item b3)")" 12)
  depth=$(tenant_queued)
  [ "$depth" -le 10 ] || over=$((over + 1))
  [ "$depth $(grep -c '^200$' <<<"$out")" = "10 12" ] || { wrong=$((wrong + 1)); echo "round $round: $depth queued; $(sort <<<"$out" | uniq -c | tr '\n' ' ')"; }
done
check "12 concurrent batches of 3, 8 rounds: the queue never passes 10" "$over" 0
check "each round the queue is exactly full" "$wrong" 0
check "the depth kept is the depth counted" \
  "$(sql "SELECT assay_queue_depth(tenant_id) FROM api_keys WHERE prefix = '${KEY:0:14}'")" "$(tenant_queued)"
cancel_queue
check "and still when the queue is emptied" \
  "$(sql "SELECT assay_queue_depth(tenant_id) FROM api_keys WHERE prefix = '${KEY:0:14}'")" 0

# Runs per hour count item by item: with 5 an hour, a batch of 7 gets 5.
printf '\n[tiers]\npro_runs_per_hour = 5\n' >>"$conf"
api_reload
sleep 1
KEY=$(new_tenant "hourly_$$_$RANDOM" pro)
aid=$(new_analysis)
api POST /api/v1/runs/batch "$(batch_of $(for i in 1 2 3 4 5 6 7; do item "h$i"; done))"
check "runs per hour: the first 5 items pass" \
  "$(json '[.results[] | "\(.status)"] | join(",")')" "201,201,201,201,201,429,429"
check "runs per hour: the others are RATE_LIMIT_EXCEEDED with retry_after" \
  "$(json '.results[6] | "\(.code) \(.retry_after > 0)"')" "RATE_LIMIT_EXCEEDED true"
api POST /api/v1/runs/batch "$(batch_of "$(item h8)")"
check "runs per hour used up: the next batch is 429" "$status $(json .code)" "429 RATE_LIMIT_EXCEEDED"
finish
