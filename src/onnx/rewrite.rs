//! Graph rewrites applied when a model loads. Each replaces a pattern of nodes with nodes that
//! compute the same values, up to float rounding, in less time on ONNX Runtime's CPU provider:
//!
//! - **Upsample convolution** (the Johnson net's decoder): nearest ×2 upsampling, reflection
//!   pad 1 and a 3×3 convolution become edge pad 1 and one 4×4 transposed convolution of
//!   stride 2. Reflecting the upsampled image by one pixel repeats its edge, which is the
//!   small image's edge, so the result is the same; the 4× upsampled copy and its padded copy
//!   are never made, and each input pixel costs 16 multiply-adds per channel pair instead of
//!   36.
//! - **Output convolution** (the image-out layer): a stride-1 k×k convolution (k odd, ≥ 5),
//!   reflection-padded to keep the size, with few outputs (≤ 4, fewer than its inputs) becomes
//!   SpaceToDepth(2) → a ⌈k/2⌉×⌈k/2⌉ convolution from 4·cin to 4·cout channels →
//!   DepthToSpace(2). ONNX Runtime's CPU layout pads output channels to blocks of 16, so 3
//!   outputs cost 16; after SpaceToDepth the same work has 12 outputs on a quarter of the
//!   pixels. It needs an even height and width, so it applies only where the convolution's
//!   output reaches a graph output known to be even-sized through elementwise operators.
//!
//! - **Conditional instance norm** (multi-style nets): instance norm with scale 1 and shift 0,
//!   then `Mul` by a per-sample scale and `Add` of a per-sample shift, each
//!   `Unsqueeze(MatMul(style, table), [2, 3])` of shape `[N, C, 1, 1]`, becomes one instance
//!   norm of the input viewed as `[1, N·C, H, W]` whose scale and shift are the `[N·C]`
//!   flattened `MatMul` results: the same statistics per sample and channel, two passes over
//!   the activations fewer. It applies only where `style` is a rank-2 graph input (one row
//!   per sample).
//!
//! A pattern is rewritten only when it matches exactly: weights stored in the model (not
//! overridable inputs), default dilations and groups, intermediate tensors used by nothing
//! else. Anything else is left as it is.

use std::collections::{HashMap, HashSet};
use std::fmt;

use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto,
    tensor_proto::{DataLocation, DataType},
};

use super::{Attr, float_bytes, node_proto as node, tensor_proto};

/// How many patterns [`optimize`] rewrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewrites {
    /// Upsample → reflection pad → 3×3 convolution, now a transposed convolution.
    pub upsample_convs: usize,
    /// Few-output convolutions, now computed through SpaceToDepth.
    pub output_convs: usize,
    /// Instance norm → per-sample scale → per-sample shift, now one instance norm.
    pub conditional_norms: usize,
}

impl Rewrites {
    /// Whether anything was rewritten.
    pub fn any(&self) -> bool {
        self.upsample_convs + self.output_convs + self.conditional_norms > 0
    }
}

