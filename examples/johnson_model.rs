//! Writes the Johnson et al. fast-style TransformerNet (as in pytorch/examples
//! `fast_neural_style`) as an ONNX model with seeded random weights, for benchmarks — and
//! cheaper variants of it, to measure before training them:
//!
//! - `--stem s2d`: no full-resolution layer at the input: SpaceToDepth(2) (3 → 12 channels at
//!   half resolution) and a 5×5 convolution to `2·width` channels replace the 9×9 convolution
//!   and the first stride-2 convolution.
//! - `--head s2d`: the output convolution at half resolution: after the first upsampling, a
//!   5×5 convolution to 12 channels and DepthToSpace(2) replace the second upsampling
//!   convolution and the 9×9 output convolution.
//! - `--residual separable`: residual blocks of depthwise 3×3 + pointwise 1×1 convolutions.
//! - `--styles K`: conditional instance norm over K styles (a second input `style` `[n, K]`;
//!   scale and shift `style · table` after each plain instance norm), as rsstyle's exporter
//!   writes multi-style nets.
//!
//! ```text
//! cargo run --release --example johnson_model -- OUT.onnx [--seed N] [--width 32] [--blocks 5]
//!     [--stem 9x9|s2d] [--head 9x9|s2d] [--residual full|separable] [--styles K]
//! ```
//!
//! Input `input` and output `output` are NCHW float32 `[n, 3, h, w]` in [0, 255]; h and w must be
//! multiples of 4. With width 32 and 5 blocks the net has 1,679,235 parameters. It prints the
//! parameters and the multiply-adds per output pixel (×2: FLOP/px).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use gstrsstyle::onnx::{Attr, Dim, Elem, GraphBuilder};

#[derive(Parser)]
#[command(about = "Write a random-weight Johnson TransformerNet as ONNX (benchmark only)")]
struct Args {
    /// Where to write the model.
    out: PathBuf,
    /// Seed for the pseudo-random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Channels of the first layer (32 in the paper); later layers use 2× and 4× this.
    #[arg(long, default_value_t = 32)]
    width: i64,
    /// Residual blocks.
    #[arg(long, default_value_t = 5)]
    blocks: usize,
    /// The layers at the input: `9x9` (the paper's) or `s2d` (see above).
    #[arg(long, default_value = "9x9")]
    stem: String,
    /// The layers at the output: `9x9` (the paper's) or `s2d` (see above).
    #[arg(long, default_value = "9x9")]
    head: String,
    /// Residual blocks: `full` 3×3 convolutions or `separable` (depthwise + pointwise).
    #[arg(long, default_value = "full")]
    residual: String,
    /// Styles of a conditioned net (0: unconditioned).
    #[arg(long, default_value_t = 0)]
    styles: usize,
}

/// SplitMix64: a small, seedable generator, enough for random weights.
struct Rng(u64);

