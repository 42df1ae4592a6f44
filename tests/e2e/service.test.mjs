// End-to-end tests of the broker service and its two shims (issue 3): the stdio bridge
// (`mcp-broker connect`) and the loopback Streamable HTTP endpoint (host keys), driven by real
// MCP hosts — the official TypeScript SDK client (`Client` over `StdioClientTransport` and over
// `StreamableHTTPClientTransport`) and the MCP Inspector CLI — against real peers: panva's
// oidc-provider (peers/as.mjs), MCP servers on the official SDK (peers/mcp-server.mjs, a
// 2025-11-25 session server and a stateless one), a curl browser stand-in, and a real Secret
// Service.
//
// Run (repo root, Node 22 first on PATH, inside a D-Bus session with an unlocked keyring):
//   scripts/with-keychain.sh node --test --test-concurrency=1 tests/e2e/service.test.mjs
//
// Every test starts its own peers and MCP_BROKER_HOME and, at its end (failures included),
// kills its bridges, stops its service (`mcp-broker stop`), kills whatever is left of that home
// (by pid), and clears the home's keychain items. Nothing is skipped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import {
  startAs, startMcpServer, makeBrowserLog, makeServiceHome, browserOpens, runBroker, describeRun,
  asStats, mcpStats, keychainLookup, findBytesUnder, addHost, bridgeClient, httpClient, RawBridge,
  runInspector, describeInspector, daemonPids, serviceRunning, BROKER_BIN, keychainGate, rawHttp,
  run, brokerEnv, RAW_INIT_PARAMS, controlRequest
} from './lib/harness.mjs';

const needKeychain = keychainGate();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Peers + a fresh home for one test. `env` goes into the environment of every broker process
 * the test starts (the first one starts the service, which inherits it).
 * Teardown order (t.after runs hooks first-registered-first): peers, then the service of the
 * home (bridges killed first so none restarts it), the keychain items, the home itself.
 */
async function setup(t, { as: asOpts = {}, mcp: mcpOpts = {}, env = {} } = {}) {
  await needKeychain();
  const as = await startAs(t, asOpts);
  const mcp = mcpOpts === null ? null : await startMcpServer(t, { issuer: as.issuer, ...mcpOpts });
  const { home, browserLog } = await makeServiceHome(t);
  return { t, as, mcp, home, browserLog, env };
}

/** Run the broker CLI for ctx. */
function broker(ctx, args, opts = {}) {
  return runBroker(args, { home: ctx.home, browserLog: ctx.browserLog, ...opts, env: { ...ctx.env, ...(opts.env ?? {}) } });
}

async function login(ctx, name, { url = ctx.mcp.url } = {}) {
  const r = await broker(ctx, ['login', url, '--name', name]);
  assert.equal(r.code, 0, `login should succeed\n${describeRun(r)}`);
  return r;
}

async function status(ctx) {
  const r = await broker(ctx, ['status', '--json']);
  assert.equal(r.code, 0, `status --json should succeed\n${describeRun(r)}`);
  try {
    return JSON.parse(r.stdout);
  } catch (err) {
    assert.fail(`status --json did not print JSON (${err.message})\n${describeRun(r)}`);
  }
}

async function serverStatus(ctx, name) {
  const doc = await status(ctx);
  const e = doc.servers?.find((s) => s.name === name);
  assert.ok(e, `status --json has no server ${name}: ${JSON.stringify(doc)}`);
  return e;
}

async function hostKey(ctx, name) {
  const h = await addHost(ctx.home, name);
  assert.equal(h.host, name);
  assert.match(h.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/, `hosts add --json gives the endpoint: ${JSON.stringify(h)}`);
  assert.ok(typeof h.key === 'string' && h.key.length >= 20, `hosts add --json gives a key: ${JSON.stringify(h)}`);
  return h;
}

/** An SDK client over the bridge for ctx (the daemon is already running, or this starts it). */
function bridge(ctx, target, opts = {}) {
  return bridgeClient(ctx.t, { home: ctx.home, browserLog: ctx.browserLog, env: ctx.env, target, ...opts });
}

function http_(ctx, h, server, opts = {}) {
  return httpClient(ctx.t, { endpoint: h.endpoint, server, key: h.key, ...opts });
}

// eslint-disable-next-line no-control-regex
const stripAnsi = (text) => text.replace(/\x1b\[[0-9;]*m/g, '');

const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? '').join('');

async function echo(client, text, label) {
  const res = await client.callTool({ name: 'echo', arguments: { text } });
  assert.equal(res.isError, undefined, `${label}: echo returned a tool error: ${JSON.stringify(res)}`);
  assert.equal(textOf(res), text, `${label}: echo answers with its input: ${JSON.stringify(res)}`);
  return res;
}

async function toolNames(client) {
  return (await client.listTools()).tools.map((x) => x.name).sort();
}

const ALL_TOOLS = ['delete_record', 'echo', 'slow_stream', 'whoami'];

/** The Inspector CLI through the bridge: `inspector --cli ... BROKER connect NAME [--host H]`. */
function inspectStdio(ctx, name, methodArgs, { host } = {}) {
  return runInspector(['--format', 'json', '-e', `MCP_BROKER_HOME=${ctx.home}`, ...methodArgs,
    BROKER_BIN, 'connect', name, ...(host ? ['--host', host] : [])]);
}

/** The Inspector CLI against the HTTP endpoint with a host key. */
function inspectHttp(h, name, methodArgs, extra = []) {
  return runInspector(['--format', 'json', '--server-url', `${h.endpoint}/servers/${name}/mcp`, '--transport', 'http',
    '--header', `Authorization: Bearer ${h.key}`, ...extra, ...methodArgs]);
}

function assertInspectorTools(r) {
  assert.equal(r.code, 0, describeInspector(r));
  const names = (r.json?.result?.tools ?? []).map((x) => x.name).sort();
  assert.deepEqual(names, ALL_TOOLS, describeInspector(r));
}

function assertInspectorEcho(r, text) {
  assert.equal(r.code, 0, describeInspector(r));
  assert.equal(textOf(r.json?.result), text, describeInspector(r));
}

/** The audit, newest first. */
async function audit(ctx, server) {
  const r = await broker(ctx, ['audit', '--json', ...(server ? ['--server', server] : [])]);
  assert.equal(r.code, 0, describeRun(r));
  const doc = JSON.parse(r.stdout);
  assert.ok(Array.isArray(doc.calls), `audit --json has "calls": ${r.stdout}`);
  return doc.calls;
}

/** Poll the audit until pred(calls) holds (writes are batched off the hot path). */
async function auditUntil(ctx, server, pred, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  let calls;
  do {
    calls = await audit(ctx, server);
    if (pred(calls)) return calls;
    await sleep(100);
  } while (Date.now() < deadline);
  return calls;
}

const INIT_BODY = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
});

async function rawEcho(b, id, text) {
  b.request(id, 'tools/call', { name: 'echo', arguments: { text } });
  return b.response(id);
}

// ------------------------------------------------------------------------------------------

