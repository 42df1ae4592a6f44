#!/usr/bin/env node
// The mcp-broker benchmark driver. Run it through benches/bench.sh (which builds the release
// binary, puts Node 22 first on PATH and provides a private keychain); by hand:
//
//   scripts/with-keychain.sh node benches/run.mjs [--quick] [--bin PATH] [--out DIR]
//                                                 [--only cold,latency,throughput,memory,login,tokens,size]
//                                                 [--variants LABEL=PATH,...]
//                                                 [--hosts 1,16,64] [--tput-rounds N]
//
// Everything runs on loopback against the end-to-end peers (tests/e2e/peers): panva's
// oidc-provider as the authorization server (automatic login and consent) and the SDK-based
// MCP server with its `echo` tool. Contenders are measured in the same run and alternated
// round-robin (the order rotates every round), so that the machine's drift hits them alike:
//
//   direct     the client talks to the MCP server itself, with a token (the floor)
//   bridge     `mcp-broker connect s1` over stdio (service already running, unless noted)
//   endpoint   the service's loopback Streamable HTTP endpoint with a host key
//   mcp-remote mcp-remote 0.15.1 from tests/e2e/node_modules, signed in beforehand
//
// It never fails because something is slow: targets are reported as met or missed. It fails
// (exit 1) only when something does not work (a wrong answer, a peer that does not start).
//
// Output: a Markdown summary on stdout and, in --out (default benches/results/<time>/),
// summary.md and results.json (every sample).

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { StdioPeer, HttpMcp, ECHO, checkEcho } from './lib/rpc.mjs';
import { summary, median, quantile, pairedDiff, medianCi, fmt } from './lib/stats.mjs';

process.setMaxListeners(64); // harness.startPeer adds an exit listener per peer (21 here)
const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(BENCH_DIR, '..');

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    bin: { type: 'string', default: path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'release', 'mcp-broker') },
    out: { type: 'string' },
    only: { type: 'string' },
    variants: { type: 'string' },
    // Throughput only: more rounds narrow the interval of the % of direct (the machine's
    // speed drifts ±20% between rounds here); and which host counts to run.
    'tput-rounds': { type: 'string' },
    hosts: { type: 'string' },
  },
  strict: true,
});

const BIN = path.resolve(opt.bin);
process.env.MCP_BROKER_BIN = BIN; // harness.mjs reads it when imported
const H = await import('../tests/e2e/lib/harness.mjs');

const QUICK = opt.quick;
const SECTIONS = new Set((opt.only ?? 'size,cold,latency,throughput,memory,login,tokens').split(',').map((s) => s.trim()));
const CFG = QUICK
  ? { coldRounds: 4, latencyCalls: 300, latencyWarmup: 30, tputRounds: 2, tputWarmupMs: 500, tputMs: 1500, loginTrials: 3, memServers: 20, tokenCalls: 200, variantRounds: 4, variantCalls: 200 }
  : { coldRounds: 20, latencyCalls: 1000, latencyWarmup: 100, tputRounds: 5, tputWarmupMs: 1000, tputMs: 4000, loginTrials: 10, memServers: 20, tokenCalls: 1000, variantRounds: 15, variantCalls: 1000 };
if (opt['tput-rounds']) CFG.tputRounds = Number(opt['tput-rounds']);
const CONCURRENCY = opt.hosts ? opt.hosts.split(',').map(Number) : [1, 16, 64];

const MCP_REMOTE = path.join(H.E2E_DIR, 'node_modules', 'mcp-remote', 'dist', 'proxy.js');
const SDK_COLD = path.join(BENCH_DIR, 'lib', 'sdk-cold.mjs');
const LOAD = path.join(BENCH_DIR, 'lib', 'load.mjs');
/** The tokio byte relay (`examples/tcp_relay.rs`), built by bench.sh beside the release binary. */
const TCP_RELAY = process.env.BENCH_TCP_RELAY ?? path.join(REPO, 'target', 'release', 'examples', 'tcp_relay');
const BROWSER_TIMED = path.join(BENCH_DIR, 'lib', 'browser-timed.sh');
const NODE = process.execPath;
const RELAY_NOTE = 'relay (socat), relay (tokio): a byte relay from each TCP connection to the MCP server, no HTTP work (socat forks a process per connection; `examples/tcp_relay.rs` is one tokio worker, as the service runs): what one more loopback hop costs on this machine.';

const results = { config: { quick: QUICK, ...CFG, concurrency: CONCURRENCY, bin: BIN }, machine: {}, sections: {} };
const notes = [];
const log = (...a) => console.error('[bench]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---- processes -------------------------------------------------------------------------------

/** VmRSS / VmHWM of a process, in MiB. */
function memOf(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text) ?? [])[1] ?? NaN);
  let pss = NaN;
  try { pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) / 1024; } catch { /* old kernel */ }
  return { rss_mib: kb('VmRSS') / 1024, hwm_mib: kb('VmHWM') / 1024, anon_mib: kb('RssAnon') / 1024, file_mib: kb('RssFile') / 1024, pss_mib: pss, threads: Number((/^Threads:\s+(\d+)/m.exec(text) ?? [])[1]) };
}

/** The fields of /proc/PID/stat after the command name (field 3, `state`, is index 0). */
function statFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Clock ticks (USER_HZ = 100) to ms. */
const ticksMs = (...ticks) => (ticks.reduce((a, t) => a + Number(t), 0) * 1000) / 100;

/** CPU time (user + system) a process used so far, in ms. */
function cpuMsOf(pid) {
  const f = statFields(pid);
  return ticksMs(f[11], f[12]); // utime, stime
}

/**
 * CPU of a process and of its children (socat forks one per connection), live or reaped. A
 * live child is read from /proc/PID/schedstat (run time in ns): /proc/PID/stat rounds each
 * process to 10 ms ticks, and 64 children of a few ms each all read 0 there.
 */
