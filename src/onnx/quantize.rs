//! Static int8 quantization of a model's convolutions in the QDQ format: each chosen
//! convolution reads its input through `QuantizeLinear → DequantizeLinear` (uint8,
//! asymmetric, one scale per tensor from calibrated ranges), its weights through
//! `DequantizeLinear` of int8 values (symmetric, one scale per output channel), its bias
//! through `DequantizeLinear` of int32 values (scale = input scale × weight scale), and writes
//! its output through `QuantizeLinear → DequantizeLinear`. ONNX Runtime's CPU provider fuses
//! each such group into one `QLinearConv` (onnxruntime `qdq_selector_action_transformer.cc`;
//! ONNX operators QuantizeLinear-13 / DequantizeLinear-13). Everything else stays float32.
//!
//! Reflection or edge padding and nearest-neighbour resizing between a convolution and the
//! tensor it reads commute with quantization, so they run on the uint8 values: the
//! `QuantizeLinear` goes before them and the `DequantizeLinear` after, and the convolution's
//! group stays fusable.
//!
//! Use: [`plan`] picks the convolutions and names the float tensors whose ranges calibration
//! must measure; [`apply`] rewrites the graph with the measured ranges.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::{
    GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto,
    tensor_proto::{DataLocation, DataType},
    type_proto,
};

use super::rewrite::{attr_int, attr_str, drop_unused_initializers, float_values, standard};
use super::{Attr, node_proto as node, tensor_proto};

/// Which convolutions to quantize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantizeOptions {
    /// Quantize a convolution only if it has at least this many input and output channels.
    /// ONNX Runtime's int8 convolution is slower than its float one on few channels (on
    /// AVX2, 3→8 and 8→3 convolutions at 320×240 took about twice as long), faster on many.
    pub min_channels: usize,
    /// Bits of the int8 weights: 8 (−127…127), or 7 (−63…63), which keeps the 16-bit pair
    /// sums of AVX2's `vpmaddubsw` from saturating (ONNX Runtime's "reduce range").
    pub weight_bits: u32,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            min_channels: 16,
            weight_bits: 8,
        }
    }
}

/// Why a model cannot be quantized.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuantizeError {
    #[error("the model has no graph")]
    NoGraph,
    #[error("the model keeps weights in external files; quantize needs them inside the model")]
    ExternalData,
    #[error("the model is already quantized (it has {0} nodes)")]
    AlreadyQuantized(String),
    #[error("the model's opset is {0}; per-channel quantization needs opset 13 or newer")]
    OldOpset(i64),
    #[error(
        "no convolution has constant float32 weights and at least {0} input and output channels"
    )]
    NothingToQuantize(usize),
    #[error("no calibrated range for tensor '{0}'")]
    MissingRange(String),
    #[error("tensor '{tensor}' has range {lo}..{hi}, not a finite one")]
    BadRange { tensor: String, lo: f32, hi: f32 },
}

/// One convolution to quantize.
#[derive(Debug, Clone, PartialEq)]
struct ConvPlan {
    /// Index of the Conv node.
    node: usize,
    /// The float tensor quantized for it.
    source: String,
    /// Pad / Resize nodes from `source` to the convolution, in order.
    chain: Vec<usize>,
    /// `[cout, cin / group, kh, kw]` weights and the bias, as float32.
    weight: Vec<f32>,
    weight_dims: Vec<i64>,
    bias: Option<Vec<f32>>,
}

/// The convolutions [`plan`] chose and the tensors to calibrate.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    convs: Vec<ConvPlan>,
    /// Convolutions in the graph, chosen or not.
    pub total_convs: usize,
}

impl Plan {
    /// Convolutions to quantize.
    pub fn len(&self) -> usize {
        self.convs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.convs.is_empty()
    }

