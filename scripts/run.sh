#!/usr/bin/env bash
# Set up this machine (system packages, Rust check), build mcp-broker and its tray app in
# release mode, and run:
#
#   scripts/run.sh                the tray app (target/release/mcp-broker-app)
#   scripts/run.sh ARGS...        the command line: target/release/mcp-broker ARGS
#
# Setup and build messages go to stderr, so the program's stdout and stdin are its own
# (usable as an MCP stdio command).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/setup.sh" --app-only </dev/null >&2
eval "$("$ROOT/scripts/setup.sh" --print-env)"

# Thin LTO here: the full release profile (fat LTO, one codegen unit; what packages and the
# benchmarks use) makes the first build of the app several times longer on a small machine.
CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo build --release -p mcp-broker -p mcp-broker-app </dev/null >&2

bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"
if [[ $# -eq 0 ]]; then
    exec "$bin/mcp-broker-app"
fi
exec "$bin/mcp-broker" "$@"
