#!/usr/bin/env bash
# Load benchmark: "first 50 tickets with workspace, assignee, commentCount" (release build, demo data on
# the local PostgreSQL), with wrk at concurrency 16, in one or more connection modes, one after another
# on the same data:
#   tests/bench/list_tickets.sh [duration, default 20s] [modes, default "direct"]
#   tests/bench/list_tickets.sh 20s "direct unnamed pgbouncer tls"
# Modes: direct (sslmode=disable, prepared statements), unnamed (direct, with
# DESKGRAPH_DB_PREPARED_STATEMENTS=false), pgbouncer (a PgBouncer of the script's own in
# pool_mode=transaction, as many server connections as the API's pool, unnamed statements as PgBouncer
# 1.18 needs; LISTEN direct), tls (sslmode=require, the cluster's own certificate, prepared statements). Needs wrk and psql (apt-get install wrk), and pgbouncer for that mode. Prints wrk's
# report per mode, the SQL statements one request issues, and a summary table.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-20s}
modes=${2:-direct}
port=${BENCH_PORT:-18080}
pool=${DESKGRAPH_DB_POOL_SIZE:-16}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deskgraph-target}"
own_demo_dir=""
if [ -z "${DESKGRAPH_DEMO_DIR:-}" ]; then own_demo_dir=$(mktemp -d); fi
export DESKGRAPH_DEMO_DIR=${DESKGRAPH_DEMO_DIR:-$own_demo_dir}
export DESKGRAPH_LISTEN=127.0.0.1:$port
export DESKGRAPH_LOG=${DESKGRAPH_LOG:-warn,deskgraph::schema::executor=info}
export DESKGRAPH_LOG_FORMAT=json
export DESKGRAPH_DB_POOL_SIZE=$pool
# Measure the server, not the per-organization rate limit.
export DESKGRAPH_RATE_LIMIT_PER_MINUTE=0
# A database of its own, so the bench neither disturbs nor depends on your demo database.
export DATABASE_ADMIN_URL=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/deskgraph_bench}
direct_url=${DATABASE_URL:-postgres://deskgraph_app@127.0.0.1:5432/deskgraph_bench}
direct_url=${direct_url%%\?*}
export DATABASE_URL="$direct_url?sslmode=disable"

cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/deskgraph"
work=$(mktemp -d)
pid=""
bouncer=""
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
cleanup() {
  stop
  if [ -n "$bouncer" ]; then kill "$bouncer" 2>/dev/null || true; wait "$bouncer" 2>/dev/null || true; fi
  rm -rf "$work" ${own_demo_dir:+"$own_demo_dir"}
}
trap cleanup EXIT
wait_ready() {
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "the server did not become ready; its log:" >&2; tail -n 20 "$1" >&2; exit 1
}

# The demo migrates and seeds the database (and serves it: the set-up below goes through it).
"$bin" demo >"$work/demo.out" 2>"$work/demo.log" &
pid=$!
wait_ready "$work/demo.log"
admin=$DATABASE_ADMIN_URL
secret=$(cat "$DESKGRAPH_DEMO_DIR/jwt-secret")
org=$(psql "$admin" -Atc "select id from organizations where slug = 'acme'")
sub=$(psql "$admin" -Atc "select u.subject from users u join memberships m on m.user_id = u.id where m.org_id = '$org' and m.role = 'agent' order by u.subject limit 1")
token=$("$bin" token --sub "$sub" --ttl 3600 --secret "$secret")
gql() {
  curl -fs "http://127.0.0.1:$port/graphql" -H "authorization: Bearer $token" -H "x-org-id: $org" \
    -H 'content-type: application/json' -d "$1"
}
# The demo's Acme has 26 tickets; top it up so that the page really holds 50.
ws=$(psql "$admin" -Atc "select id from workspaces where org_id = '$org' order by name limit 1")
tickets=$(psql "$admin" -Atc "select count(*) from tickets where org_id = '$org'")
for i in $(seq "$tickets" 59); do
  gql "{\"query\":\"mutation { createTicket(input: {workspaceId: \\\"$ws\\\", title: \\\"Bench ticket $i\\\"}) { id } }\"}" >/dev/null
done
tickets=$(psql "$admin" -Atc "select count(*) from tickets where org_id = '$org'")
stop

query='{ tickets(first: 50) { edges { node { id number title status workspace { name } assignee { name } commentCount } } } }'
body=$(printf '{"query":"%s"}' "$query")
echo "organization acme ($org): $tickets tickets; acting as $sub; pool $pool; modes: $modes"
lua="$work/request.lua"
cat >"$lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $token"
wrk.headers["x-org-id"] = "$org"
LUA

# Starts a PgBouncer of the script's own (in this shell, so cleanup can stop it) and sets $url to it.
start_pgbouncer() {
  local pg_port=16432
  if psql -h 127.0.0.1 -p "$pg_port" -U postgres pgbouncer -Atc 'show version' >/dev/null 2>&1; then
    echo "something already listens on $pg_port (a PgBouncer left by an earlier run?); stop it first" >&2
    exit 1
  fi
  mkdir -p "$work/pgbouncer"
  cat >"$work/pgbouncer/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pg_port
unix_socket_dir =
auth_type = trust
auth_file = $work/pgbouncer/users.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits
INI
  printf '"deskgraph_app" ""\n"postgres" ""\n' >"$work/pgbouncer/users.txt"
  chmod 755 "$work" "$work/pgbouncer"; chmod 644 "$work/pgbouncer/"*
  local as=()
  [ "$(id -u)" = 0 ] && as=(-u postgres)
  pgbouncer "${as[@]}" "$work/pgbouncer/pgbouncer.ini" >"$work/pgbouncer/log" 2>&1 &
  bouncer=$!
  for _ in $(seq 1 50); do psql -h 127.0.0.1 -p "$pg_port" -U postgres pgbouncer -Atc 'show version' >/dev/null 2>&1 && break; sleep 0.1; done
  url="postgres://deskgraph_app@127.0.0.1:$pg_port/deskgraph_bench?sslmode=disable"
}

summary="$work/summary"
printf '%-10s %10s %10s %10s %12s %s\n' mode req/s p50 p99 statements "pooler queries/transaction" >"$summary"
for mode in $modes; do
  listen=""
  prepared=true
  case "$mode" in
    direct) url="$direct_url?sslmode=disable" ;;
    unnamed) url="$direct_url?sslmode=disable"; prepared=false ;;
    tls) url="$direct_url?sslmode=require" ;;
    pgbouncer)
      command -v pgbouncer >/dev/null || { echo "pgbouncer is not installed (apt-get install pgbouncer)" >&2; exit 1; }
      start_pgbouncer; listen="$direct_url?sslmode=disable"; prepared=false ;;
    *) echo "unknown mode $mode (direct, unnamed, pgbouncer, tls)" >&2; exit 1 ;;
  esac
  log="$work/serve-$mode.log"
  DATABASE_URL="$url" DATABASE_LISTEN_URL="$listen" DESKGRAPH_DB_PREPARED_STATEMENTS=$prepared \
    DESKGRAPH_JWT_SECRET="$secret" DESKGRAPH_WORKERS=0 \
    "$bin" serve >"$log" 2>&1 &
  pid=$!
  wait_ready "$log"
  gql "$body" | head -c 200; echo
  pooler_stats() {
    psql -h 127.0.0.1 -p 16432 -U postgres pgbouncer -Atc 'show stats' -F ' ' | awk '$1 == "deskgraph_bench" { print $2, $3 }'
  }
  [ "$mode" = pgbouncer ] && before=$(pooler_stats)
  echo "--- $mode ($url, prepared statements: $prepared)"
  wrk -t2 -c16 -d"$duration" --latency -s "$lua" "http://127.0.0.1:$port/graphql" | tee "$work/wrk-$mode"
  statements=$(grep -o '"sql_statements":[0-9]*' "$log" | tail -n 1 | cut -d: -f2)
  per_xact="-"
  if [ "$mode" = pgbouncer ]; then
    per_xact=$(printf '%s %s\n' "$before" "$(pooler_stats)" |
      awk '{ x = $3 - $1; q = $4 - $2; if (x > 0) printf "%.2f (%d transactions)", q / x, x }')
  fi
  rps=$(awk '/Requests\/sec/ { print $2 }' "$work/wrk-$mode")
  p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk-$mode")
  p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk-$mode")
  printf '%-10s %10s %10s %10s %12s %s\n' "$mode" "$rps" "$p50" "$p99" "${statements:-?}" "$per_xact" >>"$summary"
  stop
done
echo
cat "$summary"
