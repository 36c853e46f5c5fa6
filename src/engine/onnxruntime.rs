//! The ONNX Runtime engine.

use half::f16;
use ort::ep::ExecutionProvider;
use ort::ep::cuda::ConvAlgorithmSearch;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorElementType, TensorRef, ValueType};

use super::byte_io::{self, BYTE_INPUT, BYTE_OUTPUT};
use super::{Device, Engine, EngineError, EngineOptions, FrameIo, Output, runtime};
use crate::frame::TensorValue;
use crate::model::{ElementType, Manifest, Model};
use crate::onnx::rewrite::{self, Rewrites};
use onnx_protobuf::{Message, ModelProto};

/// A model loaded into one ONNX Runtime session.
pub struct OrtEngine {
    session: Session,
    manifest: Manifest,
    description: String,
    /// Rank of the conditioning input (1: `[K]`, 2: `[N, K]`).
    conditioning_rank: usize,
    /// Reused half-precision input buffer for float16 models.
    half_input: Vec<f16>,
    /// Reused byte input buffer for uint8 models.
    byte_input: Vec<u8>,
    half_conditioning: Vec<f16>,
    /// Reused float copy of a float16 or uint8 model's output.
    half_output: Vec<f32>,
    /// Element type of the conditioning input (float32 or float16).
    conditioning_type: ElementType,
    /// The session runs the byte-wrapped graph ([`byte_io`]).
    bytes: bool,
    /// The CUDA device the session runs on, if any.
    cuda_device: Option<u32>,
    /// Page-locked input and output buffers bound to the session, for the current batch shape.
    pinned: Option<PinnedIo>,
    /// ONNX Runtime records a profile, written out when the engine is dropped.
    profiling: bool,
    /// The CUDA provider captures the model as a CUDA graph and replays it.
    cuda_graph: bool,
    /// Set when page-locked buffers could not be made: CUDA sessions then take ordinary host
    /// tensors.
    pageable: bool,
}

/// A conditioning input's shape and values.
type Conditioning<'a> = (Vec<usize>, &'a [f32]);

/// Page-locked host tensors bound to a CUDA session: the input is copied to the GPU and the
/// output back by DMA, without staging copies.
struct PinnedIo {
    shape: [usize; 4],
    input: Tensor<u8>,
    binding: IoBinding,
    /// With CUDA graphs: the input and output the graph reads and writes (GPU memory at fixed
    /// addresses) and the page-locked output they are copied back to.
    graph: Option<GraphIo>,
}

/// GPU tensors bound to a session that replays a CUDA graph.
struct GraphIo {
    input: Tensor<u8>,
    output: Tensor<u8>,
    host_output: Tensor<u8>,
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

        // ONNX Runtime's own default is one thread per core of the host, whatever the
        // process's affinity mask or CPU quota allow: rsstyle always sets the count.
        let threads = crate::cpu::threads_or_available(options.threads);
        let mut builder = Session::builder(runtime.environment())
            .map_err(|e| session_err(e.to_string()))?
            .with_intra_threads(threads)
            .map_err(|e| session_err(e.to_string()))?;
        if let Some(spin) = options.cpu_spin {
            builder = builder
                .with_intra_op_spinning(spin)
                .map_err(|e| session_err(e.to_string()))?;
        }
        let mut description = format!(
            "CPU (ONNX Runtime {}, {threads} thread{}{}{})",
            runtime.version,
            if threads == 1 { "" } else { "s" },
            if options.threads == 0 {
                ": the CPUs this process may use"
            } else {
                ""
            },
            match options.cpu_spin {
                Some(false) => ", threads sleep when idle",
                _ => "",
            }
        );
        notes.warnings.extend(model.notes.iter().cloned());