for (const mode of ['sessions', 'stateless']) {
  test(`1 (${mode}): tools/list + tools/call(echo) via the bridge and the HTTP endpoint, SDK client and Inspector CLI`, async (t) => {
    const ctx = await setup(t, { mcp: { mode } });
    await login(ctx, 'alpha');
    const h = await hostKey(ctx, 'vscode-e2e');

    const b = await bridge(ctx, 'alpha', { host: 'sdk-bridge' });
    assert.deepEqual(await toolNames(b.client), ALL_TOOLS, 'bridge: tools/list');
    await echo(b.client, 'through the bridge: héllo ✓', 'bridge');
    assert.equal(b.client.getServerVersion()?.name, 'mcp-broker-e2e-server', 'bridge: initialize reached the real server');
    // What the upstream saw for that call: the broker's bearer token, the transport headers.
    const seen = (await mcpStats(ctx.mcp)).recent_requests.filter((r) => r.tool === 'echo').at(-1);
    assert.ok(seen, 'the upstream recorded the echo call');
    assert.equal(seen.authorization_scheme, 'Bearer');
    assert.equal(seen.headers['mcp-method'], 'tools/call', `bridge adds Mcp-Method: ${JSON.stringify(seen.headers)}`);
    assert.equal(seen.headers['mcp-name'], 'echo', `bridge adds Mcp-Name: ${JSON.stringify(seen.headers)}`);
    assert.equal(seen.headers['mcp-protocol-version'], '2025-11-25', `bridge sends the negotiated MCP-Protocol-Version: ${JSON.stringify(seen.headers)}`);
    if (mode === 'sessions') assert.match(seen.headers['mcp-session-id'] ?? '', /^[0-9a-f-]{36}$/, 'bridge keeps the Mcp-Session-Id');
    else assert.equal(seen.headers['mcp-session-id'], undefined);
    assert.equal(seen.headers['x-mcp-broker-host'], undefined, 'the internal host header does not leave the broker');

    const c = await http_(ctx, h, 'alpha');
    assert.deepEqual(await toolNames(c.client), ALL_TOOLS, 'HTTP: tools/list');
    await echo(c.client, 'through the HTTP endpoint: héllo ✓', 'HTTP');
    if (mode === 'sessions') {
      assert.match(c.transport.sessionId ?? '', /^[0-9a-f-]{36}$/, 'HTTP: the upstream Mcp-Session-Id reaches the host');
    } else {
      assert.equal(c.transport.sessionId, undefined, 'HTTP: a stateless server gives no session id');
    }
    // A raw request: the host's Mcp-* headers go upstream; its key, cookies and Origin do not.
    const port = Number(new URL(h.endpoint).port);
    const raw = await rawHttp(port, {
      path: '/servers/alpha/mcp',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${h.key}`,
        origin: h.endpoint,
        cookie: 'host-cookie=1',
        'mcp-protocol-version': '2025-11-25',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'mcp-param-region': 'eu-west',
        ...(c.transport.sessionId ? { 'mcp-session-id': c.transport.sessionId } : {}),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'echo', arguments: { text: 'raw http' } } }),
    });
    assert.equal(raw.status, 200, `raw tools/call through the endpoint: ${raw.status} ${raw.body}`);
    assert.match(raw.body, /"text":"raw http"/, `raw tools/call answer: ${raw.body}`);
    const seenHttp = (await mcpStats(ctx.mcp)).recent_requests.filter((r) => r.tool === 'echo').at(-1);
    assert.equal(seenHttp.headers['mcp-param-region'], 'eu-west', `Mcp-Param-* passes: ${JSON.stringify(seenHttp.headers)}`);
    assert.equal(seenHttp.headers['mcp-method'], 'tools/call');
    assert.equal(seenHttp.headers['mcp-name'], 'echo');
    assert.equal(seenHttp.headers['mcp-session-id'], c.transport.sessionId, 'Mcp-Session-Id passes');
    assert.equal(seenHttp.headers.cookie, undefined, 'cookies do not pass');
    assert.equal(seenHttp.headers.origin, undefined, 'Origin does not pass');
    assert.equal(seenHttp.authorization_scheme, 'Bearer');

    assertInspectorTools(await inspectStdio(ctx, 'alpha', ['--method', 'tools/list'], { host: 'inspector' }));
    assertInspectorEcho(await inspectStdio(ctx, 'alpha', ['--method', 'tools/call', '--tool-name', 'echo', '--tool-args-json', JSON.stringify({ text: 'inspector via bridge' })], { host: 'inspector' }), 'inspector via bridge');
    assertInspectorTools(await inspectHttp(h, 'alpha', ['--method', 'tools/list']));
    assertInspectorEcho(await inspectHttp(h, 'alpha', ['--method', 'tools/call', '--tool-name', 'echo', '--tool-args-json', JSON.stringify({ text: 'inspector via http' })]), 'inspector via http');

    const st = await mcpStats(ctx.mcp);
    assert.equal(st.tool_calls.echo, 5, `five echo calls reached the server: ${JSON.stringify(st.tool_calls)}`);
    assert.equal(st.sessions_created, mode === 'sessions' ? 6 : 0, `sessions created upstream (2 SDK + 4 Inspector runs): ${st.sessions_created}`);
    assert.equal(await browserOpens(ctx.browserLog), 1, 'only the login opened the browser');
  });
}

test('2: a long SSE stream (slow_stream + progress) arrives incrementally through both shims', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'vscode-e2e');
  const b = await bridge(ctx, 'alpha', { host: 'stream-bridge' });
  const c = await http_(ctx, h, 'alpha');

  const COUNT = 6;
  const INTERVAL = 300;
  for (const [label, client] of [['bridge', b.client], ['HTTP', c.client]]) {
    const seen = [];
    const started = Date.now();
    const res = await client.callTool({ name: 'slow_stream', arguments: { count: COUNT, interval_ms: INTERVAL } }, undefined, {
      onprogress: (p) => seen.push({ at: Date.now() - started, progress: p.progress }),
      timeout: 30_000,
    });
    const doneAt = Date.now() - started;
    const detail = `${label}: progress at ${JSON.stringify(seen)}, result at ${doneAt} ms`;
    assert.equal(textOf(res), `streamed ${COUNT}`, detail);
    // The SDK client handles notifications a microtask later than responses
    // (Protocol._onnotification), so when the last progress event and the result reach a
    // stdio client in one read, that last event is dropped by the client itself: the bridge
    // wrote both, in order. Every other event must arrive, in order.
    const want = Array.from({ length: COUNT }, (_, i) => i + 1);
    const got = seen.map((s) => s.progress);
    const complete = label === 'bridge' && got.length === COUNT - 1 ? want.slice(0, -1) : want;
    assert.deepEqual(got, complete, `${label}: every progress event, in order. ${detail}`);
    const spread = seen.at(-1).at - seen[0].at;
    assert.ok(spread >= (COUNT - 1) * INTERVAL * 0.6, `${label}: progress events are spread out (${spread} ms between first and last), not buffered. ${detail}`);
    assert.ok(doneAt - seen[0].at >= (COUNT - 1) * INTERVAL * 0.6, `${label}: the first progress event arrived well before the result. ${detail}`);
    const gaps = seen.slice(1).map((s, i) => s.at - seen[i].at).sort((x, y) => x - y);
    assert.ok(gaps[Math.floor(gaps.length / 2)] >= INTERVAL / 2, `${label}: the median gap between events is near ${INTERVAL} ms. ${detail}`);
  }
});

test('3: step-up: delete_record (records.delete) triggers one more browser login with the union of scopes, then succeeds', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const before = await serverStatus(ctx, 'alpha');
  assert.ok(before.scopes.includes('tools.read'), `login granted tools.read: ${JSON.stringify(before.scopes)}`);
  assert.ok(!before.scopes.includes('records.delete'), `login did not ask for records.delete: ${JSON.stringify(before.scopes)}`);

  const b = await bridge(ctx, 'alpha', { host: 'stepup-bridge' });
  await echo(b.client, 'read works', 'bridge (tools.read)');
  assert.equal(await browserOpens(ctx.browserLog), 1);

  const res = await b.client.callTool({ name: 'delete_record', arguments: { id: '42' } }, undefined, { timeout: 60_000 });
  assert.equal(textOf(res), 'deleted 42', `delete_record succeeded after the step-up: ${JSON.stringify(res)}`);
  assert.equal(await browserOpens(ctx.browserLog), 2, 'exactly one more browser login (the step-up)');

  const as = await asStats(ctx.as);
  const asked = (as.last_authorization?.scope ?? '').split(' ');
  assert.ok(asked.includes('tools.read') && asked.includes('records.delete'),
    `the step-up authorization request asks for granted + challenged scopes: ${as.last_authorization?.scope}`);
  assert.equal(as.code_grants, 2, 'two authorization code grants (login + step-up)');
  const mcp = await mcpStats(ctx.mcp);
  assert.ok(mcp.forbidden >= 1, `the server answered 403 insufficient_scope first: ${JSON.stringify(mcp)}`);
  assert.equal(mcp.tool_calls.delete_record, 1, 'the tool ran once');

  const after = await serverStatus(ctx, 'alpha');
  assert.equal(after.state, 'signed_in');
  assert.ok(after.scopes.includes('tools.read') && after.scopes.includes('records.delete'), `status scopes after the step-up: ${JSON.stringify(after.scopes)}`);
  await echo(b.client, 'read still works', 'bridge (after step-up)');
  assert.equal(await browserOpens(ctx.browserLog), 2, 'no further logins');
});

test('3b: a 403 insufficient_scope that names no scope (as servers on the Python SDK answer): stepped up with the metadata\'s scopes_supported, read again', async (t) => {
  const ctx = await setup(t, { mcp: { unnamed403: true, scopesSupported: ['tools.read', 'records.delete'] } });
  // The login asks for what the 401 names (tools.read), not all of scopes_supported.
  await login(ctx, 'alpha');
  assert.ok(!(await serverStatus(ctx, 'alpha')).scopes.includes('records.delete'), 'the login did not ask for records.delete');
  const b = await bridge(ctx, 'alpha', { host: 'unnamed-bridge' });
  const res = await b.client.callTool({ name: 'delete_record', arguments: { id: '7' } }, undefined, { timeout: 60_000 });
  assert.equal(textOf(res), 'deleted 7', `delete_record succeeded after the step-up: ${JSON.stringify(res)}`);
  const asked = ((await asStats(ctx.as)).last_authorization?.scope ?? '').split(' ');
  assert.ok(asked.includes('tools.read') && asked.includes('records.delete'), `the step-up asked for scopes_supported: ${asked.join(' ')}`);
  assert.equal(await browserOpens(ctx.browserLog), 2, 'one step-up sign-in');
});

test('3c: a server that keeps answering insufficient_scope for scopes already granted: a clear error after the step-up limit, no sign-in loop', async (t) => {
  const ctx = await setup(t, { mcp: { unnamed403: true } });
  await login(ctx, 'alpha');
  const b = await bridge(ctx, 'alpha', { host: 'unnamed-bridge' });
  const forbiddenBefore = (await mcpStats(ctx.mcp)).forbidden;
  const err = await b.client.callTool({ name: 'delete_record', arguments: { id: '7' } }).catch((e) => e);
  assert.ok(err instanceof Error, `the call fails: ${err}`);
  assert.match(err.message, /still answers insufficient_scope \(needs scopes it does not name\) after step-up/, err.message);
  assert.equal((await mcpStats(ctx.mcp)).forbidden - forbiddenBefore, 3, 'the first answer and one per allowed step-up');
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no browser for scopes already granted');
});

test('4: short-lived access tokens (6 s): calls keep working across expiry, refreshed ahead of time, no new login', async (t) => {
  const ctx = await setup(t, { as: { accessTtl: 6 } });
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'vscode-e2e');
  const b = await bridge(ctx, 'alpha', { host: 'ttl-bridge' });
  const c = await http_(ctx, h, 'alpha');
  const unauthorizedBefore = (await mcpStats(ctx.mcp)).unauthorized;

  const until = Date.now() + 13_000; // > two access-token lifetimes
  let n = 0;
  while (Date.now() < until) {
    await echo(b.client, `bridge ${n}`, `bridge call ${n}`);
    await echo(c.client, `http ${n}`, `HTTP call ${n}`);
    n += 1;
    await sleep(400);
  }

  const as = await asStats(ctx.as);
  assert.ok(as.refresh_grants >= 2, `the broker refreshed the token (refresh grants: ${as.refresh_grants})`);
  assert.equal(as.code_grants, 1, 'no second login');
  assert.deepEqual(as.grant_errors, [], 'no token endpoint errors (no refresh token reuse)');
  assert.equal(await browserOpens(ctx.browserLog), 1, 'the browser opened only for the first login');
  const mcp = await mcpStats(ctx.mcp);
  assert.equal(mcp.unauthorized - unauthorizedBefore, 0, `tokens were refreshed ahead of expiry: the server never saw an expired token (${JSON.stringify(mcp.last_auth_error)})`);
  assert.equal((await serverStatus(ctx, 'alpha')).state, 'signed_in');
});

test('5 (sessions): the MCP server restarts mid-session: re-initializing gives a new session that works', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'vscode-e2e');
  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'raw-bridge'], browserLog: ctx.browserLog });
  await raw.init(1);
  assert.equal((await rawEcho(raw, 2, 'before')).result?.content?.[0]?.text, 'before');
  const c = await http_(ctx, h, 'alpha');
  await echo(c.client, 'before', 'HTTP before restart');

  const port = Number(new URL(ctx.mcp.url).port);
  await ctx.mcp.kill();
  const mcp2 = await startMcpServer(t, { issuer: ctx.as.issuer, port, name: 'mcp-restarted' });
  assert.equal(mcp2.url, ctx.mcp.url, 'restarted on the same URL');

  // Bridge: the old session is gone; the host gets an error, re-initializes on the same stdio.
  const gone = await rawEcho(raw, 3, 'old session');
  assert.match(gone.error?.message ?? '', /session/i, `a call in the dead session fails with a JSON-RPC error about the session: ${JSON.stringify(gone)}`);
  await raw.init(4);
  assert.equal((await rawEcho(raw, 5, 'after')).result?.content?.[0]?.text, 'after', 'the bridge works in the new session');

  // HTTP: the SDK sees the upstream 404 for its old session; a new connection works.
  await assert.rejects(c.client.callTool({ name: 'echo', arguments: { text: 'old' } }), /404|session/i, 'HTTP: the dead session is reported');
  const c2 = await http_(ctx, h, 'alpha');
  await echo(c2.client, 'after', 'HTTP after restart (new session)');
  // And a fresh SDK bridge client too.
  const b2 = await bridge(ctx, 'alpha', { host: 'sdk-bridge' });
  await echo(b2.client, 'after', 'SDK bridge after restart');

  const st = await mcpStats(mcp2);
  assert.equal(st.sessions_created, 3, `three new sessions on the restarted server: ${JSON.stringify(st)}`);
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no new login');
});

test('5b (sessions): after the host re-initializes, the bridge opens the GET stream of the new session', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'raw-bridge'], browserLog: ctx.browserLog });
  await raw.init(1);
  const port = Number(new URL(ctx.mcp.url).port);
  await ctx.mcp.kill();
  const mcp2 = await startMcpServer(t, { issuer: ctx.as.issuer, port, name: 'mcp-restarted' });
  assert.ok((await rawEcho(raw, 2, 'old session')).error, 'the dead session is reported');
  await sleep(3000); // a host that takes its time to re-initialize
  const init = await raw.init(3);
  assert.ok(init.result);
  assert.equal((await rawEcho(raw, 4, 'new session')).result?.content?.[0]?.text, 'new session');
  await sleep(1000);
  const reqs = (await mcpStats(mcp2)).recent_requests;
  // The last call is the new session's (the first one carried the dead session's id).
  const sid = reqs.findLast((r) => r.rpc_methods.includes('tools/call'))?.headers['mcp-session-id'];
  const gets = reqs.filter((r) => r.http_method === 'GET').map((r) => r.headers['mcp-session-id'] ?? '(none)');
  assert.ok(sid, 'the new session has an id');
  // The old session's stream may try to resume once (the bridge cannot know the server
  // restarted until it answers 404); a GET without any session id would be a bug.
  assert.ok(!gets.includes('(none)'), `every GET stream request names a session (GETs seen: ${JSON.stringify(gets)})`);
  assert.ok(gets.includes(sid), `a GET stream was opened for the new session ${sid} (GETs seen: ${JSON.stringify(gets)})`);
});

test('5 (stateless): the MCP server restarts: calls simply keep working', async (t) => {
  const ctx = await setup(t, { mcp: { mode: 'stateless' } });
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'vscode-e2e');
  const b = await bridge(ctx, 'alpha', { host: 'sdk-bridge' });
  const c = await http_(ctx, h, 'alpha');
  await echo(b.client, 'before', 'bridge before restart');
  await echo(c.client, 'before', 'HTTP before restart');

  const port = Number(new URL(ctx.mcp.url).port);
  await ctx.mcp.kill();
  const mcp2 = await startMcpServer(t, { issuer: ctx.as.issuer, port, mode: 'stateless', name: 'mcp-restarted' });

  await echo(b.client, 'after', 'bridge after restart');
  await echo(c.client, 'after', 'HTTP after restart');
  assert.deepEqual(await toolNames(b.client), ALL_TOOLS);
  assert.equal((await mcpStats(mcp2)).tool_calls.echo, 2);
});

test('6: 50 concurrent tools/call over HTTP (5 clients) with an expired token cause exactly one refresh', async (t) => {
  const ctx = await setup(t, { as: { accessTtl: 6 } });
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'vscode-e2e');
  const clients = [];
  for (let i = 0; i < 5; i += 1) clients.push(await http_(ctx, h, 'alpha', { clientName: `burst-${i}` }));

  // Let the token expire with nobody using it.
  const { expires_at: exp } = await serverStatus(ctx, 'alpha');
  await sleep(Math.max(0, Date.parse(exp) - Date.now()) + 1200);
  assert.ok(Date.parse(exp) < Date.now(), 'the stored access token has expired');
  const asBefore = await asStats(ctx.as);
  const mcpBefore = await mcpStats(ctx.mcp);

  const started = Date.now();
  const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) =>
    clients[i % clients.length].client.callTool({ name: 'echo', arguments: { text: `burst ${i}` } })));
  const took = Date.now() - started;
  const failed = results.map((r, i) => [i, r]).filter(([i, r]) => r.status !== 'fulfilled' || textOf(r.value) !== `burst ${i}`);
  assert.deepEqual(failed.map(([i, r]) => `${i}: ${r.reason?.message ?? JSON.stringify(r.value)}`), [], 'all 50 calls succeed');

  const asAfter = await asStats(ctx.as);
  assert.ok(took < 4000, `the burst finished within the new token's refresh margin (${took} ms), so one refresh is the right count`);
  assert.equal(asAfter.refresh_grants - asBefore.refresh_grants, 1, `exactly one refresh grant for 50 concurrent calls (before ${asBefore.refresh_grants}, after ${asAfter.refresh_grants})`);
  assert.deepEqual(asAfter.grant_errors, [], 'no refresh token reuse or other token errors');
  const mcpAfter = await mcpStats(ctx.mcp);
  assert.equal(mcpAfter.unauthorized - mcpBefore.unauthorized, 0, 'the expired token was never sent upstream');
  assert.equal(mcpAfter.tool_calls.echo - (mcpBefore.tool_calls.echo ?? 0), 50);
});

test('7: five bridges started at once for an unknown URL: one browser login, all five calls complete', async (t) => {
  const ctx = await setup(t);
  const started = await Promise.allSettled(Array.from({ length: 5 }, (_, i) =>
    bridge(ctx, ctx.mcp.url, { host: `racer-${i}`, timeoutMs: 90_000 })));
  const errors = started.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
  assert.deepEqual(errors, [], 'every bridge initializes (the first request signs in)');
  const calls = await Promise.allSettled(started.map((r, i) => echo(r.value.client, `racer ${i}`, `bridge ${i}`)));
  assert.deepEqual(calls.filter((r) => r.status === 'rejected').map((r) => r.reason.message), [], 'every bridge completes tools/call');

  assert.equal(await browserOpens(ctx.browserLog), 1, 'exactly one browser open for five concurrent bridges');
  const as = await asStats(ctx.as);
  assert.equal(as.registrations, 1, 'one client registration');
  assert.equal(as.code_grants, 1, 'one authorization code grant');
  const name = `127.0.0.1-${new URL(ctx.mcp.url).port}`;
  const e = await serverStatus(ctx, name);
  assert.equal(e.state, 'signed_in');
  assert.equal(e.url, ctx.mcp.url);
  assert.equal((await daemonPids(ctx.home)).length, 1, 'one service for the home, although five clients raced to start it');
});

test('8: the HTTP endpoint refuses: no key, bad key, removed key (401); foreign Origin, rebinding Host (403); CORS preflight', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'vscode-e2e');
  const port = Number(new URL(h.endpoint).port);
  const p = '/servers/alpha/mcp';
  const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const auth = { authorization: `Bearer ${h.key}` };
  const upstreamBefore = (await mcpStats(ctx.mcp)).requests;

  const cases = [
    ['no key', { ...base }, 401],
    ['bad key', { ...base, authorization: 'Bearer mcpb_not-a-real-key' }, 401],
    ['key in the wrong scheme', { ...base, authorization: `Basic ${h.key}` }, 401],
    ['foreign Origin', { ...base, ...auth, origin: 'https://evil.example' }, 403],
    ['Origin: null', { ...base, ...auth, origin: 'null' }, 403],
    ['rebinding Host', { ...base, ...auth, host: `evil.example:${port}` }, 403],
    ['Host with another port', { ...base, ...auth, host: `127.0.0.1:${port + 1}` }, 403],
  ];
  for (const [label, headers, want] of cases) {
    const r = await rawHttp(port, { path: p, headers, body: INIT_BODY });
    assert.equal(r.status, want, `${label}: HTTP ${r.status} ${r.body}`);
    assert.equal(r.headers['access-control-allow-origin'], undefined, `${label}: no CORS grant`);
  }

  const pre = await rawHttp(port, {
    method: 'OPTIONS',
    path: p,
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-protocol-version' },
  });
  assert.ok(pre.status < 200 || pre.status >= 300, `CORS preflight from a foreign origin is not 2xx: ${pre.status} ${pre.body}`);
  assert.equal(pre.headers['access-control-allow-origin'], undefined, `no Access-Control-Allow-Origin on the preflight: ${JSON.stringify(pre.headers)}`);
  assert.equal(pre.headers['access-control-allow-headers'], undefined, 'no Access-Control-Allow-Headers on the preflight');

  assert.equal((await mcpStats(ctx.mcp)).requests, upstreamBefore, 'no refused request reached the MCP server');

  // Positive controls: the same request is served with the key and a loopback Host/Origin.
  const ok1 = await rawHttp(port, { path: p, headers: { ...base, ...auth, host: `localhost:${port}` }, body: INIT_BODY });
  assert.equal(ok1.status, 200, `Host localhost:PORT is served: ${ok1.body}`);
  const ok2 = await rawHttp(port, { path: p, headers: { ...base, ...auth, origin: `http://127.0.0.1:${port}` }, body: INIT_BODY });
  assert.equal(ok2.status, 200, `the endpoint's own origin is served: ${ok2.body}`);

  // A removed key stops working.
  const rm = await broker(ctx, ['hosts', 'remove', 'vscode-e2e']);
  assert.equal(rm.code, 0, describeRun(rm));
  const gone = await rawHttp(port, { path: p, headers: { ...base, ...auth }, body: INIT_BODY });
  assert.equal(gone.status, 401, `a removed host key is refused: ${gone.status} ${gone.body}`);
});

test('9: no token or host-key bytes anywhere under MCP_BROKER_HOME after a full flow at MCP_BROKER_LOG=trace', async (t) => {
  const traceFile = path.join(path.dirname(await makeBrowserLog(t)), 'browser-trace.log');
  // BROWSER_TRACE: the curl browser writes the final (callback) URL there, code included.
  const ctx = await setup(t, { env: { MCP_BROKER_LOG: 'trace', BROWSER_TRACE: traceFile } });
  const secrets = {};
  await login(ctx, 'alpha');
  const kc1 = await keychainLookup(ctx.home, 'alpha');
  assert.ok(kc1?.access_token && kc1?.refresh_token, 'tokens in the keychain after login');
  Object.assign(secrets, { 'access token 1': kc1.access_token, 'refresh token 1': kc1.refresh_token });

  const h = await hostKey(ctx, 'vscode-e2e');
  secrets['host key'] = h.key;
  const b = await bridge(ctx, 'alpha', { host: 'trace-bridge' });
  const c = await http_(ctx, h, 'alpha');
  await echo(b.client, 'trace bridge', 'bridge');
  await echo(c.client, 'trace http', 'HTTP');
  await b.client.callTool({ name: 'slow_stream', arguments: { count: 3, interval_ms: 50 } }, undefined, { onprogress: () => {} });

  await sleep(1100);
  const r = await broker(ctx, ['refresh', 'alpha']);
  assert.equal(r.code, 0, describeRun(r));
  const kc2 = await keychainLookup(ctx.home, 'alpha');
  assert.notEqual(kc2.refresh_token, kc1.refresh_token, 'the refresh rotated the refresh token');
  Object.assign(secrets, { 'access token 2': kc2.access_token, 'refresh token 2': kc2.refresh_token });
  await echo(c.client, 'after refresh', 'HTTP after refresh');

  const del = await c.client.callTool({ name: 'delete_record', arguments: { id: '7' } }, undefined, { timeout: 60_000 });
  assert.equal(textOf(del), 'deleted 7', 'the step-up worked');
  const kc3 = await keychainLookup(ctx.home, 'alpha');
  Object.assign(secrets, { 'access token 3': kc3.access_token, 'refresh token 3': kc3.refresh_token });
  await b.close();
  await c.close();

  const stopped = await broker(ctx, ['stop']);
  assert.equal(stopped.code, 0, describeRun(stopped));
  const log = await fs.readFile(path.join(ctx.home, 'run', 'service.log'), 'utf8');
  assert.match(log, /TRACE/, 'the service log is at trace level (MCP_BROKER_LOG=trace reached the service)');
  assert.ok(log.split('\n').length > 50, `the trace log has content (${log.split('\n').length} lines)`);

  const trace = await fs.readFile(traceFile, 'utf8');
  const codes = [...trace.matchAll(/[?&]code=([^&\s]+)/g)].map((m) => decodeURIComponent(m[1]));
  assert.equal(codes.length, 2, `the browser trace shows both authorization codes (login, step-up):\n${trace}`);
  codes.forEach((code, i) => { secrets[`authorization code ${i + 1}`] = code; });

  for (const [label, value] of Object.entries(secrets)) {
    const pieces = { [label]: value };
    if (value.split('.').length === 3) pieces[`${label} signature`] = value.split('.')[2];
    for (const [what, needle] of Object.entries(pieces)) {
      const hits = await findBytesUnder(ctx.home, needle);
      assert.deepEqual(hits, [], `${what} found in plaintext under MCP_BROKER_HOME: ${hits.join(', ')}`);
    }
  }
});

test('10: the audit names the host (--host, parent process, HTTP key) and the tool of each call, newest first', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const mcpB = await startMcpServer(t, { issuer: ctx.as.issuer, name: 'mcp-beta' });
  await login(ctx, 'beta', { url: mcpB.url });
  const h = await hostKey(ctx, 'vscode-e2e');

  const named = await bridge(ctx, 'alpha', { host: 'cursor-e2e' });
  await echo(named.client, 'named', 'bridge --host');
  const unnamed = await bridge(ctx, 'alpha');
  await echo(unnamed.client, 'unnamed', 'bridge (parent name)');
  const c = await http_(ctx, h, 'alpha');
  await echo(c.client, 'http', 'HTTP');
  const beta = await bridge(ctx, 'beta', { host: 'cursor-e2e' });
  await echo(beta.client, 'beta', 'bridge to beta');
  const parent = path.basename(fsSync.realpathSync(process.execPath));

  const isEcho = (host) => (x) => x.host === host && x.method === 'tools/call' && x.tool === 'echo' && x.status === 200 && x.server === 'alpha';
  const calls = await auditUntil(ctx, 'alpha', (cs) => [ 'cursor-e2e', parent, 'vscode-e2e'].every((host) => cs.some(isEcho(host))));
  const show = JSON.stringify(calls, null, 1);
  for (const host of ['cursor-e2e', parent, 'vscode-e2e']) {
    assert.equal(calls.filter(isEcho(host)).length, 1, `one echo tools/call by host ${host} in the audit:\n${show}`);
  }
  for (const x of calls) {
    for (const k of ['time', 'host', 'server', 'method', 'tool', 'status', 'duration_ms', 'error']) assert.ok(k in x, `audit entry lacks ${k}: ${JSON.stringify(x)}`);
    assert.equal(x.server, 'alpha', `--server alpha shows only alpha: ${JSON.stringify(x)}`);
  }
  assert.ok(calls.some((x) => x.method === 'initialize'), 'initialize is recorded too');
  const times = calls.map((x) => Date.parse(x.time));
  assert.deepEqual([...times].sort((x, y) => y - x), times, 'newest first');
  const order = ['vscode-e2e', parent, 'cursor-e2e'].map((host) => calls.findIndex(isEcho(host)));
  assert.deepEqual([...order].sort((x, y) => x - y), order, `the three echo calls appear newest first: ${order}`);

  const all = await auditUntil(ctx, null, (cs) => cs.some((x) => x.server === 'beta' && x.tool === 'echo'));
  assert.ok(all.some((x) => x.server === 'beta' && x.host === 'cursor-e2e' && x.tool === 'echo'), 'without --server, every server is listed');

  const hl = await broker(ctx, ['hosts', 'list', '--json']);
  assert.equal(hl.code, 0, describeRun(hl));
  assert.ok(!hl.stdout.includes(h.key), 'hosts list never shows a key');
  assert.match(hl.stdout, /vscode-e2e/, 'hosts list shows the HTTP host');
});

