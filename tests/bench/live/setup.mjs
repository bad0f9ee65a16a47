// Creates the live benchmark's tenants through the GraphQL API of a running `deskgraph serve`:
// ORGS organizations on the Pro plan (25 seats), each with USERS members (the creator is the owner;
// the others are one admin, agents and two viewers), a workspace and TICKETS tickets. Tokens come from
// `deskgraph token` (DESKGRAPH_JWT_SECRET in the environment). Writes the result as JSON:
//   { orgs: [{ id, slug, tickets: [id…], users: [{ sub, role, userId, token }…] }…] }
//
//   node setup.mjs --http http://127.0.0.1:18090 --bin target/release/deskgraph --out ids.json
//                  [--orgs 2] [--users 10] [--tickets 50] [--ttl 7200]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    http: { type: 'string' },
    bin: { type: 'string' },
    out: { type: 'string' },
    orgs: { type: 'string', default: '2' },
    users: { type: 'string', default: '10' },
    tickets: { type: 'string', default: '50' },
    ttl: { type: 'string', default: '7200' },
    prefix: { type: 'string', default: 'live' },
  },
});
for (const name of ['http', 'bin', 'out']) {
  if (!opt[name]) throw new Error(`--${name} is required`);
}
const orgCount = Number(opt.orgs);
const userCount = Number(opt.users);
const ticketCount = Number(opt.tickets);

function token(sub) {
  return execFileSync(
    opt.bin,
    ['token', '--sub', sub, '--email', `${sub}@bench.example`, '--name', sub, '--ttl', opt.ttl],
    { encoding: 'utf8' },
  ).trim();
}

async function gql(tok, org, query, variables = {}) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${tok}` };
  if (org) headers['x-org-id'] = org;
  const res = await fetch(`${opt.http}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (!res.ok || body.errors) {
    throw new Error(`${query.slice(0, 60)}…: HTTP ${res.status} ${JSON.stringify(body.errors ?? body)}`);
  }
  return body.data;
}

// Roles of members 1.. (member 0 creates the organization and owns it).
function roleOf(j) {
  if (j === 1) return 'ADMIN';
  if (j >= userCount - 2) return 'VIEWER';
  return 'AGENT';
}

const out = { orgs: [] };
for (let k = 1; k <= orgCount; k++) {
  const slug = `${opt.prefix}-bench-${k}`;
  const users = [];
  for (let j = 0; j < userCount; j++) {
    const sub = `${opt.prefix}-o${k}-u${j}`;
    const tok = token(sub);
    // The first request creates the user's row.
    const me = await gql(tok, null, '{ viewer { user { id } } }');
    users.push({ sub, role: j === 0 ? 'OWNER' : roleOf(j), userId: me.viewer.user.id, token: tok });
  }
  const owner = users[0];
  const created = await gql(
    owner.token,
    null,
    'mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }',
    { i: { name: `Live bench ${k}`, slug } },
  );
  const org = created.createOrganization.id;
  await gql(owner.token, org, 'mutation { changePlan(plan: "pro") { plan { id } } }');
  for (const u of users.slice(1)) {
    await gql(owner.token, org, 'mutation($i: AddMemberInput!) { addMember(input: $i) { role } }', {
      i: { userId: u.userId, role: u.role },
    });
  }
  const ws = (
    await gql(owner.token, org, 'mutation($i: CreateWorkspaceInput!) { createWorkspace(input: $i) { id } }', {
      i: { name: 'Live' },
    })
  ).createWorkspace.id;
  const tickets = [];
  for (let t = 0; t < ticketCount; t++) {
    const d = await gql(
      owner.token,
      org,
      'mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }',
      { i: { workspaceId: ws, title: `Live bench ticket ${k}-${t}`, priority: 'MEDIUM' } },
    );
    tickets.push(d.createTicket.id);
  }
  out.orgs.push({ id: org, slug, tickets, users });
  console.error(`setup: organization ${slug} (${org}): ${users.length} members, ${tickets.length} tickets`);
}
writeFileSync(opt.out, JSON.stringify(out, null, 2));
