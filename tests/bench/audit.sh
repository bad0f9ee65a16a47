#!/usr/bin/env bash
# What the audit trail costs, against `deskgraph demo` (release build, its own database):
#  1. single-row `updateTicket` throughput (wrk, 16 connections, random tickets of one organization)
#     as shipped, without the live-subscription NOTIFY trigger, with the audit trigger off, and with
#     neither it nor the organization write lock;
#  2. `verifyAuditChain` over an organization with at least 100,000 audit entries.
#   tests/bench/audit.sh [duration per run, default 15s]     (SKIP_VERIFY=1: part 1 only)
# Needs wrk (apt-get install wrk), curl and psql. The "off" runs change the bench database only, and
# restore it before the script ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-15s}
port=${BENCH_PORT:-18081}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deskgraph-target}"
export DESKGRAPH_DEMO_DIR=${DESKGRAPH_DEMO_DIR:-$(mktemp -d)}
export DESKGRAPH_LISTEN=127.0.0.1:$port
export DESKGRAPH_LOG=${DESKGRAPH_LOG:-warn}
export DESKGRAPH_RATE_LIMIT_PER_MINUTE=0
export DESKGRAPH_ALLOWANCE_INTERVAL_SECS=0
export DATABASE_ADMIN_URL=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/deskgraph_bench_audit}
export DATABASE_URL=${DATABASE_URL:-postgres://deskgraph_app@127.0.0.1:5432/deskgraph_bench_audit}
admin=$DATABASE_ADMIN_URL

cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/deskgraph"
"$bin" demo >/dev/null 2>&1 &
pid=$!
restore() {
  psql "$admin" -qc "alter table tickets enable trigger audit" 2>/dev/null || true
  psql "$admin" -qc "alter table tickets enable trigger live_notify" 2>/dev/null || true
  psql "$admin" -qc "create or replace function app.lock_org_for_writes(p_org_id uuid) returns void
    language sql volatile as \$\$ select pg_advisory_xact_lock(hashtextextended('deskgraph.org:' || p_org_id::text, 0))
    where p_org_id is not null \$\$" 2>/dev/null || true
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
}
trap restore EXIT
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.5; done

org=$(psql "$admin" -Atc "select id from organizations where slug = 'acme'")
subject() {
  psql "$admin" -Atc "select u.subject from users u join memberships m on m.user_id = u.id
                      where m.org_id = '$org' and m.role = '$1' order by u.subject limit 1"
}
secret=$(cat "$DESKGRAPH_DEMO_DIR/jwt-secret")
agent=$("$bin" token --sub "$(subject agent)" --ttl 7200 --secret "$secret")
owner=$("$bin" token --sub "$(subject owner)" --ttl 7200 --secret "$secret")
ids=$(psql "$admin" -Atc "select string_agg('\"' || id || '\"', ',') from tickets where org_id = '$org'")
echo "organization acme ($org): $(psql "$admin" -Atc "select count(*) from tickets where org_id = '$org'") tickets"

lua=$(mktemp --suffix .lua)
cat >"$lua" <<LUA
local ids = { $ids }
local n = 0
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $agent"
wrk.headers["x-org-id"] = "$org"
request = function()
  n = n + 1
  local id = ids[math.random(#ids)]
  local body = '{"query":"mutation(\$id: ID!, \$t: String!) { updateTicket(id: \$id, input: {title: \$t}) { id } }",'
    .. '"variables":{"id":"' .. id .. '","t":"Bench title ' .. n .. ' ' .. math.random(1000000) .. '"}}'
  return wrk.format(nil, nil, nil, body)
end
LUA
run() {
  echo "== updateTicket, $1"
  wrk -t2 -c16 -d"$duration" --latency -s "$lua" "http://127.0.0.1:$port/graphql" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors" || true
}
run "audit trigger on (as shipped)"
# What live subscriptions cost writers: the NOTIFY each ticket change sends at commit.
psql "$admin" -qc "alter table tickets disable trigger live_notify"
run "as shipped but without live notifications"
psql "$admin" -qc "alter table tickets enable trigger live_notify"
psql "$admin" -qc "alter table tickets disable trigger audit"
run "audit trigger off"
psql "$admin" -qc "create or replace function app.lock_org_for_writes(p_org_id uuid) returns void language sql volatile as \$\$ select \$\$"
run "audit trigger and organization write lock off"
restore_lock_and_trigger() {
  psql "$admin" -qc "alter table tickets enable trigger audit"
  psql "$admin" -qc "create or replace function app.lock_org_for_writes(p_org_id uuid) returns void
    language sql volatile as \$\$ select pg_advisory_xact_lock(hashtextextended('deskgraph.org:' || p_org_id::text, 0))
    where p_org_id is not null \$\$"
}
restore_lock_and_trigger

[ "${SKIP_VERIFY:-0}" = 1 ] && exit 0

# Grow the trail to 100,000 entries with plain updates as the runtime role (each changes one row).
entries=$(psql "$admin" -Atc "select count(*) from audit_log where org_id = '$org'")
if [ "$entries" -lt 100000 ]; then
  tickets=$(psql "$admin" -Atc "select count(*) from tickets where org_id = '$org'")
  rounds=$(( (100000 - entries + tickets - 1) / tickets ))
  psql "postgres://deskgraph_app@127.0.0.1:5432/${admin##*/}" -q -v ON_ERROR_STOP=1 <<SQL
begin;
select set_config('app.org_id', '$org', true), set_config('app.role', 'agent', true),
       set_config('app.request_id', 'bench-fill', true);
do \$\$
begin
  for i in 1..$rounds loop
    update tickets set title = 'Filler ' || i || ' ' || number;
  end loop;
end
\$\$;
commit;
SQL
fi
# Owners may read audit_log; count as the superuser.
echo "== verifyAuditChain over $(psql "$admin" -Atc "select count(*) from audit_log where org_id = '$org'") entries"
for i in 1 2 3; do
  curl -fs -o /tmp/verify.json -w "run $i: %{time_total} s\n" "http://127.0.0.1:$port/graphql" \
    -H "authorization: Bearer $owner" -H "x-org-id: $org" -H 'content-type: application/json' \
    -d '{"query":"{ verifyAuditChain { ok checkedEntries firstBrokenSeq } }"}'
done
cat /tmp/verify.json; echo
