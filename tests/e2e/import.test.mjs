// End-to-end test of `mcp-broker import mcp-remote` (issue 13, "Import from mcp-remote"): the
// real mcp-remote (tests/e2e/node_modules/mcp-remote, 0.15.1) signs in to the test server,
// leaving its plaintext store (`~/.mcp-auth/mcp-remote-v1/<hash>_*.json`) in a temporary HOME
// whose Claude Code config names the server through mcp-remote; then the import takes its
// client and tokens into the broker and the keychain, proved by one refresh at an AS that
// detects refresh-token reuse (peers/as.mjs, as it runs by default).
//
// Run (repo root, Node 22 first on PATH, inside a D-Bus session with an unlocked keyring):
//   scripts/with-keychain.sh node --test tests/e2e/import.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  startAs, startMcpServer, makeHome, makeServiceHome, browserOpens, runBroker, describeRun, asStats,
  keychainLookup, findBytesUnder, bridgeClient, keychainGate, E2E_DIR, BROWSER_CURL,
} from './lib/harness.mjs';

const needKeychain = keychainGate();
const MCP_REMOTE = path.join(E2E_DIR, 'node_modules', 'mcp-remote', 'dist', 'proxy.js');

/** How a host config runs mcp-remote for `url` (and how the test runs it to sign in). */
const mcpRemoteArgs = (url) => [MCP_REMOTE, url, '--host', '127.0.0.1', '--transport', 'http-only'];

/** The environment of mcp-remote and of the importing CLI: the temporary HOME, its default store. */
function userEnv(userHome) {
  const env = { ...process.env, HOME: userHome, BROWSER: BROWSER_CURL };
  delete env.MCP_REMOTE_CONFIG_DIR;
  return env;
}

