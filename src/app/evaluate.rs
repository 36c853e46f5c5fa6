//! `rsstyle evaluate`: how well models (with element settings) keep the content of held-out
//! images and carry a style — the trainer's perceptual losses and pixel metrics, measured on
//! what the element outputs.

use std::path::PathBuf;

use anyhow::{Context, bail};
use gstrsstyle::train::data::{fit_short_side, image_files, load_rgb, to_tensor};
use gstrsstyle::train::losses::{gram, l1, mse, psnr, ssim, to_unit};
use gstrsstyle::train::vgg::{self, FEATURE_LAYERS, Vgg16};
use serde::Serialize;

/// Options of `rsstyle evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Models to evaluate, each optionally with element properties:
    /// `MODEL[,name=value…]`, e.g. `models/starry-night-lite.onnx,inference-scale=0.5`.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Held-out images (folder or files); all must have the same size.
    #[arg(long, num_args = 1.., required = true)]
    pub images: Vec<PathBuf>,
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

/// One row of the result.
#[derive(Debug, Serialize)]
pub struct Row {
    pub model: String,
    pub content_loss: f64,
    pub style_loss: f64,
    pub psnr_vs_reference: f64,
    pub ssim_vs_reference: f64,
    pub l1_vs_reference: f64,
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
        .map(|f| load_rgb(f))
        .collect::<anyhow::Result<_>>()?;
    if images
        .iter()
        .any(|i| i.dimensions() != images[0].dimensions())
    {
        bail!("the held-out images differ in size");
    }
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
    let x = to_unit(&to_tensor(&images)?)?;
    let fx = vgg.features(&x, 2)?;
    let mut outputs = Vec::new();
    for spec in &args.models {
        let (model, props) = super::sheet::parse_model(spec)?;
        let styled = super::sheet::style_images_with(&model, &props, &images)
            .with_context(|| format!("styling with {spec}"))?;
        outputs.push(to_unit(&to_tensor(&styled)?)?);
    }
    let reference = &outputs[args.reference];
    let mut rows = Vec::new();
    for (spec, y) in args.models.iter().zip(&outputs) {
        let fy = vgg.features(y, FEATURE_LAYERS.len())?;
        let content = mse(&fy[1], &fx[1])?.to_scalar::<f32>()? as f64 * args.content_weight;
        let mut style = 0.0;
        for (f, g) in fy.iter().zip(&style_grams) {
            style += mse(&gram(f)?, g)?.to_scalar::<f32>()? as f64;
        }
        rows.push(Row {
            model: spec.clone(),
            content_loss: content,
            style_loss: style * args.style_weight,
            psnr_vs_reference: psnr(y, reference)? as f64,
            ssim_vs_reference: ssim(y, reference)? as f64,
            l1_vs_reference: l1(y, reference)?.to_scalar::<f32>()? as f64,
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
            "{:<56} {:>12} {:>12} {:>8} {:>6} {:>6}",
            "model", "content", "style", "PSNR", "SSIM", "L1"
        );
        for r in &rows {
            println!(
                "{:<56} {:>12.0} {:>12.0} {:>8.2} {:>6.3} {:>6.3}",
                r.model,
                r.content_loss,
                r.style_loss,
                r.psnr_vs_reference,
                r.ssim_vs_reference,
                r.l1_vs_reference
            );
        }
    }
    Ok(rows)
}
