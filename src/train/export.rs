//! Writes a trained net as an ONNX graph (opset 17, dynamic batch/height/width, float32 or
//! float16) with its manifest embedded, so the element runs it with no other file.

use std::path::Path;

use anyhow::Context;
use candle_core::Tensor;

use super::layers::NORM_EPS;
use super::nets::{LEAKY_SLOPE, Layer, Net, Pad};
use crate::onnx::{Attr, Dim, Elem, GraphBuilder};

/// What to write besides the weights.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Store weights and compute in float16.
    pub fp16: bool,
    /// The manifest's description (what the model does, where it came from).
    pub description: Option<String>,
    /// Write the image-out convolution as one plain convolution rather than through
    /// SpaceToDepth (see `Writer::fits_space_to_depth`), e.g. to compare the two on a device.
    pub plain_output_conv: bool,
}

struct Writer<'a> {
    b: GraphBuilder,
    net: &'a Net,
    fp16: bool,
    upsamples: usize,
    /// How many times smaller than the input the current activation is.
    downscale: usize,
    /// Few-output convolutions at full resolution go through SpaceToDepth.
    space_to_depth: bool,
}

impl Writer<'_> {
    fn weight(&mut self, name: &str) -> anyhow::Result<String> {
        let t: &Tensor = self.net.weight(name);
        let dims: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
        let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
        Ok(self.constant(name, &dims, &data))
    }

    fn constant(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        if self.fp16 {
            self.b.constant_f16(name, dims, data)
        } else {
            self.b.constant_f32(name, dims, data)
        }
    }

    /// Whether a convolution is written as SpaceToDepth → convolution → DepthToSpace: a
    /// stride-1 convolution at full resolution, reflection-padded to keep the size, with few
    /// output channels (the image-out layer). ONNX Runtime's CPU layout pads output channels
    /// to a block of 16, so 3 outputs cost 16; after SpaceToDepth the same convolution has
    /// 4 × 3 = 12 outputs on a quarter of the pixels (a 9×9 kernel becomes 5×5), about twice
    /// as fast at 640×480. Full-resolution sizes are even (size multiple 4), as it needs.
    fn fits_space_to_depth(
        &self,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: Pad,
    ) -> bool {
        self.space_to_depth
            && stride == 1
            && self.downscale == 1
            && self.net.arch.size_multiple().is_multiple_of(2)
            && !k.is_multiple_of(2)
            && k >= 5
            && cout <= 4
            && cout < cin
            && pad == Pad::Reflect(k / 2)
    }

    /// A k×k convolution `name` (see [`Self::fits_space_to_depth`]) as SpaceToDepth(2), a
    /// ⌈k/2⌉×⌈k/2⌉ convolution from 4·cin to 4·cout channels, and DepthToSpace(2). Output
    /// pixel (2i + a, 2j + b) is channel block (a, b) of pixel (i, j); input pixel
    /// (2i + r, 2j + s) is input block (r, s). The weights are the original ones moved, so
    /// the result is the same up to summation order.
    fn conv_space_to_depth(
        &mut self,
        name: &str,
        x: String,
        cin: usize,
        cout: usize,
        k: usize,
    ) -> anyhow::Result<String> {
        let p = (k / 2) as i64;
        let pads = self
            .b
            .constant_i64(&format!("{name}.pads"), &[8], &[0, 0, p, p, 0, 0, p, p]);
        let padded = self
            .b
            .op("Pad", &[&x, &pads], &[Attr::Str("mode", "reflect".into())]);
        let blocks = self
            .b
            .op("SpaceToDepth", &[&padded], &[Attr::Int("blocksize", 2)]);
        let weight: Vec<f32> = self
            .net
            .weight(&format!("{name}.weight"))
            .flatten_all()?
            .to_vec1()?;
        let bias: Vec<f32> = self
            .net
            .weight(&format!("{name}.bias"))
            .flatten_all()?
            .to_vec1()?;
        let k2 = k.div_ceil(2);
        let mut moved = vec![0f32; 4 * cout * 4 * cin * k2 * k2];
        let taps = (0..2).flat_map(|a| (0..2).flat_map(move |b| (0..k).map(move |u| (a, b, u))));
        for (a, b, u) in taps {
            for v in 0..k {
                let (q, r) = ((a + u) / 2, (a + u) % 2);
                let (t, s) = ((b + v) / 2, (b + v) % 2);
                for o in 0..cout {
                    let out = (a * 2 + b) * cout + o;
                    for c in 0..cin {
                        let input = (r * 2 + s) * cin + c;
                        moved[((out * 4 * cin + input) * k2 + q) * k2 + t] +=
                            weight[((o * cin + c) * k + u) * k + v];
                    }
                }
            }
        }
        let moved = self.constant(
            &format!("{name}.weight.space_to_depth"),
            &[4 * cout as i64, 4 * cin as i64, k2 as i64, k2 as i64],
            &moved,
        );
        let bias: Vec<f32> = (0..4).flat_map(|_| bias.iter().copied()).collect();
        let bias = self.constant(
            &format!("{name}.bias.space_to_depth"),
            &[4 * cout as i64],
            &bias,
        );
        let k2 = k2 as i64;
        let y = self.b.op(
            "Conv",
            &[&blocks, &moved, &bias],
            &[Attr::Ints("kernel_shape", vec![k2, k2])],
        );
        Ok(self.b.op(
            "DepthToSpace",
            &[&y],
            &[Attr::Int("blocksize", 2), Attr::Str("mode", "DCR".into())],
        ))
    }

    fn layers(&mut self, layers: &[Layer], mut x: String) -> anyhow::Result<String> {
        for layer in layers {
            x = match layer {
                Layer::Conv {
                    name,
                    cin,
                    cout,
                    k,
                    stride,
                    pad,
                } => {
                    if self.fits_space_to_depth(*cin, *cout, *k, *stride, *pad) {
                        x = self.conv_space_to_depth(name, x, *cin, *cout, *k)?;
                        continue;
                    }
                    self.downscale *= *stride;
                    let (k, s) = (*k as i64, *stride as i64);
                    let (input, zero) = match *pad {
                        Pad::Reflect(p) => {
                            let p = p as i64;
                            let pads = self.b.constant_i64(
                                &format!("{name}.pads"),
                                &[8],
                                &[0, 0, p, p, 0, 0, p, p],
                            );
                            (
                                self.b.op(
                                    "Pad",
                                    &[&x, &pads],
                                    &[Attr::Str("mode", "reflect".into())],
                                ),
                                0,
                            )
                        }
                        Pad::Zero(p) => (x, p as i64),
                    };
                    let w = self.weight(&format!("{name}.weight"))?;
                    let bias = self.weight(&format!("{name}.bias"))?;
                    self.b.op(
                        "Conv",
                        &[&input, &w, &bias],
                        &[
                            Attr::Ints("kernel_shape", vec![k, k]),
                            Attr::Ints("strides", vec![s, s]),
                            Attr::Ints("pads", vec![zero; 4]),
                        ],
                    )
                }
                Layer::Deconv { name, .. } => {
                    self.downscale /= 2;
                    let w = self.weight(&format!("{name}.weight"))?;
                    let bias = self.weight(&format!("{name}.bias"))?;
                    self.b.op(
                        "ConvTranspose",
                        &[&x, &w, &bias],
                        &[
                            Attr::Ints("kernel_shape", vec![4, 4]),
                            Attr::Ints("strides", vec![2, 2]),
                            Attr::Ints("pads", vec![1; 4]),
                        ],
                    )
                }
                Layer::Norm { name, c, affine } => {
                    let (scale, bias) = if *affine {
                        (
                            self.weight(&format!("{name}.weight"))?,
                            self.weight(&format!("{name}.bias"))?,
                        )
                    } else {
                        let c = *c;
                        (
                            self.constant(&format!("{name}.ones"), &[c as i64], &vec![1.0; c]),
                            self.constant(&format!("{name}.zeros"), &[c as i64], &vec![0.0; c]),
                        )
                    };
                    self.b.op(
                        "InstanceNormalization",
                        &[&x, &scale, &bias],
                        &[Attr::Float("epsilon", NORM_EPS as f32)],
                    )
                }
                Layer::Relu => self.b.op("Relu", &[&x], &[]),
                Layer::LeakyRelu => self.b.op(
                    "LeakyRelu",
                    &[&x],
                    &[Attr::Float("alpha", LEAKY_SLOPE as f32)],
                ),
                Layer::Tanh => self.b.op("Tanh", &[&x], &[]),
                Layer::Upsample2 => {
                    self.downscale /= 2;
                    self.upsamples += 1;
                    let name = format!("upsample{}.scales", self.upsamples);
                    let scales = self.b.constant_f32(&name, &[4], &[1.0, 1.0, 2.0, 2.0]);
                    self.b.op(
                        "Resize",
                        &[&x, "", &scales],
                        &[
                            Attr::Str("mode", "nearest".into()),
                            Attr::Str("coordinate_transformation_mode", "asymmetric".into()),
                            Attr::Str("nearest_mode", "floor".into()),
                        ],
                    )
                }
                Layer::Residual(inner) => {
                    let y = self.layers(inner, x.clone())?;
                    self.b.op("Add", &[&y, &x], &[])
                }
            };
        }
        Ok(x)
    }
}

