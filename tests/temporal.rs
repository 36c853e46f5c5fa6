//! Temporal smoothing in the element (`temporal-smoothing`): flicker cut on a static noisy
//! input, moving edges not smeared, and the history's life: in stream order through batches,
//! across `infer-every`, restarted by flushes, discontinuities, caps and look changes, and kept
//! per stream when streams share an engine. Driven through gst_check::Harness.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use gst::prelude::*;

const W: usize = 32;
const H: usize = 24;

fn caps(width: usize, height: usize, fps: u32) -> String {
    format!("video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1")
}

fn start(props: &[(&str, glib::Value)]) -> (gst_check::Harness, gst::Bus) {
    start_rgb(props, W, H)
}

fn path_prop(p: &Path) -> glib::Value {
    p.display().to_string().to_value()
}

/// output = gain · (input − 100) + 100 per channel (0..255, clamped by the element).
fn gain(dir: &Path, file: &str, gain: f32) -> PathBuf {
    write_model(dir, file, None, |b, x| {
        let g = b.constant_f32("gain", &[1], &[gain]);
        let c = b.constant_f32("offset", &[1], &[100.0 - 100.0 * gain]);
        let y = b.op("Mul", &[x, &g], &[]);
        b.op("Add", &[&y, &c], &[])
    })
}

fn uniform(v: u8) -> Vec<[u8; 3]> {
    vec![[v; 3]; W * H]
}

/// Pushes a uniform frame of `v` and returns the first pixel of the output.
fn step(h: &mut gst_check::Harness, v: u8, pts_ms: u64) -> [u8; 3] {
    h.push(rgb_buffer(&uniform(v), W, H, pts_ms)).unwrap();
    let out = rgb_pixels(&h.pull().unwrap(), W, H);
    assert!(
        out.iter().all(|p| *p == out[0]),
        "a uniform frame stays uniform"
    );
    out[0]
}

/// xorshift noise in -2..=2.
fn noise(seed: &mut u64) -> i32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % 5) as i32 - 2
}

/// Mean |a − b| over the pixels and channels of two frames.
fn mean_change(a: &[[u8; 3]], b: &[[u8; 3]]) -> f64 {
    let sum: u64 = a
        .iter()
        .zip(b)
        .flat_map(|(p, q)| (0..3).map(move |c| p[c].abs_diff(q[c]) as u64))
        .sum();
    sum as f64 / (3 * a.len()) as f64
}

#[test]
fn static_noisy_input_changes_at_most_a_third_as_much() {
    let dir = tempfile::tempdir().unwrap();
    // The model amplifies the noise fourfold, as style nets do.
    let model = gain(dir.path(), "gain4.onnx", 4.0);
    for scale in [1.0f64, 0.5] {
        let run = |smoothing: f64| {
            let (mut h, _) = start(&[
                ("model", path_prop(&model)),
                ("temporal-smoothing", smoothing.to_value()),
                ("inference-scale", scale.to_value()),
            ]);
            let mut seed = 7u64;
            let mut previous: Option<Vec<[u8; 3]>> = None;
            let mut change = 0.0;
            for t in 0..40u64 {
                let picture: Vec<[u8; 3]> = (0..W * H)
                    .map(|i| {
                        std::array::from_fn(|c| {
                            (100 + ((i + 3 * c) % 7) as i32 - 3 + noise(&mut seed)) as u8
                        })
                    })
                    .collect();
                h.push(rgb_buffer(&picture, W, H, t * 40)).unwrap();
                let out = rgb_pixels(&h.pull().unwrap(), W, H);
                if let Some(p) = &previous {
                    change += mean_change(&out, p) / 39.0;
                }
                previous = Some(out);
            }
            change
        };
        let (plain, smooth) = (run(0.0), run(0.8));
        // Independent noise through an average keeping 0.8: (1 − 0.8) / √1.8 = 0.15 of the
        // per-frame change; rounding to bytes adds a little.
        assert!(
            smooth <= plain / 3.0,
            "scale {scale}: output change {plain:.2} per frame, {smooth:.2} smoothed"
        );
        assert!(
            plain > 2.0,
            "scale {scale}: the model amplifies the noise ({plain:.2})"
        );
    }
}

