#!/usr/bin/env python3
"""PyTorch reference benchmark of rsstyle's nets, to run next to `rsstyle bench` on a GPU.

Builds the nets of src/train/nets.rs in torch.nn — the Johnson transformer net (default width 32,
5 residual blocks) and CycleGAN's ResNet generator (default ngf 64, 9 blocks) — with seeded random
weights, or with the weights of one of rsstyle's exported ONNX files, and times them on video
frames the way rsstyle's byte I/O graph runs them: a uint8 RGB HWC frame in pinned host memory is
copied to the GPU, converted to NCHW floats in [-1, 1], run through the net, converted back to
uint8 HWC (clamp, + 0.5, truncate) and copied to pinned host memory, with a synchronize per
frame. Each (arch, size, batch) runs these variants (pick with --variants):

  fp32                      eager, float32, TF32 off (cuDNN convs and matmuls)
  tf32                      eager, float32, TF32 on
  fp16                      eager, float16, NCHW
  fp16-cl                   eager, float16, channels_last
  compile-fp16-cl           torch.compile (mode "default"), float16, channels_last
  compile-fp16-cl-autotune  torch.compile (mode "max-autotune-no-cudagraphs"); only with
                            --max-autotune

The compiled variants also report frames that stay on the GPU (io "device": no host copies).
cuDNN autotuning (torch.backends.cudnn.benchmark) is on, as ONNX Runtime's CUDA provider
searches convolution algorithms too. --time-budget stops starting new variants once that many
seconds have passed since launch (a variant already running, e.g. a compile, is finished).

--train-step times instead one fast-style training step of src/train/style.rs on a Johnson net
(default width 16, 3 blocks, batch 4 of 256² crops): VGG16 (random weights, the layers of
src/train/vgg.rs) features of the output up to relu4_3 and of the input up to the content layer,
content MSE on relu2_2, Gram-matrix MSE against fixed style Grams on relu1_2 … relu4_3, total
variation, backward and an Adam update; float32 with TF32 off, eager. Loading the content batch is
not timed (one fixed random batch on the device).

--check (with --onnx) compares the torch net with onnxruntime's CPU run of the same file on a
random input (needs the onnxruntime package) and prints the max abs difference.

Needs torch and numpy; --onnx also needs the onnx package.

Usage:
  gpu_bench_torch.py [--arch SPEC]... [--sizes WxH,...] [--batch N,...] [--variants V,...]
                     [--max-autotune] [--frames N] [--warmup N] [--time-budget SECONDS]
                     [--device cuda|cpu] [--seed N] [--json FILE]
  gpu_bench_torch.py --onnx MODEL.onnx --arch SPEC [--check [--check-size WxH]] [...]
  gpu_bench_torch.py --train-step [--train-width 16] [--train-blocks 3] [--train-batch 4]
                     [--train-size 256] [--steps N] [--warmup N] [--json FILE]

  SPEC is johnson[:WIDTH:BLOCKS] or resnet[:NGF:BLOCKS] (defaults johnson:32:5, resnet:64:9);
  without --arch both run. Sizes default to 1280x720,1920x1080 for Johnson and 1280x720 for
  ResNet. On --device cpu only the fp32 variant runs.

Examples:
  gpu_bench_torch.py --json torch-gpu.json --time-budget 300
  gpu_bench_torch.py --arch johnson --sizes 1280x720 --variants fp16-cl,compile-fp16-cl
  gpu_bench_torch.py --device cpu --onnx models/starry-night.onnx --arch johnson:16:3 --check
"""

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# InstanceNormalization epsilon of every norm (src/train/layers.rs NORM_EPS).
NORM_EPS = 1e-5

START = time.monotonic()