for (const mode of ['sessions', 'stateless']) {
  test(`11 (${mode}): a connected bridge survives \`mcp-broker stop\`: its next call starts the service again`, async (t) => {
    const ctx = await setup(t, { mcp: { mode } });
    await login(ctx, 'alpha');
    const b = await bridge(ctx, 'alpha', { host: 'survivor' });
    await echo(b.client, 'before stop', 'bridge before stop');
    const [oldPid] = await daemonPids(ctx.home);
    assert.ok(oldPid, 'a service runs');

    const r = await broker(ctx, ['stop'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `mcp-broker stop succeeds\n${describeRun(r)}`);
    let exited = false;
    for (let i = 0; i < 50 && !exited; i += 1) {
      exited = !(await daemonPids(ctx.home)).includes(oldPid);
      if (!exited) await sleep(100);
    }
    const started = Date.now();
    const after = await b.client.callTool({ name: 'echo', arguments: { text: 'after stop' } }, undefined, { timeout: 30_000 }).catch((e) => e);
    const took = Date.now() - started;
    const logTail = stripAnsi(await fs.readFile(path.join(ctx.home, 'run', 'service.log'), 'utf8')).split('\n').slice(-8).join('\n');
    const detail = `old service exited within 5 s: ${exited}; next call after ${took} ms: ${after instanceof Error ? after.message : JSON.stringify(after)}\nservice.log tail:\n${logTail}`;
    assert.ok(exited, `the service (pid ${oldPid}) exits after \`mcp-broker stop\` although a bridge is connected. ${detail}`);
    assert.ok(!(after instanceof Error) && textOf(after) === 'after stop', `the bridge's next call works. ${detail}`);
    const now = await daemonPids(ctx.home);
    assert.equal(now.length, 1, 'one service runs again');
    assert.notEqual(now[0], oldPid, 'a new service');
    assert.ok(await serviceRunning(ctx.home));
  });
}

test('11b: calls made just before the service stops are in the audit (the stopping service writes what is queued)', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'audit-stop');
  const c = await http_(ctx, h, 'alpha');
  const N = 20;
  for (let i = 0; i < N; i += 1) await echo(c.client, `last ${i}`, 'HTTP');
  await c.close();
  const [oldPid] = await daemonPids(ctx.home);
  const stopped = await broker(ctx, ['stop']);
  assert.equal(stopped.code, 0, describeRun(stopped));
  assert.ok(!(await daemonPids(ctx.home)).includes(oldPid), '`stop` returns once the service has exited');
  // `audit` starts a new service, which reads the database the old one left.
  const calls = await audit(ctx, 'alpha');
  const echoes = calls.filter((x) => x.host === 'audit-stop' && x.tool === 'echo');
  assert.equal(echoes.length, N, `all ${N} calls before the stop are in the audit: ${echoes.length}`);
});

