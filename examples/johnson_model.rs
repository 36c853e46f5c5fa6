//! Writes the Johnson et al. fast-style TransformerNet (as in pytorch/examples
//! `fast_neural_style`) as an ONNX model with seeded random weights, for benchmarks.
//!
//! ```text
//! cargo run --release --example johnson_model -- OUT.onnx [--seed N] [--width 32] [--blocks 5]
//! ```
//!
//! Input `input` and output `output` are NCHW float32 `[n, 3, h, w]` in [0, 255]; h and w must be
//! multiples of 4. With width 32 and 5 blocks the net has 1,679,235 parameters.

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
        let [cout, _, k, _] = dims;
        let padded = self.reflect_pad(x, k / 2);
        let w = self.constant("weight", &dims, w);
        let bias = self.constant("bias", &[cout], bias);
        self.b.op(
            "Conv",
            &[&padded, &w, &bias],
            &[
                Attr::Ints("kernel_shape", vec![k, k]),
                Attr::Ints("strides", vec![stride, stride]),
            ],
        )
    }

    /// Affine instance norm (gamma 1, beta 0), optionally followed by ReLU.
    fn norm(&mut self, x: &str, c: usize, relu: bool) -> String {
        let gamma = self.constant("in.gamma", &[c as i64], &vec![1.0; c]);
        let beta = self.constant("in.beta", &[c as i64], &vec![0.0; c]);
        let y = self.b.op(
            "InstanceNormalization",
            &[x, &gamma, &beta],
            &[Attr::Float("epsilon", 1e-5)],
        );
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

    fn residual(&mut self, x: &str, c: i64) -> String {
        let y = self.conv_norm_relu(x, c, c, 3, 1);
        let y = self.conv(&y, c, c, 3, 1);
        let y = self.norm(&y, c as usize, false);
        self.b.op("Add", &[&y, x], &[])
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
        self.conv_norm_relu(&up, cin, cout, 3, 1)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.width > 0 && args.blocks > 0,
        "width and blocks must be positive"
    );
    let (c1, c2, c3) = (args.width, 2 * args.width, 4 * args.width);
    let mut net = Net {
        b: GraphBuilder::new("johnson_transformer_net"),
        rng: Rng(args.seed),
        params: 0,
        layer: 0,
    };
    let dims: [Dim; 4] = ["n".into(), 3.into(), "h".into(), "w".into()];
    let x = net.b.input("input", Elem::F32, &dims);

    let mut y = net.conv_norm_relu(&x, 3, c1, 9, 1);
    y = net.conv_norm_relu(&y, c1, c2, 3, 2);
    y = net.conv_norm_relu(&y, c2, c3, 3, 2);
    for _ in 0..args.blocks {
        y = net.residual(&y, c3);
    }
    y = net.upsample_conv(&y, c3, c2);
    y = net.upsample_conv(&y, c2, c1);

    // Last conv, no activation. He scaling gives outputs of about unit variance; a gain of 40
    // and a bias of 127.5 spread them over [0, 255] so the output looks like an image.
    net.layer += 1;
    let (k, fan_in) = (9, (c1 * 81) as f32);
    let wb = 40.0 * (6.0 / fan_in).sqrt();
    let w: Vec<f32> = (0..3 * c1 * k * k)
        .map(|_| wb * net.rng.next_signed())
        .collect();
    y = net.conv_with(&y, [3, c1, k, k], 1, &w, &[127.5; 3]);
    net.b.node("Identity", &[&y], &["output"], &[]);
    net.b.output("output", Elem::F32, &dims);

    let manifest = serde_json::json!({
        "range": "0..255",
        "size_multiple": 4,
        "description": "Johnson TransformerNet, random weights (benchmark only)",
    });
    net.b
        .metadata(gstrsstyle::model::METADATA_KEY, &manifest.to_string());
    let params = net.params;
    net.b
        .write(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("wrote {} ({params} parameters)", args.out.display());
    Ok(())
}
