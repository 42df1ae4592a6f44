// The MCP conformance suite's client scenarios (@modelcontextprotocol/conformance): all that
// MCP 2026-07-28 requires of a client, and the 2025-03-26 authorization back-compat ones, run
// one at a time, against the official TypeScript SDK v2 client talking MCP over stdio to
// `mcp-broker connect <url>` (peers/conformance-client.mjs).
//
// Each scenario runs in its own loopback-only network namespace (`unshare --net`, then
// `ip link set lo up`; needs root): the suite's mock servers bind every interface. The session
// bus (and so the Secret Service) stays reachable there because it is a path-based Unix socket;
// `before` checks that. One test per scenario; a test passes when the suite exits 0 and its
// checks.json holds no FAILURE and no WARNING (the suite counts warnings as failures).
//
// Run: scripts/with-keychain.sh node --test --test-reporter=spec tests/e2e/conformance.test.mjs
// Env: MCP_BROKER_BIN; CONFORMANCE_SCENARIOS=a,b (a subset, e.g. auth/scope-step-up).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { E2E_DIR, PEERS_DIR, BROKER_BIN, requireKeychain } from './lib/harness.mjs';

const NODE = process.execPath;
const CONFORMANCE = path.join(E2E_DIR, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
const CLIENT = path.join(PEERS_DIR, 'conformance-client.mjs');
// What MCP 2026-07-28 requires of a client (`conformance list --client --requirements
// 2026-07-28`, frozen at the release: 32 scenarios in 0.2.0-alpha.12), and the 2025-03-26
// authorization back-compat scenarios, which that set leaves out; a different count means the
// suite changed.
const REVISION = '2026-07-28';
const EXPECTED_REQUIRED = 32;
const BACKCOMPAT = ['auth/2025-03-26-oauth-metadata-backcompat', 'auth/2025-03-26-oauth-endpoint-fallback'];
const SUITE_CLIENT_TIMEOUT_MS = 60_000; // the suite kills the client after this (--timeout)
const CLIENT_DEADLINE_MS = 50_000; // the client gives up, cleans up and dumps logs before that
const SCENARIO_TIMEOUT_MS = 90_000; // the whole scenario (suite + client), then we kill the group

function execFileP(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, maxBuffer: 16 << 20, ...opts }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr, error });
    });
  });
}

/** The client scenarios `conformance list --client --requirements REVISION` names. */
async function listRequired() {
  const r = await execFileP(NODE, [CONFORMANCE, 'list', '--client', '--requirements', REVISION], { cwd: E2E_DIR });
  if (r.code !== 0) throw new Error(`conformance list failed (${r.code}): ${r.stderr}`);
  const section = r.stdout.split(/^Client scenarios.*$/m)[1]?.split(/^\S.*$/m)[0] ?? '';
  return [...section.matchAll(/^\s*-\s+(\S+)\s*$/gm)].map((m) => m[1]);
}

const required = await listRequired();
const allScenarios = [...required, ...BACKCOMPAT];
const only = (process.env.CONFORMANCE_SCENARIOS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const scenarios = only.length ? allScenarios.filter((s) => only.includes(s)) : allScenarios;

let workRoot;
const summary = [];

before(async () => {
  if (process.getuid?.() !== 0) throw new Error('these tests need root (unshare --net)');
  try {
    await fs.access(BROKER_BIN, fs.constants.X_OK);
  } catch {
    throw new Error(`broker binary not found at ${BROKER_BIN} (cargo build, or set MCP_BROKER_BIN)`);
  }
  await requireKeychain();
  // The Secret Service must stay reachable inside a fresh network namespace: an abstract Unix
  // socket (unix:abstract=...) belongs to the namespace it was made in, a path socket does not.
  const probe = await execFileP('unshare', ['--net', 'bash', '-c',
    'ip link set lo up && printf probe | secret-tool store --label "mcp-broker netns probe" service mcp-broker-e2e-netns username probe '
    + '&& secret-tool lookup service mcp-broker-e2e-netns username probe && secret-tool clear service mcp-broker-e2e-netns username probe']);
  if (probe.code !== 0 || probe.stdout !== 'probe') {
    throw new Error(`the Secret Service is not reachable inside \`unshare --net\` (bus ${process.env.DBUS_SESSION_BUS_ADDRESS}): `
      + `exit ${probe.code}, stdout ${JSON.stringify(probe.stdout)}, stderr ${probe.stderr.trim()}`);
  }
  // Short paths: the broker's socket ($MCP_BROKER_HOME/run/broker.sock) must fit in sun_path.
  workRoot = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'mbc-')));
});

after(async () => {
  if (workRoot) await fs.rm(workRoot, { recursive: true, force: true });
  if (summary.length) {
    const passed = summary.filter((s) => s.ok).length;
    const lines = summary.map((s) => `  ${s.ok ? 'PASS' : 'FAIL'} ${s.scenario} (${(s.ms / 1000).toFixed(1)} s)${s.ok ? '' : `: ${s.why}`}`);
    process.stdout.write(`\nconformance, ${REVISION} client set and back-compat: ${passed}/${summary.length} passed, `
      + `${(summary.reduce((a, s) => a + s.ms, 0) / 1000).toFixed(1)} s\n${lines.join('\n')}\n`);
  }
});

