//! Real gst-launch-1.0 pipelines with the built plugin, and ONNX Runtime library discovery
//! (which is per process, so it is tested in child processes).

mod common;

use std::path::Path;

use common::*;

#[test]
fn videotestsrc_to_fakesink() {
    let dir = tempfile::tempdir().unwrap();
    let model = random_convnet(dir.path(), "net.onnx", None, 0, 7);
    let (ok, log) = gst_launch(
        &format!(
            "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240 ! rsstyle model={} ! fakesink",
            model.display()
        ),
        &[],
    );
    assert!(ok, "{log}");
}

#[test]
fn file_to_file_keeps_frames_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let input = asset("vtest.avi");
    let output = dir.path().join("styled.mp4");
    let (ok, log) = gst_launch(
        &format!(
            "filesrc location={} ! decodebin ! videoconvert ! rsstyle model={} ! videoconvert ! \
             video/x-raw,format=I420 ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
            input.display(),
            model.display(),
            output.display()
        ),
        &[],
    );
    assert!(ok, "{log}");
    let (in_frames, in_end, in_mean) = decode_summary(&input);
    let (out_frames, out_end, out_mean) = decode_summary(&output);
    assert_eq!(in_frames, 795);
    assert_eq!(out_frames, in_frames);
    let drift = in_end.nseconds().abs_diff(out_end.nseconds());
    assert!(drift < 1_000_000, "durations {in_end} vs {out_end}");
    // The model inverts: the first frame's mean grey level mirrors around 127.5.
    assert!(
        (out_mean - (255.0 - in_mean)).abs() < 3.0,
        "means {in_mean} → {out_mean}"
    );
}

fn old_ort() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".deps/onnxruntime-1.29.0/libonnxruntime.so.1.29.0");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh --test",
        p.display()
    );
    p.display().to_string()
}

fn launch_identity_with_ort(ort: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    gst_launch(
        &format!(
            "videotestsrc num-buffers=2 ! rsstyle model={} ! fakesink",
            model.display()
        ),
        &[("ORT_DYLIB_PATH", ort)],
    )
}

#[test]
fn onnx_runtime_too_old_is_refused() {
    let old = old_ort();
    let (ok, log) = launch_identity_with_ort(&old);
    assert!(!ok);
    assert!(
        log.contains(&format!(
            "ONNX Runtime library '{old}' is version 1.29.0, but rsstyle needs 1.30 or newer; run scripts/setup.sh, \
             or set ORT_DYLIB_PATH to libonnxruntime.so of version 1.30 or newer"
        )),
        "{log}"
    );
}

#[test]
fn onnx_runtime_absent_is_reported() {
    let (ok, log) = launch_identity_with_ort("/nonexistent/libonnxruntime.so");
    assert!(!ok);
    assert!(
        log.contains(
            "ONNX Runtime library not found: ORT_DYLIB_PATH is '/nonexistent/libonnxruntime.so', which does not \
             exist; run scripts/setup.sh"
        ),
        "{log}"
    );
}

#[test]
fn a_library_that_is_not_onnx_runtime_is_reported() {
    let zlib = "/lib/x86_64-linux-gnu/libz.so.1";
    let (ok, log) = launch_identity_with_ort(zlib);
    assert!(!ok);
    assert!(
        log.contains(&format!(
            "'{zlib}' is not an ONNX Runtime library (it does not export OrtGetApiBase)"
        )),
        "{log}"
    );
}
