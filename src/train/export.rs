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
    /// Names of a conditioned net's styles, in order (`inspect` lists them; the element's
    /// `style-weights` property accepts them).
    pub style_labels: Vec<String>,
}

/// Name of a conditioned model's style-weights input (`[N, S]`).
pub const STYLE_INPUT: &str = "style";

struct Writer<'a> {
    b: GraphBuilder,
    net: &'a Net,
    fp16: bool,
    upsamples: usize,
    /// The style-weights input of a conditioned net.
    styles: Option<String>,
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

    fn layers(&mut self, layers: &[Layer], mut x: String) -> anyhow::Result<String> {
        for layer in layers {
            x = match layer {
                Layer::Conv {
                    name,
                    k,
                    stride,
                    pad,
                    ..
                } => {
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
                Layer::Norm {
                    name,
                    c,
                    affine: true,
                } if self.styles.is_some() => {
                    // Conditional instance norm: plain instance norm, then the per-sample scale
                    // and shift `style · S`, `[N, S] × [S, C]`, as `[N, C, 1, 1]`.
                    let c = *c;
                    let ones = self.constant(&format!("{name}.ones"), &[c as i64], &vec![1.0; c]);
                    let zeros = self.constant(&format!("{name}.zeros"), &[c as i64], &vec![0.0; c]);
                    let normed = self.b.op(
                        "InstanceNormalization",
                        &[&x, &ones, &zeros],
                        &[Attr::Float("epsilon", NORM_EPS as f32)],
                    );
                    let styles = self.styles.clone().expect("conditioned");
                    let axes = self.b.constant_i64(&format!("{name}.axes"), &[2], &[2, 3]);
                    let mut per_sample = |p: &str| -> anyhow::Result<String> {
                        let stack = self.net.style_stack(&format!("{name}.{p}"))?;
                        let data: Vec<f32> = stack.flatten_all()?.to_vec1()?;
                        let s = self.net.styles as i64;
                        let table =
                            self.constant(&format!("{name}.{p}.styles"), &[s, c as i64], &data);
                        let rows = self.b.op("MatMul", &[&styles, &table], &[]);
                        Ok(self.b.op("Unsqueeze", &[&rows, &axes], &[]))
                    };
                    let scale = per_sample("weight")?;
                    let shift = per_sample("bias")?;
                    let scaled = self.b.op("Mul", &[&normed, &scale], &[]);
                    self.b.op("Add", &[&scaled, &shift], &[])
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
                Layer::ExportClip => {
                    // Scalars of the input's type (fp16 in an fp16 export), as Clip requires.
                    let lo = self.constant("clip.min", &[], &[-1.0]);
                    let hi = self.constant("clip.max", &[], &[1.0]);
                    self.b.op("Clip", &[&x, &lo, &hi], &[])
                }
                Layer::Upsample2 => {
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
        styles: None,
    };
    let elem = if options.fp16 { Elem::F16 } else { Elem::F32 };
    let dims: [Dim; 4] = ["n".into(), 3.into(), "h".into(), "w".into()];
    let x = w.b.input("input", elem, &dims);
    if net.styles > 1 {
        if !options.style_labels.is_empty() && options.style_labels.len() != net.styles {
            anyhow::bail!(
                "{} style labels for a net with {} styles",
                options.style_labels.len(),
                net.styles
            );
        }
        w.styles = Some(w.b.input(STYLE_INPUT, elem, &["n".into(), (net.styles as i64).into()]));
    }
    let y = w.layers(net.layers(), x)?;
    w.b.node("Identity", &[&y], &["output"], &[]);
    w.b.output("output", elem, &dims);
    let description = options
        .description
        .clone()
        .unwrap_or_else(|| net.arch.describe());
    let mut manifest = serde_json::json!({
        "range": "-1..1",
        "size_multiple": net.arch.size_multiple(),
        "description": description,
    });
    if net.styles > 1 {
        manifest["conditioning"] = serde_json::json!({
            "input": STYLE_INPUT,
            "labels": options.style_labels,
        });
    }
    w.b.metadata(crate::model::METADATA_KEY, &manifest.to_string());
    Ok(w.b.to_bytes())
}

/// Writes `net` to `path`.
pub fn write_onnx(net: &Net, options: &ExportOptions, path: &Path) -> anyhow::Result<()> {
    let bytes = onnx_bytes(net, options)?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
