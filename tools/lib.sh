# Shell helpers shared by tools/stack, the integration tests and the
# benchmarks: sourced, not run. Defining functions and one variable is all
# sourcing does: no package is installed, nothing is started, no option of
# the caller's shell is changed.

# PostgreSQL's server programs (Debian's postgresql-15).
pg_bin=/usr/lib/postgresql/15/bin

# A free TCP port on 127.0.0.1, as the kernel assigns it.
free_port() {
  perl -MIO::Socket::INET -e \
    'print IO::Socket::INET->new(LocalAddr=>"127.0.0.1",LocalPort=>0,Listen=>1,ReuseAddr=>1)->sockport'
}

# Is the process running? A zombie (exited, not yet reaped) is not.
running() {
  local state
  state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Run a command as the PostgreSQL owner: "postgres" when we are root
# (PostgreSQL refuses to run as root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Install the Debian packages given that are missing (with sudo unless
# root). Only when called.
ensure_packages() { # PACKAGE...
  local missing=() p sudo=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  printf 'installing %s\n' "${missing[*]}" >&2
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}
