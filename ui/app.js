// mcp-broker window. Plain JS, no bundler: every action is a Tauri command that calls the
// broker's control API (src-tauri/src/commands.rs). Nothing here touches a token.
"use strict";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const VIEWS = ["servers", "hosts", "approvals", "policy", "activity"];
const state = { view: "servers", status: null, approvals: null, hosts: null, apps: [], info: null };

// ---------- small helpers ----------

/** Build an element: h("td", {class: "x"}, "text", child). Text is always text, never HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

/** Replace a container's children, keeping the keyboard focus on the "same" control:
 *  the button or input with the same text inside the element with the same data key. */
function fill(container, ...nodes) {
  const active = document.activeElement;
  let mark = null;
  if (active && active !== document.body && container.contains(active)) {
    const owner = active.closest("[data-server],[data-host],[data-id],[data-tool]");
    mark = { owner: owner ? JSON.stringify(owner.dataset) : null, tag: active.tagName, text: active.textContent, id: active.id };
  }
  container.replaceChildren(...nodes.flat().filter(Boolean));
  if (!mark) return;
  const same = [...container.querySelectorAll(mark.tag)].find((el) => {
    const owner = el.closest("[data-server],[data-host],[data-id],[data-tool]");
    return (mark.id ? el.id === mark.id : el.textContent === mark.text) && (owner ? JSON.stringify(owner.dataset) : null) === mark.owner;
  });
  if (same) same.focus();
}

function errorText(e) {
  return typeof e === "string" ? e : (e && e.message) || String(e);
}

/** "in 54 min", "3 h ago" — with the full local time as a tooltip. */
function when(iso, { future = false } = {}) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const t = new Date(iso);
  if (isNaN(t)) return h("span", {}, iso);
  const s = Math.round((t - Date.now()) / 1000);
  const a = Math.abs(s);
  let text;
  if (a < 45) text = future && s > 0 ? "in under a minute" : "just now";
  else {
    const [n, unit] =
      a < 5400 ? [Math.round(a / 60), "min"] :
      a < 129600 ? [Math.round(a / 3600), "h"] :
      [Math.round(a / 86400), a < 172800 ? "day" : "days"];
    text = s >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
  }
  if (future && s <= 0) text = text === "just now" ? "expired just now" : `expired ${text}`;
  return h("time", { datetime: iso, title: t.toLocaleString(), dataset: future ? { future: "1" } : null }, text);
}

function refreshTimes() {
  for (const t of document.querySelectorAll("time[datetime]:not([data-abs])")) {
    const fresh = when(t.getAttribute("datetime"), { future: t.dataset.future === "1" });
    if (fresh.textContent !== t.textContent) t.textContent = fresh.textContent;
  }
}

/** An audit time: the clock time today, the date and time before. */
function clock(iso) {
  const t = new Date(iso);
  if (!iso || isNaN(t)) return h("span", { class: "muted" }, "—");
  const today = new Date().toDateString() === t.toDateString();
  const text = today ? t.toLocaleTimeString() : t.toLocaleString();
  return h("time", { datetime: iso, title: t.toLocaleString(), dataset: { abs: "1" } }, text);
}

/** "notifications/initialized" may wrap after its slashes, not inside words. */
function breakable(text) {
  return String(text).split("/").flatMap((part, i) => (i ? ["/", h("wbr"), part] : [part]));
}

