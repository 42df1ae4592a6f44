// Identity-provider quirks (docs/COMPATIBILITY.md): for each, an oidc-provider made to depart
// from the textbook as that provider does (peers/as.mjs --quirk), the MCP server of the other
// tests in front of it. Without the setting, the sign-in (or the calls after it) fails with a
// message that names the setting; with it, it works, and `status` shows the setting, which is
// kept for every later sign-in and refresh.
//
// Run: scripts/with-keychain.sh node --test tests/e2e/quirks.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startAs, startMcpServer, makeHome, makeBrowserLog, browserOpens, runBroker, describeRun,
  cleanupBrokerFor, asStats, keychainLookup, keychainGate, clearKeychain, jwtPayload, mcpInitialize, bridgeClient, findBytesUnder,
  spawnBroker, asMetadata,
} from './lib/harness.mjs';
import { signInElsewhere } from './peers/web-user.mjs';

const needKeychain = keychainGate();

async function setup(t, quirks, mcpOpts = {}) {
  await needKeychain();
  const as = await startAs(t, { quirks });
  const mcp = await startMcpServer(t, { issuer: as.issuer, ...mcpOpts });
  const home = await makeHome(t);
  const browserLog = await makeBrowserLog(t);
  cleanupBrokerFor(t, home);
  t.after(() => clearKeychain(home));
  return { t, as, mcp, home, browserLog };
}

const broker = (ctx, args, opts = {}) => runBroker(args, { home: ctx.home, browserLog: ctx.browserLog, timeoutMs: 60_000, ...opts });

async function entry(ctx, name) {
  const r = await broker(ctx, ['status', '--json']);
  assert.equal(r.code, 0, describeRun(r));
  return JSON.parse(r.stdout).servers.find((s) => s.name === name);
}

/** The access token the broker holds for `name`, and whether the MCP server takes it. */
async function tokenWorks(ctx, name) {
  const kc = await keychainLookup(ctx.home, name);
  return { kc, status: (await mcpInitialize(ctx.mcp.url, kc.access_token)).status };
}

test('Entra ID: the resource parameter is refused (AADSTS9010010); the error names --no-resource-param, and with it the sign-in works and stays so', async (t) => {
  const ctx = await setup(t, ['entra-resource']);
  // Entra derives the audience from the scope; this AS is told it once the server runs.
  await fetch(new URL('/_test/config', ctx.as.origin), { method: 'POST', body: new URLSearchParams({ default_resource: ctx.mcp.url }) });

  const bad = await broker(ctx, ['login', ctx.mcp.url, '--name', 'entra']);
  assert.notEqual(bad.code, 0, describeRun(bad));
  assert.match(bad.stderr, /AADSTS9010010/, 'the provider\'s own words');
  assert.match(bad.stderr, /--no-resource-param/, `the setting is named\n${describeRun(bad)}`);
  assert.equal((await asStats(ctx.as)).code_grants, 0, 'nothing was issued');

  const good = await broker(ctx, ['login', ctx.mcp.url, '--name', 'entra', '--no-resource-param']);
  assert.equal(good.code, 0, describeRun(good));
  const e = await entry(ctx, 'entra');
  assert.deepEqual(e.settings, ['--no-resource-param'], JSON.stringify(e));
  const { kc, status } = await tokenWorks(ctx, 'entra');
  assert.equal(status, 200, 'the server takes the token');
  assert.equal(jwtPayload(kc.access_token).aud, ctx.mcp.url);

  // Kept: a refresh and a later login without the flag send no resource either.
  const refreshed = await broker(ctx, ['refresh', 'entra']);
  assert.equal(refreshed.code, 0, describeRun(refreshed));
  const again = await broker(ctx, ['login', 'entra']);
  assert.equal(again.code, 0, describeRun(again));
  assert.equal((await asStats(ctx.as)).quirk_refusals, 1, 'only the first sign-in sent resource and was refused');
});

test('Entra ID / Cognito: metadata without code_challenge_methods_supported is refused, naming --assume-s256; with it, PKCE S256 is used', async (t) => {
  const ctx = await setup(t, ['no-pkce-metadata']);
  const bad = await broker(ctx, ['login', ctx.mcp.url, '--name', 'cognito']);
  assert.notEqual(bad.code, 0, describeRun(bad));
  assert.match(bad.stderr, /code_challenge_methods_supported.*--assume-s256/, describeRun(bad));
  assert.equal(await browserOpens(ctx.browserLog), 0, 'no browser opened when discovery fails');

  const good = await broker(ctx, ['login', ctx.mcp.url, '--name', 'cognito', '--assume-s256']);
  assert.equal(good.code, 0, describeRun(good));
  assert.equal((await asStats(ctx.as)).last_authorization?.code_challenge_method, 'S256');
  assert.deepEqual((await entry(ctx, 'cognito')).settings, ['--assume-s256']);
  assert.equal((await tokenWorks(ctx, 'cognito')).status, 200);
});

