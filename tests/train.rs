//! The trainer: export parity with candle, runs end to end through the CLI (logs, samples,
//! plots, checkpoints, exact resume, Ctrl-C), CycleGAN, and the exported models in the element.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{Device, Tensor};
use common::*;
use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;
use gstrsstyle::onnx::rewrite::Rewrites;
use gstrsstyle::train::export::{ExportOptions, onnx_bytes};
use gstrsstyle::train::nets::{Arch, Net, Output};
use gstrsstyle::train::params::Params;
use gstrsstyle::train::rng::Rng;
use gstrsstyle::train::vgg::{Vgg16, VggInput};

/// VGG16 weights from `scripts/fetch-vgg16.sh` (run by `scripts/setup.sh --test`).
fn vgg() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/vgg16/vgg16.safetensors");
    assert!(
        p.exists(),
        "{} is missing: run scripts/fetch-vgg16.sh",
        p.display()
    );
    p
}

/// A folder of `n` small synthetic photos (gradients and discs of different colours).
fn image_folder(dir: &Path, name: &str, n: u32, hue: u8) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(48, 40, |x, y| {
            let d = ((x as i32 - 10 - 5 * i as i32).pow(2) + (y as i32 - 20).pow(2)) as f32;
            let disc = if d < 100.0 { 200 } else { 30 };
            image::Rgb([(x * 5) as u8 ^ hue, (y * 6) as u8, disc])
        });
        img.save(folder.join(format!("img{i}.png"))).unwrap();
    }
    folder
}

fn stripes(dir: &Path) -> PathBuf {
    let p = dir.join("style.png");
    image::RgbImage::from_fn(64, 64, |x, y| {
        if (x + y) / 4 % 2 == 0 {
            image::Rgb([230, 200, 20])
        } else {
            image::Rgb([20, 40, 160])
        }
    })
    .save(&p)
    .unwrap();
    p
}

