#!/usr/bin/env bash
# Install hwlut with everything the tests need into .venv, then run the tests.
# Used verbatim by the README and by .ci/run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
# Exactly the locked versions (requirements.lock, refreshed by scripts/lock.sh);
# -qq: errors only, so the test output is not buried under pip's.
.venv/bin/python -m pip install -qq -c requirements.lock -e '.[all,test]'

.venv/bin/ruff check .

# PostgreSQL for the tests marked `postgres` (the store and server tests run on
# SQLite and on PostgreSQL). Uses HWLUT_TEST_POSTGRES_URL when set; otherwise
# starts a throwaway cluster (installing Debian's postgresql when root).
start_postgres() {
    local pgbin
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$pgbin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    if [ -z "$pgbin" ]; then
        echo "PostgreSQL not found: the postgres tests will skip (and fail under CI=true)" >&2
        return 0
    fi
    PG_DIR=$(mktemp -d /tmp/hwlut-pg.XXXXXX)
    PG_AS=""
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$PG_DIR"
        PG_AS="runuser -u postgres --"
    fi
    $PG_AS "$pgbin/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$PG_DIR/initdb.log" 2>&1
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    $PG_AS "$pgbin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    PG_STOP="$PG_AS $pgbin/pg_ctl -D $PG_DIR/data -m immediate stop"
    trap 'eval "$PG_STOP" >/dev/null 2>&1; rm -rf "$PG_DIR"' EXIT
    "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres hwlut_test
    export HWLUT_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/hwlut_test"
    echo "PostgreSQL for the tests: $HWLUT_TEST_POSTGRES_URL" >&2
}
if [ -z "${HWLUT_TEST_POSTGRES_URL:-}" ]; then
    start_postgres
fi

# Chromium for the dashboard's browser tests (Playwright drives Debian's chromium: its own download is not used).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
fi
exit "$status"
