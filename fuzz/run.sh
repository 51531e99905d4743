#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, on the stable toolchain.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     fuzz; SECONDS defaults to 60
#   fuzz/run.sh replay [TARGET...]        run the kept inputs in fuzz/regressions once
#
# New corpus entries go to fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET (both
# ignored by git). Kept crash inputs in fuzz/regressions/TARGET are run first. A target that
# crashes does not stop the others; the script exits 1 if any did. Builds use the fuzz
# crate's own target directory, fuzz/target.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

# Stable Rust: `--sanitizer none` drops the one nightly flag (-Zsanitizer). All the code
# is safe Rust (`unsafe_code = "forbid"`), so AddressSanitizer would add little.
fuzz=(cargo fuzz run --sanitizer none --target-dir "$here/target")

mode=fuzz
seconds=60
if [[ $# -gt 0 && $1 == replay ]]; then
    mode=replay
    shift
elif [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer none --target-dir "$here/target" || exit 1

failed=()
for t in "${targets[@]}"; do
    kept="$here/regressions/$t"
    if [[ $mode == replay ]]; then
        files=("$kept"/*)
        if [[ ! -e ${files[0]} ]]; then
            echo "== $t: no kept inputs"
            continue
        fi
        echo "== $t: replaying ${#files[@]} kept input(s)"
        "${fuzz[@]}" "$t" "${files[@]}" -- -runs=1 || failed+=("$t")
        continue
    fi
    corpus=("$here/corpus/$t")
    mkdir -p "${corpus[0]}"
    [[ -d $kept ]] && corpus+=("$kept")
    echo "== $t: fuzzing for ${seconds}s"
    "${fuzz[@]}" "$t" "${corpus[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 || failed+=("$t")
done

if [[ ${#failed[@]} -gt 0 ]]; then
    if [[ $mode == replay ]]; then
        echo "FAILED: ${failed[*]} (kept inputs in fuzz/regressions/ still break a check)"
    else
        echo "FAILED: ${failed[*]} (crashing inputs in fuzz/artifacts/)"
    fi
    exit 1
fi
echo "all ${#targets[@]} target(s) passed"
