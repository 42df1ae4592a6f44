// Faults (issue 6, docs/SECURITY.md): the broker against an authorization server that goes
// down, a service killed mid-request, a keychain that is absent or locked, an upstream that
// forgets its sessions, refresh-token rotation with reuse detection, and damaged config files
// (consent.json, hosts.json: refused with the file named, never reset, never written over).
//
//   scripts/with-keychain.sh node --test --test-concurrency=1 tests/e2e/faults.test.mjs
//
// Real peers only: peers/as.mjs (oidc-provider; rotation with reuse detection: a replayed
// refresh token revokes the whole grant), peers/as-restartable.mjs (the same AS with its state
// on disk, so it can be killed and started again on the same port), peers/mcp-server.mjs, the
// curl browser stand-in, gnome-keyring (the session's, or a private one per test for the lock
// tests, so that locking it never disturbs other tests). Every test cleans up its processes
// (bridges, service, peers, private keyring) and keychain items, failures included.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  startAs, startPeer, startMcpServer, makeServiceHome, browserOpens, runBroker, describeRun,
  asStats, mcpStats, keychainService, addHost, bridgeClient, httpClient, RawBridge, RAW_INIT_PARAMS,
  daemonPids, BROKER_BIN, brokerEnv, keychainGate, rawHttp, run, collectOutput
} from './lib/harness.mjs';

const needKeychain = keychainGate();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The keychain item of a server (JSON), or null; `bus` selects a private keyring's bus. */
async function keychainItem(home, name, bus) {
  const env = bus ? { ...process.env, DBUS_SESSION_BUS_ADDRESS: bus } : process.env;
  const r = await run('secret-tool', ['lookup', 'service', keychainService(home), 'username', `server:${name}`], { env });
  if (r.code !== 0 || !r.stdout) return null;
  return JSON.parse(r.stdout);
}

/**
 * Peers + a fresh home. opts.as: startAs options, or {restartable: true, accessTtl} for
 * as-restartable.mjs. opts.env: environment of every broker process (and so of the service).
 */
async function setup(t, { as: asOpts = {}, mcp: mcpOpts = {}, env = {} } = {}) {
  await needKeychain();
  let as;
  if (asOpts.restartable) {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'as-state-'));
    t.after(() => fs.rm(stateDir, { recursive: true, force: true }));
    const start = async (port = 0) => {
      const args = ['--port', String(port), '--login', 'auto'];
      if (asOpts.accessTtl) args.push('--access-ttl', String(asOpts.accessTtl));
      const peer = await startPeer(t, 'as-restartable.mjs', args, { env: { AS_STATE_DIR: stateDir }, name: 'as-restartable' });
      return { ...peer, issuer: peer.url, origin: new URL(peer.url).origin };
    };
    as = await start();
    as.restart = async () => start(Number(new URL(as.issuer).port));
  } else {
    as = await startAs(t, asOpts);
  }
  const mcp = await startMcpServer(t, { issuer: as.issuer, ...mcpOpts });
  // Tests may point ctx.env at a private keyring later: its items are cleared there.
  const ctx = { t, as, mcp, env };
  Object.assign(ctx, await makeServiceHome(t, { keychainEnv: () => ({ ...process.env, ...ctx.env }) }));
  return ctx;
}

function broker(ctx, args, opts = {}) {
  return runBroker(args, { home: ctx.home, browserLog: ctx.browserLog, ...opts, env: { ...ctx.env, ...(opts.env ?? {}) } });
}

