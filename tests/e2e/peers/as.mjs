#!/usr/bin/env node
// A real OAuth 2.1 / OIDC authorization server for end-to-end tests: panva's oidc-provider,
// configured the way an MCP authorization server is expected to be.
//
//   node peers/as.mjs --port 0 [--issuer-path /tenant] [--access-ttl 3600]
//                     [--refresh-ttl 1209600] [--login auto|form] [--cimd]
//                     [--device [--device-interval S] [--device-slow-down N] [--device-ttl S]]
//
// Prints exactly one line `READY <issuer>` on stdout once it listens (127.0.0.1 only).
//
// What it does (all oidc-provider's own code paths, nothing mocked):
// - authorization code + PKCE, required, S256 only; RFC 9207 `iss` in authorization responses;
// - RFC 7591 dynamic client registration, open (no initial access token). Native clients may
//   register `http://127.0.0.1/callback` (or any port) and use any loopback port at runtime
//   (RFC 8252 section 7.3, built into oidc-provider for application_type=native);
// - RFC 8707 resource indicators: the access token is a JWT (RFC 9068, typ at+jwt) whose `aud`
//   is the requested resource, scopes limited to what the resource server offers;
// - refresh tokens issued to every client allowed the refresh_token grant, rotated on every
//   use (oidc-provider detects reuse of a rotated token and revokes the whole grant);
// - RFC 7009 revocation (revoking a refresh token revokes its grant), introspection;
// - optional: the experimental Client ID Metadata Document feature (--cimd);
// - optional: the RFC 8628 device authorization grant (--device), oidc-provider's own
//   deviceFlow with its user code pages at /device. Test hooks: --device-interval adds
//   `interval` to the device authorization response (oidc-provider sends none, so clients
//   wait 5 s), --device-slow-down N answers the first N polls with `slow_down`, --device-ttl
//   sets how long a code lives.
//
// Login:
// - `--login auto` (default): a test hook. The interaction endpoint signs in "alice" and
//   grants every requested scope and resource through oidc-provider's public interaction API
//   (interactionDetails / interactionFinished / Grant), then redirects back. A curl-based
//   browser stand-in completes it.
// - `--login form`: a real HTML form (#username, #password, #submit); any password for
//   "alice". Consent is then granted automatically. Used with headless Chromium.
//
// Test-only counters at GET /_test/stats (outside the issuer path), see `stats` below.

import http from 'node:http';
import crypto from 'node:crypto';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'issuer-path': { type: 'string', default: '' },
    'access-ttl': { type: 'string', default: '3600' },
    'refresh-ttl': { type: 'string', default: String(14 * 24 * 3600) },
    login: { type: 'string', default: 'auto' },
    cimd: { type: 'boolean', default: false },
    device: { type: 'boolean', default: false },
    'device-interval': { type: 'string', default: '' },
    'device-slow-down': { type: 'string', default: '0' },
    'device-ttl': { type: 'string', default: '600' },
    quiet: { type: 'boolean', default: false },
    // Behave as a real provider does where it departs from the textbook (repeatable):
    // entra-resource, no-pkce-metadata, audience-param, exact-redirect=URL (see applyQuirks),
    // registration-token=T (dynamic registration only with initial access token T).
    quirk: { type: 'string', multiple: true, default: [] },
  },
  strict: true,
});
const quirks = new Map(args.quirk.map((q) => { const i = q.indexOf('='); return i < 0 ? [q, true] : [q.slice(0, i), q.slice(i + 1)]; }));
// The audience an `entra-resource` AS gives tokens requested without `resource` (Entra ID
// derives it from the scope); set by the test once the MCP server runs (POST /_test/config).
let defaultResource;

if (!['auto', 'form'].includes(args.login)) {
  console.error(`as.mjs: --login must be auto or form, not ${args.login}`);
  process.exit(2);
}
let issuerPath = args['issuer-path'];
if (issuerPath) {
  if (!issuerPath.startsWith('/')) issuerPath = `/${issuerPath}`;
  issuerPath = issuerPath.replace(/\/+$/, '');
}
const accessTtl = Number.parseInt(args['access-ttl'], 10);
const refreshTtl = Number.parseInt(args['refresh-ttl'], 10);
if (!(accessTtl > 0) || !(refreshTtl > 0)) {
  console.error('as.mjs: --access-ttl and --refresh-ttl must be positive integers (seconds)');
  process.exit(2);
}

const ACCOUNT = 'alice';
const RESOURCE_SCOPES = 'tools.read records.delete';

const log = (...a) => { if (!args.quiet) console.error('[as]', ...a); };

