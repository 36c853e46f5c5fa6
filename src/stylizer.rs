//! One frame through one engine: frame → tensor → inference → frame.

use crate::engine::{Engine, EngineError};
use crate::frame::{self, FrameMut, FrameRef, Geometry, TensorFormat};
use crate::model::{Layout, Manifest};

/// Per-frame controls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleParams {
    /// Blend with the input: 1 = fully styled, 0 = the input unchanged.
    pub strength: f32,
    /// Index into the model's conditioning vector (ignored by unconditioned models).
    pub style: usize,
}

impl Default for StyleParams {
    fn default() -> Self {
        Self {
            strength: 1.0,
            style: 0,
        }
    }
}

/// Runs frames through an engine, reusing its buffers from frame to frame.
pub struct Stylizer {
    engine: Box<dyn Engine>,
    input: Vec<f32>,
    output: Vec<f32>,
    conditioning: Vec<f32>,
}

/// The tensor shape for one image of `geometry` in `layout`.
pub fn tensor_shape(layout: Layout, geometry: &Geometry) -> [usize; 4] {
    match layout {
        Layout::Nchw => [1, 3, geometry.tensor_height, geometry.tensor_width],
        Layout::Nhwc => [1, geometry.tensor_height, geometry.tensor_width, 3],
    }
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

    /// Styles `input` into `out` (same size and format).
    pub fn process(
        &mut self,
        input: &FrameRef,
        out: &mut FrameMut,
        params: &StyleParams,
    ) -> Result<(), EngineError> {
        let manifest = self.engine.manifest();
        Self::check_params(manifest, params).map_err(EngineError::Inference)?;
        let geometry = Geometry::new(input.width, input.height, manifest.size);
        let in_format = TensorFormat {
            layout: manifest.layout,
            channel_order: manifest.channel_order,
            range: manifest.input_range,
        };
        let out_format = TensorFormat {
            range: manifest.output_range,
            ..in_format
        };
        let shape = tensor_shape(manifest.layout, &geometry);
        self.input.resize(3 * geometry.tensor_pixels(), 0.0);
        frame::frame_to_tensor(input, &geometry, &in_format, &mut self.input);

        let conditioning = match &manifest.conditioning {
            Some(c) => {
                self.conditioning.clear();
                self.conditioning.resize(c.length, 0.0);
                self.conditioning[params.style] = 1.0;
                Some(&self.conditioning[..])
            }
            None => None,
        };
        let got = self
            .engine
            .infer(&self.input, shape, conditioning, &mut self.output)?;
        if got != shape {
            return Err(EngineError::Inference(format!(
                "model output has shape {got:?} but the input had {shape:?}; rsstyle needs an output the size of its input"
            )));
        }
        frame::tensor_to_frame(
            &self.output,
            &geometry,
            &out_format,
            params.strength,
            input,
            out,
        );
        Ok(())
    }
}
