// oidc-provider with its state in $AS_STATE_DIR (see as-restartable.mjs).
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import RealProvider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const dir = process.env.AS_STATE_DIR;
fs.mkdirSync(dir, { recursive: true });
const storeFile = path.join(dir, 'store.json');
const keysFile = path.join(dir, 'keys.json');

function writeAtomic(file, value) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value));
  fs.renameSync(tmp, file);
}

// ---- keys: the signing key and cookie keys survive restarts -----------------------------
let keys;
if (fs.existsSync(keysFile)) {
  keys = JSON.parse(fs.readFileSync(keysFile, 'utf8'));
} else {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
  keys = { jwks: { keys: [jwk] }, cookies: [crypto.randomBytes(32).toString('base64url')] };
  writeAtomic(keysFile, keys);
}

// ---- the store: key -> {v: payload, exp: ms or null}, and grant id -> member keys ---------
const data = fs.existsSync(storeFile) ? JSON.parse(fs.readFileSync(storeFile, 'utf8')) : { entries: {}, grants: {} };
const save = () => writeAtomic(storeFile, data);
const get = (key) => {
  const e = data.entries[key];
  if (!e) return undefined;
  if (e.exp !== null && e.exp <= Date.now()) {
    delete data.entries[key];
    return undefined;
  }
  return e.v;
};
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

class FileAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const exp = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null;
    if (this.model === 'Session') data.entries[`sessionUid:${payload.uid}`] = { v: id, exp };
    if (payload.userCode) data.entries[`userCode:${payload.userCode}`] = { v: id, exp };
    if (grantable.has(this.model) && payload.grantId) {
      const members = data.grants[payload.grantId] ?? [];
      if (!members.includes(key)) members.push(key);
      data.grants[payload.grantId] = members;
    }
    data.entries[key] = { v: payload, exp };
    save();
  }

  async find(id) {
    const v = get(this.key(id));
    return v === undefined ? undefined : structuredClone(v);
  }

  async findByUid(uid) {
    const id = get(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = get(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const e = data.entries[this.key(id)];
    if (e) {
      e.v.consumed = Math.floor(Date.now() / 1000);
      save();
    }
  }

  async destroy(id) {
    delete data.entries[this.key(id)];
    save();
  }

  async revokeByGrantId(grantId) {
    for (const key of data.grants[grantId] ?? []) delete data.entries[key];
    delete data.grants[grantId];
    save();
  }
}

export default class Provider extends RealProvider {
  constructor(issuer, configuration) {
    super(issuer, { ...configuration, adapter: FileAdapter, jwks: keys.jwks, cookies: { ...configuration.cookies, keys: keys.cookies } });
  }
}
