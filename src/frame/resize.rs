//! Bilinear resizing of whole image tensors: a model output of another size than its input
//! (an upscaler, a net without matching padding) brought to the size the frame conversion
//! expects.

use super::TensorValue;
use super::geometry::{bilinear_taps, lerp2};
use crate::model::Layout;

/// Resizes `images` 3-channel images in `layout` from `from` to `to` ((height, width) each),
/// bilinearly with pixel centres aligned and edges clamped (as frames are resized), from `src`
/// (`images × 3 × from` elements) into `dst` (`images × 3 × to`).
pub fn resize_images<T: TensorValue>(
    src: &[T],
    from: (usize, usize),
    dst: &mut [T],
    to: (usize, usize),
    layout: Layout,
    images: usize,
) {
    let ((fh, fw), (th, tw)) = (from, to);
    debug_assert_eq!(src.len(), images * 3 * fh * fw);
    debug_assert_eq!(dst.len(), images * 3 * th * tw);
    let taps_x = bilinear_taps(tw, fw);
    let taps_y = bilinear_taps(th, fh);
    // (start of channel c, step between pixels) within one image.
    let index = |c: usize, pixels: usize| match layout {
        Layout::Nchw => (c * pixels, 1),
        Layout::Nhwc => (c, 3),
    };
    for (s, d) in src
        .chunks_exact(3 * fh * fw)
        .zip(dst.chunks_exact_mut(3 * th * tw))
    {
        for c in 0..3 {
            let (s0, ss) = index(c, fh * fw);
            let (d0, ds) = index(c, th * tw);
            let at = |y: usize, x: usize| s[s0 + (y * fw + x) * ss].to_f32();
            for (y, &(y0, y1, fy)) in taps_y.iter().enumerate() {
                for (x, &(x0, x1, fx)) in taps_x.iter().enumerate() {
                    let v = lerp2(at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1), fx, fy);
                    d[d0 + (y * tw + x) * ds] = T::from_f32(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_pixel_pairs_and_keeps_channels_apart() {
        // One 2×4 NCHW image: channel c holds c·100 + column·10 + row.
        let (h, w) = (2, 4);
        let src: Vec<f32> = (0..3)
            .flat_map(|c| {
                (0..h).flat_map(move |y| (0..w).map(move |x| (c * 100 + x * 10 + y) as f32))
            })
            .collect();
        let mut dst = vec![0.0f32; 6];
        resize_images(&src, (h, w), &mut dst, (1, 2), Layout::Nchw, 1);
        // Output pixel (0, x) sits between source columns 2x and 2x+1 and rows 0 and 1.
        for c in 0..3 {
            for x in 0..2 {
                let expected = (c * 100) as f32 + (20 * x) as f32 + 5.0 + 0.5;
                assert_eq!(dst[c * 2 + x], expected, "channel {c}, column {x}");
            }
        }
    }

    #[test]
    fn nhwc_bytes_resize_like_floats_and_round() {
        // Two 3×3 NHWC images of bytes, doubled to 6×6 and shrunk to 2×2.
        let src: Vec<u8> = (0..2 * 27).map(|i| (i * 37 % 251) as u8).collect();
        let floats: Vec<f32> = src.iter().map(|&b| b as f32).collect();
        for to in [(6, 6), (2, 2), (3, 5)] {
            let n = 2 * 3 * to.0 * to.1;
            let (mut bytes, mut exact) = (vec![0u8; n], vec![0f32; n]);
            resize_images(&src, (3, 3), &mut bytes, to, Layout::Nhwc, 2);
            resize_images(&floats, (3, 3), &mut exact, to, Layout::Nhwc, 2);
            for (b, f) in bytes.iter().zip(&exact) {
                assert_eq!(*b, (f + 0.5).floor() as u8, "{to:?}");
            }
        }
        // Same size: a copy.
        let mut same = vec![0u8; src.len()];
        resize_images(&src, (3, 3), &mut same, (3, 3), Layout::Nhwc, 2);
        assert_eq!(same, src);
    }
}
