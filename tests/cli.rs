//! The `rsstyle` binary.

mod common;

use std::process::Command;

use common::*;

#[test]
fn version_names_the_release() {
    let out = Command::new(rsstyle_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("rsstyle {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn inspect_prints_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let model = conditioned_offsets(dir.path());
    let out = Command::new(rsstyle_bin())
        .arg("inspect")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("manifest from: graph + embedded\nopset:         17\n"),
        "{text}"
    );
    assert!(
        text.contains("input:         input (NCHW, float32, RGB, range 0..255)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "conditioning:  style (3 styles)\n  style 0: warm\n  style 1: cross\n  style 2: blue\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("CPU rewrites:  none (engine-options graph-rewrite)\n"),
        "{text}"
    );
}

#[test]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    // `rsstyle inspect MODEL | head -1`: the reader is gone before the listing is written.
    let dir = tempfile::tempdir().unwrap();
    let model = conditioned_offsets(dir.path());
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "(sleep 0.3; '{}' inspect '{}') | true",
            rsstyle_bin().display(),
            model.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn inspect_json_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let model = tanh(dir.path());
    let out = Command::new(rsstyle_bin())
        .args(["inspect", "--json"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success());
    let manifest: gstrsstyle::model::Manifest = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest.input_range, gstrsstyle::model::ValueRange::Signed);
    assert_eq!(manifest.output_range, gstrsstyle::model::ValueRange::Signed);
    assert_eq!(manifest.size, gstrsstyle::model::SizeRule::Multiple(1));
}

#[test]
fn inspect_of_a_missing_model_fails_clearly() {
    let out = Command::new(rsstyle_bin())
        .args(["inspect", "/nonexistent/m.onnx"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rsstyle: model file '/nonexistent/m.onnx' does not exist\n"
    );
}

#[test]
fn bench_reports_every_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let model = random_convnet(dir.path(), "net.onnx", None, 0, 5);
    let out = Command::new(rsstyle_bin())
        .args([
            "bench",
            "--size",
            "32x24",
            "--batch",
            "1,2",
            "--inference-scale",
            "1,0.5",
            "--frames",
            "8",
            "--reps",
            "1",
            "--json",
            "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for (row, (batch, scale)) in rows.iter().zip([(1, 1.0), (1, 0.5), (2, 1.0), (2, 0.5)]) {
        assert_eq!(row["model"], model.display().to_string());
        assert_eq!(row["width"], 32);
        assert_eq!(row["height"], 24);
        assert_eq!(row["batch"], batch);
        assert_eq!(row["inference_scale"], scale);
        assert!(row["element_fps"].as_f64().unwrap() > 0.0);
        assert!(row["inference_ms_per_batch"].as_f64().unwrap() > 0.0);
    }
    // Latency, and bare inference interleaved with it, are measured at batch size 1 only.
    for key in [
        "paced_latency_ms_p50",
        "paced_inference_ms",
        "paced_element_inference_ms",
    ] {
        assert!(rows[0][key].as_f64().unwrap() > 0.0, "{key}: {}", rows[0]);
        assert!(rows[2][key].is_null(), "{key}: {}", rows[2]);
    }
    // The differences are paired within one run and may come out either side of zero, but
    // the element's latency includes its own inference.
    let row = &rows[0];
    let latency = row["paced_latency_ms_p50"].as_f64().unwrap();
    assert!(row["added_latency_ms"].as_f64().is_some(), "{row}");
    let overhead = row["element_overhead_ms"].as_f64().unwrap();
    assert!(overhead > 0.0 && overhead < latency, "{row}");
    assert!(rows[2]["added_latency_ms"].is_null());
    assert!(rows.iter().all(|r| r["fps_ratio"].as_f64().unwrap() > 0.0));
    // Every row carries the machine it was measured on.
    let machine = &rows[0]["machine"];
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(machine["usable_cpus"], cpus, "{machine}");
    assert!(
        machine["cpus"].as_u64().unwrap() >= cpus as u64,
        "{machine}"
    );
    assert!(!machine["cpu"].as_str().unwrap().is_empty(), "{machine}");
    assert!(machine["sgemm_gflops"].as_f64().unwrap() > 0.0, "{machine}");
    assert!(rows.iter().all(|r| r["machine"] == *machine));
}

#[test]
fn bench_prints_the_machine_it_ran_on() {
    let dir = tempfile::tempdir().unwrap();
    let model = random_convnet(dir.path(), "net.onnx", None, 0, 5);
    let out = Command::new(rsstyle_bin())
        .args([
            "bench", "--size", "32x24", "--frames", "4", "--reps", "1", "--model",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    let machine = gstrsstyle::machine::Machine::probe(std::time::Duration::ZERO);
    let cpus = format!(
        "machine: {}, {} CPUs ({} usable), ",
        machine.cpu, machine.cpus, machine.usable_cpus
    );
    assert!(first.starts_with(&cpus), "{first}");
    assert!(first.contains(&machine.extensions.join(" ")), "{first}");
    assert!(first.contains(" GFLOP/s (1024³, "), "{first}");
    if cfg!(target_arch = "x86_64") {
        assert!(
            first.contains("; ONNX Runtime kernels: float32 "),
            "{first}"
        );
    }
}

#[test]
fn bench_rejects_a_malformed_size() {
    let out = Command::new(rsstyle_bin())
        .args([
            "bench",
            "--size",
            "640by480",
            "--model",
            "/nonexistent.onnx",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rsstyle: size '640by480' is not WIDTHxHEIGHT\n"
    );
}
