// Sends COUNT `updateTicket` mutations over HTTP at a steady RATE per second (open loop: each is sent
// on its schedule, whether or not the previous one has answered), alternating between the
// organizations of ids.json and going round their tickets, so that one ticket is changed again only
// every (organizations × tickets) / RATE seconds — far outside the server's coalescing window. Each
// update sets the title to "Live <label> #<seq>", from which the subscribers tell the updates apart.
// The acting user rotates over each organization's owner, admin and agents.
//
//   node update.mjs --http http://127.0.0.1:18090 --ids ids.json --out updates.json
//                   [--count 200] [--rate 20] [--label run]
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    http: { type: 'string' },
    ids: { type: 'string' },
    out: { type: 'string' },
    count: { type: 'string', default: '200' },
    rate: { type: 'string', default: '20' },
    label: { type: 'string', default: 'run' },
  },
});
for (const name of ['http', 'ids', 'out']) {
  if (!opt[name]) throw new Error(`--${name} is required`);
}
const ids = JSON.parse(readFileSync(opt.ids, 'utf8'));
const count = Number(opt.count);
const rate = Number(opt.rate);
const MUTATION =
  'mutation($id: ID!, $t: String!) { updateTicket(id: $id, input: {title: $t}) { id title } }';

const perOrg = Object.fromEntries(ids.orgs.map((o) => [o.id, { sent: 0, ok: 0 }]));
const failures = [];
const latencies = [];

async function update(seq) {
  const org = ids.orgs[seq % ids.orgs.length];
  const round = Math.floor(seq / ids.orgs.length);
  const ticket = org.tickets[round % org.tickets.length];
  const writers = org.users.filter((u) => u.role !== 'VIEWER');
  const actor = writers[round % writers.length];
  perOrg[org.id].sent += 1;
  const start = performance.now();
  try {
    const res = await fetch(`${opt.http}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${actor.token}`,
        'x-org-id': org.id,
      },
      body: JSON.stringify({ query: MUTATION, variables: { id: ticket, t: `Live ${opt.label} #${seq}` } }),
    });
    const body = await res.json();
    if (!res.ok || body.errors) throw new Error(`HTTP ${res.status} ${JSON.stringify(body.errors ?? body)}`);
    perOrg[org.id].ok += 1;
    latencies.push(performance.now() - start);
  } catch (err) {
    if (failures.length < 20) failures.push(`#${seq}: ${err.message}`);
  }
}

const t0 = performance.now();
const inflight = [];
for (let seq = 0; seq < count; seq++) {
  const due = t0 + (seq * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  inflight.push(update(seq));
}
const sentMs = performance.now() - t0;
await Promise.all(inflight);
latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] * 10) / 10 : null;
const summary = {
  count,
  rate,
  ok: latencies.length,
  failed: count - latencies.length,
  sendSeconds: Math.round(sentMs) / 1000,
  achievedRate: Math.round(((count - 1) / (sentMs / 1000 || 1)) * 10) / 10,
  mutationMs: { p50: pct(50), p99: pct(99), max: pct(100) },
  perOrg,
  failures,
};
writeFileSync(opt.out, JSON.stringify(summary, null, 2));
console.error(`updates: ${summary.ok}/${count} ok at ${summary.achievedRate}/s; mutation p50 ${summary.mutationMs.p50} ms, p99 ${summary.mutationMs.p99} ms`);
