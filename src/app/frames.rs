//! `rsstyle frames VIDEO DIR`: decodes a video with GStreamer and writes chosen frames as PNG
//! files (training and evaluation images).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use gst::prelude::*;
use gst_video::prelude::*;

/// Options of `rsstyle frames`.
#[derive(Debug, clap::Args)]
pub struct FramesArgs {
    /// Any video GStreamer can decode.
    pub input: PathBuf,
    /// Folder for the PNG files (`frame-NNNNNN.png`, numbered by frame index).
    pub output: PathBuf,
    /// Keep every Nth frame.
    #[arg(long, default_value_t = 1)]
    pub every: u64,
    /// First frame index to keep.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Stop before this frame index.
    #[arg(long)]
    pub end: Option<u64>,
    /// Scale frames to WIDTHxHEIGHT.
    #[arg(long)]
    pub size: Option<String>,
}

/// Runs `rsstyle frames`; returns the number of files written.
pub fn run(args: &FramesArgs) -> anyhow::Result<u64> {
    if args.every == 0 {
        bail!("--every must be at least 1");
    }
    let size = args
        .size
        .as_deref()
        .map(super::parse_size::<u32>)
        .transpose()?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let keep = |i: u64| i >= args.start && (i - args.start).is_multiple_of(args.every);
    let mut written = 0;
    decode(&args.input, size, keep, args.end, |index, img| {
        let path = args.output.join(format!("frame-{index:06}.png"));
        img.save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        written += 1;
        Ok(())
    })?;
    Ok(written)
}

/// Decodes `input` (scaled to `size` when given) and hands each frame whose index passes `keep`
/// to `sink` as RGB, stopping before index `end`. Errors if no frame was kept.
pub fn decode(
    input: &Path,
    size: Option<(u32, u32)>,
    keep: impl Fn(u64) -> bool,
    end: Option<u64>,
    mut sink: impl FnMut(u64, image::RgbImage) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    gst::init()?;
    if !input.is_file() {
        bail!("input {} does not exist", input.display());
    }
    let scale = size
        .map(|(w, h)| format!(",width={w},height={h}"))
        .unwrap_or_default();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", input.display().to_string())
        .build()?;
    let decodebin = gst::ElementFactory::make("decodebin").build()?;
    let convert = gst::ElementFactory::make("videoconvert").build()?;
    let scaler = gst::ElementFactory::make("videoscale").build()?;
    let caps: gst::Caps = format!("video/x-raw,format=RGBx{scale}").parse()?;
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &caps)
        .build()?;
    let appsink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add_many([
        &src,
        &decodebin,
        &convert,
        &scaler,
        &filter,
        appsink.upcast_ref(),
    ])?;
    src.link(&decodebin)?;
    gst::Element::link_many([&convert, &scaler, &filter, appsink.upcast_ref()])?;
    let convert_weak = convert.downgrade();
    decodebin.connect_pad_added(move |_, pad| {
        let is_video = pad
            .current_caps()
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        if let Some(convert) = convert_weak.upgrade().filter(|_| is_video) {
            let _ = pad.link(&convert.static_pad("sink").unwrap());
        }
    });
    pipeline.set_state(gst::State::Playing)?;
    let mut kept = 0u64;
    let mut index = 0u64;
    let result = (|| -> anyhow::Result<()> {
        while let Ok(sample) = appsink.pull_sample() {
            if end.is_some_and(|end| index >= end) {
                break;
            }
            if keep(index) {
                sink(index, rgb_image(&sample)?)?;
                kept += 1;
            }
            index += 1;
        }
        Ok(())
    })();
    let bus_error = pipeline.bus().and_then(|bus| {
        bus.pop_filtered(&[gst::MessageType::Error])
            .map(|m| match m.view() {
                gst::MessageView::Error(e) => format!("{}", e.error()),
                _ => String::new(),
            })
    });
    pipeline.set_state(gst::State::Null)?;
    result?;
    match (kept, bus_error) {
        (0, Some(e)) => bail!("cannot decode {}: {e}", input.display()),
        (0, None) => bail!(
            "{} has no video frames in the chosen range",
            input.display()
        ),
        _ => Ok(()),
    }
}

/// An RGBx sample as an RGB image.
pub fn rgb_image(sample: &gst::Sample) -> anyhow::Result<image::RgbImage> {
    let caps = sample.caps().context("frame without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps)?;
    let buffer = sample.buffer().context("empty sample")?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .map_err(|_| anyhow::anyhow!("cannot map a frame"))?;
    let (w, h) = (info.width(), info.height());
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0)?;
    Ok(image::RgbImage::from_fn(w, h, |x, y| {
        let p = y as usize * stride + x as usize * 4;
        image::Rgb([data[p], data[p + 1], data[p + 2]])
    }))
}
