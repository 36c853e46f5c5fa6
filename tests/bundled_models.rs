//! The models shipped in `models/`: listed, self-describing, small, and running in the element
//! and in the ready pipelines as their defaults.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;

/// The bundled models: both multi-style (conditional instance norm).
const BUNDLED: [&str; 2] = ["paintings", "paintings-lite"];

/// The styles of the bundled models, in index order.
const PAINTINGS: [&str; 8] = [
    "starry-night",
    "great-wave",
    "kandinsky-composition-viii",
    "night-cafe",
    "cafe-terrace-at-night",
    "renoir-moulin-de-la-galette",
    "cassatt-summertime",
    "hiroshige-inokashira-snow",
];

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(format!("{name}.onnx"))
}

#[test]
fn every_bundled_model_is_listed_with_its_description_and_is_small() {
    let out = Command::new(rsstyle_bin())
        .arg("models")
        .env_remove("RSSTYLE_MODELS")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in BUNDLED {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        assert!(line.contains("(-1..1)"), "{line}");
        assert!(line.contains(" by rsstyle "), "{line}");
        let size = std::fs::metadata(bundled(name)).unwrap().len();
        assert!(size < 10_000_000, "{name}.onnx is {size} bytes");
    }
}

#[test]
fn bundled_models_restyle_a_frame() {
    let (w, h) = (64, 48);
    let input = pattern(w, h);
    for name in BUNDLED {
        let out = run_frame(
            &[("model", bundled(name).display().to_string().to_value())],
            PixelFormat::Rgb,
            w,
            h,
            &input,
        );
        // A style changes the picture a lot, not a little.
        let mean_change: f64 = input
            .iter()
            .zip(&out)
            .map(|(a, b)| {
                (0..3)
                    .map(|c| (a[c] as f64 - b[c] as f64).abs())
                    .sum::<f64>()
            })
            .sum::<f64>()
            / (3 * w * h) as f64;
        assert!(mean_change > 10.0, "{name}: mean change {mean_change:.1}");
    }
}

#[test]
fn pipelines_default_to_the_bundled_models() {
    for script in ["webcam-preview.sh", "cpu-realtime.sh"] {
        let out = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("pipelines")
                .join(script),
        )
        .env_remove("MODEL")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env(
            "SOURCE",
            "videotestsrc num-buffers=10 ! video/x-raw,width=320,height=240",
        )
        .env("SINK", "fakesink")
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bundled_models_load_rewritten_on_the_cpu_and_compute_the_same() {
    use gstrsstyle::engine::{self, EngineOptions};
    use gstrsstyle::model::ManifestPatch;
    let (w, h) = (64, 48);
    let input: Vec<f32> = (0..3 * w * h)
        .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
        .collect();
    // A mix of two styles, so that every style's row of the conditioning tables counts.
    let mut mix = vec![0f32; PAINTINGS.len()];
    (mix[1], mix[6]) = (0.25, 0.75);
    for name in BUNDLED {
        let run = |spec: &str| {
            let mut options = EngineOptions {
                threads: 1,
                ..EngineOptions::default()
            };
            options.apply(spec).unwrap();
            let path = bundled(name).display().to_string();
            let (mut engine, _) =
                engine::open(&path, None, &ManifestPatch::default(), &options).unwrap();
            let mut out = Vec::new();
            engine
                .infer(&input, [1, 3, h, w], Some(&mix), &mut |_, v| {
                    out = v.to_vec()
                })
                .unwrap();
            (engine.device_description().to_string(), out)
        };
        let (rewritten, fast) = run("");
        let (plain, slow) = run("graph-rewrite=false");
        // One conditional instance norm per norm layer: 2 down, 2 per block, 2 up, the stem.
        let blocks = if name == "paintings" { 3 } else { 2 };
        let rewrites = format!(
            "graph rewritten: 2 upsample convolutions as transposed, 1 output convolution \
             through SpaceToDepth, {} conditional instance norms as one",
            5 + 2 * blocks
        );
        assert!(rewritten.contains(&rewrites), "{name}: {rewritten}");
        assert!(!plain.contains("rewritten"), "{name}: {plain}");
        assert_eq!(fast.len(), 3 * w * h);
        let d = fast
            .iter()
            .zip(&slow)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "{name}: the rewritten graph differs by {d}");
    }
}

#[test]
fn multi_style_models_name_their_styles_and_each_style_paints_differently() {
    for name in BUNDLED {
        let out = Command::new(rsstyle_bin())
            .arg("inspect")
            .arg(bundled(name))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}");
        for label in PAINTINGS {
            assert!(
                text.contains(label),
                "{name}: no style '{label}' in\n{text}"
            );
        }
        let (w, h) = (64, 48);
        let input = pattern(w, h);
        let styled = |props: &[(&str, glib::Value)]| {
            let mut all = vec![("model", bundled(name).display().to_string().to_value())];
            all.extend(props.iter().cloned());
            run_frame(&all, PixelFormat::Rgb, w, h, &input)
        };
        let mean_diff = |a: &[[u8; 3]], b: &[[u8; 3]]| {
            a.iter()
                .zip(b)
                .map(|(p, q)| {
                    (0..3)
                        .map(|c| (p[c] as f64 - q[c] as f64).abs())
                        .sum::<f64>()
                })
                .sum::<f64>()
                / (3 * a.len()) as f64
        };
        let outputs: Vec<_> = (0..PAINTINGS.len() as u32)
            .map(|i| styled(&[("style", i.to_value())]))
            .collect();
        for i in 0..outputs.len() {
            for j in i + 1..outputs.len() {
                let d = mean_diff(&outputs[i], &outputs[j]);
                assert!(d > 3.0, "{name}: styles {i} and {j} differ by {d:.2} only");
            }
        }
        // Weights by label: all on one style is that style; a half-half mix lies between.
        let great_wave = styled(&[("style-weights", "great-wave:1".to_value())]);
        assert!(mean_diff(&great_wave, &outputs[1]) < 0.5, "{name}");
        let mix = styled(&[(
            "style-weights",
            "starry-night:0.5,great-wave:0.5".to_value(),
        )]);
        let (to_a, to_b) = (mean_diff(&mix, &outputs[0]), mean_diff(&mix, &outputs[1]));
        let between = mean_diff(&outputs[0], &outputs[1]);
        assert!(
            to_a < between && to_b < between,
            "{name}: mix {to_a:.2} / {to_b:.2} from the styles, {between:.2} between them"
        );
    }
}
