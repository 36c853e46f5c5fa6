//! `rsstyle live`: a camera (or any source) styled live into a preview window, a recording
//! and/or a virtual camera, with keys to switch models and styles.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

use super::capture::{self, FrameSource};

/// Options of `rsstyle live`.
#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// Style models (repeat the option for several; keys n / p switch between them).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// Camera index or name; "fake" is a synthetic camera.
    #[arg(long, default_value = "0")]
    pub camera: String,
    /// Instead of a camera: "test" (a test pattern), a video file, or a GStreamer source
    /// description such as "v4l2src device=/dev/video2".
    #[arg(long)]
    pub source: Option<String>,
    /// Capture size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    pub size: String,
    /// Capture frame rate.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Record the styled video to this file (H.264 in MP4).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Feed a v4l2loopback virtual camera, e.g. /dev/video10.
    #[arg(long)]
    pub vcam: Option<PathBuf>,
    /// No preview window.
    #[arg(long)]
    pub no_preview: bool,
    /// No fps / latency overlay.
    #[arg(long)]
    pub no_overlay: bool,
    /// Style index for conditioned multi-style models.
    #[arg(long, default_value_t = 0)]
    pub style: u32,
    /// Blend of styled and original frame (0..1).
    #[arg(long, default_value_t = 1.0)]
    pub strength: f64,
    /// Run the network on frames scaled by this factor (0.05..1).
    #[arg(long, default_value_t = 1.0)]
    pub inference_scale: f64,
    /// Inference device: cpu, cuda, cuda:N, tensorrt, tensorrt:N, auto or grpc://HOST:PORT (an
    /// inference server, see --server-model).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub server: super::remote::ServerArgs,
    /// CPU inference threads (0: the CPUs this process may use, by affinity and CPU quota).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Stop after this many styled frames (0: run until q or Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub frames: u64,
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    NextModel,
    PreviousModel,
    NextStyle,
    PreviousStyle,
    Stronger,
    Weaker,
    ToggleOriginal,
    Quit,
}

const KEYS: &str = "keys: n/p next/previous model, ]/[ next/previous style, +/- strength, o original on/off, q quit";

fn command_for(key: &str) -> Option<Command> {
    Some(match key {
        "n" | "Right" => Command::NextModel,
        "p" | "Left" => Command::PreviousModel,
        "]" | "bracketright" | "Up" => Command::NextStyle,
        "[" | "bracketleft" | "Down" => Command::PreviousStyle,
        "+" | "plus" | "equal" => Command::Stronger,
        "-" | "minus" => Command::Weaker,
        "o" | "space" => Command::ToggleOriginal,
        "q" | "Escape" => Command::Quit,
        _ => return None,
    })
}

/// A camera running on its own thread, waiting for the appsrc to feed.
struct CameraThread {
    appsrc: crossbeam_channel::Sender<gst_app::AppSrc>,
    handle: std::thread::JoinHandle<()>,
}

/// Opens the camera on a new thread (cameras are not `Send`) and returns the appsrc caps
/// description for its format.
fn start_camera(spec: &str, width: u32, height: u32, fps: u32) -> Result<(String, CameraThread)> {
    let (opened, format) = crossbeam_channel::bounded::<Result<(u32, u32, u32, String)>>(1);
    let (appsrc, feed_into) = crossbeam_channel::bounded::<gst_app::AppSrc>(1);
    let spec = spec.to_string();
    let handle = std::thread::spawn(move || {
        let camera = match capture::open_camera(&spec, width, height, fps) {
            Ok(camera) => camera,
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        };
        let (w, h, f) = camera.format();
        let _ = opened.send(Ok((w, h, f, camera.name())));
        if let Ok(appsrc) = feed_into.recv() {
            feed(camera, appsrc, (w, h));
        }
    });
    let (w, h, f, name) = format.recv().context("the camera thread ended")??;
    eprintln!("rsstyle: capturing from {name} at {w}x{h}, {f} fps");
    let caps = format!(
        "appsrc name=camera is-live=true do-timestamp=true format=time \
         caps=video/x-raw,format=RGB,width={w},height={h},framerate={f}/1"
    );
    Ok((caps, CameraThread { appsrc, handle }))
}

/// The source part of the pipeline, and the camera feeding it (if any).
fn source(args: &LiveArgs, width: u32, height: u32) -> Result<(String, Option<CameraThread>)> {
    let raw =
        |w: u32, h: u32, fps: u32| format!("video/x-raw,width={w},height={h},framerate={fps}/1");
    Ok(match args.source.as_deref() {
        Some("test") => (
            format!(
                "videotestsrc is-live=true pattern=ball ! {}",
                raw(width, height, args.fps)
            ),
            None,
        ),
        Some(file) if std::path::Path::new(file).is_file() => (
            format!(
                "filesrc location=\"{file}\" ! decodebin ! videoconvert ! videoscale ! video/x-raw,width={width},height={height}"
            ),
            None,
        ),
        Some(description) => (description.to_string(), None),
        None => {
            let (caps, camera) = start_camera(&args.camera, width, height, args.fps)?;
            (caps, Some(camera))
        }
    })
}

