//! Inference engines: one [`Engine`] trait, with ONNX Runtime behind it.
//!
//! An engine is built once per model and device before streaming starts and then runs batches
//! of image tensors laid out as the model's [`Manifest`] says.

mod device;
mod onnxruntime;
mod runtime;

pub use device::Device;
pub use onnxruntime::OrtEngine;
pub use runtime::{RuntimeInfo, ort_library};

use crate::model::Manifest;

/// Why an engine could not be built or could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The ONNX Runtime library is missing, too old or not loadable.
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Device(String),
    #[error("ONNX Runtime cannot load '{path}': {reason}")]
    Session { path: String, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Settings an engine is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    pub device: Device,
    /// Intra-op threads for the CPU provider (0: ONNX Runtime's default, one per core).
    pub threads: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            threads: 0,
        }
    }
}

/// A loaded model on one device.
pub trait Engine: Send {
    fn manifest(&self) -> &Manifest;

    /// Where inference runs, e.g. `CPU (ONNX Runtime 1.30.0, 2 threads)`.
    fn device_description(&self) -> &str;

    /// Runs one batch. `input` holds `shape[0]` images laid out as the manifest says, with
    /// `shape` in that layout; `conditioning` holds `shape[0] × K` weights for conditioned
    /// models. The result replaces the contents of `output`; its shape is returned.
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: &mut Vec<f32>,
    ) -> Result<[usize; 4], EngineError>;
}
