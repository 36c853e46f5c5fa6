//! Multi-style nets (conditional instance norm) and distillation from ONNX teachers: export
//! parity with candle, training runs through the CLI (several styles, ONNX teachers, adding a
//! style to a trained run, exact resume with the stability loss), and Magenta's arbitrary-style
//! network baked into a teacher.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use common::*;
use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;
use gstrsstyle::onnx::{Elem, GraphBuilder};
use gstrsstyle::train::export::{ExportOptions, STYLE_INPUT, onnx_bytes};
use gstrsstyle::train::nets::{Arch, Net, one_hot};
use gstrsstyle::train::params::Params;
use gstrsstyle::train::rng::Rng;

fn model_prop(p: &Path) -> (&'static str, glib::Value) {
    ("model", p.display().to_string().to_value())
}

fn vgg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/vgg16/vgg16.safetensors")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn rsstyle(args: &[String]) -> std::process::Output {
    Command::new(rsstyle_bin()).args(args).output().unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A folder of `n` small synthetic photos.
fn image_folder(dir: &Path, name: &str, n: u32) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..n {
        image::RgbImage::from_fn(48, 40, |x, y| {
            let d = ((x as i32 - 10 - 5 * i as i32).pow(2) + (y as i32 - 20).pow(2)) as f32;
            let disc = if d < 100.0 { 200 } else { 30 };
            image::Rgb([(x * 5) as u8, (y * 6) as u8, disc])
        })
        .save(folder.join(format!("img{i}.png")))
        .unwrap();
    }
    folder
}

/// A style image of two-colour diagonal stripes.
fn stripes(dir: &Path, name: &str, a: [u8; 3], b: [u8; 3]) -> PathBuf {
    let p = dir.join(name);
    image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb(if (x + y) / 4 % 2 == 0 { a } else { b })
    })
    .save(&p)
    .unwrap();
    p
}

