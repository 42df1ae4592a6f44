// mcp-broker against a hostile MCP server / authorization server.
//
//   node --test tests/e2e/hostile.test.mjs
//
// Needs the binary (MCP_BROKER_BIN, default <repo>/target/debug/mcp-broker), a Secret Service
// on the session bus (gnome-keyring in a private dbus-run-session) and `secret-tool`.
// Node built-ins only.
//
// Every scenario plants one fault in peers/hostile-server.mjs and runs a real
// `mcp-broker login URL --name NAME` with its own MCP_BROKER_HOME and a BROWSER stand-in (a
// generated script that logs its arguments and, after-browser scenarios only, forges the
// callback a browser would deliver after the AS redirect). The broker must refuse with a
// non-zero exit and a one-line `error: ` naming the fault, before the browser opens for
// discovery faults, without ever reaching the token endpoint, and with nothing stored (no
// signed-in server in `status --json`, no Secret Service item in the home's namespace).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const BIN = process.env.MCP_BROKER_BIN || path.join(REPO, 'target', 'debug', 'mcp-broker');
const PEER = path.join(HERE, 'peers', 'hostile-server.mjs');
const NAME = 'hostile';
const EVIL_ISSUER = 'https://as.evil.example';
const ATTACKER_TEXT = 'Your account is locked. Call +1-555-0100 now to unlock it';

// ---- harness ------------------------------------------------------------------------------

/** Start the hostile peer as a child process; resolves with its URLs once it listens. */
function startPeer(scenario, { twoPorts = false, issuerPath = '', set = {} } = {}) {
  const args = [PEER, '--scenario', scenario];
  if (twoPorts) args.push('--two-ports');
  if (issuerPath) args.push('--issuer-path', issuerPath);
  for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b) => { err += b; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`peer did not start: ${err}`)); }, 10_000);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`peer exited (${code}): ${err}`)); });
    child.stdout.on('data', (b) => {
      out += b;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const info = JSON.parse(out.slice(0, nl));
      resolve({
        ...info,
        child,
        async stats() {
          const r = await fetch(info.stats, { signal: AbortSignal.timeout(5000) });
          return r.json();
        },
        stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        },
      });
    });
  });
}

/**
 * A scratch directory per test: `home/` is MCP_BROKER_HOME; `browser.mjs` is the BROWSER
 * stand-in; `browser.log` exists only once the broker has opened "the browser".
 *
 * callback: null (just log the URL), or the query to deliver to the broker's redirect_uri, where
 * the value "$state" stands for the state of the authorization URL and null omits a parameter.
 */
function makeScratch(callback = null) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mcpb-hostile-')));
  const home = path.join(dir, 'home');
  fs.mkdirSync(home, { mode: 0o700 });
  const s = {
    dir,
    home: fs.realpathSync(home),
    browser: path.join(dir, 'browser.mjs'),
    log: path.join(dir, 'browser.log'),
    result: path.join(dir, 'callback-result.json'),
  };
  fs.writeFileSync(path.join(dir, 'browser-config.json'), JSON.stringify({ log: s.log, result: s.result, callback }));
  fs.writeFileSync(s.browser, `#!${process.execPath}
// BROWSER stand-in: log argv; then, like a browser coming back from the AS, GET the callback.
import fs from 'node:fs';
const cfg = JSON.parse(fs.readFileSync(${JSON.stringify(path.join(dir, 'browser-config.json'))}, 'utf8'));
const argv = process.argv.slice(2);
fs.appendFileSync(cfg.log, JSON.stringify({ argv, at: Date.now() }) + '\\n');
if (cfg.callback) {
  const result = { at: null };
  try {
    const auth = new URL(argv[0]);
    const cb = new URL(auth.searchParams.get('redirect_uri'));
    for (const [k, v] of Object.entries(cfg.callback)) {
      if (v === null) continue;
      cb.searchParams.set(k, v === '$state' ? auth.searchParams.get('state') : v);
    }
    result.url = cb.href;
    const res = await fetch(cb, { redirect: 'manual', signal: AbortSignal.timeout(15000) });
    result.status = res.status;
    result.contentType = res.headers.get('content-type');
    result.body = await res.text();
  } catch (e) {
    result.error = String(e && e.stack || e);
  }
  result.at = Date.now();
  fs.writeFileSync(cfg.result, JSON.stringify(result));
}
`, { mode: 0o755 });
  return s;
}

