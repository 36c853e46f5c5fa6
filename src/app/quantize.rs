//! `rsstyle quantize`: an int8 copy of a float32 model, calibrated on images.

use std::path::PathBuf;

use anyhow::bail;
use gstrsstyle::onnx::quantize::QuantizeOptions;
use gstrsstyle::quantize::{Calibration, quantize_file};

/// Options of `rsstyle quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// The float32 ONNX model (any model the element runs, e.g. one `rsstyle export` wrote).
    pub model: PathBuf,
    /// The int8 model to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Calibration images: folders (searched recursively for .png/.jpg) or files. Use images
    /// like the video to be styled, and not the ones quality is measured on.
    #[arg(long, num_args = 1.., required = true)]
    pub calibrate: Vec<PathBuf>,
    /// WIDTHxHEIGHT the calibration images are scaled to: the size the model sees (the frame
    /// size times the element's inference-scale).
    #[arg(long, default_value = "320x240")]
    pub size: String,
    /// Quantize only convolutions with at least this many input and output channels (on few
    /// channels ONNX Runtime's int8 convolution is slower than float32; 1: all).
    #[arg(long, default_value_t = QuantizeOptions::default().min_channels)]
    pub min_channels: usize,
    /// Bits of the weights: 8, or 7 to avoid the saturation of AVX2's int8 products.
    #[arg(long, default_value_t = QuantizeOptions::default().weight_bits)]
    pub weight_bits: u32,
    /// ONNX Runtime threads for calibration (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `rsstyle quantize`.
pub fn run(a: &QuantizeArgs) -> anyhow::Result<()> {
    if a.output.exists() && !a.force {
        bail!("{} exists; pass --force to replace it", a.output.display());
    }
    let (width, height) = super::parse_size(&a.size)?;
    if width == 0 || height == 0 {
        bail!("size '{}' is empty", a.size);
    }
    let report = quantize_file(
        &a.model,
        &a.output,
        &Calibration {
            images: a.calibrate.clone(),
            width,
            height,
            threads: a.threads,
        },
        &QuantizeOptions {
            min_channels: a.min_channels,
            weight_bits: a.weight_bits,
        },
    )?;
    println!(
        "wrote {}: {} of {} convolutions int8, calibrated with {} runs ({} images)",
        a.output.display(),
        report.convs,
        report.total_convs,
        report.runs,
        report.images
    );
    Ok(())
}
