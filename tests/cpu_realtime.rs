//! CPU speed-ups that must not change what the element computes (much): `rsstyle quantize`'s
//! int8 models against their float32 originals, and the load-time rewrite of conditional
//! instance norms against ONNX Runtime on the plain graph.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use gstrsstyle::engine::{self, EngineOptions};
use gstrsstyle::frame::PixelFormat;
use gstrsstyle::model::ManifestPatch;
use gstrsstyle::onnx::{Attr, Dim, Elem, GraphBuilder};
use onnx_protobuf::Message;

/// Peak signal-to-noise ratio of `b` against `a` (dB, 8-bit channels).
fn psnr(a: &[[u8; 3]], b: &[[u8; 3]]) -> f64 {
    let n = (a.len() * 3) as f64;
    let mse: f64 = a
        .iter()
        .zip(b)
        .flat_map(|(p, q)| (0..3).map(move |c| (p[c] as f64 - q[c] as f64).powi(2)))
        .sum::<f64>()
        / n;
    10.0 * (255.0f64.powi(2) / mse.max(1e-12)).log10()
}

/// A sample photo scaled to `width`×`height`, as RGB pixels.
fn photo(name: &str, width: u32, height: u32) -> Vec<[u8; 3]> {
    let img = image::open(asset(&format!("photos/{name}")))
        .unwrap()
        .to_rgb8();
    image::imageops::resize(&img, width, height, image::imageops::FilterType::Triangle)
        .pixels()
        .map(|p| p.0)
        .collect()
}

/// Runs `rsstyle quantize MODEL -o OUT ARGS…`; returns (success, stdout, stderr).
fn quantize(model: &Path, out: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(rsstyle_bin())
        .arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ops(model: &Path) -> Vec<String> {
    let m = onnx_protobuf::ModelProto::parse_from_bytes(&std::fs::read(model).unwrap()).unwrap();
    m.graph.node.iter().map(|n| n.op_type.clone()).collect()
}

/// The sample photos' paths, as command-line arguments.
fn photos(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| asset(&format!("photos/{n}")).display().to_string())
        .collect()
}

fn style(
    model: &Path,
    extra: &[(&str, glib::Value)],
    w: usize,
    h: usize,
    px: &[[u8; 3]],
) -> Vec<[u8; 3]> {
    let mut props = vec![("model", model.display().to_string().into())];
    props.extend(extra.iter().cloned());
    run_frame(&props, PixelFormat::Rgbx, w, h, px)
}

/// The bundled real-time model (8 styles: calibrated with each), int8 where it pays (6 of its 10 convolutions: those with at
/// least 16 channels in and out), calibrated on some photos, styles other photos through the
/// element within 35 dB of the float32 model.
#[test]
fn quantized_lite_model_stays_within_35_db_of_float_through_the_element() {
    let dir = tempfile::tempdir().unwrap();
    let float = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/paintings-lite.onnx");
    let int8 = dir.path().join("lite-int8.onnx");
    let calibration = photos(&[
        "aero1.jpg",
        "apple.jpg",
        "baboon.jpg",
        "blox.jpg",
        "board.jpg",
    ]);
    let mut args = vec!["--size", "160x120", "--calibrate"];
    args.extend(calibration.iter().map(String::as_str));
    let (ok, stdout, stderr) = quantize(&float, &int8, &args);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "wrote {}: 6 of 10 convolutions int8, calibrated with 40 runs (5 images)\n",
            int8.display()
        )
    );
    let ops = ops(&int8);
    assert_eq!(ops.iter().filter(|o| *o == "Conv").count(), 10);
    // One input quantization per convolution except where two share an input (none here),
    // and one output quantization each.
    assert_eq!(ops.iter().filter(|o| *o == "QuantizeLinear").count(), 12);
    let (w, h) = (160, 120);
    for name in ["building.jpg", "butterfly.jpg", "home.jpg"] {
        let px = photo(name, w as u32, h as u32);
        let f = style(&float, &[], w, h, &px);
        let q = style(&int8, &[], w, h, &px);
        let db = psnr(&f, &q);
        eprintln!("{name}: int8 {db:.2} dB from float32");
        assert!(db >= 35.0, "{name}: {db:.2} dB");
        assert!(
            max_difference(&f, &q) > 0,
            "{name}: the int8 model is not in use"
        );
    }
}