test(`the suite lists what ${REVISION} requires of a client`, () => {
  assert.equal(required.length, EXPECTED_REQUIRED,
    `conformance list --client --requirements ${REVISION} gave ${required.length} scenarios: ${required.join(', ')}`);
  if (only.length) assert.deepEqual(scenarios.sort(), [...new Set(only)].sort(), 'CONFORMANCE_SCENARIOS names unknown scenarios');
});

/** Every file named `name` under dir. */
async function findFiles(dir, name) {
  const out = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name === name) out.push(path.join(e.parentPath ?? e.path, e.name));
  }
  return out;
}

/** Processes (by pid) whose MCP_BROKER_HOME lies under dir: broker daemons left behind. */
async function brokerPidsUnder(dir) {
  const out = [];
  for (const e of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const vars = (await fs.readFile(`/proc/${e}/environ`)).toString('utf8').split('\0');
      if (vars.some((v) => v.startsWith(`MCP_BROKER_HOME=${dir}/`))) out.push(Number(e));
    } catch { /* gone or not readable */ }
  }
  return out;
}

/** Run one scenario in a loopback-only netns. Resolves {code, signal, output, timedOut, ms}. */
async function runScenario(name, dir) {
  const outDir = path.join(dir, 'results');
  const tmp = path.join(dir, 't');
  await fs.mkdir(tmp);
  // `exec` in --command: the suite runs `sh -c "<command> <url>"` and on timeout kills only that
  // shell (dash does not exec the last command itself); with exec the client gets the SIGTERM.
  const command = `exec ${NODE} ${CLIENT}`;
  if (/\s/.test(NODE + CLIENT)) throw new Error('the suite splits --command on spaces: paths must not contain any');
  const started = Date.now();
  const child = spawn('unshare', ['--net', 'bash', '-c', 'ip link set lo up && exec "$@"', 'netns',
    NODE, CONFORMANCE, 'client', '--command', command, '--scenario', name,
    ...(BACKCOMPAT.includes(name) ? [] : ['--spec-version', REVISION]),
    '--timeout', String(SUITE_CLIENT_TIMEOUT_MS), '--output-dir', outDir], {
    cwd: E2E_DIR,
    detached: true, // its own process group, so a timeout can kill all of it
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TMPDIR: tmp, // the client's MCP_BROKER_HOME goes under here: leftovers are findable
      MCP_BROKER_BIN: BROKER_BIN,
      CONFORMANCE_CLIENT_DEADLINE_MS: String(CLIENT_DEADLINE_MS),
      NO_COLOR: '1',
    },
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
    setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000).unref();
  }, SCENARIO_TIMEOUT_MS);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(timer);
  return { code, signal, output, timedOut, ms: Date.now() - started, outDir, tmp };
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

for (const name of scenarios) {
  test(name, { timeout: SCENARIO_TIMEOUT_MS + 20_000 }, async (t) => {
    const dir = await fs.mkdtemp(path.join(workRoot, `s${String(scenarios.indexOf(name) + 1).padStart(2, '0')}-`));
    const run = await runScenario(name, dir);

    // The client must leave no broker behind (`mcp-broker stop`, then its own kill by pid).
    const leftovers = await brokerPidsUnder(run.tmp);
    for (const pid of leftovers) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }

    let checks = [];
    let clientOut = '';
    const files = await findFiles(run.outDir, 'checks.json').catch(() => []);
    if (files.length === 1) {
      checks = JSON.parse(await fs.readFile(files[0], 'utf8'));
      const resDir = path.dirname(files[0]);
      for (const f of ['stdout.txt', 'stderr.txt']) {
        const text = await fs.readFile(path.join(resDir, f), 'utf8').catch(() => '');
        if (text.trim()) clientOut += `--- client ${f} ---\n${text}\n`;
      }
    }
    const bad = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
    const problems = [];
    if (run.timedOut) problems.push(`the scenario did not finish within ${SCENARIO_TIMEOUT_MS} ms (killed)`);
    if (run.code !== 0) problems.push(`the suite exited ${run.code ?? run.signal}`);
    if (files.length !== 1) problems.push(`expected one checks.json under ${run.outDir}, found ${files.length}`);
    for (const c of bad) {
      problems.push(`${c.status} ${c.id}: ${c.description}${c.errorMessage ? ` (${c.errorMessage})` : ''}`
        + `${c.details ? ` ${JSON.stringify(c.details)}` : ''}`);
    }
    if (leftovers.length) problems.push(`broker processes still ran after the client exited: ${leftovers.join(', ')}`);
    summary.push({ scenario: name, ok: problems.length === 0, ms: run.ms, why: problems[0] });
    t.diagnostic(`${(run.ms / 1000).toFixed(1)} s, ${checks.filter((c) => c.status === 'SUCCESS').length} checks passed`);
    if (problems.length) {
      assert.fail(`${name} failed:\n  - ${problems.join('\n  - ')}\n`
        + `=== conformance output ===\n${stripAnsi(run.output)}\n${clientOut}`);
    }
  });
}
