use super::graph::infer_manifest;
use super::*;

fn tensor(name: &str, ty: &str, dims: &[Option<i64>]) -> TensorInfo {
    TensorInfo {
        name: name.to_string(),
        element_type: ty.to_string(),
        dims: dims.to_vec(),
    }
}

fn graph(inputs: Vec<TensorInfo>, outputs: Vec<TensorInfo>, last_op: &str) -> GraphSummary {
    let mut g = GraphSummary {
        inputs,
        outputs,
        ..Default::default()
    };
    for o in &g.outputs {
        g.producers
            .insert(o.name.clone(), (last_op.to_string(), "x".to_string()));
    }
    g
}

const DYN_NCHW: [Option<i64>; 4] = [None, Some(3), None, None];

#[test]
fn cyclegan_style_graph_infers_signed_range_and_any_size() {
    let g = graph(
        vec![tensor("real_A", "FLOAT", &DYN_NCHW)],
        vec![tensor("fake_B", "FLOAT", &DYN_NCHW)],
        "Tanh",
    );
    let m = infer_manifest(&g).unwrap();
    assert_eq!((m.input.as_str(), m.output.as_str()), ("real_A", "fake_B"));
    assert_eq!(m.layout, Layout::Nchw);
    assert_eq!(m.input_range, ValueRange::Signed);
    assert_eq!(m.size, SizeRule::Multiple(1));
    assert_eq!(m.max_batch, None);
    assert_eq!(m.conditioning, None);
}

#[test]
fn fixed_shape_graph_infers_fixed_size_and_batch() {
    let dims = [Some(1), Some(224), Some(224), Some(3)];
    let g = graph(
        vec![tensor("img", "FLOAT16", &dims)],
        vec![tensor("out", "FLOAT16", &dims)],
        "Sigmoid",
    );
    let m = infer_manifest(&g).unwrap();
    assert_eq!(m.layout, Layout::Nhwc);
    assert_eq!(m.element_type, ElementType::F16);
    assert_eq!(m.output_range, ValueRange::Unit);
    assert_eq!(
        m.size,
        SizeRule::Fixed {
            width: 224,
            height: 224
        }
    );
    assert_eq!(m.max_batch, Some(1));
}

#[test]
fn conditioning_vector_is_found() {
    let g = graph(
        vec![
            tensor("x", "FLOAT", &DYN_NCHW),
            tensor("style", "FLOAT", &[None, Some(8)]),
        ],
        vec![tensor("y", "FLOAT", &DYN_NCHW)],
        "Conv",
    );
    let m = infer_manifest(&g).unwrap();
    assert_eq!(m.input_range, ValueRange::Byte);
    assert_eq!(
        m.conditioning,
        Some(Conditioning {
            input: "style".into(),
            length: 8,
            labels: vec![]
        })
    );
    assert_eq!(m.style_count(), 8);
}

#[test]
fn non_image_graphs_are_refused_with_reasons() {
    let g = graph(
        vec![tensor("x", "INT32", &DYN_NCHW)],
        vec![tensor("y", "INT32", &DYN_NCHW)],
        "Identity",
    );
    assert_eq!(
        infer_manifest(&g).unwrap_err(),
        "input 'x' has element type int32; rsstyle supports float32, float16 and uint8 images"
    );
    let g = graph(
        vec![
            tensor("x", "FLOAT", &DYN_NCHW),
            tensor("mask", "INT64", &[Some(4)]),
        ],
        vec![tensor("y", "FLOAT", &DYN_NCHW)],
        "Conv",
    );
    assert_eq!(
        infer_manifest(&g).unwrap_err(),
        "input mask [4] int64 is neither the image nor a conditioning vector ([K] or [N,K] floats)"
    );
    let g = graph(
        vec![tensor("x", "FLOAT", &DYN_NCHW)],
        vec![tensor("logits", "FLOAT", &[Some(1), Some(1000)])],
        "Gemm",
    );
    assert_eq!(
        infer_manifest(&g).unwrap_err(),
        "it has no 4-D image output (outputs: logits [1,1000] float)"
    );
    let g = graph(
        vec![tensor("x", "FLOAT", &DYN_NCHW)],
        vec![tensor("depth", "FLOAT", &[None, Some(1), None, None])],
        "Conv",
    );
    assert_eq!(
        infer_manifest(&g).unwrap_err(),
        "output 'depth' has 1 channel; rsstyle needs a 3-channel (RGB) image"
    );
}