def log(message: str) -> None:
    """Prints a progress line with the wall-clock time and the seconds since launch."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp} +{time.monotonic() - START:6.1f}s] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# The nets (src/train/nets.rs)


@dataclass(frozen=True)
class Arch:
    kind: str  # "johnson" or "resnet"
    width: int  # Johnson's width or the ResNet generator's ngf
    blocks: int

    @staticmethod
    def parse(spec: str) -> "Arch":
        kind, *numbers = spec.split(":")
        defaults = {"johnson": (32, 5), "resnet": (64, 9)}
        if kind not in defaults or len(numbers) not in (0, 2):
            raise argparse.ArgumentTypeError(
                f"'{spec}': expected johnson[:WIDTH:BLOCKS] or resnet[:NGF:BLOCKS]"
            )
        width, blocks = map(int, numbers) if numbers else defaults[kind]
        return Arch(kind, width, blocks)

    def label(self) -> str:
        return f"{self.kind}:{self.width}:{self.blocks}"


class Residual(nn.Module):
    """`x + body(x)`."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class NetBuilder:
    """nets.rs's Builder: appends layers in order and names each conv, transposed conv and norm
    l1, l2, … in that order, as the ONNX exporter names their initializers (`l7.weight`)."""

    def __init__(self):
        self.layers: list[nn.Module] = []
        self.named: dict[str, nn.Module] = {}

    def _named(self, module: nn.Module) -> "NetBuilder":
        self.named[f"l{len(self.named) + 1}"] = module
        self.layers.append(module)
        return self

    def conv(self, cin: int, cout: int, k: int, stride: int, pad: int, reflect: bool):
        if reflect:
            self.layers.append(nn.ReflectionPad2d(pad))
            pad = 0
        return self._named(nn.Conv2d(cin, cout, k, stride, pad))

    def deconv(self, cin: int, cout: int):
        """4×4 transposed conv, stride 2, padding 1: exactly doubles H and W."""
        return self._named(nn.ConvTranspose2d(cin, cout, 4, 2, 1))

    def norm(self, c: int, affine: bool):
        return self._named(nn.InstanceNorm2d(c, eps=NORM_EPS, affine=affine))

    def then(self, module: nn.Module):
        self.layers.append(module)
        return self

    def residual(self, c: int, affine: bool) -> None:
        outer, self.layers = self.layers, []
        self.conv(c, c, 3, 1, 1, reflect=True).norm(c, affine).then(nn.ReLU())
        self.conv(c, c, 3, 1, 1, reflect=True).norm(c, affine)
        body = nn.Sequential(*self.layers)
        self.layers = outer
        self.layers.append(Residual(body))


def build_net(arch: Arch) -> tuple[nn.Sequential, dict[str, nn.Module]]:
    """The net of `arch` as nets.rs's `Arch::layers` describes it, and its named layers."""
    b = NetBuilder()
    w = arch.width
    if arch.kind == "johnson":
        b.conv(3, w, 9, 1, 4, reflect=True).norm(w, True).then(nn.ReLU())
        b.conv(w, 2 * w, 3, 2, 1, reflect=True).norm(2 * w, True).then(nn.ReLU())
        b.conv(2 * w, 4 * w, 3, 2, 1, reflect=True).norm(4 * w, True).then(nn.ReLU())
        for _ in range(arch.blocks):
            b.residual(4 * w, affine=True)
        b.then(nn.Upsample(scale_factor=2, mode="nearest"))
        b.conv(4 * w, 2 * w, 3, 1, 1, reflect=True).norm(2 * w, True).then(nn.ReLU())
        b.then(nn.Upsample(scale_factor=2, mode="nearest"))
        b.conv(2 * w, w, 3, 1, 1, reflect=True).norm(w, True).then(nn.ReLU())
        b.conv(w, 3, 9, 1, 4, reflect=True).then(nn.Tanh())
    else:
        b.conv(3, w, 7, 1, 3, reflect=True).norm(w, False).then(nn.ReLU())
        b.conv(w, 2 * w, 3, 2, 1, reflect=False).norm(2 * w, False).then(nn.ReLU())
        b.conv(2 * w, 4 * w, 3, 2, 1, reflect=False).norm(4 * w, False).then(nn.ReLU())
        for _ in range(arch.blocks):
            b.residual(4 * w, affine=False)
        b.deconv(4 * w, 2 * w).norm(2 * w, False).then(nn.ReLU())
        b.deconv(2 * w, w).norm(w, False).then(nn.ReLU())
        b.conv(w, 3, 7, 1, 3, reflect=True).then(nn.Tanh())
    return nn.Sequential(*b.layers), b.named


