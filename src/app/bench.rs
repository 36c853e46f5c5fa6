//! `rsstyle bench`: throughput and per-frame latency of the element against bare engine
//! inference on the same model, per frame size and batch size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gst::prelude::*;
use gstrsstyle::engine::{self, Device, EngineOptions, FrameIo};
use gstrsstyle::frame::{FrameMut, FrameRef, PixelFormat, TensorFormat, frame_to_tensor};
use gstrsstyle::machine::Machine;
use gstrsstyle::model::Layout;
use gstrsstyle::model::ManifestPatch;
use gstrsstyle::stylizer::{
    BYTE_FORMAT, BatchItem, StyleParams, Stylizer, geometry_for, tensor_shape,
};
use serde::Serialize;

/// Options of `rsstyle bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The ONNX models (repeat the option for several).
    #[arg(long = "model", required = true)]
    pub models: Vec<PathBuf>,
    /// Frame sizes, WIDTHxHEIGHT, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256x256,640x480")]
    pub size: Vec<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// The element's `inference-scale` values, comma-separated (bare inference then runs at the
    /// scaled size, as the engine does inside the element).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub inference_scale: Vec<f32>,
    /// Frames through the element per configuration.
    #[arg(long, default_value_t = 40)]
    pub frames: usize,
    /// CPU inference threads (0: the CPUs this process may use, by affinity and CPU quota).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Inference device: cpu, cuda, cuda:N, tensorrt, tensorrt:N, auto or grpc://HOST:PORT (an
    /// inference server, see --server-model).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub server: super::remote::ServerArgs,
    /// Inference engine settings, comma-separated KEY=VALUE (frame-io=auto|float|bytes,
    /// cuda-nhwc=true|false, cuda-tf32=true|false, cuda-search=exhaustive|heuristic,
    /// cuda-graph=true|false, profile=PATH, graph-rewrite=auto|true|false), as the element's
    /// `engine-options` property.
    #[arg(long, default_value = "")]
    pub engine_options: String,
    /// Repetitions of each measurement (element and bare inference alternate); medians are
    /// reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Also style one test frame per model and size on the CPU (float tensors, the reference
    /// path) and report how far the configured device's bytes are from it.
    #[arg(long)]
    pub compare_cpu: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measure throughput only: skip the paced run that measures per-frame latency (which
    /// waits at least 200 ms between frames).
    #[arg(long)]
    pub no_latency: bool,
}

/// One row of the result.
#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub model: String,
    /// Where inference ran, as the engine describes it.
    pub engine: String,
    pub width: usize,
    pub height: usize,
    pub batch: usize,
    pub inference_scale: f32,
    /// Element throughput with upstream as fast as it can, frames/s (after warm-up).
    pub element_fps: f64,
    /// Frames per batch the element ran in that throughput run (`stats` `mean-batch`).
    pub element_mean_batch: f64,
    /// Bare engine inference of one batch, median (ms).
    pub inference_ms_per_batch: f64,
    /// Bare engine throughput, frames/s.
    pub inference_fps: f64,
    /// Bare inference of one frame, one call halfway between each two frames of the element's
    /// paced run, median (ms; batch 1).
    pub paced_inference_ms: Option<f64>,
    /// Per-frame time inside the element (sink pad to source pad) with frames paced so that
    /// none waits behind another (see `paced_period_ms`; ms; batch 1 only).
    pub paced_latency_ms_p50: Option<f64>,
    pub paced_latency_ms_p99: Option<f64>,
    /// In the paced run, the element's own medians: engine inference and frame conversion.
    pub paced_element_inference_ms: Option<f64>,
    pub paced_element_convert_ms: Option<f64>,
    /// Element throughput over bare throughput: the median of the repetitions' ratios (each
    /// repetition measures both back to back).
    pub fps_ratio: f64,
    /// Latency p50 minus the paced bare inference of the same repetition, median over
    /// repetitions (ms; batch 1).
    pub added_latency_ms: Option<f64>,
    /// The element's own account of what it adds: each frame's time inside it less its
    /// inference, median over the run (`stats` `overhead-ms-p50`), median over repetitions:
    /// conversion and hand-overs, free of the drift between runs (ms; batch 1).
    pub element_overhead_ms: Option<f64>,
    /// With `--compare-cpu`: the largest difference of an output byte from the CPU's, and the
    /// share of bytes that differ at all.
    pub max_diff_vs_cpu: Option<u8>,
    pub differing_vs_cpu: Option<f64>,
    /// What the row was measured on (the same for every row of a run).
    pub machine: Machine,
}