/// The ONNX bytes of `net` (a generator: 3 channels in [-1, 1] in and out).
pub fn onnx_bytes(net: &Net, options: &ExportOptions) -> anyhow::Result<Vec<u8>> {
    let mut w = Writer {
        b: GraphBuilder::new("rsstyle_generator"),
        net,
        fp16: options.fp16,
        upsamples: 0,
        downscale: 1,
        space_to_depth: !options.plain_output_conv,
    };
    let elem = if options.fp16 { Elem::F16 } else { Elem::F32 };
    let dims: [Dim; 4] = ["n".into(), 3.into(), "h".into(), "w".into()];
    let x = w.b.input("input", elem, &dims);
    let y = w.layers(net.layers(), x)?;
    w.b.node("Identity", &[&y], &["output"], &[]);
    w.b.output("output", elem, &dims);
    let description = options
        .description
        .clone()
        .unwrap_or_else(|| net.arch.describe());
    let manifest = serde_json::json!({
        "range": "-1..1",
        "size_multiple": net.arch.size_multiple(),
        "description": description,
    });
    w.b.metadata(crate::model::METADATA_KEY, &manifest.to_string());
    Ok(w.b.to_bytes())
}

/// Writes `net` to `path`.
pub fn write_onnx(net: &Net, options: &ExportOptions, path: &Path) -> anyhow::Result<()> {
    let bytes = onnx_bytes(net, options)?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