/** Run the CLI with some variables removed from its environment (and so from a service it starts). */
async function brokerWithout(ctx, args, unset, { timeoutMs = 60_000 } = {}) {
  const env = brokerEnv(ctx.home, { browserLog: ctx.browserLog, env: ctx.env });
  for (const k of unset) delete env[k];
  const child = spawn(BROKER_BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = collectOutput(child, timeoutMs);
  const [code, signal] = await out.exited;
  return { code, signal, stdout: out.stdout, stderr: out.stderr, args, timedOut: out.timedOut, pipesOpenAfterExit: false };
}

async function login(ctx, name, { url = ctx.mcp.url } = {}) {
  const r = await broker(ctx, ['login', url, '--name', name]);
  assert.equal(r.code, 0, `login should succeed\n${describeRun(r)}`);
}

async function serverStatus(ctx, name) {
  const r = await broker(ctx, ['status', '--json']);
  assert.equal(r.code, 0, `status --json should succeed\n${describeRun(r)}`);
  const e = JSON.parse(r.stdout).servers.find((s) => s.name === name);
  assert.ok(e, `status has ${name}: ${r.stdout}`);
  return e;
}

const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? '').join('');

async function echo(client, text, label) {
  const res = await client.callTool({ name: 'echo', arguments: { text } });
  assert.equal(textOf(res), text, `${label}: ${JSON.stringify(res)}`);
}

/** stderr is exactly one line, `error: ...` matching re. */
function assertOneErrorLine(r, re) {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.notEqual(r.code, 0, `must fail\n${describeRun(r)}`);
  assert.equal(lines.length, 1, `one line on stderr\n${describeRun(r)}`);
  assert.match(lines[0], /^error: /, describeRun(r));
  assert.match(lines[0], re, describeRun(r));
  return lines[0];
}

function bridge(ctx, target, opts = {}) {
  return bridgeClient(ctx.t, { home: ctx.home, browserLog: ctx.browserLog, env: ctx.env, target, ...opts });
}

/** Wait until the stored access token of `name` has expired. */
async function waitExpired(ctx, name) {
  const { expires_at: exp } = await serverStatus(ctx, name);
  await sleep(Math.max(0, Date.parse(exp) - Date.now()) + 300);
}

/**
 * A private gnome-keyring on a private session bus, unlocked with a known password, so a test
 * can lock and unlock it. Returns {bus, lock(), unlock(), close()}.
 */
async function privateKeyring(t) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keyring-'));
  const rt = path.join(dir, 'runtime');
  await fs.mkdir(rt, { mode: 0o700 });
  await fs.mkdir(path.join(dir, 'data'));
  const password = `pw-${process.pid}-${Date.now()}`;
  const script = `
    set -u
    echo "$KEYRING_PW" | gnome-keyring-daemon --foreground --unlock --components=secrets >"$XDG_RUNTIME_DIR/gk.log" 2>&1 &
    gk=$!
    if ! gdbus wait --session --timeout 10 org.freedesktop.secrets; then echo FAILED; kill $gk; exit 1; fi
    echo "BUS $DBUS_SESSION_BUS_ADDRESS"
    cat >/dev/null
    kill $gk; wait $gk 2>/dev/null
  `;
  const env = { ...process.env, XDG_RUNTIME_DIR: rt, XDG_DATA_HOME: path.join(dir, 'data'), KEYRING_PW: password };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  const proc = spawn('dbus-run-session', ['--', 'bash', '-c', script], { env, stdio: ['pipe', 'pipe', 'ignore'] });
  const close = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = once(proc, 'exit');
      proc.stdin.end();
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await fs.rm(dir, { recursive: true, force: true });
  };
  const bus = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`private keyring did not start: ${out}`)), 15_000);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /^BUS (\S+)$/m.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
      if (/FAILED/.test(out)) { clearTimeout(timer); reject(new Error('private keyring failed to start')); }
    });
  }).catch(async (e) => { await close(); throw e; });
  const benv = { ...process.env, DBUS_SESSION_BUS_ADDRESS: bus };
  return {
    bus,
    close,
    async lock() {
      const r = await run('gdbus', ['call', '--session', '--dest', 'org.freedesktop.secrets', '--object-path', '/org/freedesktop/secrets',
        '--method', 'org.freedesktop.Secret.Service.Lock', "@ao ['/org/freedesktop/secrets/collection/login']"], { env: benv });
      assert.equal(r.code, 0, `locking the keyring: ${r.stderr}`);
    },
    async unlock() {
      // gnome-keyring's own unlock-with-password call (what PAM does at login); the daemon
      // took the password from `echo`, newline included.
      const py = `
import sys, dbus
bus = dbus.SessionBus()
svc = bus.get_object('org.freedesktop.secrets', '/org/freedesktop/secrets')
_, session = svc.OpenSession('plain', dbus.String('', variant_level=1), dbus_interface='org.freedesktop.Secret.Service')
internal = dbus.Interface(svc, 'org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface')
secret = dbus.Struct((session, dbus.ByteArray(b''), dbus.ByteArray(sys.argv[1].encode()), 'text/plain'), signature='oayays')
internal.UnlockWithMasterPassword(dbus.ObjectPath('/org/freedesktop/secrets/collection/login'), secret)
`;
      const r = await run('/usr/bin/python3', ['-c', py, `${password}\n`], { env: benv });
      assert.equal(r.code, 0, `unlocking the keyring: ${r.stderr}`);
    },
    async isLocked() {
      const r = await run('gdbus', ['call', '--session', '--dest', 'org.freedesktop.secrets', '--object-path', '/org/freedesktop/secrets/collection/login',
        '--method', 'org.freedesktop.DBus.Properties.Get', 'org.freedesktop.Secret.Collection', 'Locked'], { env: benv });
      return /true/.test(r.stdout);
    },
  };
}

