#!/usr/bin/env node
// The `--command` the MCP conformance suite (`conformance client`) runs for a scenario: the
// official TypeScript SDK's v2 `Client` (@modelcontextprotocol/client, which speaks 2026-07-28:
// `server/discover`, per-request `_meta`, multi-round-trip results) is the host, over stdio to
// `mcp-broker connect <url>`; the broker does everything OAuth (discovery, registration, PKCE
// login, tokens) and everything HTTP (the `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and
// `Mcp-Param-*` headers, which a stdio host cannot send).
//
//   node conformance-client.mjs <server-url>        (the suite appends the URL)
//
// What it does, per scenario:
// - a fresh MCP_BROKER_HOME (temp dir) and BROWSER = peers/browser-curl.sh, which follows the
//   authorization URL with curl (-L, cookie jar) to the broker's loopback callback (the suite's
//   mock AS redirects straight back);
// - MCP_CONFORMANCE_CONTEXT with client_id/client_secret (pre-registration) becomes
//   `--client-id ID --client-secret-env VAR`, the secret in that env var, never in argv;
//   otherwise `--client-metadata-url` with the suite's fixed CIMD URL (the suite gives no context
//   for auth/basic-cimd; its own reference client hard-codes this URL for every auth scenario,
//   and the broker uses it only where the AS advertises client_id_metadata_document_supported);
// - connect (version negotiation `auto`: `server/discover` first, `initialize` for older
//   servers), then what the scenario asks of a client (`act`): list what the server offers,
//   call the tools the scenario names in its context (or `test-tool`, `add_numbers`, every
//   listed tool where the scenario is about tools), read a resource, get a prompt; close;
//   then `mcp-broker stop` and remove the home.
// - On SIGTERM/SIGINT (the suite's timeout), or when orphaned (the suite's shell was killed),
//   it closes the bridge, stops the broker daemon, kills what is left of it by pid, and exits.
//
// Exit 0 when every step worked. On failure: the error, the bridge's stderr, the browser trace
// and the broker's $MCP_BROKER_HOME/run/service.log go to stderr (the suite prints them).
//
// Env: MCP_BROKER_BIN (default <repo>/target/debug/mcp-broker); CONFORMANCE_CLIENT_DEADLINE_MS
// (default 50000: give up, clean up and exit 1 before the suite's own timeout).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import fsSync from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_DIR = path.resolve(HERE, '..', '..', '..');
const BROKER_BIN = process.env.MCP_BROKER_BIN
  ? path.resolve(process.env.MCP_BROKER_BIN)
  : path.join(REPO_DIR, 'target', 'debug', 'mcp-broker');
const BROWSER = path.join(HERE, 'browser-curl.sh');
// The suite's fixed Client ID Metadata Document URL (src/scenarios/client/auth/basic-cimd.ts:
// CIMD_CLIENT_METADATA_URL). Its mock AS accepts it as-is and never fetches it.
const CIMD_CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';
const SECRET_ENV = 'MCP_CONFORMANCE_CLIENT_SECRET';
const DEADLINE_MS = Number(process.env.CONFORMANCE_CLIENT_DEADLINE_MS || 50_000);
const STOP_TIMEOUT_MS = 10_000;

const log = (...a) => process.stderr.write(`[conformance-client] ${a.join(' ')}\n`);

const serverUrl = process.argv[process.argv.length - 1];
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '(unknown scenario)';
if (process.argv.length < 3 || !/^https?:\/\//.test(serverUrl)) {
  log(`usage: conformance-client.mjs <server-url> (got ${JSON.stringify(process.argv.slice(2))})`);
  process.exit(2);
}

let context = {};
if (process.env.MCP_CONFORMANCE_CONTEXT) {
  try {
    context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT);
  } catch (err) {
    log(`MCP_CONFORMANCE_CONTEXT is not JSON: ${err.message}`);
    process.exit(2);
  }
}