function treeCpuMs(pid) {
  const f = statFields(pid);
  let ms = ticksMs(f[11], f[12], f[13], f[14]); // + cutime, cstime of reaped children
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Number(statFields(d)[1]) === pid) ms += Number(readFileSync(`/proc/${d}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
    } catch { /* exited meanwhile: counted in the parent once reaped */ }
  }
  return ms;
}

function serviceLogTail(home) {
  try { return readFileSync(path.join(home, 'run', 'service.log'), 'utf8').split('\n').slice(-15).join('\n'); } catch { return '(no service log)'; }
}

/** Run the broker binary `bin` to completion; {code, stdout, stderr, ms}. */
async function runBin(bin, args, { home, env = {}, timeoutMs = 120_000 } = {}) {
  const t0 = now();
  const child = spawn(bin, args, { env: { ...brokerEnv(home), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = await once(child, 'exit');
  const ms = now() - t0;
  clearTimeout(timer);
  return { code, stdout, stderr, ms };
}

/** Extra environment of a variant's broker processes (its service inherits it), by home. */
const HOME_ENV = new Map();

function brokerEnv(home) {
  return { ...process.env, MCP_BROKER_HOME: home, BROWSER: H.BROWSER_CURL, ...(HOME_ENV.get(home) ?? {}) };
}

/** Stop a home's service and wait until its daemon is gone. */
async function stopService(b) {
  if (await H.serviceRunning(b.home)) await runBin(b.bin, ['stop'], { home: b.home });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ((await H.daemonPids(b.home)).length === 0) return;
    await sleep(20);
  }
  throw new Error(`the service of ${b.home} did not stop`);
}

async function daemonPid(b) {
  const pids = await H.daemonPids(b.home);
  if (pids.length !== 1) throw new Error(`expected one daemon for ${b.home}, found ${pids.length}`);
  return pids[0];
}

function mcpRemoteArgs(url) {
  return [MCP_REMOTE, url, '--host', '127.0.0.1', '--transport', 'http-only'];
}

// ---- setup -----------------------------------------------------------------------------------

function sh(cmd) {
  try { return execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }).trim(); } catch { return 'n/a'; }
}

function machineInfo() {
  const pkg = (p) => { try { return JSON.parse(readFileSync(path.join(H.E2E_DIR, 'node_modules', p, 'package.json'), 'utf8')).version; } catch { return 'n/a'; } };
  return {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'n/a',
    kernel: `${os.type()} ${os.release()}`,
    memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
    rustc: sh('rustc --version'),
    cargo_profile_release: releaseProfile(),
    node: process.version,
    mcp_remote: pkg('mcp-remote'),
    sdk: pkg('@modelcontextprotocol/sdk'),
    oidc_provider: pkg('oidc-provider'),
    broker: sh(`${JSON.stringify(BIN)} --version`),
    git: sh(`git -C ${JSON.stringify(REPO)} describe --always --dirty`),
    bin_built: (() => { try { return statSync(BIN).mtime.toISOString(); } catch { return 'n/a'; } })(),
    loadavg_start: os.loadavg().map((x) => +x.toFixed(2)),
    date: new Date().toISOString(),
  };
}

function releaseProfile() {
  const toml = readFileSync(path.join(REPO, 'Cargo.toml'), 'utf8');
  const m = /\[profile\.release\]\n([\s\S]*?)(?:\n\[|$)/.exec(toml);
  return m ? m[1].trim().split('\n').map((l) => l.trim()).filter(Boolean).join(', ') : 'default';
}

async function startMcp(issuer, name) {
  return H.startPeer(null, 'mcp-server.mjs', ['--port', '0', '--issuer', issuer, '--sessions', '--quiet'], { name });
}

/** A broker under test: its binary, its home, a signed-in server s1, host keys. */
async function setupBroker(label, bin, work, mcpUrl, hostCount, dir = `home-${label}`) {
  const home = path.join(work, dir);
  await fs.mkdir(home, { recursive: true });
  const b = { label, bin, home, keys: [] };
  const r = await runBin(bin, ['login', mcpUrl, '--name', 's1'], { home });
  if (r.code !== 0) throw new Error(`[${label}] login failed: ${r.stdout}${r.stderr}`);
  b.endpointUrl = (server) => `${b.endpoint}/servers/${server}/mcp`;
  await addHosts(b, hostCount);
  return b;
}

/** Create HTTP host keys until `b` has `count`. */
async function addHosts(b, count) {
  for (let i = b.keys.length; i < count; i += 1) {
    const h = await runBin(b.bin, ['hosts', 'add', `host${i}`, '--json'], { home: b.home });
    if (h.code !== 0) throw new Error(`[${b.label}] hosts add failed: ${h.stdout}${h.stderr}`);
    const j = JSON.parse(h.stdout);
    b.keys.push(j.key);
    b.endpoint = j.endpoint;
  }
}

async function signInMcpRemote(env, url) {
  const p = new StdioPeer(NODE, mcpRemoteArgs(url), { env, label: 'mcp-remote (sign-in)' });
  try {
    await p.initialize(120_000);
    const list = await p.request('tools/list', {}, 60_000);
    if (!list.result?.tools?.some((t) => t.name === 'echo')) throw new Error(`mcp-remote: no echo tool: ${JSON.stringify(list)}`);
  } finally {
    await p.close();
  }
}

// ---- 1. cold start ---------------------------------------------------------------------------

/** spawn -> initialize -> initialized -> tools/list answered, raw JSON-RPC over stdio. */
async function coldStdio(command, args, env, label) {
  const t0 = now();
  const p = new StdioPeer(command, args, { env, label });
  try {
    await p.initialize();
    const list = await p.request('tools/list');
    const ms = now() - t0;
    if (!list.result?.tools?.some((t) => t.name === 'echo')) throw new Error(`${label}: no echo tool: ${JSON.stringify(list).slice(0, 300)}`);
    if (ms > 3000) log(`${label}: slow cold start (${fmt(ms, 0)} ms); its stderr:\n${p.stderrTail}`);
    return ms;
  } finally {
    await p.close();
  }
}

/** The same over HTTP straight to the server (fresh connection). */
async function coldHttp(url, authorization, label) {
  const t0 = now();
  const c = new HttpMcp(url, { authorization, label });
  try {
    await c.initialize();
    const list = await c.request('tools/list');
    const ms = now() - t0;
    if (!list.result?.tools?.some((t) => t.name === 'echo')) throw new Error(`${label}: no echo tool`);
    return ms;
  } finally {
    await c.close();
  }
}

/** The official SDK client in a fresh Node process: spawn -> `RESULT` line. */
async function coldSdk(spec, label) {
  const t0 = now();
  const child = spawn(NODE, [SDK_COLD], { env: { ...process.env, BENCH_SDK_SPEC: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => { err = (err + d).slice(-4000); });
  const exited = once(child, 'exit');
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const ms = await new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (/^RESULT /m.test(out)) resolve(now() - t0);
    });
    child.once('exit', (code) => reject(new Error(`${label}: SDK client exited ${code} without a result\n${out}\n${err}${spec.env?.MCP_BROKER_HOME ? `\n--- service log ---\n${serviceLogTail(spec.env.MCP_BROKER_HOME)}` : ''}`)));
  });
  await exited;
  clearTimeout(timer);
  const r = JSON.parse(/^RESULT (.*)$/m.exec(out)[1]);
  if (!r.tools.includes('echo')) throw new Error(`${label}: no echo tool`);
  return { ms, import_ms: r.import_ms, connect_list_ms: r.connect_list_ms };
}

async function benchCold(ctx) {
  const { b, b64, mcpUrl, token, remoteEnv } = ctx;
  const bridgeArgs = ['connect', 's1'];
  const contenders = {
    direct: {
      raw: () => coldHttp(mcpUrl, `Bearer ${token}`, 'direct'),
      sdk: () => coldSdk({ mode: 'http', url: mcpUrl, headers: { authorization: `Bearer ${token}` } }, 'direct'),
    },
    bridge: {
      prepare: async () => { if (!(await H.serviceRunning(b.home))) await runBin(b.bin, ['status'], { home: b.home }); },
      raw: () => coldStdio(b.bin, bridgeArgs, brokerEnv(b.home), 'bridge'),
      sdk: () => coldSdk({ mode: 'stdio', command: b.bin, args: bridgeArgs, env: brokerEnv(b.home) }, 'bridge'),
    },
    'bridge (no service)': {
      prepare: () => stopService(b),
      raw: () => coldStdio(b.bin, bridgeArgs, brokerEnv(b.home), 'bridge (no service)'),
      sdk: () => coldSdk({ mode: 'stdio', command: b.bin, args: bridgeArgs, env: brokerEnv(b.home) }, 'bridge (no service)'),
    },
    [`bridge (no service, ${b64.keys.length} HTTP hosts)`]: {
      prepare: () => stopService(b64),
      raw: () => coldStdio(b64.bin, bridgeArgs, brokerEnv(b64.home), 'bridge (no service, many hosts)'),
      sdk: () => coldSdk({ mode: 'stdio', command: b64.bin, args: bridgeArgs, env: brokerEnv(b64.home) }, 'bridge (no service, many hosts)'),
    },
    'mcp-remote': {
      raw: () => coldStdio(NODE, mcpRemoteArgs(mcpUrl), remoteEnv, 'mcp-remote'),
      sdk: () => coldSdk({ mode: 'stdio', command: NODE, args: mcpRemoteArgs(mcpUrl), env: remoteEnv }, 'mcp-remote'),
    },
  };
  const names = Object.keys(contenders);
  const KINDS = ['raw', 'sdk', 'sdk_connect'];
  const samples = Object.fromEntries(KINDS.map((k) => [k, Object.fromEntries(names.map((n) => [n, []]))]));
  // One untimed pass of everything first (page cache, JIT of the driver, the server's JWKS).
  for (const n of names) {
    await contenders[n].prepare?.();
    await contenders[n].raw();
  }
  for (let round = 0; round < CFG.coldRounds; round += 1) {
    for (const kind of ['raw', 'sdk']) {
      for (let k = 0; k < names.length; k += 1) {
        const n = names[(round + k) % names.length];
        await contenders[n].prepare?.();
        await sleep(50); // let the previous contender's processes wind down
        const r = await contenders[n][kind]();
        if (kind === 'raw') samples.raw[n].push(r);
        else {
          samples.sdk[n].push(r.ms);
          samples.sdk_connect[n].push(r.connect_list_ms);
        }
      }
    }
    log(`cold start round ${round + 1}/${CFG.coldRounds}: ${names.map((n) => `${n} ${fmt(samples.raw[n].at(-1), 1)}/${fmt(samples.sdk[n].at(-1), 1)} ms`).join(', ')}`);
  }
  const out = {};
  for (const kind of KINDS) {
    out[kind] = {};
    for (const n of names) {
      out[kind][n] = summary(samples[kind][n]);
      // Paired per round: the ratio to mcp-remote and the difference to direct.
      out[kind][n].ratio_vs_mcp_remote = median(samples[kind]['mcp-remote'].map((r, i) => r / samples[kind][n][i]));
      out[kind][n].minus_direct_ms = median(pairedDiff(samples[kind][n], samples[kind].direct));
    }
  }
  out.samples = samples;
  return out;
}

// ---- 2. added latency ------------------------------------------------------------------------

/**
 * The floor of any proxy on this machine: a byte relay from each TCP connection to the MCP
 * server (one more loopback hop, no HTTP parsing, no work). Two of them: socat (a process
 * forked per connection) and `examples/tcp_relay.rs` (one tokio worker, as the service runs).
 * Each is `{url, cpuMs()}`; a relay that is not installed or built is left out.
 */
async function startRelays(mcpUrl) {
  const up = new URL(mcpUrl);
  const relays = {};
  const probe = spawnSync('socat', ['-V'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    log('socat not found: no socat relay (scripts/setup.sh installs it)');
  } else {
    const port = await freePort();
    const child = spawn('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=256`, `TCP:${up.hostname}:${up.port},nodelay`], { stdio: 'ignore' });
    relays['relay (socat)'] = await relayAt(mcpUrl, port, child, () => treeCpuMs(child.pid));
  }
  if (!existsSync(TCP_RELAY)) {
    log(`${TCP_RELAY} not built: no tokio relay (bench.sh builds it)`);
  } else {
    const child = spawn(TCP_RELAY, [`${up.hostname}:${up.port}`], { stdio: ['ignore', 'pipe', 'ignore'] });
    const [line] = await once(child.stdout.setEncoding('utf8'), 'data');
    relays['relay (tokio)'] = await relayAt(mcpUrl, Number(line.trim()), child, () => cpuMsOf(child.pid));
  }
  return relays;
}