// ------------------------------------------------------------------------------------------

test('the authorization server is down during a refresh: clear errors, last_error in status, nothing deleted; back on the same port, everything works again', async (t) => {
  const ctx = await setup(t, { as: { restartable: true, accessTtl: 4 } });
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-faults');
  const c = await httpClient(t, { endpoint: h.endpoint, server: 'alpha', key: h.key });
  const b = await bridge(ctx, 'alpha', { host: 'faults-bridge' });
  await echo(c.client, 'before', 'HTTP before the AS goes down');
  await echo(b.client, 'before', 'bridge before the AS goes down');
  const kc1 = await keychainItem(ctx.home, 'alpha');
  assert.ok(kc1?.refresh_token, 'a refresh token in the keychain');

  ctx.as.proc.kill('SIGKILL');
  await once(ctx.as.proc, 'exit');
  await waitExpired(ctx, 'alpha');

  const started = Date.now();
  const r = await broker(ctx, ['refresh', 'alpha']);
  const line = assertOneErrorLine(r, /refreshing alpha failed: .*(unavailable|cannot reach|unreachable)/i);
  t.diagnostic(`refresh with the AS down (${Date.now() - started} ms): ${line}`);

  for (const [label, client] of [['HTTP', c.client], ['bridge', b.client]]) {
    const err = await client.callTool({ name: 'echo', arguments: { text: 'AS down' } }).catch((e) => e);
    assert.ok(err instanceof Error, `${label}: the call fails while the token cannot be refreshed: ${JSON.stringify(err)}`);
    assert.match(err.message, /refreshing alpha failed.*(unavailable|cannot reach)/i, `${label}: the host is told why`);
    t.diagnostic(`${label}: ${err.message}`);
  }

  const down = await serverStatus(ctx, 'alpha');
  assert.equal(down.state, 'signed_in', `a transient failure does not sign out: ${JSON.stringify(down)}`);
  assert.match(down.last_error ?? '', /unavailable|cannot reach/i, `status shows last_error: ${JSON.stringify(down)}`);
  assert.deepEqual(await keychainItem(ctx.home, 'alpha'), kc1, 'nothing in the keychain changed or was deleted');

  const as2 = await ctx.as.restart();
  assert.equal(as2.issuer, ctx.as.issuer, 'the AS is back at the same issuer');
  await echo(c.client, 'after', 'HTTP once the AS is back');
  await echo(b.client, 'after', 'bridge once the AS is back');
  const up = await serverStatus(ctx, 'alpha');
  assert.equal(up.state, 'signed_in');
  assert.equal(up.last_error, null, `last_error is cleared by a successful refresh: ${JSON.stringify(up)}`);
  const kc2 = await keychainItem(ctx.home, 'alpha');
  assert.notEqual(kc2.refresh_token, kc1.refresh_token, 'the refresh rotated the refresh token');
  const st = await asStats(as2);
  assert.ok(st.refresh_grants >= 1, 'refreshed at the restarted AS');
  assert.deepEqual(st.grant_errors, [], 'no refresh token was replayed or refused');
  assert.equal(st.grants_revoked, 0);
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no new sign-in');
});

