//! `rsstyle convert IN OUT`: style a video file into another, keeping every frame, the
//! timestamps and the audio.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gst::prelude::*;

/// Options of `rsstyle convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Input video: any file GStreamer can decode.
    pub input: PathBuf,
    /// Output video; the container comes from the extension (.mp4, .mov, .mkv, .webm).
    pub output: PathBuf,
    /// The ONNX style model.
    #[arg(long)]
    pub model: PathBuf,
    /// Style index for conditioned multi-style models.
    #[arg(long, default_value_t = 0)]
    pub style: u32,
    /// Blend of styled and original frame (0..1).
    #[arg(long, default_value_t = 1.0)]
    pub strength: f64,
    /// Scale frames to WIDTHxHEIGHT before styling.
    #[arg(long)]
    pub size: Option<String>,
    /// Frames inferred together.
    #[arg(long, default_value_t = 1)]
    pub batch_size: u32,
    /// Inference device: cpu, cuda, cuda:N, tensorrt, tensorrt:N, auto or grpc://HOST:PORT (an
    /// inference server, see --server-model).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub server: super::remote::ServerArgs,
    /// CPU inference threads (0: the CPUs this process may use, by affinity and CPU quota).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Video codec, overriding the container's default (h264 for .mp4/.mov/.mkv, vp8 for .webm).
    #[arg(long, value_enum)]
    pub codec: Option<Codec>,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// No progress bar (or progress lines).
    #[arg(long)]
    pub quiet: bool,
    /// When stderr is not a terminal (a log, CI): seconds between progress lines.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub progress_every: f64,
}

/// Video codecs `convert` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Codec {
    H264,
    H265,
    Vp8,
}

/// A container with its muxer and default codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Mp4,
    Mov,
    Mkv,
    Webm,
}

impl Container {
    fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "mp4" | "m4v" => Container::Mp4,
            "mov" => Container::Mov,
            "mkv" => Container::Mkv,
            "webm" => Container::Webm,
            other => bail!(
                "cannot tell the container from '{}' (extension '{other}'): use .mp4, .mov, .mkv or .webm",
                path.display()
            ),
        })
    }

    fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Mov => "qtmux",
            Container::Mkv => "matroskamux",
            Container::Webm => "webmmux",
        }
    }

    fn default_codec(self) -> Codec {
        match self {
            Container::Webm => Codec::Vp8,
            _ => Codec::H264,
        }
    }

    fn accepts(self, codec: Codec) -> bool {
        match self {
            Container::Webm => codec == Codec::Vp8,
            Container::Mkv => true,
            Container::Mp4 | Container::Mov => codec != Codec::Vp8,
        }
    }

    /// Audio encoder chain for this container.
    fn audio_encoder(self) -> &'static str {
        match self {
            Container::Mp4 | Container::Mov => "avenc_aac ! aacparse",
            Container::Mkv | Container::Webm => "opusenc ! opusparse",
        }
    }
}

impl Codec {
    /// Encoder chain from raw video to the muxer.
    fn encoder(self) -> &'static str {
        match self {
            // High 4:4:4 from RGB input is unplayable for most players: encode 4:2:0. No
            // B-frames, so that no reordering delay shifts the timestamps in the container.
            Codec::H264 => {
                "video/x-raw,format=I420 ! x264enc speed-preset=faster bframes=0 ! h264parse"
            }
            Codec::H265 => {
                "video/x-raw,format=I420 ! x265enc speed-preset=faster option-string=bframes=0 ! h265parse"
            }
            Codec::Vp8 => "video/x-raw,format=I420 ! vp8enc deadline=1 cpu-used=8 ! queue",
        }
    }
}

/// The temporary file written before the final rename: beside OUT, hidden, same extension.
fn partial_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.partial"))
}

/// How a conversion ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished { frames: u64 },
    Interrupted { frames: u64 },
}

/// Checks the arguments before anything is written.
fn check_paths(args: &ConvertArgs) -> Result<Container> {
    if !args.input.exists() {
        bail!("input '{}' does not exist", args.input.display());
    }
    let container = Container::from_path(&args.output)?;
    let same = std::fs::canonicalize(&args.input).ok()
        == args
            .output
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .and_then(|p| std::fs::canonicalize(p).ok())
            .and_then(|dir| args.output.file_name().map(|n| dir.join(n)));
    if same {
        bail!("refusing to overwrite the input '{}'", args.input.display());
    }
    if args.output.exists() && !args.force {
        bail!(
            "'{}' exists: use --force to replace it",
            args.output.display()
        );
    }
    if let Some(codec) = args.codec
        && !container.accepts(codec)
    {
        bail!(
            "{codec:?} video cannot go into '{}': choose another --codec or extension",
            args.output.display()
        );
    }
    Ok(container)
}

