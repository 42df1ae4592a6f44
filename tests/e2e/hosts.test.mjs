// Switching a real AI host to the broker in one step, and back: Claude Code (the published
// npm package) reads the config that `mcp-broker hosts connect claude-code` rewrote, starts
// each rewritten entry (`mcp-broker connect URL --host claude-code`) and reports it
// Connected, through the bridge, to the OAuth-protected test server. `hosts disconnect`
// puts the file back byte for byte; after Claude Code has rewritten the file itself (it
// pretty-prints ~/.claude.json and adds keys at each start), it puts the entries back as
// they were and keeps what the host added. Entries that send an API key in clear (a static
// header, or mcp-remote's --header with the key in its env) become API-key servers of the
// broker: the key leaves the file for the keychain, and comes back on disconnect.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

import { E2E_DIR, startAs, startMcpServer, makeServiceHome, makeHome, runBroker, describeRun, run, mcpStats, keychainLookup, findBytesUnder } from './lib/harness.mjs';

const CLAUDE = path.join(E2E_DIR, 'node_modules', '.bin', 'claude');

/** A Claude Code user config with a remote URL entry, an mcp-remote entry and a local one. */
function claudeConfig(direct, viaMcpRemote) {
  return `${JSON.stringify({
    numStartups: 3,
    mcpServers: {
      direct: { type: 'http', url: direct },
      remote: { type: 'stdio', command: 'npx', args: ['-y', 'mcp-remote', viaMcpRemote], env: {} },
      local: { type: 'stdio', command: 'node', args: ['-e', 'process.exit(0)'], env: {} },
    },
    tipsHistory: { 'new-user-warmup': 1 },
  }, null, 2)}\n`;
}

/** `claude mcp list` in `userHome`: {name: line} for each server it reports. */
async function claudeList(userHome, env) {
  const r = await run(CLAUDE, ['mcp', 'list'], { env: { ...env, HOME: userHome }, timeoutMs: 120_000 });
  const lines = `${r.stdout}`.split('\n').filter((l) => /^[\w.-]+: /.test(l));
  return { r, byName: Object.fromEntries(lines.map((l) => [l.split(':')[0], l])) };
}

/**
 * A broker home and a user home whose ~/.claude.json is `text` (or lists `mcpServers`); `cli`
 * runs the broker there and expects it to succeed.
 */
async function claudeUser(t, prefix, textOrServers) {
  const { home } = await makeServiceHome(t);
  const userHome = await makeHome(t, prefix);
  const config = path.join(userHome, '.claude.json');
  const original = typeof textOrServers === 'string' ? textOrServers : `${JSON.stringify({ mcpServers: textOrServers }, null, 2)}\n`;
  await fs.writeFile(config, original, { mode: 0o600 });
  const env = { HOME: userHome, XDG_CONFIG_HOME: path.join(userHome, '.config') };
  const cli = async (args) => {
    const r = await runBroker(args, { home, env });
    assert.equal(r.code, 0, describeRun(r));
    return r;
  };
  return { home, userHome, config, original, env, cli };
}