function duration(ms) {
  if (ms == null) return "—";
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 10000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

const STATE_TEXT = { signed_in: "Signed in", needs_login: "Needs sign-in", signed_out: "Signed out", api_key: "API key", open: "No sign-in" };
const DECISION_TEXT = { always: "Always allowed", once: "Allowed once", deny: "Denied" };

function badge(cls, text) {
  return h("span", { class: `badge ${cls}` }, text);
}

function chips(list) {
  if (!list || !list.length) return h("span", { class: "muted" }, "none");
  return h("span", { class: "chips" }, list.map((s) => h("span", { class: "chip" }, s)));
}

function table(headers, rows, { empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

async function call(cmd, args) {
  try {
    return await invoke(cmd, args || {});
  } catch (e) {
    toast(errorText(e));
    throw e;
  }
}

let toastTimer = null;
function toast(message) {
  const el = $("service-error");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

function confirmDialog(title, text, ok) {
  const d = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true }));
}

/** Run an async action with its button disabled meanwhile. */
async function busy(button, fn) {
  button.disabled = true;
  try { await fn(); } catch (_) { /* shown by call() */ } finally { button.disabled = false; }
}

// ---------- navigation ----------

function show(view, { focus = false } = {}) {
  let openAdd = false;
  if (view === "add") { view = "servers"; openAdd = true; }
  if (!VIEWS.includes(view)) view = "servers";
  state.view = view;
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const b of document.querySelectorAll("button.nav")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  state.approvalsRendered = null;
  refresh(view);
  if (openAdd) openAddServer();
  else if (focus) $(`h-${view}`).focus?.();
}

function refresh(view = state.view) {
  const r = { servers: loadServers, hosts: loadHostsView, approvals: loadApprovals, policy: loadPolicy, activity: loadActivity }[view];
  return r ? r().catch(() => {}) : Promise.resolve();
}

// ---------- servers ----------

async function loadServers() {
  state.status = await call("status");
  renderServers();
}

/** The service's problems (a damaged config file, say), above every view. */
function renderProblems() {
  const problems = (state.status && state.status.problems) || [];
  const el = $("service-problems");
  el.hidden = !problems.length;
  if (!problems.length) return;
  fill(el, h("strong", {}, problems.length === 1 ? "The broker has a problem:" : "The broker has problems:"),
    h("ul", {}, problems.map((p) => h("li", {}, p))));
}

/** Sign-ins a host's request started that wait for the user, above every view. */
function renderSignIns() {
  const waiting = ((state.status && state.status.signins) || []).filter((s) => s.asked_by);
  const el = $("signins-waiting");
  el.hidden = !waiting.length;
  if (!waiting.length) return;
  fill(el, waiting.map((s) => h("p", { dataset: { signin: s.server } },
    `${s.asked_by} wants you to sign in to ${s.server}`,
    s.user_code ? h("span", {}, " — code ", h("code", {}, s.user_code)) : null,
    " ",
    h("button", { type: "button", class: "primary", onclick: (e) => busy(e.currentTarget, () => invoke("open_sign_in", { server: s.server })) },
      s.how === "device" ? "Open the code page" : "Open sign-in"))));
}

function renderServers() {
  renderProblems();
  renderSignIns();
  const servers = (state.status && state.status.servers) || [];
  const list = $("servers-list");
  if (!servers.length) {
    fill(list, h("div", { class: "card" },
      h("p", {}, "No servers yet."),
      h("p", { class: "hint" }, "Add a remote MCP server to sign in once for all your hosts.")));
    return;
  }
  fill(list, servers.map(serverCard));
}

function serverCard(s) {
  const signedIn = s.state === "signed_in";
  const noSignIn = s.state === "api_key" || s.state === "open"; // nothing to sign in to: forget it instead
  const signBtn = signedIn || noSignIn
    ? h("button", { type: "button", onclick: (e) => busy(e.currentTarget, () => signOut(s.name)) }, signedIn ? "Sign out" : "Forget")
    : h("button", { type: "button", class: "primary", onclick: (e) => busy(e.currentTarget, () => signIn(s.url, s.name)) }, "Sign in");
  const removeBtn = h("button", { type: "button", class: "danger", onclick: (e) => busy(e.currentTarget, () => removeServer(s.name)) }, "Remove");
  const issuer = s.issuer || "—";
  return h("article", { class: "card server", dataset: { server: s.name }, "aria-label": `Server ${s.name}` },
    h("div", { class: "card-head" },
      h("h3", {}, s.name),
      badge(s.state, STATE_TEXT[s.state] || s.state),
      h("div", { class: "actions" }, signBtn, removeBtn)),
    h("dl", { class: "props" },
      h("dt", {}, "URL"), h("dd", {}, s.url),
      h("dt", {}, "Authorization server"), h("dd", {}, issuer),
      h("dt", {}, "Account"), h("dd", {}, s.account || "—"),
      h("dt", {}, "Scopes"), h("dd", { class: "scopes" }, signedIn ? chips(s.scopes) : "—"),
      h("dt", {}, "Token expires"), h("dd", {}, signedIn ? when(s.expires_at, { future: true }) : "—",
        signedIn && s.has_refresh_token ? h("span", { class: "muted" }, " · renews itself") : null),
      h("dt", {}, "Last used"), h("dd", {}, when(s.last_used_at)),
      s.last_error ? [h("dt", {}, "Last error"), h("dd", { class: "error-text" }, s.last_error)] : null));
}

function openAddServer() {
  $("add-server").hidden = false;
  $("add-server-open").hidden = true;
  $("add-url").focus();
}

function closeAddServer() {
  $("add-server").hidden = true;
  $("add-server-open").hidden = false;
  $("add-server").reset();
}

async function signIn(url, name) {
  showLoginProgress(name || url, null);
  try {
    const server = await invoke("login", { url, name: name || null });
    hideLoginProgress();
    closeAddServer();
    await loadServers();
    return server;
  } catch (e) {
    hideLoginProgress();
    toast(`Sign-in failed: ${errorText(e)}`);
    throw e;
  }
}

function showLoginProgress(what, link) {
  const el = $("login-progress");
  const parts = [h("div", {}, `Signing in to ${what}: finish in your browser…`)];
  if (link) {
    parts.push(h("div", { class: "row" },
      h("span", {}, "If it did not open, copy this link into it:"),
      h("code", { id: "login-url" }, link),
      h("button", { type: "button", onclick: () => copy(link) }, "Copy link")));
  }
  fill(el, parts);
  el.hidden = false;
}

function hideLoginProgress() {
  $("login-progress").hidden = true;
}

async function signOut(name) {
  const r = await call("logout", { name });
  if (r && r.revoked === false) toast(`Signed out of ${name}; the authorization server did not confirm revoking the tokens.`);
  await loadServers();
}

async function removeServer(name) {
  if (!(await confirmDialog(`Remove ${name}?`, "Its tokens are revoked and forgotten, and hosts can no longer use it.", "Remove"))) return;
  await call("remove_server", { name });
  await loadServers();
}

// ---------- hosts ----------

function loadHostsView() {
  return Promise.all([loadApps(), loadHosts()]);
}

async function loadHosts() {
  state.hosts = await call("hosts");
  renderHosts();
}

function renderHosts() {
  const keys = (state.hosts && state.hosts.hosts) || [];
  const usage = (state.hosts && state.hosts.usage) || [];
  const names = [...new Set([...usage.map((u) => u.host), ...keys.map((k) => k.name)])].sort();
  const rows = names.map((name) => {
    const key = keys.find((k) => k.name === name);
    const uses = usage.filter((u) => u.host === name);
    return h("tr", { dataset: { host: name } },
      h("th", { scope: "row" }, name),
      h("td", {}, uses.length
        ? h("ul", { class: "uses" }, uses.map((u) => h("li", {},
            h("strong", {}, u.server), " · last used ", when(u.last_used), ` · ${u.calls} call${u.calls === 1 ? "" : "s"}`)))
        : h("span", { class: "muted" }, "no use yet")),
      h("td", {}, key
        ? h("span", {}, key.any_user ? "HTTP key (any user), created " : "HTTP key, created ", when(key.created_at))
        : h("span", { class: "muted" }, "stdio bridge")),
      h("td", {}, key
        ? h("button", { type: "button", class: "danger", onclick: (e) => busy(e.currentTarget, () => removeHost(name)) }, "Delete key")
        : null));
  });
  fill($("hosts-list"), table(["Host", "Servers used", "Connects by", ""], rows, { empty: "No host has used the broker yet." }));
}

async function addHost(ev) {
  ev.preventDefault();
  const input = $("host-name");
  const anyUser = $("host-any-user");
  const r = await call("add_host", { name: input.value, anyUser: anyUser.checked });
  input.value = "";
  anyUser.checked = false;
  $("key-host").textContent = r.host;
  $("key-value").value = r.key;
  $("key-endpoint").textContent = `${r.endpoint}/servers/NAME/mcp`;
  $("key-dialog").showModal();
  $("key-value").select();
  await loadHosts();
}

async function removeHost(name) {
  if (!(await confirmDialog(`Delete the key of ${name}?`, "The host can no longer use the broker over HTTP.", "Delete key"))) return;
  await call("remove_host", { name });
  await loadHosts();
}

// ---------- detected apps (the hosts' own config files) ----------

const TRANSPORT_TEXT = { broker: "through mcp-broker", mcp_remote: "remote, via mcp-remote", remote: "remote", local: "local program", unknown: "neither a command nor a URL" };

async function loadApps() {
  try {
    state.apps = (await invoke("detected_apps")).apps || [];
  } catch (e) {
    fill($("apps-list"), h("p", { class: "empty error-text" }, `Cannot look for apps: ${errorText(e)}`));
    return;
  }
  renderApps();
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function renderApps() {
  const rows = state.apps.map((a) => {
    // Connected by hand counts too, though there is nothing for Disconnect to undo then.
    const connected = a.connected || (a.through_broker > 0 && a.would_change === 0);
    const connectWhy = a.cannot_connect || (a.would_change ? null : "Nothing to change: no remote server left to switch");
    return h("tr", { dataset: { host: a.host } },
      h("th", { scope: "row" }, a.name),
      h("td", { class: "files" }, a.files.map((f) => h("div", {},
        h("code", {}, f.path),
        f.error ? h("div", { class: "error-text small" }, `Cannot use it: ${f.error}`) : null))),
      h("td", {}, serverList(a.files.flatMap((f) => f.servers))),
      h("td", {},
        connected ? badge("ok", "Connected") : badge("muted", "Not connected"),
        a.cannot_connect ? h("div", { class: "muted small" }, a.cannot_connect) : null),
      h("td", {}, h("div", { class: "app-actions" },
        h("button", { type: "button", class: "primary", dataset: { action: "connect" }, disabled: !!connectWhy, title: connectWhy,
          onclick: (e) => busy(e.currentTarget, () => connectApp(a)) }, "Connect"),
        h("button", { type: "button", dataset: { action: "disconnect" }, disabled: !a.connected,
          title: a.connected ? null : "mcp-broker did not connect it: nothing to put back",
          onclick: (e) => busy(e.currentTarget, () => disconnectApp(a)) }, "Disconnect"))));
  });
  fill($("apps-list"), table(["App", "Config file", "Servers", "State", ""], rows, { empty: "No AI app config file found on this computer." }));
}

/** "3 servers", opening to each one's name, what it runs and the secrets it holds in plaintext. */
function serverList(servers) {
  if (!servers.length) return h("span", { class: "muted" }, "no MCP servers");
  return h("details", { class: "servers" },
    h("summary", {}, plural(servers.length, "server", "servers")),
    h("ul", { class: "uses" }, servers.map((s) => {
      const t = s.transport || {};
      return h("li", {},
        h("strong", {}, s.name), ` · ${TRANSPORT_TEXT[t.kind] || t.kind}`,
        t.url ? [" ", h("code", {}, t.url)] : null,
        t.kind === "broker" ? [" ", h("code", {}, t.server)] : null,
        t.kind === "local" ? [" ", h("code", {}, t.command)] : null,
        s.project ? h("span", { class: "muted" }, ` · project ${s.project}`) : null,
        s.plaintext_secrets.length ? h("div", { class: "small" }, badge("warn", "plaintext secret"), " ", chips(s.plaintext_secrets)) : null);
    })));
}

/** A diff from the library ("  name:", "  - old", "  + new"), its lines marked. */
function diffBlock(diff) {
  const lines = diff.replace(/\n$/, "").split("\n");
  return h("pre", { class: "diff" }, lines.map((l) => h("span", { class: l.startsWith("  - ") ? "del" : l.startsWith("  + ") ? "add" : "ctx" }, `${l}\n`)));
}

/** What Connect will do, file by file, and the question. */
function connectDialog(a, preview) {
  const changed = preview.files.reduce((n, f) => n + f.changed.length, 0);
  const body = preview.files.map((f) => h("section", { class: "file" },
    h("p", {}, h("code", {}, f.path)),
    f.changed.length ? diffBlock(f.diff) : null,
    f.changed.filter((c) => c.not_carried.length).map((c) => h("p", { class: "small" }, `${c.name}: not carried over: ${c.not_carried.join(", ")}`)),
    f.skipped.length ? [h("p", {}, "Left as they are:"),
      h("ul", { class: "skipped" }, f.skipped.map((x) => h("li", {}, h("strong", {}, x.name), `: ${x.reason}`)))] : null));
  body.push(h("p", { class: "hint" }, changed
    ? `${plural(changed, "entry", "entries")} will run mcp-broker connect. A copy of each file goes to the broker's backups; Disconnect puts the entries back.`
    : "Nothing to change."));
  if (changed && preview.running && preview.running.length) body.push(h("p", {}, `${a.name} is running: restart it afterwards to use the new entries.`));
  $("connect-title").textContent = `Connect ${a.name}?`;
  fill($("connect-body"), body);
  $("connect-ok").hidden = !changed;
  const d = $("connect-dialog");
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true }));
}