#[test]
fn patches_apply_in_order_and_range_sets_both_sides() {
    let g = graph(
        vec![tensor("x", "FLOAT", &DYN_NCHW)],
        vec![tensor("y", "FLOAT", &DYN_NCHW)],
        "Conv",
    );
    let mut m = infer_manifest(&g).unwrap();
    m.apply(&ManifestPatch::from_json(r#"{"range": "-1..1", "size_multiple": 4}"#).unwrap());
    assert_eq!(
        (m.input_range, m.output_range),
        (ValueRange::Signed, ValueRange::Signed)
    );
    assert_eq!(m.size, SizeRule::Multiple(4));
    m.apply(
        &ManifestPatch::from_json(r#"{"output_range": "0..1", "channel_order": "bgr"}"#).unwrap(),
    );
    assert_eq!(
        (m.input_range, m.output_range),
        (ValueRange::Signed, ValueRange::Unit)
    );
    assert_eq!(m.channel_order, ChannelOrder::Bgr);
}

#[test]
fn patch_json_errors_name_the_field() {
    let err = ManifestPatch::from_json(r#"{"rnage": "0..1"}"#).unwrap_err();
    assert!(err.starts_with("unknown field `rnage`"), "{err}");
    let err = ManifestPatch::from_json(r#"{"layout": "chw"}"#).unwrap_err();
    assert!(err.starts_with("unknown variant `chw`"), "{err}");
}

#[test]
fn labels_must_match_the_conditioning_length() {
    let g = graph(
        vec![
            tensor("x", "FLOAT", &DYN_NCHW),
            tensor("style", "FLOAT", &[Some(1), Some(3)]),
        ],
        vec![tensor("y", "FLOAT", &DYN_NCHW)],
        "Conv",
    );
    let mut m = infer_manifest(&g).unwrap();
    m.apply(&ManifestPatch::from_json(r#"{"conditioning": {"labels": ["a", "b"]}}"#).unwrap());
    assert_eq!(
        m.validate(&g).unwrap_err(),
        "conditioning input 'style' has 3 entries but 2 labels are given"
    );
}

#[test]
fn value_ranges_parse_from_their_names() {
    for r in ValueRange::ALL {
        assert_eq!(r.name().parse::<ValueRange>(), Ok(r));
    }
    assert_eq!(
        "0..100".parse::<ValueRange>().unwrap_err(),
        "unknown value range '0..100': expected 0..255, 0..1 or -1..1"
    );
}

#[test]
fn uint8_images_and_mixed_element_types_are_accepted() {
    // TensorFlow converters: NHWC uint8 in and out.
    let nhwc = [None, None, None, Some(3)];
    let g = graph(
        vec![tensor("image", "UINT8", &nhwc)],
        vec![tensor("stylized", "UINT8", &nhwc)],
        "Cast",
    );
    let m = infer_manifest(&g).unwrap();
    assert_eq!(m.layout, Layout::Nhwc);
    assert_eq!(
        (m.element_type, m.output_element_type),
        (ElementType::U8, ElementType::U8)
    );
    assert_eq!(
        (m.input_range, m.output_range),
        (ValueRange::Byte, ValueRange::Byte)
    );
    // uint8 in, float out of a tanh: each side keeps its own type and range.
    let g = graph(
        vec![tensor("image", "UINT8", &DYN_NCHW)],
        vec![tensor("y", "FLOAT", &DYN_NCHW)],
        "Tanh",
    );
    let mut m = infer_manifest(&g).unwrap();
    assert_eq!(
        (m.element_type, m.output_element_type),
        (ElementType::U8, ElementType::F32)
    );
    assert_eq!(
        (m.input_range, m.output_range),
        (ValueRange::Byte, ValueRange::Signed)
    );
    assert!(
        m.describe()
            .contains("input:         image (NCHW, uint8, RGB, range 0..255)")
    );
    assert!(
        m.describe()
            .contains("output:        y (NCHW, float32, RGB, range -1..1)")
    );
    // A uint8 tensor cannot hold another range.
    m.apply(&ManifestPatch::from_json(r#"{"range": "0..1"}"#).unwrap());
    assert_eq!(
        m.validate(&g).unwrap_err(),
        "the image input is uint8, which holds pixels as 0..255, not 0..1"
    );
}

#[test]
fn min_size_and_fixed_batch_are_described_and_patchable() {
    let g = graph(
        vec![tensor("x", "FLOAT", &[Some(10), Some(3), None, None])],
        vec![tensor("y", "FLOAT", &[Some(10), Some(3), None, None])],
        "Conv",
    );
    let mut m = infer_manifest(&g).unwrap();
    assert_eq!(m.max_batch, Some(10));
    assert_eq!(m.min_size, MinSize::ANY);
    m.apply(&ManifestPatch::from_json(r#"{"min_size": {"width": 12, "height": 9}}"#).unwrap());
    assert_eq!(
        m.min_size,
        MinSize {
            width: 12,
            height: 9
        }
    );
    let text = m.describe();
    assert!(
        text.contains("min size:      12x9 (smaller frames are reflection-padded)"),
        "{text}"
    );
    assert!(
        text.contains("batch:         fixed 10 (smaller batches are padded to 10 frames)"),
        "{text}"
    );
}
