//! Video frame ⇄ tensor conversion.
//!
//! Pure functions over byte slices: packed 8-bit RGB-family frames (any row stride) are turned
//! into model input tensors (layout, channel order, value range, padding or resizing to the
//! model's size rule) and model outputs are turned back into frames, blended with the input by a
//! strength factor; [`temporal`] stabilises styled video over time and [`flicker`] measures how
//! steady it is. Nothing here knows GStreamer.

pub mod bytes;
pub mod flicker;
mod geometry;
mod pixels;
mod resize;
pub mod temporal;

pub use geometry::{Geometry, Resample};
pub use pixels::PixelFormat;
pub use resize::resize_images;

use crate::model::{ChannelOrder, Layout, ValueRange};

/// A read-only view of one packed 8-bit frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    /// Bytes from the start of one row to the start of the next.
    pub stride: usize,
    pub format: PixelFormat,
}

/// A writable view of one packed 8-bit frame.
#[derive(Debug)]
pub struct FrameMut<'a> {
    pub data: &'a mut [u8],
    pub width: usize,
    pub height: usize,
    pub stride: usize,
    pub format: PixelFormat,
}

/// How the model wants its image tensor: memory layout, channel order and value range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorFormat {
    pub layout: Layout,
    pub channel_order: ChannelOrder,
    pub range: ValueRange,
}

impl TensorFormat {
    /// Offsets of channel `c` (0, 1, 2 in the model's order) for pixel `i` of an image of
    /// `pixels` pixels, as (first element offset, step between pixels).
    fn channel_index(&self, c: usize, pixels: usize) -> (usize, usize) {
        match self.layout {
            Layout::Nchw => (c * pixels, 1),
            Layout::Nhwc => (c, 3),
        }
    }

    /// Frame channel (0 = R, 1 = G, 2 = B) that feeds model channel `c`.
    fn rgb_channel(&self, c: usize) -> usize {
        match self.channel_order {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => 2 - c,
        }
    }
}

