//! `rsstyle evaluate`: how well models (with element settings) keep the content of held-out
//! images and carry a style — the trainer's perceptual losses, blob area and edge correlation
//! ([`quality`]) and pixel metrics, measured on what the element outputs — and, on a video, how steady their output is (flicker and
//! ghosting, [`gstrsstyle::frame::flicker`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::Tensor;
use gst::prelude::*;
use gstrsstyle::frame::flicker::TemporalMeter;
use gstrsstyle::frame::temporal::Stabilizer;
use gstrsstyle::frame::{FrameMut, FrameRef, PixelFormat};
use gstrsstyle::train::data::{fit_short_side, image_files, load_rgb, to_tensor};
use gstrsstyle::train::losses::{gram, l1, mse, psnr, ssim, to_unit};
use gstrsstyle::train::quality;
use gstrsstyle::train::vgg::{self, FEATURE_LAYERS, Vgg16};
use image::RgbImage;
use serde::Serialize;

use super::sheet::{ElementStream, parse_model};

/// Options of `rsstyle evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Models to evaluate, each optionally with element properties:
    /// `MODEL[,name=value…]`, e.g. `models/paintings-lite.onnx,inference-scale=0.5`.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Held-out images (folder or files), of any sizes.
    #[arg(long, num_args = 1.., required_unless_present = "video", conflicts_with = "video")]
    pub images: Vec<PathBuf>,
    /// Images: scale those whose shorter side is longer than this down to it (0: keep their
    /// size).
    #[arg(long, default_value_t = 0)]
    pub max_side: u32,
    /// A video instead of images: every frame through each model in order, measuring flicker
    /// on pixels static in the input and, for each `temporal-smoothing` setting, ghosting
    /// against the same model without it (added as a row if not given); the losses on every
    /// `--loss-every`th frame.
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Video: use the first N frames (default: all).
    #[arg(long)]
    pub frames: Option<u64>,
    /// Video: scale frames to WIDTHxHEIGHT (default: as decoded).
    #[arg(long)]
    pub size: Option<String>,
    /// Video: compute the losses on one frame in N (the middle one of each N).
    #[arg(long, default_value_t = 40)]
    pub loss_every: u64,
    /// Video: compute rows with temporal smoothing by applying the element's stabiliser (the
    /// code the element runs on each styled frame) to their per-frame row's frames, instead
    /// of running the model again for each: the same numbers (tested), one inference a frame
    /// per model and settings.
    #[arg(long)]
    pub replay: bool,
    /// The style image the losses compare against.
    #[arg(long)]
    pub style: PathBuf,
    /// Shorter side the style image is scaled to (as in training).
    #[arg(long, default_value_t = 256)]
    pub style_size: u32,
    /// Compare every output with this row's outputs (index into --model) as well.
    #[arg(long, default_value_t = 0)]
    pub reference: usize,
    #[arg(long, default_value_t = 1e5)]
    pub content_weight: f64,
    #[arg(long, default_value_t = 1e10)]
    pub style_weight: f64,
    /// VGG16 weights (default: as `rsstyle train`).
    #[arg(long)]
    pub vgg: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of the result: means over the images unless named otherwise.
#[derive(Debug, Serialize)]
pub struct Row {
    pub model: String,
    pub content_loss: f64,
    pub style_loss: f64,
    /// Blob area ([`quality`]) in percent of the pixels: mean and worst image.
    pub blob_area_pct: f64,
    pub blob_area_worst_pct: f64,
    /// Edge correlation with the input ([`quality`]): median over the images.
    pub edge_correlation_median: f64,
    pub psnr_vs_reference: f64,
    pub ssim_vs_reference: f64,
    pub l1_vs_reference: f64,
}

/// Runs `rsstyle evaluate`.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<()> {
    match &args.video {
        Some(video) => run_video(args, video).map(|_| ()),
        None => run_images(args).map(|_| ()),
    }
}

/// The VGG16 features and the style image's Gram matrices the losses compare with.
struct Losses {
    vgg: Vgg16,
    style_grams: Vec<Tensor>,
    content_weight: f64,
    style_weight: f64,
}

