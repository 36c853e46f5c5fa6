//! Image-quality measures of a styled image against its input, for the failures fast style nets
//! are known for: saturated white blobs painted over ordinary content, and content lost.
//!
//! - **Blob area**: the share of output pixels whose smallest channel is > 240 where the input's
//!   smallest channel is ≤ 204 — near-white paint where the input was not near white.
//! - **Edge correlation**: the Pearson correlation of the Sobel gradient magnitudes of the grey
//!   input and grey output (ITU-R BT.601 weights): how much of the input's structure survives.

use image::RgbImage;

/// An output's channel minimum above this is near white.
pub const BLOB_OUTPUT_MIN: u8 = 240;
/// An input's channel minimum at most this is not near white.
pub const BLOB_INPUT_MAX: u8 = 204;

/// The measures of one image pair, or the mean of several.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Quality {
    /// Blob area as a fraction of the image's pixels (0..1).
    pub blob_area: f64,
    /// Edge correlation (−1..1).
    pub edge_correlation: f64,
}

impl Quality {
    /// The measures of `output` styled from `input` (same size).
    pub fn of(input: &RgbImage, output: &RgbImage) -> Self {
        Quality {
            blob_area: blob_area(input, output),
            edge_correlation: edge_correlation(input, output),
        }
    }

    /// The mean measures over pairs.
    pub fn of_pairs(inputs: &[RgbImage], outputs: &[RgbImage]) -> Self {
        let all: Vec<Quality> = inputs
            .iter()
            .zip(outputs)
            .map(|(i, o)| Self::of(i, o))
            .collect();
        let n = all.len().max(1) as f64;
        Quality {
            blob_area: all.iter().map(|q| q.blob_area).sum::<f64>() / n,
            edge_correlation: all.iter().map(|q| q.edge_correlation).sum::<f64>() / n,
        }
    }
}

fn channel_min(p: &image::Rgb<u8>) -> u8 {
    p[0].min(p[1]).min(p[2])
}

/// The blob area of `output` styled from `input` (fraction of pixels, 0..1).
///
/// # Panics
/// If the images differ in size.
pub fn blob_area(input: &RgbImage, output: &RgbImage) -> f64 {
    assert_eq!(
        input.dimensions(),
        output.dimensions(),
        "image sizes differ"
    );
    let blobs = input
        .pixels()
        .zip(output.pixels())
        .filter(|(i, o)| channel_min(i) <= BLOB_INPUT_MAX && channel_min(o) > BLOB_OUTPUT_MIN)
        .count();
    blobs as f64 / (input.width() * input.height()).max(1) as f64
}

/// Grey levels (BT.601) of an image, row by row.
fn grey(img: &RgbImage) -> Vec<f32> {
    img.pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect()
}

/// Sobel gradient magnitudes of the interior pixels (a one-pixel border is left out).
fn sobel_magnitudes(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 3 || h < 3 {
        return Vec::new();
    }
    let g = grey(img);
    let at = |x: usize, y: usize| g[y * w + x];
    let mut out = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let gx = (at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2.0 * at(x - 1, y) + at(x - 1, y + 1));
            let gy = (at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1))
                - (at(x - 1, y - 1) + 2.0 * at(x, y - 1) + at(x + 1, y - 1));
            out.push((gx * gx + gy * gy).sqrt());
        }
    }
    out
}

/// Pearson correlation of two equally long series (0 when either is constant).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let mean = |v: &[f32]| v[..n].iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut cov, mut va, mut vb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    if va <= 0.0 || vb <= 0.0 {
        return 0.0;
    }
    cov / (va * vb).sqrt()
}

/// The edge correlation of `output` styled from `input` (same size).
///
/// # Panics
/// If the images differ in size.
pub fn edge_correlation(input: &RgbImage, output: &RgbImage) -> f64 {
    assert_eq!(
        input.dimensions(),
        output.dimensions(),
        "image sizes differ"
    );
    pearson(&sobel_magnitudes(input), &sobel_magnitudes(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, mut f: impl FnMut(u32, u32) -> [u8; 3]) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
    }

    #[test]
    fn blob_area_counts_near_white_output_over_non_white_input() {
        // Input: left half dark grey (not white), right half white. Output: all near white,
        // except one column of the dark half.
        let input = image(10, 4, |x, _| if x < 5 { [100, 120, 90] } else { [250; 3] });
        let output = image(
            10,
            4,
            |x, _| if x == 0 { [250, 239, 250] } else { [245; 3] },
        );
        // Blobs: columns 1..5 of 4 rows (16 of 40 pixels); white input and column 0 (min 239,
        // not > 240) do not count.
        assert!((blob_area(&input, &output) - 16.0 / 40.0).abs() < 1e-12);
        // The thresholds are strict/inclusive as documented: input min 204 counts, 205 does not.
        let edge_in = image(2, 1, |x, _| if x == 0 { [204; 3] } else { [205; 3] });
        let white = image(2, 1, |_, _| [241; 3]);
        assert!((blob_area(&edge_in, &white) - 0.5).abs() < 1e-12);
        assert_eq!(blob_area(&input, &input), 0.0);
    }

    #[test]
    fn edge_correlation_is_one_for_a_brightened_copy_and_near_zero_for_unrelated_noise() {
        let input = image(32, 32, |x, y| {
            let v = if (x / 8 + y / 8) % 2 == 0 { 40 } else { 200 };
            [v, v, v]
        });
        let brighter = image(32, 32, |x, y| {
            let p = input.get_pixel(x, y);
            [p[0] / 2 + 50, p[1] / 2 + 50, p[2] / 2 + 50]
        });
        assert!((edge_correlation(&input, &brighter) - 1.0).abs() < 1e-9);
        let mut rng = crate::train::rng::Rng::new(7);
        let noise = image(32, 32, |_, _| {
            let v = (rng.uniform() * 255.0) as u8;
            [v, v, v]
        });
        assert!(edge_correlation(&input, &noise).abs() < 0.2);
        // A flat output has no edges: correlation 0, not NaN.
        let flat = image(32, 32, |_, _| [128; 3]);
        assert_eq!(edge_correlation(&input, &flat), 0.0);
    }

    #[test]
    fn pearson_of_a_linear_relation_and_its_negation() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        let b = [3.0f32, 5.0, 7.0, 9.0];
        let c = [-1.0f32, -2.0, -3.0, -4.0];
        assert!((pearson(&a, &b) - 1.0).abs() < 1e-12);
        assert!((pearson(&a, &c) + 1.0).abs() < 1e-12);
    }
}
