//! A server's model metadata as a manifest, and a local model file checked against it.

use std::path::{Path, PathBuf};

use super::client::{Found, Target};
use super::protocol::model_metadata_response::TensorMetadata;
use crate::engine::EngineError;
use crate::model::{
    GraphSummary, Layout, METADATA_KEY, Manifest, ManifestPatch, Model, TensorInfo,
};

/// The protocol's tensor data type as the ONNX element type name the manifest code uses.
fn onnx_type(datatype: &str) -> String {
    match datatype {
        "FP32" => "FLOAT",
        "FP16" => "FLOAT16",
        "FP64" => "DOUBLE",
        "BF16" => "BFLOAT16",
        "BYTES" => "STRING",
        other => other,
    }
    .to_string()
}

fn tensor_info(t: &TensorMetadata) -> TensorInfo {
    TensorInfo {
        name: t.name.clone(),
        element_type: onnx_type(&t.datatype),
        dims: t.shape.iter().map(|&d| (d > 0).then_some(d)).collect(),
    }
}

/// The model's interface as the server describes it, with the manifest its configuration
/// stores, if any.
pub(super) fn summary(found: &Found) -> GraphSummary {
    GraphSummary {
        inputs: found.metadata.inputs.iter().map(tensor_info).collect(),
        outputs: found.metadata.outputs.iter().map(tensor_info).collect(),
        metadata: found
            .manifest_json
            .iter()
            .map(|json| (METADATA_KEY.to_string(), json.clone()))
            .collect(),
        producers: Default::default(),
        opset: None,
        // No graph to analyse: the minimum input size comes from a manifest layer if at all.
        spatial: Default::default(),
    }
}

/// The manifest for the server's model: from `local` when given (then checked against the
/// server's model), else from the server's metadata; `sidecar` and `overrides` on top.
pub(super) fn manifest(
    target: &Target,
    found: &Found,
    local: Option<&Path>,
    sidecar: Option<&Path>,
    overrides: &ManifestPatch,
) -> Result<Manifest, EngineError> {
    let graph = summary(found);
    // Errors name the model by its address: grpc://HOST:PORT/MODEL.
    let address = PathBuf::from(format!("{}/{}", target.address, target.model));
    let server = Model::from_graph(&address, &graph, sidecar, overrides)
        .map_err(|e| EngineError::Server(e.to_string()))?
        .manifest;
    let Some(local) = local else {
        return Ok(server);
    };
    let file = Model::load(local, sidecar, overrides)
        .map_err(|e| EngineError::Server(format!("{target}: {e}")))?
        .manifest;
    check_local(&file, &server, &graph).map_err(|reason| {
        EngineError::Server(format!(
            "{target} does not match the model file '{}': {reason}",
            local.display()
        ))
    })?;
    Ok(file)
}

/// Whether the server's model takes and returns what the file's manifest says.
fn check_local(file: &Manifest, server: &Manifest, graph: &GraphSummary) -> Result<(), String> {
    let names = |ts: &[TensorInfo]| {
        ts.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !graph.inputs.iter().any(|t| t.name == file.input) {
        return Err(format!(
            "the server's model has no input '{}' (inputs: {})",
            file.input,
            names(&graph.inputs)
        ));
    }
    if !graph.outputs.iter().any(|t| t.name == file.output) {
        return Err(format!(
            "the server's model has no output '{}' (outputs: {})",
            file.output,
            names(&graph.outputs)
        ));
    }
    if file.input != server.input || file.output != server.output {
        return Err(format!(
            "the server's model takes '{}' and returns '{}', the file '{}' and '{}'",
            server.input, server.output, file.input, file.output
        ));
    }
    if file.element_type != server.element_type
        || file.output_element_type != server.output_element_type
    {
        return Err(format!(
            "the server's model takes {} and returns {}, the file {} and {}",
            server.element_type.name(),
            server.output_element_type.name(),
            file.element_type.name(),
            file.output_element_type.name()
        ));
    }
    let layout = |l: Layout| match l {
        Layout::Nchw => "NCHW",
        Layout::Nhwc => "NHWC",
    };
    if file.layout != server.layout {
        return Err(format!(
            "the server's model is {}, the file {}",
            layout(server.layout),
            layout(file.layout)
        ));
    }
    let conditioning = |m: &Manifest| m.conditioning.as_ref().map(|c| (c.input.clone(), c.length));
    if conditioning(file) != conditioning(server) {
        return Err(format!(
            "the server's model has conditioning input {:?}, the file {:?}",
            conditioning(server),
            conditioning(file)
        ));
    }
    if server.size != file.size && !matches!(server.size, crate::model::SizeRule::Multiple(_)) {
        return Err(format!(
            "the server's model takes frames of {:?}, the file {:?}",
            server.size, file.size
        ));
    }
    Ok(())
}
