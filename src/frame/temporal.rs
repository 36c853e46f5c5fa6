//! Temporal stabilisation of styled video (the element's `temporal-smoothing`).
//!
//! A style net amplifies each frame's small input changes — sensor and codec noise, a person
//! moving a metre away — into different brush strokes, so a static wall shimmers. The
//! [`Stabilizer`] keeps one stream's previous input and previous (stabilised) output, and for
//! every pixel blends the new styled output with the previous one by a weight that depends on
//! how much the *input* changed there:
//!
//! ```text
//! motion  m = mean |in_t − in_{t−1}| over the 3 colour channels of the 3×3 neighbourhood
//! keep    k = smoothing                               if m ≤ static_below
//!             smoothing · (moving_above − m) / (moving_above − static_below)   in between
//!             0                                       if m ≥ moving_above
//! out_t   = k · out_{t−1} + (1 − k) · styled_t
//! ```
//!
//! Where the input is static the output is an exponential moving average of the styled frames
//! (the flicker of independent noise shrinks by `(1 − k) / √(1 + k)`); where it moves the new
//! styled frame is taken as it is, and the linear ramp between the two thresholds (a soft
//! threshold) plus the 3×3 neighbourhood keep the edges of moving objects from smearing. The
//! neighbourhood mean also keeps per-pixel noise (a few levels) from counting as motion. No
//! motion compensation: moving regions are simply not smoothed (Lai et al. 2018 and ReCoNet warp
//! the previous output by optical flow instead; on a 2-core CPU a flow estimate costs more than
//! the style net).
//!
//! Pure functions over packed 8-bit frames; nothing here knows GStreamer. Cost: one pass over
//! the frame, rows kept in cache (see `examples/temporal_bench.rs`).

use super::{FrameMut, FrameRef, PixelFormat};

/// Neighbourhood motion (mean absolute channel difference, 0..255) at or below which a pixel
/// counts as static and keeps `smoothing` of its previous output.
pub const STATIC_BELOW: f32 = 2.0;
/// Neighbourhood motion at or above which a pixel counts as moving and takes the new output.
pub const MOVING_ABOVE: f32 = 6.0;

/// Samples in a motion sum: 3 channels × 3×3 pixels.
const SAMPLES: usize = 27;

/// The motion thresholds of a [`Stabilizer`], as mean absolute channel differences (0..255).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// At or below: static (keep `smoothing` of the previous output).
    pub static_below: f32,
    /// At or above: moving (take the new output); `> static_below`.
    pub moving_above: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            static_below: STATIC_BELOW,
            moving_above: MOVING_ABOVE,
        }
    }
}

impl Thresholds {
    /// The ramp from the thresholds and `smoothing` (clamped to 0..1). The ramp spans at
    /// most 254 sums (9.4 levels), so that its arithmetic fits 16 bits.
    fn ramp(&self, smoothing: f32) -> Ramp {
        let lo = (self.static_below * SAMPLES as f32)
            .round()
            .clamp(0.0, 6000.0) as u16;
        let hi = ((self.moving_above * SAMPLES as f32)
            .round()
            .clamp(0.0, 6254.0) as u16)
            .clamp(lo + 1, lo + 254);
        let top = (smoothing.clamp(0.0, 1.0) * 255.0).round() as u16;
        let span = hi - lo;
        Ramp {
            hi,
            span,
            top,
            slope: (top as f32 * 256.0 / span as f32).round() as u16,
        }
    }
}

/// The previous output's weight `k` (in 256ths, 0..=255) as a function of a motion sum `v`
/// (of [`SAMPLES`] absolute differences): `top` up to the static threshold, 0 from the moving
/// one, linear in between. In 16-bit arithmetic (`span · slope + 128 ≤ top · 256 + 255`).
#[derive(Debug, Clone, Copy)]
struct Ramp {
    /// The moving threshold, as a sum.
    hi: u16,
    /// `hi` less the static threshold (1..=254).
    span: u16,
    /// `smoothing · 255`.
    top: u16,
    /// `top / span` in 1/256.
    slope: u16,
}

impl Ramp {
    #[inline(always)]
    fn keep(&self, v: u16) -> u16 {
        ((self.hi.saturating_sub(v).min(self.span) * self.slope + 128) >> 8).min(self.top)
    }
}