const stats = {
  registrations: 0,
  client_ids: [],
  registration_requests: [], // the metadata each client sent (no secrets: public clients)
  authorizations: 0, // successful authorization responses (code issued)
  authorization_errors: [],
  last_authorization: null, // {client_id, redirect_uri, scope, resource, code_challenge_method, prompt}
  interactions: 0,
  logins: 0,
  code_grants: 0,
  refresh_grants: 0,
  grant_errors: [], // {grant_type, error, error_description}
  last_token_request: null, // {grant_type, client_id, resource, scope}
  revocations: 0, // successful (200) responses of the revocation endpoint
  grants_revoked: 0, // grants oidc-provider revoked (revocation of a refresh token, reuse detection)
  discovery_requests: [], // paths of metadata requests, in order
  quirk_refusals: 0, // requests a --quirk answered instead of oidc-provider
  device_authorizations: [], // {client_id, scope, resource} of each device authorization request
  device_polls: [], // {at (ms since start), answer} of each device_code token request
};
const started = Date.now();
let slowDownsLeft = Number.parseInt(args['device-slow-down'], 10) || 0;

// ---- keys --------------------------------------------------------------------------------
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = await exportJWK(privateKey);
jwk.kid = crypto.randomUUID();
jwk.alg = 'RS256';
jwk.use = 'sig';

// ---- server first (the issuer needs the bound port) --------------------------------------
let provider;
const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    log('handler error', err);
    if (!res.headersSent) {
      res.statusCode = 500;
      res.setHeader('content-type', 'text/plain');
    }
    res.end(`internal error: ${err.message}`);
  });
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number.parseInt(args.port, 10), '127.0.0.1', resolve);
});
const { port } = server.address();
const origin = `http://127.0.0.1:${port}`;
const issuer = `${origin}${issuerPath}`;

// ---- provider ----------------------------------------------------------------------------
const configuration = {
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, name: sub === ACCOUNT ? 'Alice Example' : sub }),
  }),
  claims: { openid: ['sub'], profile: ['name'] },
  // Static scopes also appear in scopes_supported. The resource-server scopes are listed too
  // so that discovery advertises them; tokens for a resource carry only the scopes of that
  // resource server (getResourceServerInfo below).
  scopes: ['openid', 'offline_access', 'profile', 'tools.read', 'records.delete'],
  responseTypes: ['code'],
  pkce: { required: () => true },
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 120,
    RefreshToken: refreshTtl,
    Grant: refreshTtl,
    Session: 24 * 3600,
    Interaction: 600,
    DeviceCode: Number.parseInt(args['device-ttl'], 10) || 600,
  },
  rotateRefreshToken: () => true,
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: {
    url: async (_ctx, interaction) => `${issuerPath}/interaction/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    registration: {
      enabled: true,
      // --quirk registration-token=T (Keycloak's policy): registration needs T as a bearer token.
      initialAccessToken: quirks.get('registration-token') ?? false,
      issueRegistrationAccessToken: true,
    },
    registrationManagement: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? defaultResource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const url = URL.parse(resourceIndicator);
        if (!url || !['http:', 'https:'].includes(url.protocol)) {
          throw new Provider.errors.InvalidTarget('resource must be an http(s) URL');
        }
        return {
          scope: RESOURCE_SCOPES,
          audience: resourceIndicator,
          accessTokenTTL: accessTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
    ...(args.cimd
      ? { clientIdMetadataDocument: { enabled: true, ack: 'draft-02' } }
      : {}),
    ...(args.device ? { deviceFlow: { enabled: true } } : {}),
  },
};

provider = new Provider(issuer, configuration);
provider.proxy = false;

provider.on('registration_create.success', (ctx, client) => {
  stats.registrations += 1;
  stats.client_ids.push(client.clientId);
  const body = ctx.oidc?.body ?? ctx.request?.body ?? {};
  stats.registration_requests.push({
    client_id: client.clientId,
    application_type: body.application_type,
    redirect_uris: body.redirect_uris,
    grant_types: body.grant_types,
    response_types: body.response_types,
    token_endpoint_auth_method: body.token_endpoint_auth_method,
    client_name: body.client_name,
    scope: body.scope,
  });
  log('registered client', client.clientId, JSON.stringify(body.redirect_uris));
});
provider.on('registration_create.error', (_ctx, err) => log('registration error', err.error, err.error_description));
provider.on('device_authorization.success', (ctx, body) => {
  const p = ctx.oidc.params;
  stats.device_authorizations.push({ client_id: ctx.oidc.client?.clientId, scope: p.scope, resource: p.resource });
  if (args['device-interval']) body.interval = Number.parseInt(args['device-interval'], 10);
});
provider.on('device_authorization.error', (_ctx, err) => log('device authorization error', err.error, err.error_description));
provider.on('authorization.success', (ctx) => {
  stats.authorizations += 1;
});
provider.on('authorization.accepted', (ctx) => {
  const p = ctx.oidc.params;
  stats.last_authorization = {
    client_id: p.client_id,
    redirect_uri: p.redirect_uri,
    scope: p.scope,
    resource: p.resource,
    code_challenge_method: p.code_challenge_method,
    prompt: p.prompt,
    state_present: p.state !== undefined,
  };
});
provider.on('authorization.error', (_ctx, err) => {
  stats.authorization_errors.push({ error: err.error, error_description: err.error_description });
  log('authorization error', err.error, err.error_description);
});
provider.on('interaction.started', () => { stats.interactions += 1; });
provider.on('grant.success', (ctx) => {
  const gt = ctx.oidc.params.grant_type;
  if (gt === DEVICE_GRANT) stats.device_polls.push({ at: Date.now() - started, answer: 'tokens' });
  if (gt === 'authorization_code') stats.code_grants += 1;
  else if (gt === 'refresh_token') stats.refresh_grants += 1;
  stats.last_token_request = {
    grant_type: gt,
    client_id: ctx.oidc.client?.clientId,
    resource: ctx.oidc.params.resource,
    scope: ctx.oidc.params.scope,
  };
});
provider.on('grant.error', (ctx, err) => {
  if (ctx.oidc?.params?.grant_type === DEVICE_GRANT) stats.device_polls.push({ at: Date.now() - started, answer: err.error });
  stats.grant_errors.push({
    grant_type: ctx.oidc?.params?.grant_type,
    error: err.error,
    error_description: err.error_description,
  });
  log('token endpoint error', err.error, err.error_description);
});
provider.on('grant.revoked', () => { stats.grants_revoked += 1; });
provider.on('server_error', (_ctx, err) => log('server_error', err));

const providerCallback = provider.callback();
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// ---- interactions ------------------------------------------------------------------------
const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginPage(uid, clientId, error) {
  const action = `${issuerPath}/interaction/${encodeURIComponent(uid)}/login`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
<p>Client <code>${escapeHtml(clientId)}</code> asks you to sign in.</p>
${error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}" autocomplete="off">
  <label for="username">Username</label>
  <input id="username" name="username" type="text" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button id="submit" type="submit">Sign in</button>
</form>
</body></html>`;
}

