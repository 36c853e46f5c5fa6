//! Wraps a model's graph so that it takes and returns video bytes.
//!
//! The wrapped graph's input is `[n, h, w, 3]` uint8 RGB (the frame's pixels, padded or resized
//! to the tensor geometry) and its output the same. Casting, the layout change, the channel
//! order, the value range and the rounding back to bytes run inside the graph, on the engine's
//! device: a GPU then receives a quarter of the bytes a float tensor needs, and the host only
//! packs pixels. The arithmetic is the host conversion's ([`crate::frame`]): `lo + v · scale`
//! in, `clamp(v · scale + offset, 0, 255) + 0.5` truncated out, so on the CPU the wrapped
//! graph's bytes equal the unwrapped graph's output converted on the host.

use onnx_protobuf::{ModelProto, ValueInfoProto, tensor_proto::DataType};

use crate::model::{ChannelOrder, ElementType, Layout, Manifest};
use crate::onnx::{Attr, Dim, Elem, GraphBuilder};

/// Name of the wrapped graph's byte input.
pub const BYTE_INPUT: &str = "rsstyle_rgb8_in";
/// Name of the wrapped graph's byte output.
pub const BYTE_OUTPUT: &str = "rsstyle_rgb8_out";

/// The operators added here need opset 8 (broadcasting Max/Min with scalars).
const MIN_OPSET: i64 = 8;

/// Puts byte input and output around the image tensors of `proto` that `manifest` names.
/// Conditioning inputs are left as they are.
pub fn wrap(proto: &mut ModelProto, manifest: &Manifest) -> Result<(), String> {
    let opset = proto
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(0);
    if opset < MIN_OPSET {
        return Err(format!(
            "the model's opset {opset} is older than {MIN_OPSET}"
        ));
    }
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| "the model has no graph".to_string())?;
    let input_at = position(&graph.input, &manifest.input)?;
    let output_at = position(&graph.output, &manifest.output)?;

    let (prefix, suffix) = adapters(manifest);
    let input_proto = prefix.build().graph.unwrap();
    let output_proto = suffix.build().graph.unwrap();

    graph.input[input_at] = input_proto.input[0].clone();
    graph.output[output_at] = output_proto.output[0].clone();
    let mut nodes = input_proto.node;
    nodes.append(&mut graph.node);
    nodes.extend(output_proto.node);
    graph.node = nodes;
    graph.initializer.extend(input_proto.initializer);
    graph.initializer.extend(output_proto.initializer);
    Ok(())
}

fn position(values: &[ValueInfoProto], name: &str) -> Result<usize, String> {
    values
        .iter()
        .position(|v| v.name == name)
        .ok_or_else(|| format!("the graph has no tensor '{name}'"))
}