async function connectApp(a) {
  const preview = await call("preview_connect", { host: a.host });
  if (!(await connectDialog(a, preview))) return;
  const r = await call("connect_app", { host: a.host });
  showAppResult(a, r, true);
  await loadApps();
}

async function disconnectApp(a) {
  if (!(await confirmDialog(`Disconnect ${a.name}?`, "The entries mcp-broker changed go back to what they were (a copy of the file as it is now goes to the backups).", "Disconnect"))) return;
  const r = await call("disconnect_app", { host: a.host });
  showAppResult(a, r, false);
  await loadApps();
}

/** After a write: what changed, the backups, what was left alone, and whether to restart. */
function showAppResult(a, r, connecting) {
  const changed = r.files.reduce((n, f) => n + f.changed.length, 0);
  const lines = [h("div", {}, h("strong", {}, changed
    ? (connecting ? `${a.name}: ${plural(changed, "server goes", "servers go")} through the broker now.` : `${a.name}: ${plural(changed, "entry", "entries")} put back as ${changed === 1 ? "it was" : "they were"}.`)
    : `${a.name}: nothing to change.`))];
  for (const f of r.files) {
    if (f.backup) lines.push(h("div", {}, "The file as it was: ", h("code", { class: "backup" }, f.backup)));
    if (f.skipped.length) lines.push(h("div", {}, "Left as they are:"), h("ul", { class: "skipped" }, f.skipped.map((x) => h("li", {}, h("strong", {}, x.name), `: ${x.reason}`))));
  }
  const use = connecting ? "the new entries" : "the entries as they were";
  if (changed && r.running && r.running.length) lines.push(h("div", { class: "restart" }, `${a.name} is running: restart ${a.name} to use ${use}.`));
  else if (changed && !r.running) lines.push(h("div", { class: "restart" }, `Restart ${a.name} if it is running: it reads its config at start.`));
  lines.push(h("div", { class: "row" }, h("button", { type: "button", onclick: () => { $("apps-result").hidden = true; } }, "Dismiss")));
  const el = $("apps-result");
  fill(el, lines);
  el.hidden = false;
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const t = h("textarea", { "aria-hidden": "true", class: "offscreen" });
    t.value = text;
    document.body.append(t);
    t.select();
    document.execCommand("copy");
    t.remove();
  }
}

