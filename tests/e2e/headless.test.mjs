// Signing in without a browser on this machine: the RFC 8628 device authorization grant
// (`login --device`, and chosen by itself over SSH or without a display) against
// oidc-provider's own device flow (peers/as.mjs --device), with a scripted user entering the
// code on "another device" (peers/web-user.mjs); and what happens when the AS offers none.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  startAs, startMcpServer, makeHome, makeBrowserLog, browserOpens, runBroker, spawnBroker, describeRun,
  cleanupBrokerFor, asStats, keychainLookup, keychainGate, clearKeychain, jwtPayload, controlRequest, brokerEnv, BROKER_BIN,
} from './lib/harness.mjs';
import { enterCode, signInElsewhere } from './peers/web-user.mjs';

const needKeychain = keychainGate();

async function setup(t, asOpts = { device: true, deviceInterval: 1 }) {
  await needKeychain();
  const as = await startAs(t, asOpts);
  const mcp = await startMcpServer(t, { issuer: as.issuer });
  const home = await makeHome(t);
  const browserLog = await makeBrowserLog(t);
  cleanupBrokerFor(t, home);
  t.after(() => clearKeychain(home));
  return { as, mcp, home, browserLog };
}

/** `login` running: resolves once it shows the code, with what it showed. */
async function loginShowingCode(ctx, args, env) {
  const run = spawnBroker(['login', ctx.mcp.url, ...args], { home: ctx.home, browserLog: ctx.browserLog, env });
  const [, uri, code] = await run.until(/open this address on any device:\s+(\S+)\s+and enter the code:\s+(\S+)/);
  return { run, uri, code };
}

async function serverState(ctx, name) {
  const r = await runBroker(['status', '--json'], { home: ctx.home });
  assert.equal(r.code, 0, describeRun(r));
  return JSON.parse(r.stdout).servers.find((s) => s.name === name);
}

test('login --device: the user enters the code elsewhere; signed in with an audience-bound token, resource sent on both requests, no browser opened', async (t) => {
  const ctx = await setup(t);
  const { run, uri, code } = await loginShowingCode(ctx, ['--name', 'dev', '--device']);
  assert.match(uri, /^http:\/\/127\.0\.0\.1:\d+\/device$/);
  assert.match(code, /^[A-Z]{4}-[A-Z]{4}$/);
  const page = await enterCode(uri, code);
  assert.equal(page.status, 200, `the AS's success page: ${page.text.slice(0, 200)}`);
  const r = await run.done;
  assert.equal(r.code, 0, `login --device signs in\n${describeRun(r)}`);
  assert.match(r.stdout, /Signed in to dev/);
  assert.match(r.stderr, /Or scan this with a phone/, 'a QR code of verification_uri_complete is drawn');

  assert.equal(await browserOpens(ctx.browserLog), 0, 'no browser was opened');
  const stats = await asStats(ctx.as);
  assert.equal(stats.device_authorizations.length, 1);
  assert.equal(stats.device_authorizations[0].resource, ctx.mcp.url, 'resource on the device authorization request');
  const polled = stats.device_polls.map((p) => p.answer);
  assert.equal(polled.at(-1), 'tokens', `the last poll got the tokens: ${polled}`);
  assert.ok(polled.slice(0, -1).every((a) => a === 'authorization_pending'), `pending before: ${polled}`);
  assert.equal(stats.last_token_request.grant_type, 'urn:ietf:params:oauth:grant-type:device_code');
  assert.equal(stats.last_token_request.resource, ctx.mcp.url, 'resource on the token request');
  const reg = stats.registration_requests.at(-1);
  assert.ok(reg.grant_types.includes('urn:ietf:params:oauth:grant-type:device_code'), `the client registered the device grant: ${reg.grant_types}`);

  const kc = await keychainLookup(ctx.home, 'dev');
  assert.equal(typeof kc?.refresh_token, 'string', 'a refresh token was stored with it');
  assert.equal(jwtPayload(kc.access_token).aud, ctx.mcp.url, 'the token is for this server only');
  assert.equal((await serverState(ctx, 'dev')).state, 'signed_in');
  assert.ok(!/[A-Z]{4}-[A-Z]{4}/.test(r.stdout), 'the code is not on stdout');
});

