//! Models and machines from the field: frames smaller than the network takes, batch sizes
//! fixed in the graph, uint8 models, outputs of another size than the input, and CPU affinity.
//! Each case runs the input that used to fail and checks the output's size and values.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;
use gstrsstyle::model::{ManifestPatch, MinSize, Model};
use gstrsstyle::onnx::{Attr, Dim, Elem, GraphBuilder};

fn paintings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/paintings.onnx")
}

fn model_prop(p: &Path) -> (&'static str, glib::Value) {
    ("model", p.display().to_string().to_value())
}

/// Index `i` mirrored into `0..n` without repeating the edge, as ONNX's reflect pad does.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let r = i.rem_euclid(period);
    (if r < n as isize { r } else { period - r }) as usize
}

/// `pixels` (`w`×`h`) mirrored out to `tw`×`th`.
fn mirrored(pixels: &[[u8; 3]], w: usize, h: usize, tw: usize, th: usize) -> Vec<[u8; 3]> {
    (0..th)
        .flat_map(|y| (0..tw).map(move |x| (x, y)))
        .map(|(x, y)| pixels[reflect(y as isize, h) * w + reflect(x as isize, w)])
        .collect()
}

/// The top-left `w`×`h` of a `tw`-wide picture.
fn crop(pixels: &[[u8; 3]], tw: usize, w: usize, h: usize) -> Vec<[u8; 3]> {
    (0..h)
        .flat_map(|y| pixels[y * tw..y * tw + w].iter().copied())
        .collect()
}

fn mean_change(a: &[[u8; 3]], b: &[[u8; 3]]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(p, q)| (0..3).map(move |c| p[c].abs_diff(q[c]) as f64))
        .sum::<f64>()
        / (3 * a.len()) as f64
}

fn nchw(n: Dim) -> Vec<Dim> {
    vec![n, 3.into(), "h".into(), "w".into()]
}

/// Reflection pad of 4, then a 9×9 box filter per channel: the first layer of a Johnson-style
/// generator, which cannot run below 5×5.
fn box9(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("box9");
    let x = b.input("input", Elem::F32, &nchw("n".into()));
    let pads = b.constant_i64("pads", &[8], &[0, 0, 4, 4, 0, 0, 4, 4]);
    let p = b.op("Pad", &[&x, &pads], &[Attr::Str("mode", "reflect".into())]);
    let w = b.constant_f32("w", &[3, 1, 9, 9], &[1.0 / 81.0; 243]);
    b.node("Conv", &[&p, &w], &["output"], &[Attr::Int("group", 3)]);
    b.output("output", Elem::F32, &nchw("n".into()));
    let path = dir.join("box9.onnx");
    b.write(&path).unwrap();
    path
}

/// What `box9` returns for a frame: reflection-padded to at least 5×5 by rsstyle, mirrored
/// by 4 more in the graph, averaged over 9×9, cropped back.
fn box9_reference(pixels: &[[u8; 3]], w: usize, h: usize) -> Vec<[u8; 3]> {
    let (tw, th) = (w.max(5), h.max(5));
    let t = mirrored(pixels, w, h, tw, th);
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| {
            std::array::from_fn(|c| {
                let mut sum = 0.0f64;
                for dy in -4..=4isize {
                    for dx in -4..=4isize {
                        let sy = reflect(y as isize + dy, th);
                        let sx = reflect(x as isize + dx, tw);
                        sum += t[sy * tw + sx][c] as f64;
                    }
                }
                (sum / 81.0).round() as u8
            })
        })
        .collect()
}

