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
    /// Also style the N frames before each shown frame (not shown), so that the element's
    /// temporal history (`temporal-smoothing`) is as in a video played from there. Without
    /// it, shown frames that are not consecutive are styled each on its own.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Under each row, the change of each frame from the video frame before it (mean over
    /// channels, ×4, as grey): where the original moved and where the styled frames flicker.
    /// Implies `--warmup 1` at least.
    #[arg(long)]
    pub changes: bool,
    /// The image file to write (PNG or JPEG, from the extension).
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs `rsstyle sheet`.
pub fn run(args: &SheetArgs) -> anyhow::Result<()> {
    let size = super::parse_size::<u32>(&args.size)?;
    let warmup = if args.changes {
        args.warmup.max(1)
    } else {
        args.warmup
    };
    // Frames to style: each shown frame and the `warmup` before it.
    let wanted = |i: u64| args.at.iter().any(|&a| i <= a && i + warmup >= a);
    let mut frames: Vec<(u64, RgbImage)> = Vec::new();
    let last = args.at.iter().max().copied().unwrap_or(0);
    super::frames::decode(&args.video, Some(size), wanted, Some(last + 1), |i, img| {
        frames.push((i, img));
        Ok(())
    })?;
    let missing: Vec<u64> = args
        .at
        .iter()
        .filter(|i| !frames.iter().any(|(j, _)| j == *i))
        .copied()
        .collect();
    if !missing.is_empty() {
        bail!("{} has no frames {missing:?}", args.video.display());
    }
    let continues: Vec<bool> = frames
        .iter()
        .enumerate()
        .map(|(k, (i, _))| k > 0 && frames[k - 1].0 + 1 == *i)
        .collect();
    let images: Vec<RgbImage> = frames.iter().map(|(_, img)| img.clone()).collect();
    let mut rows = Vec::new();
    let mut add_rows = |sequence: &[RgbImage]| {
        let at = |index: u64| frames.iter().position(|(j, _)| *j == index);
        rows.push(
            args.at
                .iter()
                .map(|&i| sequence[at(i).expect("decoded")].clone())
                .collect(),
        );
        if args.changes {
            rows.push(
                args.at
                    .iter()
                    .map(|&i| {
                        let now = &sequence[at(i).expect("decoded")];
                        match i.checked_sub(1).and_then(at) {
                            Some(before) => change_image(&sequence[before], now),
                            None => RgbImage::new(now.width(), now.height()),
                        }
                    })
                    .collect(),
            );
        }
    };
    add_rows(&images);
    for spec in &args.models {
        let (model, props) = parse_model(spec)?;
        add_rows(
            &style_images_with(&model, &props, &images, &continues)
                .with_context(|| format!("styling with {spec}"))?,
        );
    }
    gstrsstyle::train::data::save_image_grid(&rows, &args.output)?;
    println!(
        "wrote {} ({} frames × {} models)",
        args.output.display(),
        args.at.len(),
        args.models.len()
    );
    Ok(())
}

/// |b − a| averaged over the channels, ×4, as a grey image.
pub fn change_image(a: &RgbImage, b: &RgbImage) -> RgbImage {
    RgbImage::from_fn(a.width(), a.height(), |x, y| {
        let (p, q) = (a.get_pixel(x, y).0, b.get_pixel(x, y).0);
        let sum: u32 = (0..3).map(|c| p[c].abs_diff(q[c]) as u32).sum();
        let v = (sum * 4 / 3).min(255) as u8;
        image::Rgb([v, v, v])
    })
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

/// Styles `images` (all the same size) in order through `appsrc ! rsstyle model=MODEL !
/// appsink`, with element properties set from `name=value` strings. `continues[i]` says image i
/// is the video frame right after image i−1; other images are pushed as discontinuities, so no
/// temporal history (`temporal-smoothing`) carries over to them.
pub fn style_images_with(
    model: &std::path::Path,
    properties: &[(String, String)],
    images: &[RgbImage],
    continues: &[bool],
) -> anyhow::Result<Vec<RgbImage>> {
    let mut stream = ElementStream::new(model, properties, images[0].dimensions())?;
    for (i, img) in images.iter().enumerate() {
        stream.push(img, !continues.get(i).copied().unwrap_or(false))?;
    }
    let out = images
        .iter()
        .map(|_| stream.pull())
        .collect::<anyhow::Result<Vec<_>>>()?;
    stream.finish()?;
    Ok(out)
}

/// Frames through the rsstyle element in this process, one at a time: `appsrc ! rsstyle !
/// appsink`, RGBx at one size, frames 1 s apart.
pub struct ElementStream {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    size: (u32, u32),
    pushed: u64,
}

impl ElementStream {
    /// A playing pipeline around `rsstyle model=MODEL` with `properties` (`name=value`
    /// strings) for `size` frames. Errors name an unknown property or the element's own error
    /// (a model that does not load).
    pub fn new(
        model: &std::path::Path,
        properties: &[(String, String)],
        size: (u32, u32),
    ) -> anyhow::Result<Self> {
        gst::init()?;
        gstrsstyle::element::register(None)?;
        let (w, h) = size;
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
        let stream = Self {
            pipeline,
            src,
            sink,
            size,
            pushed: 0,
        };
        if stream.pipeline.set_state(gst::State::Playing).is_err() {
            bail!(
                "{}",
                stream
                    .bus_error()
                    .unwrap_or_else(|| "the pipeline did not start".to_string())
            );
        }
        Ok(stream)
    }

    /// Pushes the next frame; `discont` marks it as not following the previous one.
    pub fn push(&mut self, img: &RgbImage, discont: bool) -> anyhow::Result<()> {
        if img.dimensions() != self.size {
            bail!(
                "frame of {:?}, the stream is {:?}",
                img.dimensions(),
                self.size
            );
        }
        let mut data = Vec::with_capacity(img.as_raw().len() / 3 * 4);
        for px in img.pixels() {
            data.extend_from_slice(&[px[0], px[1], px[2], 255]);
        }
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer.get_mut().expect("a new buffer is writable");
            b.set_pts(gst::ClockTime::from_seconds(self.pushed));
            if discont {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        self.pushed += 1;
        self.src.push_buffer(buffer)?;
        Ok(())
    }

    /// The next styled frame, in push order; an error if the element failed or the stream
    /// ended.
    pub fn pull(&mut self) -> anyhow::Result<RgbImage> {
        loop {
            if let Some(sample) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                return super::frames::rgb_image(&sample);
            }
            if let Some(e) = self.bus_error() {
                bail!("{e}");
            }
            if self.sink.is_eos() {
                bail!("the stream ended before every frame came out");
            }
        }
    }

    /// Ends the stream; an error if the element posted one.
    pub fn finish(self) -> anyhow::Result<()> {
        self.src.end_of_stream()?;
        loop {
            if let Some(e) = self.bus_error() {
                bail!("{e}");
            }
            if self.sink.is_eos() {
                return Ok(());
            }
            let _ = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100));
        }
    }

    fn bus_error(&self) -> Option<String> {
        let msg = self
            .pipeline
            .bus()?
            .pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        }
    }
}

impl Drop for ElementStream {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