/// One stream's history: its previous input and stabilised output frames, and scratch rows.
/// A new frame size or format, or [`Stabilizer::reset`], starts the history afresh (the next
/// frame passes unchanged).
#[derive(Debug, Default)]
pub struct Stabilizer {
    thresholds: Thresholds,
    /// Width, height and format of the frames in the history; `None`: no history.
    shape: Option<(usize, usize, PixelFormat)>,
    /// Previous input and output, packed rows of `width × bytes per pixel`.
    prev_input: Vec<u8>,
    prev_output: Vec<u8>,
    /// Scratch: one row of byte differences, per-pixel channel sums, three rows of horizontal
    /// 3-sums (a ring indexed by row mod 3), per-pixel weights, and per-byte weights (16-bit
    /// for 3-byte pixels, 8-bit for 4-byte ones: what the compiler vectorises best).
    bytes: Vec<u8>,
    pixel_sums: Vec<u16>,
    ring: [Vec<u16>; 3],
    keep: Vec<u16>,
    weights: Vec<u16>,
    weight_bytes: Vec<u8>,
}

impl Stabilizer {
    /// A stabiliser with the given motion thresholds.
    pub fn with_thresholds(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            ..Self::default()
        }
    }

    /// Forgets the history (flush, seek, new stream, new settings): the next frame passes
    /// unchanged.
    pub fn reset(&mut self) {
        self.shape = None;
    }

    /// Whether a previous frame is held.
    pub fn has_history(&self) -> bool {
        self.shape.is_some()
    }

    /// Stabilises `output` (the styled frame of `input`) in place against the history, with
    /// `smoothing` (0..1) the previous output's weight on static pixels, then makes `input` and
    /// the result the history. The fourth byte of 4-byte formats is left as it is. `input` and
    /// `output` must have the same size and format; a frame of another size or format than the
    /// history's (or the first) passes unchanged and starts a new history.
    pub fn apply(&mut self, input: &FrameRef, output: &mut FrameMut, smoothing: f32) {
        debug_assert_eq!(
            (input.width, input.height, input.format),
            (output.width, output.height, output.format)
        );
        let shape = (input.width, input.height, input.format);
        let (width, height, format) = shape;
        let bpp = format.bytes_per_pixel();
        let row_bytes = width * bpp;
        if self.shape != Some(shape) {
            self.prev_input.resize(row_bytes * height, 0);
            self.prev_output.resize(row_bytes * height, 0);
            for y in 0..height {
                let rows = y * row_bytes..(y + 1) * row_bytes;
                self.prev_input[rows.clone()]
                    .copy_from_slice(&input.data[y * input.stride..][..row_bytes]);
                self.prev_output[rows]
                    .copy_from_slice(&output.data[y * output.stride..][..row_bytes]);
            }
            self.shape = Some(shape);
            return;
        }
        if width == 0 || height == 0 {
            return;
        }
        let ramp = self.thresholds.ramp(smoothing);
        self.bytes.resize(row_bytes, 0);
        self.pixel_sums.resize(width, 0);
        self.keep.resize(width, 0);
        if bpp == 4 {
            self.weight_bytes.resize(row_bytes, 0);
        } else {
            self.weights.resize(row_bytes, 0);
        }
        for r in &mut self.ring {
            r.resize(width, 0);
        }
        let colour = colour_mask(format);
        // Motion of row r into ring slot r % 3 (the input row then replaces the history's).
        let motion = |s: &mut Self, r: usize| {
            let prev = &mut s.prev_input[r * row_bytes..][..row_bytes];
            let cur = &input.data[r * input.stride..][..row_bytes];
            abs_diff_row(cur, prev, &mut s.bytes);
            prev.copy_from_slice(cur);
            channel_sums(&s.bytes, bpp, &colour, &mut s.pixel_sums);
            horizontal_sum3(&s.pixel_sums, &mut s.ring[r % 3]);
        };
        motion(self, 0);
        for y in 0..height {
            let below = (y + 1).min(height - 1);
            if below != y {
                motion(self, below);
            }
            let above = y.saturating_sub(1);
            let [a, b, c] = [above % 3, y % 3, below % 3];
            keep_row(
                [&self.ring[a], &self.ring[b], &self.ring[c]],
                ramp,
                &mut self.keep,
            );
            let out = &mut output.data[y * output.stride..][..row_bytes];
            let prev = &mut self.prev_output[y * row_bytes..][..row_bytes];
            if bpp == 4 {
                let mask = word_mask(&colour);
                for (w, &k) in self.weight_bytes.chunks_exact_mut(4).zip(&self.keep) {
                    w.copy_from_slice(&((k as u32 * 0x0101_0101) & mask).to_le_bytes());
                }
                blend_row(out, prev, &self.weight_bytes);
            } else {
                for (w, &k) in self.weights.chunks_exact_mut(3).zip(&self.keep) {
                    w[0] = k;
                    w[1] = k;
                    w[2] = k;
                }
                blend_row(out, prev, &self.weights);
            }
        }
    }
}