// ---------- approvals ----------

async function loadApprovals() {
  try {
    state.approvals = await invoke("approvals");
  } catch (e) {
    fill($("pending-list"), h("p", { class: "empty" }, `Approvals are not available: ${errorText(e)}`));
    fill($("decisions-list"));
    return;
  }
  renderApprovals();
}

function renderApprovals() {
  const a = state.approvals || { pending: [], decisions: [] };
  const pending = a.pending || [];
  const count = $("approvals-count");
  count.hidden = pending.length === 0;
  count.textContent = String(pending.length);
  count.setAttribute("aria-label", `${pending.length} waiting`);
  if (state.view !== "approvals") return;
  // Re-render only what changed, so the keyboard focus stays where it is.
  const key = JSON.stringify(a);
  if (key === state.approvalsRendered && $("pending-list").childElementCount) return;
  state.approvalsRendered = key;
  const focused = document.activeElement && document.activeElement.closest("#pending-list");
  fill($("pending-list"), pending.length ? pending.map(pendingCard) : h("p", { class: "empty" }, "Nothing is waiting."));
  if (focused) $("pending-list").querySelector("button")?.focus();
  const rows = (a.decisions || []).map((d) => h("tr", { dataset: { host: d.host, server: d.server } },
    h("th", { scope: "row" }, d.host),
    h("td", {}, d.server),
    h("td", {}, badge(d.decision, DECISION_TEXT[d.decision] || d.decision)),
    h("td", { class: "time" }, when(d.decided_at)),
    h("td", {}, h("button", { type: "button", onclick: (e) => busy(e.currentTarget, () => revokeDecision(d.host, d.server)) }, "Revoke"))));
  fill($("decisions-list"), table(["Host", "Server", "Decision", "Decided", ""], rows, { empty: "No decisions yet." }));
}

