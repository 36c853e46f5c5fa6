//! The element inferring on a real Triton Inference Server (2.51, from PyPI nvidia-pytriton;
//! `scripts/setup.sh --test` installs it): the repository `rsstyle serve-repo` writes, output
//! equal to local inference, requests of separate pipelines merged into server batches, a
//! server killed and restarted mid-stream, and the start-up errors. Fault cases a real server
//! cannot stage on demand (out-of-order replies, refusals, slow replies) are unit tests of
//! `engine::remote` against a mock server.

mod common;
mod triton;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gstrsstyle::engine::remote;
use gstrsstyle::frame::PixelFormat;
use triton::Triton;

const BUNDLED: [&str; 2] = ["paintings", "paintings-lite"];

fn bundled(name: &str) -> PathBuf {
    triton::root().join("models").join(format!("{name}.onnx"))
}

/// One server for the tests that only read: the bundled models and a 1-channel model, in a
/// repository written by `rsstyle serve-repo --backend python`.
fn shared() -> &'static Triton {
    static SERVER: OnceLock<Triton> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let models: Vec<PathBuf> = BUNDLED.iter().map(|n| bundled(n)).collect();
        let models: Vec<&Path> = models.iter().map(PathBuf::as_path).collect();
        // A short queue delay lets the dynamic batcher merge requests that arrive together.
        let repo = triton::serve_repo(dir.path(), &models, &["--max-queue-delay-us", "20000"]);
        // The same model under its own name, for the test that counts its executions.
        let lite = bundled("paintings-lite");
        triton::serve_repo(
            dir.path(),
            &[&lite],
            &["--max-queue-delay-us", "20000", "--name", "batching"],
        );
        // A model rsstyle cannot use (1-channel images; serve-repo refuses it), written by hand.
        let grey = repo.join("grey");
        std::fs::create_dir_all(grey.join("1")).unwrap();
        std::fs::copy(grey_model(dir.path()), grey.join("1/model.onnx")).unwrap();
        std::fs::write(grey.join("1/model.py"), remote::repository::PYTHON_MODEL).unwrap();
        std::fs::write(
            grey.join("config.pbtxt"),
            "name: \"grey\"\nbackend: \"python\"\nmax_batch_size: 8\n\
             input [ { name: \"input\" data_type: TYPE_FP32 dims: [ 1, -1, -1 ] } ]\n\
             output [ { name: \"output\" data_type: TYPE_FP32 dims: [ 1, -1, -1 ] } ]\n\
             instance_group [ { count: 1 kind: KIND_CPU } ]\n",
        )
        .unwrap();
        Triton::start(&repo)
    })
}

fn remote_props<'a>(server: &Triton, model: &str) -> Vec<(&'a str, glib::Value)> {
    vec![
        ("device", server.device().to_value()),
        ("server-model", model.to_value()),
    ]
}

