// Several accounts at one server: `login URL --account LABEL` signs in again as another user
// (peers/as.mjs signs in the user a login_hint names), as the server NAME@LABEL with tokens of
// its own; hosts use either at once, each call audited under its own name.
//
// Run: scripts/with-keychain.sh node --test tests/e2e/accounts.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startAs, startMcpServer, makeServiceHome, runBroker, describeRun, keychainGate, bridgeClient, asStats, asMetadata,
} from './lib/harness.mjs';

const needKeychain = keychainGate();

test('two accounts at one server, used by two hosts at once: each call runs as its account and is audited under its name', async (t) => {
  await needKeychain();
  const as = await startAs(t);
  const mcp = await startMcpServer(t, { issuer: as.issuer });
  const { home, browserLog } = await makeServiceHome(t);
  const broker = (args) => runBroker(args, { home, browserLog, timeoutMs: 60_000 });

  const first = await broker(['login', mcp.url, '--name', 'alpha']);
  assert.equal(first.code, 0, describeRun(first));
  const second = await broker(['login', mcp.url, '--account', 'bob', '--authorize-param', 'login_hint=bob']);
  assert.equal(second.code, 0, describeRun(second));
  assert.match(second.stdout, /Signed in to alpha@bob/, describeRun(second));

  const takesSelect = ((await asMetadata(as.issuer)).prompt_values_supported ?? []).includes('select_account');
  const prompt = (await asStats(as)).last_authorization?.prompt ?? '';
  assert.equal(prompt.split(' ').includes('select_account'), takesSelect, `prompt=select_account only where the AS takes it: ${prompt}`);

  const st = JSON.parse((await broker(['status', '--json'])).stdout);
  const byName = Object.fromEntries(st.servers.map((s) => [s.name, s]));
  assert.equal(byName.alpha?.account, 'alice', JSON.stringify(st.servers));
  assert.equal(byName['alpha@bob']?.account, 'bob', JSON.stringify(st.servers));
  assert.equal(byName['alpha@bob'].url, byName.alpha.url, 'one server');

  const a = await bridgeClient(t, { home, browserLog, target: 'alpha', host: 'host-a' });
  const b = await bridgeClient(t, { home, browserLog, target: 'alpha@bob', host: 'host-b' });
  const byUrl = await bridgeClient(t, { home, browserLog, target: mcp.url, host: 'host-url' });
  const whoami = async (c) => (await c.client.callTool({ name: 'whoami', arguments: {} })).structuredContent.sub;
  const subs = await Promise.all([a, b, a, b, byUrl].map(whoami));
  assert.deepEqual(subs, ['alice', 'bob', 'alice', 'bob', 'alice'], 'each host runs as its account; the URL means the first account');

  // The audit is written off the hot path: read it until the five calls are in.
  let calls = [];
  for (const deadline = Date.now() + 5000; calls.length < 5 && Date.now() < deadline;) {
    calls = JSON.parse((await broker(['audit', '--json'])).stdout).calls.filter((x) => x.tool === 'whoami');
  }
  assert.equal(calls.filter((x) => x.host === 'host-a' && x.server === 'alpha').length, 2, JSON.stringify(calls));
  assert.equal(calls.filter((x) => x.host === 'host-b' && x.server === 'alpha@bob').length, 2, JSON.stringify(calls));

  const bad = await broker(['login', mcp.url, '--account', 'x@y']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not a valid server name/, describeRun(bad));
});
