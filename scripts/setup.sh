#!/usr/bin/env bash
# Set up a Debian 12 machine for rsstyle: system packages, the ONNX Runtime
# shared library (from PyPI, into .deps/) and the sample media (into assets/).
# Idempotent: re-running skips what is already in place.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.deps"
assets="$root/assets"
ort_version="1.30.0"
ort_lib="$deps/onnxruntime/libonnxruntime.so.$ort_version"

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-base-apps
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav libclang-dev python3-venv unzip
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ONNX Runtime shared library: the CPU build from the PyPI wheel.
if [ ! -f "$ort_lib" ]; then
  echo "setup: fetching ONNX Runtime $ort_version from PyPI"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "onnxruntime==$ort_version" -d "$tmp"
  mkdir -p "$deps/onnxruntime"
  unzip -q -o -j "$tmp"/onnxruntime-*.whl "onnxruntime/capi/libonnxruntime.so.$ort_version" -d "$deps/onnxruntime"
  rm -rf "$tmp"
fi

# Sample media from Debian's opencv-doc (Apache-2.0 / BSD-3).
if [ ! -f "$assets/vtest.avi" ] || [ ! -f "$assets/tree.avi" ] || [ ! -f "$assets/starry_night.jpg" ]; then
  echo "setup: fetching sample media (opencv-doc)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1) || {
    sudo_if_needed apt-get update -q
    (cd "$tmp" && apt-get download opencv-doc)
  }
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  mkdir -p "$assets"
  for f in vtest.avi tree.avi starry_night.jpg; do
    src="$(find "$tmp/x" -name "$f" | head -n 1)"
    [ -n "$src" ] || { echo "setup: $f not found in opencv-doc" >&2; exit 1; }
    cp "$src" "$assets/$f"
  done
  rm -rf "$tmp"
fi

echo "setup: done (ONNX Runtime: $ort_lib; media: $assets)"