#[test]
fn a_moving_edge_is_not_smeared() {
    let dir = tempfile::tempdir().unwrap();
    // A 3×3 blur: its output changes one pixel around each changed input pixel.
    let model = blur(dir.path());
    // A bright block 8 pixels wide moves right 3 pixels a frame over a noisy static background.
    let frame = |t: usize, seed: &mut u64| -> Vec<[u8; 3]> {
        (0..W * H)
            .map(|i| {
                let x = i % W;
                let inside = x >= 3 * t && x < 3 * t + 8;
                let base = if inside { 220 } else { 60 };
                std::array::from_fn(|_| (base + noise(seed)) as u8)
            })
            .collect()
    };
    let run = |smoothing: f64| {
        let (mut h, _) = start(&[
            ("model", path_prop(&model)),
            ("temporal-smoothing", smoothing.to_value()),
        ]);
        let mut seed = 99u64;
        (0..7)
            .map(|t| {
                h.push(rgb_buffer(&frame(t, &mut seed), W, H, t as u64 * 40))
                    .unwrap();
                rgb_pixels(&h.pull().unwrap(), W, H)
            })
            .collect::<Vec<_>>()
    };
    let (plain, smooth) = (run(0.0), run(0.8));
    for t in 1..7 {
        // The columns the block's edges swept (its input changed by 160) and one more each
        // side: the new output exactly.
        let swept = |x: usize| {
            let (left, right): (usize, usize) = (3 * t, 3 * t + 8);
            (left.saturating_sub(4)..=left).contains(&x) || (right - 4..=right).contains(&x)
        };
        for y in 0..H {
            for x in 0..W {
                let (p, s) = (plain[t][y * W + x], smooth[t][y * W + x]);
                if swept(x) {
                    assert_eq!(p, s, "frame {t} ({x},{y}) on the moving edge");
                } else {
                    // Elsewhere the difference is the averaged noise, never a trail of the
                    // block (160 levels).
                    let d = (0..3).map(|c| p[c].abs_diff(s[c])).max().unwrap();
                    assert!(d <= 4, "frame {t} ({x},{y}): {p:?} vs {s:?}");
                }
            }
        }
    }
}

#[test]
fn the_history_restarts_on_flush_discont_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    // A change of 1 in the input (static to the smoothing) is 50 in the output.
    let model = gain(dir.path(), "gain50.onnx", 50.0);
    let (mut h, _) = start(&[
        ("model", path_prop(&model)),
        ("temporal-smoothing", 1.0f64.to_value()),
    ]);
    assert_eq!(step(&mut h, 100, 0), [100; 3]);
    // Held: the previous output, as the input did not change (k = 255/256 at smoothing 1).
    assert_eq!(step(&mut h, 101, 40), [100; 3]);
    assert_eq!(step(&mut h, 101, 80), [100; 3]);

    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    assert_eq!(step(&mut h, 101, 0), [150; 3], "flush restarts the history");
    assert_eq!(step(&mut h, 100, 40), [150; 3]);

    let mut b = rgb_buffer(&uniform(100), W, H, 80);
    b.get_mut().unwrap().set_flags(gst::BufferFlags::DISCONT);
    h.push(b).unwrap();
    assert_eq!(
        rgb_pixels(&h.pull().unwrap(), W, H)[0],
        [100; 3],
        "DISCONT restarts it"
    );
    assert_eq!(step(&mut h, 101, 120), [100; 3]);

    // New caps of the same size and format (another frame rate).
    h.set_src_caps_str(&caps(W, H, 30));
    assert_eq!(step(&mut h, 101, 160), [150; 3], "caps restart the history");
    assert_eq!(step(&mut h, 100, 200), [150; 3]);
}