test('Claude Code, connected in one step: its remote entries go through the broker and connect; disconnect restores the file', async (t) => {
  const as = await startAs(t);
  const one = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-direct' });
  const two = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-remote-entry' });
  const { home, userHome, config, original, env, cli } = await claudeUser(t, 'claude-user-', claudeConfig(one.url, two.url));

  // What is there.
  const found = JSON.parse((await cli(['hosts', 'detect', '--json'])).stdout);
  const claude = found.configs.find((c) => c.host === 'claude-code');
  assert.ok(claude, JSON.stringify(found));
  const kinds = Object.fromEntries(claude.servers.map((s) => [s.name, s.transport.kind]));
  assert.deepEqual(kinds, { direct: 'remote', local: 'local', remote: 'mcp_remote' });

  // A dry run shows the change and writes nothing.
  const dry = await cli(['hosts', 'connect', 'claude-code', '--all', '--dry-run']);
  assert.match(dry.stdout, /\+ .*"connect"/);
  assert.equal(await fs.readFile(config, 'utf8'), original);

  // One server signed in beforehand; the other signs in on the host's first use.
  await cli(['login', one.url, '--name', 'direct']);
  const connected = await cli(['hosts', 'connect', 'claude-code', '--all']);
  assert.match(connected.stdout, /backup/i);
  const rewritten = JSON.parse(await fs.readFile(config, 'utf8'));
  assert.equal(rewritten.mcpServers.direct.args[0], 'connect');
  assert.equal(rewritten.mcpServers.remote.args[1], two.url);
  assert.deepEqual(rewritten.mcpServers.local, JSON.parse(original).mcpServers.local, 'the local program is left alone');
  assert.deepEqual(rewritten.tipsHistory, { 'new-user-warmup': 1 }, 'keys the broker did not write are kept');
  assert.ok(!JSON.stringify(rewritten).includes('mcp-remote'), 'no mcp-remote left in front of the broker');

  // Again: nothing to do.
  const again = await cli(['hosts', 'connect', 'claude-code', '--all']);
  assert.doesNotMatch(again.stdout, /backup/i, again.stdout);

  // Undone before the host ran: the file is back byte for byte. Then connected again.
  await cli(['hosts', 'disconnect', 'claude-code']);
  assert.equal(await fs.readFile(config, 'utf8'), original);
  await cli(['hosts', 'connect', 'claude-code', '--server', 'direct', '--server', 'remote']);

  // The real host starts each entry and speaks MCP through the bridge.
  const before = [await mcpStats(one), await mcpStats(two)];
  const { r, byName } = await claudeList(userHome, { ...process.env, MCP_BROKER_HOME: home });
  assert.match(byName.direct ?? '', /Connected/, `${r.stdout}\n${r.stderr}`);
  assert.match(byName.remote ?? '', /Connected/, `${r.stdout}\n${r.stderr}`);
  const after = [await mcpStats(one), await mcpStats(two)];
  for (const i of [0, 1]) {
    assert.ok(after[i].recent_requests.length > before[i].recent_requests.length, 'the upstream saw the host\'s requests, with the broker\'s token');
  }

  // Claude Code has rewritten its file since; disconnect still finds the entries it wrote.
  const hostWrote = JSON.parse(await fs.readFile(config, 'utf8'));
  const back = await cli(['hosts', 'disconnect', 'claude-code']);
  assert.doesNotMatch(back.stdout, /left as it is: the entry/, back.stdout);
  const restored = JSON.parse(await fs.readFile(config, 'utf8'));
  assert.deepEqual(restored.mcpServers, JSON.parse(original).mcpServers, 'every entry as it was');
  assert.deepEqual(Object.keys(restored).sort(), Object.keys(hostWrote).sort(), 'what the host added is kept');
});