/// Runs the conversion; `interrupt` set to true ends it early with a playable file.
pub fn run(args: &ConvertArgs, interrupt: Arc<AtomicBool>) -> Result<Outcome> {
    let container = check_paths(args)?;
    gst::init()?;
    gstrsstyle::element::register(None)?;
    let codec = args.codec.unwrap_or(container.default_codec());
    let partial = partial_path(&args.output);

    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", args.input.display().to_string())
        .build()?;
    let decode = gst::ElementFactory::make("decodebin").build()?;
    let mux = gst::ElementFactory::make(container.muxer()).build()?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", partial.display().to_string())
        .build()?;
    pipeline.add_many([&src, &decode, &mux, &sink])?;
    src.link(&decode)?;
    mux.link(&sink)?;

    let scale = match &args.size {
        Some(s) => {
            let (w, h): (u32, u32) = super::parse_size(s)?;
            format!("videoscale ! video/x-raw,width={w},height={h} ! ")
        }
        None => String::new(),
    };
    let video_chain = format!(
        "queue ! videoconvert ! {scale}rsstyle name=style qos=false style={} strength={} batch-size={} \
         device={}{} threads={} ! videoconvert ! {}",
        args.style,
        args.strength,
        args.batch_size,
        args.device,
        args.server.properties(),
        args.threads,
        codec.encoder()
    );
    let audio_chain = format!(
        "queue ! audioconvert ! audioresample ! {}",
        container.audio_encoder()
    );
    let frames = Arc::new(AtomicU64::new(0));
    let linked = Arc::new(std::sync::Mutex::new((false, false)));
    // Entry pads of the muxed branches: an interrupt sends EOS into them.
    let entries: Arc<std::sync::Mutex<Vec<gst::Pad>>> = Arc::default();
    let model = args.model.display().to_string();
    {
        let (pipeline_weak, mux, frames, linked, entries) = (
            pipeline.downgrade(),
            mux.clone(),
            frames.clone(),
            linked.clone(),
            entries.clone(),
        );
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let kind = caps
                .structure(0)
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            let mut done = linked.lock().unwrap();
            let chain = if kind.starts_with("video/") && !done.0 {
                done.0 = true;
                Some(&video_chain)
            } else if kind.starts_with("audio/") && !done.1 {
                done.1 = true;
                Some(&audio_chain)
            } else {
                None
            };
            let result = match chain {
                Some(desc) => add_branch(&pipeline, pad, desc, Some(&mux), &model, &frames)
                    .map(|entry| entries.lock().unwrap().push(entry)),
                // Streams beyond the first video and audio are discarded.
                None => add_branch(&pipeline, pad, "fakesink sync=false", None, &model, &frames)
                    .map(|_| ()),
            };
            if let Err(e) = result {
                let msg = gst::message::Error::builder(gst::CoreError::Negotiation, &e.to_string())
                    .build();
                let _ = pipeline.post_message(msg);
            }
        });
    }

    let outcome = drive(&pipeline, args, &frames, &interrupt, &entries);
    let _ = pipeline.set_state(gst::State::Null);
    match outcome {
        Ok(outcome) => {
            if !linked.lock().unwrap().0 {
                let _ = std::fs::remove_file(&partial);
                bail!("'{}' has no video stream", args.input.display());
            }
            std::fs::rename(&partial, &args.output).with_context(|| {
                format!("cannot move the result to '{}'", args.output.display())
            })?;
            Ok(outcome)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Adds the bin described by `desc` to `pipeline`, fed by `pad` and (if given) feeding `mux`;
/// returns the bin's sink pad.
fn add_branch(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    desc: &str,
    mux: Option<&gst::Element>,
    model: &str,
    frames: &Arc<AtomicU64>,
) -> Result<gst::Pad> {
    let bin = gst::parse::bin_from_description(desc, true)?;
    if let Some(style) = bin.by_name("style") {
        style.set_property("model", model);
        let frames = frames.clone();
        style
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                frames.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.add(&bin)?;
    if let Some(mux) = mux {
        bin.link(mux)?;
    }
    bin.sync_state_with_parent()?;
    let sinkpad = bin.static_pad("sink").context("branch has no sink pad")?;
    pad.link(&sinkpad)?;
    Ok(sinkpad)
}

/// Plays the pipeline to the end (or to an interrupt), showing progress.
fn drive(
    pipeline: &gst::Pipeline,
    args: &ConvertArgs,
    frames: &AtomicU64,
    interrupt: &AtomicBool,
    entries: &std::sync::Mutex<Vec<gst::Pad>>,
) -> Result<Outcome> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow::anyhow!("the pipeline could not start"))
        .or_else(|e| first_error(pipeline, &args.input).map_or(Err(e), Err))?;
    let bus = pipeline.bus().unwrap();
    let terminal = std::io::stderr().is_terminal();
    let bar = (!args.quiet && terminal).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {percent:>3}% {msg} (ETA {eta})",
            )
            .expect("a valid template"),
        );
        bar
    });
    // Without a terminal the bar draws nothing: a line every few seconds instead.
    let every = Duration::from_secs_f64(args.progress_every.max(0.1));
    let mut next_line = (!args.quiet && !terminal).then(|| Instant::now() + every);
    let started = Instant::now();
    let mut interrupted = false;
    loop {
        if interrupt.load(Ordering::SeqCst) && !interrupted {
            interrupted = true;
            // EOS into every branch behind the demuxer (which may be pulling, where an EOS sent
            // to the source would go nowhere) lets the muxer finish a playable file.
            for pad in entries.lock().unwrap().iter() {
                pad.send_event(gst::event::Eos::new());
            }
        }
        let duration = pipeline.query_duration::<gst::ClockTime>();
        let position = pipeline.query_position::<gst::ClockTime>();
        let n = frames.load(Ordering::Relaxed);
        if let Some(bar) = &bar {
            if let Some(d) = duration {
                bar.set_length(d.mseconds());
            }
            if let Some(p) = position {
                bar.set_position(p.mseconds());
            }
            bar.set_message(format!(
                "{n} frames, {:.1} fps",
                n as f64 / started.elapsed().as_secs_f64().max(1e-3)
            ));
            bar.tick();
        }
        if let Some(due) = &mut next_line
            && Instant::now() >= *due
        {
            *due += every;
            let progress = position.zip(duration).map(|(p, d)| (p.into(), d.into()));
            eprintln!("{}", progress_line(n, started.elapsed(), progress));
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(200),
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Warning,
            ],
        ) else {
            continue;
        };
        if let gst::MessageView::Warning(w) = msg.view() {
            let text = format!("rsstyle: warning: {}", w.error());
            match &bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            }
            continue;
        }
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        return match msg.view() {
            gst::MessageView::Eos(_) => {
                let frames = frames.load(Ordering::Relaxed);
                Ok(if interrupted {
                    Outcome::Interrupted { frames }
                } else {
                    Outcome::Finished { frames }
                })
            }
            gst::MessageView::Error(e) => Err(describe_error(e, &args.input)),
            _ => unreachable!(),
        };
    }
}

