#!/bin/bash
# Runs the unit tests under a sanitizer: AddressSanitizer (out-of-bounds, use-after-free,
# leaks in C code) or ThreadSanitizer (data races).
#
#     tools/sanitize.sh address|thread [swift test options…, e.g. --filter PickleTests]
#
# Builds into .build/sanitize-KIND (apart from the normal build). The end-to-end suites
# (DaemonEndToEnd: real daemons, real separations, a PostgreSQL server) are skipped: they run
# the daemon binaries, which this build instruments too, but under a sanitizer they take longer
# than their time bounds allow. Results and the command are in docs/RELIABILITY.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:?usage: tools/sanitize.sh address|thread [swift test options]}
shift
case $kind in address|thread) ;; *) echo "sanitize.sh: address or thread, not $kind" >&2; exit 64 ;; esac
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# print_suppressions=0: the binaries the tests run must not add the summary to their stderr.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tools/lsan-suppressions.txt:print_suppressions=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0}
exec swift test --package-path "$root" --build-path "$root/.build/sanitize-$kind" --sanitize="$kind" \
    --skip DaemonEndToEnd "$@"
