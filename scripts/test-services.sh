#!/usr/bin/env bash
# Makes sure the tests have a Redis and a PostgreSQL to talk to, starting or installing what is missing,
# and prints the shell exports that point the tests at them (OTTER_TEST_REDIS_URL, OTTER_TEST_DATABASE_URL).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run="$root/.otter-test"
mkdir -p "$run"
log() { printf '[test-services] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

redis_url="${REDIS_URL:-}"
if [ -z "$redis_url" ]; then
  if port_open 6379 && [ "$(redis-cli -p 6379 ping 2>/dev/null || true)" = PONG ]; then
    redis_url="redis://127.0.0.1:6379"
  else
    port=6390
    if ! port_open "$port"; then
      log "starting a local redis-server on 127.0.0.1:$port"
      redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
        --pidfile "$run/redis.pid" --logfile "$run/redis.log" >/dev/null
      for _ in $(seq 50); do port_open "$port" && break; sleep 0.1; done
    fi
    redis_url="redis://127.0.0.1:$port"
  fi
fi

db_url="${OTTER_TEST_DATABASE_URL:-}"
if [ -z "$db_url" ]; then
  if ! port_open 5432; then
    if ! command -v pg_ctlcluster >/dev/null; then
      log "installing PostgreSQL from Debian's packages"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null ||
        { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
    fi
    log "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start >&2 || true
    for _ in $(seq 100); do port_open 5432 && break; sleep 0.1; done
  fi
  if psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    db_url="postgres://postgres@127.0.0.1:5432/test"
  else
    # A stock Debian cluster wants a password over TCP: give the postgres role one and make the database.
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'otter'\"" >/dev/null
    su postgres -c "createdb test" >/dev/null 2>&1 || true
    db_url="postgres://postgres:otter@127.0.0.1:5432/test"
  fi
fi

echo "export OTTER_TEST_REDIS_URL='$redis_url' OTTER_TEST_DATABASE_URL='$db_url'"