/** Processes (by pid) whose environment names this MCP_BROKER_HOME: the broker, its browser, any daemon it started. */
function pidsOfHome(home) {
  const needle = Buffer.from(`MCP_BROKER_HOME=${home}\0`);
  const pids = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${d}/environ`);
      if (env.includes(needle)) pids.push(Number(d));
    } catch { /* gone or not ours */ }
  }
  return pids;
}

function killPids(pids, signal) {
  for (const pid of pids) { try { process.kill(pid, signal); } catch { /* already gone */ } }
}

/** Register teardown that runs even when the test fails. */
function teardown(t, scratch, ...things) {
  t.after(async () => {
    for (const th of things) th?.stop?.();
    const left = pidsOfHome(scratch.home);
    if (left.length) {
      killPids(left, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      killPids(pidsOfHome(scratch.home), 'SIGKILL');
    }
    spawnSync('secret-tool', ['clear', 'service', `mcp-broker:${scratch.home}`], { timeout: 10_000 });
    fs.rmSync(scratch.dir, { recursive: true, force: true });
  });
}

function env(scratch) {
  const e = { ...process.env, MCP_BROKER_HOME: scratch.home, BROWSER: scratch.browser };
  delete e.MCP_BROKER_LOG;
  return e;
}

/** Run the broker; never longer than killAfterMs (then SIGKILL of its process group). */
function runBroker(t, scratch, args, { killAfterMs = 30_000 } = {}) {
  const started = Date.now();
  const child = spawn(BIN, args, { env: env(scratch), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const stop = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
  t.after(stop);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => { stdout += b; });
  child.stderr.on('data', (b) => { stderr += b; });
  let killedByTest = false;
  const timer = setTimeout(() => { killedByTest = true; stop(); }, killAfterMs);
  return new Promise((resolve, reject) => {
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${BIN}: ${e.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, endedAt: Date.now(), killedByTest, args });
    });
  });
}

function login(t, scratch, peer, opts) {
  return runBroker(t, scratch, ['login', peer.resource, '--name', NAME], opts);
}

function show(r) {
  return `exit=${r.code} signal=${r.signal} after ${r.ms} ms${r.killedByTest ? ' (killed by the test)' : ''}\n--- stderr ---\n${r.stderr}--- stdout ---\n${r.stdout}`;
}

function lastLine(text) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  return lines.at(-1) ?? '';
}

/** Exit != 0 by itself, and the last stderr line is one `error: ` line matching `keyword`. */
function assertRefused(r, keyword) {
  assert.ok(!r.killedByTest, `the broker did not finish by itself:\n${show(r)}`);
  assert.notEqual(r.code, 0, `the broker should have refused:\n${show(r)}`);
  const line = lastLine(r.stderr);
  assert.match(line, /^error: /, `last stderr line must start with "error: ":\n${show(r)}`);
  if (keyword) assert.match(line, keyword, `the error should say what is wrong (${keyword}):\n${show(r)}`);
  return line;
}

function browserOpens(scratch) {
  if (!fs.existsSync(scratch.log)) return [];
  return fs.readFileSync(scratch.log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function assertBrowserNotOpened(scratch, r) {
  assert.equal(fs.existsSync(scratch.log), false,
    `the browser was opened although discovery should have failed: ${fs.existsSync(scratch.log) ? fs.readFileSync(scratch.log, 'utf8') : ''}\n${show(r)}`);
}

async function waitForFile(file, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fs.existsSync(file)) {
      try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch { /* being written */ }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

async function assertNoTokenRequest(peer) {
  const st = await peer.stats();
  assert.equal(st.counts['/token'] ?? 0, 0, `the token endpoint was called: ${JSON.stringify(st.tokenRequests)}`);
  return st;
}

function keychainItems(scratch) {
  const r = spawnSync('secret-tool', ['search', '--all', 'service', `mcp-broker:${scratch.home}`], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.error, undefined, `secret-tool failed to run: ${r.error}`);
  assert.equal(r.status, 0, `secret-tool search failed (is a Secret Service running?): ${r.stderr}`);
  return (r.stdout + r.stderr).trim();
}

async function status(t, scratch) {
  const r = await runBroker(t, scratch, ['status', '--json'], { killAfterMs: 15_000 });
  assert.equal(r.code, 0, `status --json failed:\n${show(r)}`);
  let parsed;
  assert.doesNotThrow(() => { parsed = JSON.parse(r.stdout); }, `status --json is not JSON:\n${show(r)}`);
  assert.ok(Array.isArray(parsed.servers), `status --json has no servers list: ${r.stdout}`);
  return parsed.servers;
}

const signedIn = (s) => s.state === 'signed_in' || s.signed_in === true || s.status === 'signed_in';

async function assertNothingStored(t, scratch) {
  const servers = await status(t, scratch);
  assert.deepEqual(servers.filter(signedIn), [], `a server is signed in after a refused login: ${JSON.stringify(servers)}`);
  assert.equal(keychainItems(scratch), '', 'the keychain holds items for this home after a refused login');
}

/** A discovery-time fault: refused before DCR and before any browser; nothing reached or stored. */
async function expectDiscoveryRefusal(t, scenario, keyword, peerOpts = {}, { maxMs = 25_000, registrations = 0 } = {}) {
  const scratch = makeScratch(null);
  const peer = await startPeer(scenario, peerOpts);
  teardown(t, scratch, peer);
  const r = await login(t, scratch, peer, { killAfterMs: maxMs + 5_000 });
  const line = assertRefused(r, keyword);
  assert.ok(r.ms < maxMs, `took ${r.ms} ms (limit ${maxMs}):\n${show(r)}`);
  assertBrowserNotOpened(scratch, r);
  const st = await assertNoTokenRequest(peer);
  assert.equal(st.counts['/register'] ?? 0, registrations,
    registrations ? 'registration endpoint calls' : `registered a client at an authorization server whose metadata is bad:\n${show(r)}`);
  await assertNothingStored(t, scratch);
  t.diagnostic(line);
  return { r, line, st, scratch, peer };
}

/**
 * An after-browser scenario: the stand-in delivers `callback` (an object, or a function of the
 * peer's URLs returning one) to the broker's redirect_uri. Resolves with the broker's result,
 * what the stand-in saw of the callback response, and the peer's stats.
 */
async function runWithCallback(t, scenario, callback, peerOpts = {}) {
  const peer = await startPeer(scenario, peerOpts);
  const scratch = makeScratch(typeof callback === 'function' ? callback(peer) : callback);
  teardown(t, scratch, peer);
  const r = await login(t, scratch, peer, { killAfterMs: 25_000 });
  const opens = browserOpens(scratch);
  const cb = opens.length ? await waitForFile(scratch.result, 5_000) : null;
  const st = await peer.stats();
  return { r, opens, cb, st, scratch, peer };
}

function callbackParams(cb) {
  return Object.fromEntries(new URL(cb.url).searchParams);
}

/** The callback was refused: error page, login over at once, no code redeemed, nothing stored. */
async function expectCallbackRefusal(t, { r, opens, cb, st, scratch }, keyword) {
  assert.equal(opens.length, 1, `the browser should have been opened once:\n${show(r)}`);
  assert.ok(cb, 'the browser stand-in recorded no callback result');
  assert.equal(cb.error, undefined, `the browser stand-in failed to reach the callback: ${cb.error}\n${show(r)}`);
  const line = assertRefused(r, keyword);
  assert.ok(r.endedAt - cb.at < 5_000, `login went on for ${r.endedAt - cb.at} ms after the bad callback:\n${show(r)}`);
  assert.equal(cb.status, 400, `the browser should be shown a 400 error page, got ${cb.status}: ${cb.body}`);
  assert.match(cb.contentType ?? '', /text\/html/i, `the error page should be HTML: ${cb.contentType}`);
  assert.equal(st.counts['/token'] ?? 0, 0, `the token endpoint was called: ${JSON.stringify(st.tokenRequests)}\n${show(r)}`);
  await assertNothingStored(t, scratch);
  t.diagnostic(line);
  return line;
}

/** The code was redeemed correctly and the login stored. */
async function expectSignedIn(t, { r, opens, cb, st, scratch, peer }) {
  assert.equal(r.code, 0, `login should succeed:\n${show(r)}`);
  assert.equal(opens.length, 1);
  assert.equal(opens[0].argv.length, 1, `the browser gets exactly one argument: ${JSON.stringify(opens[0].argv)}`);
  const auth = new URL(opens[0].argv[0]);
  const q = Object.fromEntries(auth.searchParams);
  assert.equal(`${auth.origin}${auth.pathname}`, `${peer.issuer}/authorize`);
  assert.equal(q.response_type, 'code');
  assert.equal(q.code_challenge_method, 'S256');
  assert.match(q.code_challenge ?? '', /^[A-Za-z0-9_-]{43}$/);
  assert.match(q.state ?? '', /^.{16,}$/, 'state should be long and random');
  assert.equal(q.resource, peer.resource);
  assert.match(q.scope ?? '', /(^| )mcp:tools( |$)/);
  const redirect = new URL(q.redirect_uri);
  assert.equal(redirect.protocol, 'http:');
  assert.equal(redirect.hostname, '127.0.0.1');
  assert.equal(redirect.pathname, '/callback');
  assert.equal(st.registrations.length, 1, 'one DCR registration');
  assert.ok(st.registrations[0].redirect_uris?.length, 'DCR sends redirect_uris');
  assert.equal(q.client_id, 'hostile-client-1');

  assert.equal(cb.status >= 200 && cb.status < 400, true, `the browser should see success, got ${cb.status}: ${cb.body}`);
  assert.equal(st.counts['/token'], 1, `the token endpoint should be hit exactly once: ${JSON.stringify(st.counts)}`);
  const tr = st.tokenRequests[0];
  assert.equal(tr.grant_type, 'authorization_code');
  assert.equal(tr.code, callbackParams(cb).code);
  assert.equal(tr.redirect_uri, q.redirect_uri);
  assert.equal(tr.client_id ?? null, 'hostile-client-1');
  assert.equal(tr.resource, peer.resource, 'RFC 8707 resource in the token request');
  const challenge = createHash('sha256').update(tr.code_verifier ?? '').digest('base64url');
  assert.equal(challenge, q.code_challenge, 'code_verifier must match the S256 code_challenge');

  const servers = await status(t, scratch);
  const me = servers.find((s) => s.name === NAME);
  assert.ok(me && signedIn(me), `status should show ${NAME} signed in: ${JSON.stringify(servers)}`);
  assert.notEqual(keychainItems(scratch), '', 'the tokens should be in the keychain');
}

// ---- scenarios ----------------------------------------------------------------------------

describe('hostile servers', { concurrency: 3 }, () => {
  test('preflight: the broker binary and a Secret Service are there', () => {
    assert.ok(fs.existsSync(BIN), `no broker binary at ${BIN} (build it, or set MCP_BROKER_BIN)`);
    const r = spawnSync('secret-tool', ['search', '--all', 'service', 'mcp-broker-hostile-preflight'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.error, undefined, `secret-tool cannot run: ${r.error}`);
    assert.equal(r.status, 0, `no usable Secret Service on the session bus: ${r.stderr}`);
  });

  // The slow one first, so the others run beside it.
  test('a server trickling its metadata at 1 byte/s is given up on, in bounded time', { timeout: 60_000 }, async (t) => {
    const { r } = await expectDiscoveryRefusal(t, 'prm-trickle', /time|slow|within/i, {}, { maxMs: 50_000 });
    t.diagnostic(`gave up after ${r.ms} ms: ${lastLine(r.stderr)}`);
  });

  describe('discovery faults: refused before registration and before the browser', { concurrency: 3 }, () => {
    test('protected resource metadata for another server (other path)', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'prm-resource-other-path', /resource/i);
    });
    test('protected resource metadata for another server (other host)', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'prm-resource-other-host', /resource/i, { twoPorts: true });
    });
    test('AS metadata issuer is another issuer', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'issuer-mismatch', /issuer/i, { twoPorts: true });
    });
    test('AS metadata issuer differs by a path', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'issuer-mismatch-path', /issuer/i);
    });
    test('code_challenge_methods_supported lists only plain', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'pkce-plain-only', /S256|PKCE/i);
    });
    test('code_challenge_methods_supported absent', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'pkce-absent', /S256|PKCE/i);
    });
    test('token endpoint over plain http to a non-loopback host', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'token-endpoint-http', /https/i);
    });
    test('token endpoint over plain http to 127.0.0.1.evil.example', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'token-endpoint-lookalike', /https/i);
    });
    test('token endpoint over plain http to localhost.evil.example', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'token-endpoint-localhost-lookalike', /https/i);
    });
    test('token endpoint over plain http to http://127.0.0.1:80@evil.example', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'token-endpoint-userinfo', /https/i);
    });
    test('authorization endpoint over plain http to a non-loopback host', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'authorization-endpoint-http', /https/i);
    });
    test('registration endpoint over plain http to a non-loopback host', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'registration-endpoint-http', /https/i);
    });
    test('authorization endpoint javascript:alert(1)', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'authorization-endpoint-javascript', /https?\b|http\(s\)|scheme/i);
    });
    test('authorization endpoint file:///etc/passwd', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'authorization-endpoint-file', /https?\b|http\(s\)|scheme/i);
    });
    test('50 MB chunked protected resource metadata is refused quickly', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'prm-huge-chunked', /too (large|big)|larger|size|limit|bytes/i, {}, { maxMs: 10_000 });
    });
    test('50 MB protected resource metadata with a Content-Length is refused quickly', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'prm-huge-length', /too (large|big)|larger|size|limit|bytes/i, {}, { maxMs: 10_000 });
    });
    test('50 MB chunked AS metadata is refused quickly', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'as-huge-chunked', /too (large|big)|larger|size|limit|bytes/i, { twoPorts: true }, { maxMs: 10_000 });
    });
    test('50 MB chunked DCR response is refused quickly', { timeout: 40_000 }, async (t) => {
      await expectDiscoveryRefusal(t, 'register-huge', /too (large|big)|larger|size|limit|bytes/i, {}, { maxMs: 10_000, registrations: 1 });
    });
    test('protected resource metadata redirects in a loop', { timeout: 40_000 }, async (t) => {
      const { st } = await expectDiscoveryRefusal(t, 'prm-redirect-loop', /redirect/i);
      const hops = (st.counts['/loop/a'] ?? 0) + (st.counts['/loop/b'] ?? 0);
      assert.ok(hops <= 60, `followed ${hops} redirects`);
    });
    test('protected resource metadata redirects without end', { timeout: 40_000 }, async (t) => {
      const { st } = await expectDiscoveryRefusal(t, 'prm-redirect-chain', /redirect/i);
      const hops = Object.keys(st.counts).filter((p) => p.startsWith('/chain/')).reduce((n, p) => n + st.counts[p], 0);
      assert.ok(hops <= 60, `followed ${hops} redirects`);
    });
  });

  describe('https controls: https endpoints elsewhere are fine', { concurrency: 3 }, () => {
    // The stand-in answers "access_denied" with the right state, so the login ends quickly.
    test('https token endpoint on another host passes discovery', { timeout: 40_000 }, async (t) => {
      const { r, opens, cb, st, scratch } = await runWithCallback(t, 'token-endpoint-https', { error: 'access_denied', state: '$state' });
      assert.equal(opens.length, 1, `the browser should have been opened (https token endpoint is acceptable):\n${show(r)}`);
      assert.equal(cb?.error, undefined, `stand-in: ${cb?.error}`);
      const line = assertRefused(r, /denied|refused/i);
      assert.doesNotMatch(line, /https/i);
      assert.equal(st.counts['/token'] ?? 0, 0);
      await assertNothingStored(t, scratch);
    });
    test('https authorization endpoint on another host passes discovery', { timeout: 40_000 }, async (t) => {
      const { r, opens, cb, scratch } = await runWithCallback(t, 'authorization-endpoint-https', { error: 'access_denied', state: '$state' });
      assert.equal(opens.length, 1, `the browser should have been opened:\n${show(r)}`);
      assert.ok(opens[0].argv[0].startsWith('https://evil.example/authorize?'), opens[0].argv[0]);
      assert.equal(cb?.error, undefined, `stand-in: ${cb?.error}`);
      assertRefused(r, /denied|refused/i);
      await assertNothingStored(t, scratch);
    });
  });

  describe('hostile token endpoint: the redeemed code leads nowhere, nothing is stored', { concurrency: 2 }, () => {
    test('50 MB chunked token response', { timeout: 40_000 }, async (t) => {
      const { r, opens, st, scratch, cb } = await runWithCallback(t, 'token-huge', { code: 'good-code', state: '$state' });
      t.diagnostic(`the browser was shown: ${cb?.status} ${(cb?.body ?? '').match(/<h1>(.*?)<\/h1>/)?.[1] ?? cb?.body}`);
      assert.equal(opens.length, 1, `the browser should have been opened:\n${show(r)}`);
      const line = assertRefused(r, /too (large|big)|larger|size|limit|bytes/i);
      assert.equal(st.counts['/token'], 1, JSON.stringify(st.counts));
      await assertNothingStored(t, scratch);
      t.diagnostic(line);
    });
    test('token endpoint redirecting the code and verifier elsewhere (307) is not followed', { timeout: 40_000 }, async (t) => {
      const { r, opens, st, scratch, cb } = await runWithCallback(t, 'token-redirect', { code: 'good-code', state: '$state' });
      t.diagnostic(`the browser was shown: ${cb?.status} ${(cb?.body ?? '').match(/<h1>(.*?)<\/h1>/)?.[1] ?? cb?.body}`);
      assert.equal(opens.length, 1, `the browser should have been opened:\n${show(r)}`);
      const line = assertRefused(r, /token|redirect/i);
      assert.equal(st.counts['/token'], 1, JSON.stringify(st.counts));
      assert.equal(st.counts['/stolen'] ?? 0, 0, `the token request was re-sent to the redirect target:\n${show(r)}`);
      await assertNothingStored(t, scratch);
      t.diagnostic(line);
    });
  });

  describe('shell metacharacters in the authorization endpoint never reach a shell', { concurrency: 2 }, () => {
    for (const scenario of ['authorization-endpoint-shell', 'authorization-endpoint-shell-ifs']) {
      test(scenario, { timeout: 40_000 }, async (t) => {
        const marker = path.join(os.tmpdir(), `pwned-${randomBytes(6).toString('hex')}`);
        t.after(() => fs.rmSync(marker, { force: true }));
        const { r, opens, st, peer } = await runWithCallback(t, scenario, { error: 'access_denied', state: '$state' }, { set: { marker } });
        await new Promise((res) => setTimeout(res, 300)); // anything a shell started would have run by now
        assert.equal(fs.existsSync(marker), false, `${marker} was created: the URL went through a shell\n${show(r)}`);
        // Refusing such an endpoint is fine; opening it is fine if it is one argument, no shell.
        assertRefused(r, null);
        for (const o of opens) {
          assert.equal(o.argv.length, 1, `the browser got ${o.argv.length} arguments: ${JSON.stringify(o.argv)}`);
          assert.ok(o.argv[0].startsWith(`${peer.asBase}/authorize`), o.argv[0]);
        }
        assert.equal(st.counts['/token'] ?? 0, 0);
        t.diagnostic(opens.length ? `opened as one argument: ${opens[0].argv[0]}` : `refused: ${lastLine(r.stderr)}`);
      });
    }
  });

  describe('forged callbacks: checked before the code is redeemed', { concurrency: 3 }, () => {
    test('wrong state', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-supported', (p) => ({ code: 'stolen-code', state: 'not-the-state', iss: p.issuer }), { twoPorts: true });
      await expectCallbackRefusal(t, run, /state/i);
    });
    test('missing state', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-not-supported', { code: 'stolen-code' });
      await expectCallbackRefusal(t, run, /state/i);
    });
    test('iss of another authorization server (iss advertised)', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-supported', { code: 'stolen-code', state: '$state', iss: EVIL_ISSUER }, { twoPorts: true });
      await expectCallbackRefusal(t, run, /iss/i);
    });
    test('iss of another authorization server (iss not advertised)', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-not-supported', { code: 'stolen-code', state: '$state', iss: EVIL_ISSUER });
      await expectCallbackRefusal(t, run, /iss/i);
    });
    test('iss differs only by a trailing slash (exact comparison)', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-supported', (p) => ({ code: 'c', state: '$state', iss: `${p.issuer}/` }), { twoPorts: true });
      await expectCallbackRefusal(t, run, /iss/i);
    });
    test('iss absent although the AS advertises authorization_response_iss_parameter_supported', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-supported', { code: 'stolen-code', state: '$state' });
      await expectCallbackRefusal(t, run, /iss/i);
    });
    test('error response with a wrong iss: the attacker\'s error_description is not shown', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-supported', {
        error: 'access_denied', error_description: ATTACKER_TEXT, state: '$state', iss: EVIL_ISSUER,
      }, { twoPorts: true });
      const { r, cb } = run;
      assert.ok(!r.stderr.includes('555-0100'), `stderr shows the forged error_description:\n${show(r)}`);
      assert.ok(!r.stdout.includes('555-0100'), `stdout shows the forged error_description:\n${show(r)}`);
      assert.ok(!(cb?.body ?? '').includes('555-0100'), `the browser page shows the forged error_description: ${cb?.body}`);
      await expectCallbackRefusal(t, run, /iss/i);
    });
    test('HTML in a forged iss is not injected into the browser page', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-supported', {
        code: 'stolen-code', state: '$state', iss: 'https://as.evil.example/"><script>alert(1)</script>',
      });
      assert.ok(!(run.cb?.body ?? '').includes('<script>alert(1)'), `the page carries the attacker's markup: ${run.cb?.body}`);
      await expectCallbackRefusal(t, run, /iss/i);
    });
    test('a genuine error response: its description is escaped in the page and one line on the terminal', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-not-supported', {
        error: 'access_denied',
        error_description: 'no <img src=x onerror=alert(1)> \u001b[31mred\u001b[0m\nerror: a forged second line',
        state: '$state',
      });
      const { r, cb } = run;
      assert.ok(!(cb?.body ?? '').includes('<img src=x'), `the page carries the markup unescaped: ${cb?.body}`);
      assert.ok(!r.stderr.includes('\u001b'), `stderr carries terminal escapes from the network:\n${JSON.stringify(r.stderr)}`);
      const errorLines = r.stderr.split(/\r?\n/).filter((l) => l.startsWith('error: '));
      assert.equal(errorLines.length, 1, `one error line expected:\n${r.stderr}`);
      await expectCallbackRefusal(t, run, /denied|refused/i);
    });
    test('iss absent and not advertised: the code is redeemed and the login succeeds', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-not-supported', { code: 'good-code-1', state: '$state' });
      await expectSignedIn(t, run);
    });
    test('iss present and equal, advertised: the login succeeds', { timeout: 40_000 }, async (t) => {
      const run = await runWithCallback(t, 'iss-supported', (p) => ({ code: 'good-code-2', state: '$state', iss: p.issuer }), { twoPorts: true });
      await expectSignedIn(t, run);
    });
  });
});