test('11c: a command run while the service is still stopping starts a new one once the old has exited', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'stream-holder');
  const c = await http_(ctx, h, 'alpha'); // its open GET stream keeps the stopping service for its grace period
  await echo(c.client, 'before', 'HTTP');
  const [oldPid] = await daemonPids(ctx.home);
  const asked = await controlRequest(ctx.home, 'POST', '/v1/shutdown');
  assert.equal(asked.status, 200, asked.body);
  const started = Date.now();
  const st = await broker(ctx, ['status', '--json']);
  const took = Date.now() - started;
  assert.equal(st.code, 0, `status right after the stop was asked for works (after ${took} ms)\n${describeRun(st)}`);
  const now = await daemonPids(ctx.home);
  assert.equal(now.length, 1, `one service runs: ${now}`);
  assert.notEqual(now[0], oldPid, 'a new service');
  await c.close();
});

test('11d: a service that `connect URL` started leaves no zombie when it stops (the bridge it became reaps it)', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  assert.equal((await broker(ctx, ['stop'])).code, 0);
  // `connect URL` asks the service which server the URL is, so it starts the service itself
  // and then becomes mcp-broker-bridge: the service is the bridge's child from then on.
  const b = await bridge(ctx, ctx.mcp.url, { host: 'reaper' });
  await echo(b.client, 'via url', 'bridge by URL');
  const [servicePid] = await daemonPids(ctx.home);
  const parent = fsSync.readFileSync(`/proc/${servicePid}/stat`, 'utf8').split(') ')[1].split(' ')[1];
  assert.equal(Number(parent), b.pid, 'the service is the bridge\'s child');
  assert.equal((await broker(ctx, ['stop'])).code, 0);
  let state = 'gone';
  for (let i = 0; i < 40; i += 1) {
    try {
      state = fsSync.readFileSync(`/proc/${servicePid}/stat`, 'utf8').split(') ')[1][0];
    } catch { state = 'gone'; break; }
    await sleep(50);
  }
  assert.equal(state, 'gone', `the stopped service's process is reaped (state ${state}: Z is a zombie)`);
  const after = await b.client.callTool({ name: 'echo', arguments: { text: 'after stop' } }, undefined, { timeout: 30_000 });
  assert.equal(textOf(after), 'after stop', 'the bridge starts a new service and goes on');
});

