//! How an image's size changes through an ONNX graph: which input sizes the graph can run and
//! what size it returns.
//!
//! A small shape inference (ONNX operator specification, opsets 7–21) over the operators image
//! generators are made of: convolutions, pools, pads, resizes, depth/space shuffles, reshapes
//! and elementwise arithmetic, with the values of the small integer tensors that shape
//! subgraphs compute (`Shape` → `Gather` → `Concat` → `Resize` sizes). Running it at one input
//! size checks what ONNX Runtime checks at run time and would fail on:
//! - a reflection pad mirrors at most `size − 1` pixels ("Pad reflect: pre-pad (4) exceeds
//!   maximum allowed (3)"), an edge pad needs one pixel;
//! - a convolution or pool needs at least its (dilated) kernel, padding included;
//! - `SpaceToDepth` needs a multiple of its block;
//! - tensors added or concatenated must agree in size (U-Net skip connections).
//!
//! An operator it does not know leaves its outputs unknown: what lies behind it is not checked,
//! and the output size is then unknown.

use std::collections::HashMap;

use onnx_protobuf::{GraphProto, NodeProto, TensorProto, tensor_proto::DataType};
use protobuf::Enum;

use super::manifest::Layout;

/// A tensor shape; `None` where the size is not known.
type Shape = Vec<Option<i64>>;

/// Constant tensors with at most this many elements keep their values (pads, scales, shapes).
const SMALL: usize = 1024;

/// The parts of a graph that decide tensor sizes.
#[derive(Debug, Clone, Default)]
pub struct SpatialGraph {
    nodes: Vec<Node>,
    /// Shapes of initializers, constants and declared graph inputs.
    shapes: HashMap<String, Shape>,
    /// Values of small constant tensors.
    values: HashMap<String, Vec<f64>>,
    /// The default-domain opset (operators changed where their inputs live across versions).
    opset: i64,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    ints: HashMap<String, Vec<i64>>,
    floats: HashMap<String, Vec<f32>>,
    strings: HashMap<String, String>,
}

impl Node {
    fn int(&self, key: &str, default: i64) -> i64 {
        self.ints
            .get(key)
            .and_then(|v| v.first().copied())
            .unwrap_or(default)
    }

    fn ints(&self, key: &str) -> Option<&[i64]> {
        self.ints.get(key).map(Vec::as_slice)
    }

    fn string(&self, key: &str) -> Option<&str> {
        self.strings.get(key).map(String::as_str)
    }

    /// Input `i`, unless absent or given as the empty name (an omitted optional input).
    fn input(&self, i: usize) -> Option<&str> {
        self.inputs
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn label(&self) -> String {
        if self.name.is_empty() {
            self.op.clone()
        } else {
            format!("{} '{}'", self.op, self.name)
        }
    }
}

/// The values of `t` as numbers, if it is a small numeric tensor stored in the file.
fn tensor_values(t: &TensorProto) -> Option<Vec<f64>> {
    let count: i64 = t.dims.iter().product();
    if count < 0 || count as usize > SMALL {
        return None;
    }
    let raw = &t.raw_data;
    let ty = DataType::from_i32(t.data_type)?;
    let values: Vec<f64> = match ty {
        DataType::INT64 if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        DataType::INT64 => t.int64_data.iter().map(|&v| v as f64).collect(),
        DataType::INT32 if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        DataType::INT32 => t.int32_data.iter().map(|&v| v as f64).collect(),
        DataType::FLOAT if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
            .collect(),
        DataType::FLOAT => t.float_data.iter().map(|&v| v as f64).collect(),
        DataType::DOUBLE if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        DataType::DOUBLE => t.double_data.clone(),
        DataType::FLOAT16 if !raw.is_empty() => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect(),
        DataType::FLOAT16 => t
            .int32_data
            .iter()
            .map(|&v| half::f16::from_bits(v as u16).to_f64())
            .collect(),
        _ => return None,
    };
    (values.len() as i64 == count).then_some(values)
}

fn known(dims: &[i64]) -> Shape {
    dims.iter().map(|&d| Some(d)).collect()
}

impl SpatialGraph {
    /// Collects what decides sizes in `graph`; `opset` is the model's default-domain opset.
    pub fn new(graph: &GraphProto, opset: i64) -> Self {
        let mut g = Self {
            opset,
            ..Self::default()
        };
        for t in &graph.initializer {
            g.shapes.insert(t.name.clone(), known(&t.dims));
            if let Some(v) = tensor_values(t) {
                g.values.insert(t.name.clone(), v);
            }
        }
        for v in &graph.input {
            if g.shapes.contains_key(&v.name) {
                continue;
            }
            let dims = v
                .type_
                .as_ref()
                .filter(|t| t.has_tensor_type())
                .and_then(|t| t.tensor_type().shape.as_ref())
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match &d.value {
                            Some(
                                onnx_protobuf::tensor_shape_proto::dimension::Value::DimValue(v),
                            ) if *v > 0 => Some(*v),
                            _ => None,
                        })
                        .collect()
                });
            if let Some(dims) = dims {
                g.shapes.insert(v.name.clone(), dims);
            }
        }
        for n in &graph.node {
            if !(n.domain.is_empty() || n.domain == "ai.onnx") {
                g.nodes.push(Node::unknown(n));
                continue;
            }
            if n.op_type == "Constant"
                && let Some(out) = n.output.first()
            {
                g.constant(out, n);
                continue;
            }
            g.nodes.push(Node::from_proto(n));
        }
        g
    }

    /// Records the value of a `Constant` node.
    fn constant(&mut self, out: &str, n: &NodeProto) {
        for a in &n.attribute {
            let (shape, values) = match a.name.as_str() {
                "value" => match a.t.as_ref() {
                    Some(t) => (known(&t.dims), tensor_values(t)),
                    None => continue,
                },
                "value_int" => (vec![], Some(vec![a.i as f64])),
                "value_ints" => (
                    vec![Some(a.ints.len() as i64)],
                    Some(a.ints.iter().map(|&v| v as f64).collect()),
                ),
                "value_float" => (vec![], Some(vec![a.f as f64])),
                "value_floats" => (
                    vec![Some(a.floats.len() as i64)],
                    Some(a.floats.iter().map(|&v| v as f64).collect()),
                ),
                _ => continue,
            };
            self.shapes.insert(out.to_string(), shape);
            if let Some(v) = values {
                self.values.insert(out.to_string(), v);
            }
        }
    }

    /// Runs the graph's shape rules for an image `input` of `height`×`width` in `layout` (batch
    /// as the graph declares it, else 1). `Ok` holds the size (height, width) of the image
    /// `output` if it could be followed there; `Err` says which node could not run.
    pub fn run(
        &self,
        input: &str,
        output: &str,
        layout: Layout,
        height: usize,
        width: usize,
    ) -> Result<Option<(usize, usize)>, String> {
        let declared = self.shapes.get(input);
        let batch = declared
            .and_then(|d| d.first().copied().flatten())
            .unwrap_or(1);
        let (h, w) = (Some(height as i64), Some(width as i64));
        let image = match layout {
            Layout::Nchw => vec![Some(batch), Some(3), h, w],
            Layout::Nhwc => vec![Some(batch), h, w, Some(3)],
        };
        let mut run = Run {
            graph: self,
            shapes: HashMap::from([(input, image)]),
            values: HashMap::new(),
        };
        for node in &self.nodes {
            run.node(node)?;
        }
        let Some(out) = run.shape(output) else {
            return Ok(None);
        };
        let (oh, ow) = match (layout, out.as_slice()) {
            (Layout::Nchw, [_, _, oh, ow]) | (Layout::Nhwc, [_, oh, ow, _]) => (*oh, *ow),
            _ => return Ok(None),
        };
        Ok(oh.zip(ow).map(|(oh, ow)| (oh as usize, ow as usize)))
    }
}