async function grantConsent(req, res, details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details ?? {};
  if (d.missingOIDCScope?.length) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims?.length) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    res.statusCode = 400;
    res.end('interaction mismatch');
    return;
  }
  const { prompt, params } = details;

  if (prompt.name === 'login') {
    if (args.login === 'auto') {
      stats.logins += 1;
      // A login_hint names the account (a second account at the same server).
      const accountId = /^[a-z0-9._-]{1,40}$/i.test(params.login_hint ?? '') ? params.login_hint : ACCOUNT;
      await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
      return;
    }
    if (req.method === 'POST' && action === 'login') {
      const form = await readForm(req);
      const username = form.get('username') ?? '';
      const password = form.get('password') ?? '';
      if (username !== ACCOUNT || !password) {
        res.statusCode = 200;
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(loginPage(uid, params.client_id, 'Unknown user or empty password'));
        return;
      }
      stats.logins += 1;
      await provider.interactionFinished(req, res, { login: { accountId: ACCOUNT } }, { mergeWithLastSubmission: false });
      return;
    }
    res.statusCode = 200;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.setHeader('cache-control', 'no-store');
    res.end(loginPage(uid, params.client_id));
    return;
  }

  if (prompt.name === 'consent') {
    await grantConsent(req, res, details);
    return;
  }

  res.statusCode = 400;
  res.end(`unsupported prompt ${prompt.name}`);
}

// ---- routing -----------------------------------------------------------------------------
const revocationPath = `${issuerPath}/token/revocation`;

