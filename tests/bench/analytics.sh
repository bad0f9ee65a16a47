#!/usr/bin/env bash
# How fast the analytics are on large tenants, against `deskgraph demo` (release build, its own
# database): 200,000 tickets per organization in two organizations (a year of history, with
# comments, finished analyses and ledger entries), then the `Dashboard` persisted operation over 90
# days in DAY buckets, run N times in a row by the owner: p50/p99 latency and the SQL statements it
# sends (from the server's operation log).
#   tests/bench/analytics.sh [runs, default 50] [tickets per organization, default 200000]
# Needs curl, psql and python3. The bulk load writes straight into the tables as the superuser with
# triggers off (session_replication_role = replica): it stands for history, not for API traffic, so
# it is not audited and announces nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-50}
per_org=${2:-200000}
port=${BENCH_PORT:-18083}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deskgraph-target}"
export DESKGRAPH_DEMO_DIR=${DESKGRAPH_DEMO_DIR:-$(mktemp -d)}
export DESKGRAPH_LISTEN=127.0.0.1:$port
export DESKGRAPH_LOG=${DESKGRAPH_LOG:-warn,deskgraph::schema::executor=info}
export DESKGRAPH_LOG_FORMAT=json
export DESKGRAPH_RATE_LIMIT_PER_MINUTE=0
export DESKGRAPH_ALLOWANCE_INTERVAL_SECS=0
export DESKGRAPH_WORKERS=0
export DATABASE_ADMIN_URL=${DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/deskgraph_bench_analytics}
export DATABASE_URL=${DATABASE_URL:-postgres://deskgraph_app@127.0.0.1:5432/deskgraph_bench_analytics}
admin=$DATABASE_ADMIN_URL

cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/deskgraph"
log=$(mktemp)
psql "${admin%/*}/postgres" -qc "drop database if exists ${admin##*/} with (force)" >/dev/null
"$bin" demo >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; echo "server log: $log"' EXIT
for _ in $(seq 1 240); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.5; done

echo "loading $per_org tickets per organization (two organizations)…"
started=$(date +%s)
for slug in acme globex; do
  psql "$admin" -q -v ON_ERROR_STOP=1 -v slug="$slug" -v n="$per_org" <<'SQL'
set session_replication_role = replica;
select id as org from organizations where slug = :'slug' \gset
create temporary table members as
  select row_number() over (order by user_id) as i, user_id from memberships where org_id = :'org';
create temporary table spaces as
  select row_number() over (order by id) as i, id from workspaces where org_id = :'org';
select coalesce(max(number), 0) as base from tickets where org_id = :'org' \gset
-- A year of tickets, one every ~158 s; 70 % resolved some hours later, a third of them closed.
insert into tickets (org_id, id, number, workspace_id, title, description, status, priority,
                     assignee_id, created_at, updated_at, resolved_at, priority_source)
select :'org', gen_random_uuid(), :base + g,
       (select id from spaces where i = 1 + g % (select count(*) from spaces)),
       'Bulk ticket ' || g, 'History for the analytics benchmark.',
       case when g % 10 < 7 then (case when g % 3 = 0 then 'closed' else 'resolved' end)
            when g % 10 = 7 then 'pending' else 'open' end,
       (array['low', 'medium', 'high', 'critical'])[1 + g % 4],
       case when g % 5 = 0 then null
            else (select user_id from members where i = 1 + g % (select count(*) from members)) end,
       c, c, case when g % 10 < 7 then c + make_interval(mins => 30 + (g * 7919) % 4000) end, 'human'
  from generate_series(1, :n) g,
       lateral (select now() - interval '365 days' + g * (interval '365 days' / :n) as c) t;
update ticket_counters set last_number = :base + :n where org_id = :'org';
-- Two comments per ticket: an internal note and a public reply by a member (an API key's, every
-- tenth ticket).
insert into ticket_comments (org_id, ticket_id, author_id, body, internal, created_at)
select t.org_id, t.id, (select user_id from members where i = 1), 'Looking into it.', true,
       t.created_at + interval '5 minutes'
  from tickets t where t.org_id = :'org' and t.title like 'Bulk ticket %';
insert into ticket_comments (org_id, ticket_id, author_id, api_key_id, body, internal, created_at)
select t.org_id, t.id, (select user_id from members where i = 1 + t.number % (select count(*) from members)),
       null, 'Thanks, we are on it.', false,
       t.created_at + make_interval(mins => (10 + (t.number * 104729) % 600)::int)
  from tickets t where t.org_id = :'org' and t.title like 'Bulk ticket %' and t.number % 10 <> 0;
-- One finished analysis per ticket (a twentieth failed), paid with a hold and its capture.
insert into credit_ledger (org_id, id, kind, amount, held_change, balance_after, held_after,
                           idempotency_key, created_at)
select t.org_id, gen_random_uuid(), 'HOLD', -5, 5, 1000, 5, 'bulk-hold-' || t.id, t.created_at
  from tickets t where t.org_id = :'org' and t.title like 'Bulk ticket %';
insert into credit_ledger (org_id, id, kind, amount, held_change, balance_after, held_after, hold_id,
                           idempotency_key, created_at)
select h.org_id, gen_random_uuid(), 'CAPTURE', 0, -2, 1000, 0, h.id, 'bulk-capture-' || h.id,
       h.created_at + interval '2 seconds'
  from credit_ledger h where h.org_id = :'org' and h.idempotency_key like 'bulk-hold-%';
insert into credit_ledger (org_id, id, kind, amount, held_change, balance_after, held_after,
                           idempotency_key, created_at)
select :'org', gen_random_uuid(), 'PURCHASE', 1000, 0, 1000, 0, 'bulk-purchase-' || d, d
  from generate_series(now() - interval '365 days', now(), interval '7 days') d;
insert into ticket_analyses (org_id, ticket_id, status, reason, content_hash, provider, model,
                             prompt_version, priority, category, sentiment, language,
                             prompt_tokens, completion_tokens, credits_held, credits_charged,
                             created_at, started_at, finished_at)
select t.org_id, t.id, case when t.number % 20 = 0 then 'failed' else 'done' end, 'created',
       md5(t.id::text), 'bench', 'bench-model', 'v1', t.priority,
       (array['billing', 'bug', 'account', 'feature_request', 'how_to', 'other'])[1 + t.number % 6],
       (array['negative', 'neutral', 'positive'])[1 + t.number % 3],
       (array['eng', 'deu', 'fra', 'und'])[1 + t.number % 4],
       300 + t.number % 200, 80 + t.number % 50, 5, 2,
       t.created_at, t.created_at, t.created_at + interval '2 seconds'
  from tickets t where t.org_id = :'org' and t.title like 'Bulk ticket %';
SQL
done
psql "$admin" -qc "vacuum analyze" >/dev/null
echo "loaded in $(( $(date +%s) - started )) s: $(psql "$admin" -Atc "select count(*) from tickets") tickets, \
$(psql "$admin" -Atc "select count(*) from ticket_comments") comments, \
$(psql "$admin" -Atc "select count(*) from ticket_analyses") analyses, \
$(psql "$admin" -Atc "select count(*) from credit_ledger") ledger entries"

org=$(psql "$admin" -Atc "select id from organizations where slug = 'acme'")
owner_subject=$(psql "$admin" -Atc "select u.subject from users u join memberships m on m.user_id = u.id
                                    where m.org_id = '$org' and m.role = 'owner' limit 1")
secret=$(cat "$DESKGRAPH_DEMO_DIR/jwt-secret")
owner=$("$bin" token --sub "$owner_subject" --ttl 7200 --secret "$secret")
body=$(python3 - <<PY
import json, datetime
to = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
frm = to - datetime.timedelta(days=90)
query = open("schema/persisted/dashboard.graphql").read()
print(json.dumps({"query": query, "variables": {"from": frm.isoformat(), "to": to.isoformat(),
                  "timeZone": "Europe/Berlin", "interval": "DAY"}}))
PY
)
times=$(mktemp)
: >"$log.mark"
mark=$(wc -l <"$log")
for i in $(seq 1 "$runs"); do
  curl -s -o /dev/null -w '%{time_total}\n' -X POST "http://127.0.0.1:$port/graphql" \
    -H 'content-type: application/json' -H "authorization: Bearer $owner" -H "x-org-id: $org" \
    --data "$body" >>"$times"
done
check=$(curl -s -X POST "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' \
  -H "authorization: Bearer $owner" -H "x-org-id: $org" --data "$body")
python3 - "$times" "$log" "$mark" "$check" <<'PY'
import json, sys
times = sorted(float(t) * 1000 for t in open(sys.argv[1]))
def pct(p):
    k = (len(times) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(times) - 1)
    return times[lo] + (times[hi] - times[lo]) * (k - lo)
statements = []
for line in open(sys.argv[2]).readlines()[int(sys.argv[3]):]:
    try:
        fields = json.loads(line)
    except ValueError:
        continue
    if fields.get("message") == "graphql operation":
        statements.append(fields.get("sql_statements"))
check = json.loads(sys.argv[4])
assert "errors" not in check, check
a = check["data"]["analytics"]
print(f"Dashboard, 90 days, DAY buckets, {len(times)} runs: p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, "
      f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms")
print(f"SQL statements per run (BEGIN, context and COMMIT included): {sorted(set(statements))}")
print(f"buckets {len(a['ticketVolume'])}, tickets filed in the window "
      f"{sum(p['created'] for p in a['ticketVolume'])}, resolution count {a['resolutionTime']['count']}, "
      f"first responses {a['firstResponseTime']['count']}, analyses {a['aiUsage']['analyses']}")
PY
