// The local attack surface of the broker service (issue 6, docs/SECURITY.md): what another
// user on the machine, and a host process of this user, can and cannot reach.
//
//   scripts/with-keychain.sh node --test --test-concurrency=1 tests/e2e/local.test.mjs
//
// Needs root (to run a client as `nobody` with runuser), the binary (MCP_BROKER_BIN), a Secret
// Service on the session bus, /usr/bin/python3 and curl. Nothing is skipped: a missing
// prerequisite fails with a message saying so.
//
// - the control socket is 0600 in a 0700 runtime dir; config/data dirs 0700; metadata 0600;
// - `nobody` cannot connect to the control socket (EACCES), even when the directories above
//   it are opened up (the socket's own mode holds), cannot start or use a service in the
//   home, and cannot reach this user's Secret Service;
// - the loopback HTTP endpoint listens on 127.0.0.1 only; `nobody` can connect to it and is
//   refused without a host key, and with a key unless its host was added `--any-user`;
// - another user racing the browser to the sign-in callback is refused;
// - a tool disabled for a host stays disabled however the host frames its JSON-RPC;
// - a connection that never finishes a request head (or idles) is closed after 30 s, and
//   holding many such open does not stop the service answering others.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import {
  startAs, startMcpServer, makeServiceHome, runBroker, describeRun, keychainService, keychainLookup,
  addHost, mcpStats, RawBridge, BROKER_BIN, keychainGate, controlRequest, rawHttp, run, PEERS_DIR
} from './lib/harness.mjs';

const needKeychain = keychainGate();

/** Run a command as the user `nobody` (root only), with a minimal environment plus `env`. */
function asNobody(args, env = {}) {
  const base = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: '/nonexistent' };
  return run('runuser', ['-u', 'nobody', '--', 'env', '-i', ...Object.entries({ ...base, ...env }).map(([k, v]) => `${k}=${v}`), ...args]);
}

async function needRoot() {
  assert.equal(process.getuid(), 0, 'these tests run a client as another user (runuser -u nobody) and need root');
  const r = await asNobody(['id', '-u']);
  assert.equal(r.code, 0, `runuser -u nobody failed: ${r.stderr}`);
  assert.notEqual(r.stdout.trim(), '0');
}

const PY_CONNECT = `
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /v1/status HTTP/1.1\\r\\nHost: mcp-broker\\r\\nConnection: close\\r\\n\\r\\n")
    print("CONNECTED", s.recv(200).split(b"\\r\\n")[0].decode())
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
`;

const mode = async (p) => ((await fs.stat(p)).mode & 0o777).toString(8).padStart(3, '0');

async function setup(t, { mcp: mcpOpts = {} } = {}) {
  await needKeychain();
  const as = await startAs(t);
  const mcp = await startMcpServer(t, { issuer: as.issuer, ...mcpOpts });
  const { home, browserLog } = await makeServiceHome(t);
  return { as, mcp, home, browserLog };
}

async function login(ctx, name) {
  const r = await runBroker(['login', ctx.mcp.url, '--name', name], { home: ctx.home, browserLog: ctx.browserLog });
  assert.equal(r.code, 0, `login should succeed\n${describeRun(r)}`);
}

/** The JSON-RPC messages of a response body (JSON, or SSE `data:` lines). */
function messagesOf(body) {
  const t = body.trim();
  if (t.startsWith('{') || t.startsWith('[')) {
    const v = JSON.parse(t);
    return Array.isArray(v) ? v : [v];
  }
  return t.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
}

// ------------------------------------------------------------------------------------------

