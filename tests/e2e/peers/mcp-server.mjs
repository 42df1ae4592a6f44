#!/usr/bin/env node
// An OAuth-protected remote MCP server for end-to-end tests, built on the official TypeScript
// SDK (@modelcontextprotocol/sdk, Streamable HTTP) with JWT access-token checks by `jose`.
//
//   node peers/mcp-server.mjs --port 0 --issuer URL [--path /mcp] [--stateless|--sessions]
//                             [--prm-at inserted|root|both] [--no-rm-header] [--quiet]
//
// Prints exactly one line `READY http://127.0.0.1:PORT/mcp` on stdout once it listens
// (127.0.0.1 only). That URL is the canonical resource identifier (RFC 8707 / RFC 9728).
//
// - RFC 9728 Protected Resource Metadata at /.well-known/oauth-protected-resource/mcp
//   (path-inserted; `--prm-at root|both` also or instead serves it at the root).
// - Every request to the MCP endpoint without a valid token: 401 with
//   `WWW-Authenticate: Bearer resource_metadata="<prm url>", scope="tools.read"`
//   (plus error="invalid_token" when a token was presented but rejected).
// - A token is valid when it is a JWT (typ at+jwt) signed by a key of the AS's jwks_uri, with
//   `iss` exactly the configured issuer, `aud` containing this server's resource URL, unexpired.
// - Tools: echo (tools.read), whoami (any valid token), delete_record (records.delete; else HTTP
//   403 insufficient_scope), slow_stream (N notifications over the response SSE stream, one
//   every 100 ms, then a result; tools.read).
// - Modes: `--sessions` (default; 2025-11-25 style, Mcp-Session-Id from randomUUID, GET stream,
//   DELETE) or `--stateless` (sessionIdGenerator undefined, a fresh transport per request), or
//   `--legacy-sse`: only the HTTP+SSE transport of 2024-11-05 (the SDK's SSEServerTransport):
//   GET <path> opens the stream, whose `endpoint` event names <path>/messages?sessionId=…;
//   a POST to <path> is 405.
// - Test-only counters at GET /_test/stats, with `recent_requests` (the last 200 authenticated
//   requests: HTTP method, JSON-RPC methods, tool, and the mcp-* / origin / cookie headers seen).

import http from 'node:http';
import crypto, { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify, errors as joseErrors } from 'jose';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    issuer: { type: 'string' },
    path: { type: 'string', default: '/mcp' },
    stateless: { type: 'boolean', default: false },
    sessions: { type: 'boolean', default: false },
    'prm-at': { type: 'string', default: 'inserted' },
    'no-rm-header': { type: 'boolean', default: false },
    // Also list tools with `x-mcp-header` parameters (MCP 2026-07-28): `regional_echo`, whose
    // calls must carry a matching Mcp-Param-Region header (else 400, -32020 HeaderMismatch),
    // and `bad_header_tool`, whose mark is invalid (inside array items): clients drop it.
    'header-tools': { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    // Take an API key instead of OAuth tokens: `X-Api-Key: KEY` or `Authorization: Bearer KEY`
    // (compared in constant time); anything else is 401 without an OAuth challenge.
    'api-key': { type: 'string' },
    // Ask for no sign-in at all: every request is served without a credential, and there
    // is no protected resource metadata (its well-known URLs are 404).
    open: { type: 'boolean', default: false },
    // Refuse every token, valid or not (401 invalid_token): a grant that can never work here.
    'reject-tokens': { type: 'boolean', default: false },
    // Authorization servers listed before --issuer in the PRM (comma-separated), e.g. one
    // that is down: clients are to take the first that validates.
    'as-before': { type: 'string', default: '' },
    // The PRM's scopes_supported (comma-separated).
    'scopes-supported': { type: 'string', default: 'tools.read' },
    // Its 403 insufficient_scope answers name no scope (as servers on the Python SDK do).
    'unnamed-403': { type: 'boolean', default: false },
    // Speak only the HTTP+SSE transport of 2024-11-05.
    'legacy-sse': { type: 'boolean', default: false },
  },
  strict: true,
});

