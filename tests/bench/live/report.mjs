// Summarises the runs of tests/bench/live.sh: reads each run's folder (the client's and the updater's
// JSON, /metrics before and after the updates, /proc/<pid>/status snapshots, the server logs' WARN and
// ERROR lines) and prints one table, then the details. Also writes summary.json next to the runs.
//
//   node report.mjs --dir WORK_DIR --runs name1,name2,…
// Each run folder holds: client.json, updates.json, ready.json, and per instance X:
// X.metrics.before, X.metrics.after, X.status.idle, X.status.subscribed, X.status.after, X.problems.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: { dir: { type: 'string' }, runs: { type: 'string' } },
});

const read = (path, fallback = null) => (existsSync(path) ? readFileSync(path, 'utf8') : fallback);
const readJson = (path) => {
  const text = read(path);
  return text ? JSON.parse(text) : null;
};

/** OpenMetrics text → { "name{labels}": value }. */
function metrics(text) {
  const out = {};
  for (const line of (text ?? '').split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+?)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) out[m[1] + (m[2] ?? '')] = Number(m[3]);
  }
  return out;
}

/** /proc/<pid>/status → { VmRSS, VmHWM } in MB. */
function status(text) {
  const out = {};
  for (const key of ['VmRSS', 'VmHWM']) {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text ?? '');
    out[key] = m ? Math.round(Number(m[1]) / 1024) : null;
  }
  return out;
}

/** Upper bound of the bucket holding the p-th percentile of a histogram delta. */
function histogramPercentile(before, after, name, p) {
  const buckets = Object.keys(after)
    .filter((k) => k.startsWith(`${name}_bucket{`))
    .map((k) => {
      const le = /le="([^"]+)"/.exec(k)[1];
      return { le: le === '+Inf' ? Infinity : Number(le), n: after[k] - (before[k] ?? 0) };
    })
    .sort((a, b) => a.le - b.le);
  const total = buckets.length ? buckets[buckets.length - 1].n : 0;
  if (!total) return null;
  const want = (p / 100) * total;
  return buckets.find((b) => b.n >= want)?.le ?? null;
}

const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(digits));

const rows = [];
const details = [];
for (const run of opt.runs.split(',')) {
  const dir = join(opt.dir, run);
  const client = readJson(join(dir, 'client.json'));
  const updates = readJson(join(dir, 'updates.json'));
  const ready = readJson(join(dir, 'ready.json'));
  if (!client || !updates) {
    rows.push({ run, instance: '-', note: 'no results (see its folder)' });
    continue;
  }
  for (const target of client.targets) {
    const name = target.name;
    const before = metrics(read(join(dir, `${name}.metrics.before`)));
    const after = metrics(read(join(dir, `${name}.metrics.after`)));
    const d = (key) => (after[key] ?? 0) - (before[key] ?? 0);
    const events = d('deskgraph_live_events_received_total');
    const statements = d('deskgraph_live_reread_sql_statements_sum');
    const batches = d('deskgraph_live_reread_sql_statements_count');
    const rereadSeconds = d('deskgraph_live_reread_duration_seconds_sum');
    const closed = Object.keys(after)
      .filter((k) => k.startsWith('deskgraph_ws_closed_total'))
      .map((k) => [/reason="([^"]*)"/.exec(k)?.[1], after[k] - (before[k] ?? 0)])
      .filter(([, n]) => n > 0);
    const expected = target.orgs.reduce(
      (n, o) => n + o.subscribers * (updates.perOrg[o.id]?.ok ?? 0),
      0,
    );
    const deliveries = target.orgs.reduce((n, o) => n + o.deliveries, 0);
    const idle = status(read(join(dir, `${name}.status.idle`)));
    const subscribed = status(read(join(dir, `${name}.status.subscribed`)));
    const end = status(read(join(dir, `${name}.status.after`)));
    const cpu = (file) => {
      // /proc/<pid>/stat: utime and stime (fields 14 and 15, in clock ticks of 1/100 s).
      const fields = (read(join(dir, file), '') ?? '').replace(/^.*\) /s, '').split(' ');
      return fields.length > 12 ? (Number(fields[11]) + Number(fields[12])) / 100 : null;
    };
    const cpuBefore = cpu(`${name}.stat.subscribed`);
    const cpuAfter = cpu(`${name}.stat.after`);
    const problems = (read(join(dir, `${name}.problems`), '') ?? '').split('\n').filter(Boolean);
    const row = {
      run,
      instance: name,
      subscribers: target.connections,
      users: target.orgs.reduce((n, o) => n + o.users, 0),
      updates: `${updates.ok}/${updates.count} @${updates.rate}/s`,
      deliveries,
      expected,
      p50: target.latencyMs.p50,
      p99: target.latencyMs.p99,
      max: target.latencyMs.max,
      eventsHeard: events,
      statementsPerEvent: events ? statements / events : null,
      statementsPerBatch: batches ? statements / batches : null,
      batchesPerEvent: events ? batches / events : null,
      rereadMsMean: batches ? (rereadSeconds / batches) * 1000 : null,
      rereadMsP99: histogramPercentile(before, after, 'deskgraph_live_reread_duration_seconds', 99),
      delivered: d('deskgraph_live_events_delivered_total'),
      dropped: d('deskgraph_live_events_dropped_total'),
      closed,
      rssIdle: idle.VmRSS,
      rssSubscribed: subscribed.VmRSS,
      rssAfter: end.VmRSS,
      hwm: end.VmHWM,
      cpuSeconds: cpuBefore !== null && cpuAfter !== null ? cpuAfter - cpuBefore : null,
      problems,
    };
    rows.push(row);
    details.push({ run, instance: name, row, client: { ...target, orgs: target.orgs } });
  }
  details.push({
    run,
    ready,
    updates,
    client: {
      latencyMs: client.latencyMs,
      duplicates: client.duplicates,
      unparsed: client.unparsed,
      closes: client.closes,
      errors: client.errors,
      eventLoopLagMs: client.clientEventLoopLagMs,
      threads: client.clientThreads,
      clientRssMb: client.clientRssMb,
      why: client.why,
    },
  });
}