    /// The float tensors whose value ranges [`apply`] needs: each convolution's (pre-padding)
    /// input and its output.
    pub fn tensors(&self, model: &ModelProto) -> Vec<String> {
        let graph = model.graph.as_ref().expect("planned on this model");
        let mut names = Vec::new();
        for c in &self.convs {
            for t in [&c.source, &graph.node[c.node].output[0]] {
                if !names.contains(t) {
                    names.push(t.clone());
                }
            }
        }
        names
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantized {
    pub convs: usize,
    pub total_convs: usize,
}

/// Chooses the convolutions of `model` to quantize.
pub fn plan(model: &ModelProto, options: &QuantizeOptions) -> Result<Plan, QuantizeError> {
    let graph = model.graph.as_ref().ok_or(QuantizeError::NoGraph)?;
    if graph
        .initializer
        .iter()
        .any(|t| t.data_location.enum_value() == Ok(DataLocation::EXTERNAL))
    {
        return Err(QuantizeError::ExternalData);
    }
    if let Some(n) = graph.node.iter().find(|n| {
        ["QuantizeLinear", "DequantizeLinear", "QLinearConv"].contains(&n.op_type.as_str())
    }) {
        return Err(QuantizeError::AlreadyQuantized(n.op_type.clone()));
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version);
    if opset < 13 {
        return Err(QuantizeError::OldOpset(opset));
    }
    let inputs: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    let constants: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .filter(|t| !inputs.contains(t.name.as_str()))
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut producer = HashMap::new();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            producer.insert(o.as_str(), i);
        }
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            *readers.entry(input.as_str()).or_default() += 1;
        }
    }
    let outputs: HashSet<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
    let sole_reader = |t: &str| readers.get(t) == Some(&1) && !outputs.contains(t);

    let mut convs = Vec::new();
    let mut total_convs = 0;
    for (i, conv) in graph.node.iter().enumerate() {
        if !standard(conv, "Conv") {
            continue;
        }
        total_convs += 1;
        let Some(w) = conv.input.get(1).and_then(|w| constants.get(w.as_str())) else {
            continue;
        };
        let Some((weight, DataType::FLOAT)) = float_values(w) else {
            continue;
        };
        if w.dims.len() != 4 {
            continue;
        }
        let group = attr_int(conv, "group").unwrap_or(1).max(1);
        let (cout, cin) = (w.dims[0], w.dims[1] * group);
        if cout < options.min_channels as i64 || cin < options.min_channels as i64 {
            continue;
        }
        let bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => match constants.get(b.as_str()).and_then(|t| float_values(t)) {
                Some((v, DataType::FLOAT)) if v.len() == cout as usize => Some(v),
                _ => continue,
            },
            None => None,
        };
        // Walk up through padding and nearest resizing that only this convolution reads.
        let mut source = conv.input[0].clone();
        let mut chain = Vec::new();
        while let Some(&p) = producer.get(source.as_str()) {
            let n = &graph.node[p];
            if !sole_reader(&source) || !commutes_with_quantization(n) {
                break;
            }
            chain.push(p);
            source = n.input[0].clone();
        }
        chain.reverse();
        convs.push(ConvPlan {
            node: i,
            source,
            chain,
            weight,
            weight_dims: w.dims.clone(),
            bias,
        });
    }
    if convs.is_empty() {
        return Err(QuantizeError::NothingToQuantize(options.min_channels));
    }
    Ok(Plan { convs, total_convs })
}

/// Whether `n` gives the same result on quantized values as on float ones (then quantized
/// back): padding that copies values, and nearest-neighbour resizing.
fn commutes_with_quantization(n: &NodeProto) -> bool {
    if standard(n, "Pad") {
        let mode = attr_str(n, "mode").unwrap_or_else(|| "constant".to_string());
        return (mode == "reflect" || mode == "edge")
            && n.input.iter().skip(2).all(String::is_empty);
    }
    standard(n, "Resize") && attr_str(n, "mode").as_deref() == Some("nearest")
}

/// Scale and zero point of uint8 values covering `lo..hi` (widened to include 0, so that
/// zero is exact).
pub fn activation_params(lo: f32, hi: f32) -> (f32, u8) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zero = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zero)
}

/// Symmetric per-output-channel int8 weights of `[cout, …]` `weight`: values and scales.
pub fn quantize_weights(weight: &[f32], cout: usize, bits: u32) -> (Vec<i8>, Vec<f32>) {
    let qmax = ((1i32 << (bits - 1)) - 1) as f32;
    let per = weight.len() / cout;
    let mut values = Vec::with_capacity(weight.len());
    let mut scales = Vec::with_capacity(cout);
    for channel in weight.chunks_exact(per) {
        let max = channel.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / qmax } else { 1.0 };
        values.extend(
            channel
                .iter()
                .map(|v| (v / scale).round().clamp(-qmax, qmax) as i8),
        );
        scales.push(scale);
    }
    (values, scales)
}

