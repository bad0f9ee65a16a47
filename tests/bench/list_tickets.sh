#!/usr/bin/env bash
# Load benchmark: "first 50 tickets with workspace, assignee, commentCount" against `deskgraph demo`
# (release build, demo data on the local PostgreSQL), with wrk at concurrency 16.
#   tests/bench/list_tickets.sh [duration, default 20s]
# Needs wrk (apt-get install wrk) and psql. Prints wrk's report and the SQL statements one request issues.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-20s}
port=${BENCH_PORT:-18080}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deskgraph-target}"
export DESKGRAPH_DEMO_DIR=${DESKGRAPH_DEMO_DIR:-$(mktemp -d)}
export DESKGRAPH_LISTEN=127.0.0.1:$port
export DESKGRAPH_LOG=${DESKGRAPH_LOG:-warn,deskgraph::schema::executor=info}
export DESKGRAPH_LOG_FORMAT=json
# Measure the server, not the per-organization rate limit.
export DESKGRAPH_RATE_LIMIT_PER_MINUTE=0
# A database of its own, so the bench neither disturbs nor depends on your demo database.
export DATABASE_ADMIN_URL=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/deskgraph_bench}
export DATABASE_URL=${DATABASE_URL:-postgres://deskgraph_app@127.0.0.1:5432/deskgraph_bench}

cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/deskgraph"
log=$(mktemp)
"$bin" demo >"$log.out" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.5; done

admin=$DATABASE_ADMIN_URL
org=$(psql "$admin" -Atc "select id from organizations where slug = 'acme'")
sub=$(psql "$admin" -Atc "select u.subject from users u join memberships m on m.user_id = u.id where m.org_id = '$org' and m.role = 'agent' order by u.subject limit 1")
token=$("$bin" token --sub "$sub" --ttl 3600 --secret "$(cat "$DESKGRAPH_DEMO_DIR/jwt-secret")")
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

query='{ tickets(first: 50) { edges { node { id number title status workspace { name } assignee { name } commentCount } } } }'
body=$(printf '{"query":"%s"}' "$query")
echo "organization acme ($org): $tickets tickets; acting as $sub"
gql "$body" | head -c 300; echo

lua=$(mktemp --suffix .lua)
cat >"$lua" <<LUA
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $token"
wrk.headers["x-org-id"] = "$org"
LUA
wrk -t2 -c16 -d"$duration" --latency -s "$lua" "http://127.0.0.1:$port/graphql"
echo "SQL statements per request (from the executor's log): $(grep -o '"sql_statements":[0-9]*' "$log" | tail -n 1 | cut -d: -f2)"
