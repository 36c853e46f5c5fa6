//! Which convolutions are quantized and the graph that results. That ONNX Runtime runs the
//! result close to the float model is checked in tests/quantize.rs.

use super::*;
use crate::onnx::{Dim, Elem, GraphBuilder};

/// input [n, 16, h, w] → Pad reflect 1 → Conv 3×3 16→16 → Relu → Pad reflect 1 →
/// Conv 3×3 16→3 → output, plus a skip: Relu output → Add with itself read by nothing else.
/// Node indices: Pad 0, Conv 1, Relu 2, Pad 3, Conv 4, Identity 5.
fn net() -> ModelProto {
    let mut b = GraphBuilder::new("net");
    let dims: [Dim; 4] = ["n".into(), 16.into(), "h".into(), "w".into()];
    let x = b.input("input", Elem::F32, &dims);
    let data = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 23) as f32 / 23.0 - 0.5)
            .collect()
    };
    let pads = b.constant_i64("pads", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]);
    let reflect = [Attr::Str("mode", "reflect".into())];
    let p = b.op("Pad", &[&x, &pads], &reflect);
    let w1 = b.constant_f32("w1", &[16, 16, 3, 3], &data(16 * 16 * 9));
    let b1 = b.constant_f32("b1", &[16], &data(16));
    let y = b.op(
        "Conv",
        &[&p, &w1, &b1],
        &[Attr::Ints("kernel_shape", vec![3, 3])],
    );
    let y = b.op("Relu", &[&y], &[]);
    let p = b.op("Pad", &[&y, &pads], &reflect);
    let w2 = b.constant_f32("w2", &[3, 16, 3, 3], &data(3 * 16 * 9));
    let y = b.op(
        "Conv",
        &[&p, &w2],
        &[Attr::Ints("kernel_shape", vec![3, 3])],
    );
    b.node("Identity", &[&y], &["output"], &[]);
    let out: [Dim; 4] = ["n".into(), 3.into(), "h".into(), "w".into()];
    b.output("output", Elem::F32, &out);
    b.build()
}

fn ops(m: &ModelProto) -> Vec<&str> {
    m.graph.node.iter().map(|n| n.op_type.as_str()).collect()
}

#[test]
fn activation_ranges_include_zero_and_map_it_exactly() {
    let (scale, zero) = activation_params(-1.0, 3.0);
    assert_eq!(scale, 4.0 / 255.0);
    assert_eq!(zero, 64); // round(1 / (4/255)) = round(63.75)
    // A range that does not reach zero is widened to it.
    assert_eq!(activation_params(2.0, 5.1), (0.02, 0));
    assert_eq!(activation_params(-5.1, -2.0), (0.02, 255));
    // An empty range still gives a usable scale.
    assert_eq!(activation_params(0.0, 0.0), (1.0, 0));
}

#[test]
fn weights_get_one_symmetric_scale_per_output_channel() {
    let w = [0.6, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.5];
    let (q, s) = quantize_weights(&w, 3, 8);
    assert_eq!(s, [1.0 / 127.0, 1.0, 2.0 / 127.0]);
    // 0.6·127 = 76.2, 0.25·127 = 31.75, 0.5·127/2 = 31.75
    assert_eq!(q, [76, -127, 32, 0, 0, 0, 127, 64, -32]);
    let (q, s) = quantize_weights(&w, 3, 7);
    assert_eq!(s[0], 1.0 / 63.0);
    assert_eq!(&q[..3], &[38, -63, 16]);
}

#[test]
fn plan_picks_convolutions_by_channels_and_walks_up_through_padding() {
    let m = net();
    let p = plan(&m, &QuantizeOptions::default()).unwrap();
    assert_eq!((p.len(), p.total_convs), (1, 2));
    assert_eq!(p.convs[0].node, 1);
    assert_eq!(p.convs[0].chain, [0]);
    assert_eq!(p.tensors(&m), ["input", m.graph.node[1].output[0].as_str()]);
    let all = QuantizeOptions {
        min_channels: 1,
        ..QuantizeOptions::default()
    };
    let p = plan(&m, &all).unwrap();
    assert_eq!(p.len(), 2);
    assert!(p.convs[1].bias.is_none());
    // The second convolution reads the Relu through its own Pad.
    assert_eq!(p.convs[1].source, m.graph.node[2].output[0]);
}

