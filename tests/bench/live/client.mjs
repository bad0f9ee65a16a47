// Live benchmark subscribers: N websockets (one graphql-ws client, so one socket, each) that subscribe
// to `ticketEvents` and record, for every event received, receive time − occurredAt (one machine,
// one clock).
//
//   node client.mjs --ids ids.json --target name=A,host=127.0.0.1:18090,count=1000 [--target …]
//                   --ready READY_FILE --out SUMMARY_FILE [--workers 2] [--ramp 100] [--idle-ms 4000]
//                   [--ready-timeout-ms 300000]
//
// Connections of a target go round-robin over every member of every organization in ids.json (so
// each user holds about count / members of them). They are spread over --workers threads, each with
// its own event loop, so that the client's own work (one JSON message per subscriber and event) does
// not queue behind a single thread; the summary reports how late those loops ran.
// Once every socket is acknowledged and each target's /metrics shows its subscriptions
// (deskgraph_live_subscriptions), it writes READY_FILE and prints READY. Then:
//   SIGUSR1  the updates are all sent: write the summary once no event came for --idle-ms;
//   SIGUSR2  write the summary now;
//   SIGTERM  close every socket and exit (writing the summary first if it has not been written).
// The summary (JSON, in SUMMARY_FILE and on stdout) has, per target and organization, subscribers,
// deliveries, the updates seen and how often each was received, and latency percentiles.
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/** Wall-clock milliseconds with sub-millisecond precision. */
const now = () => performance.timeOrigin + performance.now();

if (isMainThread) {
  await main();
} else {
  await subscriberThread();
}

// ------------------------------------------------------------------------------------------------
// The main thread: plans the sockets, starts the threads, checks readiness, aggregates the summary.