fn rsstyle(args: &[&str]) -> std::process::Output {
    Command::new(rsstyle_bin()).args(args).output().unwrap()
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

fn log_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn style_run(dir: &Path, out: &Path, steps: u32) -> Vec<String> {
    let content = image_folder(dir, "content", 4, 0);
    let style = stripes(dir);
    [
        "train",
        "style",
        "--out",
        &out.display().to_string(),
        "--content",
        &content.display().to_string(),
        "--style",
        &style.display().to_string(),
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
        "--steps",
        &steps.to_string(),
        "--log-every",
        "2",
        "--sample-every",
        "4",
        "--checkpoint-every",
        "3",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_args(args: &[String]) -> std::process::Output {
    Command::new(rsstyle_bin()).args(args).output().unwrap()
}

/// A float32 tensor's values, flattened.
fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Max |a − b| over two float slices.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Runs an ONNX model on an NCHW float32 input with ONNX Runtime directly.
fn run_onnx(model: &[u8], input: &Tensor, fp16: bool) -> Vec<f32> {
    use ort::session::Session;
    let runtime = gstrsstyle::engine::ort_library().unwrap();
    let mut session = Session::builder(runtime.environment())
        .unwrap()
        .commit_from_memory(model)
        .unwrap();
    let shape: Vec<usize> = input.dims().to_vec();
    let data = values(input);
    if fp16 {
        let data: Vec<half::f16> = data.iter().map(|v| half::f16::from_f32(*v)).collect();
        let t = ort::value::Tensor::from_array((shape, data)).unwrap();
        let out = session.run(ort::inputs!["input" => t]).unwrap();
        let (_, v) = out["output"].try_extract_tensor::<half::f16>().unwrap();
        v.iter().map(|x| x.to_f32()).collect()
    } else {
        let t = ort::value::Tensor::from_array((shape, data)).unwrap();
        let out = session.run(ort::inputs!["input" => t]).unwrap();
        let (_, v) = out["output"].try_extract_tensor::<f32>().unwrap();
        v.to_vec()
    }
}

/// `net` exported with float16 weights and arithmetic.
fn fp16_bytes(net: &Net) -> Vec<u8> {
    let options = ExportOptions {
        fp16: true,
        ..ExportOptions::default()
    };
    onnx_bytes(net, &options).unwrap()
}

/// `model` after the engine's load-time graph rewrites, with what they rewrote.
fn rewritten(model: &[u8]) -> (Vec<u8>, Rewrites) {
    use protobuf::Message;
    let mut proto = onnx_protobuf::ModelProto::parse_from_bytes(model).unwrap();
    let rewrites = gstrsstyle::onnx::rewrite::optimize(&mut proto, Some("output"));
    (proto.write_to_bytes().unwrap(), rewrites)
}

/// The operator types of an ONNX model's nodes, in order.
fn ops_of(model: &[u8]) -> Vec<String> {
    use protobuf::Message;
    onnx_protobuf::ModelProto::parse_from_bytes(model)
        .unwrap()
        .graph
        .node
        .iter()
        .map(|n| n.op_type.clone())
        .collect()
}

#[test]
fn exported_generators_compute_what_candle_computes() {
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..2 * 3 * 20 * 28)
        .map(|_| rng.uniform() * 2.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(x, (2, 3, 20, 28), &Device::Cpu).unwrap();
    for arch in [
        Arch::Johnson {
            width: 4,
            blocks: 2,
            output: Output::Tanh,
        },
        Arch::ResnetGenerator { ngf: 4, blocks: 2 },
    ] {
        let mut params = Params::default();
        let net = Net::new(arch, "g.", &mut params, &mut rng).unwrap();
        // Non-trivial norm scales and biases, so that their export is checked too.
        let perturbed = params
            .tensors()
            .into_iter()
            .map(|(k, t)| {
                let noise = Tensor::randn(0f32, 0.1, t.dims(), &Device::Cpu).unwrap();
                (k, (t + noise).unwrap())
            })
            .collect();
        params.assign(&perturbed).unwrap();
        let expected: Vec<f32> = values(&net.forward(&x).unwrap());

        let f32_model = onnx_bytes(&net, &ExportOptions::default()).unwrap();
        let johnson = matches!(arch, Arch::Johnson { .. });
        // (Resize, ConvTranspose, SpaceToDepth) nodes.
        let counts = |ops: &[String]| {
            let n = |op: &str| ops.iter().filter(|o| *o == op).count();
            (n("Resize"), n("ConvTranspose"), n("SpaceToDepth"))
        };
        let plain_ops = ops_of(&f32_model);
        let plain = if johnson { (2, 0, 0) } else { (0, 2, 0) };
        assert_eq!(
            counts(&plain_ops),
            plain,
            "the export is the plain net: {plain_ops:?}"
        );
        let got = run_onnx(&f32_model, &x, false);
        let d = max_diff(&expected, &got);
        assert!(
            d < 1e-4,
            "{arch:?}: ONNX float32 differs from candle by {d}"
        );

        // The engine's load-time rewrites compute the same.
        let (f32_rewritten, rewrites) = rewritten(&f32_model);
        let expected_rewrites = Rewrites {
            upsample_convs: if johnson { 2 } else { 0 },
            output_convs: 1,
            ..Rewrites::default()
        };
        assert_eq!(rewrites, expected_rewrites, "{arch:?}");
        let ops = ops_of(&f32_rewritten);
        let last_conv = ops.iter().rposition(|o| o == "Conv").unwrap();
        assert_eq!(
            ops[last_conv - 1..=last_conv + 1],
            ["SpaceToDepth", "Conv", "DepthToSpace"]
        );
        assert_eq!(counts(&ops), (0, 2, 1), "{ops:?}");
        let d_rewritten = max_diff(&got, &run_onnx(&f32_rewritten, &x, false));
        assert!(
            d_rewritten < 1e-5,
            "{arch:?}: the rewritten graph differs by {d_rewritten}"
        );

        let f16_model = fp16_bytes(&net);
        assert!(
            f16_model.len() < f32_model.len() * 6 / 10,
            "float16 weights halve the file"
        );
        let d16 = max_diff(&expected, &run_onnx(&f16_model, &x, true));
        assert!(
            d16 < 0.05,
            "{arch:?}: ONNX float16 differs from candle by {d16}"
        );
        let (f16_rewritten, rewrites) = rewritten(&f16_model);
        assert_eq!(rewrites, expected_rewrites, "{arch:?} float16");
        let d16 = max_diff(&expected, &run_onnx(&f16_rewritten, &x, true));
        assert!(
            d16 < 0.05,
            "{arch:?}: rewritten ONNX float16 differs from candle by {d16}"
        );
    }
}

#[test]
fn a_linear_output_net_trains_unclipped_and_exports_clipped() {
    let mut rng = Rng::new(12);
    let x: Vec<f32> = (0..3 * 16 * 20)
        .map(|_| rng.uniform() * 2.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(x, (1, 3, 16, 20), &Device::Cpu).unwrap();
    let arch = Arch::Johnson {
        width: 4,
        blocks: 1,
        output: Output::Linear,
    };
    assert!(
        arch.describe().ends_with(", linear output"),
        "{}",
        arch.describe()
    );
    let mut params = Params::default();
    let net = Net::new(arch, "g.", &mut params, &mut rng).unwrap();
    // A last-layer bias large enough to leave [-1, 1] on part of the image.
    let scaled = params
        .tensors()
        .into_iter()
        .map(|(k, t)| {
            let last_bias = k.ends_with(".bias") && t.dims() == [3];
            let t = if last_bias {
                Tensor::new(&[3f32, -3.0, 0.0], &Device::Cpu).unwrap()
            } else {
                t.copy().unwrap()
            };
            (k, t)
        })
        .collect();
    params.assign(&scaled).unwrap();
    let raw: Vec<f32> = values(&net.forward(&x).unwrap());
    assert!(
        raw.iter().any(|v| *v > 1.5) && raw.iter().any(|v| *v < -1.5),
        "training sees the unclipped output"
    );
    let model = onnx_bytes(&net, &ExportOptions::default()).unwrap();
    assert!(
        ops_of(&model).contains(&"Clip".to_string()),
        "{:?}",
        ops_of(&model)
    );
    assert!(!ops_of(&model).contains(&"Tanh".to_string()));
    let got = run_onnx(&model, &x, false);
    let clipped: Vec<f32> = raw.iter().map(|v| v.clamp(-1.0, 1.0)).collect();
    let d = max_diff(&clipped, &got);
    assert!(
        d < 1e-4,
        "ONNX differs from the clipped candle output by {d}"
    );
    // The engine's load-time rewrites see through the Clip to the output convolution.
    let (rewritten_model, rewrites) = rewritten(&model);
    assert_eq!(rewrites.output_convs, 1, "{rewrites:?}");
    let d = max_diff(&got, &run_onnx(&rewritten_model, &x, false));
    assert!(d < 1e-5, "the rewritten graph differs by {d}");
    let f16 = fp16_bytes(&net);
    let d16 = max_diff(&clipped, &run_onnx(&f16, &x, true));
    assert!(d16 < 0.05, "float16 export differs by {d16}");
}

#[test]
fn output_and_vgg_input_options_are_kept_by_the_run_and_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = style_run(dir.path(), &run, 2);
    args.extend(["--output", "linear", "--vgg-input", "unit"].map(String::from));
    ok(&run_args(&args));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(config["arch"]["output"], "linear", "{config}");
    assert_eq!(config["vgg_input"], "unit", "{config}");
    // A resumed run keeps them (they come from run.json).
    let run_s = run.display().to_string();
    ok(&rsstyle(&[
        "train", "style", "--out", &run_s, "--resume", "--steps", "3", "--quiet",
    ]));
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(resumed["arch"], config["arch"]);
    let model = dir.path().join("m.onnx");
    ok(&rsstyle(&[
        "export",
        &run_s,
        "-o",
        &model.display().to_string(),
    ]));
    let ops = ops_of(&std::fs::read(&model).unwrap());
    assert_eq!(ops.last().map(String::as_str), Some("Identity"), "{ops:?}");
    assert_eq!(ops[ops.len() - 2], "Clip", "{ops:?}");
    // Bad values are refused by name.
    let bad = run_args(
        &[
            style_run(dir.path(), &dir.path().join("r2"), 2),
            vec!["--output".into(), "relu".into()],
        ]
        .concat(),
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("invalid value 'relu' for '--output"),
        "{err}"
    );
}

#[test]
fn vgg_input_unit_skips_the_imagenet_standardisation() {
    let dev = Device::Cpu;
    let imagenet = Vgg16::load(&vgg(), &dev).unwrap();
    let unit = Vgg16::load(&vgg(), &dev)
        .unwrap()
        .with_input(VggInput::Unit)
        .unwrap();
    let x = (Tensor::rand(0f32, 1.0, (1, 3, 16, 16), &dev).unwrap() * 0.5).unwrap();
    // Unit on x is ImageNet on the image that standardises to x: x · std + mean.
    let mean = Tensor::new(&[0.485f32, 0.456, 0.406], &dev)
        .unwrap()
        .reshape((1, 3, 1, 1))
        .unwrap();
    let std = Tensor::new(&[0.229f32, 0.224, 0.225], &dev)
        .unwrap()
        .reshape((1, 3, 1, 1))
        .unwrap();
    let lifted = x.broadcast_mul(&std).unwrap().broadcast_add(&mean).unwrap();
    let a = values(&unit.features(&x, 2).unwrap()[1]);
    let b = values(&imagenet.features(&lifted, 2).unwrap()[1]);
    let c = values(&imagenet.features(&x, 2).unwrap()[1]);
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        max_diff(&a, &b) < 1e-4 * scale.max(1.0),
        "{}",
        max_diff(&a, &b)
    );
    assert!(max_diff(&a, &c) > 0.05 * scale, "the two inputs differ");
}

#[test]
fn style_run_logs_samples_plots_checkpoints_and_exports_a_model_the_element_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let text = ok(&run_args(&style_run(dir.path(), &run, 8)));
    assert!(text.contains("done: 8 steps"), "{text}");

    let records = log_records(&run);
    let steps: Vec<u64> = records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![2, 4, 6, 8]);
    let elapsed: Vec<f64> = records
        .iter()
        .map(|r| r["elapsed_s"].as_f64().unwrap())
        .collect();
    assert!(
        elapsed[0] > 0.0 && elapsed.windows(2).all(|w| w[1] >= w[0]),
        "{elapsed:?}"
    );
    let loss = |r: &serde_json::Value| r["loss"].as_f64().unwrap();
    assert!(
        loss(&records[3]) < loss(&records[0]),
        "loss {} → {}",
        loss(&records[0]),
        loss(&records[3])
    );
    for key in [
        "eval_content",
        "eval_style",
        "l1_content_vs_styled",
        "psnr_content_vs_styled",
        "ssim_content_vs_styled",
    ] {
        let v = records[1][key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key} at step 4"));
        assert!(v.is_finite(), "{key} = {v}");
    }
    let ssim = records[3]["ssim_content_vs_styled"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&ssim));
    // Sample grids: 2 rows (inputs, outputs) of 4 images of 32² with 4-pixel gaps.
    for step in [4, 8] {
        let grid = image::open(run.join(format!("samples/step-{step:06}.png"))).unwrap();
        assert_eq!((grid.width(), grid.height()), (4 * 36 - 4, 2 * 36 - 4));
    }
    for plot in ["losses", "metrics"] {
        let png = image::open(run.join(format!("plots/{plot}.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!(png.dimensions(), (900, 540));
        assert!(
            png.pixels().any(|p| p.0 != [255, 255, 255]),
            "{plot}.png is blank"
        );
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["step"], 8);

    // A second run into the same folder is refused.
    let again = run_args(&style_run(dir.path(), &run, 8));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr)
            .contains("already holds a training run: pass --resume")
    );

    // Export, then style a frame with the element: manifest embedded, output is an image.
    let model = dir.path().join("m.onnx");
    let text = ok(&rsstyle(&[
        "export",
        &run.display().to_string(),
        "-o",
        &model.display().to_string(),
    ]));
    assert!(text.contains("float32"), "{text}");
    let refused = rsstyle(&[
        "export",
        &run.display().to_string(),
        "-o",
        &model.display().to_string(),
    ]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exists; pass --force to replace it")
    );
    let inspect = ok(&rsstyle(&["inspect", &model.display().to_string()]));
    assert!(inspect.contains("embedded"), "{inspect}");
    assert!(inspect.contains("-1..1"), "{inspect}");
    let rewrites = "CPU rewrites:  2 upsample convolutions as transposed, \
                    1 output convolution through SpaceToDepth";
    assert!(inspect.contains(rewrites), "{inspect}");
    let (w, h) = (36, 20);
    let out = run_frame(
        &[("model", model.display().to_string().to_value())],
        PixelFormat::Rgb,
        w,
        h,
        &pattern(w, h),
    );
    assert_eq!(out.len(), w * h);
    assert!(out.iter().any(|p| *p != out[0]), "styled frame is flat");
}