#[test]
fn frames_smaller_than_the_network_are_padded_up_to_its_minimum() {
    // The bundled net: reflection pads of 4 around 9×9 convolutions, two stride-2 levels.
    let model = Model::load(&paintings(), None, &ManifestPatch::default()).unwrap();
    let min = model.manifest.min_size;
    assert_eq!(
        min,
        MinSize {
            width: 8,
            height: 8
        }
    );
    let props = [model_prop(&paintings()), ("threads", 1u32.to_value())];
    for (w, h) in [(4, 4), (1, 1), (3, 5), (16, 2), (2, 480)] {
        let input = pattern(w, h);
        let out = run_frame(&props, PixelFormat::Rgb, w, h, &input);
        assert_eq!(out.len(), w * h);
        // The network's output for the frame mirrored out to its minimum (and the size
        // multiple 4), cropped back.
        let (tw, th) = (w.max(8).div_ceil(4) * 4, h.max(8).div_ceil(4) * 4);
        let big = run_frame(
            &props,
            PixelFormat::Rgb,
            tw,
            th,
            &mirrored(&input, w, h, tw, th),
        );
        let expected = crop(&big, tw, w, h);
        assert!(
            max_difference(&out, &expected) <= 1,
            "{w}x{h}: differs from the mirrored frame's output by {}",
            max_difference(&out, &expected)
        );
        assert!(mean_change(&input, &out) > 10.0, "{w}x{h} was not styled");
    }
}

#[test]
fn a_tiny_inference_scale_stops_at_the_minimum() {
    // 64×48 at 0.05 would be 3×2: the network runs at its minimum 8×8 instead, exactly as at
    // 0.125 (the smallest scale that reaches 8 pixels).
    let (w, h) = (64, 48);
    let input = pattern(w, h);
    let styled = |scale: f64| {
        run_frame(
            &[
                model_prop(&paintings()),
                ("threads", 1u32.to_value()),
                ("inference-scale", scale.to_value()),
            ],
            PixelFormat::Rgb,
            w,
            h,
            &input,
        )
    };
    let tiny = styled(0.05);
    assert_eq!(tiny.len(), w * h);
    assert_eq!(tiny, styled(0.125));
    assert!(mean_change(&input, &tiny) > 10.0);
}

#[test]
fn a_models_own_minimum_comes_from_its_graph() {
    let dir = tempfile::tempdir().unwrap();
    let model = box9(dir.path());
    let loaded = Model::load(&model, None, &ManifestPatch::default()).unwrap();
    assert_eq!(
        loaded.manifest.min_size,
        MinSize {
            width: 5,
            height: 5
        }
    );
    for (w, h) in [(1, 1), (3, 5), (16, 2), (2, 9), (4, 4)] {
        let input = pattern(w, h);
        let out = run_frame(&[model_prop(&model)], PixelFormat::Rgb, w, h, &input);
        let expected = box9_reference(&input, w, h);
        assert!(
            max_difference(&out, &expected) <= 1,
            "{w}x{h}: {out:?} vs {expected:?}"
        );
    }
    let text = inspect(&model);
    assert!(
        text.contains("min size:      5x5 (smaller frames are reflection-padded)"),
        "{text}"
    );
}

