// Servers that ask for no sign-in (peers/mcp-server.mjs --open: no token needed, no
// protected resource metadata), reached through the broker all the same: a host's first
// request finds out, the server is recorded as `open`, and calls go through the bridge and
// the HTTP endpoint with nothing attached, audited. Should the server start asking for a
// sign-in, the usual sign-in follows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startAs, startMcpServer, makeServiceHome, runBroker, describeRun, bridgeClient, httpClient, addHost,
  browserOpens, mcpStats, keychainLookup, keychainGate, controlRequest,
} from './lib/harness.mjs';

const needKeychain = keychainGate();

async function setup(t) {
  await needKeychain();
  const as = await startAs(t);
  const mcp = await startMcpServer(t, { issuer: as.issuer, open: true });
  const { home, browserLog } = await makeServiceHome(t);
  return { as, mcp, home, browserLog };
}

async function status(ctx) {
  const r = await runBroker(['status', '--json'], { home: ctx.home });
  assert.equal(r.code, 0, describeRun(r));
  return JSON.parse(r.stdout);
}

const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? '').join('');

test('a server that asks for no sign-in is proxied with nothing attached: bridge and HTTP endpoint, audited, shown as open; logout forgets it', async (t) => {
  const ctx = await setup(t);
  const b = await bridgeClient(t, { home: ctx.home, target: ctx.mcp.url, host: 'zed', browserLog: ctx.browserLog });
  assert.equal(textOf(await b.client.callTool({ name: 'echo', arguments: { text: 'no sign-in' } })), 'no sign-in');

  const st = await status(ctx);
  const server = st.servers.find((s) => s.url === ctx.mcp.url);
  assert.equal(server?.state, 'open', JSON.stringify(st));
  assert.equal(await browserOpens(ctx.browserLog), 0, 'no browser: nothing to sign in to');
  assert.equal(await keychainLookup(ctx.home, server.name), null, 'nothing in the keychain');

  const h = await addHost(ctx.home, 'vscode-open');
  const c = await httpClient(t, { endpoint: h.endpoint, server: server.name, key: h.key });
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'over http' } })), 'over http');

  const seen = (await mcpStats(ctx.mcp)).recent_requests;
  assert.ok(seen.length >= 4, JSON.stringify(seen));
  assert.ok(seen.every((r) => r.authorization_scheme === null), `no Authorization header went upstream: ${JSON.stringify(seen.map((r) => r.authorization_scheme))}`);
  assert.ok(seen.every((r) => r.headers['x-mcp-broker-host'] === undefined), 'nor the broker\'s own headers');

  const audit = JSON.parse((await controlRequest(ctx.home, 'GET', `/v1/audit?server=${server.name}&limit=50`)).body);
  const hosts = new Set(audit.calls.filter((c) => c.tool === 'echo').map((c) => c.host));
  assert.deepEqual([...hosts].sort(), ['vscode-open', 'zed'], JSON.stringify(audit.calls));

  const out = await runBroker(['logout', server.name], { home: ctx.home });
  assert.equal(out.code, 0, describeRun(out));
  assert.equal((await status(ctx)).servers.find((s) => s.name === server.name), undefined, 'forgotten');
});

test('a server recorded as asking for no sign-in that starts asking for one (401 with its metadata) is signed in to, and the call goes through', async (t) => {
  const ctx = await setup(t);
  const b = await bridgeClient(t, { home: ctx.home, target: ctx.mcp.url, host: 'zed', browserLog: ctx.browserLog });
  assert.equal(textOf(await b.client.callTool({ name: 'echo', arguments: { text: 'open' } })), 'open');
  const name = (await status(ctx)).servers.find((s) => s.url === ctx.mcp.url).name;

  // The same server, restarted where it was, now protected by the AS.
  const port = Number(new URL(ctx.mcp.url).port);
  await ctx.mcp.kill();
  const protectedNow = await startMcpServer(t, { issuer: ctx.as.issuer, port, name: 'mcp-protected' });
  assert.equal(protectedNow.url, ctx.mcp.url);

  const again = await bridgeClient(t, { home: ctx.home, target: name, host: 'zed', browserLog: ctx.browserLog });
  assert.equal(textOf(await again.client.callTool({ name: 'echo', arguments: { text: 'signed in' } })), 'signed in');
  assert.equal(await browserOpens(ctx.browserLog), 1, 'one sign-in, in the browser');
  const server = (await status(ctx)).servers.find((s) => s.name === name);
  assert.equal(server?.state, 'signed_in', JSON.stringify(server));
});