/// An NHWC model in range 0..1 computing `scale · x + offset`: a stand-in teacher whose output
/// is known exactly, in another layout and range than the student's.
fn affine_teacher(dir: &Path, name: &str, scale: f32, offset: f32) -> PathBuf {
    let mut b = GraphBuilder::new(name);
    let x = b.input(
        "image",
        Elem::F32,
        &["n".into(), "h".into(), "w".into(), 3.into()],
    );
    let s = b.constant_f32("scale", &[1], &[scale]);
    let o = b.constant_f32("offset", &[1], &[offset]);
    let y = b.op("Mul", &[&x, &s], &[]);
    b.node("Add", &[&y, &o], &["styled"], &[]);
    b.output(
        "styled",
        Elem::F32,
        &["n".into(), "h".into(), "w".into(), 3.into()],
    );
    b.metadata(gstrsstyle::model::METADATA_KEY, r#"{"range": "0..1"}"#);
    let path = dir.join(format!("{name}.onnx"));
    b.write(&path).unwrap();
    path
}

/// Runs a conditioned ONNX model on an NCHW input with style weights, directly.
fn run_conditioned(model: &[u8], input: &Tensor, styles: &Tensor, fp16: bool) -> Vec<f32> {
    use ort::session::Session;
    let runtime = gstrsstyle::engine::ort_library().unwrap();
    let mut session = Session::builder(runtime.environment())
        .unwrap()
        .commit_from_memory(model)
        .unwrap();
    let values = |t: &Tensor| -> (Vec<usize>, Vec<f32>) {
        (
            t.dims().to_vec(),
            t.flatten_all().unwrap().to_vec1().unwrap(),
        )
    };
    let ((xs, xv), (ss, sv)) = (values(input), values(styles));
    if fp16 {
        let h = |v: Vec<f32>| v.into_iter().map(half::f16::from_f32).collect::<Vec<_>>();
        let out = session
            .run(ort::inputs![
                "input" => ort::value::Tensor::from_array((xs, h(xv))).unwrap(),
                STYLE_INPUT => ort::value::Tensor::from_array((ss, h(sv))).unwrap(),
            ])
            .unwrap();
        let (_, v) = out["output"].try_extract_tensor::<half::f16>().unwrap();
        v.iter().map(|x| x.to_f32()).collect()
    } else {
        let out = session
            .run(ort::inputs![
                "input" => ort::value::Tensor::from_array((xs, xv)).unwrap(),
                STYLE_INPUT => ort::value::Tensor::from_array((ss, sv)).unwrap(),
            ])
            .unwrap();
        let (_, v) = out["output"].try_extract_tensor::<f32>().unwrap();
        v.to_vec()
    }
}

/// Pearson correlation of two series.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn mean_abs(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn conditioned_net_exports_what_candle_computes_for_picked_and_mixed_styles() {
    let mut rng = Rng::new(5);
    let arch = Arch::Johnson {
        width: 4,
        blocks: 1,
        output: gstrsstyle::train::nets::Output::Tanh,
    };
    let mut params = Params::default();
    let net = Net::with_styles(arch, 3, "g.", &mut params, &mut rng).unwrap();
    // Distinct scales and shifts per style.
    let perturbed = params
        .tensors()
        .into_iter()
        .map(|(k, t)| {
            let noise = Tensor::randn(0f32, 0.3, t.dims(), &Device::Cpu).unwrap();
            (k, (t + noise).unwrap())
        })
        .collect();
    params.assign(&perturbed).unwrap();
    let x: Vec<f32> = (0..3 * 3 * 16 * 20)
        .map(|_| rng.uniform() * 2.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(x, (3, 3, 16, 20), &Device::Cpu).unwrap();
    // Image 0 in style 2, image 1 in style 0, image 2 a mix.
    let styles = Tensor::new(
        &[[0f32, 0.0, 1.0], [1.0, 0.0, 0.0], [0.25, 0.5, 0.25]],
        &Device::Cpu,
    )
    .unwrap();
    let expected: Vec<f32> = net
        .forward_styled(&x, &styles)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // Styles differ: the same image in two styles gives different outputs.
    let one = x.narrow(0, 0, 1).unwrap();
    let in_style = |s: usize| -> Vec<f32> {
        net.forward_styled(&one, &one_hot(&[s], 3, &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    assert!(max_diff(&in_style(0), &in_style(1)) > 0.05);

    let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let model = onnx_bytes(
        &net,
        &ExportOptions {
            style_labels: labels.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let d = max_diff(&expected, &run_conditioned(&model, &x, &styles, false));
    assert!(d < 1e-4, "float32 export differs from candle by {d}");
    let model16 = onnx_bytes(
        &net,
        &ExportOptions {
            fp16: true,
            style_labels: labels.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let d16 = max_diff(&expected, &run_conditioned(&model16, &x, &styles, true));
    assert!(d16 < 0.05, "float16 export differs from candle by {d16}");

    // The manifest names the styles; a label count that differs is refused.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("multi.onnx");
    std::fs::write(&path, &model).unwrap();
    let loaded =
        gstrsstyle::model::Model::load(&path, None, &gstrsstyle::model::ManifestPatch::default())
            .unwrap();
    let c = loaded.manifest.conditioning.unwrap();
    assert_eq!((c.input.as_str(), c.length), (STYLE_INPUT, 3));
    assert_eq!(c.labels, labels);
    let err = onnx_bytes(
        &net,
        &ExportOptions {
            style_labels: vec!["only".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "1 style labels for a net with 3 styles");
}

/// The trainer options of a tiny run in `out`.
fn tiny_run(out: &Path, content: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = strings(&[
        "train",
        "style",
        "--out",
        &out.display().to_string(),
        "--content",
        &content.display().to_string(),
        "--vgg",
        &vgg().display().to_string(),
        "--width",
        "4",
        "--blocks",
        "1",
        "--size",
        "32",
        "--style-size",
        "32",
        "--batch",
        "2",
        "--lr",
        "0.01",
        "--log-every",
        "2",
        "--sample-every",
        "4",
        "--checkpoint-every",
        "3",
        "--quiet",
    ]);
    args.extend(strings(extra));
    args
}

fn log_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn weights(run: &Path) -> std::collections::HashMap<String, Tensor> {
    candle_core::safetensors::load(run.join("checkpoint/weights.safetensors"), &Device::Cpu)
        .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Two styles distilled from two ONNX teachers (NHWC, range 0..1) into one conditioned net,
/// exported with its labels, picked and mixed in the element; then a third style added by
/// training only its instance-norm parameters.
#[test]
fn multi_style_distillation_from_onnx_teachers_and_adding_a_style() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let content = image_folder(d, "content", 4);
    let (warm, cool) = (
        stripes(d, "warm.png", [230, 120, 20], [120, 40, 10]),
        stripes(d, "cool.png", [20, 120, 230], [10, 40, 120]),
    );
    // Teacher 0 darkens, teacher 1 inverts.
    let (dark, invert) = (
        affine_teacher(d, "dark", 0.5, 0.0),
        affine_teacher(d, "invert", -1.0, 1.0),
    );
    let run = d.join("multi");
    let mut args = tiny_run(
        &run,
        &content,
        &[
            "--style",
            &warm.display().to_string(),
            &cool.display().to_string(),
            "--style-labels",
            "dark,invert",
            "--teacher",
            &dark.display().to_string(),
            &invert.display().to_string(),
            "--steps",
            "60",
        ],
    );
    let i = args.iter().position(|a| a == "--sample-every").unwrap();
    args[i + 1] = "30".into();
    let text = ok(&rsstyle(&args));
    assert!(text.contains("done: 60 steps"), "{text}");
    let records = log_records(&run);
    let psnr: Vec<f64> = records
        .iter()
        .filter_map(|r| r["psnr_vs_teacher"].as_f64())
        .collect();
    assert_eq!(psnr.len(), 2, "{records:?}");
    assert!(
        psnr[1] > psnr[0] && psnr[1] > 14.0,
        "the student approaches its teachers: {psnr:?}"
    );
    for r in records.iter().filter(|r| r.get("blob_area_pct").is_some()) {
        assert!(r["edge_correlation"].as_f64().unwrap().abs() <= 1.0);
    }

    let model = d.join("multi.onnx");
    ok(&rsstyle(&strings(&[
        "export",
        &run.display().to_string(),
        "-o",
        &model.display().to_string(),
    ])));
    let inspect = ok(&rsstyle(&strings(&[
        "inspect",
        &model.display().to_string(),
    ])));
    assert!(
        inspect.contains("conditioning:  style (2 styles)")
            && inspect.contains("style 0: dark")
            && inspect.contains("style 1: invert"),
        "{inspect}"
    );
    // In the element, on a frame like the training images: style 0 (darken) keeps the
    // picture's light and dark, style 1 (invert) reverses them, and a 50/50 mix lies between.
    let frame: Vec<[u8; 3]> = (0..32 * 24i32)
        .map(|i| {
            let (x, y) = (i % 32, i / 32);
            let disc = if (x - 14).pow(2) + (y - 12).pow(2) < 60 {
                200
            } else {
                30
            };
            [(x * 7) as u8, (y * 9) as u8, disc]
        })
        .collect();
    let styled = |model: &Path, prop: (&str, glib::Value)| -> Vec<f64> {
        run_frame(&[model_prop(model), prop], PixelFormat::Rgb, 32, 24, &frame)
            .iter()
            .flat_map(|p| p.map(|v| v as f64))
            .collect()
    };
    let input: Vec<f64> = frame.iter().flat_map(|p| p.map(|v| v as f64)).collect();
    let (s0, s1) = (
        styled(&model, ("style", 0u32.to_value())),
        styled(&model, ("style", 1u32.to_value())),
    );
    let (c0, c1) = (correlation(&input, &s0), correlation(&input, &s1));
    assert!(c0 > 0.3 && c1 < -0.3, "darken {c0}, invert {c1}");
    let mixed = styled(&model, ("style-weights", "dark:1,invert:1".to_value()));
    let gap = mean_abs(&s0, &s1);
    assert!(
        mean_abs(&mixed, &s0) < gap && mean_abs(&mixed, &s1) < gap,
        "the mix lies between the styles"
    );

    // A third style on top: only its norm parameters train.
    let grey = affine_teacher(d, "grey", 0.0, 0.5);
    let added = d.join("added");
    ok(&rsstyle(&tiny_run(
        &added,
        &content,
        &[
            "--style",
            &stripes(d, "grey.png", [128; 3], [120; 3])
                .display()
                .to_string(),
            "--style-labels",
            "grey",
            "--teacher",
            &grey.display().to_string(),
            "--base",
            &run.display().to_string(),
            "--steps",
            "20",
        ],
    )));
    let (before, after) = (weights(&run), weights(&added));
    let mut new_params = 0;
    for (name, t) in &after {
        match before.get(name) {
            Some(b) => assert_eq!(values(b), values(t), "{name} changed"),
            None => {
                // A new style's parameter: started from the base styles' mean, then trained.
                let rest = name
                    .strip_prefix("net.style2.")
                    .unwrap_or_else(|| panic!("unexpected new parameter {name}"));
                let (a, b) = (
                    values(&before[&format!("net.style0.{rest}")]),
                    values(&before[&format!("net.style1.{rest}")]),
                );
                let mean: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect();
                assert!(max_diff(&mean, &values(t)) > 1e-4, "{name} did not train");
                new_params += 1;
            }
        }
    }
    // A scale and a shift for every affine norm of the net.
    assert_eq!(
        new_params,
        before
            .keys()
            .filter(|k| k.starts_with("net.style0."))
            .count()
    );
    let model3 = d.join("three.onnx");
    ok(&rsstyle(&strings(&[
        "export",
        &added.display().to_string(),
        "-o",
        &model3.display().to_string(),
    ])));
    let inspect = ok(&rsstyle(&strings(&[
        "inspect",
        &model3.display().to_string(),
    ])));
    assert!(
        inspect.contains("(3 styles)") && inspect.contains("style 2: grey"),
        "{inspect}"
    );
    // The base's styles are untouched in the new model.
    assert_eq!(styled(&model3, ("style", 1u32.to_value())), s1);
}

/// A two-style run from the perceptual loss with the stability loss on, interrupted and
/// resumed, ends with the same weights as an uninterrupted one.
#[test]
fn multi_style_run_with_stability_loss_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let content = image_folder(d, "content", 4);
    let a = stripes(d, "a.png", [230, 200, 20], [20, 40, 160]);
    let b = stripes(d, "b.png", [30, 200, 30], [200, 30, 200]);
    let extra = |steps: &str| -> Vec<String> {
        strings(&[
            "--style",
            &a.display().to_string(),
            &b.display().to_string(),
            "--stability-weight",
            "10",
            "--min-crop-std",
            "5",
            "--zoom",
            "1.2",
            "--steps",
            steps,
        ])
    };
    let whole = d.join("whole");
    let mut args = tiny_run(&whole, &content, &[]);
    args.extend(extra("6"));
    let text = ok(&rsstyle(&args));
    assert!(text.contains("done: 6 steps"), "{text}");
    let records = log_records(&whole);
    assert!(
        records
            .iter()
            .all(|r| r["loss_stability"].as_f64().is_some_and(|v| v > 0.0)),
        "{records:?}"
    );
    let parts = d.join("parts");
    let mut args = tiny_run(&parts, &content, &[]);
    args.extend(extra("3"));
    ok(&rsstyle(&args));
    ok(&rsstyle(&strings(&[
        "train",
        "style",
        "--out",
        &parts.display().to_string(),
        "--resume",
        "--steps",
        "6",
        "--quiet",
    ])));
    let (w1, w2) = (weights(&whole), weights(&parts));
    assert_eq!(w1.len(), w2.len());
    for (name, t) in &w1 {
        assert_eq!(values(t), values(&w2[name]), "{name}");
    }
    // Two styles: a scale and shift per style for every affine norm.
    assert!(w1.contains_key("net.style1.l2.weight"), "{:?}", w1.keys());

    // Fine-tuning: --init starts a new run from these weights. With a learning rate of 0 they
    // stay exactly as they were; with one they move.
    let tune = |name: &str, lr: &str, width: &str| {
        let mut args = tiny_run(&d.join(name), &content, &[]);
        args.extend(extra("1"));
        args.extend(strings(&["--init", &whole.display().to_string()]));
        let at = |flag: &str| args.iter().position(|a| a == flag).unwrap() + 1;
        let (l, w) = (at("--lr"), at("--width"));
        args[l] = lr.into();
        args[w] = width.into();
        rsstyle(&args)
    };
    ok(&tune("frozen", "0", "4"));
    let frozen = weights(&d.join("frozen"));
    for (name, t) in &w1 {
        assert_eq!(values(t), values(&frozen[name]), "{name}");
    }
    ok(&tune("tuned", "0.01", "4"));
    let tuned = weights(&d.join("tuned"));
    assert!(
        w1.iter().any(|(name, t)| values(t) != values(&tuned[name])),
        "a step at lr 0.01 changed nothing"
    );
    let wrong = tune("wrong", "0.01", "8");
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains(
            "its net (Johnson transformer net, width 4, 1 residual blocks) differs from \
             --width/--blocks (Johnson transformer net, width 8, 1 residual blocks)"
        ),
        "{err}"
    );
}

/// A tiny two-input graph shaped like Magenta's transform network: image `[1, 8, 8, 3]` and
/// vector `[1, 1, 1, 3]`, output = image + vector.
fn transform_like() -> Vec<u8> {
    let mut b = GraphBuilder::new("transform");
    b.input(
        "content_image",
        Elem::F32,
        &[1.into(), 8.into(), 8.into(), 3.into()],
    );
    b.input(
        "style_vector",
        Elem::F32,
        &[1.into(), 1.into(), 1.into(), 3.into()],
    );
    b.node("Add", &["content_image", "style_vector"], &["out"], &[]);
    b.output("out", Elem::F32, &[1.into(), 8.into(), 8.into(), 3.into()]);
    b.to_bytes()
}

#[test]
fn baking_a_style_vector_gives_a_model_of_any_size_with_its_manifest() {
    let baked = gstrsstyle::train::teacher::bake_transform(
        &transform_like(),
        &[0.1, 0.2, 0.3],
        "test teacher",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baked.onnx");
    std::fs::write(&path, &baked).unwrap();
    let model =
        gstrsstyle::model::Model::load(&path, None, &gstrsstyle::model::ManifestPatch::default())
            .unwrap();
    let m = &model.manifest;
    assert_eq!(m.layout, gstrsstyle::model::Layout::Nhwc);
    assert_eq!(m.input_range, gstrsstyle::model::ValueRange::Unit);
    assert_eq!(m.size, gstrsstyle::model::SizeRule::Multiple(4));
    assert!(m.conditioning.is_none());
    assert_eq!(m.description.as_deref(), Some("test teacher"));
    // Through the element at 12×16 (not the graph's 8×8): out = in + (0.1, 0.2, 0.3)·255.
    let input: Vec<[u8; 3]> = (0..12 * 16).map(|i| [(i % 100) as u8, 50, 100]).collect();
    let out = run_frame(&[model_prop(&path)], PixelFormat::Rgb, 12, 16, &input);
    for (o, i) in out.iter().zip(&input) {
        let expected = [i[0] as f32 + 25.5, i[1] as f32 + 51.0, i[2] as f32 + 76.5];
        for c in 0..3 {
            assert!(
                (o[c] as f32 - expected[c]).abs() <= 1.0,
                "{o:?} vs {expected:?}"
            );
        }
    }
    // A vector length no input has is refused.
    let err =
        gstrsstyle::train::teacher::bake_transform(&transform_like(), &[1.0; 5], "x").unwrap_err();
    assert_eq!(err.to_string(), "no input takes a 5-d vector");
}

/// Magenta's real networks (fetched by `scripts/setup.sh --test`): `rsstyle teacher` bakes a
/// style into a model the element runs at any size.
#[test]
fn magenta_teacher_styles_frames_in_the_element() {
    let magenta = gstrsstyle::train::teacher::Magenta::default_dir();
    assert!(
        magenta.join("arbitrary_transform.onnx").exists(),
        "run scripts/fetch-teacher.sh (scripts/setup.sh --test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let style = stripes(d, "style.png", [230, 200, 20], [20, 40, 160]);
    let model = d.join("teacher.onnx");
    let text = ok(&rsstyle(&strings(&[
        "teacher",
        "--style",
        &style.display().to_string(),
        "-o",
        &model.display().to_string(),
    ])));
    assert!(text.contains("wrote"), "{text}");
    // Refused without --force.
    let again = rsstyle(&strings(&[
        "teacher",
        "--style",
        &style.display().to_string(),
        "-o",
        &model.display().to_string(),
    ]));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists; pass --force"));
    let input: Vec<[u8; 3]> = (0..64 * 48)
        .map(|i| {
            let (x, y) = (i % 64, i / 64);
            [(x * 4) as u8, (y * 5) as u8, 128]
        })
        .collect();
    let out = run_frame(&[model_prop(&model)], PixelFormat::Rgbx, 64, 48, &input);
    assert_eq!(out.len(), input.len());
    let changed = out
        .iter()
        .zip(&input)
        .map(|(o, i)| {
            (0..3)
                .map(|c| (o[c] as i32 - i[c] as i32).abs())
                .sum::<i32>()
        })
        .sum::<i32>() as f64
        / input.len() as f64;
    assert!(
        changed > 30.0,
        "the teacher restyles the frame: mean change {changed}"
    );
}
