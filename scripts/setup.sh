#!/usr/bin/env bash
# Set up a Debian 12 machine for rsstyle: system packages, the ONNX Runtime
# shared library (from PyPI, into .deps/) and the sample media (into assets/).
# Idempotent: re-running skips what is already in place.
#
#   scripts/setup.sh          what building and running rsstyle needs
#   scripts/setup.sh --test   also what the test suite needs (an old ONNX Runtime
#                             library, to test that it is refused; the VGG16 weights;
#                             Magenta's arbitrary-style networks; Python with Pillow for
#                             the training-data script's tests; Triton Inference Server, for
#                             the remote engine's tests)
set -euo pipefail

with_test_deps=false
for arg in "$@"; do
  case "$arg" in
    --test) with_test_deps=true ;;
    *) echo "setup: unknown option '$arg' (expected --test)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$root/.deps"
assets="$root/assets"
ort_version="1.30.0"

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-base-apps
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav gstreamer1.0-x libgstrtspserver-1.0-dev libclang-dev python3-venv unzip
  libfontconfig1-dev fonts-dejavu-core
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (log: /tmp/rsstyle-apt.log)"
  sudo_if_needed apt-get update -q >/tmp/rsstyle-apt.log 2>&1
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >>/tmp/rsstyle-apt.log 2>&1 || { tail -n 20 /tmp/rsstyle-apt.log >&2; exit 1; }
fi

# fetch_ort VERSION DIR: the ONNX Runtime CPU shared library from the PyPI wheel.
fetch_ort() {
  local version="$1" dir="$2"
  [ -f "$dir/libonnxruntime.so.$version" ] && return 0
  echo "setup: fetching ONNX Runtime $version from PyPI"
  local tmp
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "onnxruntime==$version" -d "$tmp"
  mkdir -p "$dir"
  unzip -q -o -j "$tmp"/onnxruntime-*.whl "onnxruntime/capi/libonnxruntime.so.$version" -d "$dir"
  rm -rf "$tmp"
}

fetch_ort "$ort_version" "$deps/onnxruntime"
if $with_test_deps; then
  fetch_ort 1.29.0 "$deps/onnxruntime-1.29.0"
  # The trainer's tests need the VGG16 weights of the perceptual loss, and Magenta's
  # arbitrary-style networks (the distillation teacher).
  "$root/scripts/fetch-vgg16.sh"
  "$root/scripts/fetch-teacher.sh"
  # The training-data script's tests need Python with Pillow (.deps/data-venv).
  "$root/scripts/fetch-training-data.sh" --venv-only
  # The remote engine's tests run against a real Triton (PyPI nvidia-pytriton, ~125 MB).
  "$root/scripts/setup-triton.sh"
fi

# Sample media from Debian's opencv-doc (OpenCV's sample data, DFSG-free; starry_night.jpg
# is in the public domain): the videos, the style images and photos the trainer uses.
media=(vtest.avi tree.avi starry_night.jpg graf1.png fruits.jpg)
photos=(aero1.jpg aero3.jpg apple.jpg baboon.jpg basketball1.png blox.jpg board.jpg building.jpg
  butterfly.jpg home.jpg leuvenA.jpg messi5.jpg orange.jpg rubberwhale1.png squirrel_cls.jpg stuff.jpg)
have_media=true
for f in "${media[@]}"; do [ -f "$assets/$f" ] || have_media=false; done
for f in "${photos[@]}"; do [ -f "$assets/photos/$f" ] || have_media=false; done
if ! $have_media; then
  echo "setup: fetching sample media (opencv-doc)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1) || {
    sudo_if_needed apt-get update -q
    (cd "$tmp" && apt-get download opencv-doc)
  }
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  data="$tmp/x/usr/share/doc/opencv-doc/examples/data"
  mkdir -p "$assets/photos"
  for f in "${media[@]}"; do
    [ -f "$data/$f" ] || { echo "setup: $f not found in opencv-doc" >&2; exit 1; }
    cp "$data/$f" "$assets/$f"
  done
  for f in "${photos[@]}"; do
    [ -f "$data/$f" ] || { echo "setup: $f not found in opencv-doc" >&2; exit 1; }
    cp "$data/$f" "$assets/photos/$f"
  done
  rm -rf "$tmp"
fi

echo "setup: done (ONNX Runtime: $deps/onnxruntime/libonnxruntime.so.$ort_version; media: $assets)"