/// Which bytes of a pixel of `format` are colour (true) rather than alpha or padding.
fn colour_mask(format: PixelFormat) -> [bool; 4] {
    let mut mask = [false; 4];
    for o in format.rgb_offsets() {
        mask[o] = true;
    }
    mask
}

/// `out[i] = |a[i] − b[i]|`.
pub fn abs_diff_row(a: &[u8], b: &[u8], out: &mut [u8]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x.abs_diff(y);
    }
}

/// Per pixel of `bpp` bytes, the sum of its colour bytes (`colour[i]`: byte i is colour).
pub fn channel_sums(bytes: &[u8], bpp: usize, colour: &[bool; 4], sums: &mut [u16]) {
    match bpp {
        3 => {
            for (s, p) in sums.iter_mut().zip(bytes.chunks_exact(3)) {
                *s = p[0] as u16 + p[1] as u16 + p[2] as u16;
            }
        }
        _ => {
            let mask = word_mask(colour);
            for (s, p) in sums.iter_mut().zip(bytes.chunks_exact(4)) {
                let w = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) & mask;
                // Two 16-bit lanes of two bytes each, then the lanes.
                let pairs = (w & 0x00ff_00ff) + ((w >> 8) & 0x00ff_00ff);
                *s = ((pairs & 0xffff) + (pairs >> 16)) as u16;
            }
        }
    }
}

/// The little-endian word mask of the bytes `colour` marks.
fn word_mask(colour: &[bool; 4]) -> u32 {
    let m = colour.map(|c| if c { 0xffu32 } else { 0 });
    m[0] | (m[1] << 8) | (m[2] << 16) | (m[3] << 24)
}

/// `out[x] = v[x−1] + v[x] + v[x+1]`, the edges repeated.
pub fn horizontal_sum3(v: &[u16], out: &mut [u16]) {
    let n = v.len();
    match n {
        0 => {}
        1 => out[0] = 3 * v[0],
        _ => {
            out[0] = 2 * v[0] + v[1];
            for (((o, &a), &b), &c) in out[1..n - 1]
                .iter_mut()
                .zip(&v[..n - 2])
                .zip(&v[1..n - 1])
                .zip(&v[2..])
            {
                *o = a + b + c;
            }
            out[n - 1] = v[n - 2] + 2 * v[n - 1];
        }
    }
}

/// The previous output's weight for every pixel of a row, from the three rows of horizontal
/// motion sums around it.
fn keep_row(rows: [&[u16]; 3], ramp: Ramp, keep: &mut [u16]) {
    for (((k, &a), &b), &c) in keep.iter_mut().zip(rows[0]).zip(rows[1]).zip(rows[2]) {
        *k = ramp.keep(a + b + c);
    }
}