test('12: malformed JSON on the bridge stdin gets a JSON-RPC parse error; the next request works', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'raw-bridge'], browserLog: ctx.browserLog });
  await raw.init(1);

  raw.send('{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {');
  const perr = await raw.next((m) => m.error?.code === -32700);
  assert.equal(perr.jsonrpc, '2.0');
  assert.equal(perr.id, null, `a parse error has id null: ${JSON.stringify(perr)}`);

  raw.send('this is not json at all');
  const perr2 = await raw.next((m) => m.error?.code === -32700);
  assert.equal(perr2.id, null);

  const ok = await rawEcho(raw, 3, 'still alive');
  assert.equal(ok.result?.content?.[0]?.text, 'still alive', `the next valid request works: ${JSON.stringify(ok)}`);
  assert.equal(raw.proc.exitCode, null, 'the bridge is still running');
});

test('13: the server moves to another authorization server (SEP-2352): one refresh at the old one, then one sign-in at the new one with its own registration; the host goes on', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const first = await bridge(ctx, 'alpha', { host: 'moved-bridge' });
  await echo(first.client, 'ok', 'bridge');
  await first.close();

  // The same server URL, now trusting another authorization server: every token of ours is refused.
  const as2 = await startAs(t, { name: 'as2' });
  const port = Number(new URL(ctx.mcp.url).port);
  await ctx.mcp.kill();
  await startMcpServer(t, { issuer: as2.issuer, port, name: 'mcp-other-issuer' });
  const refreshesBefore = (await asStats(ctx.as)).refresh_grants;
  const registrationsBefore = (await asStats(ctx.as)).registrations;

  const b = await bridge(ctx, 'alpha', { host: 'moved-bridge' });
  await echo(b.client, 'after the move', 'bridge');
  assert.equal((await asStats(ctx.as)).refresh_grants - refreshesBefore, 1, 'one refresh was tried at the old AS first');
  assert.equal((await asStats(ctx.as)).registrations, registrationsBefore, 'nothing new at the old AS');
  const at2 = await asStats(as2);
  assert.equal(at2.registrations, 1, 'a client of its own at the new AS');
  assert.equal(at2.code_grants, 1, 'one sign-in there');
  const e = await serverStatus(ctx, 'alpha');
  assert.equal(e.state, 'signed_in', `status: ${JSON.stringify(e)}`);
  assert.equal(e.issuer, as2.issuer, `the new issuer is recorded: ${JSON.stringify(e)}`);
  assert.equal(await browserOpens(ctx.browserLog), 2, 'the first sign-in and the one at the new AS');
});

