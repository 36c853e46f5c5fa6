//! Shared helpers for the integration tests: test models built with rsstyle's ONNX writer,
//! frames, and element set-up.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;

use gst::prelude::*;
use gstrsstyle::frame::PixelFormat;
use gstrsstyle::onnx::{Attr, Elem, GraphBuilder};

/// Initialises GStreamer and registers the element statically (once per process).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        gst::init().unwrap();
        gstrsstyle::element::register(None).unwrap();
    });
}

/// Directory of the built plugin (`target/<profile>`), for `gst-launch-1.0` runs.
pub fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    assert!(
        dir.join("libgstrsstyle.so").exists(),
        "{} has no libgstrsstyle.so: run `cargo build` before the tests",
        dir.display()
    );
    dir
}

/// The `rsstyle` binary built alongside the tests.
pub fn rsstyle_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rsstyle"))
}

/// Sample media installed by `scripts/setup.sh`.
pub fn asset(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

fn nchw(b: &mut GraphBuilder, elem: Elem) -> String {
    b.input(
        "input",
        elem,
        &["n".into(), 3.into(), "h".into(), "w".into()],
    )
}

fn image_out(b: &mut GraphBuilder, name: &str, elem: Elem) {
    b.output(name, elem, &["n".into(), 3.into(), "h".into(), "w".into()]);
}

/// A model of one elementwise op chain over an NCHW float32 image, with an optional manifest
/// JSON embedded.
pub fn write_model(
    dir: &Path,
    file: &str,
    manifest: Option<&str>,
    body: impl FnOnce(&mut GraphBuilder, &str) -> String,
) -> PathBuf {
    let mut b = GraphBuilder::new(file);
    let x = nchw(&mut b, Elem::F32);
    let y = body(&mut b, &x);
    b.node("Identity", &[&y], &["output"], &[]);
    image_out(&mut b, "output", Elem::F32);
    if let Some(m) = manifest {
        b.metadata(gstrsstyle::model::METADATA_KEY, m);
    }
    let path = dir.join(file);
    b.write(&path).unwrap();
    path
}

/// output = input.
pub fn identity(dir: &Path) -> PathBuf {
    write_model(dir, "identity.onnx", None, |_, x| x.to_string())
}

/// output = input with channels 0 and 2 swapped.
pub fn channel_swap(dir: &Path) -> PathBuf {
    write_model(dir, "swap.onnx", None, |b, x| {
        let idx = b.constant_i64("perm", &[3], &[2, 1, 0]);
        b.op("Gather", &[x, &idx], &[Attr::Int("axis", 1)])
    })
}

/// output = (top of `range`) + (bottom of `range`) − input: 255 − pixel in every convention.
pub fn invert(dir: &Path, range: &str) -> PathBuf {
    let (file, total) = match range {
        "0..255" => ("invert255.onnx", 255.0),
        "0..1" => ("invert1.onnx", 1.0),
        "-1..1" => ("invert_signed.onnx", 0.0),
        other => panic!("no range {other}"),
    };
    let manifest = format!(r#"{{"range": "{range}"}}"#);
    write_model(dir, file, Some(&manifest), |b, x| {
        let c = b.constant_f32("total", &[1], &[total]);
        b.op("Sub", &[&c, x], &[])
    })
}

/// A 3×3 box blur per channel, zero-padded at the borders.
pub fn blur(dir: &Path) -> PathBuf {
    write_model(dir, "blur.onnx", None, |b, x| {
        let w = b.constant_f32("w", &[3, 1, 3, 3], &[1.0 / 9.0; 27]);
        b.op(
            "Conv",
            &[x, &w],
            &[
                Attr::Int("group", 3),
                Attr::Ints("kernel_shape", vec![3, 3]),
                Attr::Ints("pads", vec![1, 1, 1, 1]),
            ],
        )
    })
}

/// output = input + table[style] per channel, with a one-hot `style` input of length 3.
pub const STYLE_OFFSETS: [[f32; 3]; 3] =
    [[10.0, 20.0, 30.0], [-40.0, 0.0, 40.0], [5.0, -5.0, 100.0]];

pub fn conditioned_offsets(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("conditioned");
    let x = nchw(&mut b, Elem::F32);
    let s = b.input("style", Elem::F32, &[1.into(), 3.into()]);
    let table: Vec<f32> = STYLE_OFFSETS.iter().flatten().copied().collect();
    let w = b.constant_f32("table", &[3, 3], &table);
    let off = b.op("MatMul", &[&s, &w], &[]);
    let shape = b.constant_i64("shape", &[4], &[1, 3, 1, 1]);
    let off4 = b.op("Reshape", &[&off, &shape], &[]);
    b.node("Add", &[&x, &off4], &["output"], &[]);
    image_out(&mut b, "output", Elem::F32);
    b.metadata(
        gstrsstyle::model::METADATA_KEY,
        r#"{"conditioning": {"labels": ["warm", "cross", "blue"]}}"#,
    );
    let path = dir.join("conditioned.onnx");
    b.write(&path).unwrap();
    path
}

/// A tiny random two-layer conv net (3→8→3), ending in `last` ("Tanh", "Sigmoid" or none), with
/// an optional one-hot style input adding a per-style bias. Weights come from `seed`.
pub fn random_convnet(
    dir: &Path,
    file: &str,
    last: Option<&str>,
    styles: usize,
    seed: u64,
) -> PathBuf {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let (scale, bias): (f32, f32) = match last {
        None => (0.2, 60.0),
        Some(_) => (0.4, 0.0),
    };
    let mut b = GraphBuilder::new(file);
    let x = nchw(&mut b, Elem::F32);
    let w1: Vec<f32> = (0..8 * 3 * 9).map(|_| next() * scale).collect();
    let b1: Vec<f32> = (0..8).map(|_| next() * bias.max(0.1)).collect();
    let w2: Vec<f32> = (0..3 * 8 * 9).map(|_| next() * scale).collect();
    let b2: Vec<f32> = (0..3).map(|_| next() * bias.max(0.1)).collect();
    let w1 = b.constant_f32("w1", &[8, 3, 3, 3], &w1);
    let b1 = b.constant_f32("b1", &[8], &b1);
    let w2 = b.constant_f32("w2", &[3, 8, 3, 3], &w2);
    let b2 = b.constant_f32("b2", &[3], &b2);
    let conv = |k: i64| {
        vec![
            Attr::Ints("kernel_shape", vec![k, k]),
            Attr::Ints("pads", vec![1, 1, 1, 1]),
        ]
    };
    let h = b.op("Conv", &[&x, &w1, &b1], &conv(3));
    let h = b.op("Relu", &[&h], &[]);
    let mut y = b.op("Conv", &[&h, &w2, &b2], &conv(3));
    if styles > 0 {
        let s = b.input("style", Elem::F32, &["n".into(), (styles as i64).into()]);
        let table: Vec<f32> = (0..styles * 3).map(|_| next() * scale * 2.0).collect();
        let t = b.constant_f32("style_table", &[styles as i64, 3], &table);
        let off = b.op("MatMul", &[&s, &t], &[]);
        let shape = b.constant_i64("style_shape", &[4], &[-1, 3, 1, 1]);
        let off4 = b.op("Reshape", &[&off, &shape], &[]);
        y = b.op("Add", &[&y, &off4], &[]);
    }
    match last {
        Some(op) => b.node(op, &[&y], &["output"], &[]),
        None => b.node("Identity", &[&y], &["output"], &[]),
    }
    image_out(&mut b, "output", Elem::F32);
    let path = dir.join(file);
    b.write(&path).unwrap();
    path
}

/// Test frame with distinct values per pixel and channel: (x·7 + y·13 + c·50) mod 256.
pub fn pattern(width: usize, height: usize) -> Vec<[u8; 3]> {
    (0..height)
        .flat_map(|y| {
            (0..width)
                .map(move |x| std::array::from_fn(|c| ((x * 7 + y * 13 + c * 50) % 256) as u8))
        })
        .collect()
}

/// Packs RGB pixels into a `format` buffer with `stride` bytes per row; the fourth byte of
/// 4-byte formats is set to `alpha`.
pub fn pack(
    pixels: &[[u8; 3]],
    width: usize,
    height: usize,
    format: PixelFormat,
    stride: usize,
    alpha: u8,
) -> Vec<u8> {
    let bpp = format.bytes_per_pixel();
    let off = format.rgb_offsets();
    let mut data = vec![0xEEu8; stride * height];
    for y in 0..height {
        for x in 0..width {
            let p = pixels[y * width + x];
            let at = y * stride + x * bpp;
            for c in 0..3 {
                data[at + off[c]] = p[c];
            }
            if let Some(a) = format.alpha_offset() {
                data[at + a] = alpha;
            }
        }
    }
    data
}

/// Unpacks `format` bytes into RGB pixels (and the fourth byte, if any).
pub fn unpack(
    data: &[u8],
    width: usize,
    height: usize,
    format: PixelFormat,
    stride: usize,
) -> (Vec<[u8; 3]>, Vec<u8>) {
    let bpp = format.bytes_per_pixel();
    let off = format.rgb_offsets();
    let mut rgb = Vec::with_capacity(width * height);
    let mut fourth = Vec::new();
    for y in 0..height {
        for x in 0..width {
            let at = y * stride + x * bpp;
            rgb.push(std::array::from_fn(|c| data[at + off[c]]));
            if let Some(a) = format.alpha_offset() {
                fourth.push(data[at + a]);
            }
        }
    }
    (rgb, fourth)
}

/// The GStreamer default row stride for `format` at `width` (rows padded to 4 bytes).
pub fn default_stride(format: PixelFormat, width: usize) -> usize {
    (width * format.bytes_per_pixel()).div_ceil(4) * 4
}

/// A harness around an `rsstyle` configured by `props`, with caps for `format` at
/// `width`×`height`, in PLAYING.
pub fn harness(
    props: &[(&str, glib::Value)],
    format: PixelFormat,
    width: usize,
    height: usize,
) -> gst_check::Harness {
    init();
    let element = gst::ElementFactory::make("rsstyle").build().unwrap();
    for (name, value) in props {
        element.set_property_from_value(name, value);
    }
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format={},width={width},height={height},framerate=30/1",
        format.name()
    ));
    h.play();
    h
}