test('the control socket is 0600 in a 0700 runtime dir; config and data dirs are 0700; metadata files 0600', async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  await addHost(ctx.home, 'vscode-local');
  const sock = path.join(ctx.home, 'run', 'broker.sock');
  const st = await fs.lstat(sock);
  assert.ok(st.isSocket(), `${sock} is a socket`);
  assert.equal(st.uid, process.getuid(), 'the socket belongs to the user');
  const modes = {
    'run/broker.sock': await mode(sock),
    run: await mode(path.join(ctx.home, 'run')),
    config: await mode(path.join(ctx.home, 'config')),
    data: await mode(path.join(ctx.home, 'data')),
  };
  for (const f of ['servers.json', 'hosts.json', 'service.json']) modes[`config/${f}`] = await mode(path.join(ctx.home, 'config', f));
  t.diagnostic(JSON.stringify(modes));
  assert.deepEqual(modes, {
    'run/broker.sock': '600',
    run: '700',
    config: '700',
    data: '700',
    'config/servers.json': '600',
    'config/hosts.json': '600',
    'config/service.json': '600',
  });
  // Every other file (audit database, service log, lock) lies under one of those 0700 dirs.
  const others = [];
  for (const d of ['run', 'config', 'data']) {
    for (const f of await fs.readdir(path.join(ctx.home, d))) others.push(`${d}/${f} ${await mode(path.join(ctx.home, d, f))}`);
  }
  t.diagnostic(`all files: ${others.join(', ')}`);
});

test('another user (nobody) cannot connect to the control socket (EACCES), even with the directories opened up, nor start a service or read the keychain', async (t) => {
  await needRoot();
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const sock = path.join(ctx.home, 'run', 'broker.sock');

  // Positive control: the user itself connects and is answered.
  const mine = await run('/usr/bin/python3', ['-c', PY_CONNECT, sock]);
  assert.match(mine.stdout, /^CONNECTED HTTP\/1\.1 200/, `the user connects: ${mine.stdout} ${mine.stderr}`);

  // As created: the home and its run dir stop nobody before the socket.
  const shut = await asNobody(['/usr/bin/python3', '-c', PY_CONNECT, sock]);
  assert.equal(shut.stdout.trim(), 'EACCES', `nobody connecting to ${sock}: ${shut.stdout} ${shut.stderr}`);

  // Open the directories to everyone (a user's mistake, or a shared XDG_RUNTIME_DIR): the
  // socket's own mode 0600 still refuses the connection.
  const dirs = [ctx.home, path.join(ctx.home, 'run')];
  const saved = await Promise.all(dirs.map(async (d) => (await fs.stat(d)).mode & 0o777));
  t.after(() => Promise.all(dirs.map((d, i) => fs.chmod(d, saved[i]).catch(() => {}))));
  for (const d of dirs) await fs.chmod(d, 0o755);
  const open = await asNobody(['/usr/bin/python3', '-c', PY_CONNECT, sock]);
  assert.equal(open.stdout.trim(), 'EACCES', `nobody connecting to the 0600 socket in open directories: ${open.stdout} ${open.stderr}`);

  // The real CLI as nobody, aimed at this home: a clear error, no second service, nothing created.
  const before = await fs.readdir(path.join(ctx.home, 'run'));
  const cli = await asNobody([BROKER_BIN, 'status', '--json'], { MCP_BROKER_HOME: ctx.home });
  assert.notEqual(cli.code, 0, `nobody's mcp-broker status must fail: ${cli.stdout} ${cli.stderr}`);
  assert.match(cli.stderr.trim(), /^error: .*(denied|cannot|not running)/i, `one clear error line: ${cli.stderr}`);
  assert.equal(cli.stdout, '', 'nothing printed on stdout (no status of this user\'s servers)');
  assert.deepEqual(await fs.readdir(path.join(ctx.home, 'run')), before, 'nobody created nothing in the run dir');
  t.diagnostic(`nobody's CLI: ${cli.stderr.trim()}`);

  // This user's Secret Service is on this user's session bus: nobody is not let in.
  assert.ok(await keychainLookup(ctx.home, 'alpha'), 'the tokens are in the keychain');
  const kc = await asNobody(['secret-tool', 'lookup', 'service', keychainService(ctx.home), 'username', 'server:alpha'],
    { DBUS_SESSION_BUS_ADDRESS: process.env.DBUS_SESSION_BUS_ADDRESS });
  assert.notEqual(kc.code, 0, 'nobody\'s secret-tool lookup fails');
  assert.equal(kc.stdout, '', `nobody read nothing from the keychain: ${kc.stdout}`);
  t.diagnostic(`nobody's secret-tool: ${kc.stderr.trim().split('\n')[0]}`);
});