/// The engine settings `args` ask for.
fn engine_options(args: &BenchArgs) -> Result<EngineOptions> {
    let mut options = EngineOptions {
        device: args.device.parse::<Device>().map_err(anyhow::Error::msg)?,
        threads: args.threads,
        ..EngineOptions::default()
    };
    options
        .apply(&args.engine_options)
        .map_err(anyhow::Error::msg)?;
    args.server.apply(&mut options);
    Ok(options)
}

/// Styles the test frame on the configured device and on the CPU with float tensors; returns
/// the largest byte difference and the share of bytes that differ.
fn compare_with_cpu(args: &BenchArgs, case: &Case) -> Result<(u8, f64)> {
    let (model, width, height) = (case.model, case.width, case.height);
    let frame = test_frame(width, height)?;
    let style = |options: &EngineOptions| -> Result<Vec<u8>> {
        let (engine, _) = engine::open(
            &model.display().to_string(),
            None,
            &ManifestPatch::default(),
            options,
        )?;
        let mut stylizer = Stylizer::new(engine);
        let mut out = vec![0u8; frame.len()];
        let view = |data| FrameRef {
            data,
            width,
            height,
            stride: width * 4,
            format: PixelFormat::Rgbx,
        };
        stylizer.process_batch(&mut [BatchItem {
            input: view(&frame),
            output: FrameMut {
                data: &mut out,
                width,
                height,
                stride: width * 4,
                format: PixelFormat::Rgbx,
            },
            params: StyleParams::default(),
        }])?;
        Ok(out)
    };
    let options = engine_options(args)?;
    let device = style(&options)?;
    let cpu = style(&EngineOptions {
        device: Device::Cpu,
        threads: args.threads,
        frame_io: FrameIo::Float,
        ..EngineOptions::default()
    })?;
    let diffs: Vec<u8> = device
        .chunks_exact(4)
        .zip(cpu.chunks_exact(4))
        .flat_map(|(a, b)| (0..3).map(move |c| a[c].abs_diff(b[c])))
        .collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    let differing = diffs.iter().filter(|&&d| d > 0).count() as f64 / diffs.len() as f64;
    Ok((max, differing))
}

/// Throughput and per-frame latencies of one element run, and the element's own account of
/// where batch time went (`stats`: engine inference and conversion, medians).
struct Timing {
    fps: f64,
    mean_batch: f64,
    latencies_ms: Vec<f64>,
    inference_ms: f64,
    convert_ms: f64,
    /// Median of each frame's time in the element less its inference (`overhead-ms-p50`).
    overhead_ms: f64,
    /// Bare inferences interleaved with the paced frames (ms), after two warm-up runs.
    bare_ms: Vec<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One configuration: a model at one frame size, batch size and inference scale.
#[derive(Clone, Copy)]
struct Case<'a> {
    model: &'a Path,
    width: usize,
    height: usize,
    batch: usize,
    inference_scale: f32,
}

/// Bare engine inference of the test frame: the same model, options, input tensor and
/// conditioning the element uses, without the element around it.
struct Bare {
    engine: Box<dyn engine::Engine>,
    shape: [usize; 4],
    floats: Vec<f32>,
    bytes: Vec<u8>,
    conditioning: Option<Vec<f32>>,
}

