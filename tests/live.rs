//! `rsstyle live`, `cameras` and `models`, without a camera or a display: a test source or the
//! synthetic camera into a recording, keys on standard input.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn rsstyle(args: &[&str]) -> std::process::Output {
    Command::new(rsstyle_bin())
        .args(args)
        .env_remove("ORT_DYLIB_PATH")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn test_source_into_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let record = dir.path().join("live.mp4");
    let out = rsstyle(&[
        "live",
        "--model",
        p(&model),
        "--source",
        "test",
        "--size",
        "320x240",
        "--no-preview",
        "--record",
        p(&record),
        "--frames",
        "30",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).ends_with(&format!(
        "rsstyle: 30 frames styled, recorded to {}\n",
        record.display()
    )));
    let (frames, _, _) = decode_summary(&record);
    assert_eq!(frames, 30);
}

#[test]
fn synthetic_camera_through_the_capture_path() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let record = dir.path().join("camera.mp4");
    let out = rsstyle(&[
        "live",
        "--model",
        p(&model),
        "--camera",
        "fake",
        "--size",
        "160x120",
        "--fps",
        "30",
        "--no-preview",
        "--no-overlay",
        "--record",
        p(&record),
        "--frames",
        "20",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .starts_with("rsstyle: capturing from synthetic camera at 160x120, 30 fps\n")
    );
    let (frames, _, mean) = decode_summary(&record);
    assert_eq!(frames, 20);
    // The synthetic camera's first frame has mean grey ≈ 96; inverted it is ≈ 159.
    assert!(mean > 140.0, "mean grey {mean}");
}

#[test]
fn no_camera_says_what_was_found_and_what_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let out = rsstyle(&["live", "--model", p(&model), "--no-preview"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "rsstyle: camera '0' is not available: no cameras were found; use --source test (a test pattern), \
         --source FILE or --source 'GSTREAMER SOURCE DESCRIPTION' instead\n"
    );
}

#[test]
fn keys_switch_models_and_strength_and_quit() {
    let dir = tempfile::tempdir().unwrap();
    let first = invert(dir.path(), "0..255");
    let second = identity(dir.path());
    let mut child = Command::new(rsstyle_bin())
        .args([
            "live",
            "--model",
            p(&first),
            "--model",
            p(&second),
            "--source",
            "test",
            "--size",
            "160x120",
        ])
        .args(["--no-preview", "--no-overlay"])
        .env_remove("ORT_DYLIB_PATH")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    for key in ["n", "-", "o", "o", "q"] {
        writeln!(stdin, "{key}").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    let expected = format!(
        "rsstyle: model {}\nrsstyle: strength 0.9\nrsstyle: original\nrsstyle: styled\n",
        second.display()
    );
    assert!(log.contains(&expected), "{log}");
}

#[test]
fn cameras_and_models_report_what_there_is() {
    let out = rsstyle(&["cameras"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "no cameras found (rsstyle live can use --source test, a file, or a GStreamer source)\n"
    );

    let dir = tempfile::tempdir().unwrap();
    conditioned_offsets(dir.path());
    std::fs::write(dir.path().join("broken.onnx"), b"").unwrap();
    let out = Command::new(rsstyle_bin())
        .arg("models")
        .env("RSSTYLE_MODELS", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = text(&out.stdout);
    assert!(
        listing.contains(&format!(
            "broken.onnx: unusable: model file '{}' is empty\n",
            dir.path().join("broken.onnx").display()
        )),
        "{listing}"
    );
    assert!(listing.contains("conditioned: "), "{listing}");
    assert!(
        listing.contains("  style 0: warm\n  style 1: cross\n  style 2: blue\n"),
        "{listing}"
    );
}
