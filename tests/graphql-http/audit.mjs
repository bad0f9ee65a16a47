// Runs the GraphQL over HTTP conformance audit of the reference implementation (graphql-http's
// `auditServer`) against a running deskgraph and prints every result as JSON on stdout.
//
//   DESKGRAPH_AUDIT_URL=http://127.0.0.1:8080/graphql \
//   DESKGRAPH_AUDIT_AUTHORIZATION='Bearer …' [DESKGRAPH_AUDIT_ORG_ID=…] node audit.mjs
//
// Every deskgraph request needs a caller, so each audit request gets the `Authorization` (and
// `x-org-id`) headers given here; nothing else of the audit's requests is changed. Output:
// `{"counts": {"ok": n, "notice": n, "warn": n, "error": n}, "results": [...]}`, where a failed
// result carries its reason, the request the audit sent (without credentials) and the response.
// tests/it/graphql_over_http.rs runs this script and asserts no warnings and no errors.

import { auditServer } from 'graphql-http';

const url = process.env.DESKGRAPH_AUDIT_URL;
const authorization = process.env.DESKGRAPH_AUDIT_AUTHORIZATION;
const orgId = process.env.DESKGRAPH_AUDIT_ORG_ID;
if (!url || !authorization) {
  console.error('DESKGRAPH_AUDIT_URL and DESKGRAPH_AUDIT_AUTHORIZATION are required');
  process.exit(2);
}

// What each response answered, kept before the audit reads (and so consumes) its body.
const exchanges = new WeakMap();

async function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  const sent = {
    method: init.method ?? 'GET',
    url: String(input),
    headers: Object.fromEntries(headers),
    body: typeof init.body === 'string' ? init.body : undefined,
  };
  headers.set('authorization', authorization);
  if (orgId) headers.set('x-org-id', orgId);
  const res = await fetch(input, { ...init, headers });
  exchanges.set(res, {
    request: sent,
    status: res.status,
    headers: Object.fromEntries(res.headers),
    body: await res.clone().text(),
  });
  return res;
}

const results = await auditServer({ url, fetchFn });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) counts[result.status] += 1;
// The audit reports some failures with a clone of the response it read (not one fetchFn returned):
// describe those from the clone, whose body is still unread.
async function describe(res) {
  return exchanges.get(res) ?? {
    status: res.status,
    headers: Object.fromEntries(res.headers),
    body: await res.text().catch(() => undefined),
  };
}

const report = [];
for (const { id, name, status, reason, response } of results) {
  report.push(status === 'ok' ? { id, name, status } : { id, name, status, reason, exchange: await describe(response) });
}
console.log(JSON.stringify({ counts, results: report }, null, 2));