test('the loopback HTTP endpoint listens on 127.0.0.1 only; another user reaching it is refused without a host key (401), and with this user\'s host key (403) unless the host was added --any-user', async (t) => {
  await needRoot();
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-local');
  const port = Number(new URL(h.endpoint).port);

  const listeners = async (file) => {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    return text.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length > 3 && f[3] === '0A')
      .map((f) => f[1]).filter((addr) => Number.parseInt(addr.split(':')[1], 16) === port);
  };
  assert.deepEqual(await listeners('/proc/net/tcp'), [`0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`], 'one IPv4 listener, on 127.0.0.1');
  assert.deepEqual(await listeners('/proc/net/tcp6'), [], 'no IPv6 listener on the port');

  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'nobody', version: '0' } } });
  // POST initialize with `headers`, as `nobody` (or as this user: `asUs`); prints the status.
  const asUs = (args) => run(args[0], args.slice(1));
  const curl = (headers, as = asNobody) => as(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST',
    '-H', 'content-type: application/json', '-H', 'accept: application/json, text/event-stream',
    ...headers.flatMap((x) => ['-H', x]), '--data', body, `http://127.0.0.1:${port}/servers/alpha/mcp`]);
  const upstreamBefore = (await mcpStats(ctx.mcp)).requests;
  const none = await curl([]);
  assert.equal(none.stdout, '401', `nobody without a key: ${none.stdout} ${none.stderr}`);
  const wrong = await curl([`authorization: Bearer mcpb_${'A'.repeat(43)}`]);
  assert.equal(wrong.stdout, '401', `nobody with a guessed key: ${wrong.stdout}`);
  const prefix = await curl([`authorization: Bearer ${h.key.slice(0, -1)}`]);
  assert.equal(prefix.stdout, '401', `nobody with all but the last character of the key: ${prefix.stdout}`);
  assert.equal((await mcpStats(ctx.mcp)).requests, upstreamBefore, 'nothing reached the MCP server');

  // Even holding the key, another user is refused: the key serves this user's programs only
  // (the kernel says who opened the connection).
  const stolen = await curl([`authorization: Bearer ${h.key}`]);
  assert.equal(stolen.stdout, '403', `nobody holding the key is refused: ${stolen.stdout}`);
  assert.equal((await mcpStats(ctx.mcp)).requests, upstreamBefore, 'still nothing reached the MCP server');
  const ours = await curl([`authorization: Bearer ${h.key}`], asUs);
  assert.equal(ours.stdout, '200', `this user's program with the key is served: ${ours.stdout}`);

  // A host made for an agent that runs as another user: its key works for them.
  const agent = await addHost(ctx.home, 'agent-account', { anyUser: true });
  const served = await curl([`authorization: Bearer ${agent.key}`]);
  assert.equal(served.stdout, '200', `nobody with an --any-user host's key is served: ${served.stdout}`);
  const listed = JSON.parse((await runBroker(['hosts', 'list', '--json'], { home: ctx.home })).stdout);
  t.diagnostic(JSON.stringify(listed.hosts));
  assert.deepEqual(listed.hosts.map((x) => [x.name, x.any_user]).sort(), [['agent-account', true], ['vscode-local', false]]);
});