if (!args.issuer) {
  console.error('mcp-server.mjs: --issuer URL is required');
  process.exit(2);
}
if (args.stateless && args.sessions) {
  console.error('mcp-server.mjs: choose one of --stateless or --sessions');
  process.exit(2);
}
if (!['inserted', 'root', 'both'].includes(args['prm-at'])) {
  console.error('mcp-server.mjs: --prm-at must be inserted, root or both');
  process.exit(2);
}
const stateless = args.stateless;
const issuer = args.issuer;
let mcpPath = args.path.startsWith('/') ? args.path : `/${args.path}`;
mcpPath = mcpPath.length > 1 ? mcpPath.replace(/\/+$/, '') : mcpPath;

const log = (...a) => { if (!args.quiet) console.error('[mcp]', ...a); };

const stats = {
  requests: 0, // requests to the MCP endpoint
  unauthorized: 0, // 401 answers
  forbidden: 0, // 403 answers
  last_auth_header_present: null,
  last_auth_error: null,
  tool_calls: {},
  sessions_created: 0,
  prm_requests: 0,
  subjects: [],
  // The last 200 requests to the MCP endpoint, oldest first: HTTP method, the JSON-RPC
  // method(s) and tool name of a POST, and the request headers a proxy may or may not pass
  // (mcp-*, last-event-id, origin, cookie, x-mcp-broker-host). Never the Authorization value.
  recent_requests: [],
};
const RECENT_MAX = 200;
const RECORDED_HEADERS = /^(mcp-.*|last-event-id|origin|cookie|x-mcp-broker-host|accept|content-type)$/;

function recordRequest(req, body) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) if (RECORDED_HEADERS.test(k)) headers[k] = v;
  const msgs = Array.isArray(body) ? body : body && typeof body === 'object' ? [body] : [];
  stats.recent_requests.push({
    http_method: req.method,
    rpc_methods: msgs.map((m) => m?.method ?? null),
    tool: msgs.find((m) => m?.method === 'tools/call')?.params?.name ?? null,
    authorization_scheme: (req.headers.authorization ?? '').split(' ')[0] || null,
    headers,
  });
  if (stats.recent_requests.length > RECENT_MAX) stats.recent_requests.shift();
}

// ---- listen first: the resource URL needs the bound port ---------------------------------
const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    log('handler error', err);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'internal error' }, id: null }));
    } else {
      res.end();
    }
  });
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number.parseInt(args.port, 10), '127.0.0.1', resolve);
});
const origin = `http://127.0.0.1:${server.address().port}`;
const resource = `${origin}${mcpPath}`;
const prmInserted = `${origin}/.well-known/oauth-protected-resource${mcpPath === '/' ? '' : mcpPath}`;
const prmRoot = `${origin}/.well-known/oauth-protected-resource`;
const prmUrl = args['prm-at'] === 'root' ? prmRoot : prmInserted;
const prmPaths = new Set();
if (args['prm-at'] !== 'root') prmPaths.add(new URL(prmInserted).pathname);
if (args['prm-at'] !== 'inserted') prmPaths.add(new URL(prmRoot).pathname);

const prmDocument = {
  resource,
  authorization_servers: [...args['as-before'].split(',').filter(Boolean), issuer],
  scopes_supported: args['scopes-supported'].split(',').filter(Boolean),
  bearer_methods_supported: ['header'],
  resource_name: 'mcp-broker e2e test server',
};

// ---- token validation --------------------------------------------------------------------
let jwks; // created once the AS metadata was read

async function loadJwks() {
  if (jwks) return jwks;
  const u = new URL(issuer);
  const path = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
  const candidates = [
    `${u.origin}/.well-known/oauth-authorization-server${path}`,
    `${u.origin}/.well-known/openid-configuration${path}`,
    `${u.origin}${path}/.well-known/openid-configuration`,
  ];
  for (const url of candidates) {
    let res;
    try {
      res = await fetch(url, { headers: { accept: 'application/json' } });
    } catch (err) {
      log('AS metadata fetch failed', url, err.message);
      continue;
    }
    if (!res.ok) continue;
    const meta = await res.json();
    if (meta.issuer !== issuer) {
      log('AS metadata issuer mismatch', meta.issuer, '!=', issuer);
      continue;
    }
    if (!meta.jwks_uri) continue;
    jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
    return jwks;
  }
  throw new Error(`could not read authorization server metadata for ${issuer}`);
}

