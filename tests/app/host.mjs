#!/usr/bin/env node
// A small MCP host for the tray app's end-to-end test: the official TypeScript SDK client
// driving the stdio bridge `mcp-broker connect SERVER --host HOST`.
//
//   node tests/app/host.mjs BROKER_BIN SERVER HOST
//
// Reads one JSON command a line on stdin and answers one JSON line on stdout each:
//   {"op":"connect"}                      -> initialize (waits for the user's approval)
//   {"op":"list"}                         -> {"ok":true,"tools":["echo",...]}
//   {"op":"call","name":"echo","arguments":{...}} -> {"ok":true,"result":...}
// Errors answer {"ok":false,"error":"..."}. The SDK comes from tests/e2e/node_modules.
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'e2e', 'package.json'));
const { Client } = await import(pathToFileURL(require.resolve('@modelcontextprotocol/sdk/client/index.js')));
const { StdioClientTransport } = await import(pathToFileURL(require.resolve('@modelcontextprotocol/sdk/client/stdio.js')));

const [bin, server, host] = process.argv.slice(2);
if (!bin || !server || !host) {
  console.error('usage: host.mjs BROKER_BIN SERVER HOST');
  process.exit(2);
}

const client = new Client({ name: `e2e-${host}`, version: '0.0.0' });
const transport = new StdioClientTransport({
  command: bin,
  args: ['connect', server, '--host', host],
  env: process.env,
  stderr: 'inherit',
});
const opts = { timeout: 150_000 };

const out = (v) => process.stdout.write(`${JSON.stringify(v)}\n`);
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  try {
    if (cmd.op === 'connect') {
      await client.connect(transport, opts);
      out({ ok: true });
    } else if (cmd.op === 'list') {
      const r = await client.listTools({}, opts);
      out({ ok: true, tools: r.tools.map((t) => t.name) });
    } else if (cmd.op === 'call') {
      const r = await client.callTool({ name: cmd.name, arguments: cmd.arguments || {} }, undefined, opts);
      out({ ok: !r.isError, result: r });
    } else {
      out({ ok: false, error: `unknown op ${cmd.op}` });
    }
  } catch (e) {
    out({ ok: false, error: String(e && e.message ? e.message : e) });
  }
}
await client.close().catch(() => {});
