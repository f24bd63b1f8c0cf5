#!/usr/bin/env bash
# Installs the Debian 12 packages demucsd builds and runs against (the Swift toolchain itself is
# assumed). Idempotent: does nothing when they are all present. Needs root (or sudo) to install.
set -euo pipefail
packages=(pkg-config libsndfile1-dev libmp3lame-dev libopenblas-dev libsqlite3-dev ffmpeg libseccomp-dev postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