/// The nodes before the model (bytes → its input tensor) and after it (its output → bytes),
/// each built as a small graph whose input / output is the byte tensor. Every name they add
/// starts with `rsstyle_`, so none clashes with the model's.
fn adapters(m: &Manifest) -> (GraphBuilder, GraphBuilder) {
    let dims: Vec<Dim> = vec!["batch".into(), "height".into(), "width".into(), 3.into()];
    let elem = |t: ElementType| match t {
        ElementType::F32 => DataType::FLOAT,
        ElementType::F16 => DataType::FLOAT16,
        ElementType::U8 => DataType::UINT8,
    };
    // Model channel c holds frame channel `rgb[c]` (a permutation that is its own inverse).
    let swap = m.channel_order == ChannelOrder::Bgr;

    let mut pre = GraphBuilder::with_prefix("rsstyle_bytes_in", "rsstyle_in_");
    let mut x = pre.input(BYTE_INPUT, Elem::U8, &dims);
    if swap {
        let idx = pre.constant_i64("rsstyle_in_bgr", &[3], &[2, 1, 0]);
        x = pre.op("Gather", &[&x, &idx], &[Attr::Int("axis", 3)]);
    }
    if m.layout == Layout::Nchw {
        x = pre.op("Transpose", &[&x], &[Attr::Ints("perm", vec![0, 3, 1, 2])]);
    }
    x = pre.op("Cast", &[&x], &[Attr::Int("to", DataType::FLOAT as i64)]);
    let (lo, hi) = m.input_range.bounds();
    let scale = pre.constant_f32("rsstyle_in_scale", &[], &[(hi - lo) / 255.0]);
    let low = pre.constant_f32("rsstyle_in_low", &[], &[lo]);
    x = pre.op("Mul", &[&x, &scale], &[]);
    if m.element_type == ElementType::F32 {
        pre.node("Add", &[&x, &low], &[&m.input], &[]);
    } else {
        // float16, or uint8 (whose range is 0..255: the values are whole bytes again).
        x = pre.op("Add", &[&x, &low], &[]);
        pre.node(
            "Cast",
            &[&x],
            &[&m.input],
            &[Attr::Int("to", elem(m.element_type) as i64)],
        );
    }

    let mut post = GraphBuilder::with_prefix("rsstyle_bytes_out", "rsstyle_out_");
    let mut y = m.output.clone();
    if m.output_element_type != ElementType::F32 {
        y = post.op("Cast", &[&y], &[Attr::Int("to", DataType::FLOAT as i64)]);
    }
    let (lo, hi) = m.output_range.bounds();
    let scale = 255.0 / (hi - lo);
    let c_scale = post.constant_f32("rsstyle_out_scale", &[], &[scale]);
    let c_offset = post.constant_f32("rsstyle_out_offset", &[], &[-lo * scale]);
    let zero = post.constant_f32("rsstyle_out_zero", &[], &[0.0]);
    let top = post.constant_f32("rsstyle_out_top", &[], &[255.0]);
    let half = post.constant_f32("rsstyle_out_half", &[], &[0.5]);
    y = post.op("Mul", &[&y, &c_scale], &[]);
    y = post.op("Add", &[&y, &c_offset], &[]);
    y = post.op("Max", &[&y, &zero], &[]);
    y = post.op("Min", &[&y, &top], &[]);
    y = post.op("Add", &[&y, &half], &[]);
    y = post.op("Cast", &[&y], &[Attr::Int("to", DataType::UINT8 as i64)]);
    if m.layout == Layout::Nchw {
        y = post.op("Transpose", &[&y], &[Attr::Ints("perm", vec![0, 2, 3, 1])]);
    }
    if swap {
        let idx = post.constant_i64("rsstyle_out_bgr", &[3], &[2, 1, 0]);
        y = post.op("Gather", &[&y, &idx], &[Attr::Int("axis", 3)]);
    }
    post.node("Identity", &[&y], &[BYTE_OUTPUT], &[]);
    post.output(BYTE_OUTPUT, Elem::U8, &dims);
    (pre, post)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SizeRule, ValueRange};

    fn manifest(input: &str, output: &str) -> Manifest {
        Manifest {
            input: input.to_string(),
            output: output.to_string(),
            layout: Layout::Nchw,
            element_type: ElementType::F32,
            output_element_type: ElementType::F32,
            input_range: ValueRange::Byte,
            output_range: ValueRange::Byte,
            channel_order: ChannelOrder::Rgb,
            size: SizeRule::Multiple(1),
            min_size: crate::model::MinSize::ANY,
            max_batch: None,
            conditioning: None,
            description: None,
        }
    }

    fn identity_model(opset: i64) -> ModelProto {
        let mut b = GraphBuilder::new("identity");
        let dims: Vec<Dim> = vec!["n".into(), 3.into(), "h".into(), "w".into()];
        let x = b.input("input", Elem::F32, &dims);
        b.node("Identity", &[&x], &["output"], &[]);
        b.output("output", Elem::F32, &dims);
        let mut proto = b.build();
        proto.opset_import[0].version = opset;
        proto
    }

    #[test]
    fn the_wrapped_graph_takes_and_returns_bytes() {
        let mut wrapped = identity_model(17);
        wrap(&mut wrapped, &manifest("input", "output")).unwrap();
        let graph = wrapped.graph.unwrap();
        let elem = |v: &ValueInfoProto| v.type_.tensor_type().elem_type;
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, BYTE_INPUT);
        assert_eq!(elem(&graph.input[0]), DataType::UINT8 as i32);
        assert_eq!(graph.output[0].name, BYTE_OUTPUT);
        assert_eq!(elem(&graph.output[0]), DataType::UINT8 as i32);
        // The model's own node is kept between the added ones.
        assert!(
            graph
                .node
                .iter()
                .any(|n| n.op_type == "Identity" && n.input[0] == "input")
        );
    }

    #[test]
    fn old_opsets_and_unknown_tensors_are_refused_with_the_reason() {
        assert_eq!(
            wrap(&mut identity_model(7), &manifest("input", "output")),
            Err("the model's opset 7 is older than 8".to_string())
        );
        assert_eq!(
            wrap(&mut identity_model(17), &manifest("image", "output")),
            Err("the graph has no tensor 'image'".to_string())
        );
    }
}
