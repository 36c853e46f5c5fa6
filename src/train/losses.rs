//! Losses and image metrics: Gram matrices, total variation, L1, PSNR and SSIM.

use candle_core::{D, DType, Device, Result, Tensor};

/// A scalar f32 tensor's value.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_scalar::<f32>()? as f64)
}

/// Mean squared error.
pub fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.broadcast_sub(b)?.sqr()?.mean_all()
}

/// Mean absolute error.
pub fn l1(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.broadcast_sub(b)?.abs()?.mean_all()
}

/// Gram matrices `F·Fᵀ / (C·H·W)` of an NCHW batch, one C×C matrix per sample.
pub fn gram(f: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = f.dims4()?;
    let f = f.reshape((n, c, h * w))?;
    f.matmul(&f.t()?)? / (c * h * w) as f64
}

/// Total variation: mean squared difference between vertical and horizontal neighbours.
pub fn total_variation(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let dy = mse(&x.narrow(2, 1, h - 1)?, &x.narrow(2, 0, h - 1)?)?;
    let dx = mse(&x.narrow(3, 1, w - 1)?, &x.narrow(3, 0, w - 1)?)?;
    dy + dx
}

/// PSNR in dB of two images in [0, 1].
pub fn psnr(a: &Tensor, b: &Tensor) -> Result<f32> {
    let m = mse(a, b)?.to_scalar::<f32>()?;
    Ok(if m <= 0.0 {
        f32::INFINITY
    } else {
        -10.0 * m.log10()
    })
}

/// Mean SSIM (Wang et al. 2004: 11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03) of two NCHW
/// batches in [0, 1], over channels and valid window positions.
pub fn ssim(a: &Tensor, b: &Tensor) -> Result<f32> {
    let (_, c, _, _) = a.dims4()?;
    let window = gaussian_window(c, a.device())?;
    let blur = |x: &Tensor| x.conv2d(&window, 0, 1, 1, c);
    let (mu_a, mu_b) = (blur(a)?, blur(b)?);
    let (mu_aa, mu_bb, mu_ab) = (mu_a.sqr()?, mu_b.sqr()?, (&mu_a * &mu_b)?);
    let var_a = (blur(&a.sqr()?)? - &mu_aa)?;
    let var_b = (blur(&b.sqr()?)? - &mu_bb)?;
    let cov = (blur(&(a * b)?)? - &mu_ab)?;
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let num = (((mu_ab * 2.0)? + c1)? * ((cov * 2.0)? + c2)?)?;
    let den = (((mu_aa + mu_bb)? + c1)? * ((var_a + var_b)? + c2)?)?;
    (num / den)?.mean_all()?.to_scalar::<f32>()
}

fn gaussian_window(channels: usize, device: &Device) -> Result<Tensor> {
    let g: Vec<f32> = (0..11)
        .map(|i| (-((i as f32 - 5.0).powi(2)) / (2.0 * 1.5f32.powi(2))).exp())
        .collect();
    let sum: f32 = g.iter().sum();
    let g = Tensor::new(g.as_slice(), device)? / sum as f64;
    let g = g?;
    let w = g.unsqueeze(1)?.matmul(&g.unsqueeze(0)?)?;
    w.reshape((1, 1, 11, 11))?
        .repeat((channels, 1, 1, 1))?
        .to_dtype(DType::F32)
}

/// Maps a batch from [-1, 1] to [0, 1].
pub fn to_unit(x: &Tensor) -> Result<Tensor> {
    (x + 1.0)? * 0.5
}

/// Mean over all but the batch dimension, one value per sample.
pub fn per_sample_mean(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(1)?.mean(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(seed: u64) -> Tensor {
        let mut rng = crate::train::rng::Rng::new(seed);
        let v: Vec<f32> = (0..3 * 32 * 32).map(|_| rng.uniform()).collect();
        Tensor::from_vec(v, (1, 3, 32, 32), &Device::Cpu).unwrap()
    }

    #[test]
    fn ssim_is_one_for_equal_images_and_low_for_unrelated_noise() {
        let a = image(1);
        assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-4);
        assert!(ssim(&a, &image(99)).unwrap() < 0.1);
    }

    #[test]
    fn psnr_of_a_uniform_offset() {
        let a = image(1);
        let b = (&a + 0.1).unwrap();
        assert!((psnr(&a, &b).unwrap() - 20.0).abs() < 1e-3);
    }

    #[test]
    fn gram_of_a_constant_map() {
        let f = Tensor::ones((1, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
        let g: Vec<Vec<f32>> = gram(&f).unwrap().get(0).unwrap().to_vec2().unwrap();
        // Each entry: 9 products of 1 / (2·3·3).
        assert_eq!(g, vec![vec![0.5, 0.5], vec![0.5, 0.5]]);
    }

    #[test]
    fn total_variation_of_stripes() {
        let v: Vec<f32> = (0..16).map(|i| (i % 2) as f32).collect();
        let x = Tensor::from_vec(v, (1, 1, 4, 4), &Device::Cpu).unwrap();
        // Columns alternate 0/1: every horizontal neighbour differs by 1, vertical ones by 0.
        assert_eq!(
            total_variation(&x).unwrap().to_scalar::<f32>().unwrap(),
            1.0
        );
    }
}
