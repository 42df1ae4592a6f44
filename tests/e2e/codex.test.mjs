// Switching Codex CLI (the published npm package, its Linux binary) to the broker in one step,
// and back: `mcp-broker hosts connect codex-cli` rewrites the remote entries of
// $CODEX_HOME/config.toml into `mcp-broker connect URL --host codex-cli`, keeping every other
// byte; `codex mcp get --json` reads them back so; Codex's app server (no model, no sign-in)
// starts each rewritten entry and lists its tools, through the bridge, from the
// OAuth-protected test server. `hosts disconnect` puts the file back byte for byte; after
// Codex has rewritten the file itself (`codex mcp add`), it puts the entries back as they were
// and keeps the server Codex added.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

import { E2E_DIR, startAs, startMcpServer, makeServiceHome, makeHome, runBroker, describeRun, run, mcpStats, collectOutput } from './lib/harness.mjs';

const CODEX = process.env.CODEX_BIN ?? path.join(E2E_DIR, 'node_modules', '.bin', 'codex');

/** A config.toml as people write theirs: comments, settings, a URL entry, an mcp-remote one,
 * a local program, an entry with a secret in `env`, and a profile table after them. */
function codexConfig(direct, viaMcpRemote) {
  return `# Codex CLI settings
model = "gpt-5-codex"
approval_policy = "on-request" # ask first

# Docs, spoken to directly
[mcp_servers.direct]
url = "${direct}"
startup_timeout_sec = 20

[mcp_servers.remote]
command = "npx"
args = ["-y", "mcp-remote", "${viaMcpRemote}"]

[mcp_servers.remote.env]
NODE_NO_WARNINGS = "1"

[mcp_servers.local]
command = "node"
args = ["-e", "process.exit(0)"]
enabled = false

[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
env = { GITHUB_PERSONAL_ACCESS_TOKEN = "ghp_not_a_real_token" }

[profiles.fast]
model = "gpt-5-mini"
`;
}

/** The bytes of `[mcp_servers.NAME]` in `text`, up to the next table that is not its own. */
function tableBytes(text, name) {
  const start = text.indexOf(`[mcp_servers.${name}]`);
  const rest = text.slice(start + 1);
  const next = rest.search(new RegExp(String.raw`\n\[(?!mcp_servers\.${name}[.\]])`));
  return next < 0 ? text.slice(start) : text.slice(start, start + 1 + next);
}