impl Losses {
    fn load(args: &EvaluateArgs) -> anyhow::Result<Self> {
        let vgg = Vgg16::load(
            &args.vgg.clone().unwrap_or_else(vgg::default_weights),
            &candle_core::Device::Cpu,
        )?;
        let style = fit_short_side(&load_rgb(&args.style)?, args.style_size);
        let style_grams: Vec<_> = vgg
            .features(
                &to_unit(&to_tensor(std::slice::from_ref(&style))?)?,
                FEATURE_LAYERS.len(),
            )?
            .iter()
            .map(gram)
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            vgg,
            style_grams,
            content_weight: args.content_weight,
            style_weight: args.style_weight,
        })
    }

    /// Content features (relu2_2) of a batch in 0..1.
    fn content_features(&self, x: &Tensor) -> anyhow::Result<Tensor> {
        Ok(self.vgg.features(x, 2)?.swap_remove(1))
    }

    /// Weighted content and style losses of outputs `y` (0..1) against content features `fx`,
    /// as in training (batch means).
    fn of(&self, y: &Tensor, fx: &Tensor) -> anyhow::Result<(f64, f64)> {
        let fy = self.vgg.features(y, FEATURE_LAYERS.len())?;
        let content = mse(&fy[1], fx)?.to_scalar::<f32>()? as f64 * self.content_weight;
        let mut style = 0.0;
        for (f, g) in fy.iter().zip(&self.style_grams) {
            style += mse(&gram(f)?, g)?.to_scalar::<f32>()? as f64;
        }
        Ok((content, style * self.style_weight))
    }
}