impl Bare {
    fn new(args: &BenchArgs, case: &Case) -> Result<Self> {
        let Case {
            model,
            width,
            height,
            batch,
            inference_scale,
        } = *case;
        let options = engine_options(args)?;
        let (engine, _) = engine::open(
            &model.display().to_string(),
            None,
            &ManifestPatch::default(),
            &options,
        )?;
        let manifest = engine.manifest().clone();
        let params = StyleParams {
            inference_scale,
            ..StyleParams::default()
        };
        let geometry = geometry_for(&manifest, width, height, &params);
        let (format, layout) = if engine.takes_bytes() {
            (BYTE_FORMAT, Layout::Nhwc)
        } else {
            let format = TensorFormat {
                layout: manifest.layout,
                channel_order: manifest.channel_order,
                range: manifest.input_range,
            };
            (format, manifest.layout)
        };
        let shape = tensor_shape(layout, &geometry, batch);
        // The same picture the element gets, so that timing does not depend on different data.
        let frame = test_frame(width, height)?;
        let view = FrameRef {
            data: &frame,
            width,
            height,
            stride: width * 4,
            format: PixelFormat::Rgbx,
        };
        let per_image = 3 * geometry.tensor_pixels();
        // The batch in the engine's element type (only one of the two is filled).
        let (mut floats, mut bytes) = (Vec::new(), Vec::new());
        if engine.takes_bytes() {
            bytes.resize(per_image * batch, 0);
            for image in bytes.chunks_exact_mut(per_image) {
                frame_to_tensor(&view, &geometry, &format, image);
            }
        } else {
            floats.resize(per_image * batch, 0.0);
            for image in floats.chunks_exact_mut(per_image) {
                frame_to_tensor(&view, &geometry, &format, image);
            }
        }
        let conditioning = manifest.conditioning.as_ref().map(|c| {
            let mut v = vec![0.0; c.length * batch];
            for b in 0..batch {
                v[b * c.length] = 1.0;
            }
            v
        });
        Ok(Self {
            engine,
            shape,
            floats,
            bytes,
            conditioning,
        })
    }

    /// One inference of the batch; returns its time (ms). The engine lends its output, and
    /// only its shape is looked at.
    fn infer(&mut self) -> Result<f64> {
        let started = Instant::now();
        let mut got = None;
        let conditioning = self.conditioning.as_deref();
        if self.engine.takes_bytes() {
            self.engine
                .infer_bytes(&self.bytes, self.shape, conditioning, &mut |s, _| {
                    got = Some(s)
                })?;
        } else {
            self.engine
                .infer(&self.floats, self.shape, conditioning, &mut |s, _| {
                    got = Some(s)
                })?;
        }
        let took = started.elapsed().as_secs_f64() * 1e3;
        if got != Some(self.shape) {
            bail!(
                "the engine's output has shape {got:?}, not {:?}",
                self.shape
            );
        }
        Ok(took)
    }

    /// Median time of back-to-back inferences (ms), after two warm-up runs.
    fn back_to_back_ms(&mut self, runs: usize) -> Result<f64> {
        self.infer()?;
        self.infer()?;
        let mut times = (0..runs)
            .map(|_| self.infer())
            .collect::<Result<Vec<_>>>()?;
        Ok(median(&mut times))
    }
}

/// Frame period (ms) of paced runs. Each element frame and the bare inference halfway to the
/// next have the cores to themselves: the gap after each is at least its inference time and
/// at least 100 ms, longer than ONNX Runtime's idle threads keep spinning after a run (up to
/// 2^20 pauses, tens of ms), so neither session's threads run during the other's inference.
fn paced_period_ms(inference_ms: f64) -> u64 {
    (2.0 * (inference_ms + inference_ms.max(100.0))).ceil() as u64
}

/// One `videotestsrc pattern=smpte` frame as tightly packed RGBx.
fn test_frame(width: usize, height: usize) -> Result<Vec<u8>> {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=RGBx,width={width},height={height} \
         ! appsink name=sink"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .context("appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let sample = sink
        .pull_sample()
        .map_err(|_| anyhow::anyhow!("no test frame"))?;
    pipeline.set_state(gst::State::Null)?;
    let map = sample.buffer().context("empty sample")?.map_readable()?;
    // RGBx rows are 4-byte aligned already: the buffer is tightly packed.
    Ok(map.as_slice()[..width * height * 4].to_vec())
}

