//! Frames as bytes (`engine-options=frame-io=bytes`): the model's graph is wrapped so that it
//! takes and returns uint8 RGB and converts on the engine's device. On the CPU the wrapped graph
//! must give exactly the bytes of the float path, which converts on the host.

mod common;

use common::*;
use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;

/// RGB pixels of one frame.
type Pixels = Vec<[u8; 3]>;

/// The test frame through `model` with frames as bytes and as floats, with extra `props`;
/// returns both outputs and the input.
fn both_ways(
    model: &std::path::Path,
    props: &[(&str, glib::Value)],
    format: PixelFormat,
    (w, h): (usize, usize),
) -> (Pixels, Pixels, Pixels) {
    let pixels = pattern(w, h);
    let run = |io: &str| {
        let mut all = vec![
            ("model", model.display().to_string().to_value()),
            ("engine-options", format!("frame-io={io}").to_value()),
        ];
        all.extend(props.iter().cloned());
        run_frame(&all, format, w, h, &pixels)
    };
    (run("bytes"), run("float"), pixels)
}

#[test]
fn bytes_equal_floats_for_every_format_with_padding() {
    let dir = tempfile::tempdir().unwrap();
    let model = random_convnet(dir.path(), "net.onnx", None, 0, 11);
    for format in PixelFormat::ALL {
        // 33×17 padded to 40×24 by reflection.
        let (bytes, floats, input) = both_ways(
            &model,
            &[("size-multiple", 8u32.to_value())],
            format,
            (33, 17),
        );
        assert_eq!(bytes, floats, "{format}");
        assert!(
            max_difference(&bytes, &input) > 20,
            "the net changed nothing"
        );
    }
}

#[test]
fn bytes_equal_floats_for_each_range_layout_and_element_type() {
    let dir = tempfile::tempdir().unwrap();
    let models = [
        random_convnet(dir.path(), "tanh.onnx", Some("Tanh"), 0, 12),
        random_convnet(dir.path(), "sigmoid.onnx", Some("Sigmoid"), 0, 13),
        nhwc_swap(dir.path()),
        f16_invert(dir.path()),
    ];
    for model in &models {
        let (bytes, floats, _) = both_ways(model, &[], PixelFormat::Rgbx, (21, 14));
        assert_eq!(bytes, floats, "{}", model.display());
    }
}

#[test]
fn bytes_equal_floats_for_a_bgr_model_and_a_conditioned_model() {
    let dir = tempfile::tempdir().unwrap();
    let bgr = random_convnet(dir.path(), "bgr.onnx", None, 0, 14);
    std::fs::write(bgr.with_extension("json"), r#"{"channel_order": "bgr"}"#).unwrap();
    let (bytes, floats, _) = both_ways(&bgr, &[], PixelFormat::Bgr, (16, 9));
    assert_eq!(bytes, floats);

    let conditioned = random_convnet(dir.path(), "cond.onnx", None, 3, 15);
    let style = |i: u32| {
        both_ways(
            &conditioned,
            &[("style", i.to_value())],
            PixelFormat::Rgb,
            (12, 8),
        )
    };
    let (bytes0, floats0, _) = style(0);
    let (bytes2, floats2, _) = style(2);
    assert_eq!(bytes0, floats0);
    assert_eq!(bytes2, floats2);
    assert_ne!(bytes0, bytes2, "the style input had no effect");
}

#[test]
fn blending_and_resizing_with_bytes_are_within_one_of_floats() {
    let dir = tempfile::tempdir().unwrap();
    // Blending starts from the rounded bytes, resizing from rounded resized pixels: both may
    // round once more than the float path. (A tanh net: its output never leaves the pixel
    // range, which the byte path clamps before blending.)
    let net = random_convnet(dir.path(), "net.onnx", Some("Tanh"), 0, 16);
    for props in [
        vec![("strength", 0.5f64.to_value())],
        vec![("preserve-color", true.to_value())],
        vec![("inference-scale", 0.5f64.to_value())],
    ] {
        let (bytes, floats, _) = both_ways(&net, &props, PixelFormat::Rgba, (40, 24));
        let d = max_difference(&bytes, &floats);
        assert!(d <= 1, "{:?}: {d}", props[0].0);
    }
    let fixed = fixed_identity(dir.path());
    let (bytes, floats, input) = both_ways(&fixed, &[], PixelFormat::Rgb, (13, 11));
    assert!(max_difference(&bytes, &floats) <= 1);
    assert!(
        max_difference(&bytes, &input) > 0,
        "a resize round trip is lossy"
    );
}

#[test]
fn unknown_engine_options_fail_the_start_naming_them() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=8,height=8 \
         ! rsstyle model={} engine-options=frame-io=u8 ! fakesink",
        model.display()
    ))
    .unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    assert_eq!(
        e.error().message(),
        "unknown frame I/O 'u8': expected auto, float or bytes"
    );
}
