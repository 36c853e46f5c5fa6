//! The remote engine: batches inferred on an inference server that speaks the KServe v2 /
//! Open Inference Protocol over gRPC — NVIDIA Triton Inference Server (alone or as KServe's
//! ONNX runtime), KServe, MLServer, OpenVINO Model Server.
//!
//! Selected as a device, `grpc://HOST[:PORT]`, with the model's name on the server (`server-model`
//! property, default: the `model` file's stem). Before the first frame, [`RemoteEngine::open`]
//! checks that the server is live and ready and the model ready, and turns the model's
//! metadata (and Triton's model configuration: `max_batch_size`, and the manifest
//! `rsstyle serve-repo` stores in its parameters) into the [`Manifest`]. A local model file,
//! when given, supplies the manifest instead and is checked against the server's model.
//!
//! Each batch goes out as up to `max-in-flight` `ModelInfer` requests at once (tensors in
//! `raw_input_contents`), whose replies are put back together in frame order; the server's
//! dynamic batcher merges them with other clients' requests. A request that cannot reach the
//! server (connection refused or broken, e.g. while the server restarts) is sent again after a
//! growing pause, at most `retries` times, all within the batch's `timeout`; then the batch
//! fails with an error naming the server, the model and the gRPC status. Inference has no side
//! effects, so a request sent again cannot duplicate a frame: each frame's output slot is
//! filled once, from the reply that came back.
//!
//! The engine owns a small tokio runtime (one worker thread) for the gRPC client; the batcher's
//! worker thread blocks on it in [`Engine::infer`].

mod client;
mod metadata;
pub mod protocol;
pub mod repository;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use half::f16;
use prost::bytes::Bytes;

use super::{Engine, EngineError, EngineOptions, LoadNotes, Output};
use crate::model::{ElementType, Manifest, ManifestPatch};
use client::{Client, Target};
use protocol::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use protocol::{ModelInferRequest, ModelInferResponse};

pub use client::{BatchStatistics, model_statistics};

/// Where an inference server listens: `grpc://HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddress {
    host: String,
    port: u16,
}

impl ServerAddress {
    /// Triton's gRPC port, used when the URL names none.
    pub const DEFAULT_PORT: u16 = 8001;

    /// Parses `grpc://HOST[:PORT]` (HOST a name, an IPv4 address or a bracketed IPv6 one).
    /// `None` when `url` is not meant as a server at all (no `scheme://`); an error naming the
    /// problem when it is one but cannot be used.
    pub fn parse_url(url: &str) -> Option<Result<Self, String>> {
        let (scheme, rest) = url.split_once("://")?;
        Some(Self::parse_parts(url, scheme, rest))
    }

    fn parse_parts(url: &str, scheme: &str, rest: &str) -> Result<Self, String> {
        let expected = "expected grpc://HOST[:PORT] (an inference server's gRPC endpoint, \
                        port 8001 by default)";
        match scheme {
            "grpc" => {}
            "grpcs" | "https" => {
                return Err(format!(
                    "device '{url}': TLS to inference servers is not supported; {expected}, \
                     e.g. behind a TLS-terminating proxy"
                ));
            }
            _ => {
                return Err(format!(
                    "device '{url}': unknown scheme '{scheme}'; {expected}"
                ));
            }
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| c.is_whitespace() || "/?#@".contains(c))
        {
            return Err(format!("device '{url}': {expected}"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("device '{url}': unclosed '[' in the address"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("device '{url}': {expected}"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => {
                    return Err(format!(
                        "device '{url}': write IPv6 addresses in brackets, e.g. grpc://[::1]:8001"
                    ));
                }
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("device '{url}': no host; {expected}"));
        }
        let port = match port {
            None => Self::DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("device '{url}': port '{p}' is not 1..65535"))?,
        };
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP/2 URI the gRPC channel connects to.
    fn http_uri(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "grpc://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "grpc://{}:{}", self.host, self.port)
        }
    }
}

/// Which model a server runs and how requests go to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// The model's name on the server; empty: the local model file's stem (`rsstyle
    /// serve-repo` names models so).
    pub model: String,
    /// The model version; empty: the server's choice (Triton: its version policy).
    pub version: String,
    /// Most requests one batch is split into and sent at once (≥ 1): a batch of N frames goes
    /// out as min(N, max-in-flight) requests (more when the server's `max_batch_size` is
    /// smaller), which the server may run side by side or merge with other clients' requests.
    pub max_in_flight: usize,
    /// Deadline of a batch's requests, re-sends included, and of the start-up checks.
    pub timeout: Duration,
    /// Most re-sends of a request that could not reach the server (connection refused, reset
    /// or broken), after pauses growing from 50 ms to 1 s.
    pub retries: u32,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            model: String::new(),
            version: String::new(),
            max_in_flight: 4,
            timeout: Duration::from_secs(10),
            retries: 8,
        }
    }
}

