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

pub use onnxruntime::LoadNotes;

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use crate::model::{ManifestPatch, Model, ModelError};

/// Builds an engine for a model name claimed by a registered prefix.
pub type EngineFactory = Arc<
    dyn Fn(&str, &EngineOptions) -> Result<(Box<dyn Engine>, LoadNotes), OpenError> + Send + Sync,
>;

static FACTORIES: LazyLock<Mutex<Vec<(String, EngineFactory)>>> = LazyLock::new(Default::default);

/// Lets model names starting with `prefix` (e.g. `"myengine:"`) be opened by `factory`, which
/// receives the rest of the name. Applications embedding rsstyle use this to add engines.
pub fn register_engine(prefix: &str, factory: EngineFactory) {
    let mut factories = FACTORIES.lock().unwrap();
    factories.retain(|(p, _)| p != prefix);
    factories.push((prefix.to_string(), factory));
}

/// Why a model could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Opens `model` — an ONNX file, or a name claimed by a registered engine — on the device in
/// `options`, with the sidecar manifest and overrides applied to ONNX models.
pub fn open(
    model: &str,
    sidecar: Option<&Path>,
    overrides: &ManifestPatch,
    options: &EngineOptions,
) -> Result<(Box<dyn Engine>, LoadNotes), OpenError> {
    let claimed = FACTORIES
        .lock()
        .unwrap()
        .iter()
        .find(|(prefix, _)| model.starts_with(prefix.as_str()))
        .map(|(prefix, f)| (prefix.len(), f.clone()));
    if let Some((skip, factory)) = claimed {
        return factory(&model[skip..], options);
    }
    let model = Model::load(Path::new(model), sidecar, overrides)?;
    let (engine, notes) = OrtEngine::load(&model, options)?;
    Ok((Box::new(engine), notes))
}