class AuthError extends Error {
  constructor(status, error, description, scope) {
    super(description);
    this.status = status;
    this.error = error;
    this.scope = scope;
  }
}

/** The API-key check of `--api-key`. */
function authenticateKey(req) {
  const given = req.headers['x-api-key'] ?? /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const a = Buffer.from(given);
  const b = Buffer.from(args['api-key']);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) throw new AuthError(401, undefined, 'no or a wrong API key');
  return { token: given, sub: 'api-key-user', clientId: 'api-key', scopes: ['tools.read'], payload: { exp: Math.floor(Date.now() / 1000) + 3600 } };
}

async function authenticate(req) {
  if (args.open) return { token: '', sub: 'anyone', clientId: 'open', scopes: ['tools.read', 'records.delete'], payload: { exp: Math.floor(Date.now() / 1000) + 3600 } };
  if (args['api-key'] !== undefined) return authenticateKey(req);
  const header = req.headers.authorization;
  stats.last_auth_header_present = header !== undefined;
  if (!header) throw new AuthError(401, undefined, 'no token');
  const m = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!m) throw new AuthError(401, 'invalid_request', 'malformed Authorization header');
  if (args['reject-tokens']) throw new AuthError(401, 'invalid_token', 'this server refuses every token');
  let payload;
  try {
    ({ payload } = await jwtVerify(m[1], await loadJwks(), {
      issuer,
      audience: resource,
      typ: 'at+jwt',
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (err) {
    if (err instanceof joseErrors.JOSEError) {
      throw new AuthError(401, 'invalid_token', `${err.code}: ${err.message}`);
    }
    throw err;
  }
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
  return { token: m[1], sub: payload.sub, clientId: payload.client_id, scopes, payload };
}

function challenge(res, err) {
  const parts = [];
  if (err.error) parts.push(`error="${err.error}"`);
  if (err.error && err.status === 401 && err.message) parts.push(`error_description="${err.message.replace(/["\\]/g, "'")}"`);
  if (!(err.status === 403 && args['unnamed-403'])) parts.push(`scope="${err.scope ?? 'tools.read'}"`);
  if (!args['no-rm-header']) parts.push(`resource_metadata="${prmUrl}"`);
  res.statusCode = err.status;
  res.setHeader('WWW-Authenticate', `Bearer ${parts.join(', ')}`);
  res.setHeader('content-type', 'application/json');
  if (err.status === 401) stats.unauthorized += 1;
  if (err.status === 403) stats.forbidden += 1;
  stats.last_auth_error = { status: err.status, error: err.error ?? null, message: err.message };
  res.end(JSON.stringify({ error: err.error ?? 'unauthorized', error_description: err.message }));
}

// Per-tool scopes, enforced at the HTTP layer so that a missing scope is a real HTTP 403
// with an insufficient_scope challenge (MCP authorization spec, step-up authorization).
const TOOL_SCOPES = {
  echo: 'tools.read',
  slow_stream: 'tools.read',
  delete_record: 'records.delete',
  whoami: null,
};

function requiredScopeFor(messages) {
  for (const msg of Array.isArray(messages) ? messages : [messages]) {
    if (msg?.method === 'tools/call') {
      const need = TOOL_SCOPES[msg.params?.name];
      if (need) return need;
    }
  }
  return null;
}

// ---- the MCP server ----------------------------------------------------------------------
function buildServer() {
  const mcp = new McpServer({ name: 'mcp-broker-e2e-server', version: '1.0.0' }, {
    capabilities: { logging: {} },
  });

  const count = (name) => { stats.tool_calls[name] = (stats.tool_calls[name] ?? 0) + 1; };

  mcp.registerTool('echo', {
    description: 'Returns the text it was given (needs tools.read).',
    inputSchema: { text: z.string() },
  }, async ({ text }) => {
    count('echo');
    return { content: [{ type: 'text', text }] };
  });

  mcp.registerTool('whoami', {
    description: 'Returns the token subject and scopes.',
    inputSchema: {},
  }, async (_args, extra) => {
    count('whoami');
    const info = extra.authInfo;
    const body = { sub: info?.extra?.sub ?? null, scopes: info?.scopes ?? [], client_id: info?.clientId ?? null };
    return { content: [{ type: 'text', text: JSON.stringify(body) }], structuredContent: body };
  });

  mcp.registerTool('delete_record', {
    description: 'Pretends to delete a record (needs records.delete).',
    inputSchema: { id: z.string() },
  }, async ({ id }) => {
    count('delete_record');
    return { content: [{ type: 'text', text: `deleted ${id}` }] };
  });

  if (args['header-tools']) {
    mcp.registerTool('regional_echo', {
      description: 'Returns region: text; region is mirrored in the Mcp-Param-Region header.',
      inputSchema: { region: z.string().meta({ 'x-mcp-header': 'Region' }), text: z.string() },
    }, async ({ region, text }) => {
      count('regional_echo');
      return { content: [{ type: 'text', text: `${region}: ${text}` }] };
    });
    mcp.registerTool('bad_header_tool', {
      description: 'Its x-mcp-header mark sits inside array items, which the spec forbids.',
      inputSchema: { tags: z.array(z.string().meta({ 'x-mcp-header': 'Tag' })) },
    }, async () => {
      count('bad_header_tool');
      return { content: [{ type: 'text', text: 'should not be callable' }] };
    });
  }

  mcp.registerTool('slow_stream', {
    description: 'Sends `count` notifications over the response stream, one every interval_ms, then returns.',
    inputSchema: { count: z.number().int().min(0).max(1000).default(5), interval_ms: z.number().int().min(0).max(10000).default(100) },
  }, async ({ count: n, interval_ms: interval }, extra) => {
    count('slow_stream');
    const progressToken = extra._meta?.progressToken;
    for (let i = 1; i <= n; i += 1) {
      await new Promise((r) => setTimeout(r, interval));
      if (progressToken !== undefined) {
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken, progress: i, total: n, message: `step ${i}/${n}` },
        });
      } else {
        await extra.sendNotification({
          method: 'notifications/message',
          params: { level: 'info', logger: 'slow_stream', data: `step ${i}/${n}` },
        });
      }
    }
    return { content: [{ type: 'text', text: `streamed ${n}` }] };
  });

  return mcp;
}

