//! `rsstyle evaluate`: how well models (with element settings) keep the content of held-out
//! images and carry a style — the trainer's perceptual losses, blob area and edge correlation
//! ([`quality`]) and pixel metrics, measured on what the element outputs.

use std::path::PathBuf;

use anyhow::{Context, bail};
use candle_core::Tensor;
use gstrsstyle::train::data::{fit_short_side, image_files, load_rgb, to_tensor};
use gstrsstyle::train::losses::{gram, l1, mse, psnr, ssim, to_unit};
use gstrsstyle::train::quality;
use gstrsstyle::train::vgg::{self, FEATURE_LAYERS, Vgg16};
use serde::Serialize;

/// Options of `rsstyle evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Models to evaluate, each optionally with element properties:
    /// `MODEL[,name=value…]`, e.g. `models/starry-night-lite.onnx,inference-scale=0.5`.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Held-out images (folder or files), of any sizes.
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
    /// Scale images whose shorter side is longer than this down to it (0: keep their size).
    #[arg(long, default_value_t = 0)]
    pub max_side: u32,
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

/// Runs `images` through the element with `model` and `props`, a pipeline per image size.
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
        for (k, styled) in idx
            .into_iter()
            .zip(super::sheet::style_images_with(model, props, &group)?)
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

/// Runs `rsstyle evaluate`.
pub fn run(args: &EvaluateArgs) -> anyhow::Result<Vec<Row>> {
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
    let inputs: Vec<Tensor> = images
        .iter()
        .map(|i| to_unit(&to_tensor(std::slice::from_ref(i))?))
        .collect::<candle_core::Result<_>>()?;
    let content_features: Vec<Tensor> = inputs
        .iter()
        .map(|x| Ok(vgg.features(x, 2)?.remove(1)))
        .collect::<candle_core::Result<_>>()?;
    let mut outputs = Vec::new();
    for spec in &args.models {
        let (model, props) = super::sheet::parse_model(spec)?;
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
            let fy = vgg.features(&y, FEATURE_LAYERS.len())?;
            content += mse(&fy[1], &content_features[k])?.to_scalar::<f32>()? as f64;
            for (f, g) in fy.iter().zip(&style_grams) {
                style += mse(&gram(f)?, g)?.to_scalar::<f32>()? as f64;
            }
            psnr_sum += psnr(&y, &r)?.min(99.0) as f64;
            ssim_sum += ssim(&y, &r)? as f64;
            l1_sum += l1(&y, &r)?.to_scalar::<f32>()? as f64;
            let q = quality::Quality::of(&images[k], out);
            blobs.push(q.blob_area * 100.0);
            edges.push(q.edge_correlation);
        }
        rows.push(Row {
            model: spec.clone(),
            content_loss: content / n * args.content_weight,
            style_loss: style / n * args.style_weight,
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