impl fmt::Display for Rewrites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut parts = Vec::new();
        if self.upsample_convs > 0 {
            let n = self.upsample_convs;
            parts.push(format!(
                "{n} upsample convolution{} as transposed",
                plural(n)
            ));
        }
        if self.output_convs > 0 {
            let n = self.output_convs;
            parts.push(format!(
                "{n} output convolution{} through SpaceToDepth",
                plural(n)
            ));
        }
        if self.conditional_norms > 0 {
            let n = self.conditional_norms;
            parts.push(format!("{n} conditional instance norm{} as one", plural(n)));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Rewrites the patterns described in the module documentation in `model`. `even_output`
/// names a graph output whose height and width are known to be even (the output
/// convolution's rewrite needs it). Models that keep weights in external files or have
/// subgraphs are left alone.
pub fn optimize(model: &mut ModelProto, even_output: Option<&str>) -> Rewrites {
    let mut done = Rewrites::default();
    let Some(graph) = model.graph.as_mut() else {
        return done;
    };
    let external = graph
        .initializer
        .iter()
        .any(|t| t.data_location.enum_value() == Ok(DataLocation::EXTERNAL));
    // A subgraph (If, Loop, Scan) may read any outer tensor without naming it as an input.
    let subgraphs = graph
        .node
        .iter()
        .flat_map(|n| &n.attribute)
        .any(|a| a.g.is_some() || !a.graphs.is_empty());
    if external || subgraphs {
        return done;
    }

    let index = Index::new(graph, even_output);
    let mut replaced: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut removed: HashSet<usize> = HashSet::new();
    let mut tensors: Vec<TensorProto> = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        let prefix = format!("rsstyle_rewrite{i}_");
        if let Some(m) = index.upsample_conv(node) {
            let (nodes, new) = m.rewrite(node, &prefix);
            replaced.insert(i, nodes);
            removed.extend([m.pad, m.resize]);
            tensors.extend(new);
            done.upsample_convs += 1;
        } else if let Some(m) = index.output_conv(node) {
            let (nodes, new) = m.rewrite(node, &prefix);
            replaced.insert(i, nodes);
            removed.insert(m.pad);
            tensors.extend(new);
            done.output_convs += 1;
        } else if let Some(m) = index.conditional_norm(node) {
            // At the Add, the last node of the pattern: everything the new nodes read is
            // computed before it.
            let (nodes, new) = m.rewrite(node, &prefix);
            replaced.insert(i, nodes);
            removed.extend(m.removed.iter().copied());
            tensors.extend(new);
            done.conditional_norms += 1;
        }
    }
    if !done.any() {
        return done;
    }
    let nodes = std::mem::take(&mut graph.node);
    for (i, node) in nodes.into_iter().enumerate() {
        if let Some(new) = replaced.remove(&i) {
            graph.node.extend(new);
        } else if !removed.contains(&i) {
            graph.node.push(node);
        }
    }
    graph.initializer.extend(tensors);
    drop_unused_initializers(graph);
    drop_stale_value_info(graph);
    done
}

/// Removes initializers that nothing reads any more (ONNX Runtime warns about each); those
/// that are also graph inputs stay, as defaults of optional inputs.
pub(super) fn drop_unused_initializers(graph: &mut GraphProto) {
    let used: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(graph.output.iter().map(|o| o.name.clone()))
        .chain(graph.input.iter().map(|v| v.name.clone()))
        .collect();
    graph.initializer.retain(|t| used.contains(&t.name));
}

/// Removes shape annotations of tensors that no node produces any more (the removed
/// upsampled and padded images).
fn drop_stale_value_info(graph: &mut GraphProto) {
    let produced: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(graph.input.iter().map(|v| v.name.clone()))
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .collect();
    graph.value_info.retain(|v| produced.contains(&v.name));
}

/// Who produces and who reads each tensor of the original graph.
struct Index<'a> {
    graph: &'a GraphProto,
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, Vec<usize>>,
    outputs: HashSet<&'a str>,
    /// Initializers that are not also graph inputs (those could be overridden).
    constants: HashMap<&'a str, &'a TensorProto>,
    even_output: Option<&'a str>,
}