async function main() {
  const { values: opt } = parseArgs({
    options: {
      ids: { type: 'string' },
      target: { type: 'string', multiple: true },
      ready: { type: 'string' },
      out: { type: 'string' },
      workers: { type: 'string', default: '2' },
      ramp: { type: 'string', default: '100' },
      'idle-ms': { type: 'string', default: '4000' },
      'ready-timeout-ms': { type: 'string', default: '300000' },
    },
  });
  for (const name of ['ids', 'target', 'ready', 'out']) {
    if (!opt[name]) throw new Error(`--${name} is required`);
  }
  const ids = JSON.parse(readFileSync(opt.ids, 'utf8'));
  const members = ids.orgs.flatMap((o) =>
    o.users.map((u) => ({ org: o.id, sub: u.sub, token: u.token })),
  );
  const targets = opt.target.map((spec) => {
    const t = Object.fromEntries(spec.split(',').map((kv) => kv.split('=')));
    return { name: t.name, host: t.host, count: Number(t.count), subscriptions: 0 };
  });
  const idleMs = Number(opt['idle-ms']);
  const threads = Math.max(1, Number(opt.workers));
  const plan = targets.flatMap((t) =>
    Array.from({ length: t.count }, (_, i) => ({ target: t.name, host: t.host, ...members[i % members.length] })),
  );

  const started = now();
  const workers = Array.from({ length: threads }, (_, w) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: {
        plan: plan.filter((_, i) => i % threads === w),
        ramp: Math.max(1, Math.floor(Number(opt.ramp) / threads)),
      },
    });
    const handle = { worker, lastEvent: 0, waiters: new Map() };
    worker.on('message', (m) => {
      if (m.type === 'lastEvent') handle.lastEvent = Math.max(handle.lastEvent, m.at);
      const waiter = handle.waiters.get(m.type);
      if (waiter) {
        handle.waiters.delete(m.type);
        waiter(m);
      }
    });
    worker.on('error', (err) => {
      console.error(`client: thread ${w} failed: ${err.stack ?? err}`);
      process.exit(1);
    });
    return handle;
  });
  const ask = (handle, type, reply, extra = {}) =>
    new Promise((resolve) => {
      handle.waiters.set(reply, resolve);
      handle.worker.postMessage({ type, ...extra });
    });
  const awaitMessage = (handle, type) => new Promise((resolve) => handle.waiters.set(type, resolve));

  const acks = await Promise.all(workers.map((h) => awaitMessage(h, 'acked')));
  const acked = acks.reduce((n, m) => n + m.acked, 0);
  console.error(
    `client: ${acked}/${plan.length} sockets acknowledged in ${Math.round(now() - started)} ms over ${threads} threads`,
  );

  let summary = null;
  async function writeSummary(why) {
    if (summary) return summary;
    summary = 'pending';
    const reports = await Promise.all(workers.map((h) => ask(h, 'report', 'report')));
    summary = aggregate(why, targets, ids, reports);
    const json = JSON.stringify(summary, null, 2);
    writeFileSync(opt.out, json);
    console.log(json);
    return summary;
  }

  let stopping = false;
  async function shutdown() {
    if (stopping) return;
    stopping = true;
    await writeSummary('terminated');
    await Promise.all(workers.map((h) => ask(h, 'close', 'closed')));
    process.exit(0);
  }
  let updatesDone = 0;
  process.on('SIGUSR1', () => {
    updatesDone = now();
  });
  process.on('SIGUSR2', () => writeSummary('asked'));
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  // Every subscription is registered on its server once the gauge shows them all.
  const deadline = started + Number(opt['ready-timeout-ms']);
  for (const t of targets) {
    for (;;) {
      t.subscriptions = await metric(t.host, 'deskgraph_live_subscriptions').catch(() => NaN);
      if (t.subscriptions >= t.count) break;
      if (now() > deadline) {
        console.error(`client: target ${t.name} shows ${t.subscriptions}/${t.count} subscriptions; giving up`);
        await writeSummary('not ready');
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  for (const h of workers) h.worker.postMessage({ type: 'running' });
  const ready = {
    sockets: plan.length,
    acked,
    threads,
    subscriptions: Object.fromEntries(targets.map((t) => [t.name, t.subscriptions])),
    rampMs: Math.round(now() - started),
  };
  writeFileSync(opt.ready, JSON.stringify(ready));
  console.error(`READY ${JSON.stringify(ready)}`);

  // After SIGUSR1: finish once nothing arrived for idle-ms.
  const idleCheck = setInterval(() => {
    if (!updatesDone || summary) return;
    const quietSince = Math.max(updatesDone, ...workers.map((h) => h.lastEvent));
    if (now() - quietSince >= idleMs) {
      clearInterval(idleCheck);
      writeSummary('idle');
    }
  }, 100);
}

async function metric(host, name) {
  const text = await (await fetch(`http://${host}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.trim().split(/\s+/).pop()) : NaN;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[i] * 100) / 100;
}

function stats(arrays) {
  const n = arrays.reduce((s, a) => s + a.length, 0);
  const sorted = new Float64Array(n);
  let at = 0;
  for (const a of arrays) {
    sorted.set(a, at);
    at += a.length;
  }
  sorted.sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n,
    min: percentile(sorted, 0),
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: n ? Math.round(sorted[n - 1] * 100) / 100 : null,
    mean: n ? Math.round((sum / n) * 100) / 100 : null,
  };
}

function aggregate(why, targets, ids, reports) {
  const merge = (into, from) => {
    for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
    return into;
  };
  const all = [];
  const out = {
    why,
    targets: targets.map((t) => {
      const parts = reports.map((r) => r.targets[t.name]).filter(Boolean);
      const latencies = parts.map((p) => p.latencies);
      all.push(...latencies);
      return {
        name: t.name,
        host: t.host,
        connections: parts.reduce((n, p) => n + p.connections, 0),
        acked: parts.reduce((n, p) => n + p.acked, 0),
        openAtEnd: parts.reduce((n, p) => n + p.openAtEnd, 0),
        subscriptionsOnServer: t.subscriptions,
        kinds: parts.reduce((k, p) => merge(k, p.kinds), {}),
        latencyMs: stats(latencies),
        orgs: ids.orgs.map((o) => {
          const os = parts.map((p) => p.orgs[o.id]).filter(Boolean);
          const perSeq = os.reduce((m, x) => merge(m, x.perSeq), {});
          const subscribers = os.reduce((n, x) => n + x.subscribers, 0);
          const counts = Object.values(perSeq);
          return {
            id: o.id,
            users: new Set(os.flatMap((x) => x.users)).size,
            subscribers,
            deliveries: os.reduce((n, x) => n + x.deliveries, 0),
            updatesSeen: counts.length,
            minPerUpdate: counts.length ? Math.min(...counts) : 0,
            maxPerUpdate: counts.length ? Math.max(...counts) : 0,
            // Updates fewer subscribers than the organization's got (seq → receipts), at most 20.
            short: Object.fromEntries(
              Object.entries(perSeq).filter(([, n]) => n < subscribers).slice(0, 20),
            ),
          };
        }),
      };
    }),
    latencyMs: stats(all),
    duplicates: reports.reduce((n, r) => n + r.duplicates, 0),
    unparsed: reports.reduce((n, r) => n + r.unparsed, 0),
    closes: reports.reduce((c, r) => merge(c, r.closes), {}),
    errors: reports.flatMap((r) => r.errors).slice(0, 20),
    // How late each thread's event loop ran (beyond its 10 ms sampling timer) while events arrived,
    // the worst thread: large values mean the client, not the server, delayed the receive times.
    clientThreads: reports.length,
    clientEventLoopLagMs: {
      p50: Math.max(...reports.map((r) => r.lag.p50)),
      p99: Math.max(...reports.map((r) => r.lag.p99)),
      max: Math.max(...reports.map((r) => r.lag.max)),
    },
    clientRssMb: Math.round(process.memoryUsage().rss / 1048576),
  };
  return out;
}

// ------------------------------------------------------------------------------------------------
// A subscriber thread: opens its share of the sockets and records what they receive.

async function subscriberThread() {
  const { createClient } = await import('graphql-ws');
  const { default: WebSocket } = await import('ws');
  const QUERY =
    'subscription { ticketEvents { kind occurredAt ticket { id number status priority title } } }';

  /** RFC 3339 with up to nanoseconds → epoch milliseconds (fractional). */
  function parseTime(s) {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s);
    if (!m) return Date.parse(s);
    return Date.parse(m[1] + m[3]) + (m[2] ? Number(`0.${m[2]}`) * 1000 : 0);
  }
  const bump = (map, key) => {
    map[key] = (map[key] ?? 0) + 1;
  };

  const state = {
    phase: 'connecting',
    finished: false,
    lastEvent: 0,
    reported: 0,
    errors: [],
    closes: {},
    duplicates: 0,
    unparsed: 0,
  };
  const targets = {};
  const targetOf = (name) =>
    (targets[name] ??= { connections: 0, conns: [], latencies: [], kinds: {}, orgs: {} });
  const orgOf = (t, id) =>
    (t.orgs[id] ??= { subscribers: 0, deliveries: 0, perSeq: {}, users: new Set() });

  function onEvent(conn, message) {
    const received = now();
    if (message.errors) {
      if (state.errors.length < 20) state.errors.push(`event with errors: ${JSON.stringify(message.errors)}`);
      return;
    }
    const event = message.data?.ticketEvents;
    if (!event) {
      state.unparsed += 1;
      return;
    }
    const t = targetOf(conn.target);
    bump(t.kinds, event.kind);
    if (event.kind === 'RESYNC') return;
    state.lastEvent = received;
    t.latencies.push(received - parseTime(event.occurredAt));
    const org = orgOf(t, conn.org);
    org.deliveries += 1;
    const seq = /#(\d+)$/.exec(event.ticket?.title ?? '')?.[1];
    if (seq === undefined) {
      state.unparsed += 1;
      return;
    }
    if (conn.seen.has(seq)) state.duplicates += 1;
    conn.seen.add(seq);
    bump(org.perSeq, seq);
  }

  function open(entry) {
    const conn = { target: entry.target, org: entry.org, acked: false, closed: null, seen: new Set() };
    const t = targetOf(entry.target);
    t.connections += 1;
    t.conns.push(conn);
    const org = orgOf(t, entry.org);
    org.subscribers += 1;
    org.users.add(entry.sub);
    return new Promise((resolve) => {
      let settled = false;
      const settle = () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      conn.client = createClient({
        url: `ws://${entry.host}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${entry.token}`, 'x-org-id': entry.org },
        lazy: false,
        retryAttempts: 0,
        connectionAckWaitTimeout: 120_000,
        onNonLazyError: () => {},
        on: {
          connected: () => {
            conn.acked = true;
            settle();
          },
          closed: (event) => {
            conn.closed = { code: event?.code, reason: event?.reason };
            if (!state.finished) bump(state.closes, `${state.phase}: ${event?.code} ${event?.reason ?? ''}`.trim());
            settle();
          },
          error: (err) => {
            if (state.errors.length < 20) state.errors.push(`${state.phase}: ${err?.message ?? String(err)}`);
            settle();
          },
        },
      });
      conn.client.subscribe(
        { query: QUERY },
        {
          next: (message) => onEvent(conn, message),
          error: (err) => {
            if (state.errors.length < 20) {
              state.errors.push(`${state.phase}: subscription error: ${JSON.stringify(err?.message ?? err)}`);
            }
          },
          complete: () => {},
        },
      );
    });
  }

  // At most `ramp` sockets of this thread wait for their acknowledgement at once.
  const { plan, ramp } = workerData;
  let next = 0;
  const opener = async () => {
    while (next < plan.length) await open(plan[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(ramp, plan.length) }, opener));
  const acked = Object.values(targets).reduce((n, t) => n + t.conns.filter((c) => c.acked).length, 0);
  parentPort.postMessage({ type: 'acked', acked });

  const loop = monitorEventLoopDelay({ resolution: 10 });
  const lag = (ns) => Math.max(0, Math.round((ns / 1e6 - 10) * 100) / 100);
  const ticker = setInterval(() => {
    if (state.lastEvent > state.reported) {
      state.reported = state.lastEvent;
      parentPort.postMessage({ type: 'lastEvent', at: state.lastEvent });
    }
  }, 100);

  parentPort.on('message', (m) => {
    if (m.type === 'running') {
      state.phase = 'running';
      loop.enable();
    } else if (m.type === 'report') {
      state.finished = true;
      loop.disable();
      const out = {};
      for (const [name, t] of Object.entries(targets)) {
        out[name] = {
          connections: t.connections,
          acked: t.conns.filter((c) => c.acked).length,
          openAtEnd: t.conns.filter((c) => c.acked && !c.closed).length,
          kinds: t.kinds,
          latencies: Float64Array.from(t.latencies),
          orgs: Object.fromEntries(
            Object.entries(t.orgs).map(([id, o]) => [id, { ...o, users: [...o.users] }]),
          ),
        };
      }
      parentPort.postMessage({
        type: 'report',
        targets: out,
        duplicates: state.duplicates,
        unparsed: state.unparsed,
        closes: state.closes,
        errors: state.errors,
        lag: { p50: lag(loop.percentile(50)), p99: lag(loop.percentile(99)), max: lag(loop.max) },
      });
    } else if (m.type === 'close') {
      state.finished = true;
      clearInterval(ticker);
      for (const t of Object.values(targets)) for (const c of t.conns) c.client.dispose();
      parentPort.postMessage({ type: 'closed' });
    }
  });
}
