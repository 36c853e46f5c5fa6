//! Training images: folders of photos or frames, decoded once, served as random square crops.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use image::{RgbImage, imageops::FilterType};

use super::rng::Rng;

/// Extensions read as images.
const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The image files under `dirs` (files may be named directly), sorted, recursively.
pub fn image_files(dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for d in dirs {
        if d.is_file() {
            files.push(d.clone());
            continue;
        }
        if !d.is_dir() {
            bail!("image folder {} does not exist", d.display());
        }
        collect(d, &mut files)?;
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "no images ({}) in {}",
            EXTENSIONS.join(", "),
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(files)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Checks a training crop side: a multiple of 16 (the generators' strides and VGG's pools),
/// at least 32.
pub fn check_crop_size(size: u32) -> anyhow::Result<()> {
    if !size.is_multiple_of(16) || size < 32 {
        bail!("--size must be a multiple of 16, at least 32 (got {size})");
    }
    Ok(())
}

/// Decodes an image as RGB8, naming the file on failure.
pub fn load_rgb(path: &Path) -> anyhow::Result<RgbImage> {
    Ok(image::open(path)
        .with_context(|| format!("cannot read image {}", path.display()))?
        .to_rgb8())
}

/// Scales `img` so its shorter side is `side` (keeping the aspect ratio).
pub fn fit_short_side(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let s = side as f32 / w.min(h) as f32;
    let (nw, nh) = (
        ((w as f32 * s).round() as u32).max(side),
        ((h as f32 * s).round() as u32).max(side),
    );
    image::imageops::resize(img, nw, nh, FilterType::Triangle)
}

/// Scales `img` to cover `side`×`side` and crops the centre.
pub fn center_square(img: &RgbImage, side: u32) -> RgbImage {
    let img = fit_short_side(img, side);
    let (w, h) = img.dimensions();
    image::imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image()
}

/// RGB8 images → an NCHW float batch in [-1, 1].
pub fn to_tensor(images: &[RgbImage]) -> candle_core::Result<Tensor> {
    let (w, h) = images[0].dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; images.len() * 3 * plane];
    for (i, img) in images.iter().enumerate() {
        let base = i * 3 * plane;
        for (p, px) in img.pixels().enumerate() {
            for c in 0..3 {
                data[base + c * plane + p] = px[c] as f32 / 127.5 - 1.0;
            }
        }
    }
    Tensor::from_vec(
        data,
        (images.len(), 3, h as usize, w as usize),
        &Device::Cpu,
    )
}

/// An NCHW batch in [-1, 1] → RGB8 images (rounded, clamped).
pub fn to_images(x: &Tensor) -> candle_core::Result<Vec<RgbImage>> {
    let (n, _, h, w) = x.dims4()?;
    let v: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let plane = h * w;
    Ok((0..n)
        .map(|i| {
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let p = y as usize * w + x as usize;
                let px = |c: usize| {
                    ((v[(i * 3 + c) * plane + p] + 1.0) * 127.5)
                        .round()
                        .clamp(0.0, 255.0) as u8
                };
                image::Rgb([px(0), px(1), px(2)])
            })
        })
        .collect())
}

/// A set of images kept decoded at a working scale, from which random crops are drawn.
pub struct ImageSet {
    images: Vec<RgbImage>,
    pub files: Vec<PathBuf>,
    crop: u32,
    /// Crop windows are `crop` × U(1, zoom) pixels, scaled to `crop`.
    zoom: f32,
    /// Crops with a smaller grey standard deviation (0..255) are drawn again.
    min_std: f32,
}

/// Draws of a crop before a flat one is accepted anyway (an image set of flat images).
const FLAT_RETRIES: usize = 8;

impl ImageSet {
    /// Loads every image under `dirs`, scaled so the shorter side is `crop` × 1.15 (room for
    /// random crops).
    pub fn load(dirs: &[PathBuf], crop: u32) -> anyhow::Result<Self> {
        Self::load_at(dirs, crop, (crop as f32 * 1.15).round() as u32)
    }

    /// Loads every image under `dirs`, scaled so the shorter side is `side` (≥ `crop`).
    pub fn load_at(dirs: &[PathBuf], crop: u32, side: u32) -> anyhow::Result<Self> {
        let files = image_files(dirs)?;
        let images = files
            .iter()
            .map(|f| load_rgb(f).map(|img| fit_short_side(&img, side.max(crop))))
            .collect::<anyhow::Result<_>>()?;
        Ok(ImageSet {
            images,
            files,
            crop,
            zoom: 1.0,
            min_std: 0.0,
        })
    }