function pendingCard(p) {
  const answer = (decision) => (e) => busy(e.currentTarget, async () => {
    await call("decide", { id: String(p.id), decision });
    await loadApprovals();
  });
  return h("article", { class: "card pending", dataset: { id: String(p.id), host: p.host, server: p.server }, "aria-label": `${p.host} wants to use ${p.server}` },
    h("div", { class: "card-head" },
      h("h3", {}, h("strong", {}, p.host), " wants to use ", h("strong", {}, p.server))),
    h("p", {}, "Scopes: ", chips(p.scopes)),
    h("p", { class: "hint" }, "Asked ", when(p.requested_at)),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", dataset: { decision: "once" }, onclick: answer("once") }, "Allow once"),
      h("button", { type: "button", dataset: { decision: "always" }, onclick: answer("always") }, "Always allow"),
      h("button", { type: "button", class: "danger", dataset: { decision: "deny" }, onclick: answer("deny") }, "Deny")));
}

async function revokeDecision(host, server) {
  await call("revoke_decision", { host, server });
  await loadApprovals();
}

// ---------- per-tool policy ----------

async function loadPolicy() {
  const [hosts, status] = await Promise.all([call("hosts"), call("status")]);
  state.hosts = hosts;
  state.status = status;
  renderProblems();
  const usage = hosts.usage || [];
  const hostNames = [...new Set([...usage.map((u) => u.host), ...(hosts.hosts || []).map((k) => k.name)])].sort();
  const serverNames = [...new Set([...usage.map((u) => u.server), ...(status.servers || []).map((s) => s.name)])].sort();
  setOptions($("policy-host"), hostNames);
  setOptions($("policy-server"), serverNames);
  await loadTools();
}

