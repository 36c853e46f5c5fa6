//! int8 models: a float32 model's convolutions quantized to int8 ([`crate::onnx::quantize`],
//! QDQ format) with activation ranges calibrated on images, so that ONNX Runtime's CPU
//! provider runs them as `QLinearConv`.
//!
//! Calibration runs the float model through ONNX Runtime on each image, converted to the
//! model's input exactly as the element converts frames (value range, layout, padding to the
//! size multiple), with every style of a conditioned model, and records the smallest and
//! largest value of each tensor the quantized graph needs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use onnx_protobuf::{Message, ModelProto, StringStringEntryProto};
use ort::session::Session;
use ort::value::TensorRef;

use crate::engine::ort_library;
use crate::frame::{FrameRef, Geometry, PixelFormat, TensorFormat, frame_to_tensor};
use crate::model::{ElementType, METADATA_KEY, ManifestPatch, Model};
use crate::onnx::quantize::{self, QuantizeOptions};

/// How to calibrate.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Images (files, or folders searched recursively for `.png` / `.jpg`).
    pub images: Vec<PathBuf>,
    /// Size the images are scaled to before conversion (the size the model will see; for
    /// `inference-scale=0.5` at 640×480, 320×240).
    pub width: u32,
    pub height: u32,
    /// ONNX Runtime threads (0: one per core).
    pub threads: usize,
}

/// What [`quantize_file`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub convs: usize,
    pub total_convs: usize,
    /// Calibration runs: images × styles.
    pub runs: usize,
    pub images: usize,
}

/// Writes an int8 version of the float32 model `input` to `output`, calibrated as
/// `calibration` says. The manifest travels along: embedded (its description notes the
/// quantization) and, if `input` had a sidecar `.json`, a copy beside `output`.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    calibration: &Calibration,
    options: &QuantizeOptions,
) -> anyhow::Result<Report> {
    if ![7, 8].contains(&options.weight_bits) {
        bail!("weight bits must be 7 or 8, not {}", options.weight_bits);
    }
    let model = Model::load(input, None, &ManifestPatch::default())?;
    let manifest = &model.manifest;
    if manifest.element_type != ElementType::F32 {
        bail!(
            "{} is a float16 model; quantize takes a float32 model",
            input.display()
        );
    }
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mut proto = ModelProto::parse_from_bytes(&bytes)
        .with_context(|| format!("decoding {}", input.display()))?;
    let plan = quantize::plan(&proto, options).with_context(|| input.display().to_string())?;
    let tensors = plan.tensors(&proto);

    // The float model with the tensors to calibrate as extra outputs.
    let probe = quantize::with_outputs(&proto, &tensors)
        .write_to_bytes()
        .context("encoding the calibration model")?;
    let runtime = ort_library()?;
    let mut builder = Session::builder(runtime.environment())?;
    if calibration.threads > 0 {
        builder = builder
            .with_intra_threads(calibration.threads)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let mut session = builder
        .commit_from_memory(&probe)
        .with_context(|| format!("loading {} for calibration", input.display()))?;

    let files = crate::train::data::image_files(&calibration.images)?;
    let (w, h) = (calibration.width as usize, calibration.height as usize);
    let geometry = Geometry::scaled(w, h, manifest.size, 1.0);
    let format = TensorFormat {
        layout: manifest.layout,
        channel_order: manifest.channel_order,
        range: manifest.input_range,
    };
    let shape: [usize; 4] = match manifest.layout {
        crate::model::Layout::Nchw => [1, 3, geometry.tensor_height, geometry.tensor_width],
        crate::model::Layout::Nhwc => [1, geometry.tensor_height, geometry.tensor_width, 3],
    };
    let styles = manifest
        .conditioning
        .as_ref()
        .map_or(1, |_| manifest.style_count());
    let mut ranges: HashMap<String, (f32, f32)> = HashMap::new();
    let mut tensor = vec![0f32; 3 * geometry.tensor_pixels()];
    let mut runs = 0;
    for file in &files {
        let image = crate::train::data::load_rgb(file)?;
        let image = image::imageops::resize(
            &image,
            calibration.width,
            calibration.height,
            image::imageops::FilterType::Triangle,
        );
        let frame = FrameRef {
            data: image.as_raw(),
            width: w,
            height: h,
            stride: 3 * w,
            format: PixelFormat::Rgb,
        };
        frame_to_tensor(&frame, &geometry, &format, &mut tensor);
        for style in 0..styles {
            let mut inputs = ort::inputs![
                manifest.input.as_str() => TensorRef::from_array_view((shape, &tensor[..]))?
            ];
            let one_hot: Vec<f32>;
            if let Some(c) = &manifest.conditioning {
                one_hot = (0..c.length).map(|i| f32::from(i == style)).collect();
                let rank2 = session
                    .inputs()
                    .iter()
                    .find(|i| i.name() == c.input)
                    .is_some_and(|i| {
                        matches!(i.dtype(), ort::value::ValueType::Tensor { shape, .. } if shape.len() == 2)
                    });
                let dims = if rank2 {
                    vec![1, c.length]
                } else {
                    vec![c.length]
                };
                inputs.push((
                    c.input.clone().into(),
                    TensorRef::from_array_view((dims, &one_hot[..]))?.into(),
                ));
            }
            let outputs = session
                .run(inputs)
                .with_context(|| format!("calibrating on {}", file.display()))?;
            for name in &tensors {
                let (_, values) = outputs[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .with_context(|| format!("tensor '{name}'"))?;
                let (lo, hi) = values
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                let r = ranges.entry(name.clone()).or_insert((lo, hi));
                *r = (r.0.min(lo), r.1.max(hi));
            }
            runs += 1;
        }
    }
    drop(session);

    let done = quantize::apply(&mut proto, &plan, &ranges, options)?;
    note_quantization(&mut proto, &done, files.len(), calibration, options)?;
    let tmp = output.with_extension("onnx.part");
    std::fs::write(&tmp, proto.write_to_bytes()?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
    let sidecar = input.with_extension("json");
    if sidecar.is_file() {
        let copy = output.with_extension("json");
        std::fs::copy(&sidecar, &copy)
            .with_context(|| format!("copying the manifest to {}", copy.display()))?;
    }
    Ok(Report {
        convs: done.convs,
        total_convs: done.total_convs,
        runs,
        images: files.len(),
    })
}

/// Appends what was quantized and how to the embedded manifest's description (adding an
/// embedded manifest holding only the description where there was none).
fn note_quantization(
    proto: &mut ModelProto,
    done: &quantize::Quantized,
    images: usize,
    calibration: &Calibration,
    options: &QuantizeOptions,
) -> anyhow::Result<()> {
    let note = format!(
        "int8 (QDQ): {} of {} convolutions, {}-bit weights per channel, activations calibrated on {images} images at {}x{}",
        done.convs, done.total_convs, options.weight_bits, calibration.width, calibration.height
    );
    let entry = proto
        .metadata_props
        .iter_mut()
        .find(|e| e.key == METADATA_KEY);
    match entry {
        Some(e) => {
            let mut manifest: serde_json::Value =
                serde_json::from_str(&e.value).context("the embedded manifest")?;
            let description = match manifest.get("description").and_then(|d| d.as_str()) {
                Some(d) => format!("{d}; {note}"),
                None => note,
            };
            manifest["description"] = serde_json::Value::String(description);
            e.value = manifest.to_string();
        }
        None => {
            let mut e = StringStringEntryProto::new();
            e.key = METADATA_KEY.to_string();
            e.value = serde_json::json!({ "description": note }).to_string();
            proto.metadata_props.push(e);
        }
    }
    Ok(())
}
