//! Bad input: each case fails the state change with an element error naming the file and the
//! reason, and nothing panics.

mod common;

use std::path::Path;

use common::*;
use gst::prelude::*;

/// Tries to start `videotestsrc ! rsstyle ! fakesink` with `props` and returns the error text
/// posted on the bus.
fn start_error(props: &[(&str, glib::Value)]) -> String {
    init();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("videotestsrc")
        .property("num-buffers", 2)
        .build()
        .unwrap();
    let caps = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::from_str("video/x-raw,format=RGB,width=8,height=8").unwrap(),
        )
        .build()
        .unwrap();
    let style = gst::ElementFactory::make("rsstyle").build().unwrap();
    for (name, value) in props {
        style.set_property_from_value(name, value);
    }
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    pipeline.add_many([&src, &caps, &style, &sink]).unwrap();
    gst::Element::link_many([&src, &caps, &style, &sink]).unwrap();
    let result = pipeline.set_state(gst::State::Paused);
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message on the bus");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(result.is_err(), "state change should fail");
    match msg.view() {
        gst::MessageView::Error(e) => {
            assert_eq!(
                e.src().map(|s| s.name().to_string()),
                Some(style.name().to_string())
            );
            e.error().message().to_string()
        }
        _ => unreachable!(),
    }
}

use std::str::FromStr;

fn model(p: &Path) -> (&'static str, glib::Value) {
    ("model", p.display().to_string().to_value())
}

#[test]
fn no_model_set() {
    assert_eq!(
        start_error(&[]),
        "no model set: set the 'model' property to an ONNX file"
    );
}

#[test]
fn missing_model_file() {
    let msg = start_error(&[model(Path::new("/nonexistent/candy.onnx"))]);
    assert_eq!(msg, "model file '/nonexistent/candy.onnx' does not exist");
}

#[test]
fn empty_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("empty.onnx");
    std::fs::write(&p, b"").unwrap();
    assert_eq!(
        start_error(&[model(&p)]),
        format!("model file '{}' is empty", p.display())
    );
}

#[test]
fn text_file_named_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.onnx");
    std::fs::write(&p, "This is not a model, just notes about one.\n").unwrap();
    let msg = start_error(&[model(&p)]);
    assert!(
        msg.starts_with(&format!("'{}' is not an ONNX model: ", p.display())),
        "{msg}"
    );
}

#[test]
fn directory_as_model() {
    let dir = tempfile::tempdir().unwrap();
    let msg = start_error(&[model(dir.path())]);
    assert!(
        msg.starts_with(&format!(
            "cannot read model file '{}': ",
            dir.path().display()
        )),
        "{msg}"
    );
}

#[test]
fn onnx_model_that_is_not_an_image_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = not_an_image_model(dir.path());
    assert_eq!(
        start_error(&[model(&p)]),
        format!(
            "'{}' is not an image-to-image model: it has no 4-D image input (inputs: features [1,10] float)",
            p.display()
        )
    );
}

#[test]
fn one_channel_model() {
    let dir = tempfile::tempdir().unwrap();
    let p = grey_model(dir.path());
    assert_eq!(
        start_error(&[model(&p)]),
        format!(
            "'{}' is not an image-to-image model: input 'input' has 1 channel; rsstyle needs a 3-channel (RGB) image",
            p.display()
        )
    );
}

#[test]
fn two_image_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let p = two_image_model(dir.path());
    assert_eq!(
        start_error(&[model(&p)]),
        format!(
            "'{}' is not an image-to-image model: it has 2 image inputs (content, style_image); rsstyle runs single-image generators",
            p.display()
        )
    );
}

#[test]
fn unknown_device() {
    let dir = tempfile::tempdir().unwrap();
    let p = identity(dir.path());
    assert_eq!(
        start_error(&[model(&p), ("device", "gpu7".to_value())]),
        "unknown device 'gpu7': expected cpu, cuda, cuda:N, tensorrt, tensorrt:N, auto or grpc://HOST:PORT"
    );
}

#[test]
fn cuda_without_a_usable_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let p = identity(dir.path());
    let msg = start_error(&[model(&p), ("device", "cuda:0".to_value())]);
    assert!(
        msg.starts_with("device cuda:0: the CUDA execution provider cannot be used: "),
        "{msg}"
    );
}

#[test]
fn tensorrt_without_a_usable_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let p = identity(dir.path());
    let cache = dir.path().join("trt");
    let msg = start_error(&[
        model(&p),
        ("device", "tensorrt".to_value()),
        (
            "engine-options",
            format!("trt-cache={}", cache.display()).to_value(),
        ),
    ]);
    assert!(
        msg.starts_with("device tensorrt:0: the TensorRT execution provider cannot be used: "),
        "{msg}"
    );
    // The engine cache folder made for it is not left behind.
    assert!(!cache.exists());
}

#[test]
fn tensorrt_cache_folder_that_cannot_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let p = identity(dir.path());
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let cache = file.join("trt");
    let msg = start_error(&[
        model(&p),
        ("device", "tensorrt:1".to_value()),
        (
            "engine-options",
            format!("trt-cache={}", cache.display()).to_value(),
        ),
    ]);
    assert!(
        msg.starts_with(&format!(
            "engine option trt-cache: cannot make folder '{}': ",
            cache.display()
        )),
        "{msg}"
    );
}

#[test]
fn style_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = conditioned_offsets(dir.path());
    assert_eq!(
        start_error(&[model(&p), ("style", 3u32.to_value())]),
        format!(
            "{}: style 3 is out of range: the model has 3 styles (0..2)",
            p.display()
        )
    );
}

#[test]
fn malformed_sidecar_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let p = identity(dir.path());
    let side = p.with_extension("json");
    std::fs::write(&side, r#"{"range": "0..256"}"#).unwrap();
    let msg = start_error(&[model(&p)]);
    assert!(
        msg.starts_with(&format!(
            "manifest for '{}' is invalid ({}): unknown variant `0..256`",
            p.display(),
            side.display()
        )),
        "{msg}"
    );
}

#[test]
fn auto_device_falls_back_to_the_cpu_with_a_warning() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let p = invert(dir.path(), "0..255");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=16,height=16 ! rsstyle device=auto model={} ! fakesink",
        p.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut warnings = Vec::new();
    let mut finished = false;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(10)) {
        match msg.view() {
            gst::MessageView::Warning(w) => warnings.push(w.error().message().to_string()),
            gst::MessageView::Eos(_) => {
                finished = true;
                break;
            }
            gst::MessageView::Error(e) => panic!("error: {}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(finished, "stream did not finish");
    assert_eq!(
        warnings,
        [
            "device=auto: CUDA is not usable (CUDA execution provider is not enabled in this build.); running on the CPU"
        ]
    );
}
