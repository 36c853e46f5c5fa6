//! Reading an ONNX file's interface (inputs, outputs, metadata, final ops) and inferring a
//! manifest from it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use onnx_protobuf::{
    Message, ModelProto, TypeProto, tensor_proto::DataType, tensor_shape_proto::dimension,
};
use protobuf::Enum;

use super::ModelError;
use super::manifest::{
    ChannelOrder, Conditioning, ElementType, Layout, Manifest, MinSize, SizeRule, ValueRange,
};
use super::spatial::SpatialGraph;

/// Name, element type and shape of a graph input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ONNX element type name (`FLOAT`, `FLOAT16`, `UINT8`, …).
    pub element_type: String,
    /// Dimensions; `None` where the graph leaves one symbolic or unknown.
    pub dims: Vec<Option<i64>>,
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
            .collect();
        write!(
            f,
            "{} [{}] {}",
            self.name,
            dims.join(","),
            self.element_type.to_lowercase()
        )
    }
}

/// What the rest of rsstyle needs to know about an ONNX graph.
#[derive(Debug, Clone, Default)]
pub struct GraphSummary {
    /// Graph inputs that are not initializers.
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub metadata: HashMap<String, String>,
    /// For each tensor, the op type and first input of the node that produces it.
    pub producers: HashMap<String, (String, String)>,
    pub opset: Option<i64>,
    /// How tensor sizes change through the graph.
    pub spatial: SpatialGraph,
}

impl GraphSummary {
    /// The op that computes `tensor`, looking through `Identity` and `Cast` nodes.
    pub fn final_op(&self, tensor: &str) -> Option<&str> {
        let mut name = tensor;
        for _ in 0..64 {
            let (op, input) = self.producers.get(name)?;
            if op != "Identity" && op != "Cast" {
                return Some(op);
            }
            name = input;
        }
        None
    }
}

/// Reads and decodes the ONNX file at `path`.
pub fn load_graph(path: &Path) -> Result<GraphSummary, ModelError> {
    let path_buf = path.to_path_buf();
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::Missing {
            path: path_buf.clone(),
        },
        _ => ModelError::Unreadable {
            path: path_buf.clone(),
            source: e,
        },
    })?;
    if bytes.is_empty() {
        return Err(ModelError::Empty { path: path_buf });
    }
    let not_onnx = |reason: String| ModelError::NotOnnx {
        path: path_buf.clone(),
        reason,
    };
    let model = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| not_onnx(format!("protobuf decoding failed ({e})")))?;
    let graph = model
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty() || !g.output.is_empty())
        .ok_or_else(|| not_onnx("the file holds no graph".to_string()))?;
    if model.ir_version <= 0 {
        return Err(not_onnx("the file has no ONNX IR version".to_string()));
    }

    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let info = |v: &onnx_protobuf::ValueInfoProto| tensor_info(&v.name, &v.type_);
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
        .map(info)
        .collect();
    let outputs: Vec<TensorInfo> = graph.output.iter().map(info).collect();
    let mut producers = HashMap::new();
    for node in &graph.node {
        let first_input = node.input.first().cloned().unwrap_or_default();
        for out in &node.output {
            producers.insert(out.clone(), (node.op_type.clone(), first_input.clone()));
        }
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version);
    Ok(GraphSummary {
        inputs,
        outputs,
        metadata: model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
        producers,
        opset,
        spatial: SpatialGraph::new(graph, opset.unwrap_or(1)),
    })
}

fn tensor_info(name: &str, ty: &protobuf::MessageField<TypeProto>) -> TensorInfo {
    let tensor = ty
        .as_ref()
        .filter(|t| t.has_tensor_type())
        .map(|t| t.tensor_type());
    let element_type = tensor
        .and_then(|t| DataType::from_i32(t.elem_type))
        .map_or("UNKNOWN".to_string(), |d| format!("{d:?}"));
    let dims = tensor
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(dimension::Value::DimValue(v)) if *v > 0 => Some(*v),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    TensorInfo {
        name: name.to_string(),
        element_type,
        dims,
    }
}

/// Where the three colour channels of a 4-D tensor are, if that can be told.
fn channel_layout(t: &TensorInfo) -> Result<Layout, String> {
    let (c1, c3) = (t.dims[1], t.dims[3]);
    match (c1, c3) {
        (Some(3), _) => Ok(Layout::Nchw),
        (_, Some(3)) => Ok(Layout::Nhwc),
        (Some(c), Some(_)) => Err(format!(
            "'{}' has {c} channel{}; rsstyle needs a 3-channel (RGB) image",
            t.name,
            if c == 1 { "" } else { "s" }
        )),
        (Some(c), None) if c != 3 => Err(format!(
            "'{}' has {c} channel{}; rsstyle needs a 3-channel (RGB) image",
            t.name,
            if c == 1 { "" } else { "s" }
        )),
        // Both channel candidates unknown: assume the common NCHW layout.
        _ => Ok(Layout::Nchw),
    }
}