test('over SSH without $BROWSER, login chooses the code by itself and says so; --browser overrides', async (t) => {
  const ctx = await setup(t);
  // The service runs with the environment of the command that started it (here one with the
  // browser stand-in); what counts for the choice is where the user typed `login`.
  assert.equal((await runBroker(['status'], { home: ctx.home, browserLog: ctx.browserLog })).code, 0);
  const env = { SSH_CONNECTION: '10.0.0.2 52000 10.0.0.1 22', DISPLAY: '', BROWSER: '' };
  const { run, uri, code } = await loginShowingCode(ctx, ['--name', 'ssh'], env);
  await enterCode(uri, code);
  const r = await run.done;
  assert.equal(r.code, 0, describeRun(r));
  assert.match(r.stderr, /No browser can be opened here \(SSH session\): signing in with a code instead\./);
  assert.equal(await browserOpens(ctx.browserLog), 0);

  // The user's explicit choice stands: --browser opens the browser ($BROWSER of the service).
  const b = await runBroker(['login', ctx.mcp.url, '--name', 'ssh2', '--browser'], { home: ctx.home, browserLog: ctx.browserLog, env: { SSH_CONNECTION: 'x' } });
  assert.equal(b.code, 0, describeRun(b));
  assert.equal(await browserOpens(ctx.browserLog), 1);
});

test('slow_down makes the broker poll 5 s slower for good; access_denied and an expired code end with their message and nothing stored', { timeout: 120_000 }, async (t) => {
  await t.test('slow_down', async (t) => {
    const ctx = await setup(t, { device: true, deviceInterval: 1, deviceSlowDown: 1 });
    const { run, uri, code } = await loginShowingCode(ctx, ['--name', 'slow', '--device']);
    // Wait for the slow_down answer and one poll after it, then finish.
    const deadline = Date.now() + 20_000;
    let polls;
    do {
      await new Promise((r) => setTimeout(r, 250));
      polls = (await asStats(ctx.as)).device_polls;
    } while (polls.length < 2 && Date.now() < deadline);
    await enterCode(uri, code);
    const r = await run.done;
    assert.equal(r.code, 0, describeRun(r));
    polls = (await asStats(ctx.as)).device_polls;
    assert.equal(polls[0].answer, 'slow_down', JSON.stringify(polls));
    const gaps = polls.slice(1).map((p, i) => p.at - polls[i].at);
    t.diagnostic(`poll answers ${polls.map((p) => p.answer)}; gaps ${gaps} ms`);
    assert.ok(gaps.every((g) => g >= 5_500), `every poll after slow_down waited interval + 5 s (6 s): ${gaps}`);
  });

  await t.test('access_denied', async (t) => {
    const ctx = await setup(t);
    const { run, uri, code } = await loginShowingCode(ctx, ['--name', 'denied', '--device']);
    await enterCode(uri, code, { abort: true });
    const r = await run.done;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the sign-in was declined at the authorization server; nothing was stored/);
    assert.equal(await keychainLookup(ctx.home, 'denied'), null, 'no token stored');
    assert.equal(await serverState(ctx, 'denied'), undefined, 'no server recorded');
  });

  await t.test('expired_token', async (t) => {
    const ctx = await setup(t, { device: true, deviceInterval: 1, deviceTtl: 3 });
    const { run } = await loginShowingCode(ctx, ['--name', 'late', '--device']);
    const r = await run.done;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the code expired before the sign-in was completed; run the command again for a new code/);
    assert.equal(await keychainLookup(ctx.home, 'late'), null, 'no token stored');
  });
});

test('login --device at an AS without the device grant fails at once with what to do; nothing opened or stored', async (t) => {
  const ctx = await setup(t, {});
  const r = await runBroker(['login', ctx.mcp.url, '--name', 'nodev', '--device'], { home: ctx.home, browserLog: ctx.browserLog });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /does not offer sign-in with a code \(its metadata has no device_authorization_endpoint\); use --no-browser/);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.equal(await browserOpens(ctx.browserLog), 0);
  assert.equal(await keychainLookup(ctx.home, 'nodev'), null);
});

/** `login` running without a browser: resolves once it shows the address to open. */
async function loginShowingAddress(ctx, args, env) {
  const run = spawnBroker(['login', ctx.mcp.url, ...args], { home: ctx.home, browserLog: ctx.browserLog, env });
  const [, url] = await run.until(/Open this address in a browser on any machine and sign in:\s+(\S+)/);
  await run.until(/paste it here, then press Enter:/);
  return { run, url };
}