/// One progress line for logs: frames so far, the rate, and — once the stream position and
/// duration are known — the share done, the frames expected in all and the time left at the
/// rate so far.
fn progress_line(frames: u64, elapsed: Duration, progress: Option<(Duration, Duration)>) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let fps = frames as f64 / secs;
    let mut line = format!("rsstyle: {frames} frames, {fps:.1} fps");
    if let Some((position, duration)) = progress
        && !position.is_zero()
        && !duration.is_zero()
    {
        let done = (position.as_secs_f64() / duration.as_secs_f64()).min(1.0);
        let total = (frames as f64 / done).round() as u64;
        let left = Duration::from_secs_f64(secs * (1.0 - done) / done);
        line = format!(
            "rsstyle: {frames} of ~{total} frames ({:.0}%), {fps:.1} fps, ETA {}",
            100.0 * done,
            clock(left)
        );
    }
    line
}

/// `h:mm:ss`, or `m:ss` under an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn describe_error(e: &gst::message::Error, input: &Path) -> anyhow::Error {
    // Errors from the source, or from anything decodebin made (typefind, demuxers, decoders),
    // are about the input.
    let from = e
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    let text = e.error().to_string();
    if from.contains("decodebin") || from.contains("filesrc") {
        anyhow::anyhow!("cannot decode '{}': {text}", input.display())
    } else {
        anyhow::anyhow!("{text}")
    }
}

/// The error a failed start posted on the bus.
fn first_error(pipeline: &gst::Pipeline, input: &Path) -> Option<anyhow::Error> {
    let bus = pipeline.bus()?;
    let msg =
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(describe_error(e, input)),
        _ => None,
    }
}

/// Runs `convert` from the command line: progress, Ctrl-C handling and the closing line.
pub fn main(args: &ConvertArgs) -> Result<std::process::ExitCode> {
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let interrupt = interrupt.clone();
        ctrlc::set_handler(move || interrupt.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let started = Instant::now();
    let outcome = run(args, interrupt)?;
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    Ok(match outcome {
        Outcome::Finished { frames } => {
            eprintln!(
                "rsstyle: wrote {} ({frames} frames, {:.1} fps)",
                args.output.display(),
                frames as f64 / secs
            );
            std::process::ExitCode::SUCCESS
        }
        Outcome::Interrupted { frames } => {
            eprintln!(
                "rsstyle: interrupted: {} holds the first {frames} frames and is playable",
                args.output.display()
            );
            std::process::ExitCode::from(130)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_say_frames_rate_share_and_time_left() {
        let s = Duration::from_secs;
        assert_eq!(progress_line(0, s(5), None), "rsstyle: 0 frames, 0.0 fps");
        // A quarter of a 4-minute video in 10 s at 6 fps: 60 of ~240 frames, 30 s to go.
        assert_eq!(
            progress_line(60, s(10), Some((s(60), s(240)))),
            "rsstyle: 60 of ~240 frames (25%), 6.0 fps, ETA 0:30"
        );
        assert_eq!(
            progress_line(10, s(3600), Some((s(1), s(4)))),
            "rsstyle: 10 of ~40 frames (25%), 0.0 fps, ETA 3:00:00"
        );
        // Position not known yet.
        assert_eq!(
            progress_line(3, s(1), Some((s(0), s(10)))),
            "rsstyle: 3 frames, 3.0 fps"
        );
    }
}
