//! `scripts/install.sh`: a user install that GStreamer and a new login shell find without
//! any environment variable, and the uninstall that removes it. Runs in a temporary HOME.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs `script` in a clean login shell (`bash -l`, as after logging in) whose HOME is
/// `home`: no GST_PLUGIN_PATH, no ORT_DYLIB_PATH, the system PATH.
fn new_login_shell(home: &Path, script: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("env");
    cmd.arg("-i")
        .arg(format!("HOME={}", home.display()))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin");
    for (k, v) in env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.args(["bash", "-l", "-c", script]).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn install(home: &Path, args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh");
    // The debug build that `cargo build` made before the tests (scripts/test.sh).
    plugin_dir();
    Command::new(script)
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("GST_PLUGIN_PATH")
        .output()
        .unwrap()
}

#[test]
fn install_then_uninstall_for_the_user() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    // Debian's login profile: it puts ~/.local/bin on the PATH when the folder exists.
    std::fs::copy("/etc/skel/.profile", home.join(".profile"))
        .expect("/etc/skel/.profile (Debian's bash package) exists");

    let out = install(home, &["--no-build", "--debug"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("install: done: 'gst-inspect-1.0 rsstyle' finds the element"),
        "{}",
        text(&out)
    );
    let plugins = home.join(".local/share/gstreamer-1.0/plugins");
    assert!(plugins.join("libgstrsstyle.so").is_file());
    assert!(home.join(".local/bin/rsstyle").is_file());
    assert!(
        home.join(".local/lib/rsstyle/libonnxruntime.so.1.30.0")
            .is_file()
    );

    // A new shell: the element, the tool on the PATH, and the installed models.
    let out = new_login_shell(home, "gst-inspect-1.0 rsstyle", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let inspected = text(&out);
    assert!(inspected.contains("Factory Details:"), "{inspected}");
    assert!(
        inspected.contains(&plugins.join("libgstrsstyle.so").display().to_string()),
        "{inspected}"
    );
    let out = new_login_shell(home, "command -v rsstyle && rsstyle models", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = text(&out);
    assert!(
        listed.starts_with(&format!("{}\n", home.join(".local/bin/rsstyle").display())),
        "{listed}"
    );
    assert!(listed.contains("paintings: "), "{listed}");

    // The element styles frames with the installed ONNX Runtime, not the build tree's.
    let model = home.join(".local/lib/rsstyle/models/paintings-lite.onnx");
    let pipeline = format!(
        "gst-launch-1.0 -q videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=32,height=24 \
         ! rsstyle model={} ! fakesink",
        model.display()
    );
    let out = new_login_shell(home, &pipeline, &[("LD_DEBUG", "files")]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let loaded = log
        .lines()
        .find(|l| l.contains("file=") && l.contains("libonnxruntime.so.1.30.0"))
        .unwrap_or_else(|| panic!("ONNX Runtime was not loaded:\n{log}"));
    assert!(
        loaded.contains(&home.display().to_string()),
        "loaded from elsewhere: {loaded}"
    );

    let out = install(home, &["--uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!plugins.join("libgstrsstyle.so").exists());
    assert!(!plugins.join("rsstyle").exists());
    assert!(!home.join(".local/bin/rsstyle").exists());
    assert!(!home.join(".local/lib/rsstyle").exists());
    let out = new_login_shell(home, "gst-inspect-1.0 rsstyle", &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("No such element or plugin 'rsstyle'"),
        "{}",
        text(&out)
    );
}