test('the service is killed (SIGKILL) mid-request: the cut-off call gets an error, the bridge starts a new service, later calls work on both shims, no token lost', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-faults');
  const c = await httpClient(t, { endpoint: h.endpoint, server: 'alpha', key: h.key });
  const b = await bridge(ctx, 'alpha', { host: 'faults-bridge' });
  await echo(b.client, 'before', 'bridge before the kill');
  const kc1 = await keychainItem(ctx.home, 'alpha');
  const [pid] = await daemonPids(ctx.home);
  assert.ok(pid, 'a service runs');

  let progressed;
  const progress = new Promise((r) => { progressed = r; });
  const started = Date.now();
  const inflight = b.client.callTool({ name: 'slow_stream', arguments: { count: 40, interval_ms: 100 } }, undefined, {
    onprogress: () => progressed(), timeout: 30_000,
  }).then((v) => ({ value: v, at: Date.now() }), (e) => ({ error: e, at: Date.now() }));
  await progress;
  process.kill(pid, 'SIGKILL');
  const killedAt = Date.now();
  const cut = await inflight;
  const waited = cut.at - killedAt;
  t.diagnostic(`in-flight call after the kill: ${cut.error ? cut.error.message : JSON.stringify(cut.value)} (${waited} ms after the kill, ${cut.at - started} ms in all)`);
  assert.ok(cut.error, 'the cut-off call does not report success');
  assert.ok(!/timed out/i.test(cut.error.message) && waited < 10_000,
    `the bridge answers the cut-off request with an error instead of leaving the host waiting for its own timeout: ${cut.error.message} after ${waited} ms`);

  const again = Date.now();
  await echo(b.client, 'after', 'bridge after the kill (starts a new service)');
  t.diagnostic(`first bridge call after the kill: ${Date.now() - again} ms`);
  const pids = await daemonPids(ctx.home);
  assert.equal(pids.length, 1, 'one new service');
  assert.notEqual(pids[0], pid);
  await echo(c.client, 'after', 'HTTP host after the restart (same port, its upstream session kept)');
  assert.deepEqual(await keychainItem(ctx.home, 'alpha'), kc1, 'the tokens are intact');
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no new sign-in');
  assert.equal((await asStats(ctx.as)).code_grants, 1);
});