#[test]
fn resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight");
    ok(&run_args(&style_run(dir.path(), &straight, 6)));
    let split = dir.path().join("split");
    ok(&run_args(&style_run(dir.path(), &split, 3)));
    let text = ok(&rsstyle(&[
        "train",
        "style",
        "--out",
        &split.display().to_string(),
        "--resume",
        "--steps",
        "6",
        "--quiet",
    ]));
    assert!(
        text.contains("resuming") || text.contains("done: 6 steps"),
        "{text}"
    );
    let load = |run: &Path| {
        candle_core::safetensors::load(run.join("checkpoint/weights.safetensors"), &Device::Cpu)
            .unwrap()
    };
    let (a, b) = (load(&straight), load(&split));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let d = max_diff(&values(t), &values(&b[name]));
        assert!(d < 1e-5, "{name} differs by {d} after resuming");
    }
    // The resumed log has each step once, and its training time carries on from the checkpoint.
    let records = log_records(&split);
    let steps: Vec<u64> = records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![2, 3, 4, 6]);
    let elapsed: Vec<f64> = records
        .iter()
        .map(|r| r["elapsed_s"].as_f64().unwrap())
        .collect();
    assert!(elapsed.windows(2).all(|w| w[1] >= w[0]), "{elapsed:?}");
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_says_how_to_continue() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = style_run(dir.path(), &run, 100_000);
    args.retain(|a| a != "--quiet");
    let child = Command::new(rsstyle_bin())
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (the first log line), then interrupt.
    let log = run.join("log.jsonl");
    let start = std::time::Instant::now();
    while !log.exists() {
        assert!(start.elapsed().as_secs() < 120, "no log after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/state.json")).unwrap()).unwrap();
    let step = state["step"].as_u64().unwrap();
    assert!(step >= 2, "checkpoint at step {step}");
    assert!(
        stderr.contains(&format!(
            "interrupted: checkpoint written at step {step}; continue with --out {} --resume",
            run.display()
        )),
        "{stderr}"
    );
}