async function relayAt(mcpUrl, port, child, cpuMs) {
  for (let i = 0; i < 200; i += 1) {
    if (await canConnect(port)) break;
    await sleep(10);
  }
  const url = new URL(mcpUrl);
  url.port = String(port);
  return { url: url.href, cpuMs, close: () => child.kill('SIGTERM') };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    }).on('error', reject);
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); }).on('error', () => resolve(false));
  });
}

async function benchLatency(ctx) {
  const { b, mcpUrl, token, remoteEnv } = ctx;
  const pid = await daemonPid(b);
  const direct = new HttpMcp(mcpUrl, { authorization: `Bearer ${token}`, label: 'direct' });
  const endpoint = new HttpMcp(b.endpointUrl('s1'), { authorization: `Bearer ${b.keys[0]}`, label: 'endpoint' });
  const bridge = new StdioPeer(b.bin, ['connect', 's1'], { env: brokerEnv(b.home), label: 'bridge' });
  const remote = new StdioPeer(NODE, mcpRemoteArgs(mcpUrl), { env: remoteEnv, label: 'mcp-remote' });
  const clients = { direct, bridge, endpoint, 'mcp-remote': remote };
  const relays = await startRelays(mcpUrl);
  for (const [n, r] of Object.entries(relays)) clients[n] = new HttpMcp(r.url, { authorization: `Bearer ${token}`, label: n });
  const names = Object.keys(clients);
  try {
    for (const c of Object.values(clients)) await c.initialize();
    for (let i = 0; i < CFG.latencyWarmup; i += 1) {
      for (const n of names) checkEcho(await clients[n].request('tools/call', ECHO), n);
    }
    const lat = Object.fromEntries(names.map((n) => [n, new Array(CFG.latencyCalls)]));
    const cpu0 = { daemon: cpuMsOf(pid), bridge: cpuMsOf(bridge.pid), remote: cpuMsOf(remote.pid) };
    for (let round = 0; round < CFG.latencyCalls; round += 1) {
      for (let k = 0; k < names.length; k += 1) {
        const n = names[(round + k) % names.length];
        const t0 = process.hrtime.bigint();
        const msg = await clients[n].request('tools/call', ECHO);
        const us = Number(process.hrtime.bigint() - t0) / 1000;
        checkEcho(msg, n);
        lat[n][round] = us;
      }
    }
    const cpu = {
      daemon_us_per_proxied_call: ((cpuMsOf(pid) - cpu0.daemon) * 1000) / (2 * CFG.latencyCalls),
      bridge_us_per_call: ((cpuMsOf(bridge.pid) - cpu0.bridge) * 1000) / CFG.latencyCalls,
      mcp_remote_us_per_call: ((cpuMsOf(remote.pid) - cpu0.remote) * 1000) / CFG.latencyCalls,
    };
    const out = { per_path: {}, added: {}, cpu };
    for (const n of names) {
      const s = summary(lat[n]);
      out.per_path[n] = { p50_us: quantile(lat[n], 0.5), p99_us: s.p99, min_us: s.min, max_us: s.max };
    }
    for (const n of names.filter((x) => x !== 'direct')) {
      const d = pairedDiff(lat[n], lat.direct);
      out.added[n] = { median_us: median(d), ci95_us: medianCi(d), p99_us: quantile(d, 0.99) };
    }
    out.samples = lat;
    return out;
  } finally {
    for (const c of Object.values(clients)) await c.close();
    for (const r of Object.values(relays)) r.close();
  }
}

// ---- 3. throughput ---------------------------------------------------------------------------

/**
 * Run the load driver; `watch` maps a label to a function giving that process's CPU ms, read
 * when the driver starts and ends its measured window (result: `cpu_ms[label]`).
 */
async function load(url, auths, watch = {}) {
  try {
    return await loadOnce(url, auths, watch);
  } catch (err) {
    throw new Error(`load driver against ${url}: ${err.message}`);
  }
}

