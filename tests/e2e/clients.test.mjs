// Two servers behind one authorization server, each signed in with a client of its own:
// one registered dynamically (RFC 7591), one registered in advance (a confidential client).
// Clients are kept per issuer AND registration, so the second sign-in does not overwrite the
// first one's client, and each server refreshes and revokes with its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  startAs, startMcpServer, makeServiceHome, runBroker, describeRun, asStats, asMetadata,
  bridgeClient,
} from './lib/harness.mjs';

const textOf = (r) => r.content?.map((c) => c.text).join('') ?? '';

/** A confidential client registered in advance (through the AS's own registration endpoint). */
async function preRegister(issuer) {
  const meta = await asMetadata(issuer);
  const reg = await fetch(meta.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      application_type: 'native', client_name: 'pre-registered', redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  const client = await reg.json();
  assert.equal(reg.status, 201, JSON.stringify(client));
  return client;
}

test('a dynamic and a pre-registered client at one AS: both refresh, call and sign out with their own client', async (t) => {
  const as = await startAs(t);
  const one = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-dyn' });
  const two = await startMcpServer(t, { issuer: as.issuer, name: 'mcp-pre' });
  const { home } = await makeServiceHome(t);
  const cli = async (args, env) => {
    const r = await runBroker(args, { home, env });
    assert.equal(r.code, 0, describeRun(r));
    return r;
  };
  const status = async () => Object.fromEntries(JSON.parse((await cli(['status', '--json'])).stdout).servers.map((s) => [s.name, s]));

  // The dynamic client first, then the pre-registered one: the order that used to overwrite.
  await cli(['login', one.url, '--name', 'dyn']);
  const pre = await preRegister(as.issuer);
  await cli(['login', two.url, '--name', 'pre', '--client-id', pre.client_id, '--client-secret-env', 'PRE_SECRET'], { PRE_SECRET: pre.client_secret });
  let s = await status();
  assert.equal(s.pre.client_id, pre.client_id);
  assert.notEqual(s.dyn.client_id, pre.client_id, 'the dynamic server kept its own client');
  assert.equal(s.dyn.state, 'signed_in');

  // Each refreshes with its own client (the AS names the client of every token request).
  for (const [name, clientId] of [['dyn', s.dyn.client_id], ['pre', pre.client_id], ['dyn', s.dyn.client_id]]) {
    await cli(['refresh', name]);
    const last = (await asStats(as)).last_token_request;
    assert.deepEqual([last.grant_type, last.client_id], ['refresh_token', clientId], `${name} refreshed with its own client`);
  }

  // Both are usable by a host.
  for (const name of ['dyn', 'pre']) {
    const b = await bridgeClient(t, { home, target: name, host: `host-${name}` });
    assert.equal(textOf(await b.client.callTool({ name: 'echo', arguments: { text: name } })), name);
    await b.client.close();
  }

  // Each signs out with its own client: revoking the refresh token ends that grant only.
  const before = await asStats(as);
  const out1 = await cli(['logout', 'dyn']);
  assert.match(out1.stdout, /revoked at the authorization server/);
  assert.equal((await asStats(as)).grants_revoked, before.grants_revoked + 1, 'the dynamic client revoked its grant');
  s = await status();
  assert.deepEqual([s.dyn.state, s.pre.state], ['signed_out', 'signed_in'], 'the other server is untouched');
  await cli(['refresh', 'pre']);
  const out2 = await cli(['logout', 'pre']);
  assert.match(out2.stdout, /revoked at the authorization server/);
  const after = await asStats(as);
  assert.equal(after.grants_revoked, before.grants_revoked + 2, 'the pre-registered client revoked its grant');
  assert.deepEqual(after.grant_errors, [], 'no token request failed');
});