/// `out = (w · prev + (256 − w) · out + 128) / 256` per byte (`w` ≤ 255), and `prev = out`.
pub fn blend_row<W: Copy + Into<u16>>(out: &mut [u8], prev: &mut [u8], weights: &[W]) {
    for ((o, p), &w) in out.iter_mut().zip(prev.iter_mut()).zip(weights) {
        let w: u16 = w.into();
        let v = (w * *p as u16 + (256 - w) * *o as u16 + 128) >> 8;
        *o = v as u8;
        *p = v as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`×`h` frame of `format` with row padding; colour bytes from `f(x, y, c)`, the fourth
    /// byte `alpha`.
    fn frame(
        w: usize,
        h: usize,
        format: PixelFormat,
        alpha: u8,
        f: impl Fn(usize, usize, usize) -> u8,
    ) -> (Vec<u8>, usize) {
        let bpp = format.bytes_per_pixel();
        let stride = w * bpp + 5;
        let mut data = vec![0xAB; stride * h];
        for y in 0..h {
            for x in 0..w {
                let p = y * stride + x * bpp;
                for (c, o) in format.rgb_offsets().into_iter().enumerate() {
                    data[p + o] = f(x, y, c);
                }
                if let Some(a) = format.alpha_offset() {
                    data[p + a] = alpha;
                }
            }
        }
        (data, stride)
    }

    struct Run {
        stab: Stabilizer,
        w: usize,
        h: usize,
        format: PixelFormat,
    }

    impl Run {
        fn new(w: usize, h: usize, format: PixelFormat) -> Self {
            Self {
                stab: Stabilizer::default(),
                w,
                h,
                format,
            }
        }

        /// Runs one frame: `input` and `styled` colour functions; returns the output bytes.
        fn step(
            &mut self,
            smoothing: f32,
            input: impl Fn(usize, usize, usize) -> u8,
            styled: impl Fn(usize, usize, usize) -> u8,
        ) -> (Vec<u8>, usize) {
            let (i, stride) = frame(self.w, self.h, self.format, 7, input);
            let (mut o, _) = frame(self.w, self.h, self.format, 9, styled);
            let input = FrameRef {
                data: &i,
                width: self.w,
                height: self.h,
                stride,
                format: self.format,
            };
            let mut output = FrameMut {
                data: &mut o,
                width: self.w,
                height: self.h,
                stride,
                format: self.format,
            };
            self.stab.apply(&input, &mut output, smoothing);
            (o, stride)
        }

        fn colour(&self, data: &[u8], stride: usize, x: usize, y: usize, c: usize) -> u8 {
            let bpp = self.format.bytes_per_pixel();
            data[y * stride + x * bpp + self.format.rgb_offsets()[c]]
        }
    }

    #[test]
    fn the_first_frame_passes_unchanged() {
        let mut run = Run::new(5, 4, PixelFormat::Rgb);
        let (out, stride) = run.step(0.8, |_, _, _| 100, |x, y, c| (x * 10 + y + c) as u8);
        let (expected, _) = frame(5, 4, PixelFormat::Rgb, 9, |x, y, c| (x * 10 + y + c) as u8);
        assert_eq!(out, expected);
        assert_eq!(stride, 20);
        assert!(run.stab.has_history());
    }

    #[test]
    fn static_pixels_keep_the_smoothing_share_of_the_previous_output() {
        for format in PixelFormat::ALL {
            let mut run = Run::new(6, 5, format);
            run.step(0.75, |_, _, _| 100, |_, _, c| 40 + c as u8);
            // Input unchanged: keep k = round(0.75 · 255) = 191 of 256.
            let (out, stride) = run.step(0.75, |_, _, _| 100, |_, _, c| 200 + c as u8);
            for y in 0..5 {
                for x in 0..6 {
                    for c in 0..3 {
                        let prev = 40 + c as u32;
                        let new = 200 + c as u32;
                        let expected = (191 * prev + 65 * new + 128) >> 8;
                        assert_eq!(
                            run.colour(&out, stride, x, y, c) as u32,
                            expected,
                            "{format} ({x},{y}) channel {c}"
                        );
                    }
                    if let Some(a) = format.alpha_offset() {
                        let bpp = format.bytes_per_pixel();
                        assert_eq!(out[y * stride + x * bpp + a], 9, "fourth byte kept");
                    }
                }
                // Row padding untouched.
                let bpp = format.bytes_per_pixel();
                assert!(
                    out[y * stride + 6 * bpp..(y + 1) * stride]
                        .iter()
                        .all(|&b| b == 0xAB)
                );
            }
        }
    }

    #[test]
    fn the_average_converges_to_a_steady_output() {
        let mut run = Run::new(4, 4, PixelFormat::Rgbx);
        run.step(0.8, |_, _, _| 50, |_, _, _| 0);
        let mut last = 0;
        for _ in 0..40 {
            let (out, stride) = run.step(0.8, |_, _, _| 50, |_, _, _| 200);
            last = run.colour(&out, stride, 1, 1, 0);
        }
        // Integer rounding stops the average within 256 / (256 · 0.2) ≈ 2 levels of the target.
        assert!((198..=200).contains(&last), "{last}");
    }

    #[test]
    fn moving_pixels_take_the_new_output_and_only_their_neighbours_are_affected() {
        let (w, h) = (20, 9);
        let mut run = Run::new(w, h, PixelFormat::Bgrx);
        run.step(1.0, |_, _, _| 60, |_, _, _| 10);
        // A vertical edge moves into column 10: the input changes there by 200.
        let (out, stride) = run.step(1.0, |x, _, _| if x == 10 { 255 } else { 60 }, |_, _, _| 250);
        for y in 0..h {
            for x in 0..w {
                let v = run.colour(&out, stride, x, y, 1);
                match x {
                    // Motion sum 3 · 3 · 195 / 27 ≈ 65 (the column and its neighbours): new output.
                    9..=11 => assert_eq!(v, 250, "({x},{y})"),
                    // Further away: static, the previous output held (smoothing 1 → k 255/256).
                    _ => assert_eq!(v, 11, "({x},{y})"),
                }
            }
        }
    }

    #[test]
    fn the_threshold_is_soft() {
        // Uniform input change of d per channel gives neighbourhood motion d.
        let keep_at = |d: u8| {
            let mut run = Run::new(3, 3, PixelFormat::Rgb);
            run.step(1.0, |_, _, _| 100, |_, _, _| 0);
            let (out, stride) = run.step(1.0, |_, _, _| 100 + d, |_, _, _| 255);
            255 - run.colour(&out, stride, 1, 1, 0)
        };
        let kept: Vec<u8> = (0..=7).map(keep_at).collect();
        // Full hold up to STATIC_BELOW (2), linear to none at MOVING_ABOVE (6).
        assert_eq!(kept[0], kept[2]);
        assert!(kept[2] > kept[3] && kept[3] > kept[4] && kept[4] > kept[5]);
        assert_eq!((kept[6], kept[7]), (0, 0));
        // Halfway (d = 4): half the weight (255 · 0.5 = 128 of 256: 127 levels of 255 kept).
        assert_eq!(kept[4], 127);
    }

    #[test]
    fn static_noise_flicker_is_cut_by_the_average() {
        // ±2 noise on a static picture, styled by an amplifying "model" (×6 around 128).
        let (w, h) = (32, 24);
        let mut seed = 12345u64;
        let mut noise = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 5) as i32 - 2
        };
        let mut run = Run::new(w, h, PixelFormat::Rgb);
        let mut plain_change = 0u64;
        let mut stable_change = 0u64;
        let mut prev: Option<(Vec<u8>, Vec<u8>)> = None;
        for _ in 0..30 {
            let picture: Vec<u8> = (0..w * h * 3)
                .map(|i| (100 + (i % 37) as i32 + noise()) as u8)
                .collect();
            let styled: Vec<u8> = picture
                .iter()
                .map(|&v| (128 + 6 * (v as i32 - 120)).clamp(0, 255) as u8)
                .collect();
            let at = |d: &Vec<u8>| {
                let d = d.clone();
                move |x: usize, y: usize, c: usize| d[(y * w + x) * 3 + c]
            };
            let (out, stride) = run.step(0.8, at(&picture), at(&styled));
            let out: Vec<u8> = (0..h)
                .flat_map(|y| out[y * stride..][..w * 3].to_vec())
                .collect();
            if let Some((p_styled, p_out)) = &prev {
                plain_change += styled
                    .iter()
                    .zip(p_styled)
                    .map(|(a, b)| a.abs_diff(*b) as u64)
                    .sum::<u64>();
                stable_change += out
                    .iter()
                    .zip(p_out)
                    .map(|(a, b)| a.abs_diff(*b) as u64)
                    .sum::<u64>();
            }
            prev = Some((styled, out));
        }
        let ratio = stable_change as f64 / plain_change as f64;
        // Theory for independent noise at k = 0.8: (1 − k) / √(1 + k) = 0.15.
        assert!(ratio < 0.25, "flicker ratio {ratio}");
        assert!(
            ratio > 0.05,
            "flicker ratio {ratio}: frozen rather than averaged"
        );
    }

    #[test]
    fn zero_smoothing_passes_the_output_unchanged() {
        let mut run = Run::new(4, 3, PixelFormat::Rgba);
        run.step(0.0, |_, _, _| 10, |_, _, _| 10);
        let (out, _) = run.step(0.0, |_, _, _| 10, |x, _, _| x as u8 * 50);
        let (expected, _) = frame(4, 3, PixelFormat::Rgba, 9, |x, _, _| x as u8 * 50);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_new_size_or_format_or_a_reset_starts_a_new_history() {
        let mut run = Run::new(4, 3, PixelFormat::Rgb);
        run.step(1.0, |_, _, _| 10, |_, _, _| 0);
        run.stab.reset();
        assert!(!run.stab.has_history());
        let (out, _) = run.step(1.0, |_, _, _| 10, |_, _, _| 200);
        assert!(out.chunks(3).take(4).all(|p| p == [200, 200, 200]));
        let mut other = Run::new(5, 3, PixelFormat::Rgb);
        other.stab = std::mem::take(&mut run.stab);
        let (out, _) = other.step(1.0, |_, _, _| 10, |_, _, _| 100);
        assert!(out.chunks(3).take(5).all(|p| p == [100, 100, 100]));
        let mut bgr = Run::new(5, 3, PixelFormat::Bgr);
        bgr.stab = std::mem::take(&mut other.stab);
        let (out, _) = bgr.step(1.0, |_, _, _| 10, |_, _, _| 30);
        assert!(out.chunks(3).take(5).all(|p| p == [30, 30, 30]));
    }

    #[test]
    fn matches_a_direct_per_pixel_implementation() {
        let (w, h) = (23, 11);
        let mut seed = 5u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for format in PixelFormat::ALL {
            let bpp = format.bytes_per_pixel();
            let mut run = Run::new(w, h, format);
            let mut prev_in: Option<Vec<u8>> = None;
            let mut prev_out: Option<Vec<u8>> = None;
            for t in 0..4 {
                // Random input changes of 0..8 (around the thresholds) and some large ones.
                let input: Vec<u8> = (0..w * h * 3)
                    .map(|i| {
                        let r = rand();
                        let big = if r % 7 == 0 && t > 0 { 100 } else { 0 };
                        (50 + (i % 11) as u64 + (r >> 8) % 9 + big) as u8
                    })
                    .collect();
                let styled: Vec<u8> = (0..w * h * 3).map(|_| (rand() >> 16) as u8).collect();
                let at = |d: &Vec<u8>| {
                    let d = d.clone();
                    move |x: usize, y: usize, c: usize| d[(y * w + x) * 3 + c]
                };
                let (out, stride) = run.step(0.7, at(&input), at(&styled));
                let expected: Vec<u8> = match (&prev_in, &prev_out) {
                    (Some(pi), Some(po)) => {
                        let ramp = Thresholds::default().ramp(0.7);
                        (0..w * h * 3)
                            .map(|i| {
                                let (x, y) = ((i / 3) % w, i / 3 / w);
                                let mut v = 0;
                                for dy in -1i32..=1 {
                                    for dx in -1i32..=1 {
                                        let xx = (x as i32 + dx).clamp(0, w as i32 - 1) as usize;
                                        let yy = (y as i32 + dy).clamp(0, h as i32 - 1) as usize;
                                        for c in 0..3 {
                                            let j = (yy * w + xx) * 3 + c;
                                            v += input[j].abs_diff(pi[j]) as i32;
                                        }
                                    }
                                }
                                let k = ramp.keep(v as u16) as u32;
                                ((k * po[i] as u32 + (256 - k) * styled[i] as u32 + 128) >> 8) as u8
                            })
                            .collect()
                    }
                    _ => styled.clone(),
                };
                for y in 0..h {
                    for x in 0..w {
                        for c in 0..3 {
                            assert_eq!(
                                run.colour(&out, stride, x, y, c),
                                expected[(y * w + x) * 3 + c],
                                "{format} frame {t} ({x},{y}) channel {c}"
                            );
                        }
                        if let Some(a) = format.alpha_offset() {
                            assert_eq!(out[y * stride + x * bpp + a], 9);
                        }
                    }
                }
                prev_in = Some(input);
                prev_out = Some(expected);
            }
        }
    }

    #[test]
    fn one_pixel_and_one_row_frames_work() {
        for (w, h) in [(1, 1), (1, 4), (5, 1)] {
            let mut run = Run::new(w, h, PixelFormat::Rgbx);
            run.step(1.0, |_, _, _| 10, |_, _, _| 0);
            let (out, stride) = run.step(1.0, |_, _, _| 10, |_, _, _| 255);
            // Static: held at 0 (k = 255/256).
            assert_eq!(run.colour(&out, stride, w - 1, h - 1, 2), 1);
        }
    }
}
