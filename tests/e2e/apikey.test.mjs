// Servers that take an API key instead of OAuth: `mcp-broker add NAME URL --header-env H=VAR`
// reads the key from the environment (never argv), keeps it in the keychain only, and the
// proxy attaches it to that server's requests, through the same consent and audit; a wrong
// key gets one clear line; logout deletes the key.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { startAs, startMcpServer, makeServiceHome, runBroker, describeRun, bridgeClient, keychainLookup, findBytesUnder, mcpStats } from './lib/harness.mjs';

const KEY = `sk-test-${Date.now()}-api-key-value`;
const textOf = (r) => r.content?.map((c) => c.text).join('') ?? '';

test('an API-key server: the key in the keychain only, attached by the proxy, refused clearly when wrong, deleted on logout', async (t) => {
  const as = await startAs(t); // the peer wants an issuer; this server takes only the key
  const srv = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-keyed', apiKey: KEY });
  const { home } = await makeServiceHome(t);
  const cli = (args, env) => runBroker(args, { home, env });

  const added = await cli(['add', 'keyed', srv.url, '--header-env', 'X-Api-Key=KEYED_KEY', '--json'], { KEYED_KEY: KEY });
  assert.equal(added.code, 0, describeRun(added));
  assert.equal(JSON.parse(added.stdout).server.state, 'api_key');
  const status = JSON.parse((await cli(['status', '--json'])).stdout);
  assert.equal(status.servers.find((s) => s.name === 'keyed')?.state, 'api_key', JSON.stringify(status));
  const stored = await keychainLookup(home, 'keyed');
  assert.deepEqual(stored, [{ name: 'X-Api-Key', value: KEY }], 'the key is in the keychain');
  assert.deepEqual(await findBytesUnder(home, KEY), [], 'and nowhere on disk');

  const b = await bridgeClient(t, { home, target: 'keyed', host: 'key-host' });
  assert.equal(textOf(await b.client.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'hi');
  await b.client.close();
  const seen = (await mcpStats(srv)).recent_requests.at(-1);
  assert.equal(seen.authorization_scheme ?? null, null, 'no OAuth token was sent alongside');
  const audit = JSON.parse((await cli(['audit', '--json', '--server', 'keyed'])).stdout);
  assert.ok(audit.calls.some((c) => c.tool === 'echo' && c.host === 'key-host'), JSON.stringify(audit));

  // A wrong key: one clear line naming the fix.
  const again = await cli(['add', 'keyed', srv.url, '--bearer-env', 'WRONG'], { WRONG: 'not-the-key' });
  assert.equal(again.code, 0, describeRun(again));
  const w = await bridgeClient(t, { home, target: 'keyed', host: 'key-host' }).catch((e) => e);
  const message = w instanceof Error ? w.message : (await w.client.callTool({ name: 'echo', arguments: { text: 'x' } }).catch((e) => e)).message;
  assert.match(String(message), /refused its API key/);
  if (!(w instanceof Error)) await w.client.close();

  // Plain http to another machine is refused before anything is stored.
  const insecure = await cli(['add', 'far', 'http://mcp.example.com/mcp', '--bearer-env', 'K'], { K: 'x' });
  assert.notEqual(insecure.code, 0);
  assert.match(insecure.stderr, /not https/);
  assert.equal(await keychainLookup(home, 'far'), null);

  const out = await cli(['logout', 'keyed']);
  assert.equal(out.code, 0, describeRun(out));
  assert.equal(await keychainLookup(home, 'keyed'), null, 'logout deleted the key');
  const after = JSON.parse((await cli(['status', '--json'])).stdout);
  assert.ok(!after.servers.some((s) => s.name === 'keyed'));
});