fn inspect(model: &Path) -> String {
    let out = Command::new(rsstyle_bin())
        .arg("inspect")
        .arg(model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn warnings(bus: &gst::Bus) -> Vec<String> {
    std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
        .map(|m| match m.view() {
            gst::MessageView::Warning(w) => w.error().message().to_string(),
            _ => unreachable!(),
        })
        .collect()
}

/// output = 255 − input, with the batch fixed at 10 as exporters bake their dummy batch in.
fn fixed_batch_invert(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("batch10");
    let x = b.input("input", Elem::F32, &nchw(10.into()));
    let c = b.constant_f32("total", &[1], &[255.0]);
    b.node("Sub", &[&c, &x], &["output"], &[]);
    b.output("output", Elem::F32, &nchw(10.into()));
    let path = dir.join("batch10.onnx");
    b.write(&path).unwrap();
    path
}

#[test]
fn a_batch_fixed_in_the_graph_is_padded_to_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixed_batch_invert(dir.path());
    let text = inspect(&model);
    assert!(
        text.contains("batch:         fixed 10 (smaller batches are padded to 10 frames)"),
        "{text}"
    );
    let (w, h) = (20, 12);
    for batch in [1u32, 4] {
        let (mut harness, bus) = start_rgb(
            &[
                model_prop(&model),
                ("batch-size", batch.to_value()),
                ("batch-timeout", 5_000u32.to_value()),
            ],
            w,
            h,
        );
        let frames: Vec<Vec<[u8; 3]>> = (0..6)
            .map(|i| {
                pattern(w, h)
                    .iter()
                    .map(|p| p.map(|v| v.wrapping_add(i * 30)))
                    .collect()
            })
            .collect();
        for (i, f) in frames.iter().enumerate() {
            harness.push(rgb_buffer(f, w, h, i as u64 * 40)).unwrap();
        }
        assert!(harness.push_event(gst::event::Eos::new()));
        for (i, f) in frames.iter().enumerate() {
            let b = harness.pull().unwrap();
            assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(i as u64 * 40)));
            let expected: Vec<[u8; 3]> = f.iter().map(|p| p.map(|v| 255 - v)).collect();
            assert_eq!(
                rgb_pixels(&b, w, h),
                expected,
                "batch-size {batch}, frame {i}"
            );
        }
        let stats = harness
            .element()
            .unwrap()
            .property::<gst::Structure>("stats");
        assert_eq!(stats.get::<u64>("batch-frames").unwrap(), 6);
        assert_eq!(
            stats.get::<u64>("batches").unwrap(),
            if batch == 1 { 6 } else { 2 }
        );
        assert_eq!(warnings(&bus), Vec::<String>::new());
    }
}

/// A TensorFlow-converter-style model: NHWC, `input_type` in, `output_type` out; it swaps
/// red and blue and inverts, in float32 inside.
fn nhwc_model(dir: &Path, input_type: Elem, output_type: Elem) -> PathBuf {
    let name = format!("nhwc_{input_type:?}_{output_type:?}").to_lowercase();
    let mut b = GraphBuilder::new(&name);
    let dims: Vec<Dim> = vec!["n".into(), "h".into(), "w".into(), 3.into()];
    let x = b.input("image", input_type, &dims);
    let mut y = x.clone();
    if input_type == Elem::U8 {
        y = b.op("Cast", &[&y], &[Attr::Int("to", 1)]);
    }
    let idx = b.constant_i64("bgr", &[3], &[2, 1, 0]);
    y = b.op("Gather", &[&y, &idx], &[Attr::Int("axis", 3)]);
    let c = b.constant_f32("total", &[1], &[255.0]);
    y = b.op("Sub", &[&c, &y], &[]);
    if output_type == Elem::U8 {
        y = b.op("Cast", &[&y], &[Attr::Int("to", 2)]);
    }
    b.node("Identity", &[&y], &["stylized"], &[]);
    b.output("stylized", output_type, &dims);
    let path = dir.join(format!("{name}.onnx"));
    b.write(&path).unwrap();
    path
}

#[test]
fn uint8_models_and_mixed_element_types_run() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (13, 7);
    let input = pattern(w, h);
    let expected: Vec<[u8; 3]> = input
        .iter()
        .map(|p| [255 - p[2], 255 - p[1], 255 - p[0]])
        .collect();
    for (inp, out, types) in [
        (Elem::U8, Elem::U8, "uint8 → uint8"),
        (Elem::U8, Elem::F32, "uint8 → float32"),
        (Elem::F32, Elem::U8, "float32 → uint8"),
    ] {
        let model = nhwc_model(dir.path(), inp, out);
        let text = inspect(&model);
        let name = |e: Elem| if e == Elem::U8 { "uint8" } else { "float32" };
        assert!(
            text.contains(&format!("image (NHWC, {}, RGB, range 0..255)", name(inp))),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "stylized (NHWC, {}, RGB, range 0..255)",
                name(out)
            )),
            "{text}"
        );
        // Float tensors on the host, and the graph wrapped to take and return bytes.
        for io in ["frame-io=float", "frame-io=bytes"] {
            let got = run_frame(
                &[model_prop(&model), ("engine-options", io.to_value())],
                PixelFormat::Bgrx,
                w,
                h,
                &input,
            );
            assert_eq!(got, expected, "{types}, {io}");
        }
    }
}

