#!/usr/bin/env bash
# Makes sure the binaries that tests and `deno task dev` start on their own
# (redis-server, PostgreSQL's initdb/postgres, psql, and for the deployment
# tests nginx and systemd-analyze) are installed. Nothing is started or
# configured here (though on a machine whose init starts services, Debian's
# nginx package starts the distribution's own nginx; the tests never use it).
# As root with apt-get, missing Debian packages are installed; otherwise the
# command to run is printed and the script fails.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && command -v psql >/dev/null 2>&1 && return 0
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" && -x "$dir/postgres" && -x "$dir/psql" ]] && return 0
  done
  return 1
}

# nginx lives in /usr/sbin, which is not on every user's PATH.
have_nginx() { command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; }

have_all() {
  command -v redis-server >/dev/null 2>&1 && have_postgres && have_nginx &&
    command -v systemd-analyze >/dev/null 2>&1
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
have_postgres || missing+=(postgresql)
have_nginx || missing+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure_services: installing Debian packages: ${missing[*]} (apt-get update + install)" >&2
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "ensure_services: apt-get failed installing: ${missing[*]}" >&2
    exit 1
  fi
  rm -f "$log"
  if ! have_all; then
    echo "ensure_services: packages installed but redis-server/initdb/nginx/systemd-analyze still not found" >&2
    exit 1
  fi
  echo "ensure_services: installed ${missing[*]}" >&2
  exit 0
fi

echo "ensure_services: missing ${missing[*]}; tests and \`deno task dev\` need them." >&2
echo "Install the Debian packages with:" >&2
echo "  sudo apt-get install ${missing[*]}" >&2
exit 1
