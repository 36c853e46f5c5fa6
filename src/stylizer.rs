//! Frames through one engine: frames → batch tensor → inference → frames.

use std::time::Instant;

use crate::engine::{Engine, EngineError, Output};
use crate::frame::{self, Blend, FrameMut, FrameRef, Geometry, TensorFormat, TensorValue};
use crate::model::{Layout, Manifest};

/// Weights of a conditioned model's styles, summing to 1: a mix of styles (Dumoulin et al.
/// 2017 interpolate the conditional instance norm parameters the same way).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleMix {
    weights: [f32; StyleMix::MAX_STYLES],
    len: usize,
}

impl StyleMix {
    /// Most styles a mix can weigh.
    pub const MAX_STYLES: usize = 64;

    /// Parses `spec` for `manifest`'s styles: one weight per style in order (`0.5,0,0.5`), or
    /// `STYLE:WEIGHT` pairs where STYLE is a style's label or index (`starry-night:0.7,2:0.3`;
    /// styles not named weigh 0). Weights must be ≥ 0 and not all 0; they are scaled to sum 1.
    pub fn parse(spec: &str, manifest: &Manifest) -> Result<Self, String> {
        let Some(c) = &manifest.conditioning else {
            return Err(
                "style-weights needs a conditioned multi-style model; this one has a single style"
                    .into(),
            );
        };
        if c.length > Self::MAX_STYLES {
            return Err(format!(
                "style-weights supports models with up to {} styles; this one has {}",
                Self::MAX_STYLES,
                c.length
            ));
        }
        let items: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let number = |v: &str| -> Result<f32, String> {
            v.parse::<f32>()
                .ok()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| format!("style weight '{v}' is not a number ≥ 0"))
        };
        let mut weights = [0f32; Self::MAX_STYLES];
        if items.iter().any(|i| i.contains(':')) {
            for item in &items {
                let (name, w) = item
                    .rsplit_once(':')
                    .ok_or_else(|| format!("'{item}' is not STYLE:WEIGHT"))?;
                let index = c
                    .labels
                    .iter()
                    .position(|l| l == name.trim())
                    .or_else(|| name.trim().parse::<usize>().ok().filter(|&i| i < c.length))
                    .ok_or_else(|| {
                        format!(
                            "unknown style '{}': the model's styles are {}",
                            name.trim(),
                            Self::style_names(c)
                        )
                    })?;
                weights[index] += number(w.trim())?;
            }
        } else {
            if items.len() != c.length {
                return Err(format!(
                    "{} style weights for a model with {} styles ({})",
                    items.len(),
                    c.length,
                    Self::style_names(c)
                ));
            }
            for (slot, item) in weights.iter_mut().zip(&items) {
                *slot = number(item)?;
            }
        }
        let sum: f32 = weights.iter().sum();
        if sum <= 0.0 {
            return Err("style weights are all 0".into());
        }
        weights.iter_mut().for_each(|w| *w /= sum);
        Ok(StyleMix {
            weights,
            len: c.length,
        })
    }

    fn style_names(c: &crate::model::Conditioning) -> String {
        if c.labels.is_empty() {
            format!("0..{}", c.length - 1)
        } else {
            c.labels.join(", ")
        }
    }

    /// One weight per style.
    pub fn weights(&self) -> &[f32] {
        &self.weights[..self.len]
    }
}

/// Per-frame controls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleParams {
    /// Index into the model's conditioning vector (ignored by unconditioned models).
    pub style: usize,
    /// Weights of the model's styles, instead of `style` (conditioned models only).
    pub mix: Option<StyleMix>,
    /// Run the model on the frame scaled by this factor (≤ 1) and scale the result back up.
    pub inference_scale: f32,
    /// How the output is combined with the input.
    pub blend: Blend,
}

impl Default for StyleParams {
    fn default() -> Self {
        Self {
            style: 0,
            mix: None,
            inference_scale: 1.0,
            blend: Blend::default(),
        }
    }
}