        let cuda_id = match &options.device {
            Device::Cpu => None,
            Device::Cuda(n) | Device::TensorRt(n) => Some(*n),
            Device::Auto => Some(0),
            Device::Server(address) => {
                return Err(EngineError::Device(format!(
                    "device {address} is an inference server, not an ONNX Runtime device"
                )));
            }
        };
        let tensorrt = match options.device {
            Device::TensorRt(id) => Some(register_tensorrt(&mut builder, id, options)?),
            _ => None,
        };
        let mut cuda_device = None;
        if let Some(id) = cuda_id {
            let tuning = options.cuda;
            let ep = ort::ep::CUDA::default()
                .with_device_id(id as i32)
                .with_prefer_nhwc(tuning.prefer_nhwc)
                .with_tf32(tuning.tf32)
                .with_conv_max_workspace(true)
                // Under TensorRT, its provider captures the graph.
                .with_cuda_graph(tuning.graph && tensorrt.is_none())
                .with_conv_algorithm_search(if tuning.exhaustive_search {
                    ConvAlgorithmSearch::Exhaustive
                } else {
                    ConvAlgorithmSearch::Heuristic
                });
            match ep.register(&mut builder) {
                Ok(()) => {
                    cuda_device = Some(id);
                    let flags = [
                        (tuning.prefer_nhwc, ", NHWC"),
                        (tuning.tf32, ", TF32"),
                        (tuning.graph, ", CUDA graph"),
                    ];
                    let flags: String = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
                    description = match &tensorrt {
                        Some(trt) => format!(
                            "TensorRT device {id} (ONNX Runtime {}, {trt}{flags})",
                            runtime.version
                        ),
                        None => {
                            format!("CUDA device {id} (ONNX Runtime {}{flags})", runtime.version)
                        }
                    };
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

        let mut profile_file = None;
        if let Some(prefix) = &options.profile {
            // One file per engine: ONNX Runtime only adds the time to the second.
            static ENGINES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = format!("{}-{}-{n}", prefix.display(), std::process::id());
            let folder = std::path::Path::new(&file)
                .parent()
                .filter(|p| !p.as_os_str().is_empty());
            if let Some(folder) = folder.filter(|f| !f.is_dir()) {
                return Err(EngineError::Device(format!(
                    "engine option profile: folder '{}' does not exist",
                    folder.display()
                )));
            }
            builder = builder
                .with_profiling(&file)
                .map_err(|e| session_err(e.to_string()))?;
            profile_file = Some(file);
        }

        let bytes = match options.frame_io {
            FrameIo::Bytes => true,
            FrameIo::Float => false,
            FrameIo::Auto => cuda_device.is_some(),
        };
        // A CUDA graph replays fixed GPU buffers: only the byte path binds them.
        if cuda_device.is_some() && options.cuda.graph {
            if !bytes {
                return Err(EngineError::Device(
                    "cuda-graph=true needs frames as bytes (frame-io=auto or bytes)".to_string(),
                ));
            }
            if model.manifest.conditioning.is_some() {
                return Err(EngineError::Device(
                    "cuda-graph=true needs a model without a conditioning input".to_string(),
                ));
            }
        }
        let rewrite = options.graph_rewrite.unwrap_or(cuda_device.is_none());
        let (session, rewrites) = if bytes || rewrite {
            load_rewritten(builder, model, bytes, rewrite)?
        } else {
            let session = builder
                .commit_from_file(&model.path)
                .map_err(|e| session_err(e.to_string()))?;
            (session, Rewrites::default())
        };
        if bytes {
            description.push_str(", frames as bytes");
        }
        if rewrites.any() {
            description.push_str(&format!(", graph rewritten: {rewrites}"));
        }
        if let Some(file) = &profile_file {
            description.push_str(&format!(", profiling to {file}_*.json"));
        }
        let conditioning_input = model
            .manifest
            .conditioning
            .as_ref()
            .and_then(|c| session.inputs().iter().find(|i| i.name() == c.input));
        let conditioning_rank = conditioning_input
            .and_then(|i| match i.dtype() {
                ValueType::Tensor { shape, .. } => Some(shape.len()),
                _ => None,
            })
            .unwrap_or(0);
        let conditioning_type = match conditioning_input.map(|i| i.dtype()) {
            Some(ValueType::Tensor {
                ty: TensorElementType::Float16,
                ..
            }) => ElementType::F16,
            _ => ElementType::F32,
        };
        Ok((
            Self {
                session,
                manifest: model.manifest.clone(),
                description,
                conditioning_rank,
                half_input: Vec::new(),
                byte_input: Vec::new(),
                half_conditioning: Vec::new(),
                half_output: Vec::new(),
                conditioning_type,
                bytes,
                cuda_device,
                pinned: None,
                pageable: false,
                cuda_graph: cuda_device.is_some() && options.cuda.graph,
                profiling: profile_file.is_some(),
            },
            notes,
        ))
    }
}

impl Drop for OrtEngine {
    fn drop(&mut self) {
        if self.profiling {
            // Nothing to report it to: a failure leaves an empty profile file.
            let _ = self.session.end_profiling();
        }
    }
}

/// Registers ONNX Runtime's TensorRT provider for GPU `id`, with its engine cache folder
/// (made if missing); returns how it is set up, for the engine description.
fn register_tensorrt(
    builder: &mut ort::session::builder::SessionBuilder,
    id: u32,
    options: &EngineOptions,
) -> Result<String, EngineError> {
    let trt = &options.tensorrt;
    let cache = trt.cache_folder().ok_or_else(|| {
        EngineError::Device(
            "engine option trt-cache: not given, and neither XDG_CACHE_HOME nor HOME is set"
                .to_string(),
        )
    })?;
    let existed = cache.is_dir();
    std::fs::create_dir_all(&cache).map_err(|e| {
        EngineError::Device(format!(
            "engine option trt-cache: cannot make folder '{}': {e}",
            cache.display()
        ))
    })?;
    let folder = cache.display().to_string();
    ort::ep::TensorRT::default()
        .with_device_id(id as i32)
        .with_fp16(trt.fp16)
        .with_engine_cache(true)
        .with_engine_cache_path(&folder)
        .with_timing_cache(true)
        .with_timing_cache_path(&folder)
        .with_cuda_graph(options.cuda.graph)
        .register(builder)
        .map_err(|e| {
            if !existed {
                // Leave nothing behind (only an empty folder made here is removed).
                let _ = std::fs::remove_dir(&cache);
            }
            EngineError::Device(format!(
                "device {}: the TensorRT execution provider cannot be used: {}",
                options.device,
                first_line(&e.to_string())
            ))
        })?;
    let precision = if trt.fp16 { "fp16 allowed" } else { "fp32" };
    Ok(format!("{precision}, engine cache {folder}"))
}

/// A session on the model's graph after the rewrites (when `rewrite`) and the byte wrapping
/// (when `bytes`). A graph that neither changes is loaded from its file, which keeps external
/// weight files working.
fn load_rewritten(
    mut builder: ort::session::builder::SessionBuilder,
    model: &Model,
    bytes: bool,
    rewrite: bool,
) -> Result<(Session, Rewrites), EngineError> {
    let session_err = |reason: String| EngineError::Session {
        path: model.path.display().to_string(),
        reason,
    };
    let file = std::fs::read(&model.path).map_err(|e| session_err(e.to_string()))?;
    let mut proto = ModelProto::parse_from_bytes(&file)
        .map_err(|e| session_err(format!("cannot decode the model: {e}")))?;
    let manifest = &model.manifest;
    let rewrites = if rewrite {
        rewrite::optimize(&mut proto, manifest.even_sized_output())
    } else {
        Rewrites::default()
    };
    if bytes {
        byte_io::wrap(&mut proto, manifest)
            .map_err(|e| session_err(format!("cannot take frames as bytes: {e}")))?;
    }
    let session = if bytes || rewrites.any() {
        let graph = proto
            .write_to_bytes()
            .map_err(|e| session_err(format!("cannot encode the rewritten model: {e}")))?;
        builder.commit_from_memory(&graph)
    } else {
        builder.commit_from_file(&model.path)
    };
    Ok((session.map_err(|e| session_err(e.to_string()))?, rewrites))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn inference_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Inference(e.to_string())
}

impl OrtEngine {
    /// The shape of the conditioning input for a batch of `batch` and the values to pass
    /// (a rank-1 input takes one vector for the whole batch).
    fn conditioning<'a>(
        &self,
        batch: usize,
        conditioning: Option<&'a [f32]>,
    ) -> Result<Option<Conditioning<'a>>, EngineError> {
        match (&self.manifest.conditioning, conditioning) {
            (Some(c), Some(values)) => {
                if values.len() != batch * c.length {
                    return Err(EngineError::Inference(format!(
                        "conditioning has {} values, expected {}",
                        values.len(),
                        batch * c.length
                    )));
                }
                let shape = if self.conditioning_rank == 1 {
                    vec![c.length]
                } else {
                    vec![batch, c.length]
                };
                let n = shape.iter().product::<usize>();
                Ok(Some((shape, &values[..n])))
            }
            (Some(c), None) => Err(EngineError::Inference(format!(
                "model needs conditioning input '{}'",
                c.input
            ))),
            (None, _) => Ok(None),
        }
    }

