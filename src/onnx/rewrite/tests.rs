//! Which graphs are rewritten and into what. That the rewritten graphs compute the same values
//! is checked through ONNX Runtime (tests/train.rs, tests/parity.rs).

use super::*;
use crate::onnx::{Dim, Elem, GraphBuilder};

/// input [n, 8, h, w] → Resize ×2 → Pad reflect 1 → Conv 3×3 8→6 → Relu → Pad reflect 4 →
/// Conv 9×9 6→3 → Tanh → output. Node indices: Resize 0, Pad 1, Conv 2, Relu 3, Pad 4,
/// Conv 5, Tanh 6, Identity 7.
fn decoder(elem: Elem) -> ModelProto {
    let mut b = GraphBuilder::new("decoder");
    let x = b.input(
        "input",
        elem,
        &["n".into(), 8.into(), "h".into(), "w".into()],
    );
    let constant = |b: &mut GraphBuilder, name: &str, dims: &[i64]| {
        let n = dims.iter().product::<i64>() as usize;
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 17) as f32 / 17.0 - 0.5)
            .collect();
        match elem {
            Elem::F16 => b.constant_f16(name, dims, &data),
            _ => b.constant_f32(name, dims, &data),
        }
    };
    let scales = b.constant_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let up = b.op(
        "Resize",
        &[&x, "", &scales],
        &[
            Attr::Str("mode", "nearest".into()),
            Attr::Str("coordinate_transformation_mode", "asymmetric".into()),
            Attr::Str("nearest_mode", "floor".into()),
        ],
    );
    let pads1 = b.constant_i64("pads1", &[8], &[0, 0, 1, 1, 0, 0, 1, 1]);
    let reflect = || [Attr::Str("mode", "reflect".into())];
    let p = b.op("Pad", &[&up, &pads1], &reflect());
    let (w1, b1) = (
        constant(&mut b, "w1", &[6, 8, 3, 3]),
        constant(&mut b, "b1", &[6]),
    );
    let y = b.op(
        "Conv",
        &[&p, &w1, &b1],
        &[Attr::Ints("kernel_shape", vec![3, 3])],
    );
    let y = b.op("Relu", &[&y], &[]);
    let pads4 = b.constant_i64("pads4", &[8], &[0, 0, 4, 4, 0, 0, 4, 4]);
    let p = b.op("Pad", &[&y, &pads4], &reflect());
    let (w2, b2) = (
        constant(&mut b, "w2", &[3, 6, 9, 9]),
        constant(&mut b, "b2", &[3]),
    );
    let y = b.op(
        "Conv",
        &[&p, &w2, &b2],
        &[Attr::Ints("kernel_shape", vec![9, 9])],
    );
    let y = b.op("Tanh", &[&y], &[]);
    b.node("Identity", &[&y], &["output"], &[]);
    let dims: [Dim; 4] = ["n".into(), 3.into(), "h2".into(), "w2".into()];
    b.output("output", elem, &dims);
    b.build()
}

fn ops(model: &ModelProto) -> Vec<&str> {
    model
        .graph
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect()
}

fn rewrite_with(tweak: impl Fn(&mut GraphProto)) -> Rewrites {
    let mut model = decoder(Elem::F32);
    tweak(model.graph.as_mut().unwrap());
    optimize(&mut model, Some("output"))
}

fn set_attr(node: &mut NodeProto, a: Attr) {
    let proto = a.to_proto();
    node.attribute.retain(|x| x.name != proto.name);
    node.attribute.push(proto);
}

fn set_constant(graph: &mut GraphProto, name: &str, t: TensorProto) {
    let i = graph.initializer.iter().position(|x| x.name == name);
    graph.initializer[i.unwrap()] = TensorProto {
        name: name.to_string(),
        ..t
    };
}

const BOTH: Rewrites = Rewrites {
    upsample_convs: 1,
    output_convs: 1,
    conditional_norms: 0,
};
const UPSAMPLE_ONLY: Rewrites = Rewrites {
    upsample_convs: 1,
    output_convs: 0,
    conditional_norms: 0,
};
const OUTPUT_ONLY: Rewrites = Rewrites {
    upsample_convs: 0,
    output_convs: 1,
    conditional_norms: 0,
};

