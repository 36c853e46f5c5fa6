//! Every script in `pipelines/` runs, with `videotestsrc` standing in for the camera and
//! `fakesink` for displays and the virtual camera.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(name)
}

/// Runs a pipeline script with a test model and `env`, expecting success.
fn run(name: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let mut cmd = Command::new(script(name));
    cmd.env("MODEL", &model)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env(
            "SOURCE",
            "videotestsrc num-buffers=30 ! video/x-raw,width=320,height=240,framerate=30/1",
        )
        .env("SINK", "fakesink")
        .env_remove("ORT_DYLIB_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn webcam_preview() {
    run("webcam-preview.sh", &[]);
}

#[test]
fn webcam_virtual_camera() {
    // No v4l2loopback device exists here: the sink stands in for it.
    run("webcam-virtual-camera.sh", &[("VCAM_SINK", "fakesink")]);
}

#[test]
fn cpu_realtime() {
    run("cpu-realtime.sh", &[]);
}

#[test]
fn side_by_side() {
    run("side-by-side.sh", &[]);
}

#[test]
fn file_to_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let input = asset("tree.avi");
    run(
        "file-to-file.sh",
        &[
            ("INPUT", input.to_str().unwrap()),
            ("OUTPUT", output.to_str().unwrap()),
        ],
    );
    assert_eq!(decode_summary(&output).0, decode_summary(&input).0);
}

#[test]
fn record_while_preview() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("rec.mp4");
    run(
        "record-while-preview.sh",
        &[("OUTPUT", output.to_str().unwrap())],
    );
    assert_eq!(decode_summary(&output).0, 30);
}

#[test]
fn a_missing_model_is_named() {
    let out = Command::new(script("webcam-preview.sh"))
        .env("MODEL", "/nonexistent/m.onnx")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "MODEL '/nonexistent/m.onnx' does not exist\n"
    );
}

#[test]
fn serve_rtsp() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let mut server = Command::new(script("serve-rtsp.sh"))
        .env("MODEL", &model)
        .env("RSSTYLE_BIN", rsstyle_bin())
        .env("SOURCE", "test")
        .env("SIZE", "320x240")
        .env("PORT", "0")
        .env_remove("ORT_DYLIB_PATH")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    // Keep draining the server's messages (for the failure report, and so it never blocks).
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let url = first
        .trim()
        .strip_prefix("rsstyle: serving ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    assert!(
        url.starts_with("rtsp://127.0.0.1:") && url.ends_with("/style"),
        "{url}"
    );
    // A client receives and decodes ten frames. One retry: once in about thirty runs of the
    // whole suite the first connection was closed by the server before any reply (not
    // reproduced in isolation); a second failure fails the test with both logs.
    let client = || {
        gst_launch(
            &format!(
                "rtspsrc location={url} ! rtph264depay ! avdec_h264 ! identity eos-after=10 ! fakesink"
            ),
            &[],
        )
    };
    let (ok, log) = match client() {
        (true, log) => (true, log),
        (false, first) => {
            let (ok, second) = client();
            (ok, format!("{first}\n(retry) {second}"))
        }
    };
    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    let server_log = rest.join().unwrap();
    assert!(ok, "client: {log}\nserver: {server_log}");
    assert!(status.success(), "{status:?}");
}
