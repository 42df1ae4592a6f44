// No secret leaks (issue 6, docs/SECURITY.md): a full flow at MCP_BROKER_LOG=trace, then every
// place a secret could end up outside the keychain is searched for every secret's bytes.
//
//   scripts/with-keychain.sh node --test --test-concurrency=1 tests/e2e/leak.test.mjs
//
// The flow: sign in with a pre-registered confidential client (secret from
// --client-secret-env, as the very first command, so it also starts the service), create an
// HTTP host key, a stdio bridge with tools/call (JSON and a streamed answer), the HTTP
// endpoint, a refresh, a step-up sign-in, logout (revocation authenticates with the secret),
// stop. The secrets: every access and refresh token the keychain held, the host key, the
// client secret, the authorization codes (read from the browser stand-in's trace).
// Where they are looked for:
// - every file under MCP_BROKER_HOME (config, data, runtime: metadata, audit database, the
//   trace-level service log);
// - /proc/PID/cmdline of every broker process (service, bridges, CLI), sampled all along;
// - /proc/PID/environ of the service and of everything it started (sampled), and the
//   environment the browser stand-in was given (peers/browser-env-dump.sh);
// - what the CLI printed (login, refresh, status, logout, audit, hosts list);
// - the Secret Service's own files (gnome-keyring encrypts its keyring at rest).
// Only the CLI process the user gave the secret to (`login --client-secret-env`) may hold it.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  startAs, startMcpServer, makeHome, makeBrowserLog, browserOpens, runBroker, describeRun, asMetadata,
  requireKeychain, keychainService, keychainLookup, findBytesUnder, addHost, bridgeClient, httpClient,
  teardownService, pidsOfHome, asStats, PEERS_DIR,
} from './lib/harness.mjs';