/// One frame of a batch: where it comes from, where it goes, and how.
pub struct BatchItem<'a> {
    pub input: FrameRef<'a>,
    pub output: FrameMut<'a>,
    pub params: StyleParams,
}

/// The tensor shape for `batch` images of `geometry` in `layout`.
pub fn tensor_shape(layout: Layout, geometry: &Geometry, batch: usize) -> [usize; 4] {
    match layout {
        Layout::Nchw => [batch, 3, geometry.tensor_height, geometry.tensor_width],
        Layout::Nhwc => [batch, geometry.tensor_height, geometry.tensor_width, 3],
    }
}

/// The tensor geometry `manifest` needs for a `width`×`height` frame with `params`.
pub fn geometry_for(
    manifest: &Manifest,
    width: usize,
    height: usize,
    params: &StyleParams,
) -> Geometry {
    Geometry::fitted(
        width,
        height,
        manifest.size,
        manifest.min_size,
        params.inference_scale,
    )
}

/// The (height, width) of a model output of shape `got` where `expected` was asked for, when
/// only its height and width differ (it is then resized); else why it cannot be used.
fn output_size(
    layout: Layout,
    got: [usize; 4],
    expected: [usize; 4],
) -> Result<(usize, usize), EngineError> {
    let (batch, channels, h, w) = match layout {
        Layout::Nchw => (got[0], got[1], got[2], got[3]),
        Layout::Nhwc => (got[0], got[3], got[1], got[2]),
    };
    if batch != expected[0] || channels != 3 || h == 0 || w == 0 {
        return Err(EngineError::Inference(format!(
            "model output has shape {got:?} for input {expected:?}: rsstyle needs a batch of {} images of 3 channels",
            expected[0]
        )));
    }
    Ok((h, w))
}

/// Where a batch's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchTiming {
    /// Frames to tensor and tensor to frames.
    pub convert: std::time::Duration,
    /// The engine's inference.
    pub infer: std::time::Duration,
}

/// The tensors of engines that take frames as bytes ([`Engine::takes_bytes`]).
pub use crate::frame::bytes::RGB_BYTES as BYTE_FORMAT;

/// A tensor element type an [`Engine`] runs batches of.
trait EngineValue: TensorValue {
    /// The engine and the input tensor of this element type, reused from batch to batch.
    fn buffers(s: &mut Stylizer) -> (&mut dyn Engine, &mut Vec<Self>);
    /// Frame to tensor for this element type, on up to `threads` threads.
    fn to_tensor(
        frame: &FrameRef,
        geometry: &Geometry,
        format: &TensorFormat,
        tensor: &mut [Self],
        threads: usize,
    );
    /// Tensor to frame for this element type, on up to `threads` threads.
    fn to_frame(
        tensor: &[Self],
        geometry: &Geometry,
        format: &TensorFormat,
        blend: &Blend,
        input: &FrameRef,
        out: &mut FrameMut,
        threads: usize,
    );
    fn infer(
        engine: &mut dyn Engine,
        input: &[Self],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: Output<'_, Self>,
    ) -> Result<(), EngineError>;
}

impl EngineValue for f32 {
    fn buffers(s: &mut Stylizer) -> (&mut dyn Engine, &mut Vec<f32>) {
        (s.engine.as_mut(), &mut s.floats)
    }
    fn to_tensor(f: &FrameRef, g: &Geometry, format: &TensorFormat, t: &mut [f32], threads: usize) {
        frame::frame_to_tensor_threads(f, g, format, t, threads)
    }
    fn to_frame(
        t: &[f32],
        g: &Geometry,
        format: &TensorFormat,
        blend: &Blend,
        input: &FrameRef,
        out: &mut FrameMut,
        threads: usize,
    ) {
        frame::tensor_to_frame_threads(t, g, format, blend, input, out, threads)
    }
    fn infer(
        engine: &mut dyn Engine,
        input: &[f32],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: Output<'_, f32>,
    ) -> Result<(), EngineError> {
        engine.infer(input, shape, conditioning, output)
    }
}

