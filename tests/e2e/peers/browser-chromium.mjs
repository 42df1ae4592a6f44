#!/usr/bin/env node
// A $BROWSER stand-in that is a real browser: opens the authorization URL ($1 / argv[2]) in
// Debian's headless Chromium (driven by playwright-core; no browser download), fills the
// authorization server's login form (as.mjs --login form: #username, #password, #submit) as
// "alice" with some password, submits, and waits until the page is the broker's loopback
// callback (http://127.0.0.1:PORT/...callback...) showing "You can close this tab".
//
// - Appends one line "opened" to $BROWSER_LOG (if set) for every invocation.
// - Writes nothing to stdout/stderr on success (the broker runs $BROWSER directly and its
//   stdio may be inherited); diagnostics go to $BROWSER_TRACE (a file) if set, and a
//   screenshot of the last page to $BROWSER_SCREENSHOT (a .png path) if set.
// - Exits 0 when the callback page was shown, 1 otherwise.
// - $CHROMIUM_PATH overrides /usr/bin/chromium; $BROWSER_TIMEOUT_MS the overall limit (60 s).
// - `--expect-text TEXT` (before the URL) overrides the text awaited on the callback page.

import fs from 'node:fs';
import { chromium } from 'playwright-core';

const argv = process.argv.slice(2);
let expectText = /You can close this tab/i;
const ei = argv.indexOf('--expect-text');
if (ei !== -1) {
  expectText = argv[ei + 1];
  argv.splice(ei, 2);
}
const url = argv[0] ?? '';
const timeoutMs = Number.parseInt(process.env.BROWSER_TIMEOUT_MS ?? '60000', 10);
const traceFile = process.env.BROWSER_TRACE;
const t0 = Date.now();

function trace(msg) {
  if (!traceFile) return;
  try {
    fs.appendFileSync(traceFile, `browser-chromium +${Date.now() - t0}ms: ${msg}\n`);
  } catch { /* ignore */ }
}

if (process.env.BROWSER_LOG) {
  fs.appendFileSync(process.env.BROWSER_LOG, 'opened\n');
}

if (!/^https?:\/\//i.test(url)) {
  trace(`refusing non-http(s) URL: ${url}`);
  process.exit(2);
}

const isCallback = (u) => {
  const parsed = URL.parse(typeof u === 'string' ? u : u.href);
  return Boolean(parsed)
    && parsed.protocol === 'http:'
    && (parsed.hostname === '127.0.0.1' || parsed.hostname === 'localhost' || parsed.hostname === '[::1]')
    && parsed.pathname.includes('/callback');
};

let browser;
let page;
const watchdog = setTimeout(() => {
  trace(`overall timeout after ${timeoutMs} ms`);
  process.exit(1);
}, timeoutMs + 5000);

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
    ],
  });
  const context = await browser.newContext();
  page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) trace(`navigated ${f.url()}`); });

  trace(`goto ${url}`);
  await page.goto(url, { waitUntil: 'domcontentloaded' });

  // Either the login form, or (already signed in) straight back at the callback.
  const username = page.locator('#username');
  await Promise.race([
    username.waitFor({ state: 'visible' }),
    page.waitForURL(isCallback),
  ]);

  if (!isCallback(page.url())) {
    trace(`login form at ${page.url()}`);
    await username.fill('alice');
    await page.locator('#password').fill(`pw-${process.pid}`);
    await Promise.all([
      page.waitForURL(isCallback, { waitUntil: 'domcontentloaded' }),
      page.locator('#submit').click(),
    ]);
  }

  trace(`at callback ${page.url()}`);
  await page.getByText(expectText).first().waitFor({ state: 'visible' });
  trace('callback page shows the expected text');
  if (process.env.BROWSER_SCREENSHOT) await page.screenshot({ path: process.env.BROWSER_SCREENSHOT });
  await browser.close();
  clearTimeout(watchdog);
  process.exit(0);
} catch (err) {
  trace(`failed: ${err?.stack ?? err}`);
  try {
    if (page) {
      trace(`last url ${page.url()}`);
      trace(`last page text: ${(await page.locator('body').innerText({ timeout: 2000 })).slice(0, 2000)}`);
      if (process.env.BROWSER_SCREENSHOT) await page.screenshot({ path: process.env.BROWSER_SCREENSHOT });
    }
  } catch { /* ignore */ }
  try { await browser?.close(); } catch { /* ignore */ }
  process.exit(1);
}