let keychainReady;
before(async () => {
  keychainReady = requireKeychain().then(() => null, (err) => err);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const textOf = (result) => (result?.content ?? []).map((c) => c.text ?? '').join('');

/** Every broker-related process of a home, sampled every 100 ms: argv, environ, and exe. */
function sampler(home) {
  const seen = new Map(); // pid -> {argv, environ: Buffer, cmdline: Buffer}
  let stopped = false;
  const once = async () => {
    for (const pid of await pidsOfHome(home)) {
      try {
        const [cmdline, environ, exe] = await Promise.all([
          fs.readFile(`/proc/${pid}/cmdline`), fs.readFile(`/proc/${pid}/environ`), fs.readlink(`/proc/${pid}/exe`).catch(() => '?'),
        ]);
        const prev = seen.get(pid);
        seen.set(pid, {
          argv: cmdline.toString().split('\0').filter(Boolean),
          exe,
          cmdline: prev ? Buffer.concat([prev.cmdline, Buffer.from('\n'), cmdline]) : cmdline,
          environ: prev ? Buffer.concat([prev.environ, Buffer.from('\n'), environ]) : environ,
        });
      } catch { /* gone */ }
    }
  };
  const loop = (async () => {
    while (!stopped) {
      await once();
      await sleep(100);
    }
  })();
  return { seen, once, stop: async () => { stopped = true; await loop; await once(); } };
}

test('a full flow at MCP_BROKER_LOG=trace leaves no token, host key, client secret or code in files, logs, process arguments or environments', async (t) => {
  const err = await keychainReady;
  if (err) throw err;
  const as = await startAs(t);
  const mcp = await startMcpServer(t, { issuer: as.issuer });
  const home = await makeHome(null);
  const browserLog = await makeBrowserLog(t);
  const scratch = path.dirname(browserLog);
  const envDump = path.join(scratch, 'browser-env.txt');
  const trace = path.join(scratch, 'browser-trace.txt');
  t.after(async () => {
    await teardownService(home);
    await new Promise((r) => execFile('secret-tool', ['clear', 'service', keychainService(home)], () => r()));
    await fs.rm(home, { recursive: true, force: true });
  });
  const env = { MCP_BROKER_LOG: 'trace', BROWSER_ENV_DUMP: envDump, BROWSER_TRACE: trace };
  const browser = path.join(PEERS_DIR, 'browser-env-dump.sh');
  const cli = (args, extra = {}) => runBroker(args, { home, browser, browserLog, env: { ...env, ...extra } });
  const outputs = [];
  const ok = (r) => {
    assert.equal(r.code, 0, describeRun(r));
    outputs.push(r);
    return r;
  };

  // A confidential client registered in advance (here through the AS's own DCR endpoint).
  const meta = await asMetadata(as.issuer);
  const reg = await fetch(meta.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      application_type: 'native', client_name: 'pre-registered', redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  const client = await reg.json();
  assert.equal(reg.status, 201, JSON.stringify(client));
  assert.ok(client.client_secret?.length >= 32, 'a client secret');

  const help = await runBroker(['login', '--help'], { home });
  assert.doesNotMatch(help.stdout, /--client-secret[ =]/, 'no option takes a secret in argv');

  const procs = sampler(home);
  const secrets = { 'client secret': client.client_secret };
  try {
    // The first command of all: it starts the service, with the secret in its environment.
    ok(await cli(['login', mcp.url, '--name', 'alpha', '--client-id', client.client_id, '--client-secret-env', 'MCPB_TEST_CLIENT_SECRET'],
      { MCPB_TEST_CLIENT_SECRET: client.client_secret }));
    const kc1 = await keychainLookup(home, 'alpha');
    assert.ok(kc1?.access_token && kc1?.refresh_token, 'tokens in the keychain');
    Object.assign(secrets, { 'access token 1': kc1.access_token, 'refresh token 1': kc1.refresh_token });
    assert.equal((await asStats(as)).last_token_request?.client_id, client.client_id, 'the pre-registered client was used');

    const h = await addHost(home, 'vscode-leak');
    secrets['host key'] = h.key;
    const b = await bridgeClient(t, { home, target: 'alpha', host: 'leak-bridge', browser, browserLog, env });
    const c = await httpClient(t, { endpoint: h.endpoint, server: 'alpha', key: h.key });
    assert.equal(textOf(await b.client.callTool({ name: 'echo', arguments: { text: 'bridge' } })), 'bridge');
    await b.client.callTool({ name: 'slow_stream', arguments: { count: 3, interval_ms: 50 } }, undefined, { onprogress: () => {} });
    assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'http' } })), 'http');

    await sleep(1100);
    ok(await cli(['refresh', 'alpha']));
    const kc2 = await keychainLookup(home, 'alpha');
    assert.notEqual(kc2.refresh_token, kc1.refresh_token, 'rotated');
    Object.assign(secrets, { 'access token 2': kc2.access_token, 'refresh token 2': kc2.refresh_token });
    assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'http 2' } })), 'http 2');

    const del = await c.client.callTool({ name: 'delete_record', arguments: { id: '9' } }, undefined, { timeout: 60_000 });
    assert.equal(textOf(del), 'deleted 9', 'the step-up sign-in (the client secret again) worked');
    const kc3 = await keychainLookup(home, 'alpha');
    Object.assign(secrets, { 'access token 3': kc3.access_token, 'refresh token 3': kc3.refresh_token });

    ok(await cli(['status', '--json']));
    ok(await cli(['audit', '--json']));
    ok(await cli(['hosts', 'list', '--json']));
    await b.close();
    await c.close();
    ok(await cli(['logout', 'alpha']));
    assert.ok((await asStats(as)).revocations >= 1, 'revoked at the AS (authenticated with the client secret)');
    ok(await cli(['stop']));
  } finally {
    await procs.stop();
  }

  const traceText = await fs.readFile(trace, 'utf8');
  const codes = [...traceText.matchAll(/[?&]code=([^&\s]+)/g)].map((m) => decodeURIComponent(m[1]));
  assert.equal(codes.length, 2, `two authorization codes (login, step-up) in the browser trace:\n${traceText}`);
  codes.forEach((code, i) => { secrets[`authorization code ${i + 1}`] = code; });
  assert.equal(await browserOpens(browserLog), 2);

  const log = await fs.readFile(path.join(home, 'run', 'service.log'), 'utf8');
  assert.match(log, /TRACE/, 'the service logged at trace level');
  const browserEnv = await fs.readFile(envDump);
  assert.ok(browserEnv.includes(Buffer.from('MCP_BROKER_LOG=trace')), 'the browser stand-in recorded its environment');

  const needles = [];
  for (const [label, value] of Object.entries(secrets)) {
    needles.push([label, value]);
    if (value.split('.').length === 3) needles.push([`${label} (signature)`, value.split('.')[2]]);
  }
  const kinds = Object.fromEntries([...procs.seen.values()].map((p) => [p.argv.slice(1, 2).join(' ') || path.basename(p.exe), true]));
  t.diagnostic(`${procs.seen.size} processes sampled: ${Object.keys(kinds).join(', ')}; ${needles.length} needles; service log ${log.split('\n').length} lines`);
  const keyringFiles = process.env.XDG_DATA_HOME ? path.join(process.env.XDG_DATA_HOME, 'keyrings') : null;

  const leaks = [];
  for (const [label, needle] of needles) {
    const want = Buffer.from(needle);
    for (const f of await findBytesUnder(home, want)) leaks.push(`${label}: in ${f} under MCP_BROKER_HOME`);
    for (const [pid, p] of procs.seen) {
      const who = `${path.basename(p.exe)} ${p.argv.slice(1).join(' ')} (pid ${pid})`;
      if (p.cmdline.includes(want)) leaks.push(`${label}: in the arguments of ${who}`);
      const userGaveIt = p.argv[1] === 'login' && label === 'client secret';
      if (!userGaveIt && p.environ.includes(want)) leaks.push(`${label}: in the environment of ${who}`);
    }
    if (browserEnv.includes(want)) leaks.push(`${label}: in the environment the browser was started with`);
    for (const r of outputs) {
      if (r.stdout.includes(needle) || r.stderr.includes(needle)) leaks.push(`${label}: printed by mcp-broker ${r.args.join(' ')}`);
    }
    if (keyringFiles) for (const f of await findBytesUnder(keyringFiles, want)) leaks.push(`${label}: in plaintext in the keyring file ${f}`);
  }
  assert.deepEqual(leaks, [], `secrets found outside the keychain:\n${leaks.join('\n')}`);
});
