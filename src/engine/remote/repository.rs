//! Triton model repositories for rsstyle models (`rsstyle serve-repo`).
//!
//! A model becomes `DIR/NAME/config.pbtxt` plus `DIR/NAME/1/model.onnx`: Triton's ONNX Runtime
//! backend for production (CPU or GPU; TensorRT through its accelerator settings), or its
//! Python backend running onnxruntime (`DIR/NAME/1/model.py`) where the ONNX Runtime backend
//! is not installed. The configuration declares the model's tensors as its graph does, lets
//! Triton's dynamic batcher merge requests into batches of up to `max_batch_size`, and stores
//! the model's manifest in the parameter `rsstyle.manifest`, from which the remote engine
//! learns value ranges, size multiple and style labels without the model file. Format:
//! <https://github.com/triton-inference-server/server/blob/main/docs/user_guide/model_configuration.md>.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::model::{
    ConditioningPatch, GraphSummary, METADATA_KEY, Manifest, ManifestPatch, MinSize, Model,
    SizeRule, TensorInfo, load_graph,
};

/// The Python-backend model file (`model.py`).
pub const PYTHON_MODEL: &str = include_str!("model.py");

/// Which Triton backend runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Triton's ONNX Runtime backend (`backend: "onnxruntime"`): production.
    #[default]
    OnnxRuntime,
    /// Triton's Python backend running onnxruntime on the CPU (`model.py`).
    Python,
}

/// How the model is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoOptions {
    /// The model's name on the server (default: the file's stem).
    pub name: Option<String>,
    pub backend: Backend,
    /// Largest batch Triton forms (0: no batching).
    pub max_batch_size: usize,
    /// How long Triton's dynamic batcher holds a request for others to join it, µs.
    pub max_queue_delay_us: u64,
    /// Model instances (0: Triton's default, one per GPU or one on the CPU).
    pub instances: u32,
    /// onnxruntime's intra-op threads (0: one per core).
    pub threads: u32,
    /// Replace a model folder of the same name.
    pub force: bool,
}

impl Default for RepoOptions {
    fn default() -> Self {
        Self {
            name: None,
            backend: Backend::OnnxRuntime,
            max_batch_size: 8,
            max_queue_delay_us: 0,
            instances: 0,
            threads: 0,
            force: false,
        }
    }
}

/// Why a repository entry could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write '{path}': {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The manifest as the JSON patch the remote engine applies over the server's metadata.
pub fn manifest_patch(manifest: &Manifest) -> ManifestPatch {
    ManifestPatch {
        input: Some(manifest.input.clone()),
        output: Some(manifest.output.clone()),
        layout: Some(manifest.layout),
        range: None,
        input_range: Some(manifest.input_range),
        output_range: Some(manifest.output_range),
        channel_order: Some(manifest.channel_order),
        size_multiple: match manifest.size {
            SizeRule::Multiple(m) => Some(m),
            SizeRule::Fixed { .. } => None,
        },
        min_size: (manifest.min_size != MinSize::ANY).then_some(manifest.min_size),
        conditioning: manifest.conditioning.as_ref().map(|c| ConditioningPatch {
            input: Some(c.input.clone()),
            labels: c.labels.clone(),
        }),
        description: manifest.description.clone(),
    }
}

/// Triton's data type name for an ONNX element type name.
fn triton_type(t: &TensorInfo) -> Result<&'static str, String> {
    Ok(match t.element_type.as_str() {
        "FLOAT" => "TYPE_FP32",
        "FLOAT16" => "TYPE_FP16",
        "DOUBLE" => "TYPE_FP64",
        "UINT8" => "TYPE_UINT8",
        "INT8" => "TYPE_INT8",
        "INT32" => "TYPE_INT32",
        "INT64" => "TYPE_INT64",
        other => return Err(format!("tensor '{}' has element type {other}", t.name)),
    })
}