#[test]
fn a_change_of_model_or_look_restarts_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let first = gain(dir.path(), "gain50.onnx", 50.0);
    let second = gain(dir.path(), "gain-50.onnx", -50.0);
    let (mut h, bus) = start(&[
        ("model", path_prop(&first)),
        ("temporal-smoothing", 1.0f64.to_value()),
    ]);
    assert_eq!(step(&mut h, 100, 0), [100; 3]);
    assert_eq!(step(&mut h, 101, 40), [100; 3]);
    let element = h.element().unwrap();
    element.set_property("inference-scale", 0.5f64);
    assert_eq!(
        step(&mut h, 101, 80),
        [150; 3],
        "a new inference scale shows at once"
    );
    element.set_property("strength", 0.5f64);
    // (101 + 150) / 2, at once.
    assert_eq!(step(&mut h, 101, 120), [126; 3]);
    element.set_property("strength", 1.0f64);
    assert_eq!(step(&mut h, 101, 160), [150; 3]);

    element.set_property("model", second.display().to_string());
    let loaded = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Element],
        )
        .expect("the model loads");
    assert_eq!(
        loaded.structure().unwrap().name().as_str(),
        "rsstyle-model-loaded"
    );
    assert_eq!(step(&mut h, 101, 200), [50; 3], "a new model shows at once");
}

#[test]
fn a_batch_is_stabilised_frame_by_frame_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let control = test_engine("temporal-batch", &gain(dir.path(), "gain20.onnx", 20.0), 0);
    let (mut h, _) = start(&[
        ("model", "test:temporal-batch".to_value()),
        ("batch-size", 4u32.to_value()),
        ("batch-timeout", 10_000u32.to_value()),
        ("temporal-smoothing", 1.0f64.to_value()),
    ]);
    // Styled alone: 100, 120, 180, 200. Stabilised: 100 (the first, as styled); 100 (input
    // 101 static: held); 120 (104 changed by 3, on the soft ramp: keep 191/256 of 100, then
    // round(0.25 · 180)); 120 (105 static: held).
    for (i, v) in [100u8, 101, 104, 105].into_iter().enumerate() {
        h.push(rgb_buffer(&uniform(v), W, H, i as u64 * 40))
            .unwrap();
    }
    let out: Vec<(u64, [u8; 3])> = (0..4)
        .map(|_| {
            let b = h.pull().unwrap();
            (b.pts().unwrap().mseconds(), rgb_pixels(&b, W, H)[0])
        })
        .collect();
    assert_eq!(control.batch_sizes(), [4]);
    assert_eq!(
        out,
        [
            (0, [100; 3]),
            (40, [100; 3]),
            (80, [120; 3]),
            (120, [120; 3])
        ]
    );
}

#[test]
fn infer_every_compares_with_the_last_inferred_frame() {
    let dir = tempfile::tempdir().unwrap();
    let model = gain(dir.path(), "gain50.onnx", 50.0);
    let (mut h, _) = start(&[
        ("model", path_prop(&model)),
        ("infer-every", 2u32.to_value()),
        ("temporal-smoothing", 1.0f64.to_value()),
    ]);
    // Frame 1 is not inferred (its result repeats frame 0's); frame 2 is compared with frame
    // 0's input (100 → 101: static, held), not frame 1's (200: moving).
    let outs: Vec<[u8; 3]> = [100u8, 200, 101, 255]
        .into_iter()
        .enumerate()
        .map(|(i, v)| step(&mut h, v, i as u64 * 40))
        .collect();
    assert_eq!(outs, [[100; 3], [100; 3], [100; 3], [100; 3]]);
}

#[test]
fn streams_sharing_an_engine_keep_their_own_history() {
    let dir = tempfile::tempdir().unwrap();
    let model = gain(dir.path(), "gain50.onnx", 50.0);
    let props = [
        ("model", path_prop(&model)),
        ("batch-size", 2u32.to_value()),
        ("batch-timeout", 10_000u32.to_value()),
        ("temporal-smoothing", 1.0f64.to_value()),
    ];
    let (mut a, _) = start(&props);
    let (mut b, _) = start(&props);
    let mut pair = |va: u8, vb: u8, pts: u64| {
        a.push(rgb_buffer(&uniform(va), W, H, pts)).unwrap();
        b.push(rgb_buffer(&uniform(vb), W, H, pts)).unwrap();
        (
            rgb_pixels(&a.pull().unwrap(), W, H)[0],
            rgb_pixels(&b.pull().unwrap(), W, H)[0],
        )
    };
    // A: 100 then 101 (held at 100). B: 101 twice (150 twice). A shared history would compare
    // B's first frame with A's (static: held at 100) and A's second with B's.
    assert_eq!(pair(100, 101, 0), ([100; 3], [150; 3]));
    assert_eq!(pair(101, 101, 40), ([100; 3], [150; 3]));
    for h in [&a, &b] {
        let s = h.element().unwrap().property::<gst::Structure>("stats");
        assert_eq!(
            s.get::<u64>("last-batch").unwrap(),
            2,
            "one engine, shared batches"
        );
    }
}