test('a tool disabled for a host stays disabled when the host wraps tools/call in a JSON-RPC batch (HTTP endpoint and bridge)', async (t) => {
  const ctx = await setup(t, { mcp: { mode: 'stateless' } });
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-local');
  const port = Number(new URL(h.endpoint).port);
  for (const host of ['vscode-local', 'raw-bridge']) {
    const r = await controlRequest(ctx.home, 'PUT', `/v1/policy/${host}/alpha`, { disabled: ['echo'] });
    assert.equal(r.status, 200, `disable echo for ${host}: ${r.status} ${r.body}`);
  }
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${h.key}`, 'mcp-protocol-version': '2025-11-25' };
  const call = (id, text) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text } } });
  const echoes = async () => (await mcpStats(ctx.mcp)).tool_calls.echo ?? 0;

  // Control: a plain tools/call of the disabled tool is refused before it reaches the server.
  const single = await rawHttp(port, { path: '/servers/alpha/mcp', headers, body: JSON.stringify(call(1, 'single')) });
  const m1 = messagesOf(single.body);
  assert.match(m1[0]?.error?.message ?? '', /disabled/, `a plain call of a disabled tool is refused: ${single.status} ${single.body}`);
  assert.equal(await echoes(), 0);

  // The same call in a one-element batch (JSON-RPC 2.0 §6; the SDK server executes batches).
  const batch = await rawHttp(port, { path: '/servers/alpha/mcp', headers, body: JSON.stringify([call(2, 'batched over HTTP')]) });
  const ranHttp = await echoes();
  t.diagnostic(`HTTP batch: ${batch.status} ${batch.body.replace(/\s+/g, ' ').slice(0, 200)}`);

  // Through the stdio bridge: one line holding an array.
  const raw = new RawBridge(t, { home: ctx.home, args: ['alpha', '--host', 'raw-bridge'], browserLog: ctx.browserLog });
  raw.send(JSON.stringify([call(3, 'batched over the bridge')]));
  const answer = await raw.next(() => true, 30_000).catch((e) => e);
  const ranBridge = (await echoes()) - ranHttp;
  t.diagnostic(`bridge batch: ${answer instanceof Error ? answer.message.split('\n')[0] : JSON.stringify(answer).slice(0, 200)}`);

  assert.deepEqual({ http: ranHttp, bridge: ranBridge }, { http: 0, bridge: 0 },
    'times the disabled tool ran upstream when called inside a batch, per shim');
});

test('connections that never finish a request head are closed after 30 s; hosts are served meanwhile', { timeout: 120_000 }, async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'vscode-slow');
  const port = Number(new URL(h.endpoint).port);

  // 50 connections that send half a request head and then nothing (a slow-loris client, which
  // any local user can be: loopback TCP carries no user id).
  const started = Date.now();
  const slow = await Promise.all(Array.from({ length: 50 }, () => new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(`POST /servers/alpha/mcp HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n`);
      resolve(s);
    });
    s.on('error', reject);
  })));
  const closedAt = slow.map((s) => new Promise((resolve) => s.on('close', () => resolve(Date.now() - started))));
  slow.forEach((s) => s.on('error', () => {}));

  // Meanwhile a host is served.
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'slow-test', version: '0' } } });
  const r = await rawHttp(port, {
    path: '/servers/alpha/mcp', body,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${h.key}` },
  });
  assert.equal(r.status, 200, `a host is served while 50 connections hang: ${r.status} ${r.body}`);

  const closed = await Promise.all(closedAt);
  const first = Math.min(...closed);
  const last = Math.max(...closed);
  t.diagnostic(`the 50 half-sent connections were closed by the service after ${first}–${last} ms`);
  assert.ok(first >= 25_000, `not closed early (${first} ms)`);
  assert.ok(last <= 40_000, `all closed within the 30 s header-read timeout (last at ${last} ms)`);
});