/// A protobuf text-format string literal.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `config.pbtxt` for `model` (described by `graph`) named `name`.
pub fn config(
    name: &str,
    model: &Model,
    graph: &GraphSummary,
    options: &RepoOptions,
) -> Result<String, String> {
    let manifest = &model.manifest;
    let find = |ts: &[TensorInfo], n: &str| {
        ts.iter()
            .find(|t| t.name == n)
            .cloned()
            .ok_or_else(|| format!("the graph has no tensor '{n}'"))
    };
    let mut inputs = vec![find(&graph.inputs, &manifest.input)?];
    if let Some(c) = &manifest.conditioning {
        inputs.push(find(&graph.inputs, &c.input)?);
    }
    let outputs = vec![find(&graph.outputs, &manifest.output)?];
    // Triton batches only where every tensor's first dimension is free; then dims leave it out.
    let batchable = options.max_batch_size > 0
        && inputs
            .iter()
            .chain(&outputs)
            .all(|t| t.dims.len() >= 2 && t.dims[0].is_none());
    let max_batch_size = if batchable { options.max_batch_size } else { 0 };
    let dims = |t: &TensorInfo| {
        let dims: Vec<String> = t.dims[usize::from(batchable)..]
            .iter()
            .map(|d| d.map_or("-1".to_string(), |v| v.to_string()))
            .collect();
        format!("[ {} ]", dims.join(", "))
    };
    let mut text = String::new();
    let w = &mut text;
    let _ = writeln!(
        w,
        "# Triton model configuration written by `rsstyle serve-repo` for {}.",
        model
            .path
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned())
    );
    let _ = writeln!(w, "name: {}", quoted(name));
    let backend = match options.backend {
        Backend::OnnxRuntime => "onnxruntime",
        Backend::Python => "python",
    };
    let _ = writeln!(w, "backend: {}", quoted(backend));
    let _ = writeln!(w, "max_batch_size: {max_batch_size}");
    for (section, tensors) in [("input", &inputs), ("output", &outputs)] {
        let _ = writeln!(w, "{section} [");
        for (i, t) in tensors.iter().enumerate() {
            let _ = writeln!(
                w,
                "  {{\n    name: {}\n    data_type: {}\n    dims: {}\n  }}{}",
                quoted(&t.name),
                triton_type(t)?,
                dims(t),
                if i + 1 < tensors.len() { "," } else { "" }
            );
        }
        let _ = writeln!(w, "]");
    }
    if max_batch_size > 0 {
        let _ = writeln!(
            w,
            "dynamic_batching {{\n  max_queue_delay_microseconds: {}\n}}",
            options.max_queue_delay_us
        );
    }
    match (options.backend, options.instances) {
        (Backend::Python, n) => {
            let _ = writeln!(
                w,
                "instance_group [\n  {{\n    count: {}\n    kind: KIND_CPU\n  }}\n]",
                n.max(1)
            );
        }
        (Backend::OnnxRuntime, 0) => {}
        (Backend::OnnxRuntime, n) => {
            let _ = writeln!(w, "instance_group [\n  {{\n    count: {n}\n  }}\n]");
        }
    }
    let mut parameters = vec![(
        METADATA_KEY.to_string(),
        serde_json::to_string(&manifest_patch(manifest)).expect("manifests serialize"),
    )];
    if options.threads > 0 {
        parameters.push((
            "intra_op_thread_count".to_string(),
            options.threads.to_string(),
        ));
    }
    for (key, value) in parameters {
        let _ = writeln!(
            w,
            "parameters {{\n  key: {}\n  value: {{ string_value: {} }}\n}}",
            quoted(&key),
            quoted(&value)
        );
    }
    Ok(text)
}

/// Writes `model` into the repository `repo` as `repo/NAME/` (config and version 1); returns
/// that folder.
pub fn write_model(model: &Path, repo: &Path, options: &RepoOptions) -> Result<PathBuf, RepoError> {
    let loaded = Model::load(model, None, &ManifestPatch::default())?;
    let graph = load_graph(model)?;
    let name = match &options.name {
        Some(n) => n.clone(),
        None => model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(RepoError::Invalid(format!(
            "'{name}' is not a usable model name (letters, digits, '-', '_', '.')"
        )));
    }
    let config = config(&name, &loaded, &graph, options)
        .map_err(|e| RepoError::Invalid(format!("'{}' cannot be served: {e}", model.display())))?;
    let folder = repo.join(&name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RepoError::Io { path, source }
    };
    if folder.exists() {
        if !options.force {
            return Err(RepoError::Invalid(format!(
                "'{}' exists (--force replaces it)",
                folder.display()
            )));
        }
        std::fs::remove_dir_all(&folder).map_err(io(&folder))?;
    }
    let version = folder.join("1");
    std::fs::create_dir_all(&version).map_err(io(&version))?;
    let onnx = version.join("model.onnx");
    std::fs::copy(model, &onnx).map_err(io(&onnx))?;
    if options.backend == Backend::Python {
        let py = version.join("model.py");
        std::fs::write(&py, PYTHON_MODEL).map_err(io(&py))?;
    }
    let config_path = folder.join("config.pbtxt");
    std::fs::write(&config_path, config).map_err(io(&config_path))?;
    Ok(folder)
}