def init_weights(arch: Arch, named: dict[str, nn.Module], seed: int) -> None:
    """nets.rs's initialisation: PyTorch's default for Johnson; N(0, 0.02) weights and zero
    biases for the ResNet generator (its norms have no parameters)."""
    torch.manual_seed(seed)
    for module in named.values():
        module.reset_parameters()
        if arch.kind == "resnet" and isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            nn.init.zeros_(module.bias)


def load_onnx_weights(named: dict[str, nn.Module], path: str) -> None:
    """Copies the `lN.weight` / `lN.bias` initializers of an rsstyle export into the net; fails
    if one is missing, has another shape, or is left over (the file is another architecture)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    wanted = set()
    for name, module in named.items():
        for pname, param in module.named_parameters(recurse=False):
            key = f"{name}.{pname}"
            wanted.add(key)
            if key not in inits:
                sys.exit(f"{path} has no initializer '{key}': is --arch right?")
            value = torch.from_numpy(inits[key].astype(np.float32))
            if value.shape != param.shape:
                sys.exit(f"{path}: '{key}' is {tuple(value.shape)}, the net wants "
                         f"{tuple(param.shape)}: is --arch right?")
            with torch.no_grad():
                param.copy_(value)
    layer_params = {k for k in inits if k.endswith((".weight", ".bias")) and k.startswith("l")}
    if layer_params - wanted:
        sys.exit(f"{path} has weights the net lacks (e.g. {sorted(layer_params - wanted)[0]}): "
                 "is --arch right?")


def make_net(arch: Arch, args: argparse.Namespace) -> nn.Sequential:
    net, named = build_net(arch)
    init_weights(arch, named, args.seed)
    if args.onnx:
        load_onnx_weights(named, args.onnx)
    return net.eval()


# ---------------------------------------------------------------------------------------------
# Frames in and out (src/engine/byte_io.rs)


def frames_to_input(frames: torch.Tensor, dtype: torch.dtype, channels_last: bool):
    """uint8 [n, h, w, 3] → [n, 3, h, w] in [-1, 1]: `v · 2/255 − 1` in float32, then `dtype`.
    The permuted view is already channels_last in memory; NCHW needs a copy."""
    x = frames.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    x = x.to(dtype)
    return x if channels_last else x.contiguous()


def output_to_frames(y: torch.Tensor) -> torch.Tensor:
    """[n, 3, h, w] in [-1, 1] → uint8 [n, h, w, 3]: clamp(v · 127.5 + 127.5, 0, 255) + 0.5,
    truncated."""
    v = (y.float() * 127.5 + 127.5).clamp(0.0, 255.0) + 0.5
    return v.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


# ---------------------------------------------------------------------------------------------
# Variants and timing


@dataclass(frozen=True)
class Variant:
    name: str
    dtype: torch.dtype
    tf32: bool
    channels_last: bool
    compile_mode: str | None


VARIANTS = [
    Variant("fp32", torch.float32, False, False, None),
    Variant("tf32", torch.float32, True, False, None),
    Variant("fp16", torch.float16, False, False, None),
    Variant("fp16-cl", torch.float16, False, True, None),
    Variant("compile-fp16-cl", torch.float16, False, True, "default"),
    Variant("compile-fp16-cl-autotune", torch.float16, False, True, "max-autotune-no-cudagraphs"),
]


def set_tf32(enabled: bool) -> None:
    """TF32 for cuDNN convolutions (on by default in PyTorch) and for matmuls."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(step, device: torch.device, warmup: int, count: int) -> list[float]:
    """Runs `step` `warmup` times, then `count` times timed; milliseconds per call."""
    for _ in range(warmup):
        step()
        synchronize(device)
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def summary(times_ms: list[float], items: int) -> dict:
    """Median and 90th-percentile milliseconds, and items per second at the median."""
    median = statistics.median(times_ms)
    p90 = float(np.percentile(times_ms, 90))
    return {"median_ms": round(median, 3), "p90_ms": round(p90, 3),
            "fps": round(items * 1e3 / median, 2)}


