# Shared set-up for the pipeline scripts: the plugin path and required variables.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$root/target/release}"
MODEL="${MODEL:-$root/models/paintings.onnx}"
[ -f "$MODEL" ] || { echo "MODEL '$MODEL' does not exist" >&2; exit 1; }
SOURCE="${SOURCE:-v4l2src device=/dev/video0}"
SINK="${SINK:-autovideosink}"
RSSTYLE="${RSSTYLE:-}"
