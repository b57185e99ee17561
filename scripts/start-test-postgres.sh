#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on loopback for the test suite and
# prints the TEST_DATABASE_URL to use. Needs Debian's postgresql package.
#   eval "$(bash scripts/start-test-postgres.sh)"   # exports TEST_DATABASE_URL
# Stop it with: bash scripts/start-test-postgres.sh stop
set -euo pipefail
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PGDATA=${PGDATA:-/tmp/gatehouse-test-pg}
PGPORT=${PGPORT:-55432}
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
  as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >&2 || true
  exit 0
fi

if ! as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  rm -rf "$PGDATA"
  mkdir -p "$PGDATA"
  [ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
  as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >/dev/null
  as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
    -o "-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
fi
echo "export TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$PGPORT/postgres"
