#!/usr/bin/env bash
# Run every t_*.sh against one stack behind the given web server: a
# throwaway stack started under the build tree and stopped afterwards, or,
# for debugging, the running stack whose env file ASSAY_TEST_ENV names
# (e.g. ASSAY_TEST_ENV=var/stack/env make check).
set -u
server=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${ASSAY_TEST_ENV:-}" ]; then
  # shellcheck disable=SC1090
  . "$ASSAY_TEST_ENV"
else
  export ASSAY_BUILDDIR=$top_builddir
  export ASSAY_STREAM_HEARTBEAT=2 # so that a test sees heartbeats quickly
  stackdir=$top_builddir/tests/integration/stack-$server
  "$top_srcdir/tools/stack" down --purge --dir "$stackdir" >/dev/null 2>&1
  trap '"$top_srcdir/tools/stack" down --dir "$stackdir"' EXIT
  "$top_srcdir/tools/stack" up --no-build --server "$server" --dir "$stackdir" || exit 99
  # shellcheck disable=SC1091
  . "$stackdir/env"
fi
export ASSAY_RESPONSES=$(mktemp)
rc=0
for t in "$here"/t_*.sh; do
  echo "== $(basename "$t") behind $server"
  bash "$t" || { echo "== FAILED: $(basename "$t") behind $server"; rc=1; }
done
# Every response the tests received must be as the OpenAPI document says.
echo "== contract: recorded responses against htdocs/openapi.json"
. "$here/lib.sh"
node "$here/validate-responses.mjs" "$srcdir/htdocs/openapi.json" "$ASSAY_RESPONSES" ||
  { echo "== FAILED: contract behind $server"; rc=1; }
rm -f "$ASSAY_RESPONSES"
# No API key the tests used, nor any other, may appear in any log.
echo "== secrets: no API key in the logs of the whole run"
if grep -rEl 'assay_[0-9a-f]{8}_[0-9a-f]{48}' "$ASSAY_STACK_DIR/log"; then
  echo "== FAILED: an API key was logged behind $server"; rc=1
fi
exit $rc