pub use gst::glib;

/// Runs one frame of RGB `pixels` through a harness and returns the output RGB pixels, using
/// the default stride for the format.
pub fn run_frame(
    props: &[(&str, glib::Value)],
    format: PixelFormat,
    width: usize,
    height: usize,
    pixels: &[[u8; 3]],
) -> Vec<[u8; 3]> {
    let mut h = harness(props, format, width, height);
    let stride = default_stride(format, width);
    let buf = gst::Buffer::from_mut_slice(pack(pixels, width, height, format, stride, 0x80));
    h.push(buf).unwrap();
    let out = h.pull().unwrap();
    let map = out.map_readable().unwrap();
    let (rgb, fourth) = unpack(&map, width, height, format, stride);
    assert!(
        fourth.iter().all(|&a| a == 0x80),
        "alpha / padding byte not carried over"
    );
    rgb
}

/// NHWC model: output = input with channels 0 and 2 swapped.
pub fn nhwc_swap(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("nhwc");
    let x = b.input(
        "input",
        Elem::F32,
        &["n".into(), "h".into(), "w".into(), 3.into()],
    );
    let idx = b.constant_i64("perm", &[3], &[2, 1, 0]);
    b.node("Gather", &[&x, &idx], &["output"], &[Attr::Int("axis", 3)]);
    b.output(
        "output",
        Elem::F32,
        &["n".into(), "h".into(), "w".into(), 3.into()],
    );
    let path = dir.join("nhwc.onnx");
    b.write(&path).unwrap();
    path
}