/// Runs `frames` copies of the test frame through `appsrc ! rsstyle ! fakesink` and times
/// them: as fast as the element takes them, or as a live source with `paced`'s period (ms)
/// and one inference of its bare engine halfway between each two frames. The frame is
/// rendered once beforehand, so that nothing upstream competes with the element for the CPU
/// (a source drawing each frame, as `videotestsrc` does, shares the cores with inference).
fn element_run(args: &BenchArgs, case: &Case, paced: Option<(u64, &mut Bare)>) -> Result<Timing> {
    let Case {
        model,
        width,
        height,
        batch,
        inference_scale,
    } = *case;
    // Frame period in ms.
    let (live, period_ms, mut bare) = match paced {
        Some((period_ms, bare)) => (true, period_ms, Some(bare)),
        None => (false, 33, None),
    };
    let description = format!(
        "appsrc name=feed is-live={live} do-timestamp={live} format=time block=true max-buffers=2 \
           caps=video/x-raw,format=RGBx,width={width},height={height},framerate=1000/{period_ms} \
         ! rsstyle name=style batch-size={batch} threads={} device={}{} inference-scale={inference_scale} qos=false \
         ! fakesink sync=false",
        args.threads,
        args.device,
        args.server.properties()
    );
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let style = pipeline.by_name("style").context("rsstyle element")?;
    style.set_property("model", model.display().to_string());
    style.set_property("engine-options", &args.engine_options);
    let feed = pipeline
        .by_name("feed")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .context("appsrc")?;
    let frame = gst::Buffer::from_slice(test_frame(width, height)?);

    let entered: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let left: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    let sink = style.static_pad("sink").unwrap();
    let src = style.static_pad("src").unwrap();
    {
        let entered = entered.clone();
        sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                entered
                    .lock()
                    .unwrap()
                    .insert(pts.nseconds(), Instant::now());
            }
            gst::PadProbeReturn::Ok
        });
    }
    {
        let (entered, left) = (entered.clone(), left.clone());
        src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let now = Instant::now();
            if let Some(start) = info
                .buffer()
                .and_then(|b| b.pts())
                .and_then(|pts| entered.lock().unwrap().remove(&pts.nseconds()))
            {
                left.lock()
                    .unwrap()
                    .push((now, (now - start).as_secs_f64() * 1e3));
            }
            gst::PadProbeReturn::Ok
        });
    }
    pipeline.set_state(gst::State::Playing)?;
    let frames = args.frames;
    let (msg, stats, bare_ms) = std::thread::scope(|scope| -> Result<_> {
        let feeder = scope.spawn(move || -> Result<Vec<f64>> {
            let period = Duration::from_millis(period_ms);
            let started = Instant::now();
            let wait_until =
                |t: Instant| std::thread::sleep(t.saturating_duration_since(Instant::now()));
            let mut bare_ms = Vec::new();
            for i in 0..frames as u32 {
                if live {
                    wait_until(started + period * i);
                }
                // Shares the rendered memory; only the timestamps differ.
                let mut buffer = frame.copy();
                let b = buffer.get_mut().expect("a fresh copy is writable");
                // A live source stamps frames with the running time at which they are pushed
                // (and so does not hold them back for the clock).
                if !live {
                    b.set_pts(gst::ClockTime::from_nseconds((period * i).as_nanos() as u64));
                }
                b.set_duration(gst::ClockTime::from_nseconds(period.as_nanos() as u64));
                if feed.push_buffer(buffer).is_err() {
                    break;
                }
                // Halfway to the next frame, with the element idle: one bare inference, so
                // that both see the same phases of the machine's speed.
                if let Some(bare) = bare.as_deref_mut() {
                    wait_until(started + period * i + period / 2);
                    bare_ms.push(bare.infer()?);
                }
            }
            let _ = feed.end_of_stream();
            Ok(bare_ms)
        });
        let msg = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(3600),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .context("no end of stream");
        let stats = style.property::<gst::Structure>("stats");
        pipeline.set_state(gst::State::Null)?;
        let bare_ms = feeder.join().expect("the feeder does not panic")?;
        Ok((msg?, stats, bare_ms))
    })?;
    if let gst::MessageView::Error(e) = msg.view() {
        bail!("{}", e.error());
    }
    let left = left.lock().unwrap();
    // Two batches warm up. Frames leave a batch at once, so throughput counts the frames that
    // left after the last warm-up frame over the time since it left.
    let warmup = (2 * batch).min(left.len().saturating_sub(2)).max(1);
    if left.len() < warmup + 2 {
        bail!("too few frames ({}) to time", left.len());
    }
    let timed = &left[warmup..];
    let span: Duration = timed.last().unwrap().0 - left[warmup - 1].0;
    Ok(Timing {
        fps: timed.len() as f64 / span.as_secs_f64(),
        mean_batch: stats.get("mean-batch").unwrap_or(0.0),
        latencies_ms: timed.iter().map(|(_, ms)| *ms).collect(),
        inference_ms: stats.get("inference-ms-p50").unwrap_or(0.0),
        bare_ms: bare_ms.get(2..).unwrap_or_default().to_vec(),
        convert_ms: stats.get("convert-ms-p50").unwrap_or(0.0),
        overhead_ms: stats.get("overhead-ms-p50").unwrap_or(0.0),
    })
}

