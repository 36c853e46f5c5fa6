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
}

struct Writer<'a> {
    b: GraphBuilder,
    net: &'a Net,
    fp16: bool,
    upsamples: usize,
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
