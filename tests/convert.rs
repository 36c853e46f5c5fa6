//! `rsstyle convert`: frame counts, timestamps, audio, interruption, refusals and errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn convert(args: &[&str]) -> Output {
    Command::new(rsstyle_bin())
        .arg("convert")
        .args(args)
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A 3-second 320×240 clip at 25 fps with a sine-tone audio track, as Matroska.
fn clip_with_audio(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mkv");
    let (ok, log) = gst_launch(
        &format!(
            "videotestsrc num-buffers=75 ! video/x-raw,width=320,height=240,framerate=25/1 ! x264enc ! h264parse \
             ! matroskamux name=m ! filesink location={} \
             audiotestsrc num-buffers=130 ! audioconvert ! audioresample ! opusenc ! m.",
            path.display()
        ),
        &[],
    );
    assert!(ok, "{log}");
    path
}

/// (has video, has audio) of `path`.
fn streams(path: &Path) -> (bool, bool) {
    let out = Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    (text.contains(" video #"), text.contains(" audio #"))
}

#[test]
fn vtest_to_mp4_keeps_every_frame_and_the_duration() {
    let dir = tempfile::tempdir().unwrap();
    let model = invert(dir.path(), "0..255");
    let input = asset("vtest.avi");
    let output = dir.path().join("styled.mp4");
    let out = convert(&[p(&input), p(&output), "--model", p(&model), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).starts_with(&format!(
        "rsstyle: wrote {} (795 frames, ",
        output.display()
    )));
    let (in_frames, in_end, in_mean) = decode_summary(&input);
    let (out_frames, out_end, out_mean) = decode_summary(&output);
    assert_eq!(out_frames, in_frames);
    assert!(
        in_end.nseconds().abs_diff(out_end.nseconds()) < 1_000_000,
        "{in_end} vs {out_end}"
    );
    assert!(
        (out_mean - (255.0 - in_mean)).abs() < 3.0,
        "means {in_mean} → {out_mean}"
    );
    assert!(!dir.path().join(".styled.mp4.partial").exists());
}

