//! The element on small models whose output is known exactly, driven through gst_check::Harness.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::prelude::*;
use gstrsstyle::frame::PixelFormat;

fn model_prop(p: &std::path::Path) -> (&'static str, glib::Value) {
    ("model", p.display().to_string().to_value())
}

#[test]
fn identity_is_exact_for_every_format_and_odd_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    for format in PixelFormat::ALL {
        for (w, h) in [(1, 1), (33, 17), (641, 479)] {
            let input = pattern(w, h);
            let out = run_frame(&[model_prop(&model)], format, w, h, &input);
            assert_eq!(out, input, "{format} {w}x{h}");
        }
    }
}

#[test]
fn channel_swap_follows_each_formats_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let model = channel_swap(dir.path());
    for format in PixelFormat::ALL {
        let input = pattern(33, 17);
        let out = run_frame(&[model_prop(&model)], format, 33, 17, &input);
        let expected: Vec<[u8; 3]> = input.iter().map(|p| [p[2], p[1], p[0]]).collect();
        assert_eq!(out, expected, "{format}");
    }
}

#[test]
fn invert_is_exact_in_every_value_range_convention() {
    let dir = tempfile::tempdir().unwrap();
    let input = pattern(64, 48);
    let expected: Vec<[u8; 3]> = input.iter().map(|p| p.map(|v| 255 - v)).collect();
    for range in ["0..255", "0..1", "-1..1"] {
        let model = invert(dir.path(), range);
        let out = run_frame(&[model_prop(&model)], PixelFormat::Rgb, 64, 48, &input);
        assert_eq!(out, expected, "range {range}");
    }
}

#[test]
fn value_range_property_overrides_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    // The model computes 255 - x; read as a 0..1 model it gives 255·(1 − (255 − x/255)) clamped.
    let model = invert(dir.path(), "0..255");
    let input = pattern(8, 8);
    let range = gstrsstyle::element::ValueRangeChoice::Unit;
    let out = run_frame(
        &[model_prop(&model), ("value-range", range.to_value())],
        PixelFormat::Rgb,
        8,
        8,
        &input,
    );
    // 255 - x/255 ≥ 254 for every pixel, far above the top of 0..1: every channel clamps to 255.
    assert!(out.iter().all(|p| *p == [255, 255, 255]));
}

/// Zero-padded 3×3 box blur of one channel, as ONNX's Conv computes it.
fn box_blur(img: &[[u8; 3]], w: usize, h: usize) -> Vec<[u8; 3]> {
    let mut out = vec![[0u8; 3]; w * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut sum = 0.0f32;
                for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (sx, sy) = (x as i64 + dx, y as i64 + dy);
                        if sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h {
                            sum += img[sy as usize * w + sx as usize][c] as f32;
                        }
                    }
                }
                out[y * w + x][c] = (sum / 9.0).round() as u8;
            }
        }
    }
    out
}

#[test]
fn blur_matches_a_direct_convolution() {
    let dir = tempfile::tempdir().unwrap();
    let model = blur(dir.path());
    let input = pattern(33, 17);
    let out = run_frame(&[model_prop(&model)], PixelFormat::Bgrx, 33, 17, &input);
    let expected = box_blur(&input, 33, 17);
    let worst = out
        .iter()
        .zip(&expected)
        .flat_map(|(a, b)| (0..3).map(move |c| (a[c] as i32 - b[c] as i32).abs()))
        .max()
        .unwrap();
    // Sums of nine integers divided by 9 can land on .5 and round either way in float32.
    assert!(worst <= 1, "max difference {worst}");
    let exact = out.iter().zip(&expected).filter(|(a, b)| a == b).count();
    assert!(
        exact * 100 >= out.len() * 99,
        "only {exact} of {} pixels exact",
        out.len()
    );
}