fn image_element_type(t: &TensorInfo) -> Result<ElementType, String> {
    match t.element_type.as_str() {
        "FLOAT" => Ok(ElementType::F32),
        "FLOAT16" => Ok(ElementType::F16),
        "UINT8" => Ok(ElementType::U8),
        other => Err(format!(
            "'{}' has element type {}; rsstyle supports float32, float16 and uint8 images",
            t.name,
            other.to_lowercase()
        )),
    }
}

fn list(ts: &[TensorInfo]) -> String {
    if ts.is_empty() {
        return "none".to_string();
    }
    ts.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Infers a manifest from the graph alone, or says why the graph cannot be an image generator.
///
/// Defaults where the graph is silent: RGB channel order; value range `-1..1` when the output
/// comes from `Tanh`, `0..1` when from `Sigmoid` (looking through `Identity` and `Cast`), else
/// `0..255` (and always `0..255` for a uint8 tensor); any size (multiple of 1), or the fixed
/// size the input declares.
pub(crate) fn infer_manifest(g: &GraphSummary) -> Result<Manifest, String> {
    let images: Vec<&TensorInfo> = g.inputs.iter().filter(|t| t.dims.len() == 4).collect();
    let image = match images.as_slice() {
        [] => {
            return Err(format!(
                "it has no 4-D image input (inputs: {})",
                list(&g.inputs)
            ));
        }
        [one] => *one,
        many => {
            let names: Vec<&str> = many.iter().map(|t| t.name.as_str()).collect();
            return Err(format!(
                "it has {} image inputs ({}); rsstyle runs single-image generators",
                many.len(),
                names.join(", ")
            ));
        }
    };
    let layout = channel_layout(image).map_err(|e| format!("input {e}"))?;
    let element_type = image_element_type(image).map_err(|e| format!("input {e}"))?;

    let mut conditioning = None;
    for t in g.inputs.iter().filter(|t| t.name != image.name) {
        let length = match t.dims.as_slice() {
            [Some(k)] | [_, Some(k)]
                if t.element_type == "FLOAT" || t.element_type == "FLOAT16" =>
            {
                *k as usize
            }
            _ => {
                return Err(format!(
                    "input {t} is neither the image nor a conditioning vector ([K] or [N,K] floats)"
                ));
            }
        };
        if conditioning.is_some() {
            return Err(format!(
                "it has more than one conditioning input (inputs: {})",
                list(&g.inputs)
            ));
        }
        conditioning = Some(Conditioning {
            input: t.name.clone(),
            length,
            labels: Vec::new(),
        });
    }

    let output = g
        .outputs
        .iter()
        .find(|t| t.dims.len() == 4)
        .ok_or_else(|| format!("it has no 4-D image output (outputs: {})", list(&g.outputs)))?;
    let out_layout = channel_layout(output).map_err(|e| format!("output {e}"))?;
    if out_layout != layout {
        return Err(format!(
            "input '{}' and output '{}' have different layouts",
            image.name, output.name
        ));
    }
    let output_element_type = image_element_type(output).map_err(|e| format!("output {e}"))?;

    let range = match g.final_op(&output.name) {
        Some("Tanh") => ValueRange::Signed,
        Some("Sigmoid") => ValueRange::Unit,
        _ => ValueRange::Byte,
    };
    // Bytes hold 0..255 whatever the other side does.
    let byte_or = |t: ElementType| {
        if t == ElementType::U8 {
            ValueRange::Byte
        } else {
            range
        }
    };
    let (h, w) = match layout {
        Layout::Nchw => (image.dims[2], image.dims[3]),
        Layout::Nhwc => (image.dims[1], image.dims[2]),
    };
    let size = match (w, h) {
        (Some(width), Some(height)) => SizeRule::Fixed {
            width: width as usize,
            height: height as usize,
        },
        _ => SizeRule::Multiple(1),
    };
    Ok(Manifest {
        input: image.name.clone(),
        output: output.name.clone(),
        layout,
        element_type,
        output_element_type,
        input_range: byte_or(element_type),
        output_range: byte_or(output_element_type),
        channel_order: ChannelOrder::Rgb,
        size,
        min_size: MinSize::ANY,
        max_batch: image.dims[0].map(|b| b as usize),
        conditioning,
        description: None,
    })
}
