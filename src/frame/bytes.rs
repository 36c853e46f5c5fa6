//! Frames ⇄ packed RGB bytes (`[h, w, 3]`), the tensors of engines that take frames as bytes
//! and convert them on their device.
//!
//! The common case — reflection padding, no blending — is a byte shuffle per pixel, specialised
//! per pixel format so that it compiles to tight loops, and split into row bands over several
//! threads for large frames (a GPU engine leaves the host's cores idle). Everything else goes
//! through the general conversion in [`super`].

use super::{
    Blend, FrameMut, FrameRef, Geometry, PixelFormat, Resample, TensorFormat, band_count,
    for_row_bands, frame_to_tensor, tensor_to_frame_threads,
};
use crate::model::{ChannelOrder, Layout, ValueRange};

/// The layout of byte tensors: NHWC, RGB, values 0..255.
pub const RGB_BYTES: TensorFormat = TensorFormat {
    layout: Layout::Nhwc,
    channel_order: ChannelOrder::Rgb,
    range: ValueRange::Byte,
};

/// Writes `frame` into `tensor` (`tensor_height × tensor_width × 3` bytes), on up to
/// `threads` threads.
pub fn frame_to_rgb(frame: &FrameRef, geometry: &Geometry, tensor: &mut [u8], threads: usize) {
    debug_assert_eq!(tensor.len(), 3 * geometry.tensor_pixels());
    if geometry.resample != Resample::Pad {
        return frame_to_tensor(frame, geometry, &RGB_BYTES, tensor);
    }
    let row_len = 3 * geometry.tensor_width;
    let (rows, padding_rows) = tensor.split_at_mut(frame.height * row_len);
    let bpp = frame.format.bytes_per_pixel();
    for_bands(rows, row_len, bands(frame, threads), |first, band| {
        for (i, out) in band.chunks_exact_mut(row_len).enumerate() {
            let row = &frame.data[(first + i) * frame.stride..][..frame.width * bpp];
            pack_row(frame.format, row, out, geometry, frame.width);
        }
    });
    // Rows below the frame mirror rows above them, which are converted already.
    for (i, out) in padding_rows.chunks_exact_mut(row_len).enumerate() {
        let source = geometry.source_row(frame.height + i);
        out.copy_from_slice(&rows[source * row_len..][..row_len]);
    }
}

/// Writes the byte tensor `tensor` into `out`, combined with `input` as `blend` says, on up
/// to `threads` threads.
pub fn rgb_to_frame(
    tensor: &[u8],
    geometry: &Geometry,
    blend: &Blend,
    input: &FrameRef,
    out: &mut FrameMut,
    threads: usize,
) {
    let plain = blend.strength >= 1.0 && !blend.preserve_color;
    if !plain || geometry.resample != Resample::Pad || input.format != out.format {
        return tensor_to_frame_threads(tensor, geometry, &RGB_BYTES, blend, input, out, threads);
    }
    let row_len = 3 * geometry.tensor_width;
    for_row_bands(input, out, bands(input, threads), |input, out, first| {
        let bpp = out.format.bytes_per_pixel();
        for y in 0..out.height {
            let t = &tensor[(first + y) * row_len..][..3 * out.width];
            let src = &input.data[y * input.stride..][..out.width * bpp];
            let dst = &mut out.data[y * out.stride..][..out.width * bpp];
            unpack_row(out.format, t, src, dst);
        }
    });
}

/// How many threads to use for `frame`.
fn bands(frame: &FrameRef, threads: usize) -> usize {
    band_count(frame.width, frame.height, threads)
}

/// Runs `work(first_row, band)` over `threads` bands of whole rows of `rows` (rows of
/// `row_len` elements), the last on the calling thread.
fn for_bands<F>(rows: &mut [u8], row_len: usize, threads: usize, work: F)
where
    F: Fn(usize, &mut [u8]) + Sync,
{
    let count = rows.len() / row_len;
    if count == 0 {
        return;
    }
    let per_band = count.div_ceil(threads);
    std::thread::scope(|s| {
        let mut bands = rows.chunks_mut(per_band * row_len).enumerate().peekable();
        while let Some((i, band)) = bands.next() {
            let work = &work;
            if bands.peek().is_none() {
                work(i * per_band, band);
            } else {
                s.spawn(move || work(i * per_band, band));
            }
        }
    });
}