impl RemoteOptions {
    /// Sets `max-in-flight`, `timeout` (milliseconds) or `retries` from an `engine-options`
    /// value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let number = |min: u64, max: u64| {
            value
                .parse::<u64>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("engine option {key}: '{value}' is not {min}..{max}"))
        };
        match key {
            "max-in-flight" => self.max_in_flight = number(1, 1024)? as usize,
            "timeout" => self.timeout = Duration::from_millis(number(1, 3_600_000)?),
            "retries" => self.retries = number(0, 1000)? as u32,
            other => return Err(format!("'{other}' is not a remote engine option")),
        }
        Ok(())
    }
}

/// The conditioning input of a request: its shape and values.
type Conditioning<'a> = (Vec<i64>, &'a [f32]);

/// A model on an inference server.
pub struct RemoteEngine {
    client: Client,
    manifest: Manifest,
    description: String,
    /// Wire data type of the image input (`FP32`, `FP16` or `UINT8`).
    datatype: &'static str,
    /// Element type of the conditioning input.
    conditioning_type: ElementType,
    /// The server's largest batch (Triton's `max_batch_size`): requests never carry more.
    server_max_batch: Option<usize>,
    /// Rank of the conditioning input on the server (1: `[K]`, 2: `[N, K]`).
    conditioning_rank: usize,
    max_in_flight: usize,
    /// The concatenated replies of the current batch, as floats.
    output: Vec<f32>,
    next_id: u64,
}

impl RemoteEngine {
    /// Connects to the server at `address`, runs the start-up checks and builds the manifest:
    /// from `local` (a model file, checked against the server's model) when given, else from
    /// the server's metadata, in both cases with `sidecar` and `overrides` applied.
    pub fn open(
        address: &ServerAddress,
        local: Option<&Path>,
        sidecar: Option<&Path>,
        overrides: &ManifestPatch,
        options: &EngineOptions,
    ) -> Result<(Self, LoadNotes), EngineError> {
        let remote = &options.remote;
        let model = if !remote.model.is_empty() {
            remote.model.clone()
        } else if let Some(stem) = local.and_then(|p| p.file_stem()) {
            stem.to_string_lossy().into_owned()
        } else {
            return Err(EngineError::Server(format!(
                "device {address}: set server-model to the model's name on the server \
                 (or model to its ONNX file, whose name it then is)"
            )));
        };
        let target = Target {
            address: address.clone(),
            model,
            version: remote.version.clone(),
        };
        let client = Client::connect(target.clone(), remote)?;
        let found = client.check_and_describe()?;
        let manifest = metadata::manifest(&target, &found, local, sidecar, overrides)?;
        // The server's `max_batch_size` bounds each request, not the element's batches (the
        // manifest's `max_batch` is a batch the graph fixes, to which batches are padded).
        let server_max_batch = found.max_batch_size;
        let image = found
            .metadata
            .inputs
            .iter()
            .find(|t| t.name == manifest.input)
            .expect("the manifest's input was checked against the metadata");
        let datatype = wire_type(manifest.element_type);
        debug_assert_eq!(image.datatype, datatype);
        let conditioning_input = manifest
            .conditioning
            .as_ref()
            .and_then(|c| found.metadata.inputs.iter().find(|t| t.name == c.input));
        let conditioning_rank = conditioning_input.map_or(0, |t| t.shape.len());
        // The conditioning vector's own type (a uint8 image model still takes float weights).
        let conditioning_type = conditioning_input
            .and_then(|t| element_type(&t.datatype))
            .unwrap_or(manifest.element_type);
        let server = match (&found.server_name, &found.server_version) {
            (name, version) if !name.is_empty() => format!("{name} {version}"),
            _ => "server".to_string(),
        };
        let batches = found
            .max_batch_size
            .map_or(String::new(), |m| format!(", batches of ≤ {m}"));
        let description = format!(
            "{target} ({}{}{batches}; up to {} requests in flight; round trip {:.1} ms at start-up)",
            server.trim(),
            found
                .backend
                .as_deref()
                .map_or(String::new(), |b| format!(", {b} backend")),
            remote.max_in_flight,
            found.round_trip.as_secs_f64() * 1e3,
        );
        Ok((
            Self {
                client,
                manifest,
                description,
                datatype,
                conditioning_type,
                conditioning_rank,
                server_max_batch,
                max_in_flight: remote.max_in_flight.max(1),
                output: Vec::new(),
                next_id: 0,
            },
            LoadNotes::default(),
        ))
    }