def prepare(net: nn.Module, variant: Variant, device: torch.device):
    """The variant's frame → frame function on a copy of `net` (not yet compiled: that happens
    on its first call)."""
    fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
    model = copy.deepcopy(net).to(device=device, dtype=variant.dtype, memory_format=fmt)

    def stylize(frames: torch.Tensor) -> torch.Tensor:
        x = frames_to_input(frames, variant.dtype, variant.channels_last)
        return output_to_frames(model(x))

    if variant.compile_mode is None:
        return stylize
    torch._dynamo.reset()
    return torch.compile(stylize, mode=variant.compile_mode, dynamic=False)


def bench_variant(net: nn.Module, variant: Variant, shape: tuple[int, int, int],
                  device: torch.device, args: argparse.Namespace) -> list[dict]:
    """Times one variant on host frames (and, compiled, on device frames); one record each."""
    set_tf32(variant.tf32)
    batch, height, width = shape
    pin = device.type == "cuda"
    generator = torch.Generator().manual_seed(args.seed)
    host_in = torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8,
                            generator=generator)
    if pin:
        host_in = host_in.pin_memory()
    host_out = torch.empty_like(host_in, pin_memory=pin)
    stylize = prepare(net, variant, device)

    with torch.no_grad():
        t0 = time.perf_counter()
        stylize(host_in.to(device, non_blocking=True))
        synchronize(device)
        first_s = time.perf_counter() - t0
        if variant.compile_mode:
            log(f"    compiled in {first_s:.1f}s (first call)")

        def host_step():
            out = stylize(host_in.to(device, non_blocking=True))
            host_out.copy_(out, non_blocking=True)

        records = [{"io": "host", "first_call_s": round(first_s, 2),
                    **summary(time_calls(host_step, device, args.warmup, args.frames), batch)}]
        if variant.compile_mode:
            frames = host_in.to(device)
            records.append({"io": "device", **summary(
                time_calls(lambda: stylize(frames), device, args.warmup, args.frames), batch)})
    return records


def environment(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
    }


