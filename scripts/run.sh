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

cargo build --release -p mcp-broker -p mcp-broker-app </dev/null >&2

bin="${CARGO_TARGET_DIR:-$ROOT/target}/release"
if [[ $# -eq 0 ]]; then
    exec "$bin/mcp-broker-app"
fi
exec "$bin/mcp-broker" "$@"
