//! `rsstyle quantize`: int8 models that the element runs close to their float32 originals.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use gstrsstyle::frame::PixelFormat;
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

fn photos(names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| asset(&format!("photos/{n}")))
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

/// The bundled real-time model, int8 where it pays (6 of its 10 convolutions: those with at
/// least 16 channels in and out), calibrated on some photos, styles other photos through the
/// element within 35 dB of the float32 model.
#[test]
fn quantized_lite_model_stays_within_35_db_of_float_through_the_element() {
    let dir = tempfile::tempdir().unwrap();
    let float = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/starry-night-lite.onnx");
    let int8 = dir.path().join("lite-int8.onnx");
    let calibration = photos(&[
        "aero1.jpg",
        "apple.jpg",
        "baboon.jpg",
        "blox.jpg",
        "board.jpg",
    ]);
    let mut args = vec!["--size", "160x120", "--calibrate"];
    let names: Vec<String> = calibration
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    args.extend(names.iter().map(String::as_str));
    let (ok, stdout, stderr) = quantize(&float, &int8, &args);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "wrote {}: 6 of 10 convolutions int8, calibrated with 5 runs (5 images)\n",
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
    let names: Vec<String> = calibration
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    args.extend(names.iter().map(String::as_str));
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