#[test]
fn size_multiple_pads_by_reflection_and_crops_back() {
    let dir = tempfile::tempdir().unwrap();
    let model = blur(dir.path());
    let (w, h) = (13, 7);
    let input = pattern(w, h);
    let out = run_frame(
        &[model_prop(&model), ("size-multiple", 8u32.to_value())],
        PixelFormat::Rgb,
        w,
        h,
        &input,
    );
    // Expected: reflect-pad to 16×8, blur with zero padding, crop to 13×7.
    let (pw, ph) = (16, 8);
    let reflect = |i: usize, n: usize| if i < n { i } else { 2 * (n - 1) - i };
    let padded: Vec<[u8; 3]> = (0..ph)
        .flat_map(|y| {
            let input = &input;
            (0..pw).map(move |x| input[reflect(y, h) * w + reflect(x, w)])
        })
        .collect();
    let blurred = box_blur(&padded, pw, ph);
    let expected: Vec<[u8; 3]> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (y, x)))
        .map(|(y, x)| blurred[y * pw + x])
        .collect();
    let worst = out
        .iter()
        .zip(&expected)
        .flat_map(|(a, b)| (0..3).map(move |c| (a[c] as i32 - b[c] as i32).abs()))
        .max()
        .unwrap();
    assert!(worst <= 1, "max difference {worst}");
    // The right column differs from a zero-padded blur of the unpadded frame: padding happened.
    assert_ne!(out, box_blur(&input, w, h));
}

#[test]
fn padded_input_strides_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let (w, h) = (33, 17);
    let format = PixelFormat::Rgb;
    let mut harness = harness(&[model_prop(&model)], format, w, h);
    let stride = w * 3 + 61;
    let input = pattern(w, h);
    let mut buf = gst::Buffer::from_mut_slice(pack(&input, w, h, format, stride, 0));
    gst_video::VideoMeta::add_full(
        buf.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Rgb,
        w as u32,
        h as u32,
        &[0],
        &[stride as i32],
    )
    .unwrap();
    harness.push(buf).unwrap();
    let out = harness.pull().unwrap();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w as u32, h as u32)
        .build()
        .unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(out.as_ref(), &info).unwrap();
    let (rgb, _) = unpack(
        frame.plane_data(0).unwrap(),
        w,
        h,
        format,
        frame.plane_stride()[0] as usize,
    );
    let expected: Vec<[u8; 3]> = input.iter().map(|p| p.map(|v| 255 - v)).collect();
    assert_eq!(rgb, expected);
}

#[test]
fn conditioning_input_selects_the_style() {
    let dir = tempfile::tempdir().unwrap();
    let model = conditioned_offsets(dir.path());
    let input: Vec<[u8; 3]> = pattern(16, 8)
        .iter()
        .map(|p| p.map(|v| v / 2 + 60))
        .collect();
    for style in 0..3u32 {
        let out = run_frame(
            &[model_prop(&model), ("style", style.to_value())],
            PixelFormat::Rgba,
            16,
            8,
            &input,
        );
        let off = STYLE_OFFSETS[style as usize];
        let expected: Vec<[u8; 3]> = input
            .iter()
            .map(|p| std::array::from_fn(|c| (p[c] as f32 + off[c]).clamp(0.0, 255.0) as u8))
            .collect();
        assert_eq!(out, expected, "style {style}");
    }
}

#[test]
fn strength_blends_with_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let input = pattern(20, 10);
    let half = run_frame(
        &[model_prop(&model), ("strength", 0.5f64.to_value())],
        PixelFormat::Rgb,
        20,
        10,
        &input,
    );
    // 0.5·(255 − x) + 0.5·x = 127.5, rounded away from zero.
    assert!(half.iter().all(|p| *p == [128, 128, 128]));
    let none = run_frame(
        &[model_prop(&model), ("strength", 0.0f64.to_value())],
        PixelFormat::Rgb,
        20,
        10,
        &input,
    );
    assert_eq!(none, input);
    let quarter = run_frame(
        &[model_prop(&model), ("strength", 0.25f64.to_value())],
        PixelFormat::Rgb,
        20,
        10,
        &input,
    );
    let expected: Vec<[u8; 3]> = input
        .iter()
        .map(|p| p.map(|v| (0.25 * (255.0 - v as f32) + 0.75 * v as f32).round() as u8))
        .collect();
    assert_eq!(quarter, expected);
}

#[test]
fn timestamps_and_frame_count_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    let mut h = harness(&[model_prop(&model)], PixelFormat::Rgbx, 8, 8);
    let frame = pack(&pattern(8, 8), 8, 8, PixelFormat::Rgbx, 32, 0);
    for i in 0..5u64 {
        let mut buf = gst::Buffer::from_mut_slice(frame.clone());
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(33 * i));
        b.set_duration(gst::ClockTime::from_mseconds(33));
        h.push(buf).unwrap();
    }
    for i in 0..5u64 {
        let out = h.pull().unwrap();
        assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(33 * i)));
        assert_eq!(out.duration(), Some(gst::ClockTime::from_mseconds(33)));
    }
    assert_eq!(h.buffers_in_queue(), 0);
}