#[test]
fn style_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut args = style_run(dir.path(), &run, 2);
    let i = args.iter().position(|a| a == "--vgg").unwrap();
    args[i + 1] = dir.path().join("none.safetensors").display().to_string();
    let out = run_args(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("VGG16 weights not found at") && err.contains("run scripts/fetch-vgg16.sh"),
        "{err}"
    );

    let run2 = dir.path().join("run2");
    let mut args = style_run(dir.path(), &run2, 2);
    let i = args.iter().position(|a| a == "--size").unwrap();
    args[i + 1] = "40".into();
    let err = String::from_utf8_lossy(&run_args(&args).stderr).into_owned();
    assert!(
        err.contains("--size must be a multiple of 16, at least 32 (got 40)"),
        "{err}"
    );

    let err = String::from_utf8_lossy(
        &rsstyle(&[
            "train",
            "style",
            "--out",
            &dir.path().join("x").display().to_string(),
            "--content",
            "/nonexistent",
            "--style",
            "/nonexistent.png",
            "--quiet",
        ])
        .stderr,
    )
    .into_owned();
    assert!(
        err.contains("image folder /nonexistent does not exist"),
        "{err}"
    );

    let err = String::from_utf8_lossy(
        &rsstyle(&[
            "export",
            &dir.path().display().to_string(),
            "-o",
            &dir.path().join("m.onnx").display().to_string(),
        ])
        .stderr,
    )
    .into_owned();
    assert!(
        err.contains("is not a training run or checkpoint (no run.json found)"),
        "{err}"
    );
}

