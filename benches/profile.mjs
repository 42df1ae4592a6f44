#!/usr/bin/env node
// Where the time goes: sequential tools/call echo through the bridge and the HTTP endpoint
// while `perf record` samples the service and the bridge (software cpu-clock event, so it
// works in VMs without a PMU). Use a binary with symbols, e.g.
//
//   RUSTFLAGS="-C force-frame-pointers=yes" CARGO_PROFILE_RELEASE_STRIP=none \
//     CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --target-dir target/prof
//   scripts/with-keychain.sh node benches/profile.mjs --bin target/prof/release/mcp-broker [--calls 3000] [--out DIR]
//   ... --load 64   # instead: 64 concurrent HTTP hosts for 5 s (benches/lib/load.mjs), service only
//                   # (with --strace: strace -c of the service under that load instead of perf)
//
// Writes perf.data files and flat reports (self time by symbol, and by shared object) for
// the service (daemon.*) and the bridge (bridge.*) to --out (default /tmp/mcpb-profile),
// plus strace -c summaries of both when --strace is given.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { StdioPeer, HttpMcp, ECHO, checkEcho } from './lib/rpc.mjs';

const { values: opt } = parseArgs({
  options: {
    bin: { type: 'string' },
    calls: { type: 'string', default: '3000' },
    out: { type: 'string', default: path.join(os.tmpdir(), 'mcpb-profile') },
    strace: { type: 'boolean', default: false },
    load: { type: 'string' },
  },
  strict: true,
});
if (!opt.bin) throw new Error('--bin PATH (a release build with symbols) is required');
process.env.MCP_BROKER_BIN = path.resolve(opt.bin);
const H = await import('../tests/e2e/lib/harness.mjs');
const CALLS = Number(opt.calls);
const out = path.resolve(opt.out);
await fs.mkdir(out, { recursive: true });

const run = (cmd, args, file) => new Promise((resolve) => {
  const c = spawn('sh', ['-c', `${cmd} ${args.map((a) => `'${a}'`).join(' ')} > '${file}' 2>&1`], { stdio: 'ignore' });
  c.on('exit', resolve);
});

async function attach(tool, pid, label) {
  const args = tool === 'perf'
    ? ['record', '-e', 'cpu-clock', '-F', '4999', '-g', '--call-graph', 'fp', '-p', String(pid), '-o', path.join(out, `${label}.perf.data`)]
    : ['-f', '-c', '-p', String(pid), '-o', path.join(out, `${label}.strace-c.txt`)];
  const p = spawn(tool, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  await new Promise((r) => setTimeout(r, 1000));
  return { stop: async () => { p.kill('SIGINT'); await once(p, 'exit'); return err; } };
}

const as = await H.startPeer(null, 'as.mjs', ['--port', '0', '--login', 'auto', '--quiet']);
const mcp = await H.startPeer(null, 'mcp-server.mjs', ['--port', '0', '--issuer', as.url, '--sessions', '--quiet']);
const home = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'mcpb-prof-')));
try {
  const login = await H.runBroker(['login', mcp.url, '--name', 's1'], { home });
  if (login.code !== 0) throw new Error(H.describeRun(login));
  const host = await H.addHost(home, 'prof');
  const daemon = (await H.daemonPids(home))[0];
  const bridge = new StdioPeer(H.BROKER_BIN, ['connect', 's1'], { env: H.brokerEnv(home), label: 'bridge' });
  const ep = new HttpMcp(`${host.endpoint}/servers/s1/mcp`, { authorization: `Bearer ${host.key}`, label: 'endpoint' });
  await bridge.initialize();
  await ep.initialize();
  for (let i = 0; i < 100; i += 1) {
    checkEcho(await bridge.request('tools/call', ECHO), 'bridge');
    checkEcho(await ep.request('tools/call', ECHO), 'endpoint');
  }
  if (opt.load) {
    const keys = [host.key];
    for (let i = 1; i < Number(opt.load); i += 1) keys.push((await H.addHost(home, `prof${i}`)).key);
    const spec = { url: `${host.endpoint}/servers/s1/mcp`, auths: keys.map((k) => `Bearer ${k}`), warmupMs: 1500, durationMs: 5000 };
    const driver = spawn(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib', 'load.mjs')], { env: { ...process.env, BENCH_LOAD_SPEC: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'inherit'] });
    let result = '';
    driver.stdout.setEncoding('utf8').on('data', (d) => { result += d; });
    await new Promise((r) => setTimeout(r, 1500));
    const a = await attach(opt.strace ? 'strace' : 'perf', daemon, 'daemon');
    await once(driver, 'exit');
    await a.stop();
    console.error(`[profile] load: ${result.trim()}`);
  }
  for (const tool of opt.load ? [] : opt.strace ? ['perf', 'strace'] : ['perf']) {
    const a = await attach(tool, daemon, 'daemon');
    const b = await attach(tool, bridge.pid, 'bridge');
    const t0 = performance.now();
    for (let i = 0; i < CALLS; i += 1) {
      checkEcho(await bridge.request('tools/call', ECHO), 'bridge');
      checkEcho(await ep.request('tools/call', ECHO), 'endpoint');
    }
    console.error(`[profile] ${tool}: ${CALLS} calls per path in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await a.stop();
    await b.stop();
  }
  await bridge.close();
  await ep.close();
  for (const label of opt.load ? (opt.strace ? [] : ['daemon']) : ['daemon', 'bridge']) {
    const data = path.join(out, `${label}.perf.data`);
    await run('perf', ['report', '-i', data, '--no-children', '--sort', 'symbol', '--stdio', '--percent-limit', '0.7', '-g', 'none'], path.join(out, `${label}.symbols.txt`));
    await run('perf', ['report', '-i', data, '--no-children', '--sort', 'dso', '--stdio', '-g', 'none'], path.join(out, `${label}.dso.txt`));
    await run('perf', ['report', '-i', data, '--children', '--sort', 'symbol', '--stdio', '--percent-limit', '3', '-g', 'none'], path.join(out, `${label}.inclusive.txt`));
  }
  console.error(`[profile] reports in ${out}`);
} finally {
  await H.teardownService(home);
  await fs.rm(home, { recursive: true, force: true });
  await as.kill();
  await mcp.kill();
}
process.exit(0);
