#!/usr/bin/env node
// A local MCP server over stdio (the official TypeScript SDK) that needs a key in its
// environment, as GitHub's or Slack's do: it exits at start, saying so on stderr, unless the
// variable named by `--env-name` holds a value whose SHA-256 is `--env-sha256` (the test
// names the key by its hash, so no key is on any command line).
//
//   node peers/stdio-server.mjs --env-name GITHUB_TOKEN --env-sha256 HEX
//
// Tools: echo.

import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const { values: args } = parseArgs({ options: { 'env-name': { type: 'string' }, 'env-sha256': { type: 'string' } } });
const value = process.env[args['env-name'] ?? ''] ?? '';
if (crypto.createHash('sha256').update(value).digest('hex') !== args['env-sha256']) {
  process.stderr.write(`stdio-server: ${args['env-name']} is not set to the expected key\n`);
  process.exit(3);
}

const mcp = new McpServer({ name: 'mcp-broker-e2e-stdio-server', version: '1.0.0' });
mcp.registerTool('echo', { description: 'Echo the text back', inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
await mcp.connect(new StdioServerTransport());