fn pipeline_description(args: &LiveArgs, source: &str) -> String {
    // A file plays at its own pace and loses no frame; live sources are shown as they come,
    // dropping frames rather than falling behind.
    let from_file = args
        .source
        .as_deref()
        .is_some_and(|s| std::path::Path::new(s).is_file());
    let (leaky, queue) = if from_file {
        (false, "queue")
    } else {
        (true, "queue leaky=downstream max-size-buffers=2")
    };
    let mut d = format!(
        "{source} ! videoconvert ! rsstyle name=style leaky={leaky} style={} strength={} inference-scale={} \
         device={}{} threads={}",
        args.style,
        args.strength,
        args.inference_scale,
        args.device,
        args.server.properties(),
        args.threads
    );
    if !args.no_overlay {
        d += " ! textoverlay name=overlay valignment=top halignment=left font-desc=\"Sans 12\" shaded-background=true";
    }
    d += " ! tee name=t";
    let mut outputs = 0;
    if !args.no_preview {
        d += &format!(" t. ! {queue} ! videoconvert ! autovideosink sync={from_file}");
        outputs += 1;
    }
    if let Some(path) = &args.record {
        d += &format!(
            " t. ! queue ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency bframes=0 \
             ! h264parse ! mp4mux ! filesink location=\"{}\"",
            path.display()
        );
        outputs += 1;
    }
    if let Some(dev) = &args.vcam {
        d += &format!(
            " t. ! {queue} ! videoconvert ! video/x-raw,format=YUY2 ! v4l2sink device=\"{}\" sync={from_file}",
            dev.display()
        );
        outputs += 1;
    }
    if outputs == 0 {
        d += " t. ! queue ! fakesink sync=false";
    }
    d
}

/// What the keys change.
struct Controls {
    model: usize,
    style: u32,
    strength: f64,
    /// Strength saved while the original is shown.
    saved_strength: Option<f64>,
}