def size_list(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        w, _, h = item.partition("x")
        sizes.append((int(w), int(h)))
    return sizes


def default_sizes(arch: Arch) -> list[tuple[int, int]]:
    return size_list("1280x720,1920x1080" if arch.kind == "johnson" else "1280x720")


def chosen_variants(args: argparse.Namespace, device: torch.device) -> list[Variant]:
    names = args.variants.split(",") if args.variants else \
        [v.name for v in VARIANTS if v.name != "compile-fp16-cl-autotune" or args.max_autotune]
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; known: {list(known)}")
    if device.type == "cpu":
        dropped = [n for n in names if n != "fp32"]
        if dropped:
            log(f"on the CPU only fp32 runs; skipping {', '.join(dropped)}")
        names = [n for n in names if n == "fp32"]
    return [known[n] for n in names]


def run_benchmark(args: argparse.Namespace, device: torch.device) -> list[dict]:
    env = environment(device)
    log(f"{env}")
    torch.backends.cudnn.benchmark = True
    variants = chosen_variants(args, device)
    records = []
    for arch in args.arch:
        net = make_net(arch, args)
        params = sum(p.numel() for p in net.parameters())
        log(f"{arch.label()}: {params:,} parameters")
        for width, height in args.sizes or default_sizes(arch):
            for batch in args.batch:
                for variant in variants:
                    where = f"{arch.label()} {width}x{height} batch {batch} {variant.name}"
                    if args.time_budget and time.monotonic() - START > args.time_budget:
                        log(f"  skip {where}: time budget of {args.time_budget}s spent")
                        continue
                    log(f"  {where} ...")
                    for rec in bench_variant(net, variant, (batch, height, width), device, args):
                        record = {"arch": arch.label(), "size": f"{width}x{height}",
                                  "batch": batch, "variant": variant.name, **rec,
                                  "frames": args.frames, "warmup": args.warmup, **env}
                        log(f"    io {rec['io']}: {rec['median_ms']} ms median, "
                            f"{rec['p90_ms']} ms p90, {rec['fps']} fps")
                        records.append(record)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    return records


def print_table(records: list[dict]) -> None:
    header = f"{'arch':<16}{'size':>11}{'batch':>6}  {'variant':<26}{'io':<7}" \
             f"{'median ms':>10}{'p90 ms':>9}{'fps':>9}"
    print(header)
    print("-" * len(header))
    for r in records:
        print(f"{r['arch']:<16}{r['size']:>11}{r['batch']:>6}  {r['variant']:<26}{r['io']:<7}"
              f"{r['median_ms']:>10.2f}{r['p90_ms']:>9.2f}{r['fps']:>9.1f}")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# Check against onnxruntime


def check_against_onnxruntime(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Max abs difference between onnxruntime (CPU) and the torch net on one random input, in
    float32 with TF32 off and, on a GPU, in float16 channels_last."""
    import onnxruntime as ort

    (arch,) = args.arch
    width, height = args.check_size
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1, 1, (1, 3, height, width)).astype(np.float32)
    session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    input_type = session.get_inputs()[0].type  # "tensor(float)" or "tensor(float16)"
    feed = x.astype(np.float16) if "float16" in input_type else x
    reference = session.run(None, {session.get_inputs()[0].name: feed})[0].astype(np.float32)
    log(f"onnxruntime {ort.__version__} ran {args.onnx} ({input_type}) on 1x3x{height}x{width}")

    set_tf32(False)
    net = make_net(arch, args)
    checks = [("fp32", torch.float32, torch.contiguous_format)]
    if device.type == "cuda":
        checks.append(("fp16-cl", torch.float16, torch.channels_last))
    records = []
    for name, dtype, fmt in checks:
        model = copy.deepcopy(net).to(device=device, dtype=dtype, memory_format=fmt)
        with torch.no_grad():
            xt = torch.from_numpy(x).to(device=device, dtype=dtype, memory_format=fmt)
            y = model(xt).float().cpu().numpy()
        diff = float(np.abs(y - reference).max())
        log(f"{arch.label()} torch {name} on {device} vs onnxruntime: max abs diff {diff:.3g}")
        records.append({"check": "max_abs_diff_vs_onnxruntime", "arch": arch.label(),
                        "onnx": args.onnx, "size": f"{width}x{height}", "variant": name,
                        "max_abs_diff": diff, **environment(device)})
    return records


# ---------------------------------------------------------------------------------------------
# Training step (src/train/style.rs, vgg.rs, losses.rs)

VGG_BLOCKS = [[3, 64, 64], [64, 128, 128], [128, 256, 256, 256], [256, 512, 512, 512]]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class Vgg16Features(nn.Module):
    """VGG16's first ten convolutions; activations relu1_2, relu2_2, relu3_3, relu4_3."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(cin, cout, 3, 1, 1) for cin, cout in zip(b, b[1:]))
            for b in VGG_BLOCKS
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x01: torch.Tensor, depth: int) -> list[torch.Tensor]:
        x = (x01 - self.mean) / self.std
        features = []
        for i, block in enumerate(self.blocks[:depth]):
            if i > 0:
                x = F.max_pool2d(x, 2)
            for conv in block:
                x = F.relu(conv(x))
            features.append(x)
        return features


def gram(f: torch.Tensor) -> torch.Tensor:
    """`F·Fᵀ / (C·H·W)` per sample."""
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(x[:, :, 1:], x[:, :, :-1]) + F.mse_loss(x[..., 1:], x[..., :-1])


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x + 1.0) * 0.5