#[test]
fn smoothing_is_on_by_default_and_zero_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let model = gain(dir.path(), "gain50.onnx", 50.0);
    let (mut h, _) = start(&[("model", path_prop(&model))]);
    let element = h.element().unwrap();
    assert_eq!(element.property::<f64>("temporal-smoothing"), 0.8);
    assert_eq!(step(&mut h, 100, 0), [100; 3]);
    // k = round(0.8 · 255) = 204: (204 · 100 + 52 · 150 + 128) / 256.
    assert_eq!(step(&mut h, 101, 40), [110; 3]);
    element.set_property("temporal-smoothing", 0.0f64);
    assert_eq!(step(&mut h, 101, 80), [150; 3]);
}

fn rsstyle(args: &[String]) -> String {
    let out = std::process::Command::new(rsstyle_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn evaluate_measures_flicker_and_ghosting_on_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path()).display().to_string();
    let vgg = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/vgg16/vgg16.safetensors");
    assert!(vgg.exists(), "run scripts/fetch-vgg16.sh");
    let run = |replay: bool| {
        let mut args: Vec<String> = [
            "evaluate",
            "--video",
            &asset("vtest.avi").display().to_string(),
            "--frames",
            "12",
            "--size",
            "96x72",
            "--loss-every",
            "6",
            "--style",
            &asset("starry_night.jpg").display().to_string(),
            "--style-size",
            "64",
            "--vgg",
            &vgg.display().to_string(),
            "--model",
            &model,
            "--model",
            &format!("{model},temporal-smoothing=0.5"),
            "--json",
        ]
        .map(String::from)
        .to_vec();
        if replay {
            args.push("--replay".into());
        }
        let out = rsstyle(&args);
        serde_json::from_str::<Vec<serde_json::Value>>(&out[out.find('[').unwrap()..]).unwrap()
    };
    let rows = run(false);
    let f = |r: usize, key: &str| rows[r][key].as_f64().unwrap();
    // Row 0 has the default smoothing (0.8), row 1 0.5; row 2 was added: the same model at 0.
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (f(0, "temporal_smoothing"), f(1, "temporal_smoothing")),
        (0.8, 0.5)
    );
    assert_eq!(rows[2]["model"], format!("{model},temporal-smoothing=0"));
    assert_eq!(rows[2]["added"], true);
    assert_eq!(
        (
            rows[0]["per_frame_row"].as_u64(),
            rows[1]["per_frame_row"].as_u64()
        ),
        (Some(2), Some(2))
    );
    // The identity model's output changes exactly as its input.
    assert_eq!(f(2, "flicker_vs_input"), 1.0);
    assert_eq!(f(2, "content_loss"), 0.0);
    assert!(rows[2]["ghosting"].is_null());
    // Smoothing lowers the change on static pixels, the more the stronger, and lags a little
    // on moving ones.
    assert!(
        f(0, "flicker") < f(1, "flicker") && f(1, "flicker") < f(2, "flicker"),
        "{rows:?}"
    );
    assert!(
        f(1, "ghosting") > 0.0 && f(1, "ghosting") < f(0, "ghosting"),
        "{rows:?}"
    );
    assert_eq!(
        f(0, "flicker_vs_per_frame"),
        f(0, "flicker") / f(2, "flicker")
    );

    // Replaying the element's smoothing on the per-frame frames gives the same numbers.
    let replayed = run(true);
    for (a, b) in rows.iter().zip(&replayed) {
        for key in ["flicker", "ghosting", "content_loss", "style_loss"] {
            assert_eq!(a[key], b[key], "{key}: {a:?} vs {b:?}");
        }
    }
    assert_eq!(replayed[0]["replayed"], true);
    assert_eq!(replayed[2]["replayed"], false);
}