/// One configuration's measurements over the repetitions.
#[derive(Default)]
struct Samples {
    engine: String,
    inference: Vec<f64>,
    fps: Vec<f64>,
    mean_batches: Vec<f64>,
    ratios: Vec<f64>,
    paced_inference: Vec<f64>,
    element_inference: Vec<f64>,
    element_convert: Vec<f64>,
    p50s: Vec<f64>,
    p99s: Vec<f64>,
    added: Vec<f64>,
    overhead: Vec<f64>,
}

impl Samples {
    /// One repetition: bare inference back to back, the element as fast as it goes, and
    /// (batch 1) the element paced with bare inferences between its frames.
    fn measure(&mut self, args: &BenchArgs, case: &Case) -> Result<()> {
        let batch = case.batch;
        let mut bare = Bare::new(args, case)?;
        self.engine = bare.engine.device_description().to_string();
        let back_to_back = bare.back_to_back_ms((args.frames / batch).clamp(8, 40))?;
        self.inference.push(back_to_back);
        let run = element_run(args, case, None)?;
        self.fps.push(run.fps);
        self.mean_batches.push(run.mean_batch);
        self.ratios
            .push(run.fps * back_to_back / (batch as f64 * 1e3));
        if batch == 1 && !args.no_latency {
            let period_ms = paced_period_ms(back_to_back);
            let run = element_run(args, case, Some((period_ms, &mut bare)))?;
            let mut bare_paced = run.bare_ms;
            if bare_paced.is_empty() {
                bail!("too few frames ({}) to time", args.frames);
            }
            let bare_paced = median(&mut bare_paced);
            self.paced_inference.push(bare_paced);
            self.element_inference.push(run.inference_ms);
            self.element_convert.push(run.convert_ms);
            let mut paced = run.latencies_ms;
            let p50 = median(&mut paced);
            self.p50s.push(p50);
            self.p99s.push(percentile(&mut paced, 0.99));
            self.added.push(p50 - bare_paced);
            self.overhead.push(run.overhead_ms);
        }
        Ok(())
    }
}

