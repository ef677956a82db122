#!/usr/bin/env bash
# Run every t_*.sh against one stack behind the given web server. Unless
# ASSAY_URL is already set (an existing stack, e.g. `. var/stack/env`), a
# throwaway stack is started under the build tree and stopped afterwards.
set -u
server=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${ASSAY_URL:-}" ]; then
  export ASSAY_BUILDDIR=$top_builddir
  stackdir=$top_builddir/tests/integration/stack-$server
  "$top_srcdir/tools/stack" down --purge --dir "$stackdir" >/dev/null 2>&1
  trap '"$top_srcdir/tools/stack" down --dir "$stackdir"' EXIT
  "$top_srcdir/tools/stack" up --no-build --server "$server" --dir "$stackdir" || exit 99
  # shellcheck disable=SC1091
  . "$stackdir/env"
fi
rc=0
for t in "$here"/t_*.sh; do
  echo "== $(basename "$t") behind $server"
  bash "$t" || { echo "== FAILED: $(basename "$t") behind $server"; rc=1; }
done
exit $rc