test('Claude Code entries with API keys in clear: connect moves the keys to the keychain, Claude Code still connects, no key left on disk; disconnect puts them back', async (t) => {
  const stamp = Date.now();
  const keyA = `sk-live-${stamp}-header-key`;
  const keyB = `ghp_${stamp}_env_key`;
  const as = await startAs(t); // the peer wants an issuer; these servers take only their keys
  const a = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-keyed-a', apiKey: keyA });
  const b = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-keyed-b', apiKey: keyB });
  const { home, userHome, config, original, cli } = await claudeUser(t, 'claude-keys-', {
    'keyed-http': { type: 'http', url: a.url, headers: { 'X-Api-Key': keyA } },
    'keyed-remote': { type: 'stdio', command: 'npx', args: ['-y', 'mcp-remote', b.url, '--header', 'Authorization: Bearer ${GH_KEY}'], env: { GH_KEY: keyB } },
  });

  const found = JSON.parse((await cli(['hosts', 'detect', '--json'])).stdout).configs.find((c) => c.host === 'claude-code');
  const secrets = Object.fromEntries(found.servers.map((s) => [s.name, s.plaintext_secrets]));
  assert.deepEqual(secrets, { 'keyed-http': ['headers.X-Api-Key'], 'keyed-remote': ['env.GH_KEY'] });
  const dry = await cli(['hosts', 'connect', 'claude-code', '--dry-run']);
  assert.ok(!dry.stdout.includes(keyA) && !dry.stdout.includes(keyB), dry.stdout);

  const connected = await cli(['hosts', 'connect', 'claude-code']);
  assert.match(connected.stdout, /keyed-http +now through mcp-broker/, connected.stdout);
  assert.match(connected.stdout, /its key is now in the keychain, as the broker's server keyed-http/, connected.stdout);
  const rewritten = JSON.parse(await fs.readFile(config, 'utf8'));
  assert.deepEqual(rewritten.mcpServers['keyed-http'].args, ['connect', 'keyed-http', '--host', 'claude-code']);
  assert.deepEqual(await keychainLookup(home, 'keyed-http'), [{ name: 'X-Api-Key', value: keyA }]);
  assert.deepEqual(await keychainLookup(home, 'keyed-remote'), [{ name: 'Authorization', value: `Bearer ${keyB}` }]);
  const status = JSON.parse((await cli(['status', '--json'])).stdout);
  assert.deepEqual(status.servers.filter((s) => s.name.startsWith('keyed-')).map((s) => s.state), ['api_key', 'api_key']);
  for (const key of [keyA, keyB]) {
    assert.deepEqual(await findBytesUnder(userHome, key), [], 'no key in the host\'s files');
    assert.deepEqual(await findBytesUnder(home, key), [], 'nor in the broker\'s files (ledger, backups)');
  }

  // The real host starts both entries; the broker sends each server its key.
  const { r, byName } = await claudeList(userHome, { ...process.env, MCP_BROKER_HOME: home });
  assert.match(byName['keyed-http'] ?? '', /Connected/, `${r.stdout}\n${r.stderr}`);
  assert.match(byName['keyed-remote'] ?? '', /Connected/, `${r.stdout}\n${r.stderr}`);
  assert.ok((await mcpStats(a)).recent_requests.length > 0 && (await mcpStats(b)).recent_requests.length > 0);

  // Back as it was, keys in the file again; the broker keeps its servers until removed.
  const back = await cli(['hosts', 'disconnect', 'claude-code']);
  assert.match(back.stdout, /its key was put back in the file/, back.stdout);
  const restored = JSON.parse(await fs.readFile(config, 'utf8'));
  assert.deepEqual(restored.mcpServers, JSON.parse(original).mcpServers);
});

test('Claude Code with --include-local: a local program\'s key moves from its env to the keychain; mcp-broker run starts it with the key, Claude Code connects; disconnect puts it back', async (t) => {
  const key = `ghp_${Date.now()}_local_key`;
  const sha = crypto.createHash('sha256').update(key).digest('hex');
  const server = path.join(E2E_DIR, 'peers', 'stdio-server.mjs');
  const { home, userHome, config, original, env, cli } = await claudeUser(t, 'claude-local-', {
    github: { type: 'stdio', command: process.execPath, args: [server, '--env-name', 'GITHUB_TOKEN', '--env-sha256', sha], env: { GITHUB_TOKEN: key, LOG_LEVEL: 'debug' } },
    plain: { type: 'stdio', command: process.execPath, args: ['-e', '0'] },
  });

  const without = await cli(['hosts', 'connect', 'claude-code']);
  assert.match(without.stdout, /github +left as it is: a local program .*--include-local/, without.stdout);
  assert.equal(await fs.readFile(config, 'utf8'), original);

  const connected = await cli(['hosts', 'connect', 'claude-code', '--include-local']);
  assert.match(connected.stdout, /plain +left as it is: a local program .* no secret/, connected.stdout);
  const entry = JSON.parse(await fs.readFile(config, 'utf8')).mcpServers.github;
  assert.deepEqual(entry.args.slice(0, 4), ['run', 'claude-code/github', '--', process.execPath]);
  assert.deepEqual(entry.env, { LOG_LEVEL: 'debug' }, 'the env values that are not secret stay');
  assert.deepEqual(await findBytesUnder(userHome, key), [], 'no key in the host\'s files');
  assert.deepEqual(await findBytesUnder(home, key), [], 'nor in the broker\'s (ledger, backups)');

  // The real host starts the entry: mcp-broker run puts the key back, the server starts.
  const { r, byName } = await claudeList(userHome, { ...process.env, MCP_BROKER_HOME: home });
  assert.match(byName.github ?? '', /Connected/, `${r.stdout}\n${r.stderr}`);

  await cli(['hosts', 'disconnect', 'claude-code']);
  const restored = JSON.parse(await fs.readFile(config, 'utf8'));
  assert.deepEqual(restored.mcpServers, JSON.parse(original).mcpServers, 'as it was, with the key (Claude Code rewrote the rest of its file)');
  const gone = await runBroker(['run', 'claude-code/github', '--', process.execPath, '-e', '0'], { home, env });
  assert.notEqual(gone.code, 0, 'the keychain copy is gone after disconnect');
  assert.match(gone.stderr, /no secrets are kept for claude-code\/github/);
});
