#!/usr/bin/env bash
# Run a command inside a private D-Bus session bus that has an unlocked gnome-keyring
# Secret Service (org.freedesktop.secrets), and nothing else of the caller's desktop.
#
#   scripts/with-keychain.sh CMD [ARGS...]
#
# Recipe (see /work/shared/ENVIRONMENT.md, "Keychain"):
#   1. throwaway XDG_RUNTIME_DIR and XDG_DATA_HOME, exported BEFORE dbus-run-session;
#   2. inside the bus: gnome-keyring-daemon --unlock --components=secrets, password on stdin;
#   3. gdbus wait for org.freedesktop.secrets (--unlock returns before the daemon owns the
#      name, and an early call would activate a second, locked daemon);
#   4. run CMD; kill the daemon by PID; exit with CMD's exit status; remove the temp dirs.
#
# Env: KEYCHAIN_WAIT_TIMEOUT (seconds to wait for the service, default 10).
set -euo pipefail

log() { printf 'with-keychain: %s\n' "$*" >&2; }

if [[ "${_MCP_BROKER_KEYCHAIN_STAGE:-}" != inner ]]; then
    # ---- outer stage: throwaway dirs, then re-enter this script inside a private bus ----
    if [[ $# -eq 0 ]]; then
        echo "usage: $0 CMD [ARGS...]" >&2
        exit 2
    fi
    for tool in dbus-run-session gnome-keyring-daemon gdbus; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            log "'$tool' not found; run scripts/setup.sh (packages dbus, gnome-keyring, libglib2.0-bin)"
            exit 127
        fi
    done

    tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcp-broker-keychain.XXXXXX")
    trap 'fusermount -u "$tmp/runtime/doc" 2>/dev/null || true; rm -rf -- "$tmp"' EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -m 700 "$tmp/runtime" "$tmp/data"
    export XDG_RUNTIME_DIR="$tmp/runtime"
    export XDG_DATA_HOME="$tmp/data"
    # Never talk to (or unlock) a keyring daemon of the caller's own session.
    unset GNOME_KEYRING_CONTROL GNOME_KEYRING_PID SSH_AUTH_SOCK DBUS_SESSION_BUS_PID

    set +e
    _MCP_BROKER_KEYCHAIN_STAGE=inner dbus-run-session -- bash "${BASH_SOURCE[0]}" "$@"
    rc=$?
    set -e
    exit "$rc"
fi

# ---- inner stage: we are on the private session bus ----
unset _MCP_BROKER_KEYCHAIN_STAGE

daemon_log="$XDG_RUNTIME_DIR/gnome-keyring.log"
password="test-$RANDOM$RANDOM"

# --foreground in the background gives us the daemon's own PID in $!.
gnome-keyring-daemon --foreground --unlock --components=secrets \
    <<<"$password" >"$daemon_log" 2>&1 &
daemon_pid=$!

# shellcheck disable=SC2317  # invoked from the EXIT trap
stop_daemon() {
    if kill -0 "$daemon_pid" 2>/dev/null; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
}
trap stop_daemon EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if ! gdbus wait --session --timeout "${KEYCHAIN_WAIT_TIMEOUT:-10}" org.freedesktop.secrets \
    || ! kill -0 "$daemon_pid" 2>/dev/null; then
    log "gnome-keyring-daemon did not provide org.freedesktop.secrets; its log:"
    sed 's/^/  /' "$daemon_log" >&2 || true
    exit 125
fi

set +e
"$@"
rc=$?
set -e
exit "$rc"