#[test]
fn nhwc_models_get_interleaved_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let model = nhwc_swap(dir.path());
    let input = pattern(17, 9);
    let out = run_frame(&[model_prop(&model)], PixelFormat::Bgra, 17, 9, &input);
    let expected: Vec<[u8; 3]> = input.iter().map(|p| [p[2], p[1], p[0]]).collect();
    assert_eq!(out, expected);
}

#[test]
fn float16_models_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = f16_invert(dir.path());
    let input = pattern(31, 7);
    let out = run_frame(&[model_prop(&model)], PixelFormat::Rgb, 31, 7, &input);
    let expected: Vec<[u8; 3]> = input.iter().map(|p| p.map(|v| 255 - v)).collect();
    assert_eq!(out, expected);
}

#[test]
fn fixed_size_models_get_resized_frames() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixed_identity(dir.path());
    // A uniform frame survives resizing to 8×8 and back exactly.
    let input = vec![[10u8, 200, 30]; 40 * 30];
    let out = run_frame(&[model_prop(&model)], PixelFormat::Rgb, 40, 30, &input);
    assert_eq!(out, input);
    // A left/right split keeps its halves (blurred only near the seam).
    let split: Vec<[u8; 3]> = (0..30)
        .flat_map(|_| {
            (0..40).map(|x| {
                if x < 20 {
                    [0u8, 0, 0]
                } else {
                    [255u8, 255, 255]
                }
            })
        })
        .collect();
    let out = run_frame(&[model_prop(&model)], PixelFormat::Rgb, 40, 30, &split);
    for y in 0..30 {
        assert_eq!(out[y * 40 + 2], [0, 0, 0]);
        assert_eq!(out[y * 40 + 37], [255, 255, 255]);
        assert!(
            out[y * 40 + 19][0] > 0 && out[y * 40 + 19][0] < 255,
            "seam not interpolated"
        );
    }
}