/// Rewrites `model` as [`plan`] chose, with `ranges` (min, max) of the tensors
/// [`Plan::tensors`] named.
pub fn apply(
    model: &mut ModelProto,
    plan: &Plan,
    ranges: &HashMap<String, (f32, f32)>,
    options: &QuantizeOptions,
) -> Result<Quantized, QuantizeError> {
    let range = |t: &str| -> Result<(f32, u8), QuantizeError> {
        let &(lo, hi) = ranges
            .get(t)
            .ok_or_else(|| QuantizeError::MissingRange(t.to_string()))?;
        if !lo.is_finite() || !hi.is_finite() || lo > hi {
            return Err(QuantizeError::BadRange {
                tensor: t.to_string(),
                lo,
                hi,
            });
        }
        Ok(activation_params(lo, hi))
    };
    let graph = model.graph.as_mut().ok_or(QuantizeError::NoGraph)?;
    let mut before: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut after: HashMap<usize, Vec<NodeProto>> = HashMap::new();
    let mut tensors = Vec::new();
    // One QuantizeLinear per quantized tensor, however many convolutions read it.
    let mut quantized: HashMap<String, String> = HashMap::new();
    for (k, c) in plan.convs.iter().enumerate() {
        let prefix = format!("rsstyle_q{k}_");
        let (x_scale, x_zero) = range(&c.source)?;
        let y_name = graph.node[c.node].output[0].clone();
        let (y_scale, y_zero) = range(&y_name)?;

        // The input, quantized where it is made (shared), padded/resized as uint8, dequantized
        // just before the convolution.
        let q_source = match quantized.get(&c.source) {
            Some(q) => q.clone(),
            None => {
                let q = format!("rsstyle_q_{}", c.source);
                let (s, z) = (format!("{q}_scale"), format!("{q}_zero_point"));
                tensors.push(scalar_f32(&s, x_scale));
                tensors.push(tensor_proto(&z, DataType::UINT8, &[], vec![x_zero]));
                let at = match c.chain.first() {
                    Some(&first) => first,
                    None => c.node,
                };
                before.entry(at).or_default().push(node(
                    &format!("{q}_QuantizeLinear"),
                    "QuantizeLinear",
                    &[c.source.clone(), s, z],
                    std::slice::from_ref(&q),
                    &[],
                ));
                quantized.insert(c.source.clone(), q.clone());
                q
            }
        };
        let mut x = q_source.clone();
        for &p in &c.chain {
            graph.node[p].input[0] = x;
            x = graph.node[p].output[0].clone();
        }
        let (xs, xz) = (format!("{prefix}x_scale"), format!("{prefix}x_zero_point"));
        tensors.push(scalar_f32(&xs, x_scale));
        tensors.push(tensor_proto(&xz, DataType::UINT8, &[], vec![x_zero]));
        let x_dq = format!("{prefix}x");
        let mut pre = vec![node(
            &format!("{prefix}x_DequantizeLinear"),
            "DequantizeLinear",
            &[x, xs, xz],
            std::slice::from_ref(&x_dq),
            &[],
        )];

        // Weights and bias.
        let cout = c.weight_dims[0] as usize;
        let (w_values, w_scales) = quantize_weights(&c.weight, cout, options.weight_bits);
        let (wq, ws, wz, w_dq) = (
            format!("{prefix}weight_quantized"),
            format!("{prefix}weight_scale"),
            format!("{prefix}weight_zero_point"),
            format!("{prefix}weight"),
        );
        tensors.push(tensor_proto(
            &wq,
            DataType::INT8,
            &c.weight_dims,
            w_values.iter().map(|&v| v as u8).collect(),
        ));
        tensors.push(tensor_proto(
            &ws,
            DataType::FLOAT,
            &[cout as i64],
            w_scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        tensors.push(tensor_proto(
            &wz,
            DataType::INT8,
            &[cout as i64],
            vec![0; cout],
        ));
        pre.push(node(
            &format!("{prefix}weight_DequantizeLinear"),
            "DequantizeLinear",
            &[wq, ws, wz],
            std::slice::from_ref(&w_dq),
            &[Attr::Int("axis", 0)],
        ));
        let mut conv_inputs = vec![x_dq, w_dq];
        if let Some(bias) = &c.bias {
            let scales: Vec<f32> = w_scales.iter().map(|s| s * x_scale).collect();
            let values: Vec<i32> = bias
                .iter()
                .zip(&scales)
                .map(|(b, s)| (b / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
                .collect();
            let (bq, bs, bz, b_dq) = (
                format!("{prefix}bias_quantized"),
                format!("{prefix}bias_scale"),
                format!("{prefix}bias_zero_point"),
                format!("{prefix}bias"),
            );
            tensors.push(tensor_proto(
                &bq,
                DataType::INT32,
                &[cout as i64],
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
            tensors.push(tensor_proto(
                &bs,
                DataType::FLOAT,
                &[cout as i64],
                scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
            tensors.push(tensor_proto(
                &bz,
                DataType::INT32,
                &[cout as i64],
                vec![0; 4 * cout],
            ));
            pre.push(node(
                &format!("{prefix}bias_DequantizeLinear"),
                "DequantizeLinear",
                &[bq, bs, bz],
                std::slice::from_ref(&b_dq),
                &[Attr::Int("axis", 0)],
            ));
            conv_inputs.push(b_dq);
        }
        before.entry(c.node).or_default().extend(pre);

        // The output: quantized and dequantized under its own name, so readers are unchanged.
        let conv = &mut graph.node[c.node];
        let raw = format!("{prefix}conv");
        conv.input = conv_inputs;
        conv.output[0] = raw.clone();
        let (ys, yz, yq) = (
            format!("{prefix}y_scale"),
            format!("{prefix}y_zero_point"),
            format!("{prefix}y_quantized"),
        );
        tensors.push(scalar_f32(&ys, y_scale));
        tensors.push(tensor_proto(&yz, DataType::UINT8, &[], vec![y_zero]));
        after.entry(c.node).or_default().extend([
            node(
                &format!("{prefix}y_QuantizeLinear"),
                "QuantizeLinear",
                &[raw, ys.clone(), yz.clone()],
                std::slice::from_ref(&yq),
                &[],
            ),
            node(
                &format!("{prefix}y_DequantizeLinear"),
                "DequantizeLinear",
                &[yq, ys, yz],
                &[y_name],
                &[],
            ),
        ]);
    }
    let nodes = std::mem::take(&mut graph.node);
    for (i, n) in nodes.into_iter().enumerate() {
        graph.node.extend(before.remove(&i).unwrap_or_default());
        graph.node.push(n);
        graph.node.extend(after.remove(&i).unwrap_or_default());
    }
    graph.initializer.extend(tensors);
    drop_unused_initializers(graph);
    // The padded / resized tensors are uint8 now: drop their float annotations.
    drop_chain_annotations(graph);
    Ok(Quantized {
        convs: plan.convs.len(),
        total_convs: plan.total_convs,
    })
}

/// Removes shape/type annotations of tensors computed from quantized (uint8) values before
/// their DequantizeLinear: they were annotated as float.
fn drop_chain_annotations(graph: &mut GraphProto) {
    let mut uint8: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .flat_map(|n| n.output.iter().cloned())
        .collect();
    // Follow Pad / Resize nodes fed by quantized tensors (graph order is topological).
    for n in &graph.node {
        if (n.op_type == "Pad" || n.op_type == "Resize")
            && n.input.first().is_some_and(|i| uint8.contains(i))
        {
            uint8.extend(n.output.iter().cloned());
        }
    }
    graph.value_info.retain(|v| !uint8.contains(&v.name));
}

/// A float32 scalar constant.
fn scalar_f32(name: &str, v: f32) -> TensorProto {
    tensor_proto(name, DataType::FLOAT, &[], v.to_le_bytes().to_vec())
}

/// `model` with `tensors` added as float32 graph outputs (of any shape), so that one run
/// returns them: the calibration model.
pub fn with_outputs(model: &ModelProto, tensors: &[String]) -> ModelProto {
    let mut m = model.clone();
    let graph = m.graph.as_mut().expect("a model with a graph");
    let existing: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    for t in tensors.iter().filter(|t| !existing.contains(*t)) {
        let mut tensor = type_proto::Tensor::new();
        tensor.elem_type = DataType::FLOAT as i32;
        let mut ty = TypeProto::new();
        ty.set_tensor_type(tensor);
        let mut v = ValueInfoProto::new();
        v.name = t.clone();
        v.type_ = Some(ty).into();
        graph.output.push(v);
    }
    m
}

#[cfg(test)]
mod tests;