/// float16 model: output = 255 − input.
pub fn f16_invert(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("f16");
    let x = nchw(&mut b, Elem::F16);
    let c = b.constant_f32("total", &[1], &[255.0]);
    let c16 = b.op("Cast", &[&c], &[Attr::Int("to", 10)]);
    b.node("Sub", &[&c16, &x], &["output"], &[]);
    image_out(&mut b, "output", Elem::F16);
    let path = dir.join("f16.onnx");
    b.write(&path).unwrap();
    path
}

/// Fixed 8×8 input: output = input.
pub fn fixed_identity(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("fixed");
    let x = b.input(
        "input",
        Elem::F32,
        &[1.into(), 3.into(), 8.into(), 8.into()],
    );
    b.node("Identity", &[&x], &["output"], &[]);
    b.output(
        "output",
        Elem::F32,
        &[1.into(), 3.into(), 8.into(), 8.into()],
    );
    let path = dir.join("fixed.onnx");
    b.write(&path).unwrap();
    path
}

/// output = input with model channel 0 set to 0.
pub fn zero_first_channel(dir: &Path) -> PathBuf {
    write_model(dir, "zero0.onnx", None, |b, x| {
        let m = b.constant_f32("mask", &[1, 3, 1, 1], &[0.0, 1.0, 1.0]);
        b.op("Mul", &[x, &m], &[])
    })
}