#[test]
fn sidecar_manifest_sets_the_channel_order() {
    let dir = tempfile::tempdir().unwrap();
    let model = zero_first_channel(dir.path());
    let input: Vec<[u8; 3]> = vec![[11, 22, 33]; 4 * 4];
    let rgb = run_frame(&[model_prop(&model)], PixelFormat::Rgb, 4, 4, &input);
    assert!(rgb.iter().all(|p| *p == [0, 22, 33]));
    // model.json beside the model is picked up by default.
    std::fs::write(model.with_extension("json"), r#"{"channel_order": "bgr"}"#).unwrap();
    let bgr = run_frame(&[model_prop(&model)], PixelFormat::Rgb, 4, 4, &input);
    assert!(bgr.iter().all(|p| *p == [11, 22, 0]));
    // An explicit manifest property wins over the sidecar.
    let explicit = dir.path().join("explicit.json");
    std::fs::write(&explicit, r#"{"channel_order": "rgb"}"#).unwrap();
    let back = run_frame(
        &[
            model_prop(&model),
            ("manifest", explicit.display().to_string().to_value()),
        ],
        PixelFormat::Rgb,
        4,
        4,
        &input,
    );
    assert!(back.iter().all(|p| *p == [0, 22, 33]));
}

#[test]
fn tanh_output_implies_the_signed_range() {
    let dir = tempfile::tempdir().unwrap();
    let model = tanh(dir.path());
    let input = pattern(16, 16);
    let out = run_frame(&[model_prop(&model)], PixelFormat::Rgb, 16, 16, &input);
    let expected: Vec<[u8; 3]> = input
        .iter()
        .map(|p| p.map(|v| (((v as f32 / 255.0 * 2.0 - 1.0).tanh() + 1.0) * 127.5).round() as u8))
        .collect();
    assert_eq!(out, expected);
}

#[test]
fn engine_option_profile_records_onnx_runtime_node_timings() {
    use gstrsstyle::engine::{self, EngineOptions};
    use gstrsstyle::model::ManifestPatch;
    let dir = tempfile::tempdir().unwrap();
    let model = random_convnet(dir.path(), "net.onnx", None, 0, 3);
    let open = |spec: &str| {
        let mut options = EngineOptions {
            threads: 1,
            ..EngineOptions::default()
        };
        options.apply(spec).unwrap();
        engine::open(
            &model.display().to_string(),
            None,
            &ManifestPatch::default(),
            &options,
        )
    };

    let missing = open("profile=/nonexistent/folder/prof").err().unwrap();
    assert_eq!(
        missing.to_string(),
        "engine option profile: folder '/nonexistent/folder' does not exist"
    );

    let prefix = dir.path().join("prof");
    let (mut engine, _) = open(&format!("profile={}", prefix.display())).unwrap();
    let description = engine.device_description().to_string();
    let named = format!(
        ", profiling to {}-{}-",
        prefix.display(),
        std::process::id()
    );
    assert!(
        description.contains(&named) && description.ends_with("_*.json"),
        "{description}"
    );
    let input = vec![0.5f32; 3 * 8 * 8];
    for _ in 0..3 {
        let mut shape = None;
        engine
            .infer(&input, [1, 3, 8, 8], None, &mut |s, _| shape = Some(s))
            .unwrap();
        assert_eq!(shape, Some([1, 3, 8, 8]));
    }
    drop(engine);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("prof-")
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let events: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let runs = events.iter().filter(|e| e["name"] == "model_run").count();
    assert_eq!(runs, 3);
    let convs = events
        .iter()
        .filter(|e| e["cat"] == "Node" && e["args"]["op_name"] == "Conv")
        .filter(|e| e["name"].as_str().unwrap().ends_with("_kernel_time"))
        .count();
    assert_eq!(convs, 2 * 3, "two Conv nodes a run");

    // The summary script leaves out two warm-up runs and attributes the rest by operator.
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/ort_profile_summary.py"
        ))
        .arg("--json")
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary[0]["runs"], 1);
    let ops: Vec<&str> = summary[0]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert!(ops.contains(&"Conv"), "{ops:?}");
    let conv = summary[0]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op"] == "Conv")
        .unwrap();
    assert_eq!(conv["nodes_per_run"], 2.0);
}

#[test]
fn style_weights_mix_the_styles_of_a_conditioned_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = conditioned_offsets(dir.path());
    let input: Vec<[u8; 3]> = pattern(16, 8)
        .iter()
        .map(|p| p.map(|v| v / 2 + 60))
        .collect();
    let mixed = |weights: [f32; 3]| -> Vec<[u8; 3]> {
        input
            .iter()
            .map(|p| {
                std::array::from_fn(|c| {
                    let off: f32 = (0..3).map(|s| weights[s] * STYLE_OFFSETS[s][c]).sum();
                    (p[c] as f32 + off).round().clamp(0.0, 255.0) as u8
                })
            })
            .collect()
    };
    for (spec, weights) in [
        // By label, normalised to sum 1.
        ("warm:1,blue:1", [0.5, 0.0, 0.5]),
        // By index and label mixed; unnamed styles weigh 0.
        ("1:0.25, blue:0.75", [0.0, 0.25, 0.75]),
        // One weight per style, in order.
        ("0.2,0.3,0.5", [0.2, 0.3, 0.5]),
    ] {
        let out = run_frame(
            &[model_prop(&model), ("style-weights", spec.to_value())],
            PixelFormat::Rgbx,
            16,
            8,
            &input,
        );
        let expected = mixed(weights);
        let worst = out
            .iter()
            .zip(&expected)
            .flat_map(|(a, b)| (0..3).map(move |c| (a[c] as i32 - b[c] as i32).abs()))
            .max()
            .unwrap();
        assert!(worst <= 1, "{spec}: differs by {worst}");
    }
}

#[test]
fn style_weights_for_a_single_style_model_fail_the_start() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=16,height=8 \
         ! rsstyle model={} style-weights=1,1 ! fakesink",
        model.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).ok();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("an error");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(e) = msg.view() else {
        panic!("expected an error, got {msg:?}")
    };
    assert!(
        e.error()
            .to_string()
            .contains("style-weights '1,1': style-weights needs a conditioned multi-style model"),
        "{}",
        e.error()
    );
}