/// A conditioned model is calibrated with each of its styles, and its int8 copy keeps them
/// apart: every style stays within 30 dB of its float32 output.
#[test]
fn conditioned_model_is_calibrated_on_every_style() {
    let dir = tempfile::tempdir().unwrap();
    let float = random_convnet(dir.path(), "cond.onnx", None, 3, 7);
    let int8 = dir.path().join("cond-int8.onnx");
    let calibration = photos(&["aero3.jpg", "orange.jpg", "stuff.jpg"]);
    let mut args = vec!["--size", "64x48", "--min-channels", "1", "--calibrate"];
    args.extend(calibration.iter().map(String::as_str));
    let (ok, stdout, stderr) = quantize(&float, &int8, &args);
    assert!(ok, "{stderr}");
    assert!(
        stdout.ends_with("2 of 2 convolutions int8, calibrated with 9 runs (3 images)\n"),
        "{stdout}"
    );
    let (w, h) = (64, 48);
    let px = photo("squirrel_cls.jpg", w as u32, h as u32);
    let mut outputs = Vec::new();
    for s in 0..3u32 {
        let f = style(&float, &[("style", s.into())], w, h, &px);
        let q = style(&int8, &[("style", s.into())], w, h, &px);
        let db = psnr(&f, &q);
        eprintln!("style {s}: int8 {db:.2} dB from float32");
        assert!(db >= 30.0, "style {s}: {db:.2} dB");
        outputs.push(q);
    }
    assert!(max_difference(&outputs[0], &outputs[1]) > 0);
    assert!(max_difference(&outputs[1], &outputs[2]) > 0);
}

#[test]
fn quantize_refuses_what_it_cannot_do_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let calib = asset("photos/apple.jpg").display().to_string();
    let out = dir.path().join("out.onnx");

    let no_convs = identity(dir.path());
    let (ok, _, stderr) = quantize(&no_convs, &out, &["--calibrate", &calib]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!(
            "rsstyle: {}: no convolution has constant float32 weights and at least 16 input and output channels\n",
            no_convs.display()
        )
    );

    let half = f16_invert(dir.path());
    let (ok, _, stderr) = quantize(&half, &out, &["--calibrate", &calib]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!(
            "rsstyle: {} is a float16 model; quantize takes a float32 model\n",
            half.display()
        )
    );

    let net = random_convnet(dir.path(), "net.onnx", None, 0, 1);
    let (ok, _, stderr) = quantize(
        &net,
        &out,
        &["--min-channels", "1", "--calibrate", "/nonexistent"],
    );
    assert!(!ok);
    assert_eq!(
        stderr,
        "rsstyle: image folder /nonexistent does not exist\n"
    );
    assert!(!out.exists(), "nothing is written on failure");

    std::fs::write(&out, b"keep").unwrap();
    let (ok, _, stderr) = quantize(&net, &out, &["--min-channels", "1", "--calibrate", &calib]);
    assert!(!ok);
    assert_eq!(
        stderr,
        format!(
            "rsstyle: {} exists; pass --force to replace it\n",
            out.display()
        )
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");

    let (ok, _, stderr) = quantize(
        &net,
        &out,
        &[
            "--min-channels",
            "1",
            "--weight-bits",
            "4",
            "--force",
            "--calibrate",
            &calib,
        ],
    );
    assert!(!ok);
    assert_eq!(stderr, "rsstyle: weight bits must be 7 or 8, not 4\n");
}

