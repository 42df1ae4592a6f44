#!/usr/bin/env bash
# Run the cargo-fuzz targets of mcp-broker, one after another, each for FUZZ_SECONDS.
#
#   fuzz/run.sh                        every target ~20 s (the short run for scripts/test.sh)
#   FUZZ_SECONDS=600 fuzz/run.sh       the documented 10-minute run per target
#   fuzz/run.sh sse jsonrpc            only these targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). The toolchain here is stable:
# RUSTC_BOOTSTRAP=1 lets it accept the -Z flags cargo-fuzz passes (sanitizer, coverage).
# For each target: first every input in fuzz/regressions/<target>/ is run once (inputs that
# once broke an invariant; they must pass once fixed), then the fuzzer runs. Its corpus grows
# in fuzz/corpus/<target> (not committed), seeded from fuzz/seeds/<target> (committed). A
# crash or a broken invariant stops that target, leaves its input in fuzz/artifacts/<target>/
# and makes the exit status non-zero; reproduce with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
# Logs: fuzz/logs/<target>.log. Env: FUZZ_SECONDS (default 20), FUZZ_JOBS (parallel
# processes per target, default 1), FUZZ_SANITIZER (address | none; default address).
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")"
seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 127
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "fuzz/run.sh: building ${#targets[@]} targets (sanitizer: $sanitizer)"
cargo fuzz build --sanitizer "$sanitizer"

mkdir -p logs
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    for input in regressions/"$t"/*; do
        [[ -f $input ]] || continue
        if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "$input" >"logs/$t.regression.log" 2>&1; then
            failed+=("$t:$(basename -- "$input")")
            summary+=("$(printf 'FAIL  %-28s regression %s' "$t" "$input")")
            grep -m1 -A2 'panicked at' "logs/$t.regression.log" >&2 || tail -5 "logs/$t.regression.log" >&2
        fi
    done
    echo "fuzz/run.sh: $t for ${seconds}s"
    set +e
    cargo fuzz run --sanitizer "$sanitizer" --jobs "$jobs" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    rc=$?
    set -e
    runs=$( (grep -h 'stat::number_of_executed_units' "logs/$t.log" || true) | awk '{s += $2} END {print s + 0}')
    cov=$( (grep -ho 'cov: [0-9]*' "logs/$t.log" || true) | tail -1 | awk '{print $2}')
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [[ $rc -eq 0 ]]; then
        summary+=("$(printf 'PASS  %-28s %10s runs  cov %-5s corpus %s' "$t" "$runs" "${cov:-?}" "$corpus")")
    else
        failed+=("$t")
        summary+=("$(printf 'FAIL  %-28s exit %s, see fuzz/logs/%s.log and fuzz/artifacts/%s/' "$t" "$rc" "$t" "$t")")
        grep -m1 -A3 -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)' "logs/$t.log" >&2 || tail -20 "logs/$t.log" >&2 || true
    fi
done

printf '\nfuzz/run.sh: %s s per target\n' "$seconds"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'fuzz/run.sh: FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