test('login --no-browser: the user signs in on another machine and pastes the address the browser ended on; signed in, no browser opened', async (t) => {
  const ctx = await setup(t, {});
  const { run, url } = await loginShowingAddress(ctx, ['--name', 'pasted', '--no-browser']);
  const ended = await signInElsewhere(url);
  assert.match(ended, /^http:\/\/127\.0\.0\.1:\d+\/callback\?.*code=/);
  run.write(`${ended}\n`);
  const r = await run.done;
  assert.equal(r.code, 0, `the pasted address signs in\n${describeRun(r)}`);
  assert.match(r.stdout, /Signed in to pasted/);
  assert.equal(await browserOpens(ctx.browserLog), 0, 'no browser was opened');
  assert.equal((await serverState(ctx, 'pasted')).state, 'signed_in');
  const kc = await keychainLookup(ctx.home, 'pasted');
  assert.equal(jwtPayload(kc.access_token).aud, ctx.mcp.url);
});

test('a pasted address with a wrong state is refused and uses nothing up; one with the right state but another iss ends the sign-in; no code is redeemed, nothing stored', async (t) => {
  const ctx = await setup(t, {});
  const { run, url } = await loginShowingAddress(ctx, ['--name', 'mixup', '--no-browser']);
  const ended = new URL(await signInElsewhere(url));

  run.write(`${url}\n`); // the sign-in address itself, which carries the same state
  await run.until(/that is not the address the browser ended on after signing in/);

  const forged = new URL(ended);
  forged.searchParams.set('state', 'not-the-state');
  run.write(`${forged}\n`);
  await run.until(/the pasted address was not used: that address is not from this sign-in \(its state parameter does not match\)/);

  const impostor = new URL(ended);
  impostor.searchParams.set('iss', 'https://evil.example');
  run.write(`${impostor}\n`);
  const r = await run.done;
  assert.notEqual(r.code, 0, describeRun(r));
  assert.match(r.stderr, /came from another issuer than .* \(possible mix-up attack\)/);
  assert.equal((await asStats(ctx.as)).code_grants, 0, 'no code was redeemed');
  assert.equal(await keychainLookup(ctx.home, 'mixup'), null, 'no token stored');
  assert.equal(await serverState(ctx, 'mixup'), undefined, 'no server recorded');
});

test('without a display and an AS without the device grant, login shows the address to paste back by itself; the loopback callback still wins if it comes first', async (t) => {
  const ctx = await setup(t, {});
  assert.equal((await runBroker(['status'], { home: ctx.home, browserLog: ctx.browserLog })).code, 0);
  const { run, url } = await loginShowingAddress(ctx, ['--name', 'nodisplay'], { DISPLAY: '', WAYLAND_DISPLAY: '', BROWSER: '', SSH_CONNECTION: '', SSH_TTY: '' });
  // This time the browser is on this machine after all: it follows the redirect to the
  // loopback listener, which answers first; a paste after that finds no sign-in.
  const ended = await signInElsewhere(url);
  const page = await fetch(ended);
  assert.equal(page.status, 200, 'the loopback callback took it');
  const r = await run.done;
  assert.equal(r.code, 0, describeRun(r));
  assert.match(r.stderr, /No browser can be opened here \(no display\), and .* offers no sign-in with a code: open the address below in any browser\./);
  const late = await controlRequest(ctx.home, 'POST', '/v1/login/paste', { url: ended });
  assert.equal(late.status, 400, `a paste after the callback is refused: ${late.body}`);
  assert.match(JSON.parse(late.body).error, /not from this sign-in/);
});

// ---- sign-ins a host starts ---------------------------------------------------------------

/** The environment of a machine without a browser (no display, no $BROWSER, not SSH). */
const NO_BROWSER = { BROWSER: '', DISPLAY: '', WAYLAND_DISPLAY: '', SSH_CONNECTION: '', SSH_TTY: '' };

/**
 * A host (the official SDK client, with `capabilities`) through `mcp-broker connect URL
 * --host HOST`: {client} once initialized, or {err} when initialize was refused.
 */