async function handle(req, res) {
  const url = new URL(req.url, origin);
  const { pathname } = url;

  if (pathname === '/_test/stats' && req.method === 'GET') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }

  if (pathname === '/_test/config' && req.method === 'POST') {
    defaultResource = (await readForm(req)).get('default_resource') ?? undefined;
    res.end('ok');
    return;
  }

  if (pathname.endsWith('/.well-known/openid-configuration') || pathname.includes('/.well-known/oauth-authorization-server')) {
    stats.discovery_requests.push(pathname);
  }
  if (quirks.size && await applyQuirks(req, res, url)) return;

  const interactionPrefix = `${issuerPath}/interaction/`;
  if (pathname.startsWith(interactionPrefix)) {
    const [uid, action] = pathname.slice(interactionPrefix.length).split('/');
    try {
      await interaction(req, res, decodeURIComponent(uid), action);
    } catch (err) {
      log('interaction error', err.message);
      if (!res.headersSent) {
        res.statusCode = err.statusCode ?? 400;
        res.setHeader('content-type', 'text/plain');
        res.end(`interaction error: ${err.message}`);
      }
    }
    return;
  }

  if (issuerPath && !(pathname === issuerPath || pathname.startsWith(`${issuerPath}/`))) {
    res.statusCode = 404;
    res.setHeader('content-type', 'text/plain');
    res.end('not found');
    return;
  }

  if (slowDownsLeft > 0 && req.method === 'POST' && pathname === `${issuerPath}/token`) {
    // Read the form here (oidc-provider then uses req.body) to see whether it is a device poll.
    const form = await readForm(req);
    req.body = form.toString();
    if (form.get('grant_type') === DEVICE_GRANT) {
      slowDownsLeft -= 1;
      stats.device_polls.push({ at: Date.now() - started, answer: 'slow_down' });
      res.statusCode = 400;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ error: 'slow_down', error_description: 'polling too fast' }));
      return;
    }
  }

  if (pathname === revocationPath) {
    res.on('finish', () => { if (res.statusCode === 200) stats.revocations += 1; });
  }

  // Mount the provider at the issuer path: oidc-provider derives its mount path from
  // req.originalUrl vs req.url (as under express / koa-mount).
  if (issuerPath) {
    req.originalUrl = req.url;
    req.url = req.url.slice(issuerPath.length) || '/';
    if (!req.url.startsWith('/')) req.url = `/${req.url}`;
  }
  providerCallback(req, res);
}

/**
 * The departures from the textbook of real providers, as their documentation describes them.
 * `true`: the request was answered here.
 * - entra-resource: Entra ID v2 answers an authorization request carrying `resource` with
 *   `invalid_target` AADSTS9010010 (to the redirect URI); the audience comes from elsewhere.
 * - no-pkce-metadata: Entra ID / Cognito metadata lists no code_challenge_methods_supported.
 * - audience-param: Auth0 names the API with `audience`; `resource` is ignored, and without
 *   `audience` the access token is not one for the API.
 * - exact-redirect=URL: Slack, Atlassian, …: only the registered redirect URI, port included;
 *   any other gets an error page (never a redirect to an unregistered URI, RFC 6749 §4.1.2.1).
 */
async function applyQuirks(req, res, url) {
  const { pathname } = url;
  const authorize = pathname === `${issuerPath}/auth`;
  const token = pathname === `${issuerPath}/token` && req.method === 'POST';
  const q = url.searchParams;
  if (quirks.has('no-pkce-metadata') && pathname.includes('/.well-known/')) {
    const end = res.end.bind(res);
    res.end = (chunk, ...rest) => {
      try {
        const doc = JSON.parse(chunk.toString());
        delete doc.code_challenge_methods_supported;
        const body = JSON.stringify(doc);
        res.setHeader('content-length', Buffer.byteLength(body));
        return end(body);
      } catch {
        return end(chunk, ...rest);
      }
    };
  }
  if (authorize && quirks.has('entra-resource') && q.has('resource')) {
    const back = new URL(q.get('redirect_uri'));
    back.searchParams.set('error', 'invalid_target');
    back.searchParams.set('error_description', "AADSTS9010010: The resource parameter provided in the request doesn't match with the requested scopes.");
    if (q.has('state')) back.searchParams.set('state', q.get('state'));
    back.searchParams.set('iss', issuer);
    stats.quirk_refusals += 1;
    res.statusCode = 302;
    res.setHeader('location', back.href);
    res.end();
    return true;
  }
  if (authorize && quirks.has('exact-redirect') && q.get('redirect_uri') !== quirks.get('exact-redirect')) {
    stats.quirk_refusals += 1;
    res.statusCode = 400;
    res.setHeader('content-type', 'text/plain');
    res.end('invalid_request: redirect_uri does not match the one registered for this app');
    return true;
  }
  if (quirks.has('audience-param') && authorize) {
    const audience = q.get('audience');
    q.delete('resource');
    q.delete('audience');
    if (audience) q.set('resource', audience);
    req.url = `${pathname}?${q}`;
  }
  if (quirks.has('audience-param') && token) {
    const form = await readForm(req);
    const audience = form.get('audience');
    form.delete('resource');
    form.delete('audience');
    if (audience) form.set('resource', audience);
    req.body = form.toString();
  }
  return false;
}

process.stdout.write(`READY ${issuer}\n`);
log(`issuer ${issuer} login=${args.login} access-ttl=${accessTtl}s`);

const shutdown = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