impl EngineValue for u8 {
    fn buffers(s: &mut Stylizer) -> (&mut dyn Engine, &mut Vec<u8>) {
        (s.engine.as_mut(), &mut s.bytes)
    }
    fn to_tensor(f: &FrameRef, g: &Geometry, _: &TensorFormat, t: &mut [u8], threads: usize) {
        frame::bytes::frame_to_rgb(f, g, t, threads)
    }
    fn to_frame(
        t: &[u8],
        g: &Geometry,
        _: &TensorFormat,
        blend: &Blend,
        input: &FrameRef,
        out: &mut FrameMut,
        threads: usize,
    ) {
        frame::bytes::rgb_to_frame(t, g, blend, input, out, threads)
    }
    fn infer(
        engine: &mut dyn Engine,
        input: &[u8],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: Output<'_, u8>,
    ) -> Result<(), EngineError> {
        engine.infer_bytes(input, shape, conditioning, output)
    }
}

/// Runs frames through an engine, reusing its buffers from batch to batch.
pub struct Stylizer {
    engine: Box<dyn Engine>,
    floats: Vec<f32>,
    bytes: Vec<u8>,
    conditioning: Vec<f32>,
    /// Threads converting large frames. Engines that take bytes run on a GPU and leave the
    /// host's cores to conversion; on the CPU, ONNX Runtime's threads keep spinning for a while
    /// after each run, and more conversion threads made 640×480 frames slower, not faster.
    conversion_threads: usize,
    /// Output sizes that differed from their input's and were resized, (output, input)
    /// (height, width): each is reported once.
    resized: Vec<((usize, usize), (usize, usize))>,
    /// A warning for the caller to pass on (see [`Stylizer::take_warning`]).
    warning: Option<String>,
}

impl Stylizer {
    pub fn new(engine: Box<dyn Engine>) -> Self {
        let cores = crate::cpu::available();
        Self {
            conversion_threads: if engine.takes_bytes() {
                (cores / 2).clamp(1, 8)
            } else {
                1
            },
            engine,
            floats: Vec::new(),
            bytes: Vec::new(),
            conditioning: Vec::new(),
            resized: Vec::new(),
            warning: None,
        }
    }

    /// The warning the last batch raised, if any: an output of another size than its input,
    /// resized to the frame (raised once for each pair of sizes).
    pub fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    pub fn manifest(&self) -> &Manifest {
        self.engine.manifest()
    }

    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Checks that `params` fit the model (style index in range, style weights of its length).
    pub fn check_params(manifest: &Manifest, params: &StyleParams) -> Result<(), String> {
        let count = manifest.style_count();
        if let Some(mix) = &params.mix
            && manifest.conditioning.is_some()
            && mix.weights().len() != count
        {
            return Err(format!(
                "{} style weights for a model with {count} styles",
                mix.weights().len()
            ));
        }
        if manifest.conditioning.is_some() && params.style >= count {
            return Err(format!(
                "style {} is out of range: the model has {count} style{} (0..{})",
                params.style,
                if count == 1 { "" } else { "s" },
                count - 1
            ));
        }
        Ok(())
    }

    /// Styles a batch of frames in one inference. All frames must need the same tensor
    /// geometry (see [`geometry_for`]).
    pub fn process_batch(&mut self, items: &mut [BatchItem]) -> Result<BatchTiming, EngineError> {
        if self.engine.takes_bytes() {
            self.process::<u8>(items)
        } else {
            self.process::<f32>(items)
        }
    }