async function hostConnect(t, ctx, { host, capabilities = {}, env = {} }) {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
  const transport = new StdioClientTransport({
    command: BROKER_BIN,
    args: ['connect', ctx.mcp.url, '--host', host],
    env: brokerEnv(ctx.home, { browserLog: ctx.browserLog, env }),
    stderr: 'pipe',
  });
  const client = new Client({ name: host, version: '1.0.0' }, { capabilities });
  t.after(() => client.close().catch(() => {}));
  try {
    await client.connect(transport, { timeout: 60_000 });
    return { client };
  } catch (err) {
    await client.close().catch(() => {});
    return { err };
  }
}

async function signIns(ctx) {
  const r = await runBroker(['status', '--json'], { home: ctx.home });
  assert.equal(r.code, 0, describeRun(r));
  return JSON.parse(r.stdout);
}

/** Wait (on status, a tenth of a second apart) until `name` is signed in. */
async function signedIn(ctx, name, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await signIns(ctx);
    if (st.servers.find((s) => s.name === name)?.state === 'signed_in' && st.signins.length === 0) return;
    if (Date.now() > deadline) assert.fail(`${name} was not signed in within ${timeoutMs} ms: ${JSON.stringify(st)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a host that shows addresses (URL elicitation) on a machine without a browser: its request is answered at once with -32042 and the sign-in address; opening it signs in, and the host\'s retry works', async (t) => {
  const ctx = await setup(t, {});
  // The service runs where a browser can open (started from a desktop session, say); the
  // host runs in an SSH session, which its bridge tells the service, and that is what counts.
  assert.equal((await runBroker(['status'], { home: ctx.home, browserLog: ctx.browserLog })).code, 0);
  const capabilities = { elicitation: { url: {} } };
  const first = await hostConnect(t, ctx, { host: 'cursor', capabilities, env: { ...NO_BROWSER, SSH_CONNECTION: '10.0.0.2 52000 10.0.0.1 22' } });
  assert.ok(first.err, 'initialize waits for a sign-in, so it is answered with what to do');
  assert.equal(first.err.code, -32042, `URLElicitationRequiredError: ${first.err.message}`);
  const [elicitation] = first.err.elicitations ?? [];
  assert.equal(elicitation?.mode, 'url', JSON.stringify(first.err.data));
  assert.match(elicitation.url, /^http:\/\/127\.0\.0\.1:\d+\/auth\?/, 'the authorization URL');
  assert.match(elicitation.message, /^Sign in to 127\.0\.0\.1-\d+ to continue: open http/);
  assert.ok(elicitation.elicitationId, 'an elicitation id');
  assert.equal(await browserOpens(ctx.browserLog), 0, 'no browser was opened here');

  // The address (its state) goes to the host and to `status`, not to the log or the audit.
  const state = new URL(elicitation.url).searchParams.get('state');
  const log = await fs.readFile(path.join(ctx.home, 'run', 'service.log'), 'utf8');
  assert.ok(!log.includes(state), 'the service log (at info) has no sign-in state');
  const audit = await controlRequest(ctx.home, 'GET', '/v1/audit?limit=10');
  assert.ok(!audit.body.includes(state), `the audit has no sign-in state: ${audit.body}`);
  assert.match(audit.body, /needs a sign-in; the host was told how/);

  const st = await signIns(ctx);
  assert.equal(st.signins.length, 1, JSON.stringify(st));
  assert.equal(st.signins[0].asked_by, 'cursor');
  assert.equal(st.signins[0].how, 'paste');
  assert.equal(st.signins[0].url, elicitation.url);

  // The host's user opens the address (a browser on this machine after all: the redirect
  // reaches the loopback listener), and the host tries again.
  const page = await fetch(await signInElsewhere(elicitation.url));
  assert.equal(page.status, 200);
  await signedIn(ctx, st.signins[0].server);
  const again = await hostConnect(t, ctx, { host: 'cursor', capabilities, env: NO_BROWSER });
  assert.ok(again.client, `the retry connects: ${again.err?.message}`);
  const echo = await again.client.callTool({ name: 'echo', arguments: { text: 'after the sign-in' } });
  assert.match(JSON.stringify(echo.content), /after the sign-in/);
});

test('a host without that capability gets an error naming the address and `mcp-broker login NAME`; that command joins the sign-in (one, not two) and the pasted address completes it', async (t) => {
  const ctx = await setup(t, {});
  const first = await hostConnect(t, ctx, { host: 'zed', env: NO_BROWSER });
  assert.ok(first.err);
  assert.equal(first.err.code, -32001, first.err.message);
  const name = (await signIns(ctx)).signins[0]?.server;
  assert.ok(name, 'the sign-in is listed');
  assert.match(first.err.message, new RegExp(`${name} needs you to sign in: open http://127\\.0\\.0\\.1:\\d+/auth\\?\\S+ in a browser \\(\`mcp-broker login ${name}\` follows it in a terminal\\), then try again`));

  const human = await runBroker(['status'], { home: ctx.home });
  assert.match(human.stdout, new RegExp(`Sign-ins waiting for you:\\n  - ${name}, for zed: open http`));

  const { run, url } = await loginShowingAddress({ ...ctx, mcp: { url: name } }, [], NO_BROWSER);
  assert.match(await run.until(/already in progress: joining it/).then((m) => m.input), /A sign-in to \S+ \(started by zed\) is already in progress/);
  run.write(`${await signInElsewhere(url)}\n`);
  const r = await run.done;
  assert.equal(r.code, 0, describeRun(r));
  assert.match(r.stdout, new RegExp(`Signed in to ${name}`));
  assert.equal((await asStats(ctx.as)).authorizations, 1, 'one sign-in, joined');

  const again = await hostConnect(t, ctx, { host: 'zed', env: NO_BROWSER });
  assert.ok(again.client, `the retry connects: ${again.err?.message}`);
});