/// A 3×3 convolution without padding that picks each window's centre: the frame less its
/// one-pixel border.
fn valid_conv(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("valid");
    let x = b.input("input", Elem::F32, &nchw("n".into()));
    let mut k = [0.0f32; 27];
    for c in 0..3 {
        k[c * 9 + 4] = 1.0;
    }
    let w = b.constant_f32("w", &[3, 1, 3, 3], &k);
    b.node("Conv", &[&x, &w], &["output"], &[Attr::Int("group", 3)]);
    b.output("output", Elem::F32, &nchw("n".into()));
    let path = dir.join("valid.onnx");
    b.write(&path).unwrap();
    path
}

/// A ×2 nearest-neighbour upscaler.
fn upscaler(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("up2");
    let x = b.input("input", Elem::F32, &nchw("n".into()));
    let s = b.constant_f32("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    b.node(
        "Resize",
        &[&x, "", &s],
        &["output"],
        &[Attr::Str("mode", "nearest".into())],
    );
    b.output("output", Elem::F32, &nchw("n".into()));
    let path = dir.join("up2.onnx");
    b.write(&path).unwrap();
    path
}

/// A fixed 256×256 model whose 5×5 convolution has no padding: 252×252 out.
fn fixed_shrinking(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("fixed252");
    let x = b.input(
        "input",
        Elem::F32,
        &[1.into(), 3.into(), 256.into(), 256.into()],
    );
    let mut k = [0.0f32; 75];
    for c in 0..3 {
        k[c * 25 + 12] = 1.0;
    }
    let w = b.constant_f32("w", &[3, 1, 5, 5], &k);
    b.node("Conv", &[&x, &w], &["output"], &[Attr::Int("group", 3)]);
    b.output(
        "output",
        Elem::F32,
        &[1.into(), 3.into(), 252.into(), 252.into()],
    );
    let path = dir.join("fixed252.onnx");
    b.write(&path).unwrap();
    path
}