test('no keychain (no D-Bus session bus): one clear line per refused request, the service stays up for the others', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  await broker(ctx, ['stop']);
  assert.deepEqual(await daemonPids(ctx.home), [], 'the first service stopped');

  const unset = ['DBUS_SESSION_BUS_ADDRESS', 'DISPLAY', 'WAYLAND_DISPLAY', 'XDG_RUNTIME_DIR'];
  const st = await brokerWithout(ctx, ['status', '--json'], unset);
  assert.equal(st.code, 0, `status works without a keychain (it reads no secret)\n${describeRun(st)}`);
  assert.equal(JSON.parse(st.stdout).servers[0]?.state, 'signed_in');
  const [pid] = await daemonPids(ctx.home);
  const env = (await fs.readFile(`/proc/${pid}/environ`)).toString();
  assert.ok(!env.includes('DBUS_SESSION_BUS_ADDRESS='), 'the service runs without a session bus');

  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'nokeychain'], browserLog: ctx.browserLog });
  raw.request(1, 'initialize', RAW_INIT_PARAMS);
  const init = await raw.response(1);
  assert.ok(init.error, `initialize cannot get a token: ${JSON.stringify(init)}`);
  assert.match(init.error.message, /keychain/i, `the host is told the keychain is the problem: ${init.error.message}`);
  assert.ok(!init.error.message.includes('\n'), 'one line');
  t.diagnostic(`bridge: ${init.error.message}`);

  const lg = await brokerWithout(ctx, ['login', ctx.mcp.url, '--name', 'beta'], unset);
  const line = assertOneErrorLine(lg, /keychain/i);
  t.diagnostic(`login: ${line}`);
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no browser opened for a login whose tokens could not be stored');

  const hosts = await brokerWithout(ctx, ['hosts', 'add', 'vscode-nokeychain'], unset);
  assertOneErrorLine(hosts, /keychain/i);

  const st2 = await brokerWithout(ctx, ['status', '--json'], unset);
  assert.equal(st2.code, 0, describeRun(st2));
  assert.deepEqual(await daemonPids(ctx.home), [pid], 'the same service is still up');
});

test('a locked keychain: one clear line per refused request, the service stays up, and works again once unlocked', async (t) => {
  const ctx = await setup(t);
  const kr = await privateKeyring(t);
  t.after(() => kr.close());
  ctx.env = { DBUS_SESSION_BUS_ADDRESS: kr.bus };
  await login(ctx, 'alpha');
  assert.ok(await keychainItem(ctx.home, 'alpha', kr.bus), 'the tokens are in the private keyring');
  await broker(ctx, ['stop']); // a new service, with nothing cached
  await kr.lock();
  assert.ok(await kr.isLocked(), 'the keyring is locked');

  const st = await broker(ctx, ['status', '--json']);
  assert.equal(st.code, 0, `status works with a locked keychain\n${describeRun(st)}`);
  const [pid] = await daemonPids(ctx.home);

  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'locked'], browserLog: ctx.browserLog, env: ctx.env });
  const started = Date.now();
  raw.request(1, 'initialize', RAW_INIT_PARAMS);
  const init = await raw.response(1, 30_000);
  assert.ok(init.error, `initialize cannot get a token: ${JSON.stringify(init)}`);
  assert.match(init.error.message, /keychain.*locked|locked.*keychain/i, `the host is told the keychain is locked: ${init.error.message}`);
  t.diagnostic(`bridge (${Date.now() - started} ms): ${init.error.message}`);

  const lg = await broker(ctx, ['login', ctx.mcp.url, '--name', 'beta']);
  t.diagnostic(`login: ${assertOneErrorLine(lg, /keychain.*locked|locked.*keychain/i)}`);
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no browser opened for a login whose tokens could not be stored');
  assert.deepEqual(await daemonPids(ctx.home), [pid], 'the same service is still up');

  await kr.unlock();
  assert.equal(await kr.isLocked(), false);
  await raw.init(2);
  raw.request(3, 'tools/call', { name: 'echo', arguments: { text: 'unlocked' } });
  const ok = await raw.response(3);
  assert.equal(ok.result?.content?.[0]?.text, 'unlocked', `works once unlocked, without a restart: ${JSON.stringify(ok)}`);
  assert.deepEqual(await daemonPids(ctx.home), [pid]);
});

test('a locked keychain when the service starts, with HTTP host keys configured: the service still starts and serves what needs no secret', async (t) => {
  const ctx = await setup(t);
  const kr = await privateKeyring(t);
  t.after(() => kr.close());
  ctx.env = { DBUS_SESSION_BUS_ADDRESS: kr.bus };
  await login(ctx, 'alpha');
  await addHost(ctx.home, 'vscode-locked');
  await broker(ctx, ['stop']);
  await kr.lock();

  const st = await broker(ctx, ['status', '--json']);
  t.diagnostic(`status with a locked keychain and host keys: exit ${st.code}: ${(st.stderr || st.stdout).trim().split('\n')[0]}`);
  assert.equal(st.code, 0, `the service starts and answers status although the keychain is locked (host keys can wait)\n${describeRun(st)}`);
  await kr.unlock();
});

