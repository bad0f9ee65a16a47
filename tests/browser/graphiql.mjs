// Opens deskgraph's GraphiQL in headless Chromium (Debian's, driven through the DevTools protocol by
// playwright-core) against a server in demo mode, the way a person would, and prints what it saw as
// JSON on stdout; tests/it/browser.rs starts the server, runs this and asserts on the JSON.
//
// Every request to a host other than the server is blocked (and reported): the page must work offline.
//
// Environment: DESKGRAPH_URL (the server, e.g. http://127.0.0.1:41234), DESKGRAPH_OUT (a folder for
// the screenshot and the browser profile), CHROMIUM (default /usr/bin/chromium).
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const base = new URL(process.env.DESKGRAPH_URL);
const out = process.env.DESKGRAPH_OUT;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 30_000;

const report = {
  steps: [],
  blocked: [],
  cspViolations: [],
  consoleErrors: [],
  pageErrors: [],
};

function step(name, detail) {
  report.steps.push(detail === undefined ? name : `${name}: ${detail}`);
}

// The text of the CodeMirror 5 editor inside `selector` (GraphiQL 4's editors).
async function editorText(page, selector) {
  return page.evaluate((selector) => {
    const element = document.querySelector(`${selector} .CodeMirror`);
    return element && element.CodeMirror ? element.CodeMirror.getValue() : null;
  }, selector);
}