def run_train_step(args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Median time of one style training step (style.rs `StyleTask::step`, perceptual loss)."""
    set_tf32(False)
    torch.backends.cudnn.benchmark = True
    arch = Arch("johnson", args.train_width, args.train_blocks)
    net, named = build_net(arch)
    init_weights(arch, named, args.seed)
    net = net.to(device).train()
    vgg = Vgg16Features().to(device).requires_grad_(False)
    # style.rs's defaults: relu2_2 content layer, weights 1e5 / 1e10 / 1e3, Adam lr 1e-3.
    content_layer, content_w, style_w, tv_w = 1, 1e5, 1e10, 1e3
    adam = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)

    g = torch.Generator(device="cpu").manual_seed(args.seed)
    size, batch = args.train_size, args.train_batch
    x = (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(device)
    style01 = torch.rand(1, 3, size, size, generator=g).to(device)
    with torch.no_grad():
        style_grams = [gram(f) for f in vgg(style01, 4)]

    def step():
        y = net(x)
        fy = vgg(to_unit(y), 4)
        with torch.no_grad():
            fx = vgg(to_unit(x), content_layer + 1)
        content = F.mse_loss(fy[content_layer], fx[content_layer]) * content_w
        style = sum(F.mse_loss(gram(f), t.expand(f.shape[0], -1, -1))
                    for f, t in zip(fy, style_grams)) * style_w
        tv = total_variation(to_unit(y)) * tv_w
        adam.zero_grad(set_to_none=True)
        (content + style + tv).backward()
        adam.step()

    where = f"train step {arch.label()} batch {batch}x{size}x{size} fp32 (TF32 off)"
    log(f"{where}: {args.warmup} warm-up + {args.steps} timed steps ...")
    stats = summary(time_calls(step, device, args.warmup, args.steps), 1)
    log(f"  {stats['median_ms']} ms median, {stats['p90_ms']} ms p90, "
        f"{stats['fps']} steps/s ({stats['fps'] * batch:.1f} images/s)")
    return [{"arch": arch.label(), "size": f"{size}x{size}", "batch": batch,
             "variant": "train-step-fp32", "median_ms": stats["median_ms"],
             "p90_ms": stats["p90_ms"], "steps_per_s": stats["fps"], "steps": args.steps,
             "warmup": args.warmup, **environment(device)}]


# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--arch", type=Arch.parse, action="append",
                   help="johnson[:WIDTH:BLOCKS] or resnet[:NGF:BLOCKS] (repeatable)")
    p.add_argument("--sizes", type=size_list, help="WxH,... for every arch")
    p.add_argument("--batch", type=lambda s: [int(b) for b in s.split(",")], default=[1],
                   help="batch sizes, comma-separated (default 1)")
    p.add_argument("--variants", help="comma-separated subset of: "
                   + ", ".join(v.name for v in VARIANTS))
    p.add_argument("--max-autotune", action="store_true",
                   help="also run compile-fp16-cl-autotune")
    p.add_argument("--frames", type=int, default=50, help="timed frames (default 50)")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed frames (after the first call) or training steps (default 10)")
    p.add_argument("--time-budget", type=float,
                   help="start no new variant after this many seconds since launch")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the records to this file")
    p.add_argument("--onnx", help="load the net's weights from this rsstyle export")
    p.add_argument("--check", action="store_true",
                   help="with --onnx: compare with onnxruntime instead of timing")
    p.add_argument("--check-size", type=lambda s: size_list(s)[0], default=(256, 192),
                   help="WxH of the --check input (default 256x192)")
    p.add_argument("--train-step", action="store_true", help="time a style training step")
    p.add_argument("--train-width", type=int, default=16)
    p.add_argument("--train-blocks", type=int, default=3)
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    args = p.parse_args()
    args.arch = args.arch or [Arch.parse("johnson"), Arch.parse("resnet")]
    if args.onnx and len(args.arch) != 1:
        p.error("--onnx needs exactly one --arch (the file's architecture)")
    if args.check and not args.onnx:
        p.error("--check needs --onnx")
    return args


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("CUDA is not available: pass --device cpu")
    if args.train_step:
        records = run_train_step(args, device)
    elif args.check:
        records = check_against_onnxruntime(args, device)
    else:
        records = run_benchmark(args, device)
        print_table(records)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
        log(f"wrote {len(records)} records to {args.json}")


if __name__ == "__main__":
    main()
