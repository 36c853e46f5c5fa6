#!/usr/bin/env python3
"""Shrinks ONNX Runtime's CUDA provider library for one GPU architecture.

`libonnxruntime_providers_cuda.so` embeds GPU code for every architecture from sm_75 to
sm_120 (~200 MiB of its ~270 MB). This rewrites the file in place of a copy, zeroing the GPU
code of every other architecture in each fat binary that also holds code for the kept one, so
that the file compresses to a fraction of its size. Offsets and lengths are unchanged; the
CUDA driver picks the kept architecture's code, and it never reads the zeroed entries.

Usage: slim_cuda_provider.py IN OUT [--arch 90]
"""
import argparse
import struct
import sys

FATBIN_MAGIC = 0xBA55ED50
KIND_PTX, KIND_ELF = 1, 2


def entries(data, start, end):
    """Yields (header offset, header size, payload size, kind, arch) of a fat binary's entries."""
    pos = start
    while pos + 32 <= end:
        kind, _, header_size, size = struct.unpack_from("<HHIQ", data, pos)
        if kind not in (KIND_PTX, KIND_ELF) or header_size < 32 or pos + header_size + size > end:
            return
        arch = struct.unpack_from("<I", data, pos + 28)[0]
        yield pos, header_size, size, kind, arch
        pos += header_size + size


def slim(data, arch):
    kept = zeroed = containers = 0
    pos = 0
    magic = struct.pack("<I", FATBIN_MAGIC)
    while True:
        pos = data.find(magic, pos)
        if pos < 0:
            break
        _, header_size, total = struct.unpack_from("<HHQ", data, pos + 4)
        start, end = pos + header_size, pos + header_size + total
        if header_size != 16 or end > len(data):
            pos += 4
            continue
        items = list(entries(data, start, end))
        containers += 1
        if any(k == KIND_ELF and a == arch for _, _, _, k, a in items):
            for off, hsize, size, kind, a in items:
                if a == arch and kind == KIND_ELF:
                    kept += size
                else:
                    data[off + hsize : off + hsize + size] = bytes(size)
                    zeroed += size
        else:
            kept += sum(size for _, _, size, _, _ in items)
        pos = end
    return containers, kept, zeroed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--arch", type=int, default=90, help="SM architecture to keep (90: H100/H200)")
    args = ap.parse_args()
    with open(args.input, "rb") as f:
        data = bytearray(f.read())
    containers, kept, zeroed = slim(data, args.arch)
    if containers == 0:
        sys.exit(f"{args.input}: no CUDA fat binaries found")
    with open(args.output, "wb") as f:
        f.write(data)
    mib = 1 << 20
    print(f"{containers} fat binaries: kept {kept / mib:.1f} MiB, zeroed {zeroed / mib:.1f} MiB")


if __name__ == "__main__":
    main()