/// Runs `images` through the element with `model` and `props`, a pipeline per image size
/// (each image styled on its own: no temporal history between them).
fn style_all(
    model: &std::path::Path,
    props: &[(String, String)],
    images: &[image::RgbImage],
) -> anyhow::Result<Vec<image::RgbImage>> {
    let mut out: Vec<Option<image::RgbImage>> = vec![None; images.len()];
    let mut sizes: Vec<(u32, u32)> = images.iter().map(|i| i.dimensions()).collect();
    sizes.sort();
    sizes.dedup();
    for size in sizes {
        let (idx, group): (Vec<usize>, Vec<image::RgbImage>) = images
            .iter()
            .enumerate()
            .filter(|(_, i)| i.dimensions() == size)
            .map(|(k, i)| (k, i.clone()))
            .unzip();
        for (k, styled) in
            idx.into_iter()
                .zip(super::sheet::style_images_with(model, props, &group, &[])?)
        {
            out[k] = Some(styled);
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every image styled"))
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The held-out images evaluation.
fn run_images(args: &EvaluateArgs) -> anyhow::Result<Vec<Row>> {
    if args.reference >= args.models.len() {
        bail!(
            "--reference {} is not a row (there are {} models)",
            args.reference,
            args.models.len()
        );
    }
    let images: Vec<image::RgbImage> = image_files(&args.images)?
        .iter()
        .map(|f| {
            load_rgb(f).map(|i| {
                let (w, h) = i.dimensions();
                if args.max_side > 0 && w.min(h) > args.max_side {
                    fit_short_side(&i, args.max_side)
                } else {
                    i
                }
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let losses = Losses::load(args)?;
    let content_features: Vec<Tensor> = images
        .iter()
        .map(|i| losses.content_features(&to_unit(&to_tensor(std::slice::from_ref(i))?)?))
        .collect::<anyhow::Result<_>>()?;
    let mut outputs = Vec::new();
    for spec in &args.models {
        let (model, props) = parse_model(spec)?;
        outputs.push(
            style_all(&model, &props, &images).with_context(|| format!("styling with {spec}"))?,
        );
    }
    let reference = &outputs[args.reference];
    let mut rows = Vec::new();
    for (spec, styled) in args.models.iter().zip(&outputs) {
        let n = images.len() as f64;
        let (mut content, mut style, mut psnr_sum, mut ssim_sum, mut l1_sum) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut blobs = Vec::new();
        let mut edges = Vec::new();
        for (k, out) in styled.iter().enumerate() {
            let y = to_unit(&to_tensor(std::slice::from_ref(out))?)?;
            let r = to_unit(&to_tensor(std::slice::from_ref(&reference[k]))?)?;
            let (c, s) = losses.of(&y, &content_features[k])?;
            content += c;
            style += s;
            psnr_sum += psnr(&y, &r)?.min(99.0) as f64;
            ssim_sum += ssim(&y, &r)? as f64;
            l1_sum += l1(&y, &r)?.to_scalar::<f32>()? as f64;
            let q = quality::Quality::of(&images[k], out);
            blobs.push(q.blob_area * 100.0);
            edges.push(q.edge_correlation);
        }
        rows.push(Row {
            model: spec.clone(),
            content_loss: content / n,
            style_loss: style / n,
            blob_area_pct: blobs.iter().sum::<f64>() / n,
            blob_area_worst_pct: blobs.iter().copied().fold(0.0, f64::max),
            edge_correlation_median: median(edges),
            psnr_vs_reference: psnr_sum / n,
            ssim_vs_reference: ssim_sum / n,
            l1_vs_reference: l1_sum / n,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{} held-out images; losses as in training (content ×{:.0e}, style ×{:.0e}); reference: row {}",
            images.len(),
            args.content_weight,
            args.style_weight,
            args.reference
        );
        println!(
            "blob: % of pixels painted near-white over non-white input (mean, worst image); \
             edges: correlation of input and output gradient magnitudes (median)"
        );
        println!(
            "{:<56} {:>12} {:>12} {:>7} {:>7} {:>6} {:>8} {:>6} {:>6}",
            "model", "content", "style", "blob%", "worst%", "edges", "PSNR", "SSIM", "L1"
        );
        for r in &rows {
            println!(
                "{:<56} {:>12.0} {:>12.0} {:>7.3} {:>7.3} {:>6.3} {:>8.2} {:>6.3} {:>6.3}",
                r.model,
                r.content_loss,
                r.style_loss,
                r.blob_area_pct,
                r.blob_area_worst_pct,
                r.edge_correlation_median,
                r.psnr_vs_reference,
                r.ssim_vs_reference,
                r.l1_vs_reference
            );
        }
    }
    Ok(rows)
}

/// One row of a video evaluation.
#[derive(Debug, Serialize)]
pub struct VideoRow {
    pub model: String,
    /// The element's `temporal-smoothing` in this row.
    pub temporal_smoothing: f64,
    /// The row of the same model and settings without smoothing (ghosting and ratios compare
    /// with it), if this row smooths.
    pub per_frame_row: Option<usize>,
    /// Whether the row was added as the per-frame counterpart of another.
    pub added: bool,
    /// Whether the row was computed from its per-frame row's frames (`--replay`).
    pub replayed: bool,
    /// Mean |out_t − out_{t−1}| on pixels static in the input (0..255).
    pub flicker: f64,
    /// `flicker` over the input's own change on those pixels.
    pub flicker_vs_input: f64,
    /// `flicker` over the per-frame row's.
    pub flicker_vs_per_frame: Option<f64>,
    /// Mean |out_t − per-frame out_t| on pixels that moved in the input (0..255).
    pub ghosting: Option<f64>,
    /// Losses as in training, means over the sampled frames.
    pub content_loss: f64,
    pub style_loss: f64,
    /// `style_loss` over the per-frame row's.
    pub style_vs_per_frame: Option<f64>,
}

/// A row to run: the spec, its parsed parts and its smoothing.
struct Stream {
    spec: String,
    model: PathBuf,
    props: Vec<(String, String)>,
    smoothing: f64,
    reference: Option<usize>,
    added: bool,
}

const SMOOTHING: &str = "temporal-smoothing";

/// The rows to run for `specs`: each with its smoothing (the element's default unless set),
/// and for each smoothing row its per-frame counterpart (the same model and properties with
/// `temporal-smoothing=0`), appended where not given.
fn plan_streams(specs: &[String], default_smoothing: f64) -> anyhow::Result<Vec<Stream>> {
    let mut streams = Vec::new();
    for spec in specs {
        let (model, props) = parse_model(spec)?;
        let smoothing = match props.iter().find(|(k, _)| k == SMOOTHING) {
            Some((_, v)) => v
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=1.0).contains(s))
                .with_context(|| {
                    format!("{SMOOTHING}={v} in --model {spec} is not a number 0..1")
                })?,
            None => default_smoothing,
        };
        streams.push(Stream {
            spec: spec.clone(),
            model,
            props,
            smoothing,
            reference: None,
            added: false,
        });
    }
    let others = |props: &[(String, String)]| {
        let mut p: Vec<_> = props
            .iter()
            .filter(|(k, _)| k != SMOOTHING)
            .cloned()
            .collect();
        p.sort();
        p
    };
    for i in 0..streams.len() {
        if streams[i].smoothing == 0.0 {
            continue;
        }
        let (model, props) = (streams[i].model.clone(), others(&streams[i].props));
        let found = streams
            .iter()
            .position(|s| s.smoothing == 0.0 && s.model == model && others(&s.props) == props);
        let reference = match found {
            Some(j) => j,
            None => {
                let mut spec_props = props.clone();
                spec_props.push((SMOOTHING.to_string(), "0".to_string()));
                let spec = std::iter::once(model.display().to_string())
                    .chain(spec_props.iter().map(|(k, v)| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(",");
                streams.push(Stream {
                    spec,
                    model,
                    props: spec_props,
                    smoothing: 0.0,
                    reference: None,
                    added: true,
                });
                streams.len() - 1
            }
        };
        streams[i].reference = Some(reference);
    }
    Ok(streams)
}

/// The video evaluation: every frame through every row's element, in lock step.
fn run_video(args: &EvaluateArgs, video: &Path) -> anyhow::Result<Vec<VideoRow>> {
    if args.loss_every == 0 {
        bail!("--loss-every must be at least 1");
    }
    if args.frames == Some(0) {
        bail!("--frames must be at least 1");
    }
    let size = args
        .size
        .as_deref()
        .map(super::parse_size::<u32>)
        .transpose()?;
    gst::init()?;
    gstrsstyle::element::register(None)?;
    let default_smoothing = gst::ElementFactory::make("rsstyle")
        .build()?
        .property::<f64>(SMOOTHING);
    let streams = plan_streams(&args.models, default_smoothing)?;
    // Load the VGG weights before the long run, so that a missing file fails at once.
    let losses = Losses::load(args)?;
    let mut meter = TemporalMeter::new(streams.iter().map(|s| s.reference).collect());
    // One element a row, except rows replayed from their per-frame row.
    let replayed = |s: &Stream| args.replay && s.reference.is_some();
    let mut elements: Vec<Option<ElementStream>> = Vec::new();
    let mut stabilizers: Vec<Stabilizer> = streams.iter().map(|_| Stabilizer::default()).collect();
    let mut samples: Vec<(RgbImage, Vec<RgbImage>)> = Vec::new();
    let mut frame_size = (0, 0);
    let bar = indicatif::ProgressBar::new_spinner();
    super::frames::decode(
        video,
        size,
        |_| true,
        args.frames,
        |i, img| {
            if elements.is_empty() {
                frame_size = img.dimensions();
                for s in &streams {
                    elements.push(if replayed(s) {
                        None
                    } else {
                        Some(
                            ElementStream::new(&s.model, &s.props, frame_size)
                                .with_context(|| format!("--model {}", s.spec))?,
                        )
                    });
                }
            }
            for e in elements.iter_mut().flatten() {
                e.push(&img, i == 0)?;
            }
            let mut outputs = Vec::with_capacity(streams.len());
            for (e, s) in elements.iter_mut().zip(&streams) {
                outputs.push(match e {
                    Some(e) => Some(
                        e.pull()
                            .with_context(|| format!("styling with {}", s.spec))?,
                    ),
                    None => None,
                });
            }
            let outputs: Vec<RgbImage> = (0..streams.len())
                .map(|k| match (&outputs[k], streams[k].reference) {
                    (Some(out), _) => out.clone(),
                    (None, Some(r)) => {
                        let mut out = outputs[r].clone().expect("per-frame rows run the element");
                        replay(&mut stabilizers[k], &img, &mut out, streams[k].smoothing);
                        out
                    }
                    (None, None) => unreachable!("only smoothing rows are replayed"),
                })
                .collect();
            meter.add(
                img.as_raw(),
                &outputs
                    .iter()
                    .map(|o| o.as_raw().as_slice())
                    .collect::<Vec<_>>(),
            );
            if i % args.loss_every == args.loss_every / 2 {
                samples.push((img, outputs));
            }
            bar.set_message(format!("frame {i}"));
            bar.tick();
            Ok(())
        },
    )?;
    bar.finish_and_clear();
    for (e, s) in elements.into_iter().zip(&streams) {
        if let Some(e) = e {
            e.finish()
                .with_context(|| format!("styling with {}", s.spec))?;
        }
    }
    if meter.frames < 2 {
        bail!("{} has fewer than 2 frames", video.display());
    }
    // Losses: per sampled frame, then the mean.
    let mut sums = vec![(0.0, 0.0); streams.len()];
    for (input, outputs) in &samples {
        let fx = losses.content_features(&to_unit(&to_tensor(std::slice::from_ref(input))?)?)?;
        for (sum, out) in sums.iter_mut().zip(outputs) {
            let (c, s) = losses.of(&to_unit(&to_tensor(std::slice::from_ref(out))?)?, &fx)?;
            sum.0 += c / samples.len() as f64;
            sum.1 += s / samples.len() as f64;
        }
    }
    let input_change = meter.input_change.value();
    let rows: Vec<VideoRow> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let flicker = meter.flicker[i].value();
            let per_frame = |v: f64, of: &dyn Fn(usize) -> f64| s.reference.map(|r| v / of(r));
            VideoRow {
                model: s.spec.clone(),
                temporal_smoothing: s.smoothing,
                per_frame_row: s.reference,
                added: s.added,
                replayed: replayed(s),
                flicker,
                flicker_vs_input: flicker / input_change,
                flicker_vs_per_frame: per_frame(flicker, &|r| meter.flicker[r].value()),
                ghosting: s.reference.map(|_| meter.ghosting[i].value()),
                content_loss: sums[i].0,
                style_loss: sums[i].1,
                style_vs_per_frame: per_frame(sums[i].1, &|r| sums[r].1),
            }
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(rows);
    }
    let pairs = meter.static_pixels + meter.moving_pixels;
    println!(
        "{}: {} frames of {}x{}; pixels static in the input (every channel changed by < {}): {:.1}%, \
         their mean change {:.3}; losses as in training (content ×{:.0e}, style ×{:.0e}) on {} frames (one in {})",
        video.display(),
        meter.frames,
        frame_size.0,
        frame_size.1,
        gstrsstyle::frame::flicker::STATIC_THRESHOLD,
        100.0 * meter.static_pixels as f64 / pairs as f64,
        input_change,
        args.content_weight,
        args.style_weight,
        samples.len(),
        args.loss_every
    );
    println!(
        "{:<4} {:<64} {:>9} {:>8} {:>8} {:>10} {:>8} {:>10} {:>10} {:>8}",
        "row",
        "model",
        "smoothing",
        "flicker",
        "×input",
        "×per-frame",
        "ghosting",
        "content",
        "style",
        "style ×"
    );
    let opt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "—".to_string(),
    };
    for (i, r) in rows.iter().enumerate() {
        println!(
            "{:<4} {:<64} {:>9.2} {:>8.3} {:>8.2} {:>10} {:>8} {:>10.0} {:>10.0} {:>8}",
            format!(
                "{i}{}{}",
                if r.added { "+" } else { "" },
                if r.replayed { "r" } else { "" }
            ),
            r.model,
            r.temporal_smoothing,
            r.flicker,
            r.flicker_vs_input,
            opt(r.flicker_vs_per_frame, 3),
            opt(r.ghosting, 3),
            r.content_loss,
            r.style_loss,
            opt(r.style_vs_per_frame, 3),
        );
    }
    println!(
        "×per-frame, ghosting and style × compare with the row of the same model and settings at \
         temporal-smoothing 0{}{}",
        if rows.iter().any(|r| r.added) {
            " (rows marked + were added for that)"
        } else {
            ""
        },
        if rows.iter().any(|r| r.replayed) {
            "; rows marked r apply the element's smoothing to that row's frames (--replay)"
        } else {
            ""
        }
    );
    Ok(rows)
}

/// What the element does to `styled`, the styled frame of `input`, with `temporal-smoothing`
/// set to `smoothing` (the frames of one stream in order).
fn replay(stabilizer: &mut Stabilizer, input: &RgbImage, styled: &mut RgbImage, smoothing: f64) {
    let (width, height) = (input.width() as usize, input.height() as usize);
    let input = FrameRef {
        data: input.as_raw(),
        width,
        height,
        stride: 3 * width,
        format: PixelFormat::Rgb,
    };
    let mut output = FrameMut {
        data: styled,
        width,
        height,
        stride: 3 * width,
        format: PixelFormat::Rgb,
    };
    stabilizer.apply(&input, &mut output, smoothing as f32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_rows_get_a_per_frame_counterpart() {
        let specs = [
            "m.onnx,inference-scale=0.5,temporal-smoothing=0.8".to_string(),
            "m.onnx".to_string(),
            "m.onnx,temporal-smoothing=0".to_string(),
            "n.onnx,temporal-smoothing=0.5".to_string(),
        ];
        let streams = plan_streams(&specs, 0.6).unwrap();
        let summary: Vec<_> = streams
            .iter()
            .map(|s| (s.spec.as_str(), s.smoothing, s.reference, s.added))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "m.onnx,inference-scale=0.5,temporal-smoothing=0.8",
                    0.8,
                    Some(4),
                    false
                ),
                // The element's default applies where the spec does not set it.
                ("m.onnx", 0.6, Some(2), false),
                ("m.onnx,temporal-smoothing=0", 0.0, None, false),
                ("n.onnx,temporal-smoothing=0.5", 0.5, Some(5), false),
                (
                    "m.onnx,inference-scale=0.5,temporal-smoothing=0",
                    0.0,
                    None,
                    true
                ),
                ("n.onnx,temporal-smoothing=0", 0.0, None, true),
            ]
        );
    }

    #[test]
    fn a_bad_smoothing_value_is_an_error() {
        for bad in ["x", "1.5", "-0.1"] {
            let e = plan_streams(&[format!("m.onnx,temporal-smoothing={bad}")], 0.0)
                .err()
                .unwrap()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "temporal-smoothing={bad} in --model m.onnx,temporal-smoothing={bad} is not a number 0..1"
                )
            );
        }
    }
}