impl<'a> Index<'a> {
    fn new(graph: &'a GraphProto, even_output: Option<&'a str>) -> Self {
        let mut producer = HashMap::new();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for input in n.input.iter().filter(|s| !s.is_empty()) {
                readers.entry(input.as_str()).or_default().push(i);
            }
        }
        let inputs: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
        let constants = graph
            .initializer
            .iter()
            .filter(|t| !inputs.contains(t.name.as_str()))
            .map(|t| (t.name.as_str(), t))
            .collect();
        Self {
            graph,
            producer,
            readers,
            outputs: graph.output.iter().map(|v| v.name.as_str()).collect(),
            constants,
            even_output,
        }
    }

    /// The node that produces `tensor`, when `reader` is its only reader and it is no graph
    /// output.
    fn sole_producer(&self, tensor: &str, reader: &NodeProto) -> Option<(usize, &'a NodeProto)> {
        let i = *self.producer.get(tensor)?;
        let readers = self.readers.get(tensor)?;
        let only = readers.len() == 1 && std::ptr::eq(&self.graph.node[readers[0]], reader);
        (only && !self.outputs.contains(tensor)).then(|| (i, &self.graph.node[i]))
    }

    fn constant(&self, name: &str) -> Option<&'a TensorProto> {
        self.constants.get(name).copied()
    }

    /// A Pad node reflecting by `p` on each side of H and W, with its input.
    fn reflect_pad(&self, pad: &NodeProto) -> Option<usize> {
        if !standard(pad, "Pad") || attr_str(pad, "mode")? != "reflect" {
            return None;
        }
        let extra_inputs_empty = pad.input.iter().skip(2).all(String::is_empty);
        if pad.input.len() < 2 || !extra_inputs_empty || !only_attrs(pad, &["mode"]) {
            return None;
        }
        match int_values(self.constant(&pad.input[1])?)?.as_slice() {
            [0, 0, p, q, 0, 0, r, s] if p == q && q == r && r == s && *p > 0 => Some(*p as usize),
            _ => None,
        }
    }

    /// A plain convolution (stride 1, no padding, dilation 1, one group) whose weights and
    /// bias are constants: its weights, their dimensions and its bias.
    fn plain_conv(&self, conv: &NodeProto) -> Option<ConvWeights> {
        if !standard(conv, "Conv") || !(2..=3).contains(&conv.input.len()) {
            return None;
        }
        let known = [
            "kernel_shape",
            "strides",
            "dilations",
            "group",
            "pads",
            "auto_pad",
        ];
        let all_ones = |name| attr_ints(conv, name).is_none_or(|v| v.iter().all(|&x| x == 1));
        let plain = only_attrs(conv, &known)
            && all_ones("strides")
            && all_ones("dilations")
            && attr_int(conv, "group").is_none_or(|g| g == 1)
            && attr_ints(conv, "pads").is_none_or(|v| v.iter().all(|&x| x == 0))
            && attr_str(conv, "auto_pad").is_none_or(|s| s == "NOTSET");
        if !plain {
            return None;
        }
        let w = self.constant(&conv.input[1])?;
        let (weight, data_type) = float_values(w)?;
        let [co, ci, kh, kw] = <[i64; 4]>::try_from(w.dims.as_slice()).ok()?;
        if kh != kw || attr_ints(conv, "kernel_shape").is_some_and(|k| k != [kh, kw]) {
            return None;
        }
        let bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => Some(float_values(self.constant(b)?)?.0),
            None => None,
        };
        Some(ConvWeights {
            weight,
            bias,
            data_type,
            cout: co as usize,
            cin: ci as usize,
            k: kh as usize,
        })
    }

    /// Resize (nearest, ×2 in H and W, asymmetric coordinates rounding down) → reflection
    /// pad 1 → 3×3 convolution.
    fn upsample_conv(&self, conv: &NodeProto) -> Option<UpsampleConv> {
        let weights = self.plain_conv(conv).filter(|w| w.k == 3)?;
        let (pad, pad_node) = self.sole_producer(&conv.input[0], conv)?;
        if self.reflect_pad(pad_node)? != 1 {
            return None;
        }
        let (resize, resize_node) = self.sole_producer(&pad_node.input[0], pad_node)?;
        if !self.nearest_doubling(resize_node) {
            return None;
        }
        Some(UpsampleConv {
            input: resize_node.input[0].clone(),
            pad,
            resize,
            weights,
        })
    }

    fn nearest_doubling(&self, resize: &NodeProto) -> bool {
        let known = [
            "mode",
            "coordinate_transformation_mode",
            "nearest_mode",
            "cubic_coeff_a",
            "extrapolation_value",
            "exclude_outside",
            "antialias",
        ];
        let scales = resize
            .input
            .get(2)
            .and_then(|s| self.constant(s))
            .and_then(float_values)
            .map(|(v, _)| v);
        standard(resize, "Resize")
            && (resize.input.len() == 3 || resize.input.get(3).is_some_and(String::is_empty))
            && only_attrs(resize, &known)
            && attr_str(resize, "mode").as_deref() == Some("nearest")
            && attr_str(resize, "coordinate_transformation_mode").as_deref() == Some("asymmetric")
            && attr_str(resize, "nearest_mode")
                .is_none_or(|m| m == "floor" || m == "round_prefer_floor")
            && attr_int(resize, "exclude_outside").is_none_or(|v| v == 0)
            && attr_int(resize, "antialias").is_none_or(|v| v == 0)
            && scales.as_deref() == Some(&[1.0, 1.0, 2.0, 2.0])
    }

    /// Reflection pad k/2 → k×k convolution with few outputs, whose output reaches the
    /// even-sized graph output.
    fn output_conv(&self, conv: &NodeProto) -> Option<OutputConv> {
        let weights = self.plain_conv(conv)?;
        let ConvWeights { cin, cout, k, .. } = weights;
        if k % 2 == 0 || k < 5 || cout > 4 || cout >= cin {
            return None;
        }
        let (pad, pad_node) = self.sole_producer(&conv.input[0], conv)?;
        if self.reflect_pad(pad_node)? != k / 2 || !self.reaches_even_output(&conv.output[0]) {
            return None;
        }
        Some(OutputConv {
            input: pad_node.input[0].clone(),
            pad,
            pads: pad_node.input[1].clone(),
            weights,
        })
    }

    /// `Add` of a per-sample shift to `Mul` by a per-sample scale of an instance norm with
    /// scale 1 and shift 0 (see the module documentation), matched at the `Add`.
    fn conditional_norm(&self, add: &NodeProto) -> Option<ConditionalNorm> {
        if !standard(add, "Add") || add.input.len() != 2 || add.output.len() != 1 {
            return None;
        }
        for (a, b) in [(0, 1), (1, 0)] {
            let Some((mul, mul_node)) = self.sole_producer(&add.input[a], add) else {
                continue;
            };
            if !standard(mul_node, "Mul") || mul_node.input.len() != 2 {
                continue;
            }
            for (c, d) in [(0, 1), (1, 0)] {
                let Some((norm, norm_node)) = self.sole_producer(&mul_node.input[c], mul_node)
                else {
                    continue;
                };
                let Some(channels) = self.plain_norm(norm_node) else {
                    continue;
                };
                let (Some(scale), Some(shift)) = (
                    self.per_sample(&mul_node.input[d], mul_node),
                    self.per_sample(&add.input[b], add),
                ) else {
                    continue;
                };
                let mut removed = vec![norm, mul];
                removed.extend(scale.1);
                removed.extend(shift.1);
                return Some(ConditionalNorm {
                    input: norm_node.input[0].clone(),
                    channels,
                    epsilon: attr(norm_node, "epsilon").map(|a| a.f),
                    scale: scale.0,
                    shift: shift.0,
                    removed,
                });
            }
        }
        None
    }

    /// An InstanceNormalization with constant scale 1 and shift 0 and no attribute but
    /// `epsilon`: its channel count.
    fn plain_norm(&self, n: &NodeProto) -> Option<usize> {
        if !standard(n, "InstanceNormalization") || n.input.len() != 3 {
            return None;
        }
        if !only_attrs(n, &["epsilon"]) {
            return None;
        }
        let (scale, _) = float_values(self.constant(&n.input[1])?)?;
        let (shift, _) = float_values(self.constant(&n.input[2])?)?;
        (scale.len() == shift.len()
            && scale.iter().all(|&v| v == 1.0)
            && shift.iter().all(|&v| v == 0.0))
        .then_some(scale.len())
    }

    /// `tensor` as `Unsqueeze(MatMul(style, table), axes [2, 3])`, `style` a rank-2 graph
    /// input and `table` a constant `[K, C]`: the MatMul's output (`[N, C]`), and the
    /// Unsqueeze node if `reader` is its only reader.
    fn per_sample(&self, tensor: &str, reader: &NodeProto) -> Option<(String, Option<usize>)> {
        let i = *self.producer.get(tensor)?;
        let unsqueeze = &self.graph.node[i];
        if !standard(unsqueeze, "Unsqueeze") || unsqueeze.input.is_empty() {
            return None;
        }
        let axes = match unsqueeze.input.get(1).filter(|a| !a.is_empty()) {
            Some(a) => int_values(self.constant(a)?)?,
            None => attr_ints(unsqueeze, "axes")?,
        };
        if axes != [2, 3] {
            return None;
        }
        let matmul = &self.graph.node[*self.producer.get(unsqueeze.input[0].as_str())?];
        if !standard(matmul, "MatMul") || matmul.input.len() != 2 {
            return None;
        }
        let style = self
            .graph
            .input
            .iter()
            .find(|v| v.name == matmul.input[0])?;
        let rank = style
            .type_
            .tensor_type()
            .shape
            .as_ref()
            .map(|s| s.dim.len());
        if rank != Some(2) || self.constant(&matmul.input[1])?.dims.len() != 2 {
            return None;
        }
        let sole = self.sole_producer(tensor, reader).is_some();
        Some((matmul.output[0].clone(), sole.then_some(i)))
    }

    /// Whether `tensor` is the even-sized graph output or becomes it through single-input
    /// elementwise operators only (so it has the output's height and width).
    fn reaches_even_output(&self, tensor: &str) -> bool {
        let Some(target) = self.even_output else {
            return false;
        };
        let mut t = tensor;
        for _ in 0..self.graph.node.len() + 1 {
            if t == target {
                return true;
            }
            let next = match self.readers.get(t).map(Vec::as_slice) {
                Some([r]) => &self.graph.node[*r],
                _ => return false,
            };
            // Clip's other inputs are its bounds, scalars.
            let elementwise = ["Tanh", "Sigmoid", "Relu", "Identity", "Clip"];
            if !elementwise.iter().any(|op| standard(next, op))
                || next.output.len() != 1
                || next.input.first().map(String::as_str) != Some(t)
            {
                return false;
            }
            t = &next.output[0];
        }
        false
    }
}