/** mcp-remote signs in through the curl browser, lists the tools once, and exits. */
async function signInWithMcpRemote(t, userHome, url) {
  const [{ Client }, { StdioClientTransport }] = await Promise.all([
    import('@modelcontextprotocol/sdk/client/index.js'),
    import('@modelcontextprotocol/sdk/client/stdio.js'),
  ]);
  const transport = new StdioClientTransport({ command: process.execPath, args: mcpRemoteArgs(url), env: userEnv(userHome), stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.setEncoding('utf8');
  transport.stderr?.on('data', (d) => { stderr += d; });
  const client = new Client({ name: 'e2e-mcp-remote-host', version: '1.0.0' });
  try {
    await client.connect(transport, { timeout: 120_000 });
    const tools = (await client.listTools()).tools.map((x) => x.name);
    assert.ok(tools.includes('echo'), `mcp-remote lists the server's tools: ${tools}\n${stderr}`);
  } catch (err) {
    err.message += `\n--- mcp-remote stderr ---\n${stderr}`;
    throw err;
  } finally {
    await client.close().catch(() => {});
  }
}

/** The store's files: name → contents. */
async function storeFiles(userHome) {
  const dir = path.join(userHome, '.mcp-auth', 'mcp-remote-v1');
  const out = {};
  for (const name of await fs.readdir(dir).catch(() => [])) out[name] = await fs.readFile(path.join(dir, name), 'utf8');
  return out;
}

test('import mcp-remote --delete-plaintext: its grant works through the broker with no new sign-in, no token spent twice, no plaintext left', async (t) => {
  await needKeychain();
  const as = await startAs(t);
  const mcp = await startMcpServer(t, { issuer: as.issuer });
  const { home, browserLog } = await makeServiceHome(t);
  const userHome = await makeHome(t, 'mcp-remote-user-');

  await signInWithMcpRemote(t, userHome, mcp.url);
  const files = await storeFiles(userHome);
  const tokensFile = Object.keys(files).find((n) => n.endsWith('_tokens.json'));
  assert.ok(tokensFile && Object.keys(files).some((n) => n.endsWith('_client_info.json')), `mcp-remote left its store: ${Object.keys(files)}`);
  const plain = JSON.parse(files[tokensFile]);
  assert.ok(plain.refresh_token && plain.access_token, 'mcp-remote holds a refresh token in plaintext');
  await fs.writeFile(path.join(userHome, '.claude.json'), JSON.stringify({
    numStartups: 1,
    mcpServers: { remote: { type: 'stdio', command: 'node', args: mcpRemoteArgs(mcp.url) } },
  }, null, 2));
  const before = await asStats(as);

  const env = { HOME: userHome, MCP_REMOTE_CONFIG_DIR: '' };
  const r = await runBroker(['import', 'mcp-remote', '--delete-plaintext', '--json'], { home, browserLog, env });
  assert.equal(r.code, 0, `import succeeds\n${describeRun(r)}`);
  const report = JSON.parse(r.stdout);
  const imported = report.entries.filter((e) => e.outcome === 'imported');
  assert.equal(imported.length, 1, `one entry imported: ${r.stdout}`);
  assert.equal(imported[0].url, mcp.url, `matched through the Claude Code entry: ${r.stdout}`);
  const name = imported[0].name;
  assert.deepEqual(imported[0].plaintext_left, [], 'nothing of it is left in plaintext');

  const left = Object.keys(await storeFiles(userHome));
  assert.deepEqual(left.filter((n) => n.startsWith(tokensFile.split('_')[0])), [], `the imported entry's files are gone: ${left}`);
  assert.deepEqual(await findBytesUnder(userHome, plain.refresh_token), [], 'the refresh token is nowhere in the user\'s home');

  const b = await bridgeClient(t, { home, target: name, browserLog });
  const res = await b.client.callTool({ name: 'echo', arguments: { text: 'imported' } });
  assert.equal(res.isError, undefined, `echo through the broker works: ${JSON.stringify(res)}`);
  assert.equal(await browserOpens(browserLog), 0, 'no browser sign-in');

  const after = await asStats(as);
  assert.deepEqual(after.grant_errors, before.grant_errors, 'no refresh token reuse, no grant errors');
  assert.equal(after.grants_revoked, before.grants_revoked, 'no grant revoked (reuse detection did not fire)');
  assert.equal(after.refresh_grants, before.refresh_grants + 1, 'one refresh proved the import');
  assert.equal(after.code_grants, before.code_grants, 'no new authorization');

  const kept = await keychainLookup(home, name);
  assert.ok(kept?.refresh_token && kept.refresh_token !== plain.refresh_token, 'the rotated refresh token is in the keychain');
  for (const secret of [plain.access_token, plain.refresh_token, kept.access_token, kept.refresh_token]) {
    assert.deepEqual(await findBytesUnder(home, secret), [], 'no token bytes under the broker home');
  }
});

test('import mcp-remote --url without --delete-plaintext: imported, and every plaintext file left is named', async (t) => {
  await needKeychain();
  const as = await startAs(t);
  const mcp = await startMcpServer(t, { issuer: as.issuer });
  const { home, browserLog } = await makeServiceHome(t);
  const userHome = await makeHome(t, 'mcp-remote-user-');
  await signInWithMcpRemote(t, userHome, mcp.url);
  const files = Object.keys(await storeFiles(userHome));

  const env = { HOME: userHome, MCP_REMOTE_CONFIG_DIR: '' };
  const none = await runBroker(['import', 'mcp-remote'], { home, browserLog, env });
  assert.equal(none.code, 0, describeRun(none));
  assert.match(none.stdout, /not matched: mcp-remote-v1\/[0-9a-f]{32}/, `no host config names it: ${none.stdout}`);

  const r = await runBroker(['import', 'mcp-remote', '--url', mcp.url], { home, browserLog, env });
  assert.equal(r.code, 0, describeRun(r));
  assert.match(r.stdout, new RegExp(`imported ${mcp.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} as \\S+`), r.stdout);
  assert.match(r.stdout, /plaintext files remain/, r.stdout);
  for (const f of files) assert.ok(r.stdout.includes(f), `${f} is named as left: ${r.stdout}`);
  assert.deepEqual(Object.keys(await storeFiles(userHome)).sort(), files.sort(), 'nothing deleted without --delete-plaintext');
  assert.equal(await browserOpens(browserLog), 0, 'no browser sign-in');
  assert.deepEqual((await asStats(as)).grant_errors, [], 'no grant errors');
});