#[test]
fn plan_refuses_what_it_cannot_quantize() {
    let m = net();
    let wide = QuantizeOptions {
        min_channels: 17,
        ..QuantizeOptions::default()
    };
    assert_eq!(plan(&m, &wide), Err(QuantizeError::NothingToQuantize(17)));
    assert_eq!(
        plan(&m, &wide).unwrap_err().to_string(),
        "no convolution has constant float32 weights and at least 17 input and output channels"
    );
    let mut old = net();
    old.opset_import[0].version = 11;
    assert_eq!(
        plan(&old, &QuantizeOptions::default()),
        Err(QuantizeError::OldOpset(11))
    );
}

#[test]
fn apply_wraps_the_convolution_in_quantize_and_dequantize_nodes() {
    let mut m = net();
    let options = QuantizeOptions::default();
    let p = plan(&m, &options).unwrap();
    let y = m.graph.node[1].output[0].clone();
    let ranges = HashMap::from([("input".to_string(), (-0.5, 0.5)), (y.clone(), (-2.0, 6.0))]);
    let done = apply(&mut m, &p, &ranges, &options).unwrap();
    assert_eq!((done.convs, done.total_convs), (1, 2));
    assert_eq!(
        ops(&m),
        [
            "QuantizeLinear",
            "Pad",
            "DequantizeLinear",
            "DequantizeLinear",
            "DequantizeLinear",
            "Conv",
            "QuantizeLinear",
            "DequantizeLinear",
            "Relu",
            "Pad",
            "Conv",
            "Identity"
        ]
    );
    let g = &m.graph;
    // The padding runs on the uint8 values; the convolution reads them dequantized.
    assert_eq!(g.node[1].input[0], g.node[0].output[0]);
    assert_eq!(g.node[2].input[0], g.node[1].output[0]);
    assert_eq!(g.node[5].input[0], g.node[2].output[0]);
    // Its output keeps its name, now made by the DequantizeLinear, so the Relu is unchanged.
    assert_eq!(g.node[7].output[0], y);
    assert_eq!(g.node[8].input[0], y);
    let init = |name: &str| g.initializer.iter().find(|t| t.name == name).unwrap();
    let w = init(&g.node[3].input[0]);
    assert_eq!(w.data_type, DataType::INT8 as i32);
    assert_eq!(w.dims, [16, 16, 3, 3]);
    let bias = init(&g.node[4].input[0]);
    assert_eq!(bias.data_type, DataType::INT32 as i32);
    // Bias scale = input scale × weight scale, per channel.
    let x_scale = f32::from_le_bytes(init(&g.node[2].input[1]).raw_data[..4].try_into().unwrap());
    assert_eq!(x_scale, 1.0 / 255.0);
    let w_scales = &init(&g.node[3].input[1]).raw_data;
    let b_scales = &init(&g.node[4].input[1]).raw_data;
    let first = |raw: &[u8]| f32::from_le_bytes(raw[..4].try_into().unwrap());
    assert_eq!(first(b_scales), first(w_scales) * x_scale);
    // The output's zero point maps 0 exactly: -2..6 → scale 8/255, zero 64.
    let y_zero = init(&g.node[6].input[2]);
    assert_eq!(
        (y_zero.data_type, y_zero.raw_data.as_slice()),
        (DataType::UINT8 as i32, &[64u8][..])
    );
    // The float weights are gone; the second convolution's stay.
    assert!(
        g.initializer
            .iter()
            .all(|t| t.name != "w1" && t.name != "b1")
    );
    assert!(g.initializer.iter().any(|t| t.name == "w2"));
    // A quantized model is not quantized again.
    assert_eq!(
        plan(&m, &options),
        Err(QuantizeError::AlreadyQuantized("QuantizeLinear".into()))
    );
}

#[test]
fn apply_needs_every_range() {
    let mut m = net();
    let options = QuantizeOptions::default();
    let p = plan(&m, &options).unwrap();
    let ranges = HashMap::from([("input".to_string(), (f32::NAN, 0.5))]);
    assert_eq!(
        apply(&mut m.clone(), &p, &ranges, &options)
            .unwrap_err()
            .to_string(),
        "tensor 'input' has range NaN..0.5, not a finite one"
    );
    let ranges = HashMap::from([("input".to_string(), (-1.0, 0.5))]);
    let y = m.graph.node[1].output[0].clone();
    assert_eq!(
        apply(&mut m, &p, &ranges, &options),
        Err(QuantizeError::MissingRange(y))
    );
}

#[test]
fn calibration_model_returns_the_requested_tensors() {
    let m = net();
    let y = m.graph.node[2].output[0].clone();
    let probe = with_outputs(&m, &[y.clone(), "output".to_string()]);
    let names: Vec<&str> = probe.graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["output", y.as_str()]);
}