#[test]
fn both_patterns_are_rewritten_and_the_old_constants_dropped() {
    for elem in [Elem::F32, Elem::F16] {
        let mut model = decoder(elem);
        assert_eq!(optimize(&mut model, Some("output")), BOTH);
        assert_eq!(
            ops(&model),
            [
                "Pad",
                "ConvTranspose",
                "Relu",
                "Pad",
                "SpaceToDepth",
                "Conv",
                "DepthToSpace",
                "Tanh",
                "Identity"
            ]
        );
        let g = &model.graph;
        let read: HashSet<&str> = g
            .node
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .collect();
        let names: Vec<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        assert!(names.iter().all(|n| read.contains(n)), "{names:?}");
        for gone in ["w1", "w2", "b2", "scales", "pads1"] {
            assert!(!names.contains(&gone), "{gone} kept: {names:?}");
        }
        // The 3×3 conv's bias carries over; shapes and types of the new weights.
        let dims = |name: &str| {
            let t = g.initializer.iter().find(|t| t.name.ends_with(name));
            (t.unwrap().dims.clone(), t.unwrap().data_type)
        };
        let ty = if elem == Elem::F16 {
            DataType::FLOAT16
        } else {
            DataType::FLOAT
        } as i32;
        assert_eq!(dims("rewrite2_weight"), (vec![8, 6, 4, 4], ty));
        assert_eq!(dims("rewrite5_weight"), (vec![12, 24, 5, 5], ty));
        assert_eq!(dims("rewrite5_bias"), (vec![12], ty));
        assert_eq!(g.node[1].input[2], "b1");
        assert_eq!(g.node[1].output, ["conv_3_out"]);
    }
}

#[test]
fn shape_annotations_of_removed_tensors_go_with_them() {
    let mut model = decoder(Elem::F32);
    let g = model.graph.as_mut().unwrap();
    let annotate = |name: &str| {
        let mut v = g.output[0].clone();
        v.name = name.to_string();
        v
    };
    // The upsampled image, its padded copy, and the 3×3 convolution's output (kept).
    let names = [
        &g.node[0].output[0],
        &g.node[1].output[0],
        &g.node[2].output[0],
    ];
    let infos: Vec<_> = names.iter().map(|n| annotate(n)).collect();
    let kept = infos[2].name.clone();
    g.value_info = infos;
    assert_eq!(optimize(&mut model, Some("output")), BOTH);
    let left: Vec<&str> = model
        .graph
        .value_info
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(left, [kept.as_str()]);
}

#[test]
fn the_transposed_kernel_sums_the_taps_each_phase_reads() {
    let mut model = decoder(Elem::F32);
    let w1 = float_values(
        model
            .graph
            .initializer
            .iter()
            .find(|t| t.name == "w1")
            .unwrap(),
    )
    .unwrap()
    .0;
    optimize(&mut model, Some("output"));
    let g = &model.graph;
    let moved = g
        .initializer
        .iter()
        .find(|t| t.name.ends_with("rewrite2_weight"));
    let moved = float_values(moved.unwrap()).unwrap().0;
    let w = |o: usize, c: usize, u: usize, v: usize| w1[((o * 8 + c) * 3 + u) * 3 + v];
    let m = |c: usize, o: usize, p: usize, q: usize| moved[((c * 6 + o) * 4 + p) * 4 + q];
    let (o, c) = (4, 5);
    // Kernel row/column 0 holds tap 2, 1 holds taps 1 + 2, 2 holds 0 + 1, 3 holds tap 0.
    assert_eq!(m(c, o, 0, 3), w(o, c, 2, 0));
    assert_eq!(m(c, o, 3, 0), w(o, c, 0, 2));
    let centre = w(o, c, 1, 1) + w(o, c, 1, 2) + w(o, c, 2, 1) + w(o, c, 2, 2);
    assert!((m(c, o, 1, 1) - centre).abs() < 1e-6);
    let total: f32 = (0..3)
        .flat_map(|u| (0..3).map(move |v| (u, v)))
        .map(|(u, v)| w(o, c, u, v))
        .sum();
    let moved_total: f32 = (0..4)
        .flat_map(|p| (0..4).map(move |q| (p, q)))
        .map(|(p, q)| m(c, o, p, q))
        .sum();
    // Each tap lands in two kernel rows and two columns: four times in all.
    assert!((moved_total - 4.0 * total).abs() < 1e-4);
}

#[test]
fn the_output_convolution_needs_an_even_sized_output() {
    let mut model = decoder(Elem::F32);
    assert_eq!(optimize(&mut model, None), UPSAMPLE_ONLY);
    let mut model = decoder(Elem::F32);
    assert_eq!(optimize(&mut model, Some("elsewhere")), UPSAMPLE_ONLY);
    // An operator between the convolution and the output that may change the size.
    assert_eq!(
        rewrite_with(|g| g.node[6].op_type = "MaxPool".into()),
        UPSAMPLE_ONLY
    );
}

/// A change to the test graph.
type Tweak = dyn Fn(&mut GraphProto);