    /// The values of the conditioning input for a batch of `batch`, with its shape.
    fn conditioning<'a>(
        &self,
        batch: usize,
        values: Option<&'a [f32]>,
    ) -> Result<Option<Conditioning<'a>>, EngineError> {
        match (&self.manifest.conditioning, values) {
            (Some(c), Some(values)) if values.len() == batch * c.length => {
                Ok(Some(if self.conditioning_rank == 1 {
                    (vec![c.length as i64], &values[..c.length])
                } else {
                    (vec![batch as i64, c.length as i64], values)
                }))
            }
            (Some(c), Some(values)) => Err(EngineError::Inference(format!(
                "conditioning has {} values, expected {}",
                values.len(),
                batch * c.length
            ))),
            (Some(c), None) => Err(EngineError::Inference(format!(
                "model needs conditioning input '{}'",
                c.input
            ))),
            (None, _) => Ok(None),
        }
    }

    /// One request for `count` images of `per_image` values starting at image `first`.
    fn request(
        &mut self,
        input: &[f32],
        first: usize,
        count: usize,
        shape: [usize; 4],
        conditioning: Option<&(Vec<i64>, &[f32])>,
    ) -> ModelInferRequest {
        let per_image: usize = shape[1..].iter().product();
        let values = &input[first * per_image..(first + count) * per_image];
        let mut tensor_shape = vec![count as i64];
        tensor_shape.extend(shape[1..].iter().map(|&d| d as i64));
        let mut inputs = vec![InferInputTensor {
            name: self.manifest.input.clone(),
            datatype: self.datatype.to_string(),
            shape: tensor_shape,
            parameters: Default::default(),
        }];
        let mut raw = vec![encode(values, self.manifest.element_type)];
        if let (Some(c), Some((cond_shape, cond_values))) =
            (&self.manifest.conditioning, conditioning)
        {
            let (cond_shape, cond_values) = if cond_shape.len() == 2 {
                let k = c.length;
                (
                    vec![count as i64, k as i64],
                    &cond_values[first * k..(first + count) * k],
                )
            } else {
                (cond_shape.clone(), *cond_values)
            };
            inputs.push(InferInputTensor {
                name: c.input.clone(),
                datatype: wire_type(self.conditioning_type).to_string(),
                shape: cond_shape,
                parameters: Default::default(),
            });
            raw.push(encode(cond_values, self.conditioning_type));
        }
        self.next_id += 1;
        ModelInferRequest {
            model_name: self.client.target().model.clone(),
            model_version: self.client.target().version.clone(),
            id: self.next_id.to_string(),
            parameters: Default::default(),
            inputs,
            outputs: vec![InferRequestedOutputTensor {
                name: self.manifest.output.clone(),
                parameters: Default::default(),
            }],
            raw_input_contents: raw,
        }
    }

    /// Appends the image output of `reply` (for `count` images) to `self.output`; returns its
    /// per-image dimensions.
    fn take_output(
        &mut self,
        reply: &ModelInferResponse,
        count: usize,
    ) -> Result<Vec<usize>, EngineError> {
        let target = self.client.target();
        let name = &self.manifest.output;
        let bad = |what: String| EngineError::Server(format!("{target}: {what}"));
        let index = reply
            .outputs
            .iter()
            .position(|o| &o.name == name)
            .ok_or_else(|| bad(format!("the reply has no output '{name}'")))?;
        let tensor = &reply.outputs[index];
        if tensor.datatype != self.datatype {
            return Err(bad(format!(
                "output '{name}' came back as {}, expected {}",
                tensor.datatype, self.datatype
            )));
        }
        let dims: Vec<usize> = tensor.shape.iter().map(|&d| d.max(0) as usize).collect();
        if dims.len() != 4 || dims[0] != count {
            return Err(bad(format!(
                "output '{name}' has shape {:?}, expected {count} images of 4-D shape",
                tensor.shape
            )));
        }
        let raw = reply.raw_output_contents.get(index).ok_or_else(|| {
            bad("the reply has no raw_output_contents (typed contents are not supported)".into())
        })?;
        let values: usize = dims.iter().product();
        let width = match self.manifest.output_element_type {
            ElementType::F32 => 4,
            ElementType::F16 => 2,
            ElementType::U8 => 1,
        };
        if raw.len() != values * width {
            return Err(bad(format!(
                "output '{name}' holds {} bytes, expected {} for shape {:?}",
                raw.len(),
                values * width,
                tensor.shape
            )));
        }
        decode_into(&mut self.output, raw, self.manifest.output_element_type);
        Ok(dims[1..].to_vec())
    }
}

