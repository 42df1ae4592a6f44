#!/usr/bin/env node
// One cold start with the official TypeScript SDK client, in a fresh Node process:
// connect (initialize + initialized) then tools/list, then exit.
//
//   BENCH_SDK_SPEC='{"mode":"stdio","command":"...","args":[...],"env":{...}}' node sdk-cold.mjs
//   BENCH_SDK_SPEC='{"mode":"http","url":"...","headers":{...}}' node sdk-cold.mjs
//
// Prints one line `RESULT {"import_ms","connect_list_ms","tools"}` as soon as tools/list is
// answered (the parent times spawn -> this line), then closes the client and exits.

const t0 = performance.now();
const spec = JSON.parse(process.env.BENCH_SDK_SPEC ?? '{}');
// The SDK installed for the end-to-end tests (tests/e2e/node_modules), by file path: this
// directory has no node_modules of its own.
const sdk = new URL('../../tests/e2e/node_modules/@modelcontextprotocol/sdk/dist/esm/client/', import.meta.url);
const { Client } = await import(new URL('index.js', sdk));
const transportModule = spec.mode === 'stdio'
  ? await import(new URL('stdio.js', sdk))
  : await import(new URL('streamableHttp.js', sdk));
const t1 = performance.now();

let transport;
if (spec.mode === 'stdio') {
  transport = new transportModule.StdioClientTransport({ command: spec.command, args: spec.args, env: spec.env, stderr: 'ignore' });
} else {
  transport = new transportModule.StreamableHTTPClientTransport(new URL(spec.url), { requestInit: { headers: spec.headers ?? {} } });
}
const client = new Client({ name: 'mcp-broker-bench-sdk', version: '1.0.0' });
await client.connect(transport, { timeout: 60_000 });
const { tools } = await client.listTools(undefined, { timeout: 60_000 });
const t2 = performance.now();
process.stdout.write(`RESULT ${JSON.stringify({ import_ms: t1 - t0, connect_list_ms: t2 - t1, tools: tools.map((t) => t.name) })}\n`);
await client.close().catch(() => {});
process.exit(0);
