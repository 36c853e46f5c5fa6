"""The fast-style training step of `rsstyle train style` in PyTorch, for side-by-side timing.

Same net as rsstyle's `Arch::Johnson{width, blocks}` (src/train/nets.rs: reflection padding,
affine instance norm with eps 1e-5, nearest ×2 upsampling + conv, 9×9 first and last convs, tanh),
same loss network (VGG16 to relu4_3 from the same safetensors file, inputs mapped from [-1, 1] to
[0, 1] and normalised with ImageNet's mean and std), same losses (content MSE on one layer, Gram
style loss on relu1_2…relu4_3 against the style image's Gram matrices, total variation) and
weights, and Adam. Content crops are random `size`² crops of the content images, flipped at
random.

Prints one JSON object: per-step seconds of the timed steps (after `--warmup` untimed ones), the
losses of the last step, the convolution FLOPs of one step and the machine's sgemm rate.

Used by scripts/bench-train.sh; run with the venv it makes (.deps/torch-venv).
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
BLOCKS = [
    ["conv1_1", "conv1_2"],
    ["conv2_1", "conv2_2"],
    ["conv3_1", "conv3_2", "conv3_3"],
    ["conv4_1", "conv4_2", "conv4_3"],
]


def load_safetensors(path):
    """A safetensors file's float32 tensors (the format: u64 header length, JSON header, data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", f"{name}: {meta['dtype']}"
        a, b = meta["data_offsets"]
        out[name] = torch.from_numpy(
            np.frombuffer(data[a:b], dtype=np.float32).reshape(meta["shape"]).copy()
        )
    return out


class ConvLayer(nn.Sequential):
    def __init__(self, cin, cout, k, stride):
        super().__init__(nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(c, c, 3, 1),
            nn.InstanceNorm2d(c, affine=True, eps=1e-5),
            nn.ReLU(),
            ConvLayer(c, c, 3, 1),
            nn.InstanceNorm2d(c, affine=True, eps=1e-5),
        )

    def forward(self, x):
        return x + self.body(x)


def johnson(width, blocks):
    """rsstyle's `Arch::Johnson { width, blocks }`."""
    w = width

    def cnr(cin, cout, k, stride):
        return [
            ConvLayer(cin, cout, k, stride),
            nn.InstanceNorm2d(cout, affine=True, eps=1e-5),
            nn.ReLU(),
        ]

    layers = cnr(3, w, 9, 1) + cnr(w, 2 * w, 3, 2) + cnr(2 * w, 4 * w, 3, 2)
    layers += [Residual(4 * w) for _ in range(blocks)]
    layers += [nn.Upsample(scale_factor=2, mode="nearest")] + cnr(4 * w, 2 * w, 3, 1)
    layers += [nn.Upsample(scale_factor=2, mode="nearest")] + cnr(2 * w, w, 3, 1)
    layers += [ConvLayer(w, 3, 9, 1), nn.Tanh()]
    return nn.Sequential(*layers)


class Vgg16(nn.Module):
    """VGG16's first ten convolutions, frozen; returns relu1_2 … relu4_3."""

    def __init__(self, path):
        super().__init__()
        t = load_safetensors(path)
        self.blocks = nn.ModuleList()
        for block in BLOCKS:
            convs = nn.ModuleList()
            for name in block:
                w = t[f"{name}.weight"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(t[f"{name}.bias"])
                convs.append(conv)
            self.blocks.append(convs)
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x01, depth=4):
        x = (x01 - self.mean) / self.std
        out = []
        for i, block in enumerate(self.blocks[:depth]):
            if i > 0:
                x = F.max_pool2d(x, 2)
            for conv in block:
                x = F.relu(conv(x))
            out.append(x)
        return out


def gram(f):
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def total_variation(x):
    return F.mse_loss(x[:, :, 1:], x[:, :, :-1]) + F.mse_loss(x[:, :, :, 1:], x[:, :, :, :-1])


def to_tensor(images):
    """RGB uint8 arrays (H, W, 3) → an NCHW batch in [-1, 1]."""
    a = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


