//! Inference engines: one [`Engine`] trait, with ONNX Runtime behind it, or an inference
//! server ([`remote`]).
//!
//! An engine is built once per model and device before streaming starts and then runs batches
//! of image tensors laid out as the model's [`Manifest`] says.

pub mod byte_io;
mod device;
mod onnxruntime;
pub mod remote;
mod runtime;

pub use device::{CudaTuning, Device, FrameIo, TensorRtTuning};
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
    /// An inference server could not be used (unreachable, model missing or not matching,
    /// requests failing); the text names the server, the model and the gRPC status.
    #[error("{0}")]
    Server(String),
}

/// Settings an engine is built with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    pub device: Device,
    /// Intra-op threads for the CPU provider (0: the CPUs this process may use, [`crate::cpu`]).
    pub threads: usize,
    /// Whether frames reach the engine as float tensors or as bytes.
    pub frame_io: FrameIo,
    /// CUDA execution provider settings (ignored on the CPU).
    pub cuda: CudaTuning,
    /// TensorRT execution provider settings (`device=tensorrt` only).
    pub tensorrt: TensorRtTuning,
    /// Record ONNX Runtime's per-node profile into a file whose name starts with this path
    /// (`PATH-<process>-<engine>_<date>_<time>.json`, written when the engine is dropped).
    pub profile: Option<std::path::PathBuf>,
    /// Whether the model's graph is rewritten into faster equivalent operators when it loads
    /// ([`crate::onnx::rewrite`]); `None`: on the CPU only, where the rewrites were measured.
    pub graph_rewrite: Option<bool>,
    /// Which model an inference server runs and how requests go to it
    /// (`device=grpc://…` only).
    pub remote: remote::RemoteOptions,
    /// Whether ONNX Runtime's CPU threads spin while they wait for work
    /// (`session.intra_op.allow_spinning`); spinning threads hold their cores between and
    /// within runs, which other work in the process (frame conversion, decoding) then lacks.
    /// `None`: ONNX Runtime's default (spinning).
    pub cpu_spin: Option<bool>,
}

impl EngineOptions {
    /// The keys [`EngineOptions::apply`] takes, for help texts.
    pub const KEYS: &'static str = "frame-io=auto|float|bytes, cuda-nhwc=true|false, \
         cuda-tf32=true|false, cuda-search=exhaustive|heuristic, cuda-graph=true|false, \
         profile=PATH, graph-rewrite=auto|true|false, cpu-spin=true|false, trt-fp16=true|false, \
         trt-cache=DIR, max-in-flight=N, timeout=MS, retries=N";

