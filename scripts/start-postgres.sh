#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server (Debian's `postgresql` package, installed with apt when
# missing and possible) on 127.0.0.1 for the registry's PostgreSQL tests. Prints, as its last
# line, `ASTROCLIP_TEST_POSTGRES=<admin URL>`; stop it with `scripts/start-postgres.sh stop`.
# Data lives in /tmp/astroclip-pg-<port> (trust auth, loopback only, never a real server's
# data; /tmp so that the `postgres` user can reach it when this runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${ASTROCLIP_PG_PORT:-54329}
DATA=/tmp/astroclip-pg-$PORT
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_owner() {
    # initdb and postgres refuse to run as root: run them as the Debian `postgres` user then.
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "${1:-}" = stop ]; then
    [ -d "$DATA/db" ] && as_owner "$(bindir)/pg_ctl" -D "$DATA/db" -m fast stop >/dev/null || true
    exit 0
fi
if [ -z "$(bindir)" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    else
        echo "PostgreSQL is not installed and cannot be (need root and apt-get): apt install postgresql" >&2
        exit 1
    fi
fi
BIN=$(bindir)
if [ -d "$DATA/db" ]; then as_owner "$BIN/pg_ctl" -D "$DATA/db" -m fast stop >/dev/null 2>&1 || true; fi
rm -rf "$DATA"
mkdir -p "$DATA"
[ "$(id -u)" = 0 ] && chown postgres "$DATA"
as_owner "$BIN/initdb" -D "$DATA/db" -U astroclip --auth=trust -E UTF8 >/dev/null
as_owner "$BIN/pg_ctl" -D "$DATA/db" -l "$DATA/server.log" -w \
    -o "-h 127.0.0.1 -p $PORT -k $DATA -c max_connections=200 -c fsync=off" start >&2
echo "ASTROCLIP_TEST_POSTGRES=postgres://astroclip@127.0.0.1:$PORT/postgres"
