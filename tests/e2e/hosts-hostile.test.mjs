// Host config files that are not what they seem: `hosts connect` refuses each with a clear
// line and writes nothing (no file, no backup, no ledger entry): a config that is a symbolic
// link to a file elsewhere, one that is not valid JSON, one that is huge, and one that the
// host keeps saving while the broker works on it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

import { makeHome, runBroker } from './lib/harness.mjs';

const entry = (url) => `{\n  "mcpServers": {\n    "docs": { "type": "http", "url": "${url}" }\n  }\n}\n`;

/** A user's home with Claude Code's file, and the broker's home; `cli` runs the broker there. */
async function setUp(t) {
  const userHome = await makeHome(t, 'hostile-host-');
  const home = await makeHome(t, 'hostile-broker-');
  const env = { HOME: userHome, XDG_CONFIG_HOME: path.join(userHome, '.config') };
  const cli = (args) => runBroker(args, { home, env });
  const config = path.join(userHome, '.claude.json');
  /** What the broker wrote of its own: backups and the ledger. */
  const brokerWrote = async () => {
    const found = [];
    const walk = async (dir) => {
      for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (/host-connections|\.bak$/.test(e.name)) found.push(p);
      }
    };
    await walk(home);
    return found;
  };
  return { userHome, cli, config, brokerWrote };
}

test('a config that is a symbolic link is refused; the file it points to is untouched', async (t) => {
  const { userHome, cli, config, brokerWrote } = await setUp(t);
  const elsewhere = path.join(userHome, 'dotfiles', 'claude.json');
  await fs.mkdir(path.dirname(elsewhere));
  const text = entry('https://docs.example/mcp');
  await fs.writeFile(elsewhere, text);
  await fs.symlink(elsewhere, config);
  const r = await cli(['hosts', 'connect', 'claude-code']);
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, /^error: .*\.claude\.json is a symbolic link; connect the file it points to instead\n$/);
  assert.equal(await fs.readFile(elsewhere, 'utf8'), text);
  assert.ok((await fs.lstat(config)).isSymbolicLink());
  assert.deepEqual(await brokerWrote(), []);
});

test('a config that is not valid JSON is refused, with where it breaks; nothing written', async (t) => {
  const { cli, config, brokerWrote } = await setUp(t);
  const text = '{\n  "mcpServers": {\n    "docs": { "type": "http", "url": "https://docs.example/mcp" \n';
  await fs.writeFile(config, text);
  const r = await cli(['hosts', 'connect', 'claude-code']);
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, /^error: .*\.claude\.json: it is not valid JSON: .+\n$/);
  assert.equal(await fs.readFile(config, 'utf8'), text);
  assert.deepEqual(await brokerWrote(), []);
  const detect = await cli(['hosts', 'detect']);
  assert.equal(detect.code, 0, 'detect still reports the others');
  assert.match(detect.stdout, /cannot use it: it is not valid JSON/);
});

test('a huge config (over 32 MiB) is not read at all; nothing written', async (t) => {
  const { cli, config, brokerWrote } = await setUp(t);
  const text = entry('https://docs.example/mcp');
  await fs.writeFile(config, text);
  await fs.truncate(config, 33 * 1024 * 1024); // the entry, then zero bytes
  const r = await cli(['hosts', 'connect', 'claude-code']);
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, /^error: .*\.claude\.json: it is larger than 32 MiB\n$/);
  assert.equal((await fs.stat(config)).size, 33 * 1024 * 1024);
  assert.deepEqual(await brokerWrote(), []);
});

test('a config the host keeps saving while the broker works: refused as changed, the host\'s version stays', async (t) => {
  const { cli, config, brokerWrote } = await setUp(t);
  await fs.writeFile(config, entry('https://docs.example/mcp?v=0'));
  // The "host": saves the file again and again, each time a new version, atomically (a
  // temporary file renamed over it, as editors and Claude Code do).
  const saver = spawn(process.execPath, ['-e', `
    const fs = require('node:fs');
    let n = 0;
    const f = ${JSON.stringify(config)};
    process.stdout.write('saving\\n');
    for (;;) {
      n += 1;
      fs.writeFileSync(f + '.tmp', ${JSON.stringify(entry('https://docs.example/mcp?v=N'))}.replace('N', n));
      fs.renameSync(f + '.tmp', f);
    }
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => saver.kill('SIGKILL'));
  await new Promise((resolve) => saver.stdout.once('data', resolve));
  const runs = [];
  for (let i = 0; i < 3; i += 1) runs.push(await cli(['hosts', 'connect', 'claude-code']));
  saver.kill('SIGKILL');
  await new Promise((resolve) => saver.once('exit', resolve));
  const refused = runs.filter((r) => r.code !== 0);
  assert.ok(refused.length >= 1, `at least one of 3 runs met a save in between: ${runs.map((r) => r.stdout + r.stderr).join('\n')}`);
  for (const r of refused) {
    assert.match(r.stderr, /^error: .*\.claude\.json changed since it was read \(is the host running and saving it\?\); nothing was written: run the command again\n$/);
  }
  const now = await fs.readFile(config, 'utf8');
  assert.match(now, /"url": "https:\/\/docs\.example\/mcp\?v=\d+"/, 'the host\'s last save is the file');
  if (refused.length === runs.length) assert.deepEqual(await brokerWrote().then((f) => f.filter((p) => p.endsWith('.json'))), [], 'no ledger entry for a refused write');
});