    fn process<T: EngineValue>(
        &mut self,
        items: &mut [BatchItem],
    ) -> Result<BatchTiming, EngineError> {
        let Some(first) = items.first() else {
            return Ok(BatchTiming::default());
        };
        let started = Instant::now();
        let bytes = self.engine.takes_bytes();
        let manifest = self.engine.manifest();
        let geometry = geometry_for(
            manifest,
            first.input.width,
            first.input.height,
            &first.params,
        );
        let (in_format, out_format, layout) = if bytes {
            (BYTE_FORMAT, BYTE_FORMAT, Layout::Nhwc)
        } else {
            let input = TensorFormat {
                layout: manifest.layout,
                channel_order: manifest.channel_order,
                range: manifest.input_range,
            };
            let output = TensorFormat {
                range: manifest.output_range,
                ..input
            };
            (input, output, manifest.layout)
        };
        let per_image = 3 * geometry.tensor_pixels();
        // A graph with a fixed batch runs exactly that many images: the rest are blank.
        let images = manifest.max_batch.unwrap_or(1).max(items.len());
        let shape = tensor_shape(layout, &geometry, images);
        for item in items.iter() {
            Self::check_params(manifest, &item.params).map_err(EngineError::Inference)?;
            let g = geometry_for(manifest, item.input.width, item.input.height, &item.params);
            if g != geometry {
                return Err(EngineError::Inference(format!(
                    "a batch mixes frame geometries ({}x{} and {}x{})",
                    g.frame_width, g.frame_height, geometry.frame_width, geometry.frame_height
                )));
            }
        }
        let conditioning = match &manifest.conditioning {
            Some(c) => {
                let mut values = std::mem::take(&mut self.conditioning);
                values.clear();
                values.resize(c.length * images, 0.0);
                // Padding images of a fixed-batch model (no item) take style 0.
                for i in 0..images {
                    let row = &mut values[i * c.length..(i + 1) * c.length];
                    match items
                        .get(i)
                        .map(|item| (&item.params.mix, item.params.style))
                    {
                        Some((Some(mix), _)) => row.copy_from_slice(mix.weights()),
                        Some((None, style)) => row[style] = 1.0,
                        None => row[0] = 1.0,
                    }
                }
                Some(values)
            }
            None => None,
        };

        let threads = self.conversion_threads;
        let known = self.resized.clone();
        let (engine, input) = T::buffers(self);
        input.resize(per_image * images, T::default());
        let (frames, blank) = input.split_at_mut(per_image * items.len());
        for (item, tensor) in items.iter().zip(frames.chunks_exact_mut(per_image)) {
            T::to_tensor(&item.input, &geometry, &in_format, tensor, threads);
        }
        blank.fill(T::default());
        let inferring = Instant::now();
        // The output is converted straight from the engine's memory, while it lends it.
        let mut unpacked: Option<Result<(Instant, Instant), EngineError>> = None;
        let mut resized_now = None;
        let mut unpack = |got: [usize; 4], output: &[T]| {
            let inferred = Instant::now();
            let mut scratch = Vec::new();
            let output = if got == shape {
                output
            } else {
                match output_size(layout, got, shape) {
                    Ok(size) => {
                        let to = (geometry.tensor_height, geometry.tensor_width);
                        scratch.resize(shape.iter().product(), T::default());
                        frame::resize_images(output, size, &mut scratch, to, layout, images);
                        resized_now = Some((size, to));
                        &scratch[..]
                    }
                    Err(e) => {
                        unpacked = Some(Err(e));
                        return;
                    }
                }
            };
            for (item, tensor) in items.iter_mut().zip(output.chunks_exact(per_image)) {
                T::to_frame(
                    tensor,
                    &geometry,
                    &out_format,
                    &item.params.blend,
                    &item.input,
                    &mut item.output,
                    threads,
                );
            }
            unpacked = Some(Ok((inferred, Instant::now())));
        };
        let ran = T::infer(engine, input, shape, conditioning.as_deref(), &mut unpack);
        if let Some(c) = conditioning {
            self.conditioning = c;
        }
        ran?;
        if let Some((from, to)) = resized_now
            && !known.contains(&(from, to))
        {
            self.resized.push((from, to));
            self.warning = Some(format!(
                "the model returned {}x{} images for {}x{} input; resizing its output to the frame",
                from.1, from.0, to.1, to.0
            ));
        }
        let (inferred, unpacked) = unpacked
            .ok_or_else(|| EngineError::Inference("the engine returned no output".to_string()))??;
        Ok(BatchTiming {
            convert: (inferring - started) + (unpacked - inferred),
            infer: inferred - inferring,
        })
    }
}
