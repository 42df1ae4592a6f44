#!/usr/bin/env node
// A $BROWSER stand-in for the login-CSRF test: before the browser loads the authorization URL
// (argv[2]), an attacker who read that URL from the browser's command line (world-readable
// in /proc) races it to the loopback callback with the real `state`, the real issuer and a
// code of their own. Then the real browser (browser-curl.sh) follows the URL, unless told not to.
//
// - $FORGE_AS: `nobody` (another user: the request is made with `runuser -u nobody`, root
//   only) or `self` (a process of the same user).
// - $FORGE_ISS: the issuer to put in `iss`.
// - $FORGE_OUT: a file that gets the attacker's HTTP status and page, as JSON.
// - $FORGE_THEN_BROWSE=0: stop after the forgery (the sign-in is expected to be lost).

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const url = new URL(process.argv[2]);
const redirect = url.searchParams.get('redirect_uri');
const forged = `${redirect}?${new URLSearchParams({ code: 'attackers-own-code', state: url.searchParams.get('state'), iss: process.env.FORGE_ISS })}`;
const curl = ['curl', '-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}', forged];
const argv = process.env.FORGE_AS === 'nobody' ? ['runuser', '-u', 'nobody', '--', ...curl] : curl;
let out;
try {
  out = execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
} catch (e) {
  out = `${e.stdout ?? ''}${e.stderr ?? ''}\n000`;
}
const status = Number(out.slice(out.lastIndexOf('\n') + 1));
fs.writeFileSync(process.env.FORGE_OUT, JSON.stringify({ as: process.env.FORGE_AS, status, page: out.slice(0, out.lastIndexOf('\n')) }));
if (process.env.FORGE_THEN_BROWSE === '0') process.exit(0);
const real = path.join(path.dirname(fileURLToPath(import.meta.url)), 'browser-curl.sh');
spawn(real, [url.href], { stdio: 'ignore' }).on('exit', (code) => process.exit(code ?? 1));