#[test]
fn near_misses_are_left_alone() {
    let cases: Vec<(&str, Box<Tweak>, Rewrites)> = vec![
        (
            "constant pad",
            Box::new(|g| set_attr(&mut g.node[1], Attr::Str("mode", "constant".into()))),
            OUTPUT_ONLY,
        ),
        (
            "pad 2",
            Box::new(|g| {
                let t = tensor_proto(
                    "",
                    DataType::INT64,
                    &[8],
                    int_bytes(&[0, 0, 2, 2, 0, 0, 2, 2]),
                );
                set_constant(g, "pads1", t)
            }),
            OUTPUT_ONLY,
        ),
        (
            "scale 3",
            Box::new(|g| {
                let t = float_tensor("", DataType::FLOAT, &[4], &[1.0, 1.0, 3.0, 3.0]);
                set_constant(g, "scales", t)
            }),
            OUTPUT_ONLY,
        ),
        (
            "half-pixel coordinates",
            Box::new(|g| {
                let a = Attr::Str("coordinate_transformation_mode", "half_pixel".into());
                set_attr(&mut g.node[0], a)
            }),
            OUTPUT_ONLY,
        ),
        (
            "nearest rounding up",
            Box::new(|g| set_attr(&mut g.node[0], Attr::Str("nearest_mode", "ceil".into()))),
            OUTPUT_ONLY,
        ),
        (
            "linear resize",
            Box::new(|g| set_attr(&mut g.node[0], Attr::Str("mode", "linear".into()))),
            OUTPUT_ONLY,
        ),
        (
            "strided conv",
            Box::new(|g| set_attr(&mut g.node[2], Attr::Ints("strides", vec![2, 2]))),
            OUTPUT_ONLY,
        ),
        (
            "dilated output conv",
            Box::new(|g| set_attr(&mut g.node[5], Attr::Ints("dilations", vec![2, 2]))),
            UPSAMPLE_ONLY,
        ),
        (
            "grouped output conv",
            Box::new(|g| set_attr(&mut g.node[5], Attr::Int("group", 3))),
            UPSAMPLE_ONLY,
        ),
        (
            "upsampled image read twice",
            Box::new(|g| {
                let up = g.node[0].output[0].clone();
                g.node[3].input.push(up)
            }),
            OUTPUT_ONLY,
        ),
        (
            "padded image is a graph output",
            Box::new(|g| {
                let mut extra = g.output[0].clone();
                extra.name = g.node[4].output[0].clone();
                g.output.push(extra)
            }),
            UPSAMPLE_ONLY,
        ),
        (
            "weights overridable as an input",
            Box::new(|g| {
                let mut w = g.input[0].clone();
                w.name = "w2".into();
                g.input.push(w)
            }),
            UPSAMPLE_ONLY,
        ),
        (
            "integer weights",
            Box::new(|g| {
                let t = tensor_proto("", DataType::INT64, &[6, 8, 3, 3], int_bytes(&[0; 432]));
                set_constant(g, "w1", t)
            }),
            OUTPUT_ONLY,
        ),
        (
            "other domain",
            Box::new(|g| g.node[5].domain = "com.example".into()),
            UPSAMPLE_ONLY,
        ),
    ];
    for (what, tweak, expected) in cases {
        assert_eq!(rewrite_with(tweak), expected, "{what}");
    }
}

#[test]
fn subgraphs_leave_the_model_untouched() {
    let mut model = decoder(Elem::F32);
    let body = decoder(Elem::F32).graph.unwrap();
    let mut a = Attr::Int("then_branch", 0).to_proto();
    a.type_ = onnx_protobuf::attribute_proto::AttributeType::GRAPH.into();
    a.g = Some(body).into();
    model.graph.as_mut().unwrap().node[3].attribute.push(a);
    let before = model.clone();
    assert_eq!(optimize(&mut model, Some("output")), Rewrites::default());
    assert_eq!(model, before);
}

#[test]
fn external_weights_leave_the_model_untouched() {
    let mut model = decoder(Elem::F32);
    model.graph.as_mut().unwrap().initializer[0].data_location = DataLocation::EXTERNAL.into();
    let before = model.clone();
    assert_eq!(optimize(&mut model, Some("output")), Rewrites::default());
    assert_eq!(model, before);
}

#[test]
fn says_what_it_rewrote() {
    assert_eq!(
        BOTH.to_string(),
        "1 upsample convolution as transposed, 1 output convolution through SpaceToDepth"
    );
    let two = Rewrites {
        upsample_convs: 2,
        output_convs: 0,
        conditional_norms: 0,
    };
    assert_eq!(two.to_string(), "2 upsample convolutions as transposed");
    let norms = Rewrites {
        conditional_norms: 3,
        ..Rewrites::default()
    };
    assert_eq!(norms.to_string(), "3 conditional instance norms as one");
    assert_eq!(Rewrites::default().to_string(), "none");
}