/// A constant convolution's parameters, as float32.
struct ConvWeights {
    /// `[cout, cin, k, k]`.
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// FLOAT or FLOAT16: the type the new weights are stored in.
    data_type: DataType,
    cout: usize,
    cin: usize,
    k: usize,
}

impl ConvWeights {
    fn w(&self, o: usize, c: usize, u: usize, v: usize) -> f32 {
        self.weight[((o * self.cin + c) * self.k + u) * self.k + v]
    }
}

struct UpsampleConv {
    /// The Resize node's input: the small image.
    input: String,
    pad: usize,
    resize: usize,
    weights: ConvWeights,
}

impl UpsampleConv {
    /// Edge pad 1 → ConvTranspose(4×4, stride 2, pads 3). Output row 2i reads padded rows
    /// i−1 (tap 0) and i (taps 1, 2); row 2i + 1 reads rows i (taps 0, 1) and i + 1 (tap 2).
    /// In the transposed convolution's kernel, position p gathers the 3×3 taps `TAPS[p]`.
    fn rewrite(&self, conv: &NodeProto, prefix: &str) -> (Vec<NodeProto>, Vec<TensorProto>) {
        const TAPS: [&[usize]; 4] = [&[2], &[1, 2], &[0, 1], &[0]];
        let ConvWeights { cin, cout, .. } = self.weights;
        let mut moved = vec![0f32; cin * cout * 16];
        for c in 0..cin {
            for o in 0..cout {
                for p in 0..4 {
                    for q in 0..4 {
                        moved[((c * cout + o) * 4 + p) * 4 + q] = TAPS[p]
                            .iter()
                            .flat_map(|&u| TAPS[q].iter().map(move |&v| (u, v)))
                            .map(|(u, v)| self.weights.w(o, c, u, v))
                            .sum();
                    }
                }
            }
        }
        let ty = self.weights.data_type;
        let pads = format!("{prefix}edge_pads");
        let weight = format!("{prefix}weight");
        let tensors = vec![
            tensor_proto(
                &pads,
                DataType::INT64,
                &[8],
                [0i64, 0, 1, 1, 0, 0, 1, 1]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            float_tensor(&weight, ty, &[cin, cout, 4, 4], &moved),
        ];
        let padded = format!("{prefix}padded");
        // The bias is the convolution's, unchanged.
        let mut inputs = vec![padded.clone(), weight];
        inputs.extend(conv.input.get(2).filter(|b| !b.is_empty()).cloned());
        let nodes = vec![
            node(
                &format!("{prefix}Pad"),
                "Pad",
                &[self.input.clone(), pads],
                &[padded],
                &[Attr::Str("mode", "edge".into())],
            ),
            node(
                &format!("{prefix}ConvTranspose"),
                "ConvTranspose",
                &inputs,
                &conv.output,
                &[
                    Attr::Ints("kernel_shape", vec![4, 4]),
                    Attr::Ints("strides", vec![2, 2]),
                    Attr::Ints("pads", vec![3; 4]),
                ],
            ),
        ];
        (nodes, tensors)
    }
}

struct OutputConv {
    /// The Pad node's input.
    input: String,
    pad: usize,
    /// The Pad node's pads constant, reused.
    pads: String,
    weights: ConvWeights,
}

impl OutputConv {
    /// Pad → SpaceToDepth(2) → ⌈k/2⌉² convolution → DepthToSpace(2, DCR). Output pixel
    /// (2i + a, 2j + b) is channel block (a, b) of pixel (i, j); input pixel (2i + r, 2j + s)
    /// is input block (r, s). The weights are the original ones moved.
    fn rewrite(&self, conv: &NodeProto, prefix: &str) -> (Vec<NodeProto>, Vec<TensorProto>) {
        let ConvWeights { cin, cout, k, .. } = self.weights;
        let k2 = k.div_ceil(2);
        let mut moved = vec![0f32; 4 * cout * 4 * cin * k2 * k2];
        for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            for u in 0..k {
                for v in 0..k {
                    let (q, r) = ((a + u) / 2, (a + u) % 2);
                    let (t, s) = ((b + v) / 2, (b + v) % 2);
                    for o in 0..cout {
                        let out = (a * 2 + b) * cout + o;
                        for c in 0..cin {
                            let input = (r * 2 + s) * cin + c;
                            moved[((out * 4 * cin + input) * k2 + q) * k2 + t] +=
                                self.weights.w(o, c, u, v);
                        }
                    }
                }
            }
        }
        let ty = self.weights.data_type;
        let weight = format!("{prefix}weight");
        let mut tensors = vec![float_tensor(
            &weight,
            ty,
            &[4 * cout, 4 * cin, k2, k2],
            &moved,
        )];
        let (padded, blocks, y) = (
            format!("{prefix}padded"),
            format!("{prefix}blocks"),
            format!("{prefix}conv"),
        );
        let mut inputs = vec![blocks.clone(), weight];
        if let Some(bias) = &self.weights.bias {
            let name = format!("{prefix}bias");
            let tiled: Vec<f32> = (0..4).flat_map(|_| bias.iter().copied()).collect();
            tensors.push(float_tensor(&name, ty, &[4 * cout], &tiled));
            inputs.push(name);
        }
        let k2 = k2 as i64;
        let nodes = vec![
            node(
                &format!("{prefix}Pad"),
                "Pad",
                &[self.input.clone(), self.pads.clone()],
                std::slice::from_ref(&padded),
                &[Attr::Str("mode", "reflect".into())],
            ),
            node(
                &format!("{prefix}SpaceToDepth"),
                "SpaceToDepth",
                &[padded],
                std::slice::from_ref(&blocks),
                &[Attr::Int("blocksize", 2)],
            ),
            node(
                &format!("{prefix}Conv"),
                "Conv",
                &inputs,
                std::slice::from_ref(&y),
                &[Attr::Ints("kernel_shape", vec![k2, k2])],
            ),
            node(
                &format!("{prefix}DepthToSpace"),
                "DepthToSpace",
                &[y],
                &conv.output,
                &[Attr::Int("blocksize", 2), Attr::Str("mode", "DCR".into())],
            ),
        ];
        (nodes, tensors)
    }
}