// Waits until the result pane holds JSON that `accept` takes; returns it.
async function waitForResult(page, accept, what) {
  const deadline = Date.now() + STEP_MS;
  let last = null;
  while (Date.now() < deadline) {
    last = await editorText(page, '.graphiql-response');
    if (last) {
      try {
        const json = JSON.parse(last);
        if (accept(json)) return json;
      } catch {
        // Still streaming, or not JSON yet.
      }
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`no ${what} in the result pane within ${STEP_MS} ms; it shows: ${last}`);
}

const profile = await mkdtemp(path.join(out, 'chromium-profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1440, height: 900 },
});

try {
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === base.origin) {
      return route.continue();
    }
    report.blocked.push(url.href);
    return route.abort('blockedbyclient');
  });
  // Reports CSP violations from inside the page (the init script is the DevTools protocol's, not
  // the page's, so the page's CSP does not apply to it).
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      (window.__cspViolations ||= []).push(
        `${event.effectiveDirective} blocked ${event.blockedURI || 'inline'} (${event.sourceFile || ''}:${event.lineNumber})`,
      );
    });
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(STEP_MS);
  page.on('console', (message) => {
    if (message.type() === 'error') report.consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => report.pageErrors.push(String(error)));
  const sockets = [];
  page.on('websocket', (socket) => {
    const seen = { url: socket.url(), sent: [], received: [] };
    sockets.push(seen);
    socket.on('framesent', (frame) => seen.sent.push(String(frame.payload)));
    socket.on('framereceived', (frame) => seen.received.push(String(frame.payload)));
  });

  // 1. The page renders GraphiQL (no "Loading…" left).
  const response = await page.goto(new URL('/graphql', base).href);
  step('loaded', response.status());
  await page.waitForSelector('.graphiql-container');
  report.loadingGone = !(await page.textContent('#graphiql')).includes('Loading');
  step('rendered');

  // 2. It is signed in: the Headers tab holds a demo user's token and organization.
  await page.waitForFunction(
    () => {
      const element = document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
      return element && element.CodeMirror && element.CodeMirror.getValue().includes('Authorization');
    },
  );
  const headersText = await editorText(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)');
  const headers = JSON.parse(headersText);
  report.headers = {
    authorization: /^Bearer \S{20,}$/.test(headers.Authorization || ''),
    orgId: headers['x-org-id'] || null,
  };
  report.users = await page.$$eval('.deskgraph-user-picker option', (options) =>
    options.map((o) => o.textContent),
  );
  report.signedInAs = await page.$eval(
    '.deskgraph-user-picker select',
    (select) => select.options[select.selectedIndex].textContent,
  );
  step('signed in', report.signedInAs);

  // 3. The docs explorer lists the root types.
  await page.click('button[aria-label="Show Documentation Explorer"]');
  await page.waitForFunction(() => {
    const docs = document.querySelector('.graphiql-doc-explorer');
    return docs && docs.textContent.includes('QueryRoot');
  });
  report.docs = await page.textContent('.graphiql-doc-explorer');
  step('docs');

  // 4. The pre-filled example runs and returns tickets.
  report.query = await editorText(page, '.graphiql-query-editor');
  await page.click('.graphiql-execute-button');
  const result = await waitForResult(page, (json) => json.data || json.errors, 'query result');
  report.result = {
    errors: result.errors || null,
    totalCount: result.data?.tickets?.totalCount ?? null,
    tickets: (result.data?.tickets?.edges || []).map((e) => e.node.title),
  };
  step('query', `${report.result.tickets.length} tickets`);
  report.screenshot = path.join(out, 'graphiql.png');
  await page.screenshot({ path: report.screenshot });

  // 5. A subscription runs over the websocket (graphql-transport-ws, the Headers tab as
  // connection_init): a comment added over HTTP shows up in the result pane.
  await page.evaluate(() => {
    document
      .querySelector('.graphiql-query-editor .CodeMirror')
      .CodeMirror.setValue('subscription { ticketEvents(filter: { kinds: [COMMENTED] }) { kind ticket { number title } comment { body } } }');
  });
  // GraphiQL parses the editor's text 100 ms after a change (a debounce); run what it parsed.
  await page.waitForTimeout(500);
  await page.click('.graphiql-execute-button');
  const graphql = new URL('/graphql', base).href;
  const post = async (query, variables) => {
    const res = await fetch(graphql, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ query, variables }),
    });
    return res.json();
  };
  const ticket = (await post('{ tickets(first: 1) { edges { node { id number } } } }')).data.tickets.edges[0].node;
  let event = null;
  let pane = null;
  for (let attempt = 1; attempt <= 10 && !event; attempt++) {
    // The socket may still be opening: comment again until an event arrives.
    const body = `Seen from GraphiQL (${attempt})`;
    await post('mutation($i: AddCommentInput!) { addComment(input: $i) { id } }', {
      i: { ticketId: ticket.id, body, internal: false },
    });
    try {
      const deadline = Date.now() + 3_000;
      while (!event && Date.now() < deadline) {
        const text = await editorText(page, '.graphiql-response');
        pane = text;
        if (text && text.includes('COMMENTED')) event = JSON.parse(text);
        else await page.waitForTimeout(100);
      }
    } catch {
      // Not JSON yet.
    }
  }
  const init = sockets.flatMap((s) => s.sent).map((f) => JSON.parse(f)).find((m) => m.type === 'connection_init');
  report.subscription = {
    event: event?.data?.ticketEvents ?? null,
    resultPane: event ? null : pane,
    ticketNumber: ticket.number,
    sockets: sockets.map((s) => s.url),
    connectionInitHasCredentials: Boolean(init?.payload?.Authorization && init?.payload['x-org-id']),
    acknowledged: sockets.some((s) => s.received.some((f) => f.includes('connection_ack'))),
  };
  step('subscription', report.subscription.event ? report.subscription.event.kind : 'no event');
  // The subscription runs until stopped (the execute button is its stop button meanwhile).
  await page.click('.graphiql-execute-button[aria-label^="Stop"]');
  await page.waitForSelector('.graphiql-execute-button[aria-label^="Execute"]');
  // 6. Picking another user signs in as them: the Headers tab changes, and so do the results.
  const pick = report.users.findIndex((label) => label.endsWith('viewer of globex'));
  await page.selectOption('.deskgraph-user-picker select', String(pick));
  await page.waitForFunction((before) => {
    const element = document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
    return element && element.CodeMirror && !element.CodeMirror.getValue().includes(before);
  }, headers['x-org-id']);
  const picked = JSON.parse(await editorText(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)'));
  await page.evaluate((query) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(query);
  }, report.query);
  await page.waitForTimeout(500);
  await page.click('.graphiql-execute-button');
  const again = await waitForResult(page, (json) => json.errors || json.data?.tickets, 'query result');
  report.picked = {
    label: report.users[pick],
    orgId: picked['x-org-id'],
    errors: again.errors || null,
    tickets: (again.data?.tickets?.edges || []).map((e) => e.node.title),
  };
  step('picked', report.picked.label);

  // 7. A dialog opens (GraphiQL's settings) and closes.
  await page.click('button[aria-label="Open settings dialog"]');
  await page.waitForSelector('[role="dialog"]');
  report.dialog = await page.textContent('[role="dialog"]');
  await page.keyboard.press('Escape');
  await page.waitForSelector('[role="dialog"]', { state: 'detached' });
  step('dialog');
  report.cspViolations = await page.evaluate(() => window.__cspViolations || []);
} catch (error) {
  report.error = String(error && error.stack ? error.stack : error);
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}

process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