/// How many images each request of a batch of `n` carries: at most `max_in_flight` requests
/// unless the server's largest batch needs more, sizes differing by at most one.
fn split(n: usize, max_in_flight: usize, max_batch: Option<usize>) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let max_batch = max_batch.unwrap_or(usize::MAX).max(1);
    let requests = n.min(max_in_flight.max(1)).max(n.div_ceil(max_batch));
    (0..requests)
        .map(|i| n / requests + usize::from(i < n % requests))
        .collect()
}

/// The protocol's data type of a tensor of `element_type` (KServe v2 tensor data types).
fn wire_type(element_type: ElementType) -> &'static str {
    match element_type {
        ElementType::F32 => "FP32",
        ElementType::F16 => "FP16",
        ElementType::U8 => "UINT8",
    }
}

/// The element type of a protocol data type, if rsstyle handles it.
fn element_type(datatype: &str) -> Option<ElementType> {
    match datatype {
        "FP32" => Some(ElementType::F32),
        "FP16" => Some(ElementType::F16),
        "UINT8" => Some(ElementType::U8),
        _ => None,
    }
}

/// Tensor values as little-endian bytes in the wire type (uint8: rounded and clamped to
/// 0..255).
fn encode(values: &[f32], element_type: ElementType) -> Bytes {
    match element_type {
        ElementType::U8 => Bytes::from(
            values
                .iter()
                .map(|v| v.round().clamp(0.0, 255.0) as u8)
                .collect::<Vec<u8>>(),
        ),
        ElementType::F32 => {
            let mut bytes = Vec::with_capacity(values.len() * 4);
            for v in values {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            Bytes::from(bytes)
        }
        ElementType::F16 => {
            let mut bytes = Vec::with_capacity(values.len() * 2);
            for v in values {
                bytes.extend_from_slice(&f16::from_f32(*v).to_le_bytes());
            }
            Bytes::from(bytes)
        }
    }
}

/// Appends little-endian wire values to `out` as floats.
fn decode_into(out: &mut Vec<f32>, raw: &[u8], element_type: ElementType) {
    match element_type {
        ElementType::U8 => out.extend(raw.iter().map(|&b| f32::from(b))),
        ElementType::F32 => out.extend(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        ElementType::F16 => out.extend(
            raw.chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
    }
}

impl Engine for RemoteEngine {
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
        let n = shape[0];
        let per_image: usize = shape[1..].iter().product();
        if input.len() != n * per_image {
            return Err(EngineError::Inference(format!(
                "input has {} values, expected {} for shape {shape:?}",
                input.len(),
                n * per_image
            )));
        }
        let conditioning = self.conditioning(n, conditioning)?;
        let counts = split(
            n,
            self.max_in_flight,
            self.server_max_batch.or(self.manifest.max_batch),
        );
        let mut requests = Vec::with_capacity(counts.len());
        let mut first = 0;
        for &count in &counts {
            requests.push(self.request(input, first, count, shape, conditioning.as_ref()));
            first += count;
        }
        let replies = self.client.infer_all(requests)?;
        self.output.clear();
        let mut image_dims: Option<Vec<usize>> = None;
        for (reply, &count) in replies.iter().zip(&counts) {
            let dims = self.take_output(reply, count)?;
            if image_dims.as_ref().is_some_and(|d| *d != dims) {
                return Err(EngineError::Server(format!(
                    "{}: the replies of one batch have different shapes",
                    self.client.target()
                )));
            }
            image_dims = Some(dims);
        }
        let dims = image_dims.unwrap_or_else(|| shape[1..].to_vec());
        output([n, dims[0], dims[1], dims[2]], &self.output);
        Ok(())
    }
}
