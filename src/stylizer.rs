//! Frames through one engine: frames → batch tensor → inference → frames.

use std::time::Instant;

use crate::engine::{Engine, EngineError, Output};
use crate::frame::{self, Blend, FrameMut, FrameRef, Geometry, TensorFormat, TensorValue};
use crate::model::{Layout, Manifest};

/// Per-frame controls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleParams {
    /// Index into the model's conditioning vector (ignored by unconditioned models).
    pub style: usize,
    /// Run the model on the frame scaled by this factor (≤ 1) and scale the result back up.
    pub inference_scale: f32,
    /// How the output is combined with the input.
    pub blend: Blend,
}

impl Default for StyleParams {
    fn default() -> Self {
        Self {
            style: 0,
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

    /// Checks that `params` fit the model (style index in range).
    pub fn check_params(manifest: &Manifest, params: &StyleParams) -> Result<(), String> {
        let count = manifest.style_count();
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
                for (i, style) in (0..images)
                    .map(|i| items.get(i).map_or(0, |item| item.params.style))
                    .enumerate()
                {
                    values[i * c.length + style] = 1.0;
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