impl Node {
    fn from_proto(n: &NodeProto) -> Self {
        let mut node = Self::unknown(n);
        for a in &n.attribute {
            let name = a.name.clone();
            use onnx_protobuf::attribute_proto::AttributeType as T;
            match a.type_.enum_value() {
                Ok(T::INT) => {
                    node.ints.insert(name, vec![a.i]);
                }
                Ok(T::INTS) => {
                    node.ints.insert(name, a.ints.clone());
                }
                Ok(T::FLOAT) => {
                    node.floats.insert(name, vec![a.f]);
                }
                Ok(T::FLOATS) => {
                    node.floats.insert(name, a.floats.clone());
                }
                Ok(T::STRING) => {
                    node.strings
                        .insert(name, String::from_utf8_lossy(&a.s).into_owned());
                }
                _ => {}
            }
        }
        node
    }

    /// A node whose outputs are left unknown.
    fn unknown(n: &NodeProto) -> Self {
        Self {
            name: n.name.clone(),
            op: if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}.{}", n.domain, n.op_type)
            },
            inputs: n.input.clone(),
            outputs: n.output.clone(),
            ints: HashMap::new(),
            floats: HashMap::new(),
            strings: HashMap::new(),
        }
    }
}

/// One run of the shape rules.
struct Run<'a> {
    graph: &'a SpatialGraph,
    shapes: HashMap<&'a str, Shape>,
    values: HashMap<&'a str, Vec<f64>>,
}

/// Operators whose output has their first input's shape.
const SAME_SHAPE: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Tanh",
    "Sigmoid",
    "Identity",
    "Clip",
    "Neg",
    "Abs",
    "Exp",
    "Log",
    "Sqrt",
    "Erf",
    "Softplus",
    "Softsign",
    "Elu",
    "Selu",
    "Celu",
    "HardSigmoid",
    "HardSwish",
    "Mish",
    "Gelu",
    "Dropout",
    "Round",
    "Floor",
    "Ceil",
    "Reciprocal",
    "InstanceNormalization",
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "MeanVarianceNormalization",
    "LRN",
    "Softmax",
    "LogSoftmax",
    "Not",
    "Sign",
    "Sin",
    "Cos",
    "IsNaN",
    "QuantizeLinear",
    "DequantizeLinear",
    "Cast",
    "CastLike",
];

/// Operators whose inputs broadcast together (numpy rules).
const BROADCAST: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "Where",
    "And",
    "Or",
    "Xor",
    "Equal",
    "Greater",
    "Less",
    "GreaterOrEqual",
    "LessOrEqual",
    "PRelu",
    "Mod",
];