#[test]
fn a_device_that_cannot_be_used_is_refused_before_a_run_folder_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let content = image_folder(dir.path(), "content", 2, 0);
    let style = stripes(dir.path());
    let (images, style) = (content.display().to_string(), style.display().to_string());
    let train = |task: &str, device: &str, out: &Path| {
        let out = out.display().to_string();
        let mut args = vec!["train", task, "--out", &out];
        if task == "style" {
            args.extend(["--content", &images, "--style", &style]);
        } else {
            args.extend(["--a", &images, "--b", &images]);
        }
        args.extend([
            "--size", "32", "--steps", "1", "--device", device, "--quiet",
        ]);
        let out = rsstyle(&args);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A build with CUDA is refused GPUs the machine lacks, with candle's reason.
    let devices = if cfg!(feature = "cuda") {
        [("style", "cuda:9"), ("cyclegan", "cuda:8")]
    } else {
        [("style", "cuda"), ("cyclegan", "cuda:1")]
    };
    for (task, device) in devices {
        let out = dir.path().join(format!("{task}-run"));
        let err = train(task, device, &out);
        if cfg!(feature = "cuda") {
            assert!(err.contains(&format!("--device {device}: ")), "{err}");
        } else {
            assert!(
                err.contains(&format!(
                    "--device {device}: this rsstyle was built without CUDA support; rebuild with --features cuda"
                )),
                "{err}"
            );
        }
        assert!(!out.exists(), "{} was created", out.display());
    }
    let out = dir.path().join("gpu-run");
    let err = train("style", "gpu", &out);
    assert!(
        err.contains("--device must be cpu, cuda or cuda:N, not 'gpu'"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn distilled_student_learns_the_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    ok(&run_args(&style_run(dir.path(), &teacher, 4)));
    let student = dir.path().join("student");
    let mut args = style_run(dir.path(), &student, 30);
    args.extend(["--teacher".to_string(), teacher.display().to_string()]);
    for (flag, value) in [("--width", "2"), ("--sample-every", "10")] {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1] = value.into();
    }
    ok(&run_args(&args));
    let records = log_records(&student);
    let distill: Vec<f64> = records
        .iter()
        .filter_map(|r| r["loss_distill"].as_f64())
        .collect();
    assert!(
        distill.last().unwrap() < &(distill[0] * 0.5),
        "distillation loss {distill:?}"
    );
    let psnr: Vec<f64> = records
        .iter()
        .filter_map(|r| r["psnr_vs_teacher"].as_f64())
        .collect();
    assert_eq!(psnr.len(), 3);
    assert!(psnr[2] > psnr[0], "PSNR against the teacher {psnr:?}");
}

#[test]
fn cyclegan_run_logs_its_metrics_resumes_and_exports_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let a = image_folder(dir.path(), "a", 3, 0);
    let b = image_folder(dir.path(), "b", 3, 0xff);
    let run = dir.path().join("cyc");
    let args = |steps: &str| -> Vec<String> {
        [
            "train",
            "cyclegan",
            "--out",
            &run.display().to_string(),
            "--a",
            &a.display().to_string(),
            "--b",
            &b.display().to_string(),
            "--ngf",
            "4",
            "--blocks",
            "1",
            "--ndf",
            "4",
            "--size",
            "32",
            "--pool-size",
            "2",
            "--steps",
            steps,
            "--log-every",
            "1",
            "--sample-every",
            "2",
            "--checkpoint-every",
            "2",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    ok(&run_args(&args("4")));
    let records = log_records(&run);
    assert_eq!(records.len(), 4);
    for key in [
        "loss_g_gan",
        "loss_g_cycle",
        "loss_g_identity",
        "loss_d_a",
        "loss_d_b",
    ] {
        assert!(records[0][key].as_f64().unwrap().is_finite(), "{key}");
    }
    for key in [
        "d_a_acc_real",
        "d_a_acc_fake",
        "d_b_acc_real",
        "d_b_acc_fake",
        "ssim_a_vs_cycle",
        "psnr_b_vs_cycle",
        "l1_a_vs_cycle",
    ] {
        let v = records[1][key]
            .as_f64()
            .unwrap_or_else(|| panic!("no {key}"));
        assert!(v.is_finite());
    }
    for key in ["d_a_acc_real", "d_b_acc_fake"] {
        assert!((0.0..=1.0).contains(&records[3][key].as_f64().unwrap()));
    }
    // The learning rate is constant for the first half, then decays linearly.
    let lr: Vec<f64> = records.iter().map(|r| r["lr"].as_f64().unwrap()).collect();
    assert_eq!(&lr[..2], &[2e-4, 2e-4]);
    assert!(lr[2] < 2e-4 && lr[3] < lr[2], "{lr:?}");
    // Sample grid: a, G(a), F(G(a)), b, F(b), G(F(b)) — 6 rows of 3.
    let grid = image::open(run.join("samples/step-000004.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (3 * 36 - 4, 6 * 36 - 4));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/state.json")).unwrap()).unwrap();
    assert_eq!(state["extra"]["pool_a"], 2, "the pool is saved");

    let mut resume = vec![
        "train".to_string(),
        "cyclegan".into(),
        "--out".into(),
        run.display().to_string(),
        "--resume".into(),
        "--steps".into(),
        "6".into(),
        "--quiet".into(),
    ];
    ok(&run_args(&resume));
    assert_eq!(log_records(&run).len(), 6);
    resume.clear();

    for direction in ["a-to-b", "b-to-a"] {
        let model = dir.path().join(format!("{direction}.onnx"));
        ok(&rsstyle(&[
            "export",
            &run.join("checkpoint").display().to_string(),
            "-o",
            &model.display().to_string(),
            "--direction",
            direction,
        ]));
        let out = run_frame(
            &[("model", model.display().to_string().to_value())],
            PixelFormat::Rgb,
            16,
            16,
            &pattern(16, 16),
        );
        assert_eq!(out.len(), 256);
    }
}

#[test]
fn frames_and_sheet_commands() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    let text = ok(&rsstyle(&[
        "frames",
        &asset("vtest.avi").display().to_string(),
        &frames.display().to_string(),
        "--start",
        "10",
        "--every",
        "100",
        "--end",
        "400",
        "--size",
        "96x72",
    ]));
    assert!(text.contains("wrote 4 frames"), "{text}");
    let mut names: Vec<String> = std::fs::read_dir(&frames)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "frame-000010.png",
            "frame-000110.png",
            "frame-000210.png",
            "frame-000310.png"
        ]
    );
    let img = image::open(frames.join("frame-000110.png")).unwrap();
    assert_eq!((img.width(), img.height()), (96, 72));

    let err = String::from_utf8_lossy(
        &rsstyle(&["frames", "/nonexistent.avi", &frames.display().to_string()]).stderr,
    )
    .into_owned();
    assert!(
        err.contains("input /nonexistent.avi does not exist"),
        "{err}"
    );

    let model = invert(dir.path(), "0..255");
    let sheet = dir.path().join("sheet.png");
    ok(&rsstyle(&[
        "sheet",
        "--video",
        &asset("vtest.avi").display().to_string(),
        "--at",
        "110,310",
        "--size",
        "96x72",
        "--model",
        &model.display().to_string(),
        "-o",
        &sheet.display().to_string(),
    ]));
    let sheet = image::open(&sheet).unwrap().to_rgb8();
    assert_eq!(sheet.dimensions(), (2 * 100 - 4, 2 * 76 - 4));
    // Row 2 is row 1 inverted (the frames decoded identically both times).
    let (orig, styled) = (sheet.get_pixel(30, 30).0, sheet.get_pixel(30, 30 + 76).0);
    for c in 0..3 {
        assert!(
            (orig[c] as i32 + styled[c] as i32 - 255).abs() <= 1,
            "{orig:?} vs {styled:?}"
        );
    }
    assert_eq!(img.to_rgb8().get_pixel(30, 30).0, orig);
}