const clientRows = opt.runs.split(',').map((run) => {
  const c = readJson(join(opt.dir, run, 'client.json'));
  return c
    ? `${run}: load average ${read(join(opt.dir, run, 'loadavg.start'), '?').trim()} → ${read(join(opt.dir, run, 'loadavg.end'), '?').trim()}; ` +
        `client threads ${c.clientThreads ?? 1}, event-loop lag p99 ${c.clientEventLoopLagMs?.p99} ms (max ${c.clientEventLoopLagMs?.max} ms), ` +
        `duplicates ${c.duplicates}, closes ${JSON.stringify(c.closes)}, errors ${c.errors.length}`
    : `${run}: no client summary`;
});
const header = [
  'run', 'inst', 'subs', 'users', 'updates', 'delivered/expected', 'p50 ms', 'p99 ms', 'max ms',
  'stmts/event', 'stmts/batch', 'batches/event', 'reread mean ms', 'RSS idle MB', 'RSS subs MB',
  'RSS after MB', 'VmHWM MB', 'CPU s', 'dropped', 'closed', 'WARN/ERROR',
];
const table = rows.map((r) =>
  r.note
    ? [r.run, r.instance, r.note]
    : [
        r.run, r.instance, r.subscribers, r.users, r.updates, `${r.deliveries}/${r.expected}`,
        fmt(r.p50), fmt(r.p99), fmt(r.max), fmt(r.statementsPerEvent), fmt(r.statementsPerBatch),
        fmt(r.batchesPerEvent), fmt(r.rereadMsMean), r.rssIdle, r.rssSubscribed, r.rssAfter, r.hwm,
        fmt(r.cpuSeconds), r.dropped, r.closed.map(([k, n]) => `${k}:${n}`).join(' ') || 0, r.problems.length,
      ].map(String),
);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? '').length)));
const line = (cells) => `| ${cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of table) console.log(line(r));
console.log();
console.log('latency = client receive time − occurredAt (trigger time of the change), over every delivery;');
console.log('stmts/event = Σ deskgraph_live_reread_sql_statements / notifications heard (during the updates);');
console.log('stmts/batch = the same per re-read batch (one batch = one subscriber identity × one coalescing window).');
console.log('CPU s = the server process’s CPU time (user + system) from the moment all were subscribed to the end of the deliveries.');
console.log();
for (const l of clientRows) console.log(l);
for (const r of rows.filter((r) => r.problems?.length)) {
  console.log(`\n${r.run} ${r.instance}: ${r.problems.length} WARN/ERROR log lines, first ones:`);
  for (const p of r.problems.slice(0, 10)) console.log(`  ${p}`);
}
writeFileSync(join(opt.dir, 'summary.json'), JSON.stringify(details, null, 2));
