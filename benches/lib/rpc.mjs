// Raw MCP clients for the benchmarks: JSON-RPC lines over a child's stdio, and Streamable HTTP
// over node:http with a keep-alive agent. No SDK, so that client-side work is small and the
// same for every contender; the official SDK client is used separately (sdk-cold.mjs).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';

export const PROTOCOL_VERSION = '2025-11-25';
export const CLIENT_INFO = { name: 'mcp-broker-bench', version: '1.0.0' };

export const initializeParams = () => ({ protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: CLIENT_INFO });

const REQUEST_TIMEOUT_MS = 60_000;

/** A process speaking newline-delimited JSON-RPC on stdin/stdout (a stdio MCP server/proxy). */
export class StdioPeer {
  constructor(command, args, { env = process.env, label = command } = {}) {
    this.label = label;
    this.nextId = 1;
    this.pending = new Map();
    this.stderrTail = '';
    this.proc = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.pid = this.proc.pid;
    this.exited = once(this.proc, 'exit').catch(() => {});
    let buf = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.onLine(line);
      }
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => {
      this.stderrTail = (this.stderrTail + d).slice(-8000);
    });
    this.proc.stdin.on('error', () => {});
    this.proc.once('exit', (code, signal) => {
      for (const [, p] of this.pending) p.reject(new Error(`${this.label} exited (${code ?? signal}) with a request pending\n--- stderr (tail) ---\n${this.stderrTail}`));
      this.pending.clear();
    });
    this.proc.once('error', (err) => {
      for (const [, p] of this.pending) p.reject(err);
      this.pending.clear();
    });
  }

  onLine(line) {
    if (!line.trim()) return;
    let msg;
    try { msg = JSON.parse(line); } catch { return; }
    if (msg.id === undefined || msg.id === null || msg.method !== undefined) return; // notifications, server requests
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    p.resolve(msg);
  }

  /** Send a request; resolves the response message (result or error). */
  request(method, params = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: no answer to ${method} within ${timeoutMs} ms\n--- stderr (tail) ---\n${this.stderrTail}`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  notify(method, params = {}) {
    this.proc.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method, params })}\n`);
  }

  /** initialize + notifications/initialized. */
  async initialize(timeoutMs) {
    const r = await this.request('initialize', initializeParams(), timeoutMs);
    if (r.error) throw new Error(`${this.label}: initialize failed: ${JSON.stringify(r.error)}`);
    this.notify('notifications/initialized');
    return r;
  }

  /** Close stdin and wait for the exit (SIGTERM, then SIGKILL, if it lingers). */
  async close(graceMs = 3000) {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.stdin.end();
    const t1 = setTimeout(() => this.proc.kill('SIGTERM'), graceMs);
    const t2 = setTimeout(() => this.proc.kill('SIGKILL'), graceMs + 2000);
    await this.exited;
    clearTimeout(t1);
    clearTimeout(t2);
  }
}

/** Parse the JSON-RPC messages of an SSE body (`data:` lines of each event). */
export function sseMessages(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
    if (!data) continue;
    try { out.push(JSON.parse(data)); } catch { /* not JSON */ }
  }
  return out;
}

/** One MCP session over Streamable HTTP, one keep-alive connection. */
export class HttpMcp {
  constructor(url, { authorization, label = url } = {}) {
    this.url = new URL(url);
    this.authorization = authorization;
    this.label = label;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.session = null;
    this.version = null;
    this.nextId = 1;
  }

  headers(extra = {}) {
    const h = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...extra };
    if (this.authorization) h.authorization = this.authorization;
    if (this.session) h['mcp-session-id'] = this.session;
    if (this.version) h['mcp-protocol-version'] = this.version;
    return h;
  }

  raw(method, body, extraHeaders = {}) {
    return new Promise((resolve, reject) => {
      const req = http.request(this.url, { method, agent: this.agent, headers: this.headers(extraHeaders), timeout: REQUEST_TIMEOUT_MS }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${this.label}: HTTP timeout`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** POST one JSON-RPC request; resolves its response message. */
  async request(method, params = {}) {
    const id = this.nextId++;
    const res = await this.raw('POST', JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    if (res.status !== 200) throw new Error(`${this.label}: ${method} -> HTTP ${res.status}: ${res.text.slice(0, 300)}`);
    const ct = String(res.headers['content-type'] ?? '');
    const msgs = ct.startsWith('text/event-stream') ? sseMessages(res.text) : [JSON.parse(res.text)];
    const msg = msgs.find((m) => m.id === id);
    if (!msg) throw new Error(`${this.label}: no response to ${method} in ${res.text.slice(0, 300)}`);
    if (method === 'initialize') {
      this.session = res.headers['mcp-session-id'] ?? null;
      this.version = msg.result?.protocolVersion ?? null;
    }
    return msg;
  }

  async notify(method, params = {}) {
    const res = await this.raw('POST', JSON.stringify({ jsonrpc: '2.0', method, params }));
    if (res.status !== 202 && res.status !== 200) throw new Error(`${this.label}: ${method} -> HTTP ${res.status}: ${res.text.slice(0, 300)}`);
  }

  async initialize() {
    const r = await this.request('initialize', initializeParams());
    if (r.error) throw new Error(`${this.label}: initialize failed: ${JSON.stringify(r.error)}`);
    await this.notify('notifications/initialized');
    return r;
  }

  async close() {
    if (this.session) await this.raw('DELETE', undefined).catch(() => {});
    this.session = null;
    this.agent.destroy();
  }
}

/** The echo call every latency and throughput measurement makes. */
export const ECHO = { name: 'echo', arguments: { text: 'hello' } };

/** Check that a tools/call answer is the echo's. */
export function checkEcho(msg, label) {
  const text = msg?.result?.content?.[0]?.text;
  if (text !== 'hello') throw new Error(`${label}: unexpected tools/call answer ${JSON.stringify(msg).slice(0, 300)}`);
}
