#!/usr/bin/env bash
# Set up this machine (system packages, Rust check), build mcp-broker in release mode and run it:
#
#   scripts/run.sh [ARGS...]      runs target/release/mcp-broker ARGS (default: --help)
#
# Setup and build messages go to stderr, so the program's stdout and stdin are its own
# (usable as an MCP stdio command).
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/setup.sh" --app-only </dev/null >&2
eval "$("$ROOT/scripts/setup.sh" --print-env)"

cargo build --release --bin mcp-broker </dev/null >&2

if [[ $# -eq 0 ]]; then
    set -- --help
fi
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/mcp-broker" "$@"