// ---- HTTP --------------------------------------------------------------------------------
const transports = new Map(); // session id -> transport (session mode)

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 4 * 1024 * 1024) throw new AuthError(413, 'too_large', 'body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return Symbol.for('invalid-json');
  }
}

/** A Mcp-Param-* / Mcp-Name value, decoded from the `=?base64?…?=` sentinel when it is one. */
function decodeHeader(v) {
  const m = /^=\?base64\?(.*)\?=$/.exec(v ?? '');
  return m ? Buffer.from(m[1], 'base64').toString('utf8') : v;
}

/** Server validation of a `regional_echo` call: its Mcp-Param-Region header matches the body. */
function headerMismatch(req, body) {
  if (!args['header-tools'] || body?.method !== 'tools/call' || body.params?.name !== 'regional_echo') return null;
  const want = body.params?.arguments?.region;
  const got = decodeHeader(req.headers['mcp-param-region']);
  if (want === undefined || want === null || got === want) return null;
  return `Header mismatch: Mcp-Param-Region ${JSON.stringify(got ?? null)} does not match the body's region ${JSON.stringify(want)}`;
}

function jsonRpcError(res, status, code, message) {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
}

async function handle(req, res) {
  const url = new URL(req.url, origin);

  if (url.pathname === '/_test/stats' && req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ...stats, sessions_open: transports.size, legacy_sessions_open: legacyTransports.size, resource, prm_url: prmUrl }));
    return;
  }

  if (prmPaths.has(url.pathname) && !args.open) {
    stats.prm_requests += 1;
    if (req.method !== 'GET') {
      res.statusCode = 405;
      res.setHeader('allow', 'GET');
      res.end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.setHeader('access-control-allow-origin', '*');
    res.end(JSON.stringify(prmDocument));
    return;
  }

  const legacyMessages = args['legacy-sse'] && url.pathname === `${mcpPath}/messages`;
  if (url.pathname !== mcpPath && !legacyMessages) {
    res.statusCode = 404;
    res.setHeader('content-type', 'text/plain');
    res.end('not found');
    return;
  }

  stats.requests += 1;

  let auth;
  try {
    auth = await authenticate(req);
  } catch (err) {
    if (err instanceof AuthError) return challenge(res, err);
    throw err;
  }
  if (!stats.subjects.includes(auth.sub)) stats.subjects.push(auth.sub);
  req.auth = {
    token: auth.token,
    clientId: auth.clientId ?? '',
    scopes: auth.scopes,
    expiresAt: auth.payload.exp,
    resource: new URL(resource),
    extra: { sub: auth.sub },
  };

  let body;
  if (req.method !== 'POST') recordRequest(req, undefined);
  if (req.method === 'POST') {
    body = await readJson(req);
    recordRequest(req, body === Symbol.for('invalid-json') ? undefined : body);
    if (body === Symbol.for('invalid-json')) return jsonRpcError(res, 400, -32700, 'Parse error');
    const mismatch = headerMismatch(req, body);
    if (mismatch) return jsonRpcError(res, 400, -32020, mismatch);
    const need = requiredScopeFor(body);
    if (need && !auth.scopes.includes(need)) {
      return challenge(res, new AuthError(403, 'insufficient_scope', `this tool needs scope ${need}`, need));
    }
  }

  if (args['legacy-sse']) return handleLegacy(req, res, url, body);

  if (stateless) {
    if (req.method !== 'POST') {
      res.statusCode = 405;
      res.setHeader('allow', 'POST');
      res.end();
      return;
    }
    const mcp = buildServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => { transport.close(); mcp.close(); });
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body);
    return;
  }

  // session mode (2025-11-25)
  const sid = req.headers['mcp-session-id'];
  if (sid) {
    const transport = transports.get(sid);
    if (!transport) return jsonRpcError(res, 404, -32001, 'Session not found');
    if (transport.ownerSub !== auth.sub) return jsonRpcError(res, 404, -32001, 'Session not found');
    await transport.handleRequest(req, res, body);
    return;
  }
  if (req.method === 'POST' && body && !Array.isArray(body) && isInitializeRequest(body)) {
    const mcp = buildServer();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        transports.set(id, transport);
        stats.sessions_created += 1;
      },
    });
    transport.ownerSub = auth.sub;
    transport.onclose = () => {
      if (transport.sessionId) transports.delete(transport.sessionId);
    };
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body);
    return;
  }
  return jsonRpcError(res, 400, -32000, 'Bad Request: no valid session ID provided');
}

