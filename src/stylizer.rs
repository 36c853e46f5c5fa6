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
    Geometry::scaled(width, height, manifest.size, params.inference_scale)
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
}

impl Stylizer {
    pub fn new(engine: Box<dyn Engine>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let experiment: Option<usize> = std::env::var("RSSTYLE_EXPERIMENT_CONVERSION_THREADS")
            .ok()
            .and_then(|v| v.parse().ok());
        Self {
            conversion_threads: if let Some(n) = experiment {
                n
            } else if engine.takes_bytes() {
                (cores / 2).clamp(1, 8)
            } else {
                1
            },
            engine,
            floats: Vec::new(),
            bytes: Vec::new(),
            conditioning: Vec::new(),
        }
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
        let shape = tensor_shape(layout, &geometry, items.len());
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
                values.resize(c.length * items.len(), 0.0);
                for (i, item) in items.iter().enumerate() {
                    values[i * c.length + item.params.style] = 1.0;
                }
                Some(values)
            }
            None => None,
        };

        let threads = self.conversion_threads;
        let (engine, input) = T::buffers(self);
        input.resize(per_image * items.len(), T::default());
        for (item, tensor) in items.iter().zip(input.chunks_exact_mut(per_image)) {
            T::to_tensor(&item.input, &geometry, &in_format, tensor, threads);
        }
        let inferring = Instant::now();
        // The output is converted straight from the engine's memory, while it lends it.
        let mut unpacked: Option<Result<(Instant, Instant), EngineError>> = None;
        let mut unpack = |got: [usize; 4], output: &[T]| {
            let inferred = Instant::now();
            if got != shape {
                unpacked = Some(Err(EngineError::Inference(format!(
                    "model output has shape {got:?} but the input had {shape:?}; rsstyle needs an output the size of its input"
                ))));
                return;
            }
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
        let (inferred, unpacked) = unpacked
            .ok_or_else(|| EngineError::Inference("the engine returned no output".to_string()))??;
        Ok(BatchTiming {
            convert: (inferring - started) + (unpacked - inferred),
            infer: inferred - inferring,
        })
    }
}