fn int_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// input [n, 4, h, w], style [n, 3] (or `style_dims`) → InstanceNormalization(scale, shift)
/// → Mul by Unsqueeze(MatMul(style, A), [2, 3]) → Add Unsqueeze(MatMul(style, B), [2, 3]) →
/// Relu → output. Node indices: IN 0, MatMul 1, Unsqueeze 2, MatMul 3, Unsqueeze 4, Mul 5,
/// Add 6, Relu 7, Identity 8.
fn conditioned_norm(style_dims: &[Dim], scale: f32) -> ModelProto {
    let mut b = GraphBuilder::new("cin");
    let dims: [Dim; 4] = ["n".into(), 4.into(), "h".into(), "w".into()];
    let x = b.input("input", Elem::F32, &dims);
    let style = b.input("style", Elem::F32, style_dims);
    let ones = b.constant_f32("ones", &[4], &[scale; 4]);
    let zeros = b.constant_f32("zeros", &[4], &[0.0; 4]);
    let normed = b.op(
        "InstanceNormalization",
        &[&x, &ones, &zeros],
        &[Attr::Float("epsilon", 1e-3)],
    );
    let axes = b.constant_i64("axes", &[2], &[2, 3]);
    let a = b.constant_f32("a", &[3, 4], &[0.5; 12]);
    let s = b.op("MatMul", &[&style, &a], &[]);
    let s = b.op("Unsqueeze", &[&s, &axes], &[]);
    let t = b.constant_f32("t", &[3, 4], &[0.1; 12]);
    let t = b.op("MatMul", &[&style, &t], &[]);
    let t = b.op("Unsqueeze", &[&t, &axes], &[]);
    let y = b.op("Mul", &[&normed, &s], &[]);
    let y = b.op("Add", &[&t, &y], &[]);
    let y = b.op("Relu", &[&y], &[]);
    b.node("Identity", &[&y], &["output"], &[]);
    b.output("output", Elem::F32, &dims);
    b.build()
}

const NORM_ONLY: Rewrites = Rewrites {
    upsample_convs: 0,
    output_convs: 0,
    conditional_norms: 1,
};

#[test]
fn conditional_instance_norm_becomes_one_instance_norm() {
    let mut model = conditioned_norm(&["n".into(), 3.into()], 1.0);
    let add_output = model.graph.node[6].output[0].clone();
    assert_eq!(optimize(&mut model, None), NORM_ONLY);
    assert_eq!(
        ops(&model),
        [
            "MatMul",
            "MatMul",
            "Reshape",
            "Reshape",
            "Reshape",
            "InstanceNormalization",
            "Reshape",
            "Relu",
            "Identity"
        ]
    );
    let g = &model.graph;
    let norm = &g.node[5];
    // The input viewed as [1, N·C, H, W], the per-sample scale and shift flattened, and the
    // result viewed as [N, C, H, W] under the Add's name.
    assert_eq!(g.node[2].input[0], "input");
    assert_eq!(norm.input[0], g.node[2].output[0]);
    assert_eq!(g.node[3].input[0], g.node[0].output[0]);
    assert_eq!(g.node[4].input[0], g.node[1].output[0]);
    assert_eq!(
        norm.input[1..],
        [g.node[3].output[0].clone(), g.node[4].output[0].clone()]
    );
    assert_eq!(attr(norm, "epsilon").unwrap().f, 1e-3);
    assert_eq!(g.node[6].output[0], add_output);
    let shape =
        |name: &str| int_values(g.initializer.iter().find(|t| t.name == name).unwrap()).unwrap();
    assert_eq!(shape(&g.node[2].input[1]), [1, -1, 0, 0]);
    assert_eq!(shape(&g.node[6].input[1]), [-1, 4, 0, 0]);
    assert_eq!(shape(&g.node[3].input[1]), [-1]);
    for gone in ["ones", "zeros", "axes"] {
        assert!(g.initializer.iter().all(|t| t.name != gone), "{gone} kept");
    }
}

#[test]
fn conditional_instance_norm_near_misses_are_left_alone() {
    // A norm with its own scale.
    let mut model = conditioned_norm(&["n".into(), 3.into()], 2.0);
    assert_eq!(optimize(&mut model, None), Rewrites::default());
    // One style vector for the whole batch: [K] is not one row per sample.
    let mut model = conditioned_norm(&[3.into()], 1.0);
    assert_eq!(optimize(&mut model, None), Rewrites::default());
    // The normalised tensor is also read elsewhere.
    let mut model = conditioned_norm(&["n".into(), 3.into()], 1.0);
    let normed = model.graph.node[0].output[0].clone();
    let graph = model.graph.mut_or_insert_default();
    graph.node[7].input.push(normed);
    graph.node[7].op_type = "Sum".into();
    assert_eq!(optimize(&mut model, None), Rewrites::default());
}
