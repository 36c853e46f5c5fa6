#!/usr/bin/env python3
"""Writes a VGG16 safetensors file with random weights, in the layout src/train/vgg.rs loads
(conv1_1 ... conv4_3, OIHW float32 kernels and biases), for timing training steps where the real
ImageNet weights (scripts/fetch-vgg16.sh) are not at hand. Timing does not depend on the values;
the losses and images it trains are meaningless.

    python3 scripts/random_vgg16.py OUT.safetensors [--seed N]
    rsstyle train style --vgg OUT.safetensors ...     (or RSSTYLE_VGG16=OUT.safetensors)

Needs only the Python 3 standard library; uses numpy when it is installed (faster).
Kernels are He-uniform (activations keep their scale through the ReLUs), biases zero.
"""

import argparse
import json
import math
import random
import struct
import sys
from array import array

# (name, input channels, output channels): VGG16 up to relu4_3, as BLOCKS in src/train/vgg.rs.
CONVS = [
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
]


def uniform_f32(n, bound, rng, np_rng):
    """n float32 values uniform in [-bound, bound], as little-endian bytes."""
    if np_rng is not None:
        return np_rng.uniform(-bound, bound, n).astype("<f4").tobytes()
    a = array("f", (bound * (2.0 * rng.random() - 1.0) for _ in range(n)))
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the safetensors file to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        import numpy

        np_rng = numpy.random.default_rng(args.seed)
    except ImportError:
        np_rng = None
    rng = random.Random(args.seed)

    header, blobs, offset = {}, [], 0
    for name, cin, cout in CONVS:
        bound = math.sqrt(6.0 / (cin * 9))
        for suffix, shape, data in [
            ("weight", [cout, cin, 3, 3], uniform_f32(cout * cin * 9, bound, rng, np_rng)),
            ("bias", [cout], bytes(4 * cout)),
        ]:
            header[f"{name}.{suffix}"] = {
                "dtype": "F32",
                "shape": shape,
                "data_offsets": [offset, offset + len(data)],
            }
            blobs.append(data)
            offset += len(data)
    header["__metadata__"] = {
        "source": f"scripts/random_vgg16.py --seed {args.seed}: RANDOM weights, for timing only",
        "layout": "OIHW",
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(args.out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    print(f"wrote {args.out} ({(8 + len(text) + offset) / 1e6:.1f} MB, random VGG16 to conv4_3)")


if __name__ == "__main__":
    main()