impl Rng {
    /// Uniform in [-1, 1).
    fn next_signed(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

struct Net {
    b: GraphBuilder,
    rng: Rng,
    params: usize,
    layer: usize,
    /// Multiply-adds per output pixel so far.
    macs_per_px: f64,
    /// Pixels of the current tensor per output pixel (1 at full resolution, 1/4 at half).
    density: f64,
    /// The `style` input of a conditioned net, and its number of styles.
    styles: Option<(String, usize)>,
}

impl Net {
    fn constant(&mut self, what: &str, dims: &[i64], data: &[f32]) -> String {
        self.params += data.len();
        self.b
            .constant_f32(&format!("l{}.{what}", self.layer), dims, data)
    }

    /// Reflection padding by `p` pixels on each side of H and W.
    fn reflect_pad(&mut self, x: &str, p: i64) -> String {
        let pads = self.b.constant_i64(
            &format!("l{}.pads", self.layer),
            &[8],
            &[0, 0, p, p, 0, 0, p, p],
        );
        self.b
            .op("Pad", &[x, &pads], &[Attr::Str("mode", "reflect".into())])
    }

    /// Reflection pad + k×k convolution, He-uniform weights and PyTorch-style bias.
    fn conv(&mut self, x: &str, cin: i64, cout: i64, k: i64, stride: i64) -> String {
        self.layer += 1;
        let fan_in = (cin * k * k) as f32;
        let (wb, bb) = ((6.0 / fan_in).sqrt(), 1.0 / fan_in.sqrt());
        let w: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| wb * self.rng.next_signed())
            .collect();
        let bias: Vec<f32> = (0..cout).map(|_| bb * self.rng.next_signed()).collect();
        self.conv_with(x, [cout, cin, k, k], stride, &w, &bias)
    }

    /// Reflection pad + convolution with the given OIHW weights.
    fn conv_with(
        &mut self,
        x: &str,
        dims: [i64; 4],
        stride: i64,
        w: &[f32],
        bias: &[f32],
    ) -> String {
        self.grouped_conv(x, dims, stride, 1, w, bias)
    }

    /// Reflection pad + convolution in `groups` groups with the given weights
    /// (`[cout, cin / groups, k, k]`).
    fn grouped_conv(
        &mut self,
        x: &str,
        dims: [i64; 4],
        stride: i64,
        groups: i64,
        w: &[f32],
        bias: &[f32],
    ) -> String {
        let [cout, cin_per_group, k, _] = dims;
        self.density /= (stride * stride) as f64;
        self.macs_per_px += self.density * (cout * cin_per_group * k * k) as f64;
        let padded = if k > 1 {
            self.reflect_pad(x, k / 2)
        } else {
            x.to_string()
        };
        let w = self.constant("weight", &dims, w);
        let bias = self.constant("bias", &[cout], bias);
        self.b.op(
            "Conv",
            &[&padded, &w, &bias],
            &[
                Attr::Ints("kernel_shape", vec![k, k]),
                Attr::Ints("strides", vec![stride, stride]),
                Attr::Int("group", groups),
            ],
        )
    }

    /// Depthwise 3×3 then pointwise 1×1 convolution, `c` channels.
    fn separable_conv(&mut self, x: &str, c: i64) -> String {
        self.layer += 1;
        let dw: Vec<f32> = (0..c * 9)
            .map(|_| (6.0f32 / 9.0).sqrt() * self.rng.next_signed())
            .collect();
        let zero = vec![0.0; c as usize];
        let y = self.grouped_conv(x, [c, 1, 3, 3], 1, c, &dw, &zero);
        self.layer += 1;
        let fan_in = c as f32;
        let pw: Vec<f32> = (0..c * c)
            .map(|_| (6.0 / fan_in).sqrt() * self.rng.next_signed())
            .collect();
        let bias: Vec<f32> = (0..c)
            .map(|_| self.rng.next_signed() / fan_in.sqrt())
            .collect();
        self.grouped_conv(&y, [c, c, 1, 1], 1, 1, &pw, &bias)
    }

    /// Affine instance norm (gamma 1, beta 0) — or, in a conditioned net, plain instance
    /// norm followed by the per-sample scale and shift `style · table` — optionally followed
    /// by ReLU.
    fn norm(&mut self, x: &str, c: usize, relu: bool) -> String {
        let y = match self.styles.clone() {
            None => {
                let gamma = self.constant("in.gamma", &[c as i64], &vec![1.0; c]);
                let beta = self.constant("in.beta", &[c as i64], &vec![0.0; c]);
                self.b.op(
                    "InstanceNormalization",
                    &[x, &gamma, &beta],
                    &[Attr::Float("epsilon", 1e-5)],
                )
            }
            Some((style, k)) => {
                let ones = self.constant("in.ones", &[c as i64], &vec![1.0; c]);
                let zeros = self.constant("in.zeros", &[c as i64], &vec![0.0; c]);
                let normed = self.b.op(
                    "InstanceNormalization",
                    &[x, &ones, &zeros],
                    &[Attr::Float("epsilon", 1e-5)],
                );
                let axes = self
                    .b
                    .constant_i64(&format!("l{}.in.axes", self.layer), &[2], &[2, 3]);
                let mut per_sample = |what: &str, around: f32| {
                    let table: Vec<f32> = (0..k * c)
                        .map(|_| around + 0.1 * self.rng.next_signed())
                        .collect();
                    let t = self.constant(what, &[k as i64, c as i64], &table);
                    let rows = self.b.op("MatMul", &[&style, &t], &[]);
                    self.b.op("Unsqueeze", &[&rows, &axes], &[])
                };
                let scale = per_sample("in.styles.weight", 1.0);
                let shift = per_sample("in.styles.bias", 0.0);
                let scaled = self.b.op("Mul", &[&normed, &scale], &[]);
                self.b.op("Add", &[&scaled, &shift], &[])
            }
        };
        if relu {
            self.b.op("Relu", &[&y], &[])
        } else {
            y
        }
    }

    fn conv_norm_relu(&mut self, x: &str, cin: i64, cout: i64, k: i64, stride: i64) -> String {
        let y = self.conv(x, cin, cout, k, stride);
        self.norm(&y, cout as usize, true)
    }

    fn residual(&mut self, x: &str, c: i64, separable: bool) -> String {
        let y = if separable {
            let y = self.separable_conv(x, c);
            let y = self.norm(&y, c as usize, true);
            let y = self.separable_conv(&y, c);
            self.norm(&y, c as usize, false)
        } else {
            let y = self.conv_norm_relu(x, c, c, 3, 1);
            let y = self.conv(&y, c, c, 3, 1);
            self.norm(&y, c as usize, false)
        };
        self.b.op("Add", &[&y, x], &[])
    }

    /// `op` (SpaceToDepth or DepthToSpace) with block size 2.
    fn blocks(&mut self, op: &str, x: &str) -> String {
        self.density *= if op == "SpaceToDepth" { 0.25 } else { 4.0 };
        let mut attrs = vec![Attr::Int("blocksize", 2)];
        if op == "DepthToSpace" {
            attrs.push(Attr::Str("mode", "DCR".into()));
        }
        self.b.op(op, &[x], &attrs)
    }

    /// Nearest-neighbour ×2 upsampling, then conv + IN + ReLU.
    fn upsample_conv(&mut self, x: &str, cin: i64, cout: i64) -> String {
        let scales = self.b.constant_f32(
            &format!("l{}.scales", self.layer + 1),
            &[4],
            &[1.0, 1.0, 2.0, 2.0],
        );
        let up = self.b.op(
            "Resize",
            &[x, "", &scales],
            &[
                Attr::Str("mode", "nearest".into()),
                Attr::Str("coordinate_transformation_mode", "asymmetric".into()),
                Attr::Str("nearest_mode", "floor".into()),
            ],
        );
        self.density *= 4.0;
        self.conv_norm_relu(&up, cin, cout, 3, 1)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.width > 0 && args.blocks > 0,
        "width and blocks must be positive"
    );
    let choice = |name: &str, value: &str, options: [&str; 2]| -> anyhow::Result<bool> {
        anyhow::ensure!(
            options.contains(&value),
            "--{name} must be {} or {}, not '{value}'",
            options[0],
            options[1]
        );
        Ok(value == options[1])
    };
    let s2d_stem = choice("stem", &args.stem, ["9x9", "s2d"])?;
    let s2d_head = choice("head", &args.head, ["9x9", "s2d"])?;
    let separable = choice("residual", &args.residual, ["full", "separable"])?;
    let (c1, c2, c3) = (args.width, 2 * args.width, 4 * args.width);
    let mut net = Net {
        b: GraphBuilder::new("johnson_transformer_net"),
        rng: Rng(args.seed),
        params: 0,
        layer: 0,
        macs_per_px: 0.0,
        density: 1.0,
        styles: None,
    };
    let dims: [Dim; 4] = ["n".into(), 3.into(), "h".into(), "w".into()];
    let x = net.b.input("input", Elem::F32, &dims);
    if args.styles > 0 {
        let k = args.styles as i64;
        let style = net.b.input("style", Elem::F32, &["n".into(), k.into()]);
        net.styles = Some((style, args.styles));
    }

    let mut y = if s2d_stem {
        let blocks = net.blocks("SpaceToDepth", &x);
        net.conv_norm_relu(&blocks, 12, c2, 5, 1)
    } else {
        let y = net.conv_norm_relu(&x, 3, c1, 9, 1);
        net.conv_norm_relu(&y, c1, c2, 3, 2)
    };
    y = net.conv_norm_relu(&y, c2, c3, 3, 2);
    for _ in 0..args.blocks {
        y = net.residual(&y, c3, separable);
    }
    y = net.upsample_conv(&y, c3, c2);
    // Last conv, no activation. He scaling gives outputs of about unit variance; a gain of 40
    // and a bias of 127.5 spread them over [0, 255] so the output looks like an image.
    let (cin, cout, k) = if s2d_head { (c2, 12, 5) } else { (c1, 3, 9) };
    if !s2d_head {
        y = net.upsample_conv(&y, c2, c1);
    }
    net.layer += 1;
    let fan_in = (cin * k * k) as f32;
    let wb = 40.0 * (6.0 / fan_in).sqrt();
    let w: Vec<f32> = (0..cout * cin * k * k)
        .map(|_| wb * net.rng.next_signed())
        .collect();
    y = net.conv_with(&y, [cout, cin, k, k], 1, &w, &vec![127.5; cout as usize]);
    if s2d_head {
        y = net.blocks("DepthToSpace", &y);
    }
    net.b.node("Identity", &[&y], &["output"], &[]);
    net.b.output("output", Elem::F32, &dims);

    let mut manifest = serde_json::json!({
        "range": "0..255",
        "size_multiple": 4,
        "description": "Johnson TransformerNet, random weights (benchmark only)",
    });
    if args.styles > 0 {
        manifest["conditioning"] = serde_json::json!({ "input": "style" });
    }
    net.b
        .metadata(gstrsstyle::model::METADATA_KEY, &manifest.to_string());
    let params = net.params;
    net.b
        .write(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ({params} parameters, {:.1} kFLOP/px)",
        args.out.display(),
        2.0 * net.macs_per_px / 1e3
    );
    Ok(())
}
