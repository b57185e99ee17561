#!/usr/bin/env bash
# Starts a throwaway Redis on loopback for the test suite and prints the
# TEST_REDIS_URL to use. Needs Debian's redis-server package.
#   eval "$(bash scripts/start-test-redis.sh)"   # exports TEST_REDIS_URL
# Stop it with: bash scripts/start-test-redis.sh stop
set -euo pipefail
REDIS_PORT=${REDIS_PORT:-56379}
command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
if [ "${1:-}" = stop ]; then
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  exit 0
fi
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes >&2
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
echo "export TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