test('without a browser here at an AS with the device grant, a host\'s sign-in is a code: the host\'s error and status name it; entering it signs in', async (t) => {
  const ctx = await setup(t);
  const first = await hostConnect(t, ctx, { host: 'claude-code', env: NO_BROWSER });
  assert.ok(first.err);
  const m = /needs you to sign in: enter the code (\S+) at (\S+) \(/.exec(first.err.message);
  assert.ok(m, first.err.message);
  const [signin] = (await signIns(ctx)).signins;
  assert.deepEqual([signin.how, signin.user_code, signin.url], ['device', m[1], m[2]]);
  await enterCode(m[2], m[1]);
  await signedIn(ctx, signin.server);
  const again = await hostConnect(t, ctx, { host: 'claude-code', env: NO_BROWSER });
  assert.ok(again.client, `the retry connects: ${again.err?.message}`);
});

test('with a browser here that never finishes, a host\'s request waits 15 s, then is answered with the address; the sign-in goes on', { timeout: 90_000 }, async (t) => {
  const ctx = await setup(t, {});
  const started = Date.now();
  const first = await hostConnect(t, ctx, { host: 'cursor', capabilities: { elicitation: { url: {} } }, env: { BROWSER: 'true' } });
  const waited = Date.now() - started;
  assert.equal(first.err?.code, -32042, first.err?.message);
  assert.ok(waited >= 14_000 && waited < 40_000, `answered after the wait (${waited} ms)`);
  assert.match(first.err.message, /finish it in the browser window, or open http/);
  const [signin] = (await signIns(ctx)).signins;
  assert.equal(signin?.how, 'browser', 'still waiting for the browser');
});

test('a step-up a host\'s call needs is answered like a sign-in: without a browser here the call gets -32042 with the address at once; once it is opened, the retried call runs with the union of scopes', async (t) => {
  const ctx = await setup(t, {});
  const capabilities = { elicitation: { url: {} } };
  const first = await hostConnect(t, ctx, { host: 'cursor', capabilities, env: NO_BROWSER });
  await fetch(await signInElsewhere(first.err.elicitations[0].url));
  const name = (await signIns(ctx)).signins[0]?.server ?? (await signIns(ctx)).servers[0].name;
  await signedIn(ctx, name);
  const { client } = await hostConnect(t, ctx, { host: 'cursor', capabilities, env: NO_BROWSER });

  const refused = await client.callTool({ name: 'delete_record', arguments: { id: '7' } }).then(() => null, (e) => e);
  assert.equal(refused?.code, -32042, `the call needing records.delete is answered with the address: ${refused?.message}`);
  const url = new URL(refused.elicitations[0].url);
  assert.deepEqual(url.searchParams.get('scope').split(' ').sort(), ['offline_access', 'records.delete', 'tools.read'], 'the step-up asks for the union');
  await fetch(await signInElsewhere(url.href));
  await signedIn(ctx, name);
  const res = await client.callTool({ name: 'delete_record', arguments: { id: '7' } });
  assert.match(JSON.stringify(res.content), /deleted 7/);
  assert.equal((await asStats(ctx.as)).code_grants, 2, 'the sign-in and the step-up');
});