test('Auth0: the API is named by audience; --authorize-param audience=… gets a token the server takes, and hosts use it', async (t) => {
  const ctx = await setup(t, ['audience-param']);
  // Without it the sign-in completes, but the token is not for this server.
  const plain = await broker(ctx, ['login', ctx.mcp.url, '--name', 'auth0']);
  assert.equal(plain.code, 0, describeRun(plain));
  assert.notEqual((await tokenWorks(ctx, 'auth0')).status, 200, 'a token without the audience is refused by the server');

  const good = await broker(ctx, ['login', ctx.mcp.url, '--name', 'auth0', '--authorize-param', `audience=${ctx.mcp.url}`]);
  assert.equal(good.code, 0, describeRun(good));
  assert.deepEqual((await entry(ctx, 'auth0')).settings, [`--authorize-param audience=${ctx.mcp.url}`]);
  assert.equal((await tokenWorks(ctx, 'auth0')).status, 200);
  const b = await bridgeClient(t, { home: ctx.home, browserLog: ctx.browserLog, target: 'auth0', host: 'auth0-host' });
  const res = await b.client.callTool({ name: 'echo', arguments: { text: 'audience' } });
  assert.equal(res.content[0].text, 'audience');

  const refused = await broker(ctx, ['login', ctx.mcp.url, '--authorize-param', 'state=x']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /state is set by mcp-broker itself/, describeRun(refused));
});

test('Keycloak: registration only with an initial access token; the refusal names --registration-token-env, and with it the sign-in works', async (t) => {
  const ctx = await setup(t, ['registration-token=iat-secret-1234']);
  const bad = await broker(ctx, ['login', ctx.mcp.url, '--name', 'kc']);
  assert.notEqual(bad.code, 0, describeRun(bad));
  assert.match(bad.stderr, /refuses dynamic registration.*--client-id.*--registration-token-env/, describeRun(bad));
  assert.equal(await browserOpens(ctx.browserLog), 0, 'no browser opened');

  const good = await broker(ctx, ['login', ctx.mcp.url, '--name', 'kc', '--registration-token-env', 'KC_IAT'], { env: { KC_IAT: 'iat-secret-1234' } });
  assert.equal(good.code, 0, describeRun(good));
  assert.equal((await asStats(ctx.as)).registrations, 1);
  assert.equal((await tokenWorks(ctx, 'kc')).status, 200);
  assert.deepEqual(await findBytesUnder(ctx.home, 'iat-secret-1234'), [], 'the token is not kept on disk');
});

test('a fixed redirect URI (Slack, Atlassian): --callback-port signs in on exactly the registered one', async (t) => {
  // A port that was just free: the one "registered" at the AS.
  const srv = (await import('node:net')).createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  await new Promise((r) => srv.close(r));
  const registered = `http://127.0.0.1:${port}/callback`;
  const ctx = await setup(t, [`exact-redirect=${registered}`]);

  const bad = await broker(ctx, ['login', ctx.mcp.url, '--name', 'slack', '--timeout', '3']);
  assert.notEqual(bad.code, 0, describeRun(bad));
  assert.match(bad.stderr, /--callback-port/, `the timeout names the setting\n${describeRun(bad)}`);

  const good = await broker(ctx, ['login', ctx.mcp.url, '--name', 'slack', '--callback-port', String(port)]);
  assert.equal(good.code, 0, describeRun(good));
  assert.equal((await asStats(ctx.as)).last_authorization?.redirect_uri, registered);
  assert.deepEqual((await entry(ctx, 'slack')).settings, [`--callback-port ${port}`]);
});

test('a redirect URI that is a page of the app (--redirect-uri, with --client-id): the address is shown, the one the browser ends on pasted back', async (t) => {
  const registered = 'https://app.example/oauth/callback';
  const ctx = await setup(t, [`exact-redirect=${registered}`]);
  const reg = await fetch((await asMetadata(ctx.as.issuer)).registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      application_type: 'web', client_name: 'an app', redirect_uris: [registered],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  const app = await reg.json();
  assert.equal(reg.status, 201, JSON.stringify(app));

  const run = spawnBroker(['login', ctx.mcp.url, '--name', 'app', '--client-id', app.client_id, '--client-secret-env', 'APP_SECRET', '--redirect-uri', registered],
    { home: ctx.home, browserLog: ctx.browserLog, env: { APP_SECRET: app.client_secret } });
  const [, url] = await run.until(/Open this address in a browser on any machine and sign in:\s+(\S+)/);
  await run.until(/paste it here, then press Enter:/);
  const ended = await signInElsewhere(url);
  assert.ok(ended.startsWith(`${registered}?`), ended);
  run.write(`${ended}\n`);
  const r = await run.done;
  assert.equal(r.code, 0, describeRun(r));
  assert.equal(await browserOpens(ctx.browserLog), 0, 'no browser opened here');
  assert.deepEqual((await entry(ctx, 'app')).settings, [`--redirect-uri ${registered}`]);
  assert.equal((await tokenWorks(ctx, 'app')).status, 200);

  const insecure = await broker(ctx, ['login', ctx.mcp.url, '--redirect-uri', 'http://app.example/cb']);
  assert.notEqual(insecure.code, 0);
  assert.match(insecure.stderr, /neither https nor http to a loopback address/, describeRun(insecure));
});