/// One frame row → one tensor row: the frame's pixels, then the mirrored columns.
fn pack_row(format: PixelFormat, row: &[u8], out: &mut [u8], geometry: &Geometry, width: usize) {
    let (inside, padding) = out.split_at_mut(3 * width);
    match format {
        PixelFormat::Rgb => inside.copy_from_slice(row),
        PixelFormat::Bgr => shuffle_in::<3, 2, 0>(row, inside),
        PixelFormat::Rgba | PixelFormat::Rgbx => shuffle_in::<4, 0, 2>(row, inside),
        PixelFormat::Bgra | PixelFormat::Bgrx => shuffle_in::<4, 2, 0>(row, inside),
    }
    for (i, d) in padding.chunks_exact_mut(3).enumerate() {
        let x = geometry.source_col(width + i);
        d.copy_from_slice(&inside[3 * x..3 * x + 3]);
    }
}

/// Pixels of `BPP` bytes with red at `R` and blue at `B` → RGB.
#[inline(always)]
fn shuffle_in<const BPP: usize, const R: usize, const B: usize>(row: &[u8], out: &mut [u8]) {
    for (d, px) in out.chunks_exact_mut(3).zip(row.chunks_exact(BPP)) {
        d[0] = px[R];
        d[1] = px[1];
        d[2] = px[B];
    }
}

/// One tensor row → one frame row; a fourth byte (alpha, padding) comes from the input.
fn unpack_row(format: PixelFormat, t: &[u8], input: &[u8], out: &mut [u8]) {
    match format {
        PixelFormat::Rgb => out.copy_from_slice(t),
        PixelFormat::Bgr => shuffle_out::<3, 2, 0>(t, input, out),
        PixelFormat::Rgba | PixelFormat::Rgbx => shuffle_out::<4, 0, 2>(t, input, out),
        PixelFormat::Bgra | PixelFormat::Bgrx => shuffle_out::<4, 2, 0>(t, input, out),
    }
}

#[inline(always)]
fn shuffle_out<const BPP: usize, const R: usize, const B: usize>(
    t: &[u8],
    input: &[u8],
    out: &mut [u8],
) {
    for ((px, rgb), src) in out
        .chunks_exact_mut(BPP)
        .zip(t.chunks_exact(3))
        .zip(input.chunks_exact(BPP))
    {
        px[R] = rgb[0];
        px[1] = rgb[1];
        px[B] = rgb[2];
        if BPP == 4 {
            px[3] = src[3];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tensor_to_frame;
    use crate::model::SizeRule;

    /// A frame of `height` rows of `stride` bytes with distinct values.
    fn frame_bytes(height: usize, stride: usize, seed: usize) -> Vec<u8> {
        (0..stride * height)
            .map(|i| ((i * 31 + seed * 7 + i / stride * 13) % 251) as u8)
            .collect()
    }

    #[test]
    fn fast_paths_equal_the_general_conversion_on_any_thread_count() {
        // 641×479 is large enough to be split into bands; padded to 648×480.
        let (w, h) = (641, 479);
        let geometry = Geometry::new(w, h, SizeRule::Multiple(8));
        for format in PixelFormat::ALL {
            let stride = w * format.bytes_per_pixel() + 5;
            let data = frame_bytes(h, stride, 1);
            let frame = FrameRef {
                data: &data,
                width: w,
                height: h,
                stride,
                format,
            };
            let mut reference = vec![0u8; 3 * geometry.tensor_pixels()];
            frame_to_tensor(&frame, &geometry, &RGB_BYTES, &mut reference);
            // A styled tensor: the packed input, shifted.
            let styled: Vec<u8> = reference.iter().map(|v| v.wrapping_add(40)).collect();
            let mut expected = frame_bytes(h, stride, 2);
            tensor_to_frame(
                &styled,
                &geometry,
                &RGB_BYTES,
                &Blend::default(),
                &frame,
                &mut FrameMut {
                    data: &mut expected,
                    width: w,
                    height: h,
                    stride,
                    format,
                },
            );
            for threads in [1, 3, 8] {
                let mut packed = vec![0u8; reference.len()];
                frame_to_rgb(&frame, &geometry, &mut packed, threads);
                assert!(packed == reference, "{format}, {threads} threads: packing");
                let mut out = frame_bytes(h, stride, 2);
                rgb_to_frame(
                    &styled,
                    &geometry,
                    &Blend::default(),
                    &frame,
                    &mut FrameMut {
                        data: &mut out,
                        width: w,
                        height: h,
                        stride,
                        format,
                    },
                    threads,
                );
                assert!(out == expected, "{format}, {threads} threads: unpacking");
            }
        }
    }
}
