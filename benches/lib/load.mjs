#!/usr/bin/env node
// Throughput load driver: N concurrent MCP hosts, each its own keep-alive connection and MCP
// session, each calling tools/call echo back to back for a fixed time.
//
//   BENCH_LOAD_SPEC='{"url","auths":[...one Authorization value per host...],"warmupMs","durationMs"}' node load.mjs
//
// Prints `MEASURE start` and `MEASURE end` around the measured window (the caller samples other
// processes' CPU there), then one line `RESULT {"hosts","calls","seconds","rps","errors","p50_ms","p99_ms","driver_cpu_ms"}`.

import { HttpMcp, ECHO, checkEcho } from './rpc.mjs';
import { quantile, sorted } from './stats.mjs';

const spec = JSON.parse(process.env.BENCH_LOAD_SPEC ?? '{}');
const hosts = spec.auths.length;
const clients = spec.auths.map((a, i) => new HttpMcp(spec.url, { authorization: a, label: `host${i}` }));
await Promise.all(clients.map((c) => c.initialize()));
for (const c of clients) checkEcho(await c.request('tools/call', ECHO), c.label);

let measuring = false;
let stop = false;
let calls = 0;
let errors = 0;
let firstError = null;
const lat = [];

async function worker(c) {
  while (!stop) {
    const t0 = performance.now();
    try {
      const msg = await c.request('tools/call', ECHO);
      if (msg.error) throw new Error(JSON.stringify(msg.error));
      if (measuring) {
        calls += 1;
        lat.push(performance.now() - t0);
      }
    } catch (err) {
      errors += 1;
      firstError ??= err.message;
      if (errors > 100) stop = true;
    }
  }
}

const running = clients.map(worker);
await new Promise((r) => setTimeout(r, spec.warmupMs));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
measuring = true;
process.stdout.write('MEASURE start\n');
await new Promise((r) => setTimeout(r, spec.durationMs));
measuring = false;
process.stdout.write('MEASURE end\n');
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
stop = true;
await Promise.all(running);
await Promise.all(clients.map((c) => c.close()));
const s = sorted(lat);
process.stdout.write(`RESULT ${JSON.stringify({
  hosts, calls, seconds, rps: calls / seconds, errors, first_error: firstError,
  p50_ms: quantile(s, 0.5), p99_ms: quantile(s, 0.99), driver_cpu_ms: (cpu.user + cpu.system) / 1000,
})}\n`);
process.exit(0);
