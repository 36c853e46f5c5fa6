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
pub mod spatial;

pub use graph::{GraphSummary, TensorInfo, load_graph};
pub use manifest::{
    ChannelOrder, Conditioning, ConditioningPatch, ElementType, Layout, Manifest, ManifestPatch,
    MinSize, SizeRule, ValueRange,
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
    /// What loading found worth telling the user (e.g. an output of another size than the
    /// input), for warnings and `inspect`.
    pub notes: Vec<String>,
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
        // Whether a manifest layer set the size multiple (else it may be found from the graph).
        let mut multiple_given = false;
        let bad = |origin: &str, reason: String| ModelError::BadManifest {
            path: path.to_path_buf(),
            origin: origin.to_string(),
            reason,
        };

        if let Some(json) = graph.metadata.get(METADATA_KEY) {
            let patch = ManifestPatch::from_json(json).map_err(|e| bad("embedded", e))?;
            multiple_given |= patch.size_multiple.is_some();
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
            multiple_given |= patch.size_multiple.is_some();
            manifest.apply(&patch);
            sources.push(origin);
        }

        if !overrides.is_empty() {
            multiple_given |= overrides.size_multiple.is_some();
            manifest.apply(overrides);
            sources.push("overrides".to_string());
        }
        manifest.validate(graph).map_err(|e| bad("merged", e))?;
        let min_given = manifest.min_size != MinSize::ANY;
        let notes = fit_sizes(&mut manifest, graph, multiple_given, min_given);
        Ok(Self {
            path: path.to_path_buf(),
            manifest,
            opset: graph.opset,
            sources,
            notes,
        })
    }
}

/// The side of the square [`fit_sizes`] compares output and input sizes at.
const REFERENCE_SIDE: usize = 256;

/// Completes `manifest`'s sizes from the graph's shape rules ([`spatial`]): the size multiple
/// at which output and input sizes match (unless a manifest layer set one), the smallest input
/// the graph runs (unless set), and notes on outputs of another size than their input.
fn fit_sizes(
    manifest: &mut Manifest,
    graph: &GraphSummary,
    multiple_given: bool,
    min_given: bool,
) -> Vec<String> {
    let (input, output, layout) = (
        manifest.input.clone(),
        manifest.output.clone(),
        manifest.layout,
    );
    let run = |h: usize, w: usize| graph.spatial.run(&input, &output, layout, h, w);
    let runs = |h: usize, w: usize| run(h, w).is_ok();
    let mut notes = Vec::new();
    let mismatch = |inp: (usize, usize), out: (usize, usize)| {
        format!(
            "the model returns {}x{} images for {}x{} input: its output is resized to the frame",
            out.1, out.0, inp.1, inp.0
        )
    };
    match manifest.size {
        SizeRule::Fixed { width, height } => match run(height, width) {
            Ok(Some(out)) if out != (height, width) => notes.push(mismatch((height, width), out)),
            Err(e) => notes.push(format!(
                "the model may not run at its own input size {width}x{height}: {e}"
            )),
            _ => {}
        },
        SizeRule::Multiple(given) => {
            let floor = spatial::min_size(1, runs).map_or(1, |(w, h)| w.max(h));
            let mut multiple = given;
            if !multiple_given
                && let Some(m) = spatial::matching_multiple(floor, |h, w| run(h, w).ok().flatten())
            {
                multiple = m;
                manifest.size = SizeRule::Multiple(m);
            }
            if !min_given {
                match spatial::min_size(multiple, runs) {
                    Some((width, height)) => manifest.min_size = MinSize { width, height },
                    None => notes.push(format!(
                        "no input size up to 2048x2048 satisfies the model's graph ({}); \
                         frames go to it unchanged",
                        run(REFERENCE_SIDE, REFERENCE_SIDE)
                            .err()
                            .unwrap_or_default()
                    )),
                }
            }
            let side = REFERENCE_SIDE
                .max(manifest.min_size.width)
                .max(manifest.min_size.height)
                .div_ceil(multiple)
                * multiple;
            if let Ok(Some(out)) = run(side, side)
                && out != (side, side)
            {
                notes.push(mismatch((side, side), out));
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests;
