#!/usr/bin/env bash
# Install rsstyle where GStreamer and the shell find it, without GST_PLUGIN_PATH or any other
# environment variable; or uninstall it.
#
#   scripts/install.sh                 for this user:
#                                        plugin  ~/.local/share/gstreamer-1.0/plugins/ (the user
#                                                plugin folder GStreamer always searches)
#                                        tool    ~/.local/bin/rsstyle
#                                        files   ~/.local/lib/rsstyle/ (ONNX Runtime, the models)
#   sudo scripts/install.sh --system   for everyone: GStreamer's system plugin folder
#                                      (pkg-config pluginsdir), /usr/local/bin,
#                                      /usr/local/lib/rsstyle/
#   scripts/install.sh --uninstall [--system]   removes what the install put there
#
# Options: --no-build installs what target/ holds already (default: cargo build --release
# first); --debug installs the debug build. Re-running replaces an earlier install.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ort_version="1.30.0"
system=false
uninstall=false
build=true
profile=release
for arg in "$@"; do
  case "$arg" in
    --system) system=true ;;
    --uninstall) uninstall=true ;;
    --no-build) build=false ;;
    --debug) profile=debug ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

if $system; then
  plugins="$(pkg-config --variable=pluginsdir gstreamer-1.0 2>/dev/null || true)"
  [ -n "$plugins" ] || { echo "install: pkg-config does not know GStreamer's plugin folder (run scripts/setup.sh)" >&2; exit 1; }
  bin=/usr/local/bin
  lib=/usr/local/lib/rsstyle
else
  [ -n "${HOME:-}" ] || { echo "install: HOME is not set" >&2; exit 1; }
  plugins="${XDG_DATA_HOME:-$HOME/.local/share}/gstreamer-1.0/plugins"
  bin="$HOME/.local/bin"
  lib="$HOME/.local/lib/rsstyle"
fi

if $uninstall; then
  echo "install: removing $plugins/libgstrsstyle.so, $plugins/rsstyle, $bin/rsstyle, $lib"
  rm -f "$plugins/libgstrsstyle.so" "$plugins/rsstyle" "$bin/rsstyle"
  rm -rf "$lib"
  echo "install: rsstyle uninstalled"
  exit 0
fi

ort="$root/.deps/onnxruntime/libonnxruntime.so.$ort_version"
if [ ! -f "$ort" ]; then
  echo "install: setting up first (scripts/setup.sh)"
  "$root/scripts/setup.sh"
fi
if $build; then
  echo "install: building (cargo build --$profile)"
  if [ "$profile" = release ]; then
    (cd "$root" && cargo build --release)
  else
    (cd "$root" && cargo build)
  fi
fi
target="$root/target/$profile"
for f in "$target/rsstyle" "$target/libgstrsstyle.so"; do
  [ -f "$f" ] || { echo "install: $f is missing: build it first (or drop --no-build)" >&2; exit 1; }
done

echo "install: plugin -> $plugins/libgstrsstyle.so"
echo "install: tool   -> $bin/rsstyle"
echo "install: ONNX Runtime $ort_version and models -> $lib"
mkdir -p "$plugins" "$bin" "$lib/models"
install -m 755 "$target/rsstyle" "$bin/rsstyle"
install -m 644 "$target/libgstrsstyle.so" "$plugins/libgstrsstyle.so"
install -m 644 "$ort" "$lib/libonnxruntime.so.$ort_version"
find "$lib/models" -mindepth 1 -delete
cp "$root"/models/*.onnx "$lib/models/"
for f in "$root"/models/*.json "$root/models/README.md"; do
  [ -f "$f" ] && cp "$f" "$lib/models/"
done
# The plugin finds ONNX Runtime through this link (see src/install.rs).
ln -sfn "$lib" "$plugins/rsstyle"

if env -u GST_PLUGIN_PATH -u GST_PLUGIN_SYSTEM_PATH gst-inspect-1.0 rsstyle >/dev/null 2>&1; then
  echo "install: done: 'gst-inspect-1.0 rsstyle' finds the element"
else
  echo "install: installed, but 'gst-inspect-1.0 rsstyle' does not find the element" >&2
  exit 1
fi
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "install: $bin is not on your PATH yet: open a new login shell (Debian's ~/.profile adds" \
          "~/.local/bin once it exists) or add 'export PATH=\"$bin:\$PATH\"' to your shell's profile" ;;
esac
if $system; then
  echo "install: 'scripts/install.sh --uninstall --system' removes it"
else
  echo "install: 'scripts/install.sh --uninstall' removes it"
fi
