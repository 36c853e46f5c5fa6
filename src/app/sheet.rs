//! `rsstyle sheet`: a before/after contact sheet — chosen frames of a video in the first row,
//! the same frames styled by each model (through the rsstyle element) in the rows below.

use std::path::PathBuf;

use anyhow::{Context, bail};
use gst::prelude::*;
use image::RgbImage;

/// Options of `rsstyle sheet`.
#[derive(Debug, clap::Args)]
pub struct SheetArgs {
    /// The video to take frames from.
    #[arg(long)]
    pub video: PathBuf,
    /// Frame indices, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub at: Vec<u64>,
    /// Scale frames to WIDTHxHEIGHT.
    #[arg(long, default_value = "384x288")]
    pub size: String,
    /// A model to show (one row each, in order), optionally with element properties:
    /// `MODEL[,name=value…]`; repeatable.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// The PNG file to write.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs `rsstyle sheet`.
pub fn run(args: &SheetArgs) -> anyhow::Result<()> {
    let size = super::parse_size::<u32>(&args.size)?;
    let mut frames: Vec<(u64, RgbImage)> = Vec::new();
    let last = args.at.iter().max().copied().unwrap_or(0);
    super::frames::decode(
        &args.video,
        Some(size),
        |i| args.at.contains(&i),
        Some(last + 1),
        |i, img| {
            frames.push((i, img));
            Ok(())
        },
    )?;
    let missing: Vec<u64> = args
        .at
        .iter()
        .filter(|i| !frames.iter().any(|(j, _)| j == *i))
        .copied()
        .collect();
    if !missing.is_empty() {
        bail!("{} has no frames {missing:?}", args.video.display());
    }
    let originals: Vec<RgbImage> = args
        .at
        .iter()
        .map(|i| frames.iter().find(|(j, _)| j == i).unwrap().1.clone())
        .collect();
    let mut rows = vec![originals.clone()];
    for spec in &args.models {
        let (model, props) = parse_model(spec)?;
        rows.push(
            style_images_with(&model, &props, &originals)
                .with_context(|| format!("styling with {spec}"))?,
        );
    }
    gstrsstyle::train::data::save_image_grid(&rows, &args.output)?;
    println!(
        "wrote {} ({} frames × {} models)",
        args.output.display(),
        originals.len(),
        args.models.len()
    );
    Ok(())
}

/// Splits `MODEL[,name=value…]` into the model and element properties.
pub fn parse_model(spec: &str) -> anyhow::Result<(PathBuf, Vec<(String, String)>)> {
    let mut parts = spec.split(',');
    let model = PathBuf::from(parts.next().unwrap_or_default());
    let props = parts
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("'{p}' in --model {spec} is not name=value"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((model, props))
}

/// Runs `images` (all the same size) through `appsrc ! rsstyle model=MODEL ! appsink`, with
/// element properties set from `name=value` strings.
pub fn style_images_with(
    model: &std::path::Path,
    properties: &[(String, String)],
    images: &[RgbImage],
) -> anyhow::Result<Vec<RgbImage>> {
    gst::init()?;
    gstrsstyle::element::register(None)?;
    let (w, h) = images[0].dimensions();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGBx,width={w},height={h},framerate=1/1 \
         ! rsstyle name=style ! appsink name=sink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let style = pipeline.by_name("style").context("rsstyle element")?;
    style.set_property("model", model.display().to_string());
    for (name, value) in properties {
        if style.find_property(name).is_none() {
            bail!("rsstyle has no property '{name}'");
        }
        style.set_property_from_str(name, value);
    }
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .context("appsrc")?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .context("appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    for (i, img) in images.iter().enumerate() {
        let mut data = Vec::with_capacity((w * h * 4) as usize);
        for px in img.pixels() {
            data.extend_from_slice(&[px[0], px[1], px[2], 255]);
        }
        let mut buffer = gst::Buffer::from_mut_slice(data);
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_seconds(i as u64));
        src.push_buffer(buffer)?;
    }
    src.end_of_stream()?;
    let mut out = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        out.push(super::frames::rgb_image(&sample)?);
    }
    let error = pipeline
        .bus()
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
    pipeline.set_state(gst::State::Null)?;
    if let Some(msg) = error
        && let gst::MessageView::Error(e) = msg.view()
    {
        bail!("{}", e.error());
    }
    if out.len() != images.len() {
        bail!("{} frames in, {} out", images.len(), out.len());
    }
    Ok(out)
}
