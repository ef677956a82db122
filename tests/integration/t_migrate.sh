# assayctl migrate: idempotent, concurrent-safe, transactional, and --status.
. "$(dirname "$0")/lib.sh"

check "second migrate is a no-op" "$(assayctl migrate)" "schema is up to date"
check_match "--status lists applied" "$(assayctl migrate --status)" '^applied  0001_init  [0-9]{4}-'

db=mig_$$_$RANDOM
base=${DATABASE_URL%/*}
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db"
url=$base/$db
check_match "--status on an empty database lists pending" \
  "$(assayctl --database-url "$url" migrate --status)" 'pending  0001_init'

# Two at once: both succeed, each file is applied once.
assayctl --database-url "$url" migrate >/tmp/mig1.$$ 2>&1 & p1=$!
assayctl --database-url "$url" migrate >/tmp/mig2.$$ 2>&1 & p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
check "concurrent migrate 1 succeeds" "$r1" 0
check "concurrent migrate 2 succeeds" "$r2" 0
check "applied exactly once" "$(cat /tmp/mig1.$$ /tmp/mig2.$$ | grep -c "applied 0001_init")" 1
rm -f /tmp/mig1.$$ /tmp/mig2.$$
check "one schema_migrations row per file" "$(psql -tA "$url" -c 'SELECT count(*) FROM schema_migrations')" "$(ls "$srcdir"/sql/*.sql | wc -l)"
check "core tables exist" "$(psql -tA "$url" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('tenants','api_keys','projects','analyses','analysis_versions','analysis_jobs','job_events','idempotency_keys')")" 8

# A failing file is rolled back entirely and not recorded.
sqldir=$(mktemp -d)
cp "$srcdir"/sql/*.sql "$sqldir"
printf 'CREATE TABLE half_done (x int);\nSELECT no_such_column FROM half_done;\n' >"$sqldir/0999_broken.sql"
out=$(assayctl --database-url "$url" --sql-dir "$sqldir" migrate 2>&1); rc=$?
check "a failing migration exits 1" "$rc" 1
check_match "the error names the file" "$out" "0999_broken.sql"
check "nothing of it remains" "$(psql -tA "$url" -c "SELECT to_regclass('half_done') IS NULL")" t
check "not recorded" "$(psql -tA "$url" -c "SELECT count(*) FROM schema_migrations WHERE version = '0999_broken'")" 0
rm -rf "$sqldir"

# The deployment checklist's view of index use, and assayctl's reading of it.
check "index_usage_stats lists the job table's indexes" \
  "$(psql -tA "$url" -c "SELECT count(*) > 0 FROM index_usage_stats WHERE table_name = 'analysis_jobs' AND index_name = 'analysis_jobs_claim'")" t
out=$(assayctl --database-url "$url" db index-usage)
check_match "assayctl db index-usage: a line per index" "$out" 'analysis_jobs +analysis_jobs_claim +[0-9]+ +[0-9]+ +[0-9]+ [a-zA-Z]+'
check "assayctl db index-usage: one line per index, and a header" "$(wc -l <<<"$out")" \
  "$(( $(psql -tA "$url" -c "SELECT count(*) FROM index_usage_stats") + 1 ))"

out=$(assayctl --database-url "postgresql://postgres@127.0.0.1:1/none" migrate 2>&1); rc=$?
check "unreachable database exits 1" "$rc" 1
check_match "and says so" "$out" "cannot connect to the database"
psql -q "$DATABASE_URL" -c "DROP DATABASE $db"
finish