async function loadOnce(url, auths, watch) {
  const spec = { url, auths, warmupMs: CFG.tputWarmupMs, durationMs: CFG.tputMs };
  const child = spawn(NODE, [LOAD], { env: { ...process.env, BENCH_LOAD_SPEC: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const marks = {};
  const sample = () => Object.fromEntries(Object.entries(watch).map(([k, f]) => [k, f()]));
  child.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
    for (const m of ['start', 'end']) if (!marks[m] && out.includes(`MEASURE ${m}\n`)) marks[m] = sample();
  });
  child.stderr.setEncoding('utf8').on('data', (d) => { err = (err + d).slice(-4000); });
  const [code] = await once(child, 'exit');
  const m = /^RESULT (.*)$/m.exec(out);
  if (code !== 0 || !m) throw new Error(`load driver failed (${code}): ${out}\n${err}`);
  const r = JSON.parse(m[1]);
  if (r.errors) throw new Error(`load driver: ${r.errors} errors, first: ${r.first_error}`);
  r.cpu_ms = Object.fromEntries(Object.keys(watch).map((k) => [k, (marks.end?.[k] ?? NaN) - (marks.start?.[k] ?? NaN)]));
  r.cpu_ms.driver = r.driver_cpu_ms;
  return r;
}

/** Median over runs of one process's CPU per call (µs) in the measured window. */
function cpuPerCall(runs, key) {
  const xs = runs.map((r) => (r.cpu_ms[key] * 1000) / r.calls).filter(Number.isFinite);
  return xs.length ? median(xs) : null;
}

async function benchThroughput(ctx) {
  const { b, mcpUrl, mcpPid, token } = ctx;
  const pid = await daemonPid(b);
  const relays = await startRelays(mcpUrl);
  const out = {};
  try {
    for (const conc of CONCURRENCY) {
      const names = ['direct', 'endpoint', ...Object.keys(relays)];
      const runs = Object.fromEntries(names.map((n) => [n, []]));
      for (let round = 0; round < CFG.tputRounds; round += 1) {
        const order = names.map((_, k) => names[(round + k) % names.length]);
        for (const n of order) {
          const watch = { server: () => cpuMsOf(mcpPid) };
          if (n === 'endpoint') watch.proxy = () => cpuMsOf(pid);
          if (relays[n]) watch.proxy = relays[n].cpuMs;
          const r = n === 'endpoint'
            ? await load(b.endpointUrl('s1'), b.keys.slice(0, conc).map((k) => `Bearer ${k}`), watch)
            : await load(relays[n]?.url ?? mcpUrl, Array(conc).fill(`Bearer ${token}`), watch);
          runs[n].push(r);
          await sleep(200);
        }
        log(`throughput ${conc} hosts round ${round + 1}: ${names.map((n) => `${n} ${fmt(runs[n].at(-1).rps, 0)}/s`).join(', ')}`);
      }
      const rps = (n) => runs[n].map((r) => r.rps);
      const ratios = (n) => rps(n).map((x, i) => (100 * x) / rps('direct')[i]);
      const pct = (n) => median(ratios(n));
      out[conc] = {
        direct: summary(rps('direct')),
        endpoint: summary(rps('endpoint')),
        percent_of_direct: pct('endpoint'),
        percent_ci95: medianCi(ratios('endpoint')),
        relays: Object.fromEntries(Object.keys(relays).map((n) => [n, { ...summary(rps(n)), percent_of_direct: pct(n), percent_ci95: medianCi(ratios(n)) }])),
        direct_p50_ms: median(runs.direct.map((r) => r.p50_ms)),
        endpoint_p50_ms: median(runs.endpoint.map((r) => r.p50_ms)),
        daemon_cpu_us_per_call: cpuPerCall(runs.endpoint, 'proxy'),
        // CPU µs per call of each process in the measured window, by contender.
        cpu_us_per_call: Object.fromEntries(names.map((n) => [n, Object.fromEntries(['server', 'driver', 'proxy'].map((k) => [k, cpuPerCall(runs[n], k)]))])),
        runs,
      };
    }
  } finally {
    for (const r of Object.values(relays)) r.close();
  }
  out.daemon_after_load = memOf(pid);
  return out;
}

// ---- 4. memory -------------------------------------------------------------------------------

async function benchMemory(ctx) {
  const { b, as, mcpUrl, remoteEnv } = ctx;
  const out = {};
  await stopService(b);
  // One server in use: a bridge and an HTTP host, 100 calls each, on a fresh service.
  const bridge = new StdioPeer(b.bin, ['connect', 's1'], { env: brokerEnv(b.home), label: 'bridge' });
  const sessions = [];
  try {
    await bridge.initialize();
    await bridge.request('tools/list');
    for (let i = 0; i < 100; i += 1) checkEcho(await bridge.request('tools/call', ECHO), 'bridge');
    const http1 = new HttpMcp(b.endpointUrl('s1'), { authorization: `Bearer ${b.keys[0]}`, label: 'endpoint s1' });
    sessions.push(http1);
    await http1.initialize();
    for (let i = 0; i < 100; i += 1) checkEcho(await http1.request('tools/call', ECHO), 'endpoint');
    await sleep(300);
    const pid = await daemonPid(b);
    out.service_1_server = memOf(pid);
    out.bridge = memOf(bridge.pid);

    // mcp-remote doing the same.
    const remote = new StdioPeer(NODE, mcpRemoteArgs(mcpUrl), { env: remoteEnv, label: 'mcp-remote' });
    try {
      await remote.initialize();
      await remote.request('tools/list');
      for (let i = 0; i < 100; i += 1) checkEcho(await remote.request('tools/call', ECHO), 'mcp-remote');
      await sleep(300);
      out.mcp_remote = memOf(remote.pid);
    } finally {
      await remote.close();
    }

    // 20 servers in use: 19 more MCP servers, each signed in and called over the endpoint.
    log(`memory: starting ${CFG.memServers - 1} more MCP servers`);
    const extra = await Promise.all(Array.from({ length: CFG.memServers - 1 }, (_, i) => startMcp(as.issuer, `mcp-s${i + 2}`)));
    ctx.extraServers = extra;
    const logins = [];
    for (let i = 0; i < extra.length; i += 1) {
      const r = await runBin(b.bin, ['login', extra[i].url, '--name', `s${i + 2}`], { home: b.home });
      if (r.code !== 0) throw new Error(`login s${i + 2} failed: ${r.stdout}${r.stderr}`);
      logins.push(r.ms);
    }
    out.login_known_client_ms = summary(logins);
    for (let i = 0; i < extra.length; i += 1) {
      const c = new HttpMcp(b.endpointUrl(`s${i + 2}`), { authorization: `Bearer ${b.keys[(i + 1) % b.keys.length]}`, label: `endpoint s${i + 2}` });
      sessions.push(c);
      await c.initialize();
      await c.request('tools/list');
      for (let k = 0; k < 20; k += 1) checkEcho(await c.request('tools/call', ECHO), c.label);
    }
    for (let k = 0; k < 20; k += 1) checkEcho(await bridge.request('tools/call', ECHO), 'bridge');
    await sleep(300);
    out.service_20_servers = memOf(await daemonPid(b));
    out.bridge_after = memOf(bridge.pid);
    return out;
  } finally {
    for (const c of sessions) await c.close();
    await bridge.close();
    for (const s of ctx.extraServers ?? []) await s.kill();
  }
}

// ---- 5. login machine time -------------------------------------------------------------------

async function benchLogin(ctx) {
  const { b, work, mcpUrl } = ctx;
  const trials = [];
  for (let i = 0; i < CFG.loginTrials; i += 1) {
    const home = path.join(work, `login-${i}`);
    await fs.mkdir(home);
    const timing = path.join(home, 'browser-timing.log');
    const env = { BROWSER: BROWSER_TIMED, BROWSER_TIMING: timing };
    const lb = { bin: b.bin, home };
    const st = await runBin(b.bin, ['status'], { home, env }); // the service runs before the clock starts
    if (st.code !== 0) throw new Error(`status failed: ${st.stderr}`);
    const wall0 = performance.timeOrigin + now();
    const r = await runBin(b.bin, ['login', mcpUrl, '--name', 'l1'], { home, env });
    const wall1 = wall0 + r.ms;
    if (r.code !== 0) throw new Error(`timed login failed: ${r.stdout}${r.stderr}`);
    const [start, callback, end, hops] = (await fs.readFile(timing, 'utf8')).trim().split(/\s+/).map(Number);
    const browserMs = (callback - start) / 1e6;
    trials.push({
      total_ms: r.ms,
      browser_ms: browserMs,
      machine_ms: r.ms - browserMs,
      before_browser_ms: start / 1e6 - wall0, // CLI start, discovery, registration, PKCE, spawning $BROWSER
      after_callback_ms: wall1 - callback / 1e6, // code redemption, keychain, answer to the CLI
      callback_page_ms: (end - callback) / 1e6,
      hops,
    });
    await stopService(lb);
    await fs.rm(home, { recursive: true, force: true });
  }
  const pick = (k) => summary(trials.map((t) => t[k]));
  return {
    total_ms: pick('total_ms'), browser_ms: pick('browser_ms'), machine_ms: pick('machine_ms'),
    before_browser_ms: pick('before_browser_ms'), after_callback_ms: pick('after_callback_ms'), trials,
  };
}

// ---- 6. token cache: the hot path never touches the keychain ----------------------------------

/** strace -f the daemon while `work` runs; counts syscalls, Unix-socket activity, file operations. */
async function traceDaemon(pid, traceFile, work) {
  const strace = spawn('strace', ['-f', '-qq', '-yy', '-o', traceFile, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let serr = '';
  strace.stderr.setEncoding('utf8').on('data', (d) => { serr += d; });
  const exited = once(strace, 'exit');
  // Attached once every thread of the daemon has a tracer.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const tasks = await fs.readdir(`/proc/${pid}/task`);
    const all = tasks.every((t) => { try { return /^TracerPid:\s+[1-9]/m.test(readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8')); } catch { return true; } });
    if (all) break;
    if (Date.now() > deadline || strace.exitCode !== null) return { error: `strace could not attach: ${serr.trim()}` };
    await sleep(20);
  }
  await sleep(200);
  try {
    await work();
  } finally {
    await sleep(200);
    strace.kill('SIGINT');
    await exited;
  }
  const bus = /(?:path|abstract)=([^,;]+)/.exec(process.env.DBUS_SESSION_BUS_ADDRESS ?? '')?.[1] ?? '\0none';
  const counts = {};
  const fileOps = {};
  let unixIo = 0;
  let unixConnects = 0;
  let busConnects = 0;
  for (const line of (await fs.readFile(traceFile, 'utf8')).split('\n')) {
    const m = /^\d+\s+([a-z_0-9]+)\(/.exec(line);
    if (!m) continue; // "<... resumed>" tails, exits, signals: a call is counted at its first line
    counts[m[1]] = (counts[m[1]] ?? 0) + 1;
    if (/<UNIX(-STREAM)?:/.test(line) && /^(sendmsg|recvmsg|sendto|recvfrom|write|read|writev|readv)$/.test(m[1])) unixIo += 1;
    if (m[1] === 'connect' && line.includes('AF_UNIX')) {
      unixConnects += 1;
      if (line.includes(bus)) busConnects += 1;
    }
    const f = /^\d+\s+(openat|statx|stat|newfstatat|access)\(.*?"([^"]+)"/.exec(line);
    if (f) {
      const k = `${f[1]} ${path.basename(f[2])}`;
      fileOps[k] = (fileOps[k] ?? 0) + 1;
    }
  }
  return { counts, fileOps, unixIo, unixConnects, busConnects };
}

async function benchTokens(ctx) {
  const { b } = ctx;
  const pid = await daemonPid(b);
  const c = new HttpMcp(b.endpointUrl('s1'), { authorization: `Bearer ${b.keys[0]}`, label: 'endpoint' });
  const out = {};
  try {
    await c.initialize();
    for (let i = 0; i < 50; i += 1) checkEcho(await c.request('tools/call', ECHO), 'endpoint');
    const traced = await traceDaemon(pid, path.join(ctx.work, 'daemon.strace'), async () => {
      const t0 = now();
      for (let i = 0; i < CFG.tokenCalls; i += 1) checkEcho(await c.request('tools/call', ECHO), 'endpoint (traced)');
      out.traced_ms_per_call = (now() - t0) / CFG.tokenCalls;
    });
    if (traced.error) {
      out.error = traced.error;
      return out;
    }
    const perCall = Object.fromEntries(Object.entries(traced.counts).sort((x, y) => y[1] - x[1]).map(([k, v]) => [k, +(v / CFG.tokenCalls).toFixed(2)]));
    out.calls = CFG.tokenCalls;
    out.syscalls_per_call = perCall;
    out.total_syscalls_per_call = Object.values(traced.counts).reduce((a, x) => a + x, 0) / CFG.tokenCalls;
    out.unix_socket_io = traced.unixIo;
    out.unix_connects = traced.unixConnects;
    out.dbus_connects = traced.busConnects;
    out.file_ops_per_call = Object.fromEntries(Object.entries(traced.fileOps).map(([k, v]) => [k, +(v / CFG.tokenCalls).toFixed(2)]));
    // Positive control: a refresh writes the keychain, so the same trace must see the bus.
    const control = await traceDaemon(pid, path.join(ctx.work, 'daemon-refresh.strace'), async () => {
      const r = await runBin(b.bin, ['refresh', 's1'], { home: b.home });
      if (r.code !== 0) throw new Error(`refresh failed: ${r.stderr}`);
    });
    out.control_refresh = { dbus_connects: control.busConnects, unix_connects: control.unixConnects, unix_socket_io: control.unixIo };
    // The same calls untraced, with the daemon's CPU time per call.
    const cpu0 = cpuMsOf(pid);
    const t1 = now();
    for (let i = 0; i < CFG.tokenCalls; i += 1) checkEcho(await c.request('tools/call', ECHO), 'endpoint');
    out.untraced_ms_per_call = (now() - t1) / CFG.tokenCalls;
    out.daemon_cpu_us_per_call = ((cpuMsOf(pid) - cpu0) * 1000) / CFG.tokenCalls;
    return out;
  } finally {
    await c.close();
  }
}

// ---- release binary size ---------------------------------------------------------------------

async function benchSize() {
  const st = await fs.stat(BIN);
  return { bin: BIN, bytes: st.size, mib: st.size / 2 ** 20, profile: releaseProfile() };
}

// ---- variants: the same binary built with other profiles ----------------------------------------

async function benchVariants(ctx, variants) {
  const { mcpUrl, token } = ctx;
  const out = {};
  for (const v of variants) out[v.label] = { bytes: (await fs.stat(v.bin)).size, cold: [], cold_no_service: [], bridge_added: [], endpoint_added: [] };
  // Cold starts, the variants in rotating order each round (one HTTP host each, as a user has).
  for (let round = 0; round < CFG.variantRounds; round += 1) {
    for (let k = 0; k < variants.length; k += 1) {
      const v = variants[(round + k) % variants.length];
      const o = out[v.label];
      await stopService(v);
      await sleep(50);
      o.cold_no_service.push(await coldStdio(v.bin, ['connect', 's1'], brokerEnv(v.home), `bridge ${v.label} (no service)`));
      await sleep(50);
      o.cold.push(await coldStdio(v.bin, ['connect', 's1'], brokerEnv(v.home), `bridge ${v.label}`));
    }
    log(`variants cold start round ${round + 1}/${CFG.variantRounds}`);
  }
  // Per-call latency: every variant's bridge and endpoint and direct open at once, one call
  // on each per round in rotating order; added = paired difference to that round's direct.
  const direct = new HttpMcp(mcpUrl, { authorization: `Bearer ${token}`, label: 'direct' });
  const paths = [{ name: 'direct', c: direct }];
  for (const v of variants) {
    paths.push({ name: `${v.label} bridge`, v, kind: 'bridge', c: new StdioPeer(v.bin, ['connect', 's1'], { env: brokerEnv(v.home), label: `bridge ${v.label}` }) });
    paths.push({ name: `${v.label} endpoint`, v, kind: 'endpoint', c: new HttpMcp(v.endpointUrl('s1'), { authorization: `Bearer ${v.keys[0]}`, label: `endpoint ${v.label}` }) });
  }
  try {
    for (const p of paths) await p.c.initialize();
    for (let i = 0; i < 50; i += 1) for (const p of paths) checkEcho(await p.c.request('tools/call', ECHO), p.name);
    for (let round = 0; round < CFG.variantCalls; round += 1) {
      const t = {};
      for (let k = 0; k < paths.length; k += 1) {
        const p = paths[(round + k) % paths.length];
        const t0 = process.hrtime.bigint();
        checkEcho(await p.c.request('tools/call', ECHO), p.name);
        t[p.name] = Number(process.hrtime.bigint() - t0) / 1000;
      }
      for (const p of paths.slice(1)) out[p.v.label][`${p.kind}_added`].push(t[p.name] - t.direct);
    }
    for (const v of variants) {
      out[v.label].bridge_rss_mib = memOf(paths.find((p) => p.v === v && p.kind === 'bridge').c.pid).rss_mib;
      out[v.label].daemon_rss_mib = memOf(await daemonPid(v)).rss_mib;
    }
  } finally {
    for (const p of paths) await p.c.close();
  }
  for (const v of variants) await addHosts(v, Math.max(...CONCURRENCY));
  // Throughput through each variant's HTTP endpoint, alternating with direct.
  const tput = {};
  const cpuShare = Object.fromEntries(variants.map((v) => [v.label, []]));
  const pids = Object.fromEntries(await Promise.all(variants.map(async (v) => [v.label, await daemonPid(v)])));
  for (const conc of [1, 64]) {
    const runs = { direct: [] };
    for (const v of variants) runs[v.label] = [];
    const names = ['direct', ...variants.map((v) => v.label)];
    for (let round = 0; round < CFG.tputRounds; round += 1) {
      const res = {};
      for (let k = 0; k < names.length; k += 1) {
        const n = names[(round + k) % names.length];
        const v = variants.find((x) => x.label === n);
        const watch = v ? { server: () => cpuMsOf(ctx.mcpPid), proxy: () => cpuMsOf(pids[n]) } : {};
        res[n] = v
          ? await load(v.endpointUrl('s1'), v.keys.slice(0, conc).map((key) => `Bearer ${key}`), watch)
          : await load(mcpUrl, Array(conc).fill(`Bearer ${token}`));
        if (v && conc === 64) cpuShare[n].push(res[n].cpu_ms.proxy / res[n].cpu_ms.server);
        runs[n].push(res[n].rps);
        await sleep(200);
      }
    }
    tput[conc] = runs;
  }
  const table = {};
  for (const [label, o] of Object.entries(out)) {
    table[label] = {
      mib: o.bytes / 2 ** 20,
      cold_ms: summary(o.cold),
      cold_no_service_ms: summary(o.cold_no_service),
      bridge_added_us: median(o.bridge_added),
      endpoint_added_us: median(o.endpoint_added),
      bridge_rss_mib: o.bridge_rss_mib,
      daemon_rss_mib: o.daemon_rss_mib,
      tput_1: median(tput[1][label]),
      tput_1_pct: 100 * median(tput[1][label].map((x, i) => x / tput[1].direct[i])),
      tput_64: median(tput[64][label]),
      tput_64_pct: 100 * median(tput[64][label].map((x, i) => x / tput[64].direct[i])),
      service_cpu_share_64: 100 * median(cpuShare[label].filter(Number.isFinite)),
    };
  }
  return { table, samples: out, throughput: tput, direct_rps: { 1: median(tput[1].direct), 64: median(tput[64].direct) } };
}

// ---- report ----------------------------------------------------------------------------------

const mark = (ok) => (ok ? '**met**' : '**MISSED**');
const range = (s, d = 1) => `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;

function report() {
  const m = results.machine;
  const S = results.sections;
  const L = [];
  const targets = [];
  L.push(`# mcp-broker benchmarks${QUICK ? ' (quick)' : ''}`, '');
  L.push(`- machine: ${m.nproc} × ${m.cpu}, ${m.memory_gib} GiB, ${m.kernel}; load average ${m.loadavg_start.join(' ')} at start, ${m.loadavg_end?.join(' ')} at end`);
  L.push(`- ${m.broker} at ${m.git} (binary built ${m.bin_built}; ${m.rustc}; release profile: ${m.cargo_profile_release}); Node ${m.node}; mcp-remote ${m.mcp_remote}; @modelcontextprotocol/sdk ${m.sdk}; oidc-provider ${m.oidc_provider}`);
  L.push(`- ${m.date}; ${QUICK ? 'quick mode' : 'full run'} in ${fmt(results.elapsed_s, 0)} s: ${JSON.stringify(results.config).replace(/"/g, '')}`, '');
  if (S.size) {
    L.push('## Release binary', '', `${fmt(S.size.mib, 2)} MiB (${S.size.bytes} bytes), profile: ${S.size.profile}`, '');
  }
  if (S.cold) {
    const c = S.cold;
    L.push('## 1. Cold start: spawn → initialize → tools/list answered (ms)', '');
    L.push('Median (min–max) over rounds; ratios and differences are medians of per-round pairs.', '');
    L.push('- **raw**: a JSON-RPC driver that is already running spawns the contender (or opens a fresh HTTP connection, for direct) and times spawn → `initialize` → `notifications/initialized` → `tools/list` answered; client start-up is excluded.');
    L.push('- **SDK**: the official TypeScript SDK `Client` (`StdioClientTransport`; `StreamableHTTPClientTransport` with the token for direct) in a fresh Node process, timed from spawning that process to the `tools/list` result; "after import" leaves out Node start-up and the SDK import, which differ by transport module.', '');
    L.push('| contender | raw | × faster than mcp-remote | − direct | SDK, spawn → result | × faster than mcp-remote | − direct | SDK after import | − direct |', '|---|---|---|---|---|---|---|---|---|');
    for (const n of Object.keys(c.raw)) {
      const r = c.raw[n];
      const s = c.sdk[n];
      const k = c.sdk_connect[n];
      L.push(`| ${n} | ${range(r)} | ${fmt(r.ratio_vs_mcp_remote, 1)} | ${fmt(r.minus_direct_ms, 1)} | ${range(s)} | ${fmt(s.ratio_vs_mcp_remote, 1)} | ${fmt(s.minus_direct_ms, 1)} | ${range(k)} | ${fmt(k.minus_direct_ms, 1)} |`);
    }
    L.push('');
    targets.push([`cold start, service running: ≥ 25× faster than mcp-remote (raw)`, `${fmt(c.raw.bridge.ratio_vs_mcp_remote, 1)}×`, c.raw.bridge.ratio_vs_mcp_remote >= 25]);
    targets.push([`cold start, service running: within 10 ms of direct (raw)`, `+${fmt(c.raw.bridge.minus_direct_ms, 1)} ms`, c.raw.bridge.minus_direct_ms <= 10]);
    targets.push([`cold start, service running: within 10 ms of direct (SDK client after import)`, `${c.sdk_connect.bridge.minus_direct_ms >= 0 ? '+' : ''}${fmt(c.sdk_connect.bridge.minus_direct_ms, 1)} ms`, c.sdk_connect.bridge.minus_direct_ms <= 10]);
    targets.push([`cold start, bridge starts the service: ≥ 15× faster than mcp-remote (raw)`, `${fmt(c.raw['bridge (no service)'].ratio_vs_mcp_remote, 1)}×`, c.raw['bridge (no service)'].ratio_vs_mcp_remote >= 15]);
  }
  if (S.latency) {
    const l = S.latency;
    L.push(`## 2. Latency of tools/call echo, ${results.config.latencyCalls} sequential calls per path, alternating (µs)`, '');
    L.push('| path | p50 | p99 | added over direct (median of paired differences, 95% CI) | p99 of differences |', '|---|---|---|---|---|');
    for (const n of Object.keys(l.per_path)) {
      const p = l.per_path[n];
      const a = l.added[n];
      L.push(`| ${n} | ${fmt(p.p50_us, 0)} | ${fmt(p.p99_us, 0)} | ${a ? `${fmt(a.median_us, 0)} (${fmt(a.ci95_us[0], 0)}–${fmt(a.ci95_us[1], 0)})` : '—'} | ${a ? fmt(a.p99_us, 0) : '—'} |`);
    }
    L.push('', `CPU per call: service ${fmt(l.cpu.daemon_us_per_proxied_call, 0)} µs (bridge and endpoint calls), bridge process ${fmt(l.cpu.bridge_us_per_call, 0)} µs, mcp-remote ${fmt(l.cpu.mcp_remote_us_per_call, 0)} µs.`, '');
    if (Object.keys(l.added).some((n) => n.startsWith('relay'))) L.push(RELAY_NOTE, '');
    const rem = l.added['mcp-remote'].median_us;
    for (const n of ['bridge', 'endpoint']) {
      const a = l.added[n].median_us;
      targets.push([`added latency p50 via ${n}: ≤ 100 µs`, `${fmt(a, 0)} µs`, a <= 100]);
      targets.push([`added latency p50 via ${n}: ≤ 1/20 of mcp-remote's (${fmt(rem, 0)} µs)`, `1/${fmt(rem / a, 1)}`, a <= rem / 20]);
    }
  }
  if (S.throughput) {
    const t = S.throughput;
    L.push('## 3. Throughput of tools/call echo through the HTTP endpoint (calls/s)', '');
    L.push(`% of direct: the median of the per-round ratios (${CFG.tputRounds} rounds), with a bootstrap 95% interval from 5 rounds on.`, '');
    L.push('| hosts | direct | endpoint | endpoint % of direct | relays: calls/s, % of direct | p50 latency direct / endpoint (ms) | service CPU per call (µs) |', '|---|---|---|---|---|---|---|');
    const ci = (c) => (c && Number.isFinite(c[0]) ? ` (${fmt(c[0], 1)}–${fmt(c[1], 1)})` : '');
    for (const conc of CONCURRENCY) {
      const r = t[conc];
      const relays = Object.entries(r.relays ?? {}).map(([n, x]) => `${n.replace(/^relay \((.*)\)$/, '$1')} ${fmt(x.median, 0)}: ${fmt(x.percent_of_direct, 1)}%${ci(x.percent_ci95)}`).join('; ') || '—';
      L.push(`| ${conc} | ${range(r.direct, 0)} | ${range(r.endpoint, 0)} | ${fmt(r.percent_of_direct, 1)}%${ci(r.percent_ci95)} | ${relays} | ${fmt(r.direct_p50_ms, 2)} / ${fmt(r.endpoint_p50_ms, 2)} | ${fmt(r.daemon_cpu_us_per_call, 0)} |`);
    }
    L.push('', RELAY_NOTE, '');
    L.push('CPU per call (µs, medians over rounds, measured window only) of the Node MCP server, the Node load driver and the proxy in between (the service, or socat and its per-connection children); "proxy ÷ server" is the proxy\'s CPU per call as a share of the server\'s in the same rounds, which holds still when the machine\'s speed does not:', '');
    L.push('| hosts | contender | server | driver | proxy | proxy ÷ server |', '|---|---|---|---|---|---|');
    for (const conc of CONCURRENCY) {
      for (const [n, c] of Object.entries(t[conc].cpu_us_per_call ?? {})) {
        const share = c.proxy != null && c.server ? `${fmt((100 * c.proxy) / c.server, 0)}%` : '—';
        L.push(`| ${conc} | ${n} | ${fmt(c.server, 0)} | ${fmt(c.driver, 0)} | ${c.proxy == null ? '—' : fmt(c.proxy, 0)} | ${share} |`);
      }
    }
    L.push('');
    if (t[64]) targets.push(['HTTP endpoint ≥ 90% of direct throughput at 64 hosts', `${fmt(t[64].percent_of_direct, 1)}%${ci(t[64].percent_ci95)}`, t[64].percent_of_direct >= 90]);
  }
  if (S.memory) {
    const mm = S.memory;
    L.push('## 4. Memory (VmRSS in MiB: total = anonymous + file-backed; peak VmHWM)', '');
    L.push('PSS counts pages shared with other processes (the binary, libc) pro rata: what one more process costs is closer to its anonymous part.', '');
    L.push('| process | RSS | anon + file | PSS | peak RSS | threads |', '|---|---|---|---|---|---|');
    const row = (what, x) => L.push(`| ${what} | ${fmt(x.rss_mib, 1)} | ${fmt(x.anon_mib, 1)} + ${fmt(x.file_mib, 1)} | ${fmt(x.pss_mib, 1)} | ${fmt(x.hwm_mib, 1)} | ${x.threads} |`);
    row('service, 1 server in use (a bridge and an HTTP host)', mm.service_1_server);
    row(`service, ${results.config.memServers} servers in use (${results.config.memServers} HTTP sessions + the bridge)`, mm.service_20_servers);
    if (S.throughput) row('service after the 64-host throughput run', S.throughput.daemon_after_load);
    row('one bridge (`mcp-broker connect`)', mm.bridge);
    row('one mcp-remote', mm.mcp_remote);
    L.push('');
    L.push(`Signing in to each of the ${results.config.memServers - 1} extra servers (client already registered at the AS, service running): ${range(mm.login_known_client_ms, 0)} ms wall time, browser stand-in included.`, '');
    targets.push([`service RSS ≤ 25 MB with ${results.config.memServers} servers`, `${fmt(mm.service_20_servers.rss_mib * 1.048576, 1)} MB`, mm.service_20_servers.rss_mib * 1.048576 <= 25]);
    targets.push(['bridge RSS ≤ 5 MB', `${fmt(mm.bridge.rss_mib * 1.048576, 1)} MB`, mm.bridge.rss_mib * 1.048576 <= 5]);
  }
  if (S.login) {
    const g = S.login;
    L.push(`## 5. Login machine time (\`mcp-broker login\`, fresh home, service running; ${g.trials.length} trials; ms)`, '');
    L.push('| part | median (min–max) |', '|---|---|');
    L.push(`| whole \`mcp-broker login\` | ${range(g.total_ms)} |`);
    L.push(`| browser stand-in until it reaches the loopback callback (excluded) | ${range(g.browser_ms)} |`);
    L.push(`| **machine time** (whole − browser) | **${range(g.machine_ms)}** |`);
    L.push(`| of which before the browser opens (CLI start, discovery, registration, PKCE) | ${range(g.before_browser_ms)} |`);
    L.push(`| of which after the callback (code redemption, keychain, answer) | ${range(g.after_callback_ms)} |`, '');
  }
  if (S.tokens) {
    const k = S.tokens;
    L.push(`## 6. Token cache: the service during ${k.calls ?? '?'} calls (strace -f on the daemon)`, '');
    if (k.error) L.push(`strace failed: ${k.error}`, '');
    else {
      L.push(`- during the calls: AF_UNIX connects ${k.unix_connects} (to the D-Bus session bus: ${k.dbus_connects}); reads/writes on Unix sockets ${k.unix_socket_io} → the keychain (Secret Service over D-Bus) is not touched on the hot path.`);
      L.push(`- positive control, the same trace around one \`mcp-broker refresh s1\` (which writes the keychain): AF_UNIX connects ${k.control_refresh.unix_connects} (to the bus: ${k.control_refresh.dbus_connects}), Unix-socket reads/writes ${k.control_refresh.unix_socket_io}.`);
      L.push(`- syscalls per call: ${fmt(k.total_syscalls_per_call, 1)} — ${Object.entries(k.syscalls_per_call).slice(0, 12).map(([n, v]) => `${n} ${v}`).join(', ')}`);
      L.push(`- file operations per call: ${Object.entries(k.file_ops_per_call).map(([n, v]) => `${n} ×${v}`).join(', ') || 'none'}`);
      L.push(`- latency per call: ${fmt(k.untraced_ms_per_call * 1000, 0)} µs untraced, ${fmt(k.traced_ms_per_call * 1000, 0)} µs traced; service CPU ${fmt(k.daemon_cpu_us_per_call, 0)} µs per call`, '');
      targets.push(['no keychain (D-Bus) traffic on the hot path', `${k.unix_connects} connects, ${k.unix_socket_io} Unix-socket I/O (control: ${k.control_refresh.dbus_connects} bus connects)`, k.unix_connects === 0 && k.unix_socket_io === 0]);
    }
  }
  if (S.variants) {
    L.push('## Variants: other builds compared in the same run, alternating', '');
    L.push(`Cold starts: raw driver, ${results.config.variantRounds} rounds, one HTTP host; added latency: ${results.config.variantCalls} rounds of one call on every variant's bridge and endpoint and on direct (rotating order), median of the paired differences to direct; throughput: calls/s through the endpoint and % of direct (direct: ${fmt(S.variants.direct_rps[1], 0)}/s with 1 host, ${fmt(S.variants.direct_rps[64], 0)}/s with 64), ${results.config.tputRounds} rounds.`, '');
    L.push('| variant | size MiB | cold start, service running (ms) | cold start, no service (ms) | bridge added µs | endpoint added µs | 1 host calls/s (% direct) | 64 hosts calls/s (% direct) | service CPU per call ÷ server CPU at 64 hosts | bridge RSS MiB | service RSS MiB |', '|---|---|---|---|---|---|---|---|---|---|---|');
    for (const [label, v] of Object.entries(S.variants.table)) {
      L.push(`| ${label} | ${fmt(v.mib, 2)} | ${range(v.cold_ms)} | ${range(v.cold_no_service_ms)} | ${fmt(v.bridge_added_us, 0)} | ${fmt(v.endpoint_added_us, 0)} | ${fmt(v.tput_1, 0)} (${fmt(v.tput_1_pct, 0)}%) | ${fmt(v.tput_64, 0)} (${fmt(v.tput_64_pct, 0)}%) | ${fmt(v.service_cpu_share_64, 0)}% | ${fmt(v.bridge_rss_mib, 1)} | ${fmt(v.daemon_rss_mib, 1)} |`);
    }
    L.push('');
  }
  if (targets.length) {
    L.push('## Targets', '', '| target | measured | |', '|---|---|---|');
    for (const [t, v, ok] of targets) L.push(`| ${t} | ${v} | ${mark(ok)} |`);
    L.push('');
  }
  if (notes.length) L.push('## Notes', '', ...notes.map((n) => `- ${n}`), '');
  results.targets = targets.map(([target, measured, met]) => ({ target, measured, met }));
  return L.join('\n');
}

// ---- main ------------------------------------------------------------------------------------

const STARTED = now();

async function main() {
  if (!existsSync(BIN)) throw new Error(`no broker binary at ${BIN}: run cargo build --release (benches/bench.sh does)`);
  await H.requireKeychain();
  results.machine = machineInfo();
  const work = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'mcpb-bench-')));
  const outDir = opt.out ? path.resolve(opt.out) : path.join(BENCH_DIR, 'results', new Date().toISOString().replace(/[:.]/g, '-'));
  await fs.mkdir(outDir, { recursive: true });
  const brokers = [];
  let exitCode = 0;
  try {
    log(`work dir ${work}; binary ${BIN}`);
    const as = await H.startPeer(null, 'as.mjs', ['--port', '0', '--login', 'auto', '--access-ttl', '86400', '--quiet'], { name: 'as' });
    const asInfo = { issuer: as.url };
    const mcp = await startMcp(as.url, 'mcp-s1');
    const mcpUrl = mcp.url;
    log(`AS ${as.url}; MCP server ${mcpUrl}`);
    // The home under test starts with one HTTP host; a second home has as many hosts as the
    // throughput test uses, to show what host keys cost a starting service.
    const b = await setupBroker('release', BIN, work, mcpUrl, 1);
    brokers.push(b);
    const b64 = await setupBroker('hosts64', BIN, work, mcpUrl, Math.max(...CONCURRENCY));
    brokers.push(b64);
    const ref = await H.referenceLogin(mcpUrl);
    const token = ref.tokens.access_token;
    const remoteEnv = { ...process.env, MCP_REMOTE_CONFIG_DIR: path.join(work, 'mcp-remote'), BROWSER: H.BROWSER_CURL };
    await signInMcpRemote(remoteEnv, mcpUrl);
    log('signed in: broker (s1), reference client (direct), mcp-remote');
    const ctx = { b, b64, as: asInfo, mcpUrl, mcpPid: mcp.proc.pid, token, remoteEnv, work };

    const run = async (name, fn) => {
      if (!SECTIONS.has(name)) return;
      log(`== ${name} (load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})`);
      const t0 = now();
      results.sections[name] = await fn();
      results.sections[name].elapsed_s = (now() - t0) / 1000;
    };
    await run('size', benchSize);
    await run('cold', () => benchCold(ctx));
    await stopService(b64);
    await addHosts(b, Math.max(...CONCURRENCY));
    if (await H.serviceRunning(b.home) === false) await runBin(b.bin, ['status'], { home: b.home });
    await run('latency', () => benchLatency(ctx));
    await run('throughput', () => benchThroughput(ctx));
    await run('tokens', () => benchTokens(ctx));
    await run('memory', () => benchMemory(ctx));
    await run('login', () => benchLogin(ctx));
    if (opt.variants) {
      const variants = [];
      // LABEL=PATH[@VAR=value...]: a binary, and environment for its processes.
      for (const spec of opt.variants.split(',')) {
        const [head, ...envs] = spec.split('@');
        const [label, bin] = head.split('=');
        HOME_ENV.set(path.join(work, `variant-${label}`), Object.fromEntries(envs.map((e) => e.split('='))));
        const v = await setupBroker(label, path.resolve(bin), work, mcpUrl, 1, `variant-${label}`);
        brokers.push(v);
        variants.push(v);
      }
      SECTIONS.add('variants');
      await run('variants', () => benchVariants(ctx, variants));
    }
  } catch (err) {
    exitCode = 1;
    log(`FAILED: ${err.stack ?? err}`);
    notes.push(`The run failed: ${String(err.message ?? err).split('\n')[0]}`);
  } finally {
    for (const b of brokers) {
      for (const pid of await H.pidsOfHome(b.home)) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      }
    }
    await sleep(500);
    // BENCH_KEEP_WORK=1 keeps the homes (service logs, audit) for a look after a failed run.
    if (!process.env.BENCH_KEEP_WORK) await fs.rm(work, { recursive: true, force: true }).catch(() => {});
  }
  results.machine.loadavg_end = os.loadavg().map((x) => +x.toFixed(2));
  results.elapsed_s = (now() - STARTED) / 1000;
  const md = report();
  await fs.writeFile(path.join(outDir, 'summary.md'), `${md}\n`);
  await fs.writeFile(path.join(outDir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  process.stdout.write(`${md}\n`);
  log(`results in ${outDir}`);
  process.exit(exitCode);
}

await main();