/// Runs every configuration and prints the table (or JSON).
pub fn run(args: &BenchArgs) -> Result<Vec<BenchRow>> {
    gst::init()?;
    gstrsstyle::element::register(None)?;
    // Before any session exists, so that no inference thread competes with the measurement.
    let machine = Machine::probe(Duration::from_millis(300));
    if !args.json {
        println!("machine: {}", machine.describe());
    }
    // Every configuration, then each repetition of all of them in turn: on a shared machine,
    // configurations measured side by side see the same phases of its load.
    let mut cases = Vec::new();
    for model in &args.models {
        for size in &args.size {
            let (width, height) = super::parse_size(size)?;
            for &batch in &args.batch {
                for &inference_scale in &args.inference_scale {
                    cases.push(Case {
                        model,
                        width,
                        height,
                        batch,
                        inference_scale,
                    });
                }
            }
        }
    }
    let mut samples: Vec<Samples> = cases.iter().map(|_| Samples::default()).collect();
    let reps = args.reps.max(1);
    for rep in 0..reps {
        for (case, s) in cases.iter().zip(&mut samples) {
            if !args.json && (reps > 1 || cases.len() > 1) {
                eprintln!(
                    "bench: {} {}x{} batch {} scale {} (repetition {}/{reps})",
                    case.model.display(),
                    case.width,
                    case.height,
                    case.batch,
                    case.inference_scale,
                    rep + 1
                );
            }
            s.measure(args, case)?;
        }
    }
    let mut rows = Vec::new();
    for (case, mut s) in cases.iter().zip(samples) {
        let compared = if args.compare_cpu && case.batch == 1 && case.inference_scale == 1.0 {
            Some(compare_with_cpu(args, case)?)
        } else {
            None
        };
        let batch = case.batch;
        let inference = median(&mut s.inference);
        let some = |v: &mut Vec<f64>| (!v.is_empty()).then(|| median(v));
        rows.push(BenchRow {
            model: case.model.display().to_string(),
            engine: s.engine.clone(),
            width: case.width,
            height: case.height,
            batch,
            inference_scale: case.inference_scale,
            element_fps: median(&mut s.fps),
            element_mean_batch: median(&mut s.mean_batches),
            inference_ms_per_batch: inference,
            inference_fps: batch as f64 * 1e3 / inference,
            paced_inference_ms: some(&mut s.paced_inference),
            paced_latency_ms_p50: some(&mut s.p50s),
            paced_latency_ms_p99: some(&mut s.p99s),
            paced_element_inference_ms: some(&mut s.element_inference),
            paced_element_convert_ms: some(&mut s.element_convert),
            fps_ratio: median(&mut s.ratios),
            added_latency_ms: some(&mut s.added),
            element_overhead_ms: some(&mut s.overhead),
            max_diff_vs_cpu: compared.map(|c| c.0),
            differing_vs_cpu: compared.map(|c| c.1),
            machine: machine.clone(),
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        if let Some(r) = rows.first() {
            println!("engine: {}", r.engine);
        }
        println!(
            "{:>9} {:>5} {:>5} {:>6} {:>11} {:>9} {:>6} {:>15} {:>14} {:>12} {:>12} {:>10} {:>10}",
            "size",
            "batch",
            "scale",
            "filled",
            "element fps",
            "bare fps",
            "ratio",
            "inference/batch",
            "paced infer.",
            "latency p50",
            "latency p99",
            "added",
            "overhead"
        );
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
        for r in &rows {
            if args.models.len() > 1 {
                println!("{}:", r.model);
            }
            println!(
                "{:>9} {:>5} {:>5} {:>6.2} {:>11.2} {:>9.2} {:>6.3} {:>12.2} ms {:>14} {:>12} {:>12} {:>10} {:>10}",
                format!("{}x{}", r.width, r.height),
                r.batch,
                r.inference_scale,
                r.element_mean_batch,
                r.element_fps,
                r.inference_fps,
                r.fps_ratio,
                r.inference_ms_per_batch,
                ms(r.paced_inference_ms),
                ms(r.paced_latency_ms_p50),
                ms(r.paced_latency_ms_p99),
                ms(r.added_latency_ms),
                ms(r.element_overhead_ms),
            );
            if let (Some(max), Some(share)) = (r.max_diff_vs_cpu, r.differing_vs_cpu) {
                println!(
                    "{:>9} against the CPU: largest byte difference {max}, {:.2}% of bytes differ",
                    "",
                    100.0 * share
                );
            }
        }
    }
    Ok(rows)
}
