// Load (issue 6, docs/SECURITY.md): 50 HTTP hosts × 200 tools/call each through the loopback
// endpoint, with access tokens that expire every few seconds during the run.
//
//   scripts/with-keychain.sh node --test --test-concurrency=1 tests/e2e/load.test.mjs
//
// Checks: every call is answered correctly; the upstream never sees an expired token; exactly
// one refresh per expiry (the AS's refresh grants equal the number of token lifetimes that
// ended during the run, and no two access tokens were minted within one lifetime); the
// service's resident memory (VmRSS, sampled every 250 ms) stays flat. Reports the numbers.
// Bounded: the test fails if it takes longer than 3 minutes.
//
// Env: LOAD_HOSTS (default 50), LOAD_CALLS (per host, default 200), LOAD_ACCESS_TTL (s, default 6).

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import {
  startAs, startMcpServer, makeHome, makeBrowserLog, runBroker, describeRun, requireKeychain, keychainService,
  keychainLookup, jwtPayload, httpClient, teardownService, daemonPids, asStats, mcpStats, controlRequest
} from './lib/harness.mjs';

const HOSTS = Number(process.env.LOAD_HOSTS ?? 50);
const CALLS = Number(process.env.LOAD_CALLS ?? 200);
const TTL = Number(process.env.LOAD_ACCESS_TTL ?? 6);
const LIMIT_MS = 180_000;

