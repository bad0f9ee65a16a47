#!/usr/bin/env bash
# Live desk benchmark: GraphQL subscriptions (`ticketEvents` over graphql-transport-ws) under a stream
# of ticket updates, on a release build and a database of its own. Three runs, each on fresh servers:
#   small   1 instance,  SMALL_SUBSCRIBERS (200) sockets
#   one     1 instance,  SUBSCRIBERS (2,000) sockets
#   two     2 instances on one database, SUBSCRIBERS/2 sockets on each; the updates go to instance A
#           only, so B's subscribers hear of them through LISTEN/NOTIFY
# always over the same 2 organizations × 10 members (owner, admin, agents, 2 viewers): the sockets go
# round-robin over the 20 users. Per run: UPDATES (200) `updateTicket` mutations over HTTP at RATE (20)
# per second, alternating between the organizations and going round 50 tickets each (a ticket changes
# again only after 5 s, never within the 50 ms coalescing window).
# Measured per instance:
#   - delivery latency = client receive time − the event's occurredAt (the change's time in the
#     database; same machine, same clock): p50, p99, max over every delivery;
#   - deliveries against the expected count (every subscriber of an organization, each update of it);
#   - SQL statements of the re-reads (deskgraph_live_reread_sql_statements) per event heard and per
#     batch: the re-read is per subscriber identity, so per event it must not grow with the sockets
#     a user holds (compare `small` and `one`);
#   - server memory from /proc/<pid>/status: VmRSS before any subscriber, with them, after the updates,
#     and VmHWM (the peak) at the end;
#   - dropped events, sockets the server closed, WARN/ERROR lines of the server log.
# A benchmark, not a test: it prints numbers and asserts nothing about them.
#
#   tests/bench/live.sh
#   SUBSCRIBERS=2000 SMALL_SUBSCRIBERS=200 UPDATES=200 RATE=20 RUNS=small,one,two CLIENT_THREADS=2 \
#     tests/bench/live.sh
# The client shares the machine with the servers and PostgreSQL: its receive times include its own
# queueing, which the summary shows as the client's event-loop lag (CLIENT_THREADS spreads the sockets
# over more event loops).
# Needs node ≥ 20 and npm (it runs `npm ci` in tests/bench/live), curl, psql and a local PostgreSQL where
# `postgres` logs in without a password (BENCH_ADMIN_SERVER, default postgres://postgres@127.0.0.1:5432;
# the runtime role through BENCH_APP_SERVER). Works in database BENCH_DB (deskgraph_bench_live), which it
# drops before and after. Leaves its logs and JSON in a temporary folder (printed at the end); stops its
# servers and drops its database on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
subscribers=${SUBSCRIBERS:-2000}
small=${SMALL_SUBSCRIBERS:-200}
updates=${UPDATES:-200}
rate=${RATE:-20}
runs=${RUNS:-small,one,two}
# Threads of the Node client (each an event loop of its own, holding an equal share of the sockets).
client_threads=${CLIENT_THREADS:-2}
port=${BENCH_PORT:-18090}
port_b=$((port + 1))
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/deskgraph-target}"
export DESKGRAPH_LOG=${DESKGRAPH_LOG:-warn,deskgraph=info}
export NO_COLOR=1
# Measure the live path: no rate limit, no job workers (finished analyses would be events too), no
# background allowance grants.
export DESKGRAPH_RATE_LIMIT_PER_MINUTE=0
export DESKGRAPH_WORKERS=0
export DESKGRAPH_ALLOWANCE_INTERVAL_SECS=0
# Two instances with 20 connections each (+ one LISTEN connection each) fit PostgreSQL's default 100.
export DESKGRAPH_DB_POOL_SIZE=${DESKGRAPH_DB_POOL_SIZE:-20}
export DESKGRAPH_WS_MAX_CONNECTIONS_PER_ORG=${DESKGRAPH_WS_MAX_CONNECTIONS_PER_ORG:-100000}
export DESKGRAPH_JWT_SECRET=${DESKGRAPH_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
# A database of its own, dropped at the end: never one named by an inherited DATABASE_*_URL.
db=${BENCH_DB:-deskgraph_bench_live}
case $db in deskgraph_bench_*) ;; *) echo "BENCH_DB must start with deskgraph_bench_" >&2; exit 2 ;; esac
admin_server=${BENCH_ADMIN_SERVER:-postgres://postgres@127.0.0.1:5432}
app_server=${BENCH_APP_SERVER:-postgres://deskgraph_app@127.0.0.1:5432}
export DATABASE_ADMIN_URL=$admin_server/$db
export DATABASE_URL=$app_server/$db
unset DATABASE_LISTEN_URL
maintenance_url=$admin_server/postgres

# One socket per subscriber, on both sides of the connection.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d -t deskgraph-live-bench.XXXXXX)
declare -A server_pids=()
client_pid=
cleanup() {
  local status=$?
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null || true
  for name in "${!server_pids[@]}"; do
    kill "${server_pids[$name]}" 2>/dev/null && wait "${server_pids[$name]}" 2>/dev/null || true
  done
  psql "$maintenance_url" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
  echo "logs and raw results: $work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building (release) and installing the client"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/deskgraph"
(cd tests/bench/live && npm ci --no-audit --no-fund --silent)
client_dir=$root/tests/bench/live

psql "$maintenance_url" -qc "drop database if exists \"$db\" with (force)" >/dev/null
"$bin" migrate >"$work/migrate.log" 2>&1

# start_server NAME PORT LOG: starts `deskgraph serve` and waits until it is ready.
start_server() {
  local name=$1 listen_port=$2 log=$3
  DESKGRAPH_LISTEN=127.0.0.1:$listen_port "$bin" serve >"$log" 2>&1 &
  server_pids[$name]=$!
  for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:$listen_port/readyz" >/dev/null 2>&1 && return 0
    kill -0 "${server_pids[$name]}" 2>/dev/null || break
    sleep 0.5
  done
  echo "server $name did not become ready; its log:" >&2
  tail -n 30 "$log" >&2
  return 1
}

stop_servers() {
  for name in "${!server_pids[@]}"; do
    kill "${server_pids[$name]}" 2>/dev/null || true
    wait "${server_pids[$name]}" 2>/dev/null || true
    unset "server_pids[$name]"
  done
}

snapshot_status() { # NAME FILE_PREFIX: memory (status) and CPU time (stat) of the server
  cat "/proc/${server_pids[$1]}/status" >"$2"
  cat "/proc/${server_pids[$1]}/stat" >"${2/.status./.stat.}"
}

echo "== setup: 2 organizations × 10 members, 50 tickets each"
start_server setup "$port" "$work/setup.log"
node "$client_dir/setup.mjs" --http "http://127.0.0.1:$port" --bin "$bin" --out "$work/ids.json" \
  --orgs 2 --users 10 --tickets 50 --ttl 7200
stop_servers

# run NAME SUBSCRIBERS_ON_A [SUBSCRIBERS_ON_B]
run() {
  local name=$1 on_a=$2 on_b=${3:-0}
  local dir="$work/$name"
  mkdir -p "$dir"
  if [ "$on_b" -gt 0 ]; then
    echo "== run $name: $on_a subscribers on instance A, $on_b on instance B ($(date +%T))"
  else
    echo "== run $name: $on_a subscribers on one instance ($(date +%T))"
  fi
  local names=(A)
  # Other work on the machine skews the numbers: keep the load and the busiest processes with the run.
  cut -d' ' -f1-3 /proc/loadavg >"$dir/loadavg.start"
  ps -eo pcpu,etime,comm --sort=-pcpu | head -n 6 >"$dir/ps.start"
  start_server A "$port" "$dir/A.log"
  local targets=(--target "name=A,host=127.0.0.1:$port,count=$on_a")
  if [ "$on_b" -gt 0 ]; then
    start_server B "$port_b" "$dir/B.log"
    names+=(B)
    targets+=(--target "name=B,host=127.0.0.1:$port_b,count=$on_b")
  fi
  sleep 2
  for n in "${names[@]}"; do snapshot_status "$n" "$dir/$n.status.idle"; done

  node "$client_dir/client.mjs" --ids "$work/ids.json" "${targets[@]}" \
    --workers "$client_threads" --ready "$dir/ready.json" --out "$dir/client.json" \
    >"$dir/client.out" 2>"$dir/client.err" &
  client_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$dir/ready.json" ] && break
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.5
  done
  if [ ! -s "$dir/ready.json" ]; then
    echo "the subscribers did not get ready; client:" >&2
    tail -n 20 "$dir/client.err" >&2
    return 1
  fi
  echo "   $(grep -h READY "$dir/client.err")"
  sleep 2
  for n in "${names[@]}"; do
    snapshot_status "$n" "$dir/$n.status.subscribed"
    curl -fs "http://127.0.0.1:$([ "$n" = A ] && echo "$port" || echo "$port_b")/metrics" >"$dir/$n.metrics.before"
  done

  node "$client_dir/update.mjs" --http "http://127.0.0.1:$port" --ids "$work/ids.json" \
    --count "$updates" --rate "$rate" --label "$name" --out "$dir/updates.json"
  # The updates are sent: the client writes its summary once no event came for 4 s (at most 60 s).
  kill -USR1 "$client_pid"
  for _ in $(seq 1 600); do
    [ -s "$dir/client.json" ] && break
    sleep 0.1
  done
  [ -s "$dir/client.json" ] || { kill -USR2 "$client_pid"; sleep 2; }
  for n in "${names[@]}"; do
    curl -fs "http://127.0.0.1:$([ "$n" = A ] && echo "$port" || echo "$port_b")/metrics" >"$dir/$n.metrics.after"
    snapshot_status "$n" "$dir/$n.status.after"
  done
  cut -d' ' -f1-3 /proc/loadavg >"$dir/loadavg.end"
  ps -eo pcpu,etime,comm --sort=-pcpu | head -n 6 >"$dir/ps.end"
  kill "$client_pid" 2>/dev/null || true
  wait "$client_pid" 2>/dev/null || true
  client_pid=
  stop_servers
  for n in "${names[@]}"; do
    grep -E '\b(WARN|ERROR)\b' "$dir/$n.log" >"$dir/$n.problems" || true
  done
}

IFS=, read -ra wanted <<<"$runs"
done_runs=()
for r in "${wanted[@]}"; do
  case $r in
    small) run small "$small" ;;
    one) run one "$subscribers" ;;
    two) run two $((subscribers / 2)) $((subscribers - subscribers / 2)) ;;
    *) echo "unknown run $r (small, one, two)" >&2; exit 2 ;;
  esac
  done_runs+=("$r")
done

echo
echo "== results: $(nproc) CPUs; $updates updates at $rate/s per run; coalescing window ${DESKGRAPH_LIVE_COALESCE_MS:-50} ms; client threads $client_threads"
node "$client_dir/report.mjs" --dir "$work" --runs "$(IFS=,; echo "${done_runs[*]}")"