function setOptions(select, values, { all = null } = {}) {
  const keep = select.value;
  const opts = values.map((v) => h("option", { value: v }, v));
  if (all) opts.unshift(h("option", { value: "" }, all));
  fill(select, opts);
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

async function loadTools() {
  const host = $("policy-host").value;
  const server = $("policy-server").value;
  const list = $("policy-list");
  if (!host || !server) {
    fill(list, h("p", { class: "empty" }, "Tools appear here once a host has used a server."));
    return;
  }
  let r;
  try {
    r = await invoke("policy", { host, server });
  } catch (e) {
    fill(list, h("p", { class: "empty" }, `No tool list: ${errorText(e)}`));
    return;
  }
  const tools = r.tools || [];
  if (!tools.length) {
    fill(list, h("p", { class: "empty" }, `No tools known for ${server} yet: they appear after a host lists them.`));
    return;
  }
  fill(list, h("ul", { class: "tools", "aria-label": `Tools of ${server} for ${host}` }, tools.map((t, i) => {
    const id = `tool-${i}`;
    return h("li", { dataset: { tool: t.name } },
      h("div", { class: "tool" },
        h("label", { for: id }, t.name),
        t.description ? h("p", {}, t.description) : null),
      h("input", { type: "checkbox", role: "switch", id, checked: t.enabled !== false, dataset: { tool: t.name },
        "aria-label": `Allow ${t.name}`, onchange: () => savePolicy(host, server) }));
  })));
}

async function savePolicy(host, server) {
  const disabled = [...document.querySelectorAll("#policy-list input[role=switch]")].filter((i) => !i.checked).map((i) => i.dataset.tool);
  try {
    await call("set_policy", { host, server, disabled });
  } finally {
    await loadTools();
  }
}

// ---------- activity ----------

async function loadActivity() {
  const [hosts, status] = await Promise.all([call("hosts"), call("status")]);
  const usage = hosts.usage || [];
  setOptions($("activity-server"), [...new Set([...usage.map((u) => u.server), ...(status.servers || []).map((s) => s.name)])].sort(), { all: "All servers" });
  setOptions($("activity-host"), [...new Set(usage.map((u) => u.host))].sort(), { all: "All hosts" });
  await loadCalls();
}

async function loadCalls() {
  const server = $("activity-server").value || null;
  const host = $("activity-host").value || null;
  const r = await call("audit", { server, host, limit: 300 });
  const rows = (r.calls || []).map((c) => {
    const ok = !c.error && (c.status == null || (c.status >= 200 && c.status < 400));
    const result = ok ? badge("ok", c.status === 202 ? "accepted" : "ok")
      : badge("error", c.status >= 400 ? `HTTP ${c.status}` : "refused");
    return h("tr", {},
      h("td", { class: "time" }, clock(c.time)),
      h("td", {}, c.host),
      h("td", {}, c.server),
      h("td", { class: "what" }, c.tool ? h("code", {}, c.tool) : h("span", { class: "muted" }, breakable(c.method || "—"))),
      h("td", { class: "result" }, result, c.error ? h("div", { class: "error-text small" }, c.error) : null),
      h("td", { class: "num" }, duration(c.duration_ms)));
  });
  fill($("activity-list"), table(["Time", "Host", "Server", "Tool or method", "Result", "Took"], rows, { empty: "No calls recorded yet." }));
}

// ---------- service info ----------

async function loadInfo() {
  try {
    const i = await invoke("app_info");
    state.info = i;
    const who = i.mode === "in_process" ? "Broker running in this app" : `Attached to the broker service (pid ${i.service_pid})`;
    fill($("service-info"), h("span", {}, who), h("br"), h("span", {}, `HTTP endpoint ${i.endpoint || "—"}`), h("br"), h("span", {}, `Version ${i.app_version}`));
  } catch (e) {
    fill($("service-info"), h("span", { class: "error-text" }, errorText(e)));
  }
}

// ---------- wiring ----------

function init() {
  for (const b of document.querySelectorAll("button.nav")) b.addEventListener("click", () => show(b.dataset.view));
  $("add-server-open").addEventListener("click", openAddServer);
  $("add-cancel").addEventListener("click", closeAddServer);
  $("add-server").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy($("add-submit"), () => signIn($("add-url").value.trim(), $("add-name").value.trim() || null));
  });
  $("add-server").addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeAddServer(); });
  $("add-host").addEventListener("submit", (ev) => addHost(ev).catch(() => {}));
  $("key-copy").addEventListener("click", async () => {
    await copy($("key-value").value);
    $("key-copy").textContent = "Copied";
    setTimeout(() => { $("key-copy").textContent = "Copy"; }, 1500);
  });
  $("policy-host").addEventListener("change", () => loadTools().catch(() => {}));
  $("policy-server").addEventListener("change", () => loadTools().catch(() => {}));
  $("activity-server").addEventListener("change", () => loadCalls().catch(() => {}));
  $("activity-host").addEventListener("change", () => loadCalls().catch(() => {}));
  $("activity-refresh").addEventListener("click", (e) => busy(e.currentTarget, loadCalls));

  // Ctrl+1…5 switch views; arrow keys move between the views in the sidebar.
  document.addEventListener("keydown", (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key >= "1" && ev.key <= String(VIEWS.length)) {
      ev.preventDefault();
      show(VIEWS[Number(ev.key) - 1], { focus: true });
      document.querySelector(`button.nav[data-view="${state.view}"]`).focus();
    }
  });
  const navs = [...document.querySelectorAll("button.nav")];
  navs.forEach((b, i) => b.addEventListener("keydown", (ev) => {
    const d = ev.key === "ArrowDown" || ev.key === "ArrowRight" ? 1 : ev.key === "ArrowUp" || ev.key === "ArrowLeft" ? -1 : 0;
    if (!d) return;
    ev.preventDefault();
    const next = navs[(i + d + navs.length) % navs.length];
    next.focus();
    show(next.dataset.view);
  }));

  listen("navigate", (e) => show(e.payload));
  listen("status", (e) => { state.status = e.payload; renderProblems(); renderSignIns(); if (state.view === "servers") renderServers(); });
  listen("approvals", (e) => { state.approvals = e.payload; renderApprovals(); });
  listen("changed", () => refresh());
  listen("service", (e) => {
    const el = $("service-error");
    if (e.payload && e.payload.error) { el.textContent = `The broker service is not reachable: ${e.payload.error}`; el.hidden = false; }
    else { el.hidden = true; loadInfo(); }
  });
  listen("login-progress", (e) => {
    const ev = e.payload.event || {};
    if (ev.event === "open_url") showLoginProgress(e.payload.url, ev.url);
    if (ev.event === "browser_failed") showLoginProgress(e.payload.url, $("login-url")?.textContent || e.payload.url);
  });

  // Relative times stay current (text only: nothing moves, the focus stays).
  setInterval(refreshTimes, 30000);
  setInterval(() => { if (state.view === "activity" && !document.hidden) loadCalls().catch(() => {}); }, 5000);

  loadInfo();
  invoke("approvals").then((a) => { state.approvals = a; renderApprovals(); }).catch(() => {});
  show((location.hash || "#servers").slice(1));
}

init();
