//! On a real photo frame, the element's output equals what ONNX Runtime itself returns for the
//! same model and input, within 1 after rounding to u8.

mod common;

use common::*;
use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;
use ort::session::Session;
use ort::value::TensorRef;

/// Frame `index` of vtest.avi (768×576) as RGB pixels.
fn photo_frame(index: usize) -> (usize, usize, Vec<[u8; 3]>) {
    let (pipeline, sink) = decoder(&asset("vtest.avi"), "RGB");
    pipeline.set_state(gst::State::Playing).unwrap();
    for _ in 0..index {
        sink.pull_sample().unwrap();
    }
    let sample = sink.pull_sample().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    let map = sample.buffer().unwrap().map_readable().unwrap();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let (rgb, _) = unpack(&map, w, h, PixelFormat::Rgb, info.stride()[0] as usize);
    (w, h, rgb)
}

/// What ONNX Runtime returns for `model` on `pixels`, mapped through `range` and rounded.
fn onnxruntime_reference(
    model: &std::path::Path,
    (w, h, pixels): (usize, usize, &[[u8; 3]]),
    range: (f32, f32),
    style: Option<(usize, usize)>,
) -> Vec<[u8; 3]> {
    let runtime = gstrsstyle::engine::ort_library().unwrap();
    let mut session = Session::builder(runtime.environment())
        .unwrap()
        .commit_from_file(model)
        .unwrap();
    let (lo, hi) = range;
    let mut input = vec![0f32; 3 * w * h];
    for (i, p) in pixels.iter().enumerate() {
        for c in 0..3 {
            input[c * w * h + i] = lo + p[c] as f32 / 255.0 * (hi - lo);
        }
    }
    let image = TensorRef::from_array_view(([1usize, 3, h, w], &input[..])).unwrap();
    let one_hot: Vec<f32> = style.map_or(Vec::new(), |(i, k)| {
        (0..k).map(|j| (j == i) as u8 as f32).collect()
    });
    let outputs = match style {
        None => session.run(ort::inputs!["input" => image]).unwrap(),
        Some((_, k)) => {
            let s = TensorRef::from_array_view(([1usize, k], &one_hot[..])).unwrap();
            session
                .run(ort::inputs!["input" => image, "style" => s])
                .unwrap()
        }
    };
    let (_, out) = outputs["output"].try_extract_tensor::<f32>().unwrap();
    (0..w * h)
        .map(|i| {
            std::array::from_fn(|c| {
                ((out[c * w * h + i] - lo) / (hi - lo) * 255.0)
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
        })
        .collect()
}

fn check(model: &std::path::Path, range: (f32, f32), style: Option<(usize, usize)>) {
    let (w, h, pixels) = photo_frame(100);
    let mut props = vec![("model", model.display().to_string().to_value())];
    if let Some((i, _)) = style {
        props.push(("style", (i as u32).to_value()));
    }
    let element = run_frame(&props, PixelFormat::Bgrx, w, h, &pixels);
    let reference = onnxruntime_reference(model, (w, h, &pixels), range, style);
    let diff = max_difference(&element, &reference);
    assert!(diff <= 1, "{}: max difference {diff}", model.display());
    // The network really changed the picture.
    assert!(max_difference(&element, &pixels) > 20);
}

#[test]
fn byte_range_model_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    check(
        &random_convnet(dir.path(), "byte.onnx", None, 0, 1),
        (0.0, 255.0),
        None,
    );
}

#[test]
fn tanh_model_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    check(
        &random_convnet(dir.path(), "tanh.onnx", Some("Tanh"), 0, 2),
        (-1.0, 1.0),
        None,
    );
}

#[test]
fn sigmoid_model_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    check(
        &random_convnet(dir.path(), "sigmoid.onnx", Some("Sigmoid"), 0, 3),
        (0.0, 1.0),
        None,
    );
}

#[test]
fn conditioned_model_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    check(
        &random_convnet(dir.path(), "cond.onnx", None, 4, 4),
        (0.0, 255.0),
        Some((2, 4)),
    );
}

#[test]
fn bundled_model_gives_the_same_bytes_when_frames_travel_as_bytes() {
    // The byte-wrapped graph (conversions inside the model, as on a GPU) against the float
    // path on a real frame through a real trained net.
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/paintings.onnx");
    let (w, h, pixels) = photo_frame(100);
    let run = |io: &str| {
        run_frame(
            &[
                ("model", model.display().to_string().to_value()),
                ("engine-options", format!("frame-io={io}").to_value()),
            ],
            PixelFormat::Bgrx,
            w,
            h,
            &pixels,
        )
    };
    let (bytes, floats) = (run("bytes"), run("float"));
    assert_eq!(max_difference(&bytes, &floats), 0);
    assert!(max_difference(&bytes, &pixels) > 20);
}

#[test]
fn the_project_local_onnx_runtime_is_found_with_its_version() {
    if std::env::var_os("ORT_DYLIB_PATH").is_some() {
        return; // an explicit library takes precedence; nothing to check about discovery
    }
    let runtime = gstrsstyle::engine::ort_library().unwrap();
    assert!(
        runtime
            .path
            .ends_with(".deps/onnxruntime/libonnxruntime.so.1.30.0"),
        "{}",
        runtime.path.display()
    );
    assert_eq!(runtime.version, "1.30.0");
}