/// `i` (possibly negative) as an axis of a tensor of `rank`.
fn axis(i: i64, rank: usize) -> Option<usize> {
    let a = if i < 0 { i + rank as i64 } else { i };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

impl<'a> Run<'a> {
    fn shape(&self, name: &str) -> Option<Shape> {
        self.shapes
            .get(name)
            .or_else(|| self.graph.shapes.get(name))
            .cloned()
    }

    fn value(&self, name: &str) -> Option<Vec<f64>> {
        self.values
            .get(name)
            .or_else(|| self.graph.values.get(name))
            .cloned()
    }

    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        Some(self.value(name)?.iter().map(|&v| v as i64).collect())
    }

    fn set(&mut self, node: &'a Node, shape: Shape, value: Option<Vec<f64>>) {
        if let Some(out) = node.outputs.first() {
            if let Some(v) = value {
                self.values.insert(out, v);
            }
            self.shapes.insert(out, shape);
        }
    }

    /// Integer attribute `key` (older opsets) or constant input `i` (newer ones).
    fn ints_from(&self, node: &Node, key: &str, i: usize) -> Option<Vec<i64>> {
        match node.ints(key) {
            Some(v) => Some(v.to_vec()),
            None => self.ints(node.input(i)?),
        }
    }

    fn node(&mut self, node: &'a Node) -> Result<(), String> {
        let op = node.op.as_str();
        let Some(x) = node.input(0).and_then(|i| self.shape(i)) else {
            return Ok(());
        };
        let value = node.input(0).and_then(|i| self.value(i));
        match op {
            _ if SAME_SHAPE.contains(&op) => {
                let value = value.and_then(|v| match op {
                    "Floor" => Some(v.iter().map(|x| x.floor()).collect()),
                    "Ceil" => Some(v.iter().map(|x| x.ceil()).collect()),
                    "Neg" => Some(v.iter().map(|x| -x).collect()),
                    // Casts to FLOAT, FLOAT16, DOUBLE and BFLOAT16 keep the value; to integer
                    // types they truncate.
                    "Cast" if matches!(node.int("to", 1), 1 | 10 | 11 | 16) => Some(v),
                    "Cast" => Some(v.iter().map(|x| x.trunc()).collect()),
                    "Round" => Some(v.iter().map(|x| x.round_ties_even()).collect()),
                    "Identity" | "CastLike" => Some(v),
                    _ => None,
                });
                self.set(node, x, value);
            }
            "ConstantOfShape" => {
                if let Some(dims) = value {
                    self.set(node, dims.iter().map(|&d| Some(d as i64)).collect(), None);
                }
            }
            _ if BROADCAST.contains(&op) => self.broadcast(node)?,
            "Conv" | "ConvInteger" | "QLinearConv" => self.conv(node, &x)?,
            "ConvTranspose" => self.conv_transpose(node, &x),
            "MaxPool" | "AveragePool" | "LpPool" => self.pool(node, &x)?,
            "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => {
                let mut s = x.clone();
                s.iter_mut().skip(2).for_each(|d| *d = Some(1));
                self.set(node, s, None);
            }
            "Pad" => self.pad(node, &x)?,
            "Resize" | "Upsample" => self.resize(node, &x),
            "DepthToSpace" | "SpaceToDepth" => self.depth_space(node, &x)?,
            "Transpose" => {
                let perm: Vec<i64> = node
                    .ints("perm")
                    .map(<[i64]>::to_vec)
                    .unwrap_or_else(|| (0..x.len() as i64).rev().collect());
                let s: Option<Shape> = perm
                    .iter()
                    .map(|&p| axis(p, x.len()).map(|a| x[a]))
                    .collect();
                if let Some(s) = s {
                    self.set(node, s, None);
                }
            }
            "Concat" => self.concat(node, &x)?,
            "Slice" => self.slice(node, &x, value),
            "Reshape" => self.reshape(node, &x),
            "Flatten" => {
                let Some(a) = axis(node.int("axis", 1), x.len() + 1) else {
                    return Ok(());
                };
                let prod = |d: &[Option<i64>]| d.iter().try_fold(1, |p, d| d.map(|d| p * d));
                self.set(node, vec![prod(&x[..a]), prod(&x[a..])], None);
            }
            "Squeeze" => {
                let axes = self.ints_from(node, "axes", 1);
                let s: Shape = match axes {
                    Some(axes) => {
                        let axes: Vec<usize> =
                            axes.iter().filter_map(|&a| axis(a, x.len())).collect();
                        x.iter()
                            .enumerate()
                            .filter(|(i, _)| !axes.contains(i))
                            .map(|(_, d)| *d)
                            .collect()
                    }
                    None if x.iter().all(Option::is_some) => {
                        x.iter().filter(|d| **d != Some(1)).copied().collect()
                    }
                    None => return Ok(()),
                };
                self.set(node, s, value);
            }
            "Unsqueeze" => {
                let Some(axes) = self.ints_from(node, "axes", 1) else {
                    return Ok(());
                };
                let rank = x.len() + axes.len();
                let mut axes: Vec<usize> = axes.iter().filter_map(|&a| axis(a, rank)).collect();
                axes.sort_unstable();
                let mut rest = x.iter();
                let s: Shape = (0..rank)
                    .map(|i| {
                        if axes.contains(&i) {
                            Some(1)
                        } else {
                            rest.next().copied().flatten()
                        }
                    })
                    .collect();
                self.set(node, s, value);
            }
            "Shape" => {
                let rank = x.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let start = clamp(node.int("start", 0));
                let end = clamp(node.int("end", rank));
                let dims = &x[start.min(end)..end];
                let value = dims
                    .iter()
                    .map(|d| d.map(|d| d as f64))
                    .collect::<Option<Vec<f64>>>();
                self.set(node, vec![Some(dims.len() as i64)], value);
            }
            "Gather" => {
                let Some(indices) = node.input(1).and_then(|i| self.shape(i)) else {
                    return Ok(());
                };
                let Some(a) = axis(node.int("axis", 0), x.len()) else {
                    return Ok(());
                };
                let s: Shape = x[..a]
                    .iter()
                    .chain(&indices)
                    .chain(&x[a + 1..])
                    .copied()
                    .collect();
                let picked = match (value, node.input(1).and_then(|i| self.ints(i))) {
                    (Some(v), Some(idx)) if x.len() == 1 => idx
                        .iter()
                        .map(|&i| {
                            let i = if i < 0 { i + v.len() as i64 } else { i };
                            v.get(i as usize).copied()
                        })
                        .collect(),
                    _ => None,
                };
                self.set(node, s, picked);
            }
            "Expand" => {
                let Some(target) = node.input(1).and_then(|i| self.ints(i)) else {
                    return Ok(());
                };
                let s = broadcast(&[x, known(&target)])
                    .map_err(|e| format!("{}: {e}", node.label()))?;
                self.set(node, s, None);
            }
            "MatMul" => {
                let Some(y) = node.input(1).and_then(|i| self.shape(i)) else {
                    return Ok(());
                };
                if x.len() >= 2 && y.len() >= 2 {
                    let batch = broadcast(&[x[..x.len() - 2].to_vec(), y[..y.len() - 2].to_vec()])
                        .map_err(|e| format!("{}: {e}", node.label()))?;
                    let mut s = batch;
                    s.push(x[x.len() - 2]);
                    s.push(y[y.len() - 1]);
                    self.set(node, s, None);
                }
            }
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceL2" | "ReduceProd"
            | "ReduceSumSquare" => {
                let axes = self.ints_from(node, "axes", 1);
                let keep = node.int("keepdims", 1) != 0;
                let all: Vec<usize> = match axes {
                    Some(a) if !a.is_empty() => {
                        a.iter().filter_map(|&a| axis(a, x.len())).collect()
                    }
                    _ if node.int("noop_with_empty_axes", 0) != 0 => {
                        self.set(node, x, None);
                        return Ok(());
                    }
                    _ => (0..x.len()).collect(),
                };
                let s: Shape = x
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| match (all.contains(&i), keep) {
                        (true, true) => Some(Some(1)),
                        (true, false) => None,
                        (false, _) => Some(*d),
                    })
                    .collect();
                self.set(node, s, None);
            }
            // Unknown operators: their outputs stay unknown.
            _ => {}
        }
        Ok(())
    }

    fn broadcast(&mut self, node: &'a Node) -> Result<(), String> {
        let inputs: Vec<&str> = node.inputs.iter().map(String::as_str).collect();
        let shapes: Option<Vec<Shape>> = inputs.iter().map(|i| self.shape(i)).collect();
        let Some(shapes) = shapes else {
            return Ok(());
        };
        let s = broadcast(&shapes).map_err(|e| format!("{}: {e}", node.label()))?;
        // Values of small vectors (shape arithmetic): same length or scalars.
        let value = match (node.op.as_str(), inputs.as_slice()) {
            (op @ ("Add" | "Sub" | "Mul" | "Div"), [a, b]) => {
                match (self.value(a), self.value(b)) {
                    (Some(a), Some(b)) if a.len() == b.len() || a.len() == 1 || b.len() == 1 => {
                        let n = a.len().max(b.len());
                        let get = |v: &[f64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
                        Some(
                            (0..n)
                                .map(|i| {
                                    let (a, b) = (get(&a, i), get(&b, i));
                                    match op {
                                        "Add" => a + b,
                                        "Sub" => a - b,
                                        "Mul" => a * b,
                                        _ if b == 0.0 => f64::NAN,
                                        _ => a / b,
                                    }
                                })
                                .collect(),
                        )
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        self.set(node, s, value);
        Ok(())
    }

    /// Spatial attributes of a convolution or pool over `spatial` axes: (kernel, strides,
    /// dilations, pads begin, pads end).
    #[allow(clippy::type_complexity)]
    fn window(
        &self,
        node: &Node,
        spatial: usize,
        kernel: Option<Vec<i64>>,
    ) -> Option<(Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>)> {
        let kernel = kernel?;
        let get = |key: &str, default: i64, len: usize| {
            node.ints(key)
                .map(<[i64]>::to_vec)
                .unwrap_or_else(|| vec![default; len])
        };
        let strides = get("strides", 1, spatial);
        let dilations = get("dilations", 1, spatial);
        let pads = get("pads", 0, 2 * spatial);
        if kernel.len() != spatial
            || strides.len() != spatial
            || dilations.len() != spatial
            || pads.len() != 2 * spatial
        {
            return None;
        }
        Some((
            kernel,
            strides,
            dilations,
            pads[..spatial].to_vec(),
            pads[spatial..].to_vec(),
        ))
    }

    /// Output sizes of a sliding window over the spatial axes of `x`, or why it cannot slide.
    fn slide(
        &self,
        node: &Node,
        x: &Shape,
        kernel: Option<Vec<i64>>,
        ceil: bool,
    ) -> Result<Option<Shape>, String> {
        let spatial = x.len().saturating_sub(2);
        let Some((k, s, d, pb, pe)) = self.window(node, spatial, kernel) else {
            return Ok(None);
        };
        let auto = node.string("auto_pad").unwrap_or("NOTSET");
        let mut out = Vec::with_capacity(spatial);
        for i in 0..spatial {
            let Some(n) = x[2 + i] else {
                out.push(None);
                continue;
            };
            let reach = (k[i] - 1) * d[i] + 1;
            let s = s[i].max(1);
            let size = match auto {
                "SAME_UPPER" | "SAME_LOWER" => (n + s - 1) / s,
                _ => {
                    let padded = if auto == "VALID" {
                        n
                    } else {
                        n + pb[i] + pe[i]
                    };
                    if padded < reach {
                        return Err(format!(
                            "{} needs at least {} pixels along axis {} ({}{}), got {n}",
                            node.label(),
                            reach - (padded - n),
                            2 + i,
                            if d[i] > 1 { "dilated " } else { "" },
                            if padded > n {
                                format!("kernel {} with {} padding", k[i], padded - n)
                            } else {
                                format!("kernel {}", k[i])
                            }
                        ));
                    }
                    let span = padded - reach;
                    if ceil {
                        (span + s - 1) / s + 1
                    } else {
                        span / s + 1
                    }
                }
            };
            out.push(Some(size));
        }
        Ok(Some(out))
    }

    fn conv(&mut self, node: &'a Node, x: &Shape) -> Result<(), String> {
        let w_name = if node.op == "QLinearConv" { 3 } else { 1 };
        let w = node.input(w_name).and_then(|i| self.shape(i));
        let kernel = node.ints("kernel_shape").map(<[i64]>::to_vec).or_else(|| {
            w.as_ref()
                .map(|w| w.iter().skip(2).map(|d| d.unwrap_or(1)).collect())
        });
        if let Some(sizes) = self.slide(node, x, kernel, false)? {
            let channels = w.as_ref().and_then(|w| w.first().copied().flatten());
            let mut s = vec![x[0], channels];
            s.extend(sizes);
            self.set(node, s, None);
        }
        Ok(())
    }

    fn conv_transpose(&mut self, node: &'a Node, x: &Shape) {
        let spatial = x.len().saturating_sub(2);
        let w = node.input(1).and_then(|i| self.shape(i));
        let kernel = node.ints("kernel_shape").map(<[i64]>::to_vec).or_else(|| {
            w.as_ref()
                .map(|w| w.iter().skip(2).map(|d| d.unwrap_or(1)).collect())
        });
        let Some((k, s, d, pb, pe)) = self.window(node, spatial, kernel) else {
            return;
        };
        let extra = node
            .ints("output_padding")
            .map(<[i64]>::to_vec)
            .unwrap_or_else(|| vec![0; spatial]);
        let given = node.ints("output_shape");
        let auto = node.string("auto_pad").unwrap_or("NOTSET");
        let sizes: Shape = (0..spatial)
            .map(|i| {
                if let Some(g) = given {
                    return g.get(i).copied();
                }
                let n = x[2 + i]?;
                Some(match auto {
                    "SAME_UPPER" | "SAME_LOWER" => n * s[i],
                    _ => {
                        s[i] * (n - 1) + extra.get(i).copied().unwrap_or(0) + (k[i] - 1) * d[i] + 1
                            - pb[i]
                            - pe[i]
                    }
                })
            })
            .collect();
        let group = node.int("group", 1);
        let channels = w
            .as_ref()
            .and_then(|w| w.get(1).copied().flatten())
            .map(|c| c * group);
        let mut shape = vec![x[0], channels];
        shape.extend(sizes);
        self.set(node, shape, None);
    }

    fn pool(&mut self, node: &'a Node, x: &Shape) -> Result<(), String> {
        let kernel = node.ints("kernel_shape").map(<[i64]>::to_vec);
        let ceil = node.int("ceil_mode", 0) != 0;
        if let Some(sizes) = self.slide(node, x, kernel, ceil)? {
            let mut s = vec![x[0], x.get(1).copied().flatten()];
            s.extend(sizes);
            self.set(node, s, None);
        }
        Ok(())
    }

    fn pad(&mut self, node: &'a Node, x: &Shape) -> Result<(), String> {
        let pads = if self.graph.opset < 11 {
            node.ints("pads").map(<[i64]>::to_vec)
        } else {
            node.input(1).and_then(|i| self.ints(i))
        };
        let Some(pads) = pads else {
            return Ok(());
        };
        let rank = x.len();
        let axes: Vec<usize> = match node.input(3).and_then(|i| self.ints(i)) {
            Some(a) => a.iter().filter_map(|&a| axis(a, rank)).collect(),
            None => (0..rank).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Ok(());
        }
        let mode = node.string("mode").unwrap_or("constant");
        let mut s = x.clone();
        for (j, &a) in axes.iter().enumerate() {
            let (before, after) = (pads[j], pads[axes.len() + j]);
            let Some(n) = x[a] else {
                continue;
            };
            let most = before.max(after);
            if mode == "reflect" && most > n - 1 {
                return Err(format!(
                    "{} (reflect) mirrors {most} pixels along axis {a}, which needs at least {} and got {n}",
                    node.label(),
                    most + 1
                ));
            }
            if mode == "edge" && n < 1 && most > 0 {
                return Err(format!(
                    "{} (edge) has no pixel to repeat along axis {a}",
                    node.label()
                ));
            }
            let size = n + before + after;
            if size < 1 {
                return Err(format!(
                    "{} crops {} pixels along axis {a} of {n}",
                    node.label(),
                    -(before + after)
                ));
            }
            s[a] = Some(size);
        }
        self.set(node, s, None);
        Ok(())
    }

    fn resize(&mut self, node: &'a Node, x: &Shape) {
        let rank = x.len();
        // Resize: X, roi, scales, sizes (opset 11+) or X, scales (10); Upsample: X, scales
        // (9) or a `scales` attribute (7).
        let (scales_at, sizes_at) = match (node.op.as_str(), self.graph.opset) {
            ("Resize", v) if v >= 11 => (Some(2), Some(3)),
            _ => (Some(1), None),
        };
        let axes: Vec<usize> = match node.ints("axes") {
            Some(a) => a.iter().filter_map(|&a| axis(a, rank)).collect(),
            None => (0..rank).collect(),
        };
        let sizes = sizes_at
            .and_then(|i| node.input(i))
            .and_then(|i| self.ints(i))
            .filter(|v| v.len() == axes.len());
        let scales = scales_at
            .and_then(|i| node.input(i))
            .and_then(|i| self.value(i))
            .or_else(|| {
                node.floats
                    .get("scales")
                    .map(|v| v.iter().map(|&f| f as f64).collect())
            })
            .filter(|v| v.len() == axes.len());
        let mut s = x.clone();
        match (sizes, scales) {
            (Some(sizes), _) => {
                for (j, &a) in axes.iter().enumerate() {
                    s[a] = Some(sizes[j]);
                }
            }
            (None, Some(scales)) => {
                for (j, &a) in axes.iter().enumerate() {
                    s[a] = x[a].map(|n| (n as f64 * scales[j]).floor() as i64);
                }
            }
            (None, None) => return,
        }
        self.set(node, s, None);
    }

    fn depth_space(&mut self, node: &'a Node, x: &Shape) -> Result<(), String> {
        let b = node.int("blocksize", 1).max(1);
        let [n, c, h, w] = x.as_slice() else {
            return Ok(());
        };
        let s = if node.op == "DepthToSpace" {
            vec![
                *n,
                c.map(|c| c / (b * b)),
                h.map(|h| h * b),
                w.map(|w| w * b),
            ]
        } else {
            for (a, d) in [(2, h), (3, w)] {
                if let Some(d) = d
                    && d % b != 0
                {
                    return Err(format!(
                        "{} needs a multiple of {b} along axis {a}, got {d}",
                        node.label()
                    ));
                }
            }
            vec![*n, c.map(|c| c * b * b), h.map(|h| h / b), w.map(|w| w / b)]
        };
        self.set(node, s, None);
        Ok(())
    }

    fn concat(&mut self, node: &'a Node, x: &Shape) -> Result<(), String> {
        let Some(a) = axis(node.int("axis", 0), x.len()) else {
            return Ok(());
        };
        let mut s = x.clone();
        let mut value = Some(Vec::new());
        for input in node.inputs.iter().filter(|i| !i.is_empty()) {
            let Some(y) = self.shape(input) else {
                return Ok(());
            };
            if y.len() != x.len() {
                return Ok(());
            }
            for (i, (d, e)) in s.iter_mut().zip(&y).enumerate() {
                if i == a {
                    *d = d.zip(*e).map(|(d, e)| d + e);
                } else if let (Some(p), Some(q)) = (*d, *e)
                    && p != q
                {
                    return Err(format!(
                        "{} joins tensors of {p} and {q} along axis {i}",
                        node.label()
                    ));
                }
            }
            value = match (value, self.value(input)) {
                (Some(mut v), Some(more)) if x.len() == 1 => {
                    v.extend(more);
                    Some(v)
                }
                _ => None,
            };
        }
        // The first input's size was counted twice on the concatenated axis.
        s[a] = s[a].zip(x[a]).map(|(d, e)| d - e);
        self.set(node, s, value);
        Ok(())
    }

    fn slice(&mut self, node: &'a Node, x: &Shape, value: Option<Vec<f64>>) {
        let (starts, ends, axes, steps) = if self.graph.opset < 10 {
            (
                node.ints("starts").map(<[i64]>::to_vec),
                node.ints("ends").map(<[i64]>::to_vec),
                node.ints("axes").map(<[i64]>::to_vec),
                None,
            )
        } else {
            let get = |i: usize| node.input(i).and_then(|n| self.ints(n));
            (get(1), get(2), get(3), get(4))
        };
        let (Some(starts), Some(ends)) = (starts, ends) else {
            return;
        };
        let rank = x.len();
        let axes: Vec<usize> = match axes {
            Some(a) => a.iter().filter_map(|&a| axis(a, rank)).collect(),
            None => (0..starts.len()).collect(),
        };
        let steps = steps.unwrap_or_else(|| vec![1; axes.len()]);
        if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
            return;
        }
        let mut s = x.clone();
        let mut kept: Option<Vec<usize>> = None;
        for (j, &a) in axes.iter().enumerate() {
            let Some(n) = x[a] else {
                s[a] = None;
                continue;
            };
            let step = steps[j];
            if step == 0 {
                return;
            }
            let norm = |v: i64| if v < 0 { v + n } else { v };
            let (start, end) = if step > 0 {
                (norm(starts[j]).clamp(0, n), norm(ends[j]).clamp(0, n))
            } else {
                (
                    norm(starts[j]).clamp(0, n - 1),
                    norm(ends[j]).clamp(-1, n - 1),
                )
            };
            let picked: Vec<usize> = if step > 0 {
                (start..end)
                    .step_by(step as usize)
                    .map(|i| i as usize)
                    .collect()
            } else {
                let mut v = Vec::new();
                let mut i = start;
                while i > end {
                    v.push(i as usize);
                    i += step;
                }
                v
            };
            s[a] = Some(picked.len() as i64);
            if rank == 1 {
                kept = Some(picked);
            }
        }
        let value = match (value, kept) {
            (Some(v), Some(k)) => k.iter().map(|&i| v.get(i).copied()).collect(),
            _ => None,
        };
        self.set(node, s, value);
    }

    fn reshape(&mut self, node: &'a Node, x: &Shape) {
        let Some(target) = node.input(1).and_then(|i| self.ints(i)) else {
            return;
        };
        let allow_zero = node.int("allowzero", 0) != 0;
        let mut s: Shape = target
            .iter()
            .enumerate()
            .map(|(i, &d)| match d {
                0 if !allow_zero => x.get(i).copied().flatten(),
                -1 => None,
                d => Some(d),
            })
            .collect();
        if let Some(free) = target.iter().position(|&d| d == -1) {
            let total: Option<i64> = x.iter().try_fold(1, |p, d| d.map(|d| p * d));
            let rest: Option<i64> = s
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != free)
                .try_fold(1, |p, (_, d)| d.map(|d| p * d));
            s[free] = total.zip(rest).and_then(|(t, r)| (r > 0).then(|| t / r));
        }
        let value = node.input(0).and_then(|i| self.value(i));
        self.set(node, s, value);
    }
}

/// The numpy broadcast of `shapes`, or why they do not broadcast.
fn broadcast(shapes: &[Shape]) -> Result<Shape, String> {
    let rank = shapes.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![Some(1); rank];
    for s in shapes {
        let offset = rank - s.len();
        for (i, d) in s.iter().enumerate() {
            let o = &mut out[offset + i];
            *o = match (*o, *d) {
                (Some(1), d) => d,
                (o, Some(1)) => o,
                (Some(a), Some(b)) if a == b => Some(a),
                (Some(a), Some(b)) => {
                    return Err(format!(
                        "tensors of {a} and {b} along axis {} do not combine",
                        offset + i
                    ));
                }
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            };
        }
    }
    Ok(out)
}

/// What the spatial rules say of a model: the smallest input it runs and the size multiple at
/// which its output matches its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeFacts {
    /// Smallest (width, height) the graph runs, a multiple of `multiple` on both axes.
    pub min_size: (usize, usize),
    /// The size multiple the facts were found at.
    pub multiple: usize,
}

/// Largest side tried when looking for the smallest input a graph runs.
const LARGEST_TRIED: usize = 2048;

/// Smallest `(width, height)`, both multiples of `multiple`, at which `runs(height, width)`
/// holds, assuming every larger multiple runs too (convolutions and pads need a least size,
/// not an exact one). `None` if no square up to [`LARGEST_TRIED`] runs.
pub fn min_size(multiple: usize, runs: impl Fn(usize, usize) -> bool) -> Option<(usize, usize)> {
    let m = multiple.max(1);
    let largest = LARGEST_TRIED.max(m) / m * m;
    // A graph that does not even run at the largest size is not searched below it.
    if !runs(largest, largest) {
        return None;
    }
    let sizes = || (1..).map(|k| k * m).take_while(|&n| n <= largest);
    let square = sizes().find(|&n| runs(n, n))?;
    let height = sizes().find(|&h| runs(h, square)).unwrap_or(square);
    let width = sizes().find(|&w| runs(square, w)).unwrap_or(square);
    Some(if runs(height, width) {
        (width, height)
    } else {
        (square, square)
    })
}

/// The smallest size multiple (1..=64) at which the output is the input's size for a few
/// consecutive multiples above `floor`, as `output(height, width)` says; `None` when no
/// multiple gives that (or the output size cannot be followed).
pub fn matching_multiple(
    floor: usize,
    output: impl Fn(usize, usize) -> Option<(usize, usize)>,
) -> Option<usize> {
    (1..=64).find(|&m| {
        let first = floor.max(16).div_ceil(m);
        (first..first + 3).all(|k| {
            let (h, w) = (k * m, (k + 1) * m);
            output(h, w) == Some((h, w))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::{Attr, Dim, Elem, GraphBuilder};

    const DYN: [&str; 4] = ["n", "c", "h", "w"];

    fn dims(fixed: Option<(i64, i64)>) -> Vec<Dim> {
        match fixed {
            Some((h, w)) => vec![1.into(), 3.into(), h.into(), w.into()],
            None => vec![DYN[0].into(), 3.into(), DYN[2].into(), DYN[3].into()],
        }
    }

    /// A builder with an NCHW float image input `x`.
    fn builder(fixed: Option<(i64, i64)>) -> (GraphBuilder, String) {
        let mut b = GraphBuilder::new("spatial");
        let x = b.input("x", Elem::F32, &dims(fixed));
        (b, x)
    }

    fn finish(mut b: GraphBuilder, y: &str) -> SpatialGraph {
        b.node("Identity", &[y], &["y"], &[]);
        b.output("y", Elem::F32, &dims(None));
        let proto = b.build();
        SpatialGraph::new(proto.graph.as_ref().unwrap(), crate::onnx::OPSET)
    }

    /// Reflection pad `p` (opset-11 pads input), then a `k`×`k` convolution of `stride`.
    fn pad_conv(b: &mut GraphBuilder, x: &str, p: i64, k: i64, stride: i64, name: &str) -> String {
        let pads = b.constant_i64(&format!("{name}.pads"), &[8], &[0, 0, p, p, 0, 0, p, p]);
        let x = b.op("Pad", &[x, &pads], &[Attr::Str("mode", "reflect".into())]);
        let w = b.constant_f32(
            &format!("{name}.w"),
            &[3, 3, k, k],
            &vec![0.0; (9 * k * k) as usize],
        );
        b.op(
            "Conv",
            &[&x, &w],
            &[
                Attr::Ints("kernel_shape", vec![k, k]),
                Attr::Ints("strides", vec![stride, stride]),
            ],
        )
    }

    fn upsample(b: &mut GraphBuilder, x: &str, name: &str) -> String {
        let scales = b.constant_f32(name, &[4], &[1.0, 1.0, 2.0, 2.0]);
        b.op(
            "Resize",
            &[x, "", &scales],
            &[Attr::Str("mode", "nearest".into())],
        )
    }

    /// The Johnson et al. generator's shape: 9×9 in, two stride-2 downsamples, a residual
    /// block, two ×2 nearest upsamples, 9×9 out, reflection padding throughout.
    fn johnson() -> SpatialGraph {
        let (mut b, x) = builder(None);
        let mut y = pad_conv(&mut b, &x, 4, 9, 1, "c1");
        y = pad_conv(&mut b, &y, 1, 3, 2, "c2");
        y = pad_conv(&mut b, &y, 1, 3, 2, "c3");
        let r = pad_conv(&mut b, &y, 1, 3, 1, "r1");
        y = b.op("Add", &[&r, &y], &[]);
        y = upsample(&mut b, &y, "u1");
        y = pad_conv(&mut b, &y, 1, 3, 1, "c4");
        y = upsample(&mut b, &y, "u2");
        y = pad_conv(&mut b, &y, 4, 9, 1, "c5");
        finish(b, &y)
    }

    fn run(g: &SpatialGraph, h: usize, w: usize) -> Result<Option<(usize, usize)>, String> {
        g.run("x", "y", Layout::Nchw, h, w)
    }

    #[test]
    fn reflection_pads_need_one_pixel_more_than_they_mirror() {
        let g = johnson();
        let err = run(&g, 4, 4).unwrap_err();
        assert!(
            err.contains(
                "(reflect) mirrors 4 pixels along axis 2, which needs at least 5 and got 4"
            ),
            "{err}"
        );
        // 5 runs (5 → 3 → 2 → 4 → 8): the smallest square, but the output is not 5×5.
        assert_eq!(run(&g, 5, 5), Ok(Some((8, 8))));
        assert_eq!(min_size(1, |h, w| run(&g, h, w).is_ok()), Some((5, 5)));
        // Output and input agree at multiples of 4, from which the minimum is 8.
        assert_eq!(
            matching_multiple(5, |h, w| run(&g, h, w).ok().flatten()),
            Some(4)
        );
        assert_eq!(min_size(4, |h, w| run(&g, h, w).is_ok()), Some((8, 8)));
        assert_eq!(run(&g, 480, 640), Ok(Some((480, 640))));
        // Thin strips: each side has its own minimum.
        assert!(run(&g, 2, 480).is_err() && run(&g, 480, 2).is_err());
        assert_eq!(run(&g, 8, 480), Ok(Some((8, 480))));
    }

    #[test]
    fn each_axis_gets_its_own_minimum() {
        // A 1×9 kernel after a width-only reflection pad of 4, then a 3×1 valid convolution.
        let (mut b, x) = builder(None);
        let pads = b.constant_i64("pads", &[8], &[0, 0, 0, 4, 0, 0, 0, 4]);
        let y = b.op("Pad", &[&x, &pads], &[Attr::Str("mode", "reflect".into())]);
        let w = b.constant_f32("w", &[3, 3, 1, 9], &[0.0; 81]);
        let y = b.op("Conv", &[&y, &w], &[]);
        let w2 = b.constant_f32("w2", &[3, 3, 3, 1], &[0.0; 27]);
        let y = b.op("Conv", &[&y, &w2], &[]);
        let g = finish(b, &y);
        assert_eq!(min_size(1, |h, w| run(&g, h, w).is_ok()), Some((5, 3)));
        assert_eq!(run(&g, 3, 5), Ok(Some((1, 5))));
        let err = run(&g, 2, 5).unwrap_err();
        assert!(
            err.contains("needs at least 3 pixels along axis 2 (kernel 3), got 2"),
            "{err}"
        );
        // Valid convolutions never give the input's size back.
        assert_eq!(
            matching_multiple(5, |h, w| run(&g, h, w).ok().flatten()),
            None
        );
    }

    #[test]
    fn skip_connections_need_sizes_that_halve_evenly() {
        // A U-Net step: down by 2, up by 2, concatenated with the input.
        let (mut b, x) = builder(None);
        let w = b.constant_f32("w", &[3, 3, 2, 2], &[0.0; 36]);
        let down = b.op("Conv", &[&x, &w], &[Attr::Ints("strides", vec![2, 2])]);
        let up = upsample(&mut b, &down, "up");
        let cat = b.op("Concat", &[&x, &up], &[Attr::Int("axis", 1)]);
        let w2 = b.constant_f32("w2", &[3, 6, 1, 1], &[0.0; 18]);
        let y = b.op("Conv", &[&cat, &w2], &[]);
        let g = finish(b, &y);
        let err = run(&g, 17, 16).unwrap_err();
        assert!(
            err.contains("joins tensors of 17 and 16 along axis 2"),
            "{err}"
        );
        assert_eq!(run(&g, 18, 16), Ok(Some((18, 16))));
        assert_eq!(
            matching_multiple(2, |h, w| run(&g, h, w).ok().flatten()),
            Some(2)
        );
        assert_eq!(min_size(2, |h, w| run(&g, h, w).is_ok()), Some((2, 2)));
    }

    #[test]
    fn shape_subgraphs_are_followed_to_the_resize_sizes() {
        // sizes = concat([1, 3], shape(x)[2:4] * 2): a PyTorch-style dynamic ×2 upscale.
        let (mut b, x) = builder(None);
        let shape = b.op("Shape", &[&x], &[]);
        let (starts, ends) = (
            b.constant_i64("starts", &[1], &[2]),
            b.constant_i64("ends", &[1], &[4]),
        );
        let hw = b.op("Slice", &[&shape, &starts, &ends], &[]);
        let two = b.constant_i64("two", &[1], &[2]);
        let hw2 = b.op("Mul", &[&hw, &two], &[]);
        let nc = b.constant_i64("nc", &[2], &[1, 3]);
        let sizes = b.op("Concat", &[&nc, &hw2], &[Attr::Int("axis", 0)]);
        let y = b.op(
            "Resize",
            &[&x, "", "", &sizes],
            &[Attr::Str("mode", "nearest".into())],
        );
        let g = finish(b, &y);
        assert_eq!(run(&g, 10, 12), Ok(Some((20, 24))));
        assert_eq!(
            matching_multiple(1, |h, w| run(&g, h, w).ok().flatten()),
            None
        );
    }

    #[test]
    fn fixed_graphs_report_their_output_and_unknown_ops_stop_the_trail() {
        // A 256×256 model whose 5×5 convolution has no padding: 252×252 out.
        let (mut b, x) = builder(Some((256, 256)));
        let w = b.constant_f32("w", &[3, 3, 5, 5], &[0.0; 225]);
        let y = b.op("Conv", &[&x, &w], &[]);
        let g = finish(b, &y);
        assert_eq!(run(&g, 256, 256), Ok(Some((252, 252))));

        let (mut b, x) = builder(None);
        let y = b.op("Relu", &[&x], &[]);
        let y = b.op("MysteryUpscale", &[&y], &[]);
        let g = finish(b, &y);
        assert_eq!(run(&g, 4, 4), Ok(None));
    }
}
