#!/usr/bin/env bash
# Memory and speed of the streaming separation against the track's length, whole processes.
#
#   tools/bench-streaming.sh REPO NAME MINUTES...
#
# For each length, makes a WAV of that many minutes (the test music looped, 44.1 kHz stereo
# 16-bit) and runs `demucsctl separate --repo REPO -n NAME` on it with the default output
# (16-bit WAV, --clip-mode rescale, shifts as the model's default) under GNU time
# (`apt install time`), printing wall time, time per audio second and peak RSS. Then, on the
# first length, `demucsctl bench` alternates the streaming and the in-memory path (REPEAT
# times each, best kept) and prints the ratio of their separation times.
#
# The full-size htdemucs in the hub layout comes from tools/bench.py (its --workdir/repo_st,
# name `bench_htdemucs`); the small test model is Tests/Fixtures/models with `tiny4`.
# CI never runs this; results go into docs/PERFORMANCE.md with the command.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,16p' "$0" >&2
  exit 64
fi
repo=$1 name=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
demucsctl=${DEMUCSCTL:-$here/.build/release/demucsctl}
music=${MUSIC:-$here/../shared/test-audio/test.mp3}
work=${WORKDIR:-/tmp/demucsd-bench-streaming}
repeat=${REPEAT:-2}
mkdir -p "$work"

for minutes in "$@"; do
  track=$work/track-${minutes}min.wav
  if [ ! -f "$track" ]; then
    ffmpeg -v error -stream_loop -1 -i "$music" -t "$((minutes * 60))" -ar 44100 -ac 2 -c:a pcm_s16le "$track"
  fi
  rm -rf "$work/out"
  /usr/bin/time -f "%e %M" -o "$work/time" \
    "$demucsctl" separate --repo "$repo" -n "$name" -o "$work/out" "$track" > "$work/separate.log" 2>&1
  read -r wall kb < "$work/time"
  awk -v m="$minutes" -v w="$wall" -v kb="$kb" \
    'BEGIN { printf "%s min: %.1f s wall, %.4f s per audio second, peak RSS %.0f MB\n", m, w, w / (m * 60), kb / 1024 }'
  rm -rf "$work/out"
done

first=$work/track-$1min.wav
best_stream=""
best_memory=""
for _ in $(seq "$repeat"); do
  for path in streaming in-memory; do
    flags=()
    [ "$path" = in-memory ] && flags=(--in-memory)
    line=$("$demucsctl" bench --repo "$repo" -n "$name" "${flags[@]}" "$first" | grep '^separation:')
    t=$(echo "$line" | awk '{ print $2 }')
    if [ "$path" = streaming ]; then
      if [ -z "$best_stream" ] || awk -v a="$t" -v b="$best_stream" 'BEGIN { exit !(a < b) }'; then best_stream=$t; fi
    else
      if [ -z "$best_memory" ] || awk -v a="$t" -v b="$best_memory" 'BEGIN { exit !(a < b) }'; then best_memory=$t; fi
    fi
  done
done
awk -v s="$best_stream" -v m="$best_memory" -v n="$1" \
  'BEGIN { printf "bench on %s min, best of each: streaming %.2f s, in memory %.2f s, ratio %.3f\n", n, s, m, s / m }'