#[test]
fn serve_repo_writes_a_triton_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let run = |args: &[&str]| {
        let out = Command::new(rsstyle_bin())
            .arg("serve-repo")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let model = bundled("paintings-lite");
    let (ok, log) = run(&[model.to_str().unwrap(), repo.to_str().unwrap()]);
    assert!(ok, "{log}");
    let folder = repo.join("paintings-lite");
    assert_eq!(
        std::fs::read(folder.join("1/model.onnx")).unwrap(),
        std::fs::read(&model).unwrap()
    );
    assert!(!folder.join("1/model.py").exists());
    let config = std::fs::read_to_string(folder.join("config.pbtxt")).unwrap();
    let manifest = gstrsstyle::model::Model::load(&model, None, &Default::default())
        .unwrap()
        .manifest;
    let stored = serde_json::to_string(&remote::repository::manifest_patch(&manifest))
        .unwrap()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    assert_eq!(
        config,
        format!(
            "# Triton model configuration written by `rsstyle serve-repo` for paintings-lite.onnx.\n\
             name: \"paintings-lite\"\n\
             backend: \"onnxruntime\"\n\
             max_batch_size: 8\n\
             input [\n  {{\n    name: \"input\"\n    data_type: TYPE_FP32\n    dims: [ 3, -1, -1 ]\n  }},\n  \
             {{\n    name: \"style\"\n    data_type: TYPE_FP32\n    dims: [ 8 ]\n  }}\n]\n\
             output [\n  {{\n    name: \"output\"\n    data_type: TYPE_FP32\n    dims: [ 3, -1, -1 ]\n  }}\n]\n\
             dynamic_batching {{\n  max_queue_delay_microseconds: 0\n}}\n\
             parameters {{\n  key: \"rsstyle.manifest\"\n  value: {{ string_value: \"{stored}\" }}\n}}\n"
        )
    );
    assert!(stored.contains("-1..1") && stored.contains("\\\"size_multiple\\\":4"));

    // A second run refuses to replace the folder unless told to.
    let (ok, log) = run(&[model.to_str().unwrap(), repo.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        log.contains(&format!(
            "'{}' exists (--force replaces it)",
            folder.display()
        )),
        "{log}"
    );
    let (ok, log) = run(&[
        model.to_str().unwrap(),
        repo.to_str().unwrap(),
        "--force",
        "--backend",
        "python",
        "--name",
        "night",
        "--max-batch-size",
        "4",
        "--instances",
        "2",
        "--threads",
        "1",
    ]);
    assert!(ok, "{log}");
    let config = std::fs::read_to_string(repo.join("night/config.pbtxt")).unwrap();
    assert!(config.contains("name: \"night\"\nbackend: \"python\"\nmax_batch_size: 4\n"));
    assert!(config.contains("instance_group [\n  {\n    count: 2\n    kind: KIND_CPU\n  }\n]"));
    assert!(config.contains("key: \"intra_op_thread_count\"\n  value: { string_value: \"1\" }"));
    assert_eq!(
        std::fs::read_to_string(repo.join("night/1/model.py")).unwrap(),
        remote::repository::PYTHON_MODEL
    );

    let (ok, log) = run(&[
        model.to_str().unwrap(),
        bundled("paintings").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        log.contains("is the repository folder, not a model"),
        "{log}"
    );
}

#[test]
fn bundled_models_through_triton_match_local_inference() {
    let server = shared();
    let (w, h) = (96, 72);
    let input = pattern(w, h);
    for name in BUNDLED {
        let local = run_frame(
            &[("model", bundled(name).display().to_string().to_value())],
            PixelFormat::Rgb,
            w,
            h,
            &input,
        );
        // No model file: the manifest (range -1..1, size multiple 4) comes from the server.
        let remote = run_frame(&remote_props(server, name), PixelFormat::Rgbx, w, h, &input);
        let diff = max_difference(&local, &remote);
        assert!(diff <= 1, "{name}: differs by {diff}");
        let changed = input.iter().zip(&remote).filter(|(a, b)| a != b).count();
        assert!(
            changed > input.len() / 2,
            "{name} did not restyle the frame"
        );
    }
    // The model file given: it names the server's model and supplies the manifest.
    let name = "paintings-lite";
    let with_file = run_frame(
        &[
            ("model", bundled(name).display().to_string().to_value()),
            ("device", server.device().to_value()),
        ],
        PixelFormat::Bgr,
        w,
        h,
        &input,
    );
    let local = run_frame(
        &[("model", bundled(name).display().to_string().to_value())],
        PixelFormat::Rgb,
        w,
        h,
        &input,
    );
    assert!(max_difference(&local, &with_file) <= 1);
}

/// `gst-launch-1.0` styling `frames` test frames on the server.
fn launch_pipeline(server: &Triton, frames: u32) -> std::process::Child {
    Command::new("gst-launch-1.0")
        .arg("-q")
        .args(
            format!(
                "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=160,height=120 \
                 ! rsstyle device={} server-model=batching batch-size=1 \
                 ! fakesink",
                server.device()
            )
            .split_whitespace(),
        )
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_pipelines_are_merged_into_server_batches() {
    let server = shared();
    let address = match server.device().parse().unwrap() {
        gstrsstyle::engine::Device::Server(a) => a,
        _ => unreachable!(),
    };
    let executions = |stats: &[remote::BatchStatistics]| -> Vec<(u64, u64)> {
        stats.iter().map(|s| (s.batch_size, s.executions)).collect()
    };
    let before = remote::model_statistics(&address, "batching").unwrap();
    let frames = 40;
    let pipelines: Vec<_> = (0..2).map(|_| launch_pipeline(server, frames)).collect();
    for p in pipelines {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let after = remote::model_statistics(&address, "batching").unwrap();
    // Executions per batch size during the run.
    let ran: Vec<(u64, u64)> = executions(&after)
        .into_iter()
        .map(|(size, n)| {
            let earlier = executions(&before)
                .into_iter()
                .find(|(s, _)| *s == size)
                .map_or(0, |(_, n)| n);
            (size, n - earlier)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let frames_inferred: u64 = ran.iter().map(|(size, n)| size * n).sum();
    assert_eq!(frames_inferred, 2 * frames as u64, "{ran:?}");
    let merged: u64 = ran
        .iter()
        .filter(|(size, _)| *size > 1)
        .map(|(_, n)| n)
        .sum();
    assert!(
        merged > 0,
        "no server batch of more than one frame: {ran:?}"
    );
    eprintln!("server executions (batch size, count): {ran:?}");
}

/// An element styling through `server` on the identity model, in a harness with a bus.
fn identity_harness(server: &Triton, engine_options: &str) -> (gst_check::Harness, gst::Bus) {
    init();
    let element = gst::ElementFactory::make("rsstyle")
        .property("device", server.device())
        .property("server-model", "identity")
        .property("engine-options", engine_options)
        // Each frame exactly as the server returns it (no blending with the previous one).
        .property("temporal-smoothing", 0.0)
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={W},height={H},framerate=25/1"
    ));
    h.play();
    (h, bus)
}

const W: usize = 40;
const H: usize = 32;

/// Frame `i`: its index in the first pixel, a gradient elsewhere.
fn numbered(i: usize) -> Vec<[u8; 3]> {
    let mut p = pattern(W, H);
    p[0] = [(i % 256) as u8, (i / 256) as u8, 77];
    p
}

#[test]
fn triton_killed_mid_stream_resumes_after_a_restart_or_fails_in_time() {
    triton::require_installed();
    let dir = tempfile::tempdir().unwrap();
    let model = identity(dir.path());
    let repo = triton::serve_repo(dir.path(), &[&model], &[]);
    let mut server = Triton::start(&repo);
    let (grpc, http) = (server.grpc_port, server.http_port);

    // 1. Killed after frame 15 and restarted a second later: every frame comes out, in order.
    let (mut h, bus) = identity_harness(&server, "timeout=60000,retries=1000");
    let n = 45;
    let (kill, killed) = std::sync::mpsc::channel::<()>();
    let restarter = {
        let repo = repo.clone();
        std::thread::spawn(move || {
            killed.recv().unwrap();
            server.kill();
            let down = Instant::now();
            std::thread::sleep(Duration::from_secs(1));
            let server = Triton::start_on(&repo, grpc, http);
            (server, down.elapsed())
        })
    };
    let started = Instant::now();
    for i in 0..n {
        h.push(rgb_buffer(&numbered(i), W, H, i as u64 * 40))
            .unwrap();
        if i == 15 {
            kill.send(()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(h.push_event(gst::event::Eos::new()));
    for i in 0..n {
        let b = h.pull().unwrap();
        assert_eq!(b.pts().unwrap().mseconds(), i as u64 * 40, "frame {i}");
        assert_eq!(rgb_pixels(&b, W, H), numbered(i), "frame {i}");
    }
    let (server, outage) = restarter.join().unwrap();
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("frames-in").unwrap(), n as u64);
    assert_eq!(stats.get::<u64>("frames-out").unwrap(), n as u64);
    assert!(bus.pop_filtered(&[gst::MessageType::Error]).is_none());
    eprintln!(
        "{n} frames through a server down for {outage:?}, in {:?}",
        started.elapsed()
    );
    drop(h);

    // 2. Killed for good: the element fails within its timeout with the documented error,
    // after pushing, in order, the frames inferred before.
    let mut server = server;
    let timeout_ms = 3000;
    let (mut h, bus) = identity_harness(&server, &format!("timeout={timeout_ms},retries=1000"));
    for i in 0..5 {
        h.push(rgb_buffer(&numbered(i), W, H, i as u64 * 40))
            .unwrap();
    }
    for i in 0..5 {
        assert_eq!(rgb_pixels(&h.pull().unwrap(), W, H), numbered(i));
    }
    server.kill();
    let killed_at = Instant::now();
    let mut pushed = 5;
    while h
        .push(rgb_buffer(&numbered(pushed), W, H, pushed as u64 * 40))
        .is_ok()
        && killed_at.elapsed() < Duration::from_secs(30)
    {
        pushed += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let error = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
        .expect("an error on the bus");
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_millis(timeout_ms + 2000),
        "failed after {took:?}"
    );
    let gst::MessageView::Error(e) = error.view() else {
        unreachable!()
    };
    let text = e.error().message().to_string();
    assert!(
        text.starts_with(&format!(
            "inference server grpc://127.0.0.1:{grpc}, model 'identity': the server could not be reached ("
        )),
        "{text}"
    );
    assert!(text.contains("gRPC status Unavailable"), "{text}");
    assert!(!text.contains('\n'));
    // Nothing after the failure.
    assert!(h.try_pull().is_none(), "a frame after the failure");
}

/// Starts `videotestsrc ! rsstyle props ! fakesink` and returns the error the element posts.
fn start_error(props: &[(&str, glib::Value)]) -> String {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=2 ! video/x-raw,width=16,height=16 ! rsstyle name=style ! fakesink",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let style = pipeline.by_name("style").unwrap();
    for (name, value) in props {
        style.set_property_from_value(name, value);
    }
    let started = Instant::now();
    let result = pipeline.set_state(gst::State::Paused);
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Error])
        .expect("an error message");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(15));
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    assert_eq!(e.src().map(|s| s.name().to_string()), Some("style".into()));
    let text = e.error().message().to_string();
    assert!(!text.contains('\n'), "{text}");
    text
}

#[test]
fn unknown_model_is_a_one_line_error() {
    let server = shared();
    assert_eq!(
        start_error(&remote_props(server, "candy")),
        format!(
            "inference server {}, model 'candy': the model is not available: gRPC status \
             NotFound (Request for unknown model: 'candy' is not found)",
            server.device()
        )
    );
}

#[test]
fn a_model_of_the_wrong_shape_is_a_one_line_error() {
    let server = shared();
    assert_eq!(
        start_error(&remote_props(server, "grey")),
        format!(
            "'{}/grey' is not an image-to-image model: input 'input' has 1 channel; rsstyle \
             needs a 3-channel (RGB) image",
            server.device()
        )
    );
}

#[test]
fn a_server_down_at_start_is_a_one_line_error() {
    let port = triton::free_port();
    let text = start_error(&[
        ("device", format!("grpc://127.0.0.1:{port}").to_value()),
        ("server-model", "paintings".to_value()),
    ]);
    assert!(
        text.starts_with(&format!(
            "inference server grpc://127.0.0.1:{port}, model 'paintings': the server cannot \
             be reached: gRPC status Unavailable ("
        )),
        "{text}"
    );
    assert!(text.contains("Connection refused"), "{text}");
}

#[test]
fn the_latency_query_includes_the_round_trip() {
    let server = shared();
    let mut props = remote_props(server, "paintings-lite");
    props.push(("batch-timeout", 5u32.to_value()));
    let mut h = harness(&props, PixelFormat::Rgb, 64, 48);
    h.set_upstream_latency(gst::ClockTime::ZERO);
    let frame = pattern(64, 48);
    let stride = default_stride(PixelFormat::Rgb, 64);
    for _ in 0..3 {
        let buf = gst::Buffer::from_mut_slice(pack(&frame, 64, 48, PixelFormat::Rgb, stride, 0));
        h.push(buf).unwrap();
        h.pull().unwrap();
    }
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    // On a server, the engine's inference time is the round trip.
    let round_trip_ms = stats.get::<f64>("inference-ms-p50").unwrap();
    assert!(round_trip_ms > 0.0);
    let latency = h.query_latency().unwrap();
    assert!(
        latency.nseconds() as f64 / 1e6 >= 5.0 + round_trip_ms,
        "latency {latency} < batch-timeout + round trip {round_trip_ms} ms"
    );
}