/// output = tanh(input): the value range is inferred from the last op.
pub fn tanh(dir: &Path) -> PathBuf {
    write_model(dir, "tanh.onnx", None, |b, x| b.op("Tanh", &[x], &[]))
}

/// An ONNX graph that is not an image model: [1,10] → MatMul → [1,4].
pub fn not_an_image_model(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("classifier");
    let x = b.input("features", Elem::F32, &[1.into(), 10.into()]);
    let w = b.constant_f32("w", &[10, 4], &[0.5; 40]);
    b.node("MatMul", &[&x, &w], &["scores"], &[]);
    b.output("scores", Elem::F32, &[1.into(), 4.into()]);
    let path = dir.join("classifier.onnx");
    b.write(&path).unwrap();
    path
}

/// A 1-channel (grey) image model.
pub fn grey_model(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("grey");
    let x = b.input(
        "input",
        Elem::F32,
        &["n".into(), 1.into(), "h".into(), "w".into()],
    );
    b.node("Identity", &[&x], &["output"], &[]);
    b.output(
        "output",
        Elem::F32,
        &["n".into(), 1.into(), "h".into(), "w".into()],
    );
    let path = dir.join("grey.onnx");
    b.write(&path).unwrap();
    path
}

/// Two image inputs (a blend model).
pub fn two_image_model(dir: &Path) -> PathBuf {
    let mut b = GraphBuilder::new("blend");
    let dims = ["n".into(), 3.into(), "h".into(), "w".into()];
    let x = b.input("content", Elem::F32, &dims);
    let y = b.input("style_image", Elem::F32, &dims);
    b.node("Add", &[&x, &y], &["output"], &[]);
    b.output("output", Elem::F32, &dims);
    let path = dir.join("blend.onnx");
    b.write(&path).unwrap();
    path
}

