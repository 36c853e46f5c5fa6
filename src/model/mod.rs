//! What a model expects and returns (its [`Manifest`]) and where that comes from.
//!
//! The manifest is assembled in layers, each overriding the one before:
//! 1. what the ONNX graph itself says (names, shapes, element type, last op) plus documented
//!    defaults ([`graph`]);
//! 2. a manifest embedded in the ONNX file's `metadata_props` under [`METADATA_KEY`];
//! 3. a sidecar JSON file (`model.json` beside `model.onnx`, or a path given explicitly);
//! 4. overrides set by the caller (element properties, CLI flags).

mod graph;
mod manifest;

pub use graph::{GraphSummary, TensorInfo, load_graph};
pub use manifest::{
    ChannelOrder, Conditioning, ConditioningPatch, ElementType, Layout, Manifest, ManifestPatch,
    SizeRule, ValueRange,
};

use std::path::{Path, PathBuf};

/// Key under which the manifest JSON is stored in an ONNX file's `metadata_props`.
pub const METADATA_KEY: &str = "rsstyle.manifest";

/// Why a model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file '{path}' does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read model file '{path}': {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file '{path}' is empty")]
    Empty { path: PathBuf },
    #[error("'{path}' is not an ONNX model: {reason}")]
    NotOnnx { path: PathBuf, reason: String },
    #[error("'{path}' is not an image-to-image model: {reason}")]
    NotImageModel { path: PathBuf, reason: String },
    #[error("manifest for '{path}' is invalid ({origin}): {reason}")]
    BadManifest {
        path: PathBuf,
        origin: String,
        reason: String,
    },
}

/// A model file together with the manifest that describes it.
#[derive(Debug, Clone)]
pub struct Model {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// The ONNX opset the graph declares.
    pub opset: Option<i64>,
    /// Where each layer of the manifest came from, for `inspect` and logs.
    pub sources: Vec<String>,
}

impl Model {
    /// Reads `path`, infers its manifest and applies the embedded manifest, the sidecar file
    /// (`sidecar`, or `<model>.json` beside it when `None`) and `overrides`, in that order.
    pub fn load(
        path: &Path,
        sidecar: Option<&Path>,
        overrides: &ManifestPatch,
    ) -> Result<Self, ModelError> {
        let graph = load_graph(path)?;
        let beside = path.with_extension("json");
        let sidecar = sidecar.or(Some(beside.as_path()).filter(|p| p.is_file()));
        Self::from_graph(path, &graph, sidecar, overrides)
    }

    /// The manifest of a graph known by its interface (e.g. a model on an inference server,
    /// whose `path` is then its address), in the layers of [`Model::load`]: `sidecar` only
    /// when given.
    pub fn from_graph(
        path: &Path,
        graph: &GraphSummary,
        sidecar: Option<&Path>,
        overrides: &ManifestPatch,
    ) -> Result<Self, ModelError> {
        let mut manifest =
            graph::infer_manifest(graph).map_err(|reason| ModelError::NotImageModel {
                path: path.to_path_buf(),
                reason,
            })?;
        let mut sources = vec!["graph".to_string()];
        let bad = |origin: &str, reason: String| ModelError::BadManifest {
            path: path.to_path_buf(),
            origin: origin.to_string(),
            reason,
        };

        if let Some(json) = graph.metadata.get(METADATA_KEY) {
            let patch = ManifestPatch::from_json(json).map_err(|e| bad("embedded", e))?;
            manifest.apply(&patch);
            sources.push("embedded".to_string());
        }

        if let Some(p) = sidecar {
            if !p.exists() {
                return Err(bad(&p.display().to_string(), "file does not exist".into()));
            }
            let origin = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| bad(&origin, e.to_string()))?;
            let patch = ManifestPatch::from_json(&text).map_err(|e| bad(&origin, e))?;
            manifest.apply(&patch);
            sources.push(origin);
        }

        if !overrides.is_empty() {
            manifest.apply(overrides);
            sources.push("overrides".to_string());
        }
        manifest.validate(graph).map_err(|e| bad("merged", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            manifest,
            opset: graph.opset,
            sources,
        })
    }
}

#[cfg(test)]
mod tests;