test('at most 512 host connections are open at once: connections without a host key make room for new ones; with 512 hosts connected one more waits', { timeout: 120_000 }, async (t) => {
  const ctx = await setup(t);
  await login(ctx, 'alpha');
  const h = await addHost(ctx.home, 'flood-host');
  const port = Number(new URL(h.endpoint).port);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'flood-test', version: '0' } } });
  const hostRequest = () => rawHttp(port, {
    path: '/servers/alpha/mcp', body, timeoutMs: 60_000,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${h.key}` },
  });
  const open = (send) => new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      if (!send) return resolve(s);
      s.write(send);
      s.once('data', () => resolve(s)); // answered; the connection stays open (keep-alive)
    });
    s.on('error', reject);
  });
  const sockets = [];
  t.after(() => sockets.forEach((s) => s.destroy()));

  // 512 connections that never send a request (any local user can open them): a host still
  // gets in, and the oldest of them is closed to make room.
  const idle = await Promise.all(Array.from({ length: 512 }, () => open(null)));
  sockets.push(...idle);
  const closed = idle.map((s) => new Promise((resolve) => s.on('close', () => resolve(true))));
  idle.forEach((s) => s.on('error', () => {}));
  const r1 = await hostRequest();
  assert.equal(r1.status, 200, `a host gets in past 512 connections without a key: ${r1.status} ${r1.body}`);
  assert.equal(await Promise.race([closed[0], new Promise((r) => setTimeout(() => r(false), 5000))]), true, 'the oldest keyless connection was closed');
  idle.forEach((s) => s.destroy());

  // 512 connections that each showed a host key hold their places: one more waits.
  const badJson = `POST /servers/alpha/mcp HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: Bearer ${h.key}\r\ncontent-type: application/json\r\ncontent-length: 1\r\n\r\n{`;
  await new Promise((r) => setTimeout(r, 500)); // the idle ones' slots free
  const hosts = [];
  for (let i = 0; i < 512; i += 1) hosts.push(await open(badJson));
  sockets.push(...hosts);
  hosts.forEach((s) => s.on('error', () => {}));
  const pending = hostRequest();
  const early = await Promise.race([pending.then(() => 'answered'), new Promise((r) => setTimeout(() => r('waiting'), 1500))]);
  assert.equal(early, 'waiting', 'the 513th connection waits while 512 hosts are connected');
  const st = await runBroker(['status', '--json'], { home: ctx.home, browserLog: ctx.browserLog });
  assert.equal(st.code, 0, `the control socket still answers\n${describeRun(st)}`);
  const freed = Date.now();
  hosts.slice(0, 5).forEach((s) => s.destroy());
  const r2 = await pending;
  assert.equal(r2.status, 200, `served once connections close: ${r2.status} ${r2.body}`);
  t.diagnostic(`the waiting request was answered ${Date.now() - freed} ms after 5 connections closed`);
});

test('another user who reads the authorization URL from the browser\'s argv cannot answer the sign-in callback (403); the same forgery from this user\'s process takes it (control)', async (t) => {
  await needRoot();
  const ctx = await setup(t);
  const dir = await fs.mkdtemp(path.join(ctx.home, 'forge-'));
  const attempt = async (as, name) => {
    // The service runs the browser with the environment of the command that started it.
    assert.equal((await runBroker(['stop'], { home: ctx.home })).code, 0);
    const out = path.join(dir, `${as}.json`);
    const r = await runBroker(['login', ctx.mcp.url, '--name', name], {
      home: ctx.home, browserLog: ctx.browserLog, browser: path.join(PEERS_DIR, 'browser-raced.mjs'),
      env: { FORGE_AS: as, FORGE_ISS: ctx.as.issuer, FORGE_OUT: out, FORGE_THEN_BROWSE: as === 'nobody' ? '1' : '0' },
    });
    return { r, forged: JSON.parse(await fs.readFile(out, 'utf8')) };
  };

  // Control: a process of this user can answer the callback first, and the sign-in is lost
  // (the attacker's code is not redeemable here, so it fails rather than signing in to their
  // account, but it shows who gets to answer).
  const self = await attempt('self', 'alpha');
  assert.notEqual(self.forged.status, 403, `this user's forged callback is taken: ${JSON.stringify(self.forged)}`);
  assert.notEqual(self.r.code, 0, `the sign-in fails on the forged code\n${describeRun(self.r)}`);

  // Another user: refused without using up the callback; the real browser then signs in.
  const other = await attempt('nobody', 'beta');
  assert.equal(other.forged.status, 403, `another user's forged callback is refused: ${JSON.stringify(other.forged)}`);
  assert.match(other.forged.page, /belongs to another user/);
  assert.equal(other.r.code, 0, `the real browser's callback completes the sign-in\n${describeRun(other.r)}`);
  const st = await runBroker(['status', '--json'], { home: ctx.home });
  const beta = JSON.parse(st.stdout).servers.find((s) => s.name === 'beta');
  assert.equal(beta?.state, 'signed_in', `beta is signed in: ${st.stdout}`);
});