/// An element type of image tensors: `f32` for models fed directly, `u8` for engines that take
/// video bytes and convert on their device.
pub trait TensorValue: Copy + Default + Send + Sync + 'static {
    /// The element for a value in the tensor's range (bytes round and clamp).
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl TensorValue for f32 {
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl TensorValue for u8 {
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        to_byte(v)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// The tensor value of each byte value: `lo + byte · scale` in the tensor's element type.
struct Levels<T> {
    lut: [T; 256],
    lo: f32,
    scale: f32,
}

impl<T: TensorValue> Levels<T> {
    fn new(range: ValueRange) -> Self {
        let (lo, hi) = range.bounds();
        let scale = (hi - lo) / 255.0;
        Self {
            lut: std::array::from_fn(|v| T::from_f32(lo + v as f32 * scale)),
            lo,
            scale,
        }
    }

    #[inline(always)]
    fn of(&self, byte: u8) -> T {
        self.lut[byte as usize]
    }

    /// The value of byte `shift / 8` of a little-endian pixel word: the same as [`Self::of`],
    /// computed rather than looked up, so that a loop of them vectorises.
    #[inline(always)]
    fn of_word(&self, word: u32, shift: u32) -> T {
        T::from_f32(self.lo + ((word >> shift) & 0xff) as i32 as f32 * self.scale)
    }
}

/// Writes `frame` into `tensor` (one image, `3 * geometry.tensor_pixels()` elements).
pub fn frame_to_tensor<T: TensorValue>(
    frame: &FrameRef,
    geometry: &Geometry,
    format: &TensorFormat,
    tensor: &mut [T],
) {
    debug_assert_eq!(tensor.len(), 3 * geometry.tensor_pixels());
    let levels = Levels::<T>::new(format.range);
    let (lo, scale) = (levels.lo, levels.scale);
    let pixels = geometry.tensor_pixels();
    let offsets = frame.format.rgb_offsets();
    let bpp = frame.format.bytes_per_pixel();
    let planes: [(usize, usize, usize); 3] = std::array::from_fn(|c| {
        let (start, step) = format.channel_index(c, pixels);
        (start, step, offsets[format.rgb_channel(c)])
    });

    // Model channel c reads frame byte `src[c]` of each pixel.
    let src: [usize; 3] = std::array::from_fn(|c| planes[c].2);
    match geometry.resample {
        Resample::Pad => pad_rows(
            frame,
            geometry,
            &levels,
            src,
            split_rows(format.layout, tensor, pixels),
            0,
        ),
        Resample::Bilinear => {
            let taps_x = geometry::bilinear_taps(geometry.tensor_width, frame.width);
            for ty in 0..geometry.tensor_height {
                let (y0, y1, fy) = geometry::bilinear_tap(ty, geometry.tensor_height, frame.height);
                let r0 = &frame.data[y0 * frame.stride..];
                let r1 = &frame.data[y1 * frame.stride..];
                let base = ty * geometry.tensor_width;
                for (tx, &(x0, x1, fx)) in taps_x.iter().enumerate() {
                    let i = base + tx;
                    for &(start, step, off) in &planes {
                        let v = geometry::lerp2(
                            r0[x0 * bpp + off] as f32,
                            r0[x1 * bpp + off] as f32,
                            r1[x0 * bpp + off] as f32,
                            r1[x1 * bpp + off] as f32,
                            fx,
                            fy,
                        );
                        tensor[start + i * step] = T::from_f32(lo + v * scale);
                    }
                }
            }
        }
    }
}

/// Tensor rows being written: one slice per model channel (NCHW planes, `tensor_width`
/// elements a row) or one slice of interleaved rows (NHWC, `3 × tensor_width` a row).
enum RowsMut<'a, T> {
    Planes([&'a mut [T]; 3]),
    Interleaved(&'a mut [T]),
}

/// All rows of a tensor of `pixels` pixels per channel.
fn split_rows<T>(layout: Layout, tensor: &mut [T], pixels: usize) -> RowsMut<'_, T> {
    match layout {
        Layout::Nchw => {
            let (p0, rest) = tensor.split_at_mut(pixels);
            let (p1, p2) = rest.split_at_mut(pixels);
            RowsMut::Planes([p0, p1, p2])
        }
        Layout::Nhwc => RowsMut::Interleaved(tensor),
    }
}

/// Reflection-padded conversion of tensor rows `first..` (as many as `rows` holds): each
/// row is its source row's pixels, then the mirrored columns.
fn pad_rows<T: TensorValue>(
    frame: &FrameRef,
    geometry: &Geometry,
    levels: &Levels<T>,
    src: [usize; 3],
    rows: RowsMut<'_, T>,
    first: usize,
) {
    let lut = |b: u8| levels.of(b);
    let tw = geometry.tensor_width;
    let bpp = frame.format.bytes_per_pixel();
    let source = |ty: usize| {
        let sy = geometry.source_row(ty);
        &frame.data[sy * frame.stride..][..frame.width * bpp]
    };
    match rows {
        RowsMut::Planes([p0, p1, p2]) => {
            let rows = p0
                .chunks_exact_mut(tw)
                .zip(p1.chunks_exact_mut(tw))
                .zip(p2.chunks_exact_mut(tw));
            let shifts = src.map(|o| 8 * o as u32);
            for (i, ((r0, r1), r2)) in rows.enumerate() {
                let row = source(first + i);
                if bpp == 4 {
                    // Whole pixels as words: shifts and conversions the compiler vectorises.
                    let (r0, r1, r2) = (
                        &mut r0[..frame.width],
                        &mut r1[..frame.width],
                        &mut r2[..frame.width],
                    );
                    for (((px, d0), d1), d2) in row
                        .chunks_exact(4)
                        .zip(r0.iter_mut())
                        .zip(r1.iter_mut())
                        .zip(r2.iter_mut())
                    {
                        let word = u32::from_le_bytes([px[0], px[1], px[2], px[3]]);
                        *d0 = levels.of_word(word, shifts[0]);
                        *d1 = levels.of_word(word, shifts[1]);
                        *d2 = levels.of_word(word, shifts[2]);
                    }
                } else {
                    for (x, px) in row.chunks_exact(bpp).enumerate() {
                        r0[x] = lut(px[src[0]]);
                        r1[x] = lut(px[src[1]]);
                        r2[x] = lut(px[src[2]]);
                    }
                }
                for tx in frame.width..tw {
                    let px = &row[geometry.source_col(tx) * bpp..];
                    r0[tx] = lut(px[src[0]]);
                    r1[tx] = lut(px[src[1]]);
                    r2[tx] = lut(px[src[2]]);
                }
            }
        }
        RowsMut::Interleaved(t) => {
            for (i, out) in t.chunks_exact_mut(3 * tw).enumerate() {
                let row = source(first + i);
                let (inside, padding) = out.split_at_mut(3 * frame.width);
                for (d, px) in inside.chunks_exact_mut(3).zip(row.chunks_exact(bpp)) {
                    d[0] = lut(px[src[0]]);
                    d[1] = lut(px[src[1]]);
                    d[2] = lut(px[src[2]]);
                }
                for (i, d) in padding.chunks_exact_mut(3).enumerate() {
                    let px = &row[geometry.source_col(frame.width + i) * bpp..];
                    d[0] = lut(px[src[0]]);
                    d[1] = lut(px[src[1]]);
                    d[2] = lut(px[src[2]]);
                }
            }
        }
    }
}

/// Frames with fewer pixels than this are converted on the calling thread alone.
const PARALLEL_PIXELS: usize = 200_000;

/// How many threads to convert a `width`×`height` frame on, at most `threads`.
pub(crate) fn band_count(width: usize, height: usize, threads: usize) -> usize {
    if width * height < PARALLEL_PIXELS {
        1
    } else {
        threads.clamp(1, height.max(1))
    }
}

/// [`frame_to_tensor`] on up to `threads` threads, each converting a band of rows
/// (reflection padding only; resizing runs on the calling thread).
pub fn frame_to_tensor_threads<T: TensorValue>(
    frame: &FrameRef,
    geometry: &Geometry,
    format: &TensorFormat,
    tensor: &mut [T],
    threads: usize,
) {
    let bands = band_count(frame.width, frame.height, threads);
    if bands < 2 || geometry.resample != Resample::Pad {
        return frame_to_tensor(frame, geometry, format, tensor);
    }
    debug_assert_eq!(tensor.len(), 3 * geometry.tensor_pixels());
    let levels = Levels::<T>::new(format.range);
    let offsets = frame.format.rgb_offsets();
    let src: [usize; 3] = std::array::from_fn(|c| offsets[format.rgb_channel(c)]);
    let tw = geometry.tensor_width;
    let per_band = geometry.tensor_height.div_ceil(bands);
    let levels = &levels;
    let bands: Vec<(RowsMut<'_, T>, usize)> =
        match split_rows(format.layout, tensor, geometry.tensor_pixels()) {
            RowsMut::Planes([p0, p1, p2]) => {
                let n = per_band * tw;
                p0.chunks_mut(n)
                    .zip(p1.chunks_mut(n))
                    .zip(p2.chunks_mut(n))
                    .enumerate()
                    .map(|(i, ((a, b), c))| (RowsMut::Planes([a, b, c]), i * per_band))
                    .collect()
            }
            RowsMut::Interleaved(t) => t
                .chunks_mut(per_band * 3 * tw)
                .enumerate()
                .map(|(i, band)| (RowsMut::Interleaved(band), i * per_band))
                .collect(),
        };
    std::thread::scope(|s| {
        let mut bands = bands.into_iter().peekable();
        while let Some((rows, first)) = bands.next() {
            if bands.peek().is_none() {
                pad_rows(frame, geometry, levels, src, rows, first);
            } else {
                s.spawn(move || pad_rows(frame, geometry, levels, src, rows, first));
            }
        }
    });
}

/// How the model's output is combined with the input frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blend {
    /// 1 = only the model's output, 0 = only the input.
    pub strength: f32,
    /// Keep the input's colours and take only the brightness (luma) from the model's output.
    pub preserve_color: bool,
}

impl Default for Blend {
    fn default() -> Self {
        Self {
            strength: 1.0,
            preserve_color: false,
        }
    }
}

/// BT.601 luma of an RGB triple.
fn luma(rgb: [f32; 3]) -> f32 {
    0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
}

/// Rounds a pixel value to the nearest byte (halves up), clamping to 0..=255; NaN gives 0.
#[inline(always)]
#[allow(clippy::manual_clamp)] // `clamp` would keep NaN, which must not reach the conversion
fn to_byte(v: f32) -> u8 {
    // `max` maps NaN to 0; adding 0.5 after clamping rounds halves up without a call to
    // `roundf`, and the truncating conversion of a value in [0.5, 255.5] cannot overflow.
    let v = v.max(0.0).min(255.0) + 0.5;
    // SAFETY: `v` is finite and within i32's range.
    unsafe { v.to_int_unchecked::<i32>() as u8 }
}

/// Writes the model output `tensor` (one image) into `out`, combined with `input` as `blend`
/// says. Alpha / padding bytes come from `input`.
pub fn tensor_to_frame<T: TensorValue>(
    tensor: &[T],
    geometry: &Geometry,
    format: &TensorFormat,
    blend: &Blend,
    input: &FrameRef,
    out: &mut FrameMut,
) {
    tensor_rows(tensor, geometry, format, blend, input, out, 0)
}

/// [`tensor_to_frame`] for frame rows `first..first + out.height`, which `out` and `input`
/// hold.
fn tensor_rows<T: TensorValue>(
    tensor: &[T],
    geometry: &Geometry,
    format: &TensorFormat,
    blend: &Blend,
    input: &FrameRef,
    out: &mut FrameMut,
    first: usize,
) {
    debug_assert_eq!(tensor.len(), 3 * geometry.tensor_pixels());
    let (lo, hi) = format.range.bounds();
    // pixel = value · scale + offset
    let scale = 255.0 / (hi - lo);
    let offset = -lo * scale;
    let strength = blend.strength.clamp(0.0, 1.0);
    let keep = 1.0 - strength;
    let pixels = geometry.tensor_pixels();
    let offsets = out.format.rgb_offsets();
    let bpp = out.format.bytes_per_pixel();
    let alpha = out.format.alpha_offset();
    // For each frame channel (R, G, B): where the model keeps it in the tensor.
    let planes: [(usize, usize); 3] = std::array::from_fn(|rgb| {
        let c = (0..3)
            .find(|&c| format.rgb_channel(c) == rgb)
            .expect("a permutation");
        format.channel_index(c, pixels)
    });
    let sample =
        |i: usize, rgb: usize| tensor[planes[rgb].0 + i * planes[rgb].1].to_f32() * scale + offset;
    let plain = strength == 1.0 && !blend.preserve_color;
    let tw = geometry.tensor_width;
    if plain && geometry.resample == Resample::Pad {
        return plain_rows(tensor, geometry, format, input, out, first);
    }

    let bilinear = geometry.resample == Resample::Bilinear;
    let taps_x = if bilinear {
        geometry::bilinear_taps(geometry.frame_width, tw)
    } else {
        Vec::new()
    };
    let mut resized = geometry::RowPair::new(if bilinear { out.width } else { 0 });
    // Tensor row `r` resized to the frame's width (the top or bottom row of [`geometry::lerp2`]).
    let resize_row = |r: usize, row: &mut [[f32; 3]]| {
        for (px, &(x0, x1, fx)) in row.iter_mut().zip(&taps_x) {
            *px = std::array::from_fn(|rgb| {
                let (a, b) = (sample(r * tw + x0, rgb), sample(r * tw + x1, rgb));
                a + (b - a) * fx
            });
        }
    };
    for y in 0..out.height {
        let in_row = &input.data[y * input.stride..][..out.width * bpp];
        let out_row = &mut out.data[y * out.stride..][..out.width * bpp];
        let frame_y = first + y;
        let rows_y = bilinear.then(|| {
            let (y0, y1, fy) =
                geometry::bilinear_tap(frame_y, geometry.frame_height, geometry.tensor_height);
            let (top, bottom) = resized.get(y0, y1, resize_row);
            (top, bottom, fy)
        });
        for (x, (in_px, out_px)) in in_row
            .chunks_exact(bpp)
            .zip(out_row.chunks_exact_mut(bpp))
            .enumerate()
        {
            let mut styled: [f32; 3] = match rows_y {
                None => std::array::from_fn(|rgb| sample(frame_y * tw + x, rgb)),
                Some((top, bottom, fy)) => {
                    let (t, b) = (top[x], bottom[x]);
                    std::array::from_fn(|rgb| t[rgb] + (b[rgb] - t[rgb]) * fy)
                }
            };
            if !plain {
                let original: [f32; 3] = std::array::from_fn(|rgb| in_px[offsets[rgb]] as f32);
                if blend.preserve_color {
                    let shift = luma(styled) - luma(original);
                    styled = original.map(|v| v + shift);
                }
                styled = std::array::from_fn(|rgb| strength * styled[rgb] + keep * original[rgb]);
            }
            for rgb in 0..3 {
                out_px[offsets[rgb]] = to_byte(styled[rgb]);
            }
            if let Some(a) = alpha {
                out_px[a] = in_px[a];
            }
        }
    }
}

/// Tensor rows `first..first + out.height` to the frame rows `out` holds, with no blending
/// (the common case: strength 1, reflection padding). `input` holds the same rows of the
/// input frame, for the alpha / padding bytes.
fn plain_rows<T: TensorValue>(
    tensor: &[T],
    geometry: &Geometry,
    format: &TensorFormat,
    input: &FrameRef,
    out: &mut FrameMut,
    first: usize,
) {
    let (lo, hi) = format.range.bounds();
    let scale = 255.0 / (hi - lo);
    let offset = -lo * scale;
    let offsets = out.format.rgb_offsets();
    let bpp = out.format.bytes_per_pixel();
    let alpha = out.format.alpha_offset();
    let planes: [usize; 3] = std::array::from_fn(|rgb| {
        let c = (0..3)
            .find(|&c| format.rgb_channel(c) == rgb)
            .expect("a permutation");
        format.channel_index(c, geometry.tensor_pixels()).0
    });
    let (w, tw) = (out.width, geometry.tensor_width);
    match format.layout {
        Layout::Nhwc => {
            // Pixel by pixel: the tensor row holds the three channels side by side.
            for y in 0..out.height {
                let t_row = &tensor[3 * (first + y) * tw..][..3 * w];
                let in_row = &input.data[y * input.stride..][..w * bpp];
                let out_row = &mut out.data[y * out.stride..][..w * bpp];
                for ((t, out_px), in_px) in t_row
                    .chunks_exact(3)
                    .zip(out_row.chunks_exact_mut(bpp))
                    .zip(in_row.chunks_exact(bpp))
                {
                    out_px[offsets[0]] = to_byte(t[planes[0]].to_f32() * scale + offset);
                    out_px[offsets[1]] = to_byte(t[planes[1]].to_f32() * scale + offset);
                    out_px[offsets[2]] = to_byte(t[planes[2]].to_f32() * scale + offset);
                    if let Some(a) = alpha {
                        out_px[a] = in_px[a];
                    }
                }
            }
        }
        Layout::Nchw if bpp == 4 => {
            // Whole output pixels as words, the fourth byte taken from the input: one pass
            // the compiler vectorises.
            let shifts = offsets.map(|o| 8 * o as u32);
            for y in 0..out.height {
                let plane = |rgb: usize| &tensor[planes[rgb] + (first + y) * tw..][..w];
                let (r, g, b) = (plane(0), plane(1), plane(2));
                let in_row = &input.data[y * input.stride..][..w * 4];
                let out_row = &mut out.data[y * out.stride..][..w * 4];
                let byte =
                    |v: T, shift: u32| (to_byte(v.to_f32() * scale + offset) as u32) << shift;
                for x in 0..w {
                    let i = &in_row[4 * x..4 * x + 4];
                    let kept = u32::from_le_bytes([i[0], i[1], i[2], i[3]]) & 0xff00_0000;
                    let word = byte(r[x], shifts[0])
                        | byte(g[x], shifts[1])
                        | byte(b[x], shifts[2])
                        | kept;
                    out_row[4 * x..4 * x + 4].copy_from_slice(&word.to_le_bytes());
                }
            }
        }
        Layout::Nchw => {
            // Convert each plane row to bytes (a loop the compiler vectorises), then
            // interleave.
            let mut bytes = vec![0u8; 3 * w];
            for y in 0..out.height {
                for (rgb, dst) in bytes.chunks_exact_mut(w).enumerate() {
                    let src = &tensor[planes[rgb] + (first + y) * tw..][..w];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = to_byte(v.to_f32() * scale + offset);
                    }
                }
                let (r, rest) = bytes.split_at(w);
                let (g, b) = rest.split_at(w);
                let in_row = &input.data[y * input.stride..][..w * bpp];
                let out_row = &mut out.data[y * out.stride..][..w * bpp];
                for (x, out_px) in out_row.chunks_exact_mut(bpp).enumerate() {
                    out_px[offsets[0]] = r[x];
                    out_px[offsets[1]] = g[x];
                    out_px[offsets[2]] = b[x];
                    if let Some(a) = alpha {
                        out_px[a] = in_row[x * bpp + a];
                    }
                }
            }
        }
    }
}

/// [`tensor_to_frame`] on up to `threads` threads, each writing a band of rows (large frames
/// only).
pub fn tensor_to_frame_threads<T: TensorValue>(
    tensor: &[T],
    geometry: &Geometry,
    format: &TensorFormat,
    blend: &Blend,
    input: &FrameRef,
    out: &mut FrameMut,
    threads: usize,
) {
    let bands = band_count(out.width, out.height, threads);
    if bands < 2 {
        return tensor_to_frame(tensor, geometry, format, blend, input, out);
    }
    for_row_bands(input, out, bands, |input, out, first| {
        tensor_rows(tensor, geometry, format, blend, input, out, first)
    });
}

/// Runs `work(input_rows, out_rows, first_row)` on `bands` bands of rows of `out` and the same
/// rows of `input`, each on its own thread (the last on the calling thread).
pub(crate) fn for_row_bands<F>(input: &FrameRef, out: &mut FrameMut, bands: usize, work: F)
where
    F: Fn(&FrameRef, &mut FrameMut, usize) + Sync,
{
    let per_band = out.height.div_ceil(bands.max(1));
    let (width, height, stride, format) = (out.width, out.height, out.stride, out.format);
    let used = (height - 1) * stride + width * format.bytes_per_pixel();
    let work = &work;
    std::thread::scope(|s| {
        let mut rest = &mut out.data[..used];
        for first in (0..height).step_by(per_band) {
            let n = per_band.min(height - first);
            let last = first + n == height;
            let take = if last { rest.len() } else { n * stride };
            let (mine, later) = std::mem::take(&mut rest).split_at_mut(take);
            rest = later;
            let band_in = FrameRef {
                data: &input.data[first * input.stride..],
                height: n,
                ..*input
            };
            let mut run = move || {
                let mut band_out = FrameMut {
                    data: mine,
                    width,
                    height: n,
                    stride,
                    format,
                };
                work(&band_in, &mut band_out, first);
            };
            if last {
                run();
            } else {
                s.spawn(run);
            }
        }
    });
}

#[cfg(test)]
mod tests;