def load_content(paths, size):
    """Images scaled so the short side is 1.15 × `size` (as rsstyle's ImageSet does)."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                files += [
                    os.path.join(root, n)
                    for n in sorted(names)
                    if n.lower().endswith((".jpg", ".jpeg", ".png"))
                ]
        else:
            files.append(p)
    images = []
    for f in files:
        img = Image.open(f).convert("RGB")
        s = round(size * 1.15) / min(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.BILINEAR)
        images.append(np.asarray(img))
    return images


def sgemm_gflops(n=2048, reps=5):
    """Median float32 matrix product rate of numpy (the BLAS it ships) in GFLOP/s."""
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


def conv_flops(net, vgg, batch, size, content_depth):
    """Multiply-add FLOPs (2 per MAC) of the convolutions one step needs: the net forward, its
    input gradients (all but the first conv) and weight gradients; VGG on the output forward and
    its input gradients; VGG on the content image forward to the content layer."""
    shapes = []

    def hook(m, inp, out):
        shapes.append(2 * out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1])

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        y = net(torch.zeros(batch, 3, size, size))
    for h in handles:
        h.remove()
    net_fwd = sum(shapes)
    net_total = net_fwd + (net_fwd - shapes[0]) + net_fwd
    shapes.clear()
    handles = [m.register_forward_hook(hook) for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        vgg(y, 4)
        n_full = len(shapes)
        vgg(y, content_depth)
    for h in handles:
        h.remove()
    vgg_y = sum(shapes[:n_full])
    vgg_x = sum(shapes[n_full:])
    return net_total + 2 * vgg_y + vgg_x


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--content", nargs="+", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--vgg", required=True)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--style-size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--content-weight", type=float, default=1e5)
    ap.add_argument("--style-weight", type=float, default=1e10)
    ap.add_argument("--tv-weight", type=float, default=1e3)
    ap.add_argument("--content-layer", type=int, default=1, help="0..3: relu1_2 … relu4_3")
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sgemm", action="store_true", help="also measure numpy's sgemm rate")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)

    net = johnson(a.width, a.blocks)
    vgg = Vgg16(a.vgg)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    style = Image.open(a.style).convert("RGB")
    s = a.style_size / min(style.size)
    style = style.resize((round(style.width * s), round(style.height * s)), Image.BILINEAR)
    with torch.no_grad():
        targets = [gram(f) for f in vgg((to_tensor([np.asarray(style)]) + 1) / 2, 4)]
    content = load_content(a.content, a.size)

    def batch():
        crops = []
        for _ in range(a.batch):
            img = content[rng.integers(len(content))]
            h, w = img.shape[:2]
            y, x = rng.integers(h - a.size + 1), rng.integers(w - a.size + 1)
            c = img[y : y + a.size, x : x + a.size]
            crops.append(c[:, ::-1] if rng.random() < 0.5 else c)
        return to_tensor(crops)

    def step():
        x = batch()
        y = net(x)
        y01 = (y + 1) / 2
        fy = vgg(y01, 4)
        with torch.no_grad():
            fx = vgg((x + 1) / 2, a.content_layer + 1)
        cl = a.content_layer
        content_loss = F.mse_loss(fy[cl], fx[cl]) * a.content_weight
        style_loss = sum(F.mse_loss(gram(f), t.expand(f.shape[0], -1, -1)) for f, t in zip(fy, targets))
        style_loss = style_loss * a.style_weight
        tv = total_variation(y01) * a.tv_weight
        loss = content_loss + style_loss + tv
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {
            "loss_content": content_loss.item(),
            "loss_style": style_loss.item(),
            "loss_tv": tv.item(),
        }

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        losses = step()
        times.append(time.perf_counter() - t)
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "step_s": times,
        "last_losses": losses,
        "conv_flops": conv_flops(net, vgg, a.batch, a.size, a.content_layer + 1),
    }
    if a.sgemm:
        out["numpy_sgemm_gflops"] = sgemm_gflops()
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
