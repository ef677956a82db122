# Tenants never see each other: another tenant's ids answer 404 on every
# endpoint, listings hold only one's own, and another tenant's analysis
# cannot be run.
. "$(dirname "$0")/lib.sh"

aid=$(new_analysis)
api POST /api/v1/runs "{\"name\":\"mine\",\"analysis_id\":\"$aid\",\"start\":false}"
run=$(json .run.id)

KEY=$(new_tenant "iso_$$_$RANDOM" free)
export KEY
for call in "GET /api/v1/runs/$run" "POST /api/v1/runs/$run/start" "POST /api/v1/runs/$run/cancel" \
            "GET /api/v1/runs/$run/result" "GET /api/v1/analyses/$aid" "DELETE /api/v1/analyses/$aid" \
            "GET /api/v1/analyses/$aid/versions"; do
  api $call
  check "other tenant: $call is 404" "$status" 404
done
api PATCH "/api/v1/analyses/$aid" '{"title":"stolen"}'
check "other tenant: PATCH analysis is 404" "$status" 404
api POST /api/v1/runs "{\"name\":\"theirs\",\"analysis_id\":\"$aid\"}"
check "other tenant's analysis cannot be run" "$(json '.errors[0].detail')" "no such analysis"
api GET /api/v1/runs
check "other tenant's list is empty" "$(json '.runs | length')" 0
api GET /api/v1/analyses
check "other tenant's analyses are empty" "$(json '.analyses | length')" 0
unset KEY
api GET "/api/v1/runs/$run"
check "the owner still sees it, unchanged" "$(json .run.status)" created
api GET "/api/v1/analyses/$aid"
check "the owner's analysis is untouched" "$(json .analysis.title)" t
finish
