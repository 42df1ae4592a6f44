// The user of an RFC 8628 sign-in with a code, scripted: opens the verification page of
// as.mjs --device (oidc-provider's own /device pages) on "another device", enters the code,
// confirms (or aborts), and goes through the login and consent interactions, as a browser
// would: cookies kept, redirects followed, forms posted with their xsrf field.
//
//   import { enterCode } from './device-user.mjs';
//   await enterCode(verificationUri, userCode, { abort: false });  // → the last page's text
//
// Throws when a page is not what a user would see next.

const hidden = (html, name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))?.[1];

class Browser {
  constructor() { this.cookies = new Map(); }

  async go(url, { method = 'GET', form } = {}) {
    let next = new URL(url);
    let init = { method, body: form ? new URLSearchParams(form).toString() : undefined };
    for (let hops = 0; hops < 20; hops += 1) {
      const headers = { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
      if (init.body) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(next, { ...init, headers, redirect: 'manual' });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const i = pair.indexOf('=');
        this.cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1));
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        next = new URL(location, next);
        init = { method: 'GET' };
        continue;
      }
      return { status: res.status, url: next.href, text: await res.text() };
    }
    throw new Error(`device-user: too many redirects from ${url}`);
  }
}

export async function enterCode(verificationUri, userCode, { abort = false } = {}) {
  const b = new Browser();
  const entry = await b.go(verificationUri);
  const xsrf = hidden(entry.text, 'xsrf');
  if (!xsrf) throw new Error(`device-user: no code form at ${verificationUri} (${entry.status}): ${entry.text.slice(0, 200)}`);
  const confirm = await b.go(verificationUri, { method: 'POST', form: { xsrf, user_code: userCode } });
  const xsrf2 = hidden(confirm.text, 'xsrf');
  if (!xsrf2) throw new Error(`device-user: the code ${userCode} was not accepted (${confirm.status}): ${confirm.text.slice(0, 300)}`);
  const answer = abort ? { xsrf: xsrf2, user_code: userCode, abort: 'yes' } : { xsrf: xsrf2, user_code: userCode, confirm: 'yes' };
  const done = await b.go(verificationUri, { method: 'POST', form: answer });
  return done;
}
