//! How frame pixels map onto the model's input tensor: reflection padding to a size multiple, or
//! bilinear resizing to a fixed size.

use crate::model::{MinSize, SizeRule};

/// How the tensor is sampled from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// The frame sits at the top-left of the tensor; the rest is a mirror image of its edges
    /// (reflection without repeating the edge pixel). Output is cropped back.
    Pad,
    /// The frame is resized to the tensor's size and the output resized back.
    Bilinear,
}

/// Frame size and tensor size for one model and one frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub frame_width: usize,
    pub frame_height: usize,
    pub tensor_width: usize,
    pub tensor_height: usize,
    pub resample: Resample,
}

impl Geometry {
    /// The tensor geometry a model with `rule` needs for frames of `width`×`height`.
    pub fn new(width: usize, height: usize, rule: SizeRule) -> Self {
        Self::fitted(width, height, rule, MinSize::ANY, 1.0)
    }

    /// Like [`Geometry::new`], but runs the model on the frame scaled by `scale` (0 < scale < 1)
    /// when the model takes any size: the frame is resized down and the output back up.
    pub fn scaled(width: usize, height: usize, rule: SizeRule, scale: f32) -> Self {
        Self::fitted(width, height, rule, MinSize::ANY, scale)
    }

    /// The tensor geometry for frames of `width`×`height` and a model with `rule` that runs
    /// nothing smaller than `min`, at `scale` (see [`Geometry::scaled`]). Frames smaller than
    /// `min` are reflection-padded up to it, and `scale` shrinks no side below it; the output
    /// is always cropped or resized back to the frame's size.
    pub fn fitted(width: usize, height: usize, rule: SizeRule, min: MinSize, scale: f32) -> Self {
        let m = match rule {
            SizeRule::Multiple(m) => m.max(1),
            SizeRule::Fixed {
                width: tw,
                height: th,
            } => {
                return Self {
                    frame_width: width,
                    frame_height: height,
                    tensor_width: tw,
                    tensor_height: th,
                    resample: if (tw, th) == (width, height) {
                        Resample::Pad
                    } else {
                        Resample::Bilinear
                    },
                };
            }
        };
        // Each side: at least the model's minimum, then up to its multiple.
        let fit = |n: usize, least: usize| n.max(least).max(1).div_ceil(m) * m;
        let padded = (fit(width, min.width), fit(height, min.height));
        let scale = if scale > 0.0 && scale < 1.0 {
            scale
        } else {
            1.0
        };
        let shrink = |n: usize, least: usize| fit((n as f32 * scale).round() as usize, least);
        let scaled = (shrink(width, min.width), shrink(height, min.height));
        Self {
            frame_width: width,
            frame_height: height,
            tensor_width: scaled.0,
            tensor_height: scaled.1,
            resample: if scaled == padded {
                Resample::Pad
            } else {
                Resample::Bilinear
            },
        }
    }

    pub fn tensor_pixels(&self) -> usize {
        self.tensor_width * self.tensor_height
    }

    /// Frame row sampled by tensor row `y` when padding.
    pub(crate) fn source_row(&self, y: usize) -> usize {
        reflect(y, self.frame_height)
    }

    /// Frame column sampled by tensor column `x` when padding.
    pub(crate) fn source_col(&self, x: usize) -> usize {
        reflect(x, self.frame_width)
    }
}

/// Index `i` mirrored into `0..n` without repeating the edge (`…, 2, 1, 0, 1, 2, …`).
pub(crate) fn reflect(i: usize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let r = i % period;
    if r < n { r } else { period - r }
}

/// Bilinear source taps for destination index `i` when resizing `dst_len` → from `src_len`
/// (pixel centres aligned, edges clamped): (lower index, upper index, weight of the upper).
pub(crate) fn bilinear_tap(i: usize, dst_len: usize, src_len: usize) -> (usize, usize, f32) {
    let pos = ((i as f32 + 0.5) * src_len as f32 / dst_len as f32 - 0.5).max(0.0);
    let i0 = (pos.floor() as usize).min(src_len - 1);
    let i1 = (i0 + 1).min(src_len - 1);
    (i0, i1, pos - i0 as f32)
}

/// Bilinear interpolation of four samples.
pub(crate) fn lerp2(a: f32, b: f32, c: f32, d: f32, fx: f32, fy: f32) -> f32 {
    let top = a + (b - a) * fx;
    let bottom = c + (d - c) * fx;
    top + (bottom - top) * fy
}

/// [`bilinear_tap`] for every index `0..dst_len`, computed once per frame rather than per pixel.
pub(crate) fn bilinear_taps(dst_len: usize, src_len: usize) -> Vec<(usize, usize, f32)> {
    (0..dst_len)
        .map(|i| bilinear_tap(i, dst_len, src_len))
        .collect()
}

/// Two source rows resized horizontally (three channels a pixel), for bilinear upscaling row by
/// row: consecutive output rows mostly read the same pair of source rows, so each is resized
/// once. Resizing rows first and then blending two of them computes what [`lerp2`] computes.
pub(crate) struct RowPair {
    rows: [(Option<usize>, Vec<[f32; 3]>); 2],
}

impl RowPair {
    pub(crate) fn new(width: usize) -> Self {
        Self {
            rows: std::array::from_fn(|_| (None, vec![[0.0; 3]; width])),
        }
    }

    /// Source rows `r0` and `r1` resized, filling a row that is not held with `fill(r, row)`.
    pub(crate) fn get(
        &mut self,
        r0: usize,
        r1: usize,
        mut fill: impl FnMut(usize, &mut [[f32; 3]]),
    ) -> (&[[f32; 3]], &[[f32; 3]]) {
        let s0 = self.slot(r0, None, &mut fill);
        let s1 = self.slot(r1, Some(s0), &mut fill);
        (&self.rows[s0].1, &self.rows[s1].1)
    }

    /// The slot holding row `r`, filled if needed in a slot other than `keep` (an empty one,
    /// else the one with the lower row: rows are asked for in increasing order).
    fn slot(
        &mut self,
        r: usize,
        keep: Option<usize>,
        fill: &mut impl FnMut(usize, &mut [[f32; 3]]),
    ) -> usize {
        if let Some(s) = (0..2).find(|&s| self.rows[s].0 == Some(r)) {
            return s;
        }
        let s = match keep {
            Some(k) => 1 - k,
            None => match (self.rows[0].0, self.rows[1].0) {
                (None, _) => 0,
                (_, None) => 1,
                (Some(a), Some(b)) => usize::from(b < a),
            },
        };
        fill(r, &mut self.rows[s].1);
        self.rows[s].0 = Some(r);
        s
    }
}
