#!/usr/bin/env node
// peers/as.mjs, unchanged, but with its state on disk so that it can be killed and started
// again (same port, same issuer) without losing clients, grants, refresh tokens or its
// signing key: an authorization server that goes down and comes back.
//
//   AS_STATE_DIR=/some/dir node peers/as-restartable.mjs --port P [as.mjs options]
//
// How: a module loader hook hands as.mjs, for its `import Provider from 'oidc-provider'`, the
// subclass in as-restartable-provider.mjs, which adds a file adapter (every model in
// $AS_STATE_DIR/store.json, written on each change) and a signing key and cookie keys kept in
// $AS_STATE_DIR/keys.json. Everything else is oidc-provider and as.mjs as they are.
// /_test/stats counts since this process started.

import { register } from 'node:module';

if (!process.env.AS_STATE_DIR) {
  console.error('as-restartable.mjs: set AS_STATE_DIR to a directory for the state');
  process.exit(2);
}
register('./as-restartable-hooks.mjs', import.meta.url);
await import('./as.mjs');