test('13b: a server that refuses every token: one refresh, one new sign-in, then -32001 naming `mcp-broker login NAME` and needs_login; no more browsers', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const b = await bridge(ctx, 'alpha', { host: 'denied-bridge' });
  await echo(b.client, 'ok', 'bridge');
  const port = Number(new URL(ctx.mcp.url).port);
  await ctx.mcp.kill();
  await startMcpServer(t, { issuer: ctx.as.issuer, port, name: 'mcp-rejecting', rejectTokens: true });
  const refreshesBefore = (await asStats(ctx.as)).refresh_grants;

  const err = await b.client.callTool({ name: 'echo', arguments: { text: 'x' } }).catch((e) => e);
  assert.ok(err instanceof Error, `the call fails: ${err}`);
  assert.equal(err.code, -32001, `JSON-RPC error code -32001: ${err.message}`);
  assert.match(err.message, /mcp-broker login alpha/, 'the message says how to fix it');
  assert.equal((await asStats(ctx.as)).refresh_grants - refreshesBefore, 1, 'one refresh was tried first, none of the new token');
  assert.equal(await browserOpens(ctx.browserLog), 2, 'the first sign-in and one more for this request, not a loop');
  const e = await serverStatus(ctx, 'alpha');
  assert.equal(e.state, 'needs_login', `status: ${JSON.stringify(e)}`);
});