/// Runs `gst-launch-1.0` with the built plugin on `description`, returning (success, stderr+stdout).
pub fn gst_launch(description: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new("gst-launch-1.0");
    cmd.arg("-q")
        .args(description.split_whitespace())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env_remove("ORT_DYLIB_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("gst-launch-1.0 runs (scripts/setup.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A playing-ready pipeline decoding `path` to raw video of `format` into the returned appsink.
pub fn decoder(path: &Path, format: &str) -> (gst::Pipeline, gst_app::AppSink) {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format={format} ! appsink name=sink sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    (pipeline, sink)
}

/// Decodes `path` and returns (frame count, end time of the last frame, mean grey level of the
/// first frame).
pub fn decode_summary(path: &Path) -> (usize, gst::ClockTime, f64) {
    let (pipeline, sink) = decoder(path, "GRAY8");
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = 0;
    let mut end = gst::ClockTime::ZERO;
    let mut first_mean = None;
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        frames += 1;
        end = end.max(buf.pts().unwrap() + buf.duration().unwrap_or(gst::ClockTime::ZERO));
        if first_mean.is_none() {
            let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
            let map = buf.map_readable().unwrap();
            let stride = info.stride()[0] as usize;
            let (w, h) = (info.width() as usize, info.height() as usize);
            let sum: u64 = (0..h)
                .flat_map(|y| map[y * stride..y * stride + w].iter())
                .map(|&v| v as u64)
                .sum();
            first_mean = Some(sum as f64 / (w * h) as f64);
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (frames, end, first_mean.expect("at least one frame"))
}

/// A test engine: wraps a real ONNX model, sleeps `delay_ms` per batch, and records batch
/// shapes. Opened as `model=test:NAME` after [`test_engine`] registered NAME.
pub struct TestControl {
    pub delay_ms: std::sync::atomic::AtomicU64,
    /// The next inference panics.
    pub panic: std::sync::atomic::AtomicBool,
    pub shapes: std::sync::Mutex<Vec<[usize; 4]>>,
    model: PathBuf,
}

impl TestControl {
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.shapes.lock().unwrap().iter().map(|s| s[0]).collect()
    }
}

struct TestEngine {
    inner: Box<dyn gstrsstyle::engine::Engine>,
    control: std::sync::Arc<TestControl>,
}

impl gstrsstyle::engine::Engine for TestEngine {
    fn manifest(&self) -> &gstrsstyle::model::Manifest {
        self.inner.manifest()
    }
    fn device_description(&self) -> &str {
        "test engine"
    }
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        conditioning: Option<&[f32]>,
        output: gstrsstyle::engine::Output<'_, f32>,
    ) -> Result<(), gstrsstyle::engine::EngineError> {
        if self
            .control
            .panic
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("test engine told to panic");
        }
        let delay = self
            .control
            .delay_ms
            .load(std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        self.control.shapes.lock().unwrap().push(shape);
        self.inner.infer(input, shape, conditioning, output)
    }
}

type Controls = std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<TestControl>>>;
static CONTROLS: std::sync::LazyLock<Controls> = std::sync::LazyLock::new(Default::default);

/// Registers a test engine named `name` around `model`; use `model=test:NAME`.
pub fn test_engine(name: &str, model: &Path, delay_ms: u64) -> std::sync::Arc<TestControl> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        gstrsstyle::engine::register_engine(
            "test:",
            std::sync::Arc::new(|name: &str, options: &gstrsstyle::engine::EngineOptions| {
                let control = CONTROLS
                    .lock()
                    .unwrap()
                    .get(name)
                    .cloned()
                    .expect("registered test engine");
                let path = control.model.display().to_string();
                let (inner, notes) =
                    gstrsstyle::engine::open(&path, None, &Default::default(), options)?;
                Ok((
                    Box::new(TestEngine { inner, control }) as Box<dyn gstrsstyle::engine::Engine>,
                    notes,
                ))
            }),
        );
    });
    let control = std::sync::Arc::new(TestControl {
        delay_ms: delay_ms.into(),
        panic: false.into(),
        shapes: Default::default(),
        model: model.to_path_buf(),
    });
    CONTROLS
        .lock()
        .unwrap()
        .insert(name.to_string(), control.clone());
    control
}

/// A buffer holding `pixels` packed as RGB with default stride, at `pts` for 40 ms.
pub fn rgb_buffer(pixels: &[[u8; 3]], width: usize, height: usize, pts_ms: u64) -> gst::Buffer {
    let stride = default_stride(PixelFormat::Rgb, width);
    let mut buf =
        gst::Buffer::from_mut_slice(pack(pixels, width, height, PixelFormat::Rgb, stride, 0));
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_duration(gst::ClockTime::from_mseconds(40));
    }
    buf
}

/// RGB pixels of a buffer with default stride.
pub fn rgb_pixels(buf: &gst::Buffer, width: usize, height: usize) -> Vec<[u8; 3]> {
    let map = buf.map_readable().unwrap();
    unpack(
        &map,
        width,
        height,
        PixelFormat::Rgb,
        default_stride(PixelFormat::Rgb, width),
    )
    .0
}

/// The largest difference of two pictures' channel values.
pub fn max_difference(a: &[[u8; 3]], b: &[[u8; 3]]) -> u8 {
    a.iter()
        .zip(b)
        .flat_map(|(p, q)| (0..3).map(move |c| p[c].abs_diff(q[c])))
        .max()
        .unwrap()
}

/// A harness around an `rsstyle` with `props`, RGB caps of `width`×`height` at 25/1 set, in
/// PLAYING, with a bus attached.
pub fn start_rgb(
    props: &[(&str, glib::Value)],
    width: usize,
    height: usize,
) -> (gst_check::Harness, gst::Bus) {
    init();
    let element = gst::ElementFactory::make("rsstyle").build().unwrap();
    for (name, value) in props {
        element.set_property_from_value(name, value);
    }
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={width},height={height},framerate=25/1"
    ));
    h.play();
    (h, bus)
}