#[test]
fn audio_is_kept_and_size_applies() {
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    let input = clip_with_audio(dir.path());
    assert_eq!(streams(&input), (true, true));
    let output = dir.path().join("styled.mkv");
    let out = convert(&[
        p(&input),
        p(&output),
        "--model",
        p(&model),
        "--size",
        "160x120",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(streams(&output), (true, true));
    let (frames, end, _) = decode_summary(&output);
    assert_eq!(frames, 75);
    assert_eq!(end, gst::ClockTime::from_seconds(3));
    let text = String::from_utf8_lossy(
        &Command::new("gst-discoverer-1.0")
            .arg(&output)
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        text.contains("Width: 160") && text.contains("Height: 120"),
        "{text}"
    );
}

#[test]
fn ctrl_c_leaves_a_playable_file_of_the_frames_done() {
    let dir = tempfile::tempdir().unwrap();
    // A slow model: every frame through a 9-deep stack of blurs on full-size frames.
    let model = random_convnet(dir.path(), "net.onnx", None, 0, 9);
    let input = asset("vtest.avi");
    let output = dir.path().join("partial.webm");
    let child = Command::new(rsstyle_bin())
        .args([
            "convert",
            p(&input),
            p(&output),
            "--model",
            p(&model),
            "--quiet",
            "--size",
            "1536x1152",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let text = stderr(&out);
    let frames: usize = text
        .strip_prefix(&format!(
            "rsstyle: interrupted: {} holds the first ",
            output.display()
        ))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(frames > 0 && frames < 795, "{frames} frames");
    let (decoded, _, _) = decode_summary(&output);
    assert_eq!(decoded, frames);
}

#[test]
fn refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    let input = dir.path().join("in.mp4");
    std::fs::copy(asset("tree.avi"), dir.path().join("in.avi")).unwrap();
    std::fs::write(&input, b"precious").unwrap();
    // The input itself.
    let out = convert(&[p(&input), p(&input), "--model", p(&model), "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "rsstyle: refusing to overwrite the input '{}'\n",
            input.display()
        )
    );
    assert_eq!(std::fs::read(&input).unwrap(), b"precious");
    // An existing output without --force.
    let avi = dir.path().join("in.avi");
    let out = convert(&[p(&avi), p(&input), "--model", p(&model)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "rsstyle: '{}' exists: use --force to replace it\n",
            input.display()
        )
    );
    assert_eq!(std::fs::read(&input).unwrap(), b"precious");
    // With --force it is replaced.
    let out = convert(&[
        p(&avi),
        p(&input),
        "--model",
        p(&model),
        "--force",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(decode_summary(&input).0, decode_summary(&avi).0);
}

#[test]
fn bad_requests_fail_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    let input = asset("tree.avi");
    let out_path = dir.path().join("out.mp4");

    let out = convert(&[
        p(&input),
        p(&dir.path().join("out.xyz")),
        "--model",
        p(&model),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "rsstyle: cannot tell the container from '{}' (extension 'xyz'): use .mp4, .mov, .mkv or .webm\n",
            dir.path().join("out.xyz").display()
        )
    );

    let out = convert(&[
        p(&input),
        p(&out_path),
        "--model",
        p(&model),
        "--codec",
        "vp8",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "rsstyle: Vp8 video cannot go into '{}': choose another --codec or extension\n",
            out_path.display()
        )
    );

    let out = convert(&[
        p(&input),
        p(&out_path),
        "--model",
        p(&model),
        "--codec",
        "mpeg2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'mpeg2' for '--codec <CODEC>'"),
        "{}",
        stderr(&out)
    );

    let corrupt = dir.path().join("corrupt.avi");
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.truncate(4096);
    bytes.extend(std::iter::repeat_n(0x5a, 4096));
    std::fs::write(&corrupt, &bytes[..64]).unwrap();
    let out = convert(&[p(&corrupt), p(&out_path), "--model", p(&model), "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("rsstyle: cannot decode '{}': ", corrupt.display())),
        "{}",
        stderr(&out)
    );
    assert!(!out_path.exists());

    let out = convert(&[
        p(&input),
        p(&out_path),
        "--model",
        "/nonexistent/m.onnx",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "rsstyle: model file '/nonexistent/m.onnx' does not exist\n"
    );
    assert!(!out_path.exists());
    assert!(!dir.path().join(".out.mp4.partial").exists());

    let out = convert(&[
        p(&dir.path().join("missing.avi")),
        p(&out_path),
        "--model",
        p(&model),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "rsstyle: input '{}' does not exist\n",
            dir.path().join("missing.avi").display()
        )
    );
}

#[test]
fn a_log_gets_a_progress_line_every_few_seconds() {
    // stderr is a pipe here, as in a log or CI: no progress bar, lines instead.
    let dir = tempfile::tempdir().unwrap();
    let model = blur(dir.path());
    let input = clip_with_audio(dir.path());
    let output = dir.path().join("styled.mkv");
    let out = convert(&[
        p(&input),
        p(&output),
        "--model",
        p(&model),
        "--size",
        "640x480",
        "--progress-every",
        "0.1",
    ]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains('\r'), "terminal control in a log: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    let (last, progress) = lines.split_last().unwrap();
    assert!(
        last.starts_with(&format!("rsstyle: wrote {} (75 frames, ", output.display())),
        "{text}"
    );
    assert!(!progress.is_empty(), "no progress line: {text}");
    let mut previous = 0;
    for line in progress {
        // "rsstyle: N frames, R fps" or "rsstyle: N of ~T frames (P%), R fps, ETA m:ss"
        let rest = line
            .strip_prefix("rsstyle: ")
            .unwrap_or_else(|| panic!("{line}"));
        let frames: u64 = rest.split(' ').next().unwrap().parse().unwrap();
        assert!(frames >= previous && frames <= 75, "{line}");
        previous = frames;
        assert!(rest.contains(" fps"), "{line}");
        if rest.contains(" of ~") {
            assert!(rest.contains("%), ") && rest.contains(", ETA "), "{line}");
            let eta = rest.rsplit("ETA ").next().unwrap();
            let (m, s) = eta.split_once(':').unwrap();
            assert!(m.parse::<u64>().is_ok() && s.len() == 2, "{line}");
        }
    }
}