    /// An owned conditioning tensor in the conditioning input's element type.
    fn conditioning_value(
        &self,
        shape: Vec<usize>,
        values: &[f32],
    ) -> Result<DynValue, EngineError> {
        Ok(match self.conditioning_type {
            ElementType::F32 | ElementType::U8 => Tensor::from_array((shape, values.to_vec()))
                .map_err(inference_err)?
                .into_dyn(),
            ElementType::F16 => Tensor::from_array((
                shape,
                values.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(),
            ))
            .map_err(inference_err)?
            .into_dyn(),
        })
    }

    /// Page-locked input and output tensors for `shape`, bound to a new binding.
    fn pin(&self, device: u32, shape: [usize; 4]) -> ort::Result<PinnedIo> {
        let info = |kind| {
            MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                device as i32,
                AllocatorType::Device,
                kind,
            )
        };
        let input_alloc = Allocator::new(&self.session, info(MemoryType::CPUInput)?)?;
        let mut binding = self.session.create_binding()?;
        let graph = if self.cuda_graph {
            let gpu = Allocator::new(
                &self.session,
                MemoryInfo::new(
                    AllocationDevice::CUDA,
                    device as i32,
                    AllocatorType::Device,
                    MemoryType::Default,
                )?,
            )?;
            let mut io = GraphIo {
                input: Tensor::<u8>::new(&gpu, shape)?,
                output: Tensor::<u8>::new(&gpu, shape)?,
                host_output: Tensor::<u8>::new(&Allocator::default(), shape)?,
            };
            binding.bind_input(BYTE_INPUT, &io.input)?;
            binding.bind_output(BYTE_OUTPUT, &mut io.output)?;
            Some(io)
        } else {
            // ONNX Runtime 1.30 fails copying a graph output into a page-locked output buffer
            // (it plans the output in that buffer, then copies it onto itself): outputs go to
            // ordinary host memory.
            binding.bind_output_to_device(
                BYTE_OUTPUT,
                &MemoryInfo::new(
                    AllocationDevice::CPU,
                    0,
                    AllocatorType::Device,
                    MemoryType::Default,
                )?,
            )?;
            None
        };
        Ok(PinnedIo {
            shape,
            input: Tensor::<u8>::new(&input_alloc, shape)?,
            binding,
            graph,
        })
    }

    /// Gives up page-locked buffers after `error`: later batches pass ordinary host tensors.
    /// Returns `false`, the caller's cue to run the batch that way.
    fn unpin(&mut self, error: &str) -> bool {
        self.pinned = None;
        self.pageable = true;
        self.description.push_str(&format!(
            " (page-locked I/O failed, ordinary host tensors used: {})",
            first_line(error)
        ));
        false
    }

    /// Byte batches through a CUDA session: page-locked input bound once per shape, output
    /// lent from host memory ONNX Runtime allocates. `false` when page-locked memory is not
    /// available and the batch did not run (the caller then passes ordinary host tensors).
    fn infer_bytes_cuda(
        &mut self,
        device: u32,
        input: &[u8],
        shape: [usize; 4],
        conditioning: Option<DynValue>,
        output: Output<'_, u8>,
    ) -> Result<bool, EngineError> {
        if self.pinned.as_ref().is_none_or(|p| p.shape != shape) {
            self.pinned = None;
            match self.pin(device, shape) {
                Ok(p) => self.pinned = Some(p),
                Err(e) => return Ok(self.unpin(&e.to_string())),
            }
        }
        let pinned = self.pinned.as_mut().expect("just created");
        pinned.input.extract_tensor_mut().1.copy_from_slice(input);
        if let Some(graph) = &mut pinned.graph {
            // The graph reads and writes fixed GPU buffers: copy in, replay, copy out.
            pinned
                .input
                .copy_into(&mut graph.input)
                .map_err(inference_err)?;
            let ran = self.session.run_binding(&pinned.binding).map(drop);
            if let Err(e) = ran.map_err(|e| e.to_string()) {
                return Ok(self.unpin(&e));
            }
            graph
                .output
                .copy_into(&mut graph.host_output)
                .map_err(inference_err)?;
            output(shape, graph.host_output.extract_tensor().1);
            return Ok(true);
        }
        pinned
            .binding
            .bind_input(BYTE_INPUT, &pinned.input)
            .map_err(inference_err)?;
        if let (Some(c), Some(value)) = (&self.manifest.conditioning, conditioning) {
            pinned
                .binding
                .bind_input(c.input.as_str(), &value)
                .map_err(inference_err)?;
        }
        let ran = match self.session.run_binding(&pinned.binding) {
            Ok(outputs) => {
                let (s, data) = outputs[BYTE_OUTPUT]
                    .try_extract_tensor::<u8>()
                    .map_err(inference_err)?;
                output(output_shape(BYTE_OUTPUT, s)?, data);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
        match ran {
            Ok(()) => Ok(true),
            Err(e) => Ok(self.unpin(&e)),
        }
    }
}

/// A 4-D shape from what ONNX Runtime returned.
fn output_shape(name: &str, shape: &[i64]) -> Result<[usize; 4], EngineError> {
    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    <[usize; 4]>::try_from(dims.as_slice()).map_err(|_| {
        EngineError::Inference(format!("output '{name}' has shape {dims:?}, expected 4-D"))
    })
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
        output: Output<'_, f32>,
    ) -> Result<(), EngineError> {
        if self.bytes {
            return Err(EngineError::Inference(
                "this engine takes frames as bytes".to_string(),
            ));
        }
        let cond = self.conditioning(shape[0], conditioning)?;
        let Self {
            session,
            manifest,
            half_input,
            byte_input,
            half_conditioning,
            half_output,
            conditioning_type,
            ..
        } = self;
        // The image in the model's input element type: float frames as they are, float16
        // and uint8 converted (the frames' values are whole bytes for a uint8 input).
        let image: SessionInputValue = match manifest.element_type {
            ElementType::F32 => TensorRef::from_array_view((shape, input))
                .map_err(inference_err)?
                .into(),
            ElementType::F16 => {
                half_input.clear();
                half_input.extend(input.iter().map(|&v| f16::from_f32(v)));
                TensorRef::from_array_view((shape, &half_input[..]))
                    .map_err(inference_err)?
                    .into()
            }
            ElementType::U8 => {
                byte_input.clear();
                byte_input.extend(input.iter().map(|&v| <u8 as TensorValue>::from_f32(v)));
                TensorRef::from_array_view((shape, &byte_input[..]))
                    .map_err(inference_err)?
                    .into()
            }
        };
        let mut inputs = ort::inputs![manifest.input.as_str() => image];
        if let (Some(c), Some((cond_shape, values))) = (&manifest.conditioning, cond) {
            let t: SessionInputValue = if *conditioning_type == ElementType::F16 {
                half_conditioning.clear();
                half_conditioning.extend(values.iter().map(|&v| f16::from_f32(v)));
                TensorRef::from_array_view((cond_shape, &half_conditioning[..]))
                    .map_err(inference_err)?
                    .into()
            } else {
                TensorRef::from_array_view((cond_shape, values))
                    .map_err(inference_err)?
                    .into()
            };
            inputs.push((c.input.clone().into(), t));
        }
        let outputs = session.run(inputs).map_err(inference_err)?;
        let out = &outputs[manifest.output.as_str()];
        let name = &manifest.output;
        // The output as floats: lent as it is, or converted from float16 or uint8.
        match manifest.output_element_type {
            ElementType::F32 => {
                let (s, data) = out.try_extract_tensor::<f32>().map_err(inference_err)?;
                output(output_shape(name, s)?, data);
            }
            ElementType::F16 => {
                let (s, data) = out.try_extract_tensor::<f16>().map_err(inference_err)?;
                half_output.clear();
                half_output.extend(data.iter().map(|v| v.to_f32()));
                output(output_shape(name, s)?, half_output);
            }
            ElementType::U8 => {
                let (s, data) = out.try_extract_tensor::<u8>().map_err(inference_err)?;
                half_output.clear();
                half_output.extend(data.iter().map(|&v| v as f32));
                output(output_shape(name, s)?, half_output);
            }
        }
        Ok(())
    }

    fn takes_bytes(&self) -> bool {
        self.bytes
    }

    fn infer_bytes(
        &mut self,
        input: &[u8],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: Output<'_, u8>,
    ) -> Result<(), EngineError> {
        if !self.bytes {
            return Err(EngineError::Inference(
                "this engine takes float tensors, not bytes".to_string(),
            ));
        }
        let conditioning_value = |engine: &Self| -> Result<Option<DynValue>, EngineError> {
            match engine.conditioning(shape[0], conditioning)? {
                Some((s, values)) => Ok(Some(engine.conditioning_value(s, values)?)),
                None => Ok(None),
            }
        };
        let pinned = match self.cuda_device {
            Some(device) if !self.pageable => {
                let cond = conditioning_value(self)?;
                self.infer_bytes_cuda(device, input, shape, cond, output)?
            }
            _ => false,
        };
        if !pinned {
            let cond = conditioning_value(self)?;
            let image = TensorRef::from_array_view((shape, input)).map_err(inference_err)?;
            let mut inputs = ort::inputs![BYTE_INPUT => image];
            if let (Some(c), Some(value)) = (&self.manifest.conditioning, cond) {
                inputs.push((c.input.clone().into(), value.into()));
            }
            let outputs = self.session.run(inputs).map_err(inference_err)?;
            let (s, data) = outputs[BYTE_OUTPUT]
                .try_extract_tensor::<u8>()
                .map_err(inference_err)?;
            output(output_shape(BYTE_OUTPUT, s)?, data);
        }
        Ok(())
    }
}