let keychainReady;
before(async () => {
  keychainReady = requireKeychain().then(() => null, (err) => err);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function rssKiB(pid) {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

test(`load: ${HOSTS} HTTP hosts × ${CALLS} calls with ${TTL} s access tokens: every call answered, one refresh per expiry, flat memory`, { timeout: LIMIT_MS + 30_000 }, async (t) => {
  const err = await keychainReady;
  if (err) throw err;
  const testStarted = Date.now();
  const as = await startAs(t, { accessTtl: TTL });
  const mcp = await startMcpServer(t, { issuer: as.issuer });
  const home = await makeHome(null);
  const browserLog = await makeBrowserLog(t);
  t.after(async () => {
    await teardownService(home);
    await new Promise((r) => execFile('secret-tool', ['clear', 'service', keychainService(home)], () => r()));
    await fs.rm(home, { recursive: true, force: true });
  });

  const lg = await runBroker(['login', mcp.url, '--name', 'alpha'], { home, browserLog });
  assert.equal(lg.code, 0, describeRun(lg));
  const [pid] = await daemonPids(home);
  assert.ok(pid, 'the service runs');

  const hosts = [];
  for (let i = 0; i < HOSTS; i += 1) {
    const r = await controlRequest(home, 'POST', '/v1/hosts', { name: `load-${i}` });
    assert.equal(r.status, 200, r.body);
    hosts.push(JSON.parse(r.body));
  }
  const clients = await Promise.all(hosts.map((h, i) => httpClient(t, { endpoint: h.endpoint, server: 'alpha', key: h.key, clientName: `load-${i}` })));
  // Warm-up: one call each (sessions opened upstream, connections pooled).
  await Promise.all(clients.map((c, i) => c.client.callTool({ name: 'echo', arguments: { text: `warm ${i}` } })));

  const asBefore = await asStats(as);
  const mcpBefore = await mcpStats(mcp);
  const tokens = new Map(); // access token -> {iat, exp, seenAt}
  const rss = [];
  let running = true;
  const watchers = [
    (async () => {
      while (running) {
        const kc = await keychainLookup(home, 'alpha').catch(() => null);
        if (kc?.access_token && !tokens.has(kc.access_token)) {
          const { iat, exp } = jwtPayload(kc.access_token);
          tokens.set(kc.access_token, { iat, exp, seenAt: Date.now() });
        }
        await sleep(200);
      }
    })(),
    (async () => {
      while (running) {
        rss.push({ at: Date.now(), kib: await rssKiB(pid) });
        await sleep(250);
      }
    })(),
  ];

  const started = Date.now();
  const latencies = [];
  const failures = [];
  let done = 0;
  try {
    await Promise.all(clients.map(async (c, i) => {
      for (let n = 0; n < CALLS; n += 1) {
        const text = `h${i} c${n}`;
        const t0 = performance.now();
        try {
          const r = await c.client.callTool({ name: 'echo', arguments: { text } }, undefined, { timeout: 60_000 });
          const got = (r.content ?? []).map((x) => x.text).join('');
          if (got !== text) failures.push(`${text}: ${JSON.stringify(r)}`);
        } catch (e) {
          failures.push(`${text}: ${e.message}`);
        }
        latencies.push(performance.now() - t0);
        done += 1;
        if (Date.now() - testStarted > LIMIT_MS) throw new Error(`over the time bound after ${done} calls`);
      }
    }));
  } finally {
    running = false;
    await Promise.all(watchers);
  }
  const took = Date.now() - started;
  const kc = await keychainLookup(home, 'alpha');
  if (kc?.access_token && !tokens.has(kc.access_token)) tokens.set(kc.access_token, { ...jwtPayload(kc.access_token), seenAt: Date.now() });

  const asAfter = await asStats(as);
  const mcpAfter = await mcpStats(mcp);
  const refreshes = asAfter.refresh_grants - asBefore.refresh_grants;
  const minted = [...tokens.values()].sort((a, b) => a.iat - b.iat);
  const gaps = minted.slice(1).map((x, i) => x.iat - minted[i].iat);
  // A token is due a third of its lifetime before it ends (tokens::refresh_due): with calls
  // running all the time, each lifetime that ends during the run causes one refresh.
  const dueAfter = Math.ceil((TTL * 2) / 3);
  const expected = Math.floor(took / 1000 / dueAfter);

  const warm = rss.filter((s) => s.at >= started + took * 0.2);
  const third = Math.max(1, Math.floor(warm.length / 3));
  const early = median(warm.slice(0, third).map((s) => s.kib));
  const late = median(warm.slice(-third).map((s) => s.kib));
  const peak = Math.max(...rss.map((s) => s.kib));
  const report = {
    calls: done,
    seconds: +(took / 1000).toFixed(1),
    calls_per_s: Math.round(done / (took / 1000)),
    latency_ms: { p50: +pct(latencies, 0.5).toFixed(1), p99: +pct(latencies, 0.99).toFixed(1), max: +Math.max(...latencies).toFixed(1) },
    refresh_grants: refreshes,
    access_tokens_seen: minted.length,
    iat_gaps_s: gaps,
    expected_refreshes_about: expected,
    upstream_401: mcpAfter.unauthorized - mcpBefore.unauthorized,
    rss_mib: { start: +(rss[0].kib / 1024).toFixed(1), after_warmup: +(early / 1024).toFixed(1), end: +(late / 1024).toFixed(1), peak: +(peak / 1024).toFixed(1), samples: rss.length },
  };
  t.diagnostic(JSON.stringify(report));

  assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${done} calls failed`);
  assert.equal(done, HOSTS * CALLS, 'every call was made');
  assert.equal((mcpAfter.tool_calls.echo ?? 0) - (mcpBefore.tool_calls.echo ?? 0), HOSTS * CALLS, 'every call reached the server once');
  assert.equal(report.upstream_401, 0, 'no expired token was ever sent upstream');
  assert.deepEqual(asAfter.grant_errors, [], 'no refresh failed or was replayed');
  assert.ok(refreshes >= 1, `tokens expired during the run (${took} ms, ${TTL} s tokens): ${refreshes} refreshes`);
  assert.equal(minted.length, refreshes + 1, `every refresh grant minted one access token the keychain held (${minted.length} tokens seen, ${refreshes} refreshes)`);
  for (const g of gaps) {
    assert.ok(g >= dueAfter - 1, `two refreshes within one token lifetime (tokens minted ${g} s apart; due after ${dueAfter} s): ${JSON.stringify(gaps)}`);
    assert.ok(g <= TTL, `a token outlived its lifetime before being replaced (${g} s > ${TTL} s): ${JSON.stringify(gaps)}`);
  }
  // Between one refresh per lifetime (none later) and one per due time (none sooner): where
  // in that range depends on how fast the machine answers, not on the broker.
  const fewest = Math.floor(took / 1000 / TTL) - 1;
  const most = Math.ceil(took / 1000 / (dueAfter - 1)) + 1;
  assert.ok(refreshes >= fewest && refreshes <= most, `one refresh per ${dueAfter}-${TTL} s of the ${took} ms run: ${refreshes}, not in ${fewest}..${most} (about ${expected})`);
  assert.ok(late <= early * 1.2 + 8 * 1024, `resident memory stays flat after warm-up: ${report.rss_mib.after_warmup} MiB -> ${report.rss_mib.end} MiB`);
  assert.ok(Date.now() - testStarted < LIMIT_MS, `the test took ${Date.now() - testStarted} ms (bound ${LIMIT_MS} ms)`);
});