    /// Applies comma-separated `key=value` settings (see [`EngineOptions::KEYS`]); an empty
    /// string changes nothing.
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("engine option '{item}' is not KEY=VALUE"))?;
            let flag = || match value.trim() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => Err(format!(
                    "engine option {key}: '{other}' is not true or false"
                )),
            };
            match key.trim() {
                "frame-io" => self.frame_io = value.parse()?,
                "cuda-nhwc" => self.cuda.prefer_nhwc = flag()?,
                "cuda-tf32" => self.cuda.tf32 = flag()?,
                "cuda-graph" => self.cuda.graph = flag()?,
                "trt-fp16" => self.tensorrt.fp16 = flag()?,
                "trt-cache" => {
                    let path = value.trim();
                    self.tensorrt.cache = (!path.is_empty()).then(|| path.into());
                }
                "graph-rewrite" if value.trim() == "auto" => self.graph_rewrite = None,
                "graph-rewrite" => self.graph_rewrite = Some(flag()?),
                key @ ("max-in-flight" | "timeout" | "retries") => {
                    self.remote.set(key, value.trim())?
                }
                "cpu-spin" => self.cpu_spin = Some(flag()?),
                "profile" => {
                    let path = value.trim();
                    self.profile = (!path.is_empty()).then(|| path.into());
                }
                "cuda-search" => {
                    self.cuda.exhaustive_search = match value.trim() {
                        "exhaustive" => true,
                        "heuristic" => false,
                        other => {
                            return Err(format!(
                                "engine option cuda-search: '{other}' is not exhaustive or heuristic"
                            ));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown engine option '{other}': expected {}",
                        Self::KEYS
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where an engine lends its output batch: called once, with the output's shape and values,
/// while the engine still owns them.
pub type Output<'a, T> = &'a mut dyn FnMut([usize; 4], &[T]);

/// A loaded model on one device.
pub trait Engine: Send {
    fn manifest(&self) -> &Manifest;

    /// Where inference runs, e.g. `CPU (ONNX Runtime 1.30.0, 2 threads)`.
    fn device_description(&self) -> &str;

    /// Runs one batch. `input` holds `shape[0]` images laid out as the manifest says, with
    /// `shape` in that layout; `conditioning` holds `shape[0] × K` weights for conditioned
    /// models. On success the result is lent to `output` with its shape (no copy is made).
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: Output<'_, f32>,
    ) -> Result<(), EngineError>;

    /// Whether the engine takes frames as bytes ([`Engine::infer_bytes`]) rather than as float
    /// tensors laid out as the manifest says.
    fn takes_bytes(&self) -> bool {
        false
    }

    /// Runs one batch of `[n, h, w, 3]` RGB bytes (`shape` in that layout) and lends bytes of
    /// the same shape to `output`; the engine does the model's conversions (see [`byte_io`]).
    fn infer_bytes(
        &mut self,
        _input: &[u8],
        _shape: [usize; 4],
        _conditioning: Option<&[f32]>,
        _output: Output<'_, u8>,
    ) -> Result<(), EngineError> {
        Err(EngineError::Inference(
            "this engine takes float tensors, not bytes".to_string(),
        ))
    }
}

pub use onnxruntime::LoadNotes;

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use crate::model::{ManifestPatch, Model, ModelError};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_options_parse_every_key_and_name_bad_ones() {
        let mut o = EngineOptions::default();
        o.apply(
            "frame-io=bytes, cuda-nhwc=true,cuda-tf32=false,cuda-search=heuristic,cuda-graph=1",
        )
        .unwrap();
        assert_eq!(o.frame_io, FrameIo::Bytes);
        assert!(o.cuda.prefer_nhwc && !o.cuda.tf32 && !o.cuda.exhaustive_search && o.cuda.graph);
        o.apply("").unwrap();
        assert_eq!(o.frame_io, FrameIo::Bytes);
        o.apply("profile=/tmp/run 1/prof").unwrap();
        assert_eq!(o.profile, Some("/tmp/run 1/prof".into()));
        o.apply("profile=").unwrap();
        assert_eq!(o.profile, None);
        assert_eq!(o.graph_rewrite, None);
        assert!(o.tensorrt.fp16);
        o.apply("trt-fp16=false, trt-cache=/var/cache/trt").unwrap();
        assert!(!o.tensorrt.fp16);
        assert_eq!(o.tensorrt.cache_folder(), Some("/var/cache/trt".into()));
        o.apply("graph-rewrite=false").unwrap();
        assert_eq!(o.graph_rewrite, Some(false));
        o.apply("graph-rewrite=auto").unwrap();
        assert_eq!(o.graph_rewrite, None);
        assert_eq!(o.cpu_spin, None);
        o.apply("cpu-spin=false").unwrap();
        assert_eq!(o.cpu_spin, Some(false));
        assert_eq!(
            o.apply("graph-rewrite=fast"),
            Err("engine option graph-rewrite: 'fast' is not true or false".to_string())
        );
        assert_eq!(
            o.apply("cuda-nhwc=maybe"),
            Err("engine option cuda-nhwc: 'maybe' is not true or false".to_string())
        );
        assert_eq!(
            o.apply("nhwc"),
            Err("engine option 'nhwc' is not KEY=VALUE".to_string())
        );
        assert!(
            o.apply("speed=max")
                .unwrap_err()
                .starts_with("unknown engine option 'speed'")
        );
    }
}

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
/// `options`, with the sidecar manifest and overrides applied to ONNX models. On an inference
/// server (`Device::Server`) `model` may be empty: the server's model is then described by
/// its metadata (see [`remote`]).
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
    if let Device::Server(address) = &options.device {
        let local = (!model.is_empty()).then(|| Path::new(model));
        let (engine, notes) =
            remote::RemoteEngine::open(address, local, sidecar, overrides, options)?;
        return Ok((Box::new(engine), notes));
    }
    let model = Model::load(Path::new(model), sidecar, overrides)?;
    let (engine, notes) = OrtEngine::load(&model, options)?;
    Ok((Box::new(engine), notes))
}