    /// Crops windows of up to `zoom` × the crop size, scaled down to it (scale augmentation).
    pub fn with_zoom(mut self, zoom: f32) -> Self {
        self.zoom = zoom.max(1.0);
        self
    }

    /// Draws again crops whose grey standard deviation is below `std` (0..255).
    pub fn with_min_std(mut self, std: f32) -> Self {
        self.min_std = std;
        self
    }

    /// `n` random crops: random image, window size and position, horizontal flip; flat crops
    /// (see [`ImageSet::with_min_std`]) drawn again up to a few times.
    pub fn crops(&self, n: usize, rng: &mut Rng) -> Vec<RgbImage> {
        (0..n)
            .map(|_| {
                let mut c = self.crop_once(rng);
                for _ in 0..FLAT_RETRIES {
                    if self.min_std <= 0.0 || grey_std(&c) >= self.min_std {
                        break;
                    }
                    c = self.crop_once(rng);
                }
                c
            })
            .collect()
    }

    fn crop_once(&self, rng: &mut Rng) -> RgbImage {
        let img = &self.images[rng.below(self.images.len())];
        let (w, h) = img.dimensions();
        let largest = w.min(h);
        let side = if self.zoom > 1.0 {
            let z = 1.0 + rng.uniform() * (self.zoom - 1.0);
            ((self.crop as f32 * z).round() as u32).clamp(self.crop, largest)
        } else {
            self.crop
        };
        let x = rng.below((w - side + 1) as usize) as u32;
        let y = rng.below((h - side + 1) as usize) as u32;
        let mut c = image::imageops::crop_imm(img, x, y, side, side).to_image();
        if side != self.crop {
            c = image::imageops::resize(&c, self.crop, self.crop, FilterType::Triangle);
        }
        if rng.uniform() < 0.5 {
            image::imageops::flip_horizontal_in_place(&mut c);
        }
        c
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// `n` random crops ([`ImageSet::crops`]) as a batch in [-1, 1].
    pub fn batch(&self, n: usize, rng: &mut Rng) -> candle_core::Result<Tensor> {
        to_tensor(&self.crops(n, rng))
    }

    /// The first `n` images, centre-cropped: fixed samples for grids and evaluation.
    pub fn fixed(&self, n: usize) -> candle_core::Result<Tensor> {
        let crops: Vec<RgbImage> = self
            .images
            .iter()
            .take(n)
            .map(|i| center_square(i, self.crop))
            .collect();
        to_tensor(&crops)
    }
}

/// Standard deviation of an image's grey level (ITU-R BT.601 weights), in 0..255.
pub fn grey_std(img: &RgbImage) -> f32 {
    let n = (img.width() * img.height()) as f64;
    let (mut sum, mut sq) = (0f64, 0f64);
    for p in img.pixels() {
        let g = 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
        sum += g;
        sq += g * g;
    }
    let mean = sum / n;
    ((sq / n - mean * mean).max(0.0)).sqrt() as f32
}

/// Saves a grid: one row per batch, one column per image.
pub fn save_grid(rows: &[&Tensor], path: &Path) -> anyhow::Result<()> {
    let rows: Vec<Vec<RgbImage>> = rows
        .iter()
        .map(|t| to_images(t))
        .collect::<candle_core::Result<_>>()?;
    save_image_grid(&rows, path)
}

/// Saves images of one size as a grid (rows × columns, 4-pixel white gaps) in a PNG file,
/// creating its folder.
pub fn save_image_grid(rows: &[Vec<RgbImage>], path: &Path) -> anyhow::Result<()> {
    let (w, h) = rows[0][0].dimensions();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let gap = 4;
    let mut sheet = RgbImage::from_pixel(
        cols * (w + gap) - gap,
        rows.len() as u32 * (h + gap) - gap,
        image::Rgb([255, 255, 255]),
    );
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            image::imageops::replace(
                &mut sheet,
                img,
                (c as u32 * (w + gap)) as i64,
                (r as u32 * (h + gap)) as i64,
            );
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    sheet
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_round_trip_is_exact() {
        let img = RgbImage::from_fn(5, 3, |x, y| {
            image::Rgb([x as u8 * 50, y as u8 * 100, 255 - x as u8])
        });
        let t = to_tensor(std::slice::from_ref(&img)).unwrap();
        assert_eq!(t.dims(), &[1, 3, 3, 5]);
        assert_eq!(to_images(&t).unwrap()[0], img);
    }
}