#[test]
fn outputs_of_another_size_are_resized_to_the_frame_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (32, 24);

    // Valid convolution: 30×22 of the frame's interior, resized to 32×24.
    let model = valid_conv(dir.path());
    let (mut harness, bus) = start_rgb(&[model_prop(&model)], w, h);
    let ramp: Vec<[u8; 3]> = (0..h)
        .flat_map(|y| (0..w).map(move |x| [(x * 8) as u8, (y * 10) as u8, 77]))
        .collect();
    for i in 0..3 {
        harness.push(rgb_buffer(&ramp, w, h, i * 40)).unwrap();
    }
    let interior: Vec<f32> = (0..3)
        .flat_map(|c| {
            let ramp = &ramp;
            (1..h - 1).flat_map(move |y| (1..w - 1).map(move |x| ramp[y * w + x][c] as f32))
        })
        .collect();
    let mut resized = vec![0f32; 3 * w * h];
    gstrsstyle::frame::resize_images(
        &interior,
        (h - 2, w - 2),
        &mut resized,
        (h, w),
        gstrsstyle::model::Layout::Nchw,
        1,
    );
    let expected: Vec<[u8; 3]> = (0..w * h)
        .map(|i| std::array::from_fn(|c| resized[c * w * h + i].round() as u8))
        .collect();
    for _ in 0..3 {
        let out = rgb_pixels(&harness.pull().unwrap(), w, h);
        assert!(max_difference(&out, &expected) <= 1);
    }
    let text = "the model returned 30x22 images for 32x24 input; resizing its output to the frame";
    // Once at load (the graph says so at 256×256) and once with the frame's sizes.
    let seen = warnings(&bus);
    assert_eq!(
        seen.iter().filter(|t| t.as_str() == text).count(),
        1,
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|t| t
            == "the model returns 254x254 images for 256x256 input: its output is resized to the frame"),
        "{seen:?}"
    );

    // ×2 upscaler: the 64×48 output halved is the frame again, exactly.
    let model = upscaler(dir.path());
    let (mut harness, bus) = start_rgb(&[model_prop(&model)], w, h);
    let input = pattern(w, h);
    harness.push(rgb_buffer(&input, w, h, 0)).unwrap();
    assert_eq!(rgb_pixels(&harness.pull().unwrap(), w, h), input);
    assert!(
        warnings(&bus).contains(
            &"the model returned 64x48 images for 32x24 input; resizing its output to the frame"
                .to_string()
        )
    );

    // Fixed 256×256 in, 252×252 out: reported at load, and inspect says so.
    let model = fixed_shrinking(dir.path());
    let loaded = Model::load(&model, None, &ManifestPatch::default()).unwrap();
    let note =
        "the model returns 252x252 images for 256x256 input: its output is resized to the frame";
    assert_eq!(loaded.notes, vec![note.to_string()]);
    assert!(inspect(&model).contains(&format!("note:          {note}")));
    let (mut harness, bus) = start_rgb(&[model_prop(&model)], 64, 64);
    let flat = vec![[200u8, 100, 30]; 64 * 64];
    harness.push(rgb_buffer(&flat, 64, 64, 0)).unwrap();
    assert_eq!(rgb_pixels(&harness.pull().unwrap(), 64, 64), flat);
    assert!(warnings(&bus).contains(&note.to_string()));
}

/// `gst-launch-1.0` under `taskset -c 0` with the element's info log; returns the log.
fn launch_on_one_cpu(threads: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let out = Command::new("taskset")
        .args([
            "-c",
            "0",
            "gst-launch-1.0",
            "-q",
            "videotestsrc",
            "num-buffers=2",
            "!",
        ])
        .args(["video/x-raw,format=RGB,width=32,height=24", "!", "rsstyle"])
        .arg(format!("model={}", model.display()))
        .arg(format!("threads={threads}"))
        .args(["!", "fakesink"])
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_DEBUG", "rsstyle:4")
        .env("GST_DEBUG_NO_COLOR", "1")
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .expect("taskset (util-linux) and gst-launch-1.0 run");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    log
}

#[test]
fn threads_zero_means_the_cpus_the_process_may_use() {
    // One CPU allowed: one ONNX Runtime thread, not one per core of the host.
    let log = launch_on_one_cpu(0);
    assert!(
        log.contains(", 1 thread: the CPUs this process may use)"),
        "{log}"
    );
    // An explicit count is kept.
    let log = launch_on_one_cpu(3);
    assert!(log.contains(", 3 threads)"), "{log}");
}

#[test]
fn the_trainers_pools_follow_the_affinity_mask() {
    if std::env::var_os("RSSTYLE_POOLS_CHILD").is_some() {
        // In the child, on one CPU: what candle (and rayon, through the same variable) will
        // size their pools to.
        // SAFETY: the test harness runs this test alone in this process (--exact, one thread).
        let n = unsafe { gstrsstyle::cpu::size_compute_pools(0) };
        assert_eq!(n, 1);
        assert_eq!(candle_core::utils::get_num_threads(), 1);
        assert_eq!(std::env::var("RAYON_NUM_THREADS").unwrap(), "1");
        return;
    }
    let out = Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_trainers_pools_follow_the_affinity_mask",
            "--test-threads=1",
        ])
        .env("RSSTYLE_POOLS_CHILD", "1")
        .env_remove("CANDLE_NUM_THREADS")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("1 passed"), "{log}");
}