#[test]
fn evaluate_measures_what_the_element_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    ok(&rsstyle(&[
        "frames",
        &asset("vtest.avi").display().to_string(),
        &frames.display().to_string(),
        "--start",
        "700",
        "--every",
        "50",
        "--end",
        "800",
        "--size",
        "64x48",
    ]));
    let (id, inv) = (identity(dir.path()), invert(dir.path(), "0..255"));
    let style = stripes(dir.path());
    let out = ok(&rsstyle(&[
        "evaluate",
        "--model",
        &id.display().to_string(),
        "--model",
        &format!("{},strength=0.5", inv.display()),
        "--model",
        &inv.display().to_string(),
        "--images",
        &frames.display().to_string(),
        "--style",
        &style.display().to_string(),
        "--style-size",
        "64",
        "--vgg",
        &vgg().display().to_string(),
        "--json",
    ]));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&out[..out.rfind(']').unwrap() + 1]).unwrap();
    assert_eq!(rows.len(), 3);
    // The identity model returns its input: no content loss, and it is the reference.
    assert_eq!(rows[0]["content_loss"].as_f64().unwrap(), 0.0);
    assert_eq!(rows[0]["l1_vs_reference"].as_f64().unwrap(), 0.0);
    // Half-strength inversion sits between identity and full inversion.
    let l1 = |r: &serde_json::Value| r["l1_vs_reference"].as_f64().unwrap();
    let content = |r: &serde_json::Value| r["content_loss"].as_f64().unwrap();
    assert!(
        l1(&rows[1]) > 0.0 && l1(&rows[1]) < l1(&rows[2]),
        "{rows:?}"
    );
    assert!(
        content(&rows[1]) > 0.0 && content(&rows[1]) < content(&rows[2]),
        "{rows:?}"
    );

    let bad = rsstyle(&[
        "evaluate",
        "--model",
        &format!("{},nope=1", id.display()),
        "--images",
        &frames.display().to_string(),
        "--style",
        &style.display().to_string(),
        "--vgg",
        &vgg().display().to_string(),
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("rsstyle has no property 'nope'"));
    let bad = rsstyle(&[
        "evaluate",
        "--model",
        &format!("{},strength", id.display()),
        "--images",
        &frames.display().to_string(),
        "--style",
        &style.display().to_string(),
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("'strength' in --model"));
}