test('the MCP server restarts (2025-11-25 sessions, upstream 404): the bridge tells the host to re-initialize, the HTTP host gets the 404; both re-initialize and go on', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-faults');
  const port = Number(new URL(h.endpoint).port);
  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'raw-bridge'], browserLog: ctx.browserLog });
  await raw.init(1);
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${h.key}` };
  const init = await rawHttp(port, { path: '/servers/alpha/mcp', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: RAW_INIT_PARAMS }) });
  const sid = init.headers['mcp-session-id'];
  assert.ok(sid, `the HTTP host got a session: ${init.status} ${JSON.stringify(init.headers)}`);

  const mcpPort = Number(new URL(ctx.mcp.url).port);
  await ctx.mcp.kill();
  const mcp2 = await startMcpServer(t, { issuer: ctx.as.issuer, port: mcpPort, name: 'mcp-restarted' });

  raw.request(2, 'tools/call', { name: 'echo', arguments: { text: 'dead session' } });
  const gone = await raw.response(2);
  assert.match(gone.error?.message ?? '', /re-?initiali[sz]e/i, `the bridge tells the host to re-initialize: ${JSON.stringify(gone)}`);
  assert.match(gone.error.message, /404|session/i);
  t.diagnostic(`bridge: ${gone.error.message}`);

  const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'dead session' } } });
  const dead = await rawHttp(port, { path: '/servers/alpha/mcp', headers: { ...headers, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' }, body: call });
  assert.equal(dead.status, 404, `the HTTP host sees the upstream 404 (its cue to start a new session, 2025-11-25): ${dead.status} ${dead.body}`);

  await raw.init(3);
  raw.request(4, 'tools/call', { name: 'echo', arguments: { text: 'new session' } });
  assert.equal((await raw.response(4)).result?.content?.[0]?.text, 'new session');
  const init2 = await rawHttp(port, { path: '/servers/alpha/mcp', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'initialize', params: RAW_INIT_PARAMS }) });
  assert.ok(init2.headers['mcp-session-id'] && init2.headers['mcp-session-id'] !== sid, 'a new session for the HTTP host');
  assert.equal((await mcpStats(mcp2)).sessions_created, 2);
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no new sign-in');
});

test('a refresh token is never replayed: concurrent calls on 6 hosts and forced refreshes across many expiries, with reuse detection on: the grant survives', async (t) => {
  const ctx = await setup(t, { as: { accessTtl: 3 } });
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-faults');
  const clients = [];
  for (let i = 0; i < 5; i += 1) clients.push((await httpClient(t, { endpoint: h.endpoint, server: 'alpha', key: h.key, clientName: `replay-${i}` })).client);
  clients.push((await bridge(ctx, 'alpha', { host: 'replay-bridge' })).client);

  const until = Date.now() + 12_000;
  let calls = 0;
  let forced = 0;
  const failures = [];
  while (Date.now() < until) {
    const wave = Array.from({ length: 24 }, (_, i) => clients[i % clients.length].callTool({ name: 'echo', arguments: { text: `w${calls + i}` } })
      .then((r) => { if (textOf(r) !== `w${calls + i}`) failures.push(JSON.stringify(r)); }, (e) => failures.push(e.message)));
    const refreshes = Array.from({ length: 2 }, () => broker(ctx, ['refresh', 'alpha']).then((r) => {
      forced += 1;
      if (r.code !== 0) failures.push(`refresh: ${r.stderr.trim()}`);
    }));
    await Promise.all([...wave, ...refreshes]);
    calls += wave.length;
    await sleep(150);
  }
  const st = await asStats(ctx.as);
  t.diagnostic(`${calls} calls, ${forced} forced refreshes, ${st.refresh_grants} refresh grants at the AS`);
  assert.deepEqual(failures, [], 'every call and every forced refresh succeeded');
  assert.deepEqual(st.grant_errors, [], 'the AS refused no refresh (a replayed token is invalid_grant)');
  assert.equal(st.grants_revoked, 0, 'reuse detection never revoked the grant');
  assert.ok(st.refresh_grants >= forced, `at least the forced refreshes reached the AS (${st.refresh_grants} >= ${forced})`);
  assert.equal((await serverStatus(ctx, 'alpha')).state, 'signed_in');
  await echo(clients[0], 'still signed in', 'after the run');
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no new sign-in');
});

test('a refresh while the keychain is locked does not lose the rotated refresh token: once unlocked, no replay, the grant survives', async (t) => {
  const ctx = await setup(t);
  const kr = await privateKeyring(t);
  t.after(() => kr.close());
  ctx.env = { DBUS_SESSION_BUS_ADDRESS: kr.bus };
  await login(ctx, 'alpha');
  const b = await bridge(ctx, 'alpha', { host: 'locked-refresh' });
  await echo(b.client, 'cached', 'bridge (the service now holds the tokens in memory)');
  await kr.lock();

  const r1 = await broker(ctx, ['refresh', 'alpha']);
  t.diagnostic(`refresh while locked: exit ${r1.code}: ${r1.stderr.trim() || r1.stdout.trim()}`);
  const afterLocked = await asStats(ctx.as);
  t.diagnostic(`refresh grants at the AS while locked: ${afterLocked.refresh_grants}`);

  await kr.unlock();
  const r2 = await broker(ctx, ['refresh', 'alpha']);
  const st = await asStats(ctx.as);
  t.diagnostic(`refresh once unlocked: exit ${r2.code}: ${r2.stderr.trim() || r2.stdout.trim()}; grant errors ${JSON.stringify(st.grant_errors)}, grants revoked ${st.grants_revoked}`);
  assert.deepEqual(st.grant_errors, [], 'no refresh token was replayed');
  assert.equal(st.grants_revoked, 0, 'reuse detection did not revoke the grant');
  assert.equal(r2.code, 0, describeRun(r2));
  assert.equal((await serverStatus(ctx, 'alpha')).state, 'signed_in');
  await echo(b.client, 'after', 'bridge after the unlock');
});

// ------------------------------------------------------------------------------------------

/** A JSON file broken the way a crash or a bad hand edit leaves one. */
const DAMAGED = '{\n  "decisions": [\n    {"host": "vscode-damaged", "server": "alpha", "decision": "deny"\n';

test('a damaged consent.json fails closed: every host is refused with the file named, the service stays up, the file is left as it was', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-damaged');
  await broker(ctx, ['stop']);
  const file = path.join(ctx.home, 'config', 'consent.json');
  await fs.writeFile(file, DAMAGED, { mode: 0o600 });
  const sessionsBefore = (await mcpStats(ctx.mcp)).sessions_created;

  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'bridge-damaged'], browserLog: ctx.browserLog });
  raw.request(1, 'initialize', RAW_INIT_PARAMS);
  const init = await raw.response(1);
  assert.ok(init.error, `the bridge host is not allowed: ${JSON.stringify(init)}`);
  assert.match(init.error.message, /consent\.json is damaged.*move it aside/, `the host is told which file and what to do: ${init.error.message}`);
  t.diagnostic(`bridge: ${init.error.message}`);

  const port = Number(new URL(h.endpoint).port);
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${h.key}` };
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: RAW_INIT_PARAMS });
  const http = await rawHttp(port, { path: '/servers/alpha/mcp', headers, body });
  const answer = JSON.parse(http.body);
  assert.ok(answer.error && !answer.result, `the HTTP host is not allowed: ${http.status} ${http.body}`);
  assert.match(answer.error.message, /consent\.json is damaged/, http.body);

  assert.equal((await mcpStats(ctx.mcp)).sessions_created, sessionsBefore, 'nothing reached the MCP server');
  const st = await broker(ctx, ['status', '--json']);
  assert.equal(st.code, 0, `status works\n${describeRun(st)}`);
  assert.equal(await fs.readFile(file, 'utf8'), DAMAGED, 'consent.json is unchanged');

  await fs.rm(file); // the user moves it aside: consent starts afresh, without a restart
  raw.request(2, 'initialize', RAW_INIT_PARAMS);
  const again = await raw.response(2);
  assert.ok(again.result, `allowed again once the file is gone (no UI attached): ${JSON.stringify(again)}`);
});