// Short: the broker's socket path ($MCP_BROKER_HOME/run/broker.sock) must fit in sun_path.
const home = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'mbh-')));
if (Buffer.byteLength(path.join(home, 'run', 'broker.sock')) > 107) {
  log(`MCP_BROKER_HOME ${home} is too long for a Unix socket path under it (sun_path); use a shorter TMPDIR`);
  await fs.rm(home, { recursive: true, force: true });
  process.exit(2);
}
const browserTrace = path.join(home, 'browser-trace.log');
const browserLog = path.join(home, 'browser-opens.log');
const env = {
  ...process.env,
  MCP_BROKER_HOME: home,
  BROWSER,
  BROWSER_TRACE: browserTrace,
  BROWSER_LOG: browserLog,
};
delete env[SECRET_ENV];

const args = ['connect', serverUrl];
if (context.client_id) {
  args.push('--client-id', context.client_id);
  if (context.client_secret) {
    env[SECRET_ENV] = context.client_secret;
    args.push('--client-secret-env', SECRET_ENV);
  }
} else {
  args.push('--client-metadata-url', CIMD_CLIENT_METADATA_URL);
}

let bridgeStderr = '';
let transport;
let client;
let cleaningUp = null;

/** Read a file for diagnostics ('' when missing). */
async function readOr(file) {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return '';
  }
}

/** Pids (not ours) whose environment holds MCP_BROKER_HOME=<home>: the daemon and its children. */
function pidsForHome() {
  const out = [];
  const needle = Buffer.from(`MCP_BROKER_HOME=${home}\0`);
  let entries = [];
  try {
    entries = fsSync.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (fsSync.readFileSync(`/proc/${e}/environ`).includes(needle)) out.push(Number(e));
    } catch { /* gone, or not ours */ }
  }
  return out;
}

/** Run `mcp-broker <args>` with our home; resolves {code, out}. Killed after timeoutMs. */
function runBroker(brokerArgs, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(BROKER_BIN, brokerArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); resolve({ code: -1, out: `${out}${err.message}` }); });
    child.once('exit', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? signal, out }); });
  });
}

/** Close the bridge, stop the daemon, kill leftovers by pid, dump logs if failed, remove home. */
function cleanup(failed, why) {
  cleaningUp ??= (async () => {
    if (transport) {
      await Promise.race([transport.close().catch(() => {}), new Promise((r) => setTimeout(r, 3000))]);
      const pid = transport.pid;
      if (pid) { try { process.kill(pid, 'SIGKILL'); } catch { /* exited */ } }
    }
    const stop = await runBroker(['stop'], STOP_TIMEOUT_MS);
    if (stop.code !== 0) {
      failed = true;
      log(`mcp-broker stop exited ${stop.code}: ${stop.out.trim()}`);
    }
    // Give the daemon a moment to exit, then kill by pid whatever still runs with our home.
    let left = pidsForHome();
    for (let i = 0; i < 20 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = pidsForHome();
    }
    for (const pid of left) {
      log(`process ${pid} with this MCP_BROKER_HOME still runs after \`mcp-broker stop\`; killing it`);
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    if (failed) {
      log(`FAILED (${scenario}): ${why}`);
      log(`bridge: ${BROKER_BIN} ${args.join(' ')}`);
      if (bridgeStderr.trim()) process.stderr.write(`--- mcp-broker connect stderr ---\n${bridgeStderr}\n`);
      const trace = await readOr(browserTrace);
      if (trace.trim()) process.stderr.write(`--- browser trace ---\n${trace}\n`);
      const service = await readOr(path.join(home, 'run', 'service.log'));
      process.stderr.write(`--- ${home}/run/service.log ---\n${service || '(empty or missing)\n'}\n`);
    }
    await fs.rm(home, { recursive: true, force: true }).catch(() => {});
  })();
  return cleaningUp;
}

async function shutdown(code, failed, why) {
  await cleanup(failed, why);
  process.exit(code);
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => { shutdown(1, true, `received ${sig}`); });
}
// The suite runs `sh -c "<command> <url>"` and on timeout kills only that shell: if our parent
// goes away, clean up and leave instead of holding the suite's pipes open.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) shutdown(1, true, `parent ${parentPid} exited`);
}, 250).unref();
setTimeout(() => { shutdown(1, true, `deadline of ${DEADLINE_MS} ms reached`); }, DEADLINE_MS).unref();