/// input → Conv 3×3 3→4 → conditional instance norm over 3 styles (instance norm with scale
/// 1 and shift 0, then `× Unsqueeze(style · A)` and `+ Unsqueeze(style · B)`, as the exporter
/// writes multi-style nets) → Relu → Conv 3×3 4→3 → output.
fn conditioned_norm_net(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("cin");
    let dims: [Dim; 4] = ["n".into(), 3.into(), "h".into(), "w".into()];
    let x = b.input("input", Elem::F32, &dims);
    let style = b.input("style", Elem::F32, &["n".into(), 3.into()]);
    let data = |n: usize, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919) % 29) as f32 / 29.0 - 0.5)
            .collect()
    };
    let conv = [
        Attr::Ints("kernel_shape", vec![3, 3]),
        Attr::Ints("pads", vec![1, 1, 1, 1]),
    ];
    let w1 = b.constant_f32("w1", &[4, 3, 3, 3], &data(108, 1));
    let y = b.op("Conv", &[&x, &w1], &conv);
    let ones = b.constant_f32("ones", &[4], &[1.0; 4]);
    let zeros = b.constant_f32("zeros", &[4], &[0.0; 4]);
    let normed = b.op(
        "InstanceNormalization",
        &[&y, &ones, &zeros],
        &[Attr::Float("epsilon", 1e-5)],
    );
    let axes = b.constant_i64("axes", &[2], &[2, 3]);
    let scale_table: Vec<f32> = data(12, 2).iter().map(|v| 1.0 + v).collect();
    let a = b.constant_f32("scale_table", &[3, 4], &scale_table);
    let shift_table = b.constant_f32("shift_table", &[3, 4], &data(12, 3));
    let scale = b.op("MatMul", &[&style, &a], &[]);
    let scale = b.op("Unsqueeze", &[&scale, &axes], &[]);
    let shift = b.op("MatMul", &[&style, &shift_table], &[]);
    let shift = b.op("Unsqueeze", &[&shift, &axes], &[]);
    let y = b.op("Mul", &[&scale, &normed], &[]);
    let y = b.op("Add", &[&y, &shift], &[]);
    let y = b.op("Relu", &[&y], &[]);
    let w2 = b.constant_f32("w2", &[3, 4, 3, 3], &data(108, 4));
    let y = b.op("Conv", &[&y, &w2], &conv);
    b.node("Identity", &[&y], &["output"], &[]);
    b.output("output", Elem::F32, &dims);
    let path = dir.join("cin.onnx");
    b.write(&path).unwrap();
    path
}

/// The rewritten conditional instance norm computes what the plain graph computes, for a
/// batch whose frames have different styles (one-hot and mixed).
#[test]
fn conditional_instance_norm_rewrite_matches_the_plain_graph() {
    let dir = tempfile::tempdir().unwrap();
    let model = conditioned_norm_net(dir.path()).display().to_string();
    let (w, h) = (20, 12);
    let input: Vec<f32> = (0..3 * 3 * w * h)
        .map(|i| ((i * 104_729) % 255) as f32)
        .collect();
    let styles = [0.0, 0.0, 1.0, 0.2, 0.5, 0.3, 0.0, 1.0, 0.0];
    let run = |spec: &str| {
        let mut options = EngineOptions {
            threads: 1,
            ..EngineOptions::default()
        };
        options.apply(spec).unwrap();
        let (mut engine, _) =
            engine::open(&model, None, &ManifestPatch::default(), &options).unwrap();
        let mut out = Vec::new();
        engine
            .infer(&input, [3, 3, h, w], Some(&styles), &mut |_, v| {
                out = v.to_vec()
            })
            .unwrap();
        (engine.device_description().to_string(), out)
    };
    let (rewritten, fast) = run("graph-rewrite=true");
    let (plain, slow) = run("graph-rewrite=false");
    assert!(
        rewritten.contains("graph rewritten: 1 conditional instance norm as one"),
        "{rewritten}"
    );
    assert!(!plain.contains("rewritten"), "{plain}");
    assert_eq!(fast.len(), 3 * 3 * w * h);
    let d = fast
        .iter()
        .zip(&slow)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = slow.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        d <= 1e-5 * scale.max(1.0),
        "differs by {d} (outputs up to {scale})"
    );
    // The three frames got different styles.
    let frame = 3 * w * h;
    assert!(slow[..frame] != slow[frame..2 * frame]);
}