/** 2024-11-05 HTTP+SSE: GET <path> is the stream, POST <path>/messages?sessionId= a message. */
async function handleLegacy(req, res, url, body) {
  if (url.pathname === mcpPath) {
    if (req.method !== 'GET') {
      res.statusCode = 405;
      res.setHeader('allow', 'GET');
      res.end();
      return;
    }
    const transport = new SSEServerTransport(`${mcpPath}/messages`, res);
    legacyTransports.set(transport.sessionId, transport);
    stats.sessions_created += 1;
    stats.legacy_streams_opened = (stats.legacy_streams_opened ?? 0) + 1;
    res.on('close', () => legacyTransports.delete(transport.sessionId));
    await buildServer().connect(transport);
    return;
  }
  const transport = legacyTransports.get(url.searchParams.get('sessionId'));
  if (req.method !== 'POST' || !transport) return jsonRpcError(res, 404, -32001, 'Session not found');
  await transport.handlePostMessage(req, res, body);
}
const legacyTransports = new Map(); // session id -> SSEServerTransport (--legacy-sse)

process.stdout.write(`READY ${resource}\n`);
log(`resource ${resource} issuer ${issuer} mode=${stateless ? 'stateless' : 'sessions'} prm=${prmUrl}`);

const shutdown = async () => {
  for (const t of transports.values()) await t.close().catch(() => {});
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