struct ConditionalNorm {
    /// The instance norm's input, `[N, C, H, W]`.
    input: String,
    channels: usize,
    epsilon: Option<f32>,
    /// The per-sample scale and shift, `[N, C]` (the MatMul outputs).
    scale: String,
    shift: String,
    /// Nodes the rewrite replaces besides the Add: the norm, the Mul, and the Unsqueezes
    /// nothing else reads.
    removed: Vec<usize>,
}

impl ConditionalNorm {
    /// Reshape to `[1, N·C, H, W]` → InstanceNormalization with the flattened per-sample
    /// scale and shift → Reshape back to `[N, C, H, W]`, under the Add's output name.
    fn rewrite(&self, add: &NodeProto, prefix: &str) -> (Vec<NodeProto>, Vec<TensorProto>) {
        let int64 = |name: &str, v: &[i64]| {
            tensor_proto(
                name,
                DataType::INT64,
                &[v.len() as i64],
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        };
        let (joined, split, flat) = (
            format!("{prefix}samples_as_channels"),
            format!("{prefix}channels"),
            format!("{prefix}flat"),
        );
        let tensors = vec![
            int64(&joined, &[1, -1, 0, 0]),
            int64(&split, &[-1, self.channels as i64, 0, 0]),
            int64(&flat, &[-1]),
        ];
        let (x, scale, shift, y) = (
            format!("{prefix}x"),
            format!("{prefix}scale"),
            format!("{prefix}shift"),
            format!("{prefix}normed"),
        );
        let reshape = |what: &str, input: &str, shape: &str, output: &str| {
            node(
                &format!("{prefix}Reshape_{what}"),
                "Reshape",
                &[input, shape],
                &[output],
                &[],
            )
        };
        let mut attrs = Vec::new();
        if let Some(e) = self.epsilon {
            attrs.push(Attr::Float("epsilon", e));
        }
        let nodes = vec![
            reshape("input", &self.input, &joined, &x),
            reshape("scale", &self.scale, &flat, &scale),
            reshape("shift", &self.shift, &flat, &shift),
            node(
                &format!("{prefix}InstanceNormalization"),
                "InstanceNormalization",
                &[&x, &scale, &shift],
                &[&y],
                &attrs,
            ),
            reshape("output", &y, &split, &add.output[0]),
        ];
        (nodes, tensors)
    }
}

/// Whether `node` is the standard ONNX operator `op`.
pub(super) fn standard(node: &NodeProto, op: &str) -> bool {
    node.op_type == op && (node.domain.is_empty() || node.domain == "ai.onnx")
}

/// Whether every attribute of `node` is one of `known`.
fn only_attrs(node: &NodeProto, known: &[&str]) -> bool {
    node.attribute
        .iter()
        .all(|a| known.contains(&a.name.as_str()))
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(super) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(super) fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// A FLOAT or FLOAT16 constant's values as float32, with its type.
pub(super) fn float_values(t: &TensorProto) -> Option<(Vec<f32>, DataType)> {
    let len: i64 = t.dims.iter().product();
    let (values, ty): (Vec<f32>, DataType) = match t.data_type {
        x if x == DataType::FLOAT as i32 => {
            let v = if t.raw_data.is_empty() {
                t.float_data.clone()
            } else {
                t.raw_data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            };
            (v, DataType::FLOAT)
        }
        x if x == DataType::FLOAT16 as i32 => {
            let v = if t.raw_data.is_empty() {
                let bits = |v: &i32| half::f16::from_bits(*v as u16).to_f32();
                t.int32_data.iter().map(bits).collect()
            } else {
                t.raw_data
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect()
            };
            (v, DataType::FLOAT16)
        }
        _ => return None,
    };
    (values.len() as i64 == len).then_some((values, ty))
}

/// An INT64 constant's values.
fn int_values(t: &TensorProto) -> Option<Vec<i64>> {
    if t.data_type != DataType::INT64 as i32 {
        return None;
    }
    let values: Vec<i64> = if t.raw_data.is_empty() {
        t.int64_data.clone()
    } else {
        t.raw_data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8")))
            .collect()
    };
    (values.len() as i64 == t.dims.iter().product::<i64>()).then_some(values)
}

/// A constant of type `ty` (FLOAT or FLOAT16) holding `data`.
fn float_tensor(name: &str, ty: DataType, dims: &[usize], data: &[f32]) -> TensorProto {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    tensor_proto(name, ty, &dims, float_bytes(ty, data))
}

#[cfg(test)]
mod tests;
