#!/usr/bin/env bash
# ctest fixture: one private PostgreSQL cluster per test run.
#   pg_fixture.sh start STATEFILE   -> writes the conninfo to STATEFILE
#   pg_fixture.sh stop STATEFILE    -> stops the cluster and removes it
# The cluster lives in a short /tmp directory (Unix socket paths are limited
# to 107 bytes, and the postgres user must be able to reach it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pgcluster="$here/../../tools/pgcluster"
state=$2
case "$1" in
start)
    if [ -n "${IBLSYNC_TEST_PG:-}" ]; then
        # tools/test already runs a cluster for us.
        echo "$IBLSYNC_TEST_PG" > "$state"; echo "external" > "$state.dir"; exit 0
    fi
    if [ -f "$state.dir" ] && [ "$(cat "$state.dir")" != external ]; then
        "$pgcluster" stop "$(cat "$state.dir")" --immediate || true
        rm -rf "$(cat "$state.dir")"
    fi
    dir=$(mktemp -d /tmp/iblsync-pg.XXXXXX)
    chmod 755 "$dir"
    echo "$dir" > "$state.dir"
    "$pgcluster" start "$dir" --fast > "$state"
    echo "private PostgreSQL: $(cat "$state")"
    ;;
stop)
    [ -f "$state.dir" ] || exit 0
    dir=$(cat "$state.dir")
    if [ "$dir" != external ]; then
        "$pgcluster" stop "$dir" --immediate
        rm -rf "$dir"
    fi
    rm -f "$state" "$state.dir"
    ;;
esac