test('13c: a server that speaks only HTTP+SSE (2024-11-05): both shims reach it through the same sign-in, consent and audit, its notifications included', async (t) => {
  const ctx = await setup(t, { mcp: { mode: 'legacy-sse' } });
  await login(ctx, 'alpha');
  const h = await hostKey(ctx, 'legacy-http');
  const b = await bridge(ctx, 'alpha', { host: 'legacy-bridge' });
  const c = await http_(ctx, h, 'alpha');
  for (const [client, label] of [[b.client, 'bridge'], [c.client, 'HTTP']]) {
    assert.deepEqual(await toolNames(client), ALL_TOOLS, `${label}: tools/list`);
    await echo(client, `over SSE via ${label}`, label);
    const progress = [];
    const res = await client.callTool({ name: 'slow_stream', arguments: { count: 3, interval_ms: 20 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
    assert.equal(textOf(res), 'streamed 3', `${label}: slow_stream`);
    // As in test 2: a stdio SDK client drops a last progress event that reaches it in one
    // read with the result (it handles notifications a microtask later); the bridge wrote both.
    const want = label === 'bridge' && progress.length === 2 ? [1, 2] : [1, 2, 3];
    assert.deepEqual(progress, want, `${label}: its progress notifications came before the result`);
  }
  // What the bridge writes, raw: every progress event, then the result.
  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'legacy-raw'], browserLog: ctx.browserLog });
  await raw.init(1);
  raw.request(2, 'tools/call', { name: 'slow_stream', arguments: { count: 3, interval_ms: 0 }, _meta: { progressToken: 'p2' } });
  await raw.response(2);
  const written = raw.rawStdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((m) => m.id === 2 || m.params?.progressToken === 'p2');
  assert.deepEqual(written.map((m) => m.params?.progress ?? 'result'), [1, 2, 3, 'result'], JSON.stringify(written));
  await raw.kill();

  const mcp = await mcpStats(ctx.mcp);
  assert.equal(mcp.legacy_streams_opened, 3, 'one server stream per host session');
  assert.ok(mcp.recent_requests.every((r) => r.authorization_scheme === 'Bearer'), 'every request upstream carried the token');
  const calls = await auditUntil(ctx, 'alpha', (cs) => ['legacy-bridge', 'legacy-http'].every((host) => cs.some((x) => x.host === host && x.tool === 'echo')));
  assert.ok(calls.some((x) => x.host === 'legacy-bridge' && x.tool === 'slow_stream' && x.status === 200), JSON.stringify(calls));

  await c.transport.terminateSession(); // DELETE: the HTTP host ends its session
  await c.close();
  await b.close(); // the bridge ends its own when its host goes
  const deadline = Date.now() + 5000;
  while ((await mcpStats(ctx.mcp)).legacy_sessions_open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal((await mcpStats(ctx.mcp)).legacy_sessions_open, 0, 'closing a host session closes its server stream');
});

/** The lines a host sends for initialize, initialized and one echo call (ids 1 and 2). */
function echoSession(text) {
  return [
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: RAW_INIT_PARAMS },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text } } },
  ].map((m) => JSON.stringify(m)).join('\n') + '\n';
}

/** The echo text answered to id 2 among a bridge's output lines. */
function echoed(stdout) {
  const answers = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return answers.find((m) => m.id === 2)?.result?.content?.[0]?.text;
}

// Node hosts give a child Unix socket pairs (every other test here); Python hosts give it
// pipes; a shell can give it files. The bridge reads pipes and sockets non-blocking on its own
// thread and anything else through tokio's standard handles: all three must work.
test('14: the bridge works over pipes (a Python host) and over files (shell redirection)', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const env = brokerEnv(ctx.home, { browserLog: ctx.browserLog, env: ctx.env });

  // The host keeps its own copy of the bridge's stdout (as a shell's other programs would):
  // the bridge must leave that open file in blocking mode when it exits.
  const python = `
import fcntl, json, os, subprocess, sys
r, w = os.pipe()
p = subprocess.Popen([sys.argv[1], "connect", "alpha", "--host", "python-host"], stdin=subprocess.PIPE, stdout=w)
p.stdin.write(sys.argv[2].encode()); p.stdin.flush()
out = []
for line in os.fdopen(r):
    out.append(line)
    if json.loads(line).get("id") == 2:
        break
p.stdin.close(); p.wait(timeout=10)
out.append(json.dumps({"stdout_nonblocking_after_exit": bool(fcntl.fcntl(w, fcntl.F_GETFL) & os.O_NONBLOCK)}) + "\\n")
sys.stdout.write("".join(out))
`;
  const viaPipes = await run('python3', ['-c', python, BROKER_BIN, echoSession('over pipes')], { env });
  assert.equal(viaPipes.code, 0, `python host: ${viaPipes.stderr}`);
  assert.equal(echoed(viaPipes.stdout), 'over pipes', `answers over pipes: ${viaPipes.stdout}`);
  assert.match(viaPipes.stdout, /"stdout_nonblocking_after_exit": false/, 'stdout is blocking again after the bridge exits');

  const dir = await fs.mkdtemp(path.join(ctx.home, 'files-'));
  await fs.writeFile(path.join(dir, 'in.jsonl'), echoSession('over files'));
  const viaFiles = await run('sh', ['-c', '"$1" connect alpha --host shell-host < "$2/in.jsonl" > "$2/out.jsonl"', 'sh', BROKER_BIN, dir], { env });
  assert.equal(viaFiles.code, 0, `shell host: ${viaFiles.stderr}`);
  const out = await fs.readFile(path.join(dir, 'out.jsonl'), 'utf8');
  assert.equal(echoed(out), 'over files', `answers over files: ${out}`);
});


/** A plain-HTTP forward proxy on loopback that records the URL of each request it forwards. */
async function startForwardProxy(t) {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url);
    const up = http.request(req.url, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { server.closeAllConnections(); server.close(); });
  return { url: `http://127.0.0.1:${server.address().port}`, seen };
}

test('15: the user\'s proxy settings (HTTP_PROXY) carry the MCP calls the service forwards', { timeout: 120_000 }, async (t) => {
  const proxy = await startForwardProxy(t);
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  // A service started with proxy settings, as from a desktop session that has them.
  assert.equal((await broker(ctx, ['stop'])).code, 0);
  const env = { HTTP_PROXY: proxy.url, http_proxy: proxy.url, NO_PROXY: '', no_proxy: '' };
  const b = await bridge(ctx, 'alpha', { env: { ...ctx.env, ...env } });
  await echo(b.client, 'via the proxy', 'bridge');
  const calls = proxy.seen.filter((u) => u.startsWith(ctx.mcp.url));
  assert.ok(calls.length >= 2, `initialize and the echo call went through the proxy: ${JSON.stringify(proxy.seen)}`);
});

