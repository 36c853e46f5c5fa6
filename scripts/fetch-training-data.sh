#!/usr/bin/env bash
# Training images for rsstyle's trainer, from Debian packages only, into .deps/training-data/:
#
#   content/train/, content/heldout/   content photos (gcompris-qt-data, lomiri-wallpapers-16.04
#                                      and -20.04, opencv-doc), shorter side <= 768 px, JPEG q95;
#                                      a stratified split by a hash of the name, never mixed
#   content/heldout-eval/              12 varied held-out photos for evaluation tables
#   styles/                            public-domain paintings (Van Gogh, Hokusai, Hiroshige,
#                                      Kandinsky, ...), some reassembled from puzzle pieces
#   ATTRIBUTION.md, attribution.tsv    each image's package, version, path, author, licence, split
#   sources/                           the credit files those were read from
#   build.json                         counts, what was left out and why, reassembly figures
#
# Usage: scripts/fetch-training-data.sh [--force]     (re)build unless already built
#        scripts/fetch-training-data.sh --venv-only   only the Python venv with Pillow
#
# Idempotent: does nothing when the output exists for the current recipe (RECIPE in
# scripts/training_data.py). Needs apt-get (no root: `apt-get download` + `dpkg-deb`; root or
# sudo only if the package lists must be updated first), python3 with venv, and PyPI for
# Pillow (.deps/data-venv). See docs/training-data.md.
set -euo pipefail

force=false
venv_only=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    --venv-only) venv_only=true ;;
    *) echo "fetch-training-data: unknown option '$arg' (expected --force or --venv-only)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.deps/training-data"
venv="$root/.deps/data-venv"
pillow_version="12.3.0"
packages=(gcompris-qt-data lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 opencv-doc)

if ! "$venv/bin/python" -c "import sys, PIL; sys.exit(PIL.__version__ != '$pillow_version')" 2>/dev/null; then
  echo "fetch-training-data: installing Pillow $pillow_version into $venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --only-binary=:all: "pillow==$pillow_version"
fi
$venv_only && exit 0

recipe="$(sed -n 's/^RECIPE = \([0-9]*\).*/\1/p' "$root/scripts/training_data.py")"
stamp="recipe $recipe, pillow $pillow_version"
if ! $force && [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$stamp" ]; then
  echo "fetch-training-data: $out is up to date ($stamp)"
  exit 0
fi

start=$SECONDS
mkdir -p "$root/.deps"
tmp="$(mktemp -d "$root/.deps/training-data.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

echo "fetch-training-data: downloading ${packages[*]}"
mkdir -p "$tmp/debs"
if ! (cd "$tmp/debs" && apt-get download "${packages[@]}" >"$tmp/apt.log" 2>&1); then
  sudo_if_needed apt-get update -q >>"$tmp/apt.log" 2>&1
  (cd "$tmp/debs" && apt-get download "${packages[@]}" >>"$tmp/apt.log" 2>&1) || {
    tail -n 20 "$tmp/apt.log" >&2
    exit 1
  }
fi

# What the recipe reads of each package (like dpkg -x, but only these paths: opencv-doc is
# mostly HTML).
declare -A wanted=(
  [gcompris-qt-data]="./usr/share/gcompris-qt/rcc/* ./usr/share/doc/gcompris-qt-data/copyright"
  [lomiri-wallpapers-16.04]="./usr/share/backgrounds/* ./usr/share/doc/lomiri-wallpapers-16.04/copyright"
  [lomiri-wallpapers-20.04]="./usr/share/backgrounds/* ./usr/share/doc/lomiri-wallpapers-20.04/copyright"
  [opencv-doc]="./usr/share/doc/opencv-doc/examples/data/* ./usr/share/doc/opencv-doc/copyright"
)
args=()
for p in "${packages[@]}"; do
  deb="$(ls "$tmp/debs/${p}"_*.deb)"
  version="$(dpkg-deb -f "$deb" Version)"
  mkdir -p "$tmp/$p"
  read -ra paths <<<"${wanted[$p]}"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/$p" --wildcards "${paths[@]}"
  args+=(--package "$p=$version:$tmp/$p")
done

echo "fetch-training-data: extracting, converting and reassembling (a minute or two)"
rm -rf "$tmp/out"
"$venv/bin/python" "$root/scripts/training_data.py" build "${args[@]}" --out "$tmp/out" >"$tmp/build.json"
mv "$tmp/build.json" "$tmp/out/build.json"
echo "$stamp" >"$tmp/out/.complete"
rm -rf "$out"
mv "$tmp/out" "$out"

"$venv/bin/python" - "$out" "$((SECONDS - start))" <<'PY'
import csv, collections, os, sys
out, seconds = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(os.path.join(out, "attribution.tsv"), encoding="utf-8"), delimiter="\t"))
splits = collections.Counter(r["split"] for r in rows)
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
print(f"fetch-training-data: {splits['train']} training and {splits['heldout']} held-out photos, "
      f"{splits['style']} style images, {size / 2**20:.0f} MiB in {out} ({seconds} s); "
      f"sources and licences: {out}/ATTRIBUTION.md")
PY
