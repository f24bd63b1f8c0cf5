#!/bin/bash
# Builds demucsd-fuzz with libFuzzer coverage and AddressSanitizer, and fuzzes one target.
#
#     tools/fuzz.sh TARGET SECONDS [libFuzzer options…]
#
# TARGET: safetensors, pickle, torchzip, checkpoint, bagyaml, config, audio (Sources/Fuzzing).
# The build goes to .build/fuzz (release, -sanitize=address, coverage as libFuzzer wants it:
# edge with inline 8-bit counters, a PC table and compare tracing;
# libFuzzer's driver linked from the toolchain's compiler-rt). The corpus grows in
# .build/fuzz-corpus/TARGET, seeded from the test fixtures of that format; findings (crashes,
# leaks, timeouts, out-of-memory) are written to .build/fuzz-findings/ and end the run with a
# non-zero status. A finding, once fixed, goes into Tests/Fixtures/fuzz/TARGET/ (small files):
# the tests replay every file there. The figures of the runs are in docs/RELIABILITY.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: tools/fuzz.sh TARGET SECONDS [libFuzzer options]}
seconds=${2:?usage: tools/fuzz.sh TARGET SECONDS [libFuzzer options]}
shift 2

swiftc=$(command -v swiftc)
runtime=$(dirname "$(readlink -f "$swiftc")")/../lib/swift/clang/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a
[ -f "$runtime" ] || { echo "fuzz.sh: no libFuzzer runtime at $runtime" >&2; exit 1; }

swift build --package-path "$root" -c release --build-path "$root/.build/fuzz" --product demucsd-fuzz \
    -Xswiftc -DDEMUCSD_FUZZ -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    -Xlinker "$runtime" -Xlinker -lstdc++ >&2

corpus=$root/.build/fuzz-corpus/$target
seeds=$root/.build/fuzz-seeds/$target
findings=$root/.build/fuzz-findings
mkdir -p "$corpus" "$seeds" "$findings"
fixtures=$root/Tests/Fixtures
case $target in
    safetensors) cp "$fixtures"/models/*.safetensors "$seeds"/ ;;
    pickle|torchzip|checkpoint) cp "$fixtures"/import/th/*.th "$fixtures"/import/hostile/*.th "$fixtures"/import/views.th "$seeds"/ ;;
    bagyaml) cp "$fixtures"/models/*.yaml "$seeds"/ ;;
    config) cp "$root"/etc/demucsd.conf "$seeds"/ ;;
    audio) cp "$fixtures"/audio/*.flac "$seeds"/ ;;
    *) echo "fuzz.sh: unknown target $target" >&2; exit 64 ;;
esac
[ -d "$fixtures/fuzz/$target" ] && cp "$fixtures/fuzz/$target"/* "$seeds"/ 2>/dev/null || true

# Leaks of dependencies (ZIPFoundation, TOMLKit: a few bytes per file) are suppressed by name;
# any other leak is a finding.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tools/lsan-suppressions.txt}
options=()
# A Swift trap is a finding: report it as such, not through Swift's backtracer (whose memory
# reads AddressSanitizer would report instead).
export SWIFT_BACKTRACE=enable=no

# Seeds are as large as the fixtures (up to ~500 kB); -max_len lets mutations keep them whole.
exec "$root/.build/fuzz/release/demucsd-fuzz" "$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=4096 -max_len=600000 -print_final_stats=1 -artifact_prefix="$findings/$target-" \
    ${options[@]+"${options[@]}"} "$@" "$corpus" "$seeds"