/** Call `name` with `args`, logging the outcome; a tool error is logged, not thrown. */
async function call(name, args) {
  const result = await client.callTool({ name, arguments: args });
  log(`tools/call ${name}: ${JSON.stringify(result.content)}${result.isError ? ' (isError)' : ''}`);
  return result;
}

/** What the scenario asks of a client, after connect. */
async function act() {
  const caps = client.getServerCapabilities() ?? {};
  const tools = caps.tools ? (await client.listTools()).tools : [];
  log(`tools/list: ${tools.map((t) => t.name).join(', ') || '(none)'}`);
  const named = context.toolCalls ?? [];
  for (const c of named) await call(c.name, c.arguments ?? {});
  if (!named.length) {
    if (tools.some((t) => t.name === 'test-tool')) {
      const result = await call('test-tool', {});
      if (result.isError) throw new Error(`tools/call test-tool returned isError: ${JSON.stringify(result.content)}`);
    } else if (tools.some((t) => t.name === 'add_numbers')) {
      await call('add_numbers', { a: 5, b: 3 });
    } else if (/^(http-|sep-2322-)/.test(scenario)) {
      // Scenarios about tools in general: call each one the host was shown. The SDK refuses
      // a 2026-07-28 result without `resultType`, which sep-2322's `test_mrtr_no_result_type`
      // sends on purpose (the suite judges that call at its server): that refusal is logged.
      for (const t of tools) {
        try {
          await call(t.name, {});
        } catch (e) {
          if (!/missing required resultType/.test(String(e?.message))) throw e;
          log(`tools/call ${t.name}: the SDK refused the result: ${e.message}`);
        }
      }
    }
  }
  if (caps.resources) {
    const { resources } = await client.listResources();
    log(`resources/list: ${resources.map((r) => r.uri).join(', ') || '(none)'}`);
    if (resources[0]) log(`resources/read ${resources[0].uri}: ${(await client.readResource({ uri: resources[0].uri })).contents.length} contents`);
  }
  if (caps.prompts) {
    const { prompts } = await client.listPrompts();
    log(`prompts/list: ${prompts.map((p) => p.name).join(', ') || '(none)'}`);
    if (prompts[0]) log(`prompts/get ${prompts[0].name}: ${(await client.getPrompt({ name: prompts[0].name })).messages.length} messages`);
  }
}

try {
  transport = new StdioClientTransport({ command: BROKER_BIN, args, env, stderr: 'pipe' });
  transport.stderr?.on('data', (d) => { bridgeStderr += d; });
  client = new Client({ name: 'mcp-broker-conformance-client', version: '1.0.0' }, {
    capabilities: { elicitation: { form: {} } },
    versionNegotiation: { mode: 'auto' },
  });
  // Multi-round-trip results (2026-07-28) ask the host for input: accept with what was asked.
  client.setRequestHandler('elicitation/create', async () => ({ action: 'accept', content: { confirmed: true } }));
  log(`${scenario}: ${path.basename(BROKER_BIN)} ${args.join(' ')}`);
  await client.connect(transport);
  log(`connected (${client.getNegotiatedProtocolVersion?.() ?? 'version unknown'}): ${JSON.stringify(client.getServerVersion())}`);
  await act();
  await client.close();
  await shutdown(0, false, '');
} catch (err) {
  await shutdown(1, true, err?.stack ?? String(err));
}