test('16: tools with x-mcp-header parameters: their calls carry Mcp-Param-* from the arguments (bridge and endpoint); a tool with an invalid mark is not listed', async (t) => {
  const ctx = await setup(t, { mcp: { headerTools: true } });
  await login(ctx, 'alpha');
  const b = await bridge(ctx, 'alpha', { host: 'param-bridge' });
  const listed = (await b.client.listTools()).tools.map((x) => x.name);
  assert.ok(listed.includes('regional_echo') && listed.includes('echo'), `the marked tool is listed: ${listed}`);
  assert.ok(!listed.includes('bad_header_tool'), `a tool whose x-mcp-header mark is invalid is left out (the spec's rule for clients): ${listed}`);

  const call = async (client, region, text) => textOf(await client.callTool({ name: 'regional_echo', arguments: { region, text } }));
  assert.equal(await call(b.client, 'us-west1', 'hi'), 'us-west1: hi', 'the server accepted the header (it rejects a call without one)');
  assert.equal(await call(b.client, 'Zürich ', 'x'), 'Zürich : x', 'a non-ASCII value goes base64-encoded');

  // An HTTP host whose client sends no Mcp-Param headers, and a raw one that sends a wrong one:
  // the proxy sets them from the body, which is what the server runs.
  const h = await hostKey(ctx, 'param-http');
  const c = await http_(ctx, h, 'alpha');
  assert.equal(await call(c.client, 'eu', 'y'), 'eu: y', 'through the endpoint');
  const port = Number(new URL(h.endpoint).port);
  const raw = await rawHttp(port, {
    path: '/servers/alpha/mcp',
    headers: { authorization: `Bearer ${h.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': c.transport.sessionId, 'mcp-protocol-version': '2025-11-25', 'mcp-param-region': 'wrong' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'regional_echo', arguments: { region: 'ap', text: 'z' } } }),
  });
  assert.equal(raw.status, 200, `a host's wrong header is replaced by the body's value: ${raw.status} ${raw.body}`);
  assert.match(raw.body, /ap: z/);

  const seen = (await mcpStats(ctx.mcp)).recent_requests.filter((q) => q.tool === 'regional_echo').map((q) => q.headers['mcp-param-region']);
  assert.deepEqual(seen, ['us-west1', `=?base64?${Buffer.from('Zürich ').toString('base64')}?=`, 'eu', 'ap'], 'the headers the server received');
});

test('16b: after the service restarts, a marked tool still works: on HeaderMismatch the proxy lists the tools itself and sends the call once more', async (t) => {
  const ctx = await setup(t, { mcp: { headerTools: true } });
  await login(ctx, 'alpha');
  const b = await bridge(ctx, 'alpha', { host: 'param-restart' });
  await b.client.listTools();
  const call = async (text) => textOf(await b.client.callTool({ name: 'regional_echo', arguments: { region: 'eu', text } }, undefined, { timeout: 30_000 }));
  assert.equal(await call('before'), 'eu: before');
  assert.equal((await broker(ctx, ['stop'])).code, 0);
  const seenBefore = (await mcpStats(ctx.mcp)).recent_requests.length;

  // The new service has not seen this session's tools/list: its first try goes without the header.
  assert.equal(await call('after restart'), 'eu: after restart', 'the call works after the restart');
  const posts = (await mcpStats(ctx.mcp)).recent_requests.slice(seenBefore).filter((q) => q.http_method === 'POST');
  const seq = posts.map((q) => (q.tool ? `${q.tool}:${q.headers['mcp-param-region'] ?? 'none'}` : q.rpc_methods[0]));
  assert.deepEqual(seq, ['regional_echo:none', 'tools/list', 'regional_echo:eu'], 'refused without the header, tools listed, sent again with it');
  assert.equal(await call('next'), 'eu: next');
  // Read at once: the audit shows every call answered before it asks (queued ones are written first).
  const calls = (await audit(ctx, 'alpha')).filter((x) => x.host === 'param-restart' && ['tools/call', 'tools/list'].includes(x.method));
  assert.deepEqual(calls.map((x) => x.method), ['tools/call', 'tools/call', 'tools/call', 'tools/list'], `newest first, the host's three calls and its own listing, not the broker's retry or listing: ${JSON.stringify(calls)}`);
});

/** A stand-in for an older service on ctx's control socket: it answers `status`, naming `version` (null: no version at all). */
async function olderServiceOnSocket(t, ctx, version) {
  const older = http.createServer((req, res) => {
    if (version) res.setHeader('x-mcp-broker-version', version);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ servers: [], endpoint: 'http://127.0.0.1:1', ...(version ? { version } : {}) }));
  });
  await new Promise((resolve) => older.listen(path.join(ctx.home, 'run', 'broker.sock'), resolve));
  t.after(() => older.close());
}

test('17: the service names its version; a command that reaches a service of another version says how to restart it', async (t) => {
  const ctx = await setup(t, { mcp: null });
  const doc = await status(ctx);
  const ours = (await broker(ctx, ['--version'])).stdout.trim().split(' ')[1];
  assert.equal(doc.version, ours, 'status --json names the service version');
  assert.equal((await broker(ctx, ['stop'])).code, 0);

  // What an upgrade leaves behind: an older service still answering on the socket.
  await olderServiceOnSocket(t, ctx, '0.0.1');
  const r = await broker(ctx, ['status']);
  assert.equal(r.code, 0, describeRun(r));
  assert.match(stripAnsi(r.stderr), /service is version 0\.0\.1, this program [0-9.]+: run `mcp-broker stop`/, describeRun(r));
  assert.equal(stripAnsi(r.stderr).match(/service is version/g).length, 1, 'said once');
});

test('17b: a service that names no version (from before the check) is reported as older', async (t) => {
  const ctx = await setup(t, { mcp: null });
  assert.equal((await broker(ctx, ['status'])).code, 0);
  assert.equal((await broker(ctx, ['stop'])).code, 0);
  await olderServiceOnSocket(t, ctx, null);
  const r = await broker(ctx, ['status']);
  assert.equal(r.code, 0, describeRun(r));
  assert.match(stripAnsi(r.stderr), /service is an older version, this program [0-9.]+: run `mcp-broker stop`/, describeRun(r));
});

test('18: the service\'s memory and environment are closed to the user\'s other processes (non-dumpable); MCP_BROKER_DUMPABLE=1 opens them', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  assert.equal((await broker(ctx, ['stop'])).code, 0);
  // Tests run as root, whose processes can read one another's memory by capability. Here the
  // service and the probe both run without capabilities, as any user's processes do.
  const noCaps = (args, env = {}) => run('setpriv', ['--bounding-set=-all', '--inh-caps=-all', '--', ...args],
    { env: brokerEnv(ctx.home, { browserLog: ctx.browserLog, env }) });
  const startService = async (env) => {
    const r = await noCaps([BROKER_BIN, 'refresh', 'alpha'], env); // starts it; it now holds alpha's tokens
    assert.equal(r.code, 0, `refresh without capabilities: exit ${r.code}\n${r.stdout}${r.stderr}`);
    const pids = await daemonPids(ctx.home);
    assert.equal(pids.length, 1, `one service: ${pids}`);
    return pids[0];
  };
  // What a token thief among the user's programs would try: open the memory, read the environment.
  const probe = async (pid) => {
    const r = await noCaps(['sh', '-c', `true < /proc/${pid}/mem && echo mem-open; cat /proc/${pid}/environ > /dev/null && echo environ-read`]);
    return r.stdout.trim().split('\n').filter(Boolean);
  };
  assert.deepEqual(await probe(await startService({})), [], 'neither the memory nor the environment of the service can be opened');
  assert.equal((await broker(ctx, ['stop'])).code, 0);
  // The probe does read a service left dumpable (what a developer's strace or perf needs).
  assert.deepEqual(await probe(await startService({ MCP_BROKER_DUMPABLE: '1' })), ['mem-open', 'environ-read'],
    'with MCP_BROKER_DUMPABLE=1 the same probe opens both');
});
