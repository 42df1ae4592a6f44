// A user at a browser on another machine, scripted (cookies kept, redirects followed, forms
// posted with their xsrf field), for sign-ins that do not use a browser on this machine:
//
// - enterCode(verificationUri, userCode, {abort}): RFC 8628. Opens the verification page of
//   as.mjs --device (oidc-provider's own /device pages), enters the code, confirms (or
//   aborts), and goes through the login and consent interactions. → the last page.
// - signInElsewhere(authorizationUrl): follows the authorization URL through login and
//   consent and stops where the browser would go to the broker's loopback address, which a
//   browser on another machine cannot reach. → that address, to paste back.
//
// Each throws when a page is not what a user would see next.

const hidden = (html, name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))?.[1];

class Browser {
  constructor() { this.cookies = new Map(); }

  async go(url, { method = 'GET', form, stopAt = () => false } = {}) {
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
        if (stopAt(next)) return { status: res.status, url: next.href, stopped: true };
        init = { method: 'GET' };
        continue;
      }
      return { status: res.status, url: next.href, text: await res.text() };
    }
    throw new Error(`web-user: too many redirects from ${url}`);
  }
}

export async function enterCode(verificationUri, userCode, { abort = false } = {}) {
  const b = new Browser();
  const entry = await b.go(verificationUri);
  const xsrf = hidden(entry.text, 'xsrf');
  if (!xsrf) throw new Error(`web-user: no code form at ${verificationUri} (${entry.status}): ${entry.text.slice(0, 200)}`);
  const confirm = await b.go(verificationUri, { method: 'POST', form: { xsrf, user_code: userCode } });
  const xsrf2 = hidden(confirm.text, 'xsrf');
  if (!xsrf2) throw new Error(`web-user: the code ${userCode} was not accepted (${confirm.status}): ${confirm.text.slice(0, 300)}`);
  const answer = abort ? { xsrf: xsrf2, user_code: userCode, abort: 'yes' } : { xsrf: xsrf2, user_code: userCode, confirm: 'yes' };
  const done = await b.go(verificationUri, { method: 'POST', form: answer });
  return done;
}

export async function signInElsewhere(authorizationUrl) {
  const redirect = new URL(new URL(authorizationUrl).searchParams.get('redirect_uri'));
  const atLoopback = (u) => u.origin === redirect.origin && u.pathname === redirect.pathname;
  const end = await new Browser().go(authorizationUrl, { stopAt: atLoopback });
  if (!end.stopped) throw new Error(`web-user: the sign-in did not end at ${redirect.href} (${end.status} ${end.url}): ${end.text?.slice(0, 200)}`);
  return end.url;
}
