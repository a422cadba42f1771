#!/usr/bin/env bash
# Give the test suite a real PostgreSQL on 127.0.0.1 (for voicebot.store's tests).
#
# CI runs this as root on a fresh Debian 12 machine. It installs the distribution's
# server, starts its cluster, and creates the role and database the tests use. Every
# step is idempotent, so running it twice (or on a machine where PostgreSQL is already
# installed and running) succeeds. The last line on stdout is the URL for
# VOICEBOT_TEST_POSTGRES_URL; everything else goes to stderr.
set -euo pipefail

ROLE=voicebot
PASSWORD=voicebot
DATABASE=voicebot_test
PORT=5432

log() { echo "postgres.sh: $*" >&2; }

export DEBIAN_FRONTEND=noninteractive
if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    log "installing postgresql"
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
fi

# The newest installed major version (Debian 12 ships 15).
VERSION="$(ls /usr/lib/postgresql | sort -n | tail -n 1)"
if [ -z "$VERSION" ]; then
    log "no PostgreSQL server found under /usr/lib/postgresql"
    exit 1
fi
# --no-recommends installs may skip the default cluster; create it if it is missing.
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
    log "creating cluster $VERSION/main"
    pg_createcluster "$VERSION" main --port "$PORT" >&2
fi
CLUSTER_PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')"
if [ "$CLUSTER_PORT" != "$PORT" ]; then
    log "cluster $VERSION/main listens on port $CLUSTER_PORT, expected $PORT"
    exit 1
fi
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    log "starting cluster $VERSION/main"
    pg_ctlcluster "$VERSION" main start >&2
fi

log "waiting for the server to accept connections"
for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p "$PORT"; then
        break
    fi
    sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2

as_postgres() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q -X -p "$PORT" "$@"; }

# The role: created once, password (re)set every time so a stale one cannot break CI.
as_postgres -d postgres >&2 <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE')\gexec
ALTER ROLE "$ROLE" WITH LOGIN PASSWORD '$PASSWORD';
SQL
# CREATE DATABASE cannot run in a transaction block or a DO block, hence \gexec.
as_postgres -d postgres >&2 <<SQL
SELECT format('CREATE DATABASE %I OWNER %I', '$DATABASE', '$ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DATABASE')\gexec
ALTER DATABASE "$DATABASE" OWNER TO "$ROLE";
SQL
# PostgreSQL 15 no longer lets every role create objects in the public schema.
as_postgres -d "$DATABASE" -c "ALTER SCHEMA public OWNER TO \"$ROLE\";" >&2

URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"
# Prove the URL works (password authentication over TCP) before handing it out.
PGCONNECT_TIMEOUT=10 psql -X -q -At "$URL" -c "SELECT 1" >/dev/null
log "ready"
echo "$URL"
