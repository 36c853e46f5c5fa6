//! Frames through one engine: frames → batch tensor → inference → frames.

use crate::engine::{Engine, EngineError};
use crate::frame::{self, Blend, FrameMut, FrameRef, Geometry, TensorFormat};
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

/// Runs frames through an engine, reusing its buffers from batch to batch.
pub struct Stylizer {
    engine: Box<dyn Engine>,
    input: Vec<f32>,
    output: Vec<f32>,
    conditioning: Vec<f32>,
}

impl Stylizer {
    pub fn new(engine: Box<dyn Engine>) -> Self {
        Self {
            engine,
            input: Vec::new(),
            output: Vec::new(),
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
        let Some(first) = items.first() else {
            return Ok(BatchTiming::default());
        };
        let started = std::time::Instant::now();
        let manifest = self.engine.manifest();
        let geometry = geometry_for(
            manifest,
            first.input.width,
            first.input.height,
            &first.params,
        );
        let in_format = TensorFormat {
            layout: manifest.layout,
            channel_order: manifest.channel_order,
            range: manifest.input_range,
        };
        let out_format = TensorFormat {
            range: manifest.output_range,
            ..in_format
        };
        let per_image = 3 * geometry.tensor_pixels();
        let shape = tensor_shape(manifest.layout, &geometry, items.len());
        self.input.resize(per_image * items.len(), 0.0);
        for (item, tensor) in items.iter().zip(self.input.chunks_exact_mut(per_image)) {
            Self::check_params(manifest, &item.params).map_err(EngineError::Inference)?;
            let g = geometry_for(manifest, item.input.width, item.input.height, &item.params);
            if g != geometry {
                return Err(EngineError::Inference(format!(
                    "a batch mixes frame geometries ({}x{} and {}x{})",
                    g.frame_width, g.frame_height, geometry.frame_width, geometry.frame_height
                )));
            }
            frame::frame_to_tensor(&item.input, &geometry, &in_format, tensor);
        }

        let conditioning = match &manifest.conditioning {
            Some(c) => {
                self.conditioning.clear();
                self.conditioning.resize(c.length * items.len(), 0.0);
                for (i, item) in items.iter().enumerate() {
                    self.conditioning[i * c.length + item.params.style] = 1.0;
                }
                Some(&self.conditioning[..])
            }
            None => None,
        };
        let inferring = std::time::Instant::now();
        let got = self
            .engine
            .infer(&self.input, shape, conditioning, &mut self.output)?;
        let inferred = std::time::Instant::now();
        if got != shape {
            return Err(EngineError::Inference(format!(
                "model output has shape {got:?} but the input had {shape:?}; rsstyle needs an output the size of its input"
            )));
        }
        for (item, tensor) in items.iter_mut().zip(self.output.chunks_exact(per_image)) {
            frame::tensor_to_frame(
                tensor,
                &geometry,
                &out_format,
                &item.params.blend,
                &item.input,
                &mut item.output,
            );
        }
        Ok(BatchTiming {
            convert: (inferring - started) + inferred.elapsed(),
            infer: inferred - inferring,
        })
    }
}
