//! The ONNX Runtime engine.

use half::f16;
use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};

use super::{Device, Engine, EngineError, EngineOptions, runtime};
use crate::model::{ElementType, Manifest, Model};

/// A model loaded into one ONNX Runtime session.
pub struct OrtEngine {
    session: Session,
    manifest: Manifest,
    description: String,
    /// Rank of the conditioning input (1: `[K]`, 2: `[N, K]`).
    conditioning_rank: usize,
    /// Reused half-precision input buffer for float16 models.
    half_input: Vec<f16>,
    half_conditioning: Vec<f16>,
}

/// What building an engine had to say besides success (e.g. a device fallback).
#[derive(Debug, Default, Clone)]
pub struct LoadNotes {
    pub warnings: Vec<String>,
}

impl OrtEngine {
    /// Builds a session for `model` on the device in `options`.
    pub fn load(model: &Model, options: &EngineOptions) -> Result<(Self, LoadNotes), EngineError> {
        let runtime = runtime::ort_library()?;
        let mut notes = LoadNotes::default();
        let path = model.path.display().to_string();
        let session_err = |reason: String| EngineError::Session {
            path: path.clone(),
            reason,
        };

        let mut builder =
            Session::builder(runtime.environment()).map_err(|e| session_err(e.to_string()))?;
        if options.threads > 0 {
            builder = builder
                .with_intra_threads(options.threads)
                .map_err(|e| session_err(e.to_string()))?;
        }
        let threads = if options.threads > 0 {
            format!("{} threads", options.threads)
        } else {
            "default threads".to_string()
        };
        let mut description = format!("CPU (ONNX Runtime {}, {threads})", runtime.version);

        let cuda_id = match options.device {
            Device::Cpu => None,
            Device::Cuda(n) => Some(n),
            Device::Auto => Some(0),
        };
        if let Some(id) = cuda_id {
            let ep = ort::ep::CUDA::default().with_device_id(id as i32);
            match ep.register(&mut builder) {
                Ok(()) => {
                    description = format!("CUDA device {id} (ONNX Runtime {})", runtime.version)
                }
                Err(e) if options.device == Device::Auto => notes.warnings.push(format!(
                    "device=auto: CUDA is not usable ({}); running on the CPU",
                    first_line(&e.to_string())
                )),
                Err(e) => {
                    return Err(EngineError::Device(format!(
                        "device {}: the CUDA execution provider cannot be used: {}",
                        options.device,
                        first_line(&e.to_string())
                    )));
                }
            }
        }

        let session = builder
            .commit_from_file(&model.path)
            .map_err(|e| session_err(e.to_string()))?;
        let conditioning_rank = model
            .manifest
            .conditioning
            .as_ref()
            .and_then(|c| session.inputs().iter().find(|i| i.name() == c.input))
            .and_then(|i| match i.dtype() {
                ValueType::Tensor { shape, .. } => Some(shape.len()),
                _ => None,
            })
            .unwrap_or(0);
        Ok((
            Self {
                session,
                manifest: model.manifest.clone(),
                description,
                conditioning_rank,
                half_input: Vec::new(),
                half_conditioning: Vec::new(),
            },
            notes,
        ))
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn inference_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(e.to_string())
}

impl Engine for OrtEngine {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn device_description(&self) -> &str {
        &self.description
    }

    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: &mut Vec<f32>,
    ) -> Result<[usize; 4], EngineError> {
        let batch = shape[0];
        let cond_shape: Vec<usize> = match (&self.manifest.conditioning, conditioning) {
            (Some(c), Some(values)) => {
                if values.len() != batch * c.length {
                    return Err(EngineError::Inference(format!(
                        "conditioning has {} values, expected {}",
                        values.len(),
                        batch * c.length
                    )));
                }
                if self.conditioning_rank == 1 {
                    vec![c.length]
                } else {
                    vec![batch, c.length]
                }
            }
            (Some(c), None) => {
                return Err(EngineError::Inference(format!(
                    "model needs conditioning input '{}'",
                    c.input
                )));
            }
            (None, _) => Vec::new(),
        };
        // A rank-1 conditioning input takes one vector for the whole batch.
        let cond_values = conditioning.map(|v| &v[..cond_shape.iter().product::<usize>()]);

        let input_name = self.manifest.input.as_str();
        let output_name = self.manifest.output.clone();
        let out_shape = match self.manifest.element_type {
            ElementType::F32 => {
                let image = TensorRef::from_array_view((shape, input)).map_err(inference_err)?;
                let mut inputs = ort::inputs![input_name => image];
                if let (Some(c), Some(values)) = (&self.manifest.conditioning, cond_values) {
                    let t = TensorRef::from_array_view((cond_shape.clone(), values))
                        .map_err(inference_err)?;
                    inputs.push((c.input.clone().into(), t.into()));
                }
                let outputs = self.session.run(inputs).map_err(inference_err)?;
                let (s, data) = outputs[output_name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(inference_err)?;
                output.clear();
                output.extend_from_slice(data);
                s.to_vec()
            }
            ElementType::F16 => {
                self.half_input.clear();
                self.half_input
                    .extend(input.iter().map(|&v| f16::from_f32(v)));
                self.half_conditioning.clear();
                if let Some(values) = cond_values {
                    self.half_conditioning
                        .extend(values.iter().map(|&v| f16::from_f32(v)));
                }
                let image = TensorRef::from_array_view((shape, &self.half_input[..]))
                    .map_err(inference_err)?;
                let mut inputs = ort::inputs![input_name => image];
                if let Some(c) = &self.manifest.conditioning {
                    let t = TensorRef::from_array_view((
                        cond_shape.clone(),
                        &self.half_conditioning[..],
                    ))
                    .map_err(inference_err)?;
                    inputs.push((c.input.clone().into(), t.into()));
                }
                let outputs = self.session.run(inputs).map_err(inference_err)?;
                let (s, data) = outputs[output_name.as_str()]
                    .try_extract_tensor::<f16>()
                    .map_err(inference_err)?;
                output.clear();
                output.extend(data.iter().map(|v| v.to_f32()));
                s.to_vec()
            }
        };
        let dims: Vec<usize> = out_shape.iter().map(|&d| d.max(0) as usize).collect();
        <[usize; 4]>::try_from(dims.as_slice()).map_err(|_| {
            EngineError::Inference(format!(
                "output '{output_name}' has shape {dims:?}, expected 4-D"
            ))
        })
    }
}