/// Runs the live filter until q, Ctrl-C, the end of the source or `--frames`.
pub fn run(args: &LiveArgs) -> Result<()> {
    for m in &args.models {
        if !m.is_file() {
            bail!("model file '{}' does not exist", m.display());
        }
    }
    let (width, height) = super::parse_size(&args.size)?;
    gst::init()?;
    gstrsstyle::element::register(None)?;
    let (source, camera) = source(args, width, height)?;
    let description = pipeline_description(args, &source);
    let pipeline = gst::parse::launch(&description)
        .with_context(|| format!("cannot build the pipeline: {description}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let style = pipeline.by_name("style").context("rsstyle element")?;
    style.set_property("model", args.models[0].display().to_string());
    let overlay = pipeline.by_name("overlay");

    let (commands, received) = crossbeam_channel::unbounded::<Command>();
    // Keys typed in the preview window arrive as navigation events.
    {
        let commands = commands.clone();
        style.static_pad("src").unwrap().add_probe(
            gst::PadProbeType::EVENT_UPSTREAM,
            move |_, info| {
                if let Some(gst::PadProbeData::Event(event)) = &info.data
                    && let Ok(gst_video::NavigationEvent::KeyPress { key, .. }) =
                        gst_video::NavigationEvent::parse(event)
                    && let Some(c) = command_for(&key)
                {
                    let _ = commands.send(c);
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    // And on the terminal, one per line.
    {
        let commands = commands.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if let Some(c) = command_for(line.trim()) {
                    let _ = commands.send(c);
                }
            }
        });
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        ctrlc::set_handler(move || interrupted.store(true, Ordering::SeqCst))
            .context("Ctrl-C handler")?;
    }
    let frames_out = Arc::new(AtomicU64::new(0));
    {
        let (frames_out, limit) = (frames_out.clone(), args.frames);
        style
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                // With --frames, frames still in flight when the limit is reached go no further.
                if limit > 0 && frames_out.load(Ordering::Relaxed) >= limit {
                    return gst::PadProbeReturn::Drop;
                }
                frames_out.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }

    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow::anyhow!("the pipeline could not start"))
        .or_else(|e| bus_error(&pipeline).map_or(Err(e), Err))?;
    let feeding = match camera {
        Some(camera) => {
            let appsrc = pipeline
                .by_name("camera")
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .context("the camera appsrc")?;
            let _ = camera.appsrc.send(appsrc);
            Some(camera.handle)
        }
        None => None,
    };
    eprintln!("rsstyle: {KEYS}");

    let mut controls = Controls {
        model: 0,
        style: args.style,
        strength: args.strength,
        saved_strength: None,
    };
    let bus = pipeline.bus().unwrap();
    let mut stopping = false;
    let (mut last_count, mut last_time) = (0u64, Instant::now());
    let result = loop {
        let stop_now = interrupted.load(Ordering::SeqCst)
            || (args.frames > 0 && frames_out.load(Ordering::Relaxed) >= args.frames);
        if stop_now && !stopping {
            stopping = true;
            pipeline.send_event(gst::event::Eos::new());
        }
        for command in received.try_iter() {
            if command == Command::Quit {
                if !stopping {
                    stopping = true;
                    pipeline.send_event(gst::event::Eos::new());
                }
            } else {
                apply(command, &mut controls, args, &style);
            }
        }
        if let Some(overlay) = &overlay
            && last_time.elapsed() >= Duration::from_millis(500)
        {
            let count = frames_out.load(Ordering::Relaxed);
            let fps = (count - last_count) as f64 / last_time.elapsed().as_secs_f64();
            (last_count, last_time) = (count, Instant::now());
            let stats = style.property::<gst::Structure>("stats");
            let latency = stats.get::<f64>("latency-ms").unwrap_or(0.0);
            let name = args.models[controls.model]
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            overlay.set_property(
                "text",
                format!(
                    "{name}  style {}  strength {:.1}  {fps:.1} fps  {latency:.0} ms",
                    controls.style, controls.strength
                ),
            );
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(50),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) else {
            continue;
        };
        break match msg.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(anyhow::anyhow!("{}", e.error())),
            _ => unreachable!(),
        };
    };
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(handle) = feeding {
        let _ = handle.join();
    }
    let frames = frames_out.load(Ordering::Relaxed);
    result?;
    match &args.record {
        Some(path) => eprintln!(
            "rsstyle: {frames} frames styled, recorded to {}",
            path.display()
        ),
        None => eprintln!("rsstyle: {frames} frames styled"),
    }
    Ok(())
}

fn apply(command: Command, c: &mut Controls, args: &LiveArgs, style: &gst::Element) {
    let n = args.models.len();
    match command {
        Command::NextModel | Command::PreviousModel => {
            c.model = if command == Command::NextModel {
                (c.model + 1) % n
            } else {
                (c.model + n - 1) % n
            };
            let path = &args.models[c.model];
            eprintln!("rsstyle: model {}", path.display());
            style.set_property("model", path.display().to_string());
        }
        Command::NextStyle | Command::PreviousStyle => {
            let next = if command == Command::NextStyle {
                c.style + 1
            } else {
                c.style.saturating_sub(1)
            };
            style.set_property("style", next);
            // The element refuses an index past the model's last style.
            c.style = style.property::<u32>("style");
            eprintln!("rsstyle: style {}", c.style);
        }
        Command::Stronger | Command::Weaker => {
            let step = if command == Command::Stronger {
                0.1
            } else {
                -0.1
            };
            c.strength = ((c.strength + step) * 10.0).round().clamp(0.0, 10.0) / 10.0;
            c.saved_strength = None;
            style.set_property("strength", c.strength);
            eprintln!("rsstyle: strength {:.1}", c.strength);
        }
        Command::ToggleOriginal => {
            let shown = match c.saved_strength.take() {
                Some(saved) => saved,
                None => {
                    c.saved_strength = Some(c.strength);
                    0.0
                }
            };
            style.set_property("strength", shown);
            eprintln!(
                "rsstyle: {}",
                if shown == 0.0 { "original" } else { "styled" }
            );
        }
        Command::Quit => {}
    }
}

/// Pushes camera frames into `appsrc` until the pipeline stops taking them.
fn feed(mut camera: Box<dyn FrameSource>, appsrc: gst_app::AppSrc, size: (u32, u32)) {
    loop {
        let frame = match camera.next_frame() {
            Ok(frame) if (frame.width, frame.height) == size => frame,
            Ok(frame) => {
                eprintln!(
                    "rsstyle: the camera switched to {}x{} (expected {}x{}); stopping",
                    frame.width, frame.height, size.0, size.1
                );
                let _ = appsrc.end_of_stream();
                return;
            }
            Err(e) => {
                eprintln!("rsstyle: {e:#}");
                let _ = appsrc.end_of_stream();
                return;
            }
        };
        if appsrc
            .push_buffer(gst::Buffer::from_mut_slice(frame.rgb))
            .is_err()
        {
            return; // flushing or stopped
        }
    }
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<anyhow::Error> {
    let msg = pipeline
        .bus()?
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(anyhow::anyhow!("{}", e.error())),
        _ => None,
    }
}

/// `rsstyle cameras`: the cameras that can be opened.
pub fn list() -> Result<()> {
    let cameras = capture::list_cameras()?;
    if cameras.is_empty() {
        println!(
            "no cameras found (rsstyle live can use --source test, a file, or a GStreamer source)"
        );
    }
    for (index, name) in cameras {
        println!("{index}: {name}");
    }
    Ok(())
}