test('a damaged hosts.json: HTTP hosts get a clear error naming it, key changes are refused, the service stays up, the file is left as it was', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-damaged');
  await broker(ctx, ['stop']);
  const file = path.join(ctx.home, 'config', 'hosts.json');
  await fs.writeFile(file, DAMAGED, { mode: 0o600 });

  const st = await broker(ctx, ['status', '--json']);
  assert.equal(st.code, 0, `the service starts and status works\n${describeRun(st)}`);
  const [pid] = await daemonPids(ctx.home);
  const port = Number(new URL(JSON.parse(st.stdout).endpoint).port);
  assert.equal(port, Number(new URL(h.endpoint).port), 'the kept port');
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${h.key}` };
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: RAW_INIT_PARAMS });
  const http = await rawHttp(port, { path: '/servers/alpha/mcp', headers, body });
  assert.equal(http.status, 503, `the key cannot be checked: ${http.status} ${http.body}`);
  assert.match(http.body, /hosts\.json is damaged.*move it aside/, http.body);
  t.diagnostic(`HTTP host: ${http.body}`);

  t.diagnostic(`hosts add: ${assertOneErrorLine(await broker(ctx, ['hosts', 'add', 'another']), /hosts\.json is damaged/)}`);
  assertOneErrorLine(await broker(ctx, ['hosts', 'remove', 'vscode-damaged']), /hosts\.json is damaged/);
  assertOneErrorLine(await broker(ctx, ['hosts', 'list']), /hosts\.json is damaged/);

  const b = await bridge(ctx, 'alpha', { host: 'bridge-hosts-damaged' });
  await echo(b.client, 'bridge hosts need no key', 'a bridge host while hosts.json is damaged');
  assert.equal(await fs.readFile(file, 'utf8'), DAMAGED, 'hosts.json is unchanged');
  assert.deepEqual(await daemonPids(ctx.home), [pid], 'the same service is still up');
});

test('a damaged servers.json and service.json: the service starts on a new port without saving over the settings, hosts get a clear error naming servers.json, both files are left as they were', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  await broker(ctx, ['stop']);
  const servers = path.join(ctx.home, 'config', 'servers.json');
  const settings = path.join(ctx.home, 'config', 'service.json');
  await fs.writeFile(servers, DAMAGED, { mode: 0o600 });
  await fs.writeFile(settings, '{"port": "not a port"}', { mode: 0o600 });

  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'bridge-damaged'], browserLog: ctx.browserLog });
  raw.request(1, 'initialize', RAW_INIT_PARAMS);
  const init = await raw.response(1);
  assert.ok(init.error, `alpha cannot be used: ${JSON.stringify(init)}`);
  assert.match(init.error.message, /servers\.json is damaged.*move it aside/, init.error.message);
  assert.ok(!init.error.message.includes('\n'), 'one line');
  t.diagnostic(`bridge: ${init.error.message}`);
  const pids = await daemonPids(ctx.home);
  assert.equal(pids.length, 1, 'the service started although service.json is damaged');

  assert.equal(await fs.readFile(servers, 'utf8'), DAMAGED, 'servers.json is unchanged');
  assert.equal(await fs.readFile(settings, 'utf8'), '{"port": "not a port"}', 'service.json is unchanged (the new port is not saved over it)');
  assert.equal(await browserOpens(ctx.browserLog), 1, 'no new sign-in was started over a damaged registry');
});