/** Codex's own view of one server: `codex mcp get NAME --json`. */
async function codexGet(env, name) {
  const r = await run(CODEX, ['mcp', 'get', name, '--json'], { env, timeoutMs: 60_000 });
  assert.equal(r.code, 0, `codex mcp get ${name}: ${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * Codex's app server over stdio (JSON-RPC, a message a line): `request(method, params)`
 * resolves the result or rejects with the error. Stopped when the test ends.
 */
function appServer(t, env) {
  const child = spawn(CODEX, ['app-server'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out = collectOutput(child, 180_000);
  const waiting = new Map();
  let seen = 0;
  let nextId = 1;
  child.stdout.on('data', () => {
    const lines = out.stdout.split('\n');
    for (; seen < lines.length - 1; seen += 1) {
      let msg;
      try { msg = JSON.parse(lines[seen]); } catch { continue; }
      const w = msg.id !== undefined && waiting.get(msg.id);
      if (!w) continue;
      waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(`${w.method}: ${JSON.stringify(msg.error)}`));
      else w.resolve(msg.result);
    }
  });
  t.after(async () => {
    child.stdin.end();
    child.kill('SIGTERM');
    await out.exited;
  });
  const send = (msg) => child.stdin.write(`${JSON.stringify(msg)}\n`);
  const request = (method, params, timeoutMs = 90_000) => new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => reject(new Error(`${method}: no answer in ${timeoutMs} ms\n${out.stderr}`)), timeoutMs);
    const done = (f) => (v) => { clearTimeout(timer); f(v); };
    waiting.set(id, { method, resolve: done(resolve), reject: done(reject) });
    send({ id, method, params });
  });
  return { request, notify: (method) => send({ method }), out };
}

test('Codex CLI, connected in one step: its TOML entries go through the broker and list their tools; disconnect restores the file', async (t) => {
  const as = await startAs(t);
  const one = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-direct' });
  const two = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-remote-entry' });
  const { home } = await makeServiceHome(t);
  const userHome = await makeHome(t, 'codex-user-');
  const codexHome = path.join(userHome, '.codex');
  await fs.mkdir(codexHome, { mode: 0o700 });
  const config = path.join(codexHome, 'config.toml');
  const original = codexConfig(one.url, two.url);
  await fs.writeFile(config, original, { mode: 0o600 });
  const env = { HOME: userHome, XDG_CONFIG_HOME: path.join(userHome, '.config'), CODEX_HOME: codexHome };
  const codexEnv = { ...process.env, ...env, MCP_BROKER_HOME: home };
  const cli = async (args) => {
    const r = await runBroker(args, { home, env });
    assert.equal(r.code, 0, describeRun(r));
    return r;
  };

  // What is there, as Codex reads it.
  const untouched = { local: await codexGet(codexEnv, 'local'), github: await codexGet(codexEnv, 'github') };
  const found = JSON.parse((await cli(['hosts', 'detect', '--json'])).stdout);
  const codex = found.configs.find((c) => c.host === 'codex-cli');
  assert.ok(codex, JSON.stringify(found));
  const kinds = Object.fromEntries(codex.servers.map((s) => [s.name, s.transport.kind]));
  assert.deepEqual(kinds, { direct: 'remote', github: 'local', local: 'local', remote: 'mcp_remote' });

  // A dry run shows the change and writes nothing.
  const dry = await cli(['hosts', 'connect', 'codex-cli', '--all', '--dry-run']);
  assert.match(dry.stdout, /\+ args = \["connect", /, dry.stdout);
  assert.equal(await fs.readFile(config, 'utf8'), original);

  // One server signed in beforehand; the other signs in on the host's first use.
  await cli(['login', one.url, '--name', 'direct']);
  const connected = await cli(['hosts', 'connect', 'codex-cli', '--all']);
  assert.match(connected.stdout, /backup/i);
  assert.match(connected.stdout, /github[^\n]*a local program .*--include-local/, connected.stdout);
  const rewritten = await fs.readFile(config, 'utf8');
  assert.ok(rewritten.startsWith('# Codex CLI settings\nmodel = "gpt-5-codex"\napproval_policy = "on-request" # ask first\n\n# Docs, spoken to directly\n[mcp_servers.direct]\n'), rewritten);
  for (const kept of ['local', 'github']) assert.equal(tableBytes(rewritten, kept), tableBytes(original, kept), `${kept} is byte for byte as it was`);
  assert.ok(rewritten.endsWith('\n\n[profiles.fast]\nmodel = "gpt-5-mini"\n'), rewritten);
  assert.ok(!rewritten.includes('mcp-remote'), 'no mcp-remote left in front of the broker');

  // Codex reads the entries as `mcp-broker connect URL --host codex-cli` over stdio.
  for (const [name, url] of [['direct', one.url], ['remote', two.url]]) {
    const got = await codexGet(codexEnv, name);
    assert.equal(got.transport.type, 'stdio', JSON.stringify(got));
    assert.equal(path.basename(got.transport.command), 'mcp-broker');
    assert.deepEqual(got.transport.args, ['connect', url, '--host', 'codex-cli']);
    assert.ok(got.transport.env_vars.includes('MCP_BROKER_HOME'), JSON.stringify(got));
  }
  const list = await run(CODEX, ['mcp', 'list', '--json'], { env: codexEnv, timeoutMs: 60_000 });
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout).map((s) => s.name).sort(), ['direct', 'github', 'local', 'remote']);

  // Again: nothing to do.
  const again = await cli(['hosts', 'connect', 'codex-cli', '--all']);
  assert.doesNotMatch(again.stdout, /backup/i, again.stdout);

  // Undone before the host ran: the file is back byte for byte. Then connected again.
  await cli(['hosts', 'disconnect', 'codex-cli']);
  assert.equal(await fs.readFile(config, 'utf8'), original);
  await cli(['hosts', 'connect', 'codex-cli', '--server', 'direct', '--server', 'remote']);

  // The real host starts each entry and speaks MCP through the bridge: its app server lists
  // each server's tools (no model is asked anything).
  const before = [await mcpStats(one), await mcpStats(two)];
  const app = appServer(t, codexEnv);
  await app.request('initialize', { clientInfo: { name: 'mcp-broker-e2e', version: '0' } });
  app.notify('initialized');
  for (const name of ['direct', 'remote']) {
    const status = await app.request('mcpServerStatus/list', { serverName: name, detail: 'toolsAndAuthOnly' });
    const server = status.data.find((s) => s.name === name);
    assert.ok(server, JSON.stringify(status));
    assert.equal(server.toolsError ?? null, null, JSON.stringify(server));
    assert.ok(server.tools?.echo && server.tools?.whoami, `${name}: ${JSON.stringify(server)}\n${app.out.stderr.slice(-2000)}`);
  }
  const after = [await mcpStats(one), await mcpStats(two)];
  for (const i of [0, 1]) {
    assert.ok(after[i].recent_requests.length > before[i].recent_requests.length, 'the upstream saw the host\'s requests, with the broker\'s token');
  }

  // Codex rewrites its file itself (`codex mcp add`); disconnect still finds the entries it
  // wrote, puts them back as they were, and keeps what Codex added.
  const add = await run(CODEX, ['mcp', 'add', 'added', '--', 'node', '-e', 'process.exit(0)'], { env: codexEnv, timeoutMs: 60_000 });
  assert.equal(add.code, 0, `${add.stdout}\n${add.stderr}`);
  const hostWrote = await fs.readFile(config, 'utf8');
  assert.ok(hostWrote.includes('[mcp_servers.added]'), hostWrote);
  const back = await cli(['hosts', 'disconnect', 'codex-cli']);
  assert.doesNotMatch(back.stdout, /left as it is/, back.stdout);
  const restored = await fs.readFile(config, 'utf8');
  for (const name of ['direct', 'remote']) {
    assert.equal(tableBytes(restored, name), tableBytes(original, name), `${name} as it was`);
  }
  // Codex wrote the entries it was not asked about its own way; they still say the same.
  for (const [name, was] of Object.entries(untouched)) assert.deepEqual(await codexGet(codexEnv, name), was, name);
  assert.ok(restored.includes('[mcp_servers.added]'), 'what the host added is kept');
  assert.deepEqual((await codexGet(codexEnv, 'remote')).transport.args, ['-y', 'mcp-remote', two.url]);
});
