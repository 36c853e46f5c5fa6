//! Instance normalisation (Ulyanov et al. 2016) over each sample's and channel's H×W plane, with
//! biased variance and an optional per-channel scale γ and shift β, in one pass per plane forward
//! and one backward:
//!
//! `y = γ·x̂ + β`, `x̂ = (x − μ)/σ`, `σ = √(var + eps)`;
//! `∂x = γ/σ · (g − mean(g) − x̂·mean(g·x̂))`, `∂γ = Σ g·x̂`, `∂β = Σ g` (sums over N, H, W).

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, wants_grad, with_data};

/// Instance norm of a contiguous f32 NCHW tensor `x`; with `affine`, scale and shift of shape `(C,)`.
pub fn instance_norm(x: &Tensor, affine: Option<(&Tensor, &Tensor)>, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    match affine {
        None => x.apply_op1(InstanceNorm { eps }),
        Some((gamma, beta)) => x.apply_op3(
            &gamma.contiguous()?,
            &beta.contiguous()?,
            InstanceNorm { eps },
        ),
    }
}

struct InstanceNorm {
    eps: f64,
}

/// Mean and 1/σ of one plane (two passes, f64 sums).
fn stats(p: &[f32], eps: f64) -> (f32, f32) {
    let n = p.len() as f64;
    let mean = p.iter().map(|&v| v as f64).sum::<f64>() / n;
    let m = mean as f32;
    let var = p
        .iter()
        .map(|&v| {
            let d = (v - m) as f64;
            d * d
        })
        .sum::<f64>()
        / n;
    (m, (1.0 / (var + eps).sqrt()) as f32)
}

impl InstanceNorm {
    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize)> {
        let (n, c, h, w) = l.shape().dims4()?;
        if h * w == 0 {
            candle_core::bail!("instance norm of an empty {h}×{w} plane");
        }
        Ok((n, c, h * w))
    }

    /// `y = x̂·γ + β` plane by plane; `affine` None means γ 1, β 0.
    fn forward(
        &self,
        x: &[f32],
        c: usize,
        hw: usize,
        affine: Option<(&[f32], &[f32])>,
    ) -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(i, (yp, xp))| {
                let (mean, inv) = stats(xp, self.eps);
                let (g, b) = affine.map_or((1.0, 0.0), |(g, b)| (g[i % c], b[i % c]));
                let (scale, shift) = (inv * g, b - mean * inv * g);
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = v * scale + shift;
                }
            });
        y
    }

    /// `(∂x, per-plane Σg·x̂, per-plane Σg)`.
    fn backward(
        &self,
        x: &[f32],
        g: &[f32],
        c: usize,
        hw: usize,
        gamma: Option<&[f32]>,
    ) -> (Vec<f32>, Vec<(f32, f32)>) {
        let mut dx = vec![0f32; x.len()];
        let sums = dx
            .par_chunks_mut(hw)
            .zip(x.par_chunks(hw).zip(g.par_chunks(hw)))
            .enumerate()
            .map(|(i, (dp, (xp, gp)))| {
                let (mean, inv) = stats(xp, self.eps);
                let (mut sg, mut sgx) = (0f64, 0f64);
                for (&v, &gv) in xp.iter().zip(gp) {
                    sg += gv as f64;
                    sgx += (gv * (v - mean) * inv) as f64;
                }
                let gamma = gamma.map_or(1.0, |g| g[i % c]);
                let (mg, mgx) = ((sg / hw as f64) as f32, (sgx / hw as f64) as f32);
                let k = gamma * inv;
                for ((d, &v), &gv) in dp.iter_mut().zip(xp).zip(gp) {
                    *d = k * (gv - mg - (v - mean) * inv * mgx);
                }
                (sgx as f32, sg as f32)
            })
            .collect();
        (dx, sums)
    }
}

/// Per-channel sums over the batch of per-plane values.
fn per_channel(sums: &[(f32, f32)], c: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (vec![0f32; c], vec![0f32; c]);
    for (i, (u, v)) in sums.iter().enumerate() {
        a[i % c] += u;
        b[i % c] += v;
    }
    (a, b)
}

impl CustomOp1 for InstanceNorm {
    fn name(&self) -> &'static str {
        "instance-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = self.dims(l)?;
        let y = self.forward(slice(s, l, "instance norm")?, c, hw, None);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (_, c, hw) = self.dims(x.layout())?;
        let dx = with_data(x, |xd| {
            with_data(g, |gd| Ok(self.backward(xd, gd, c, hw, None).0))
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

impl CustomOp3 for InstanceNorm {
    fn name(&self) -> &'static str {
        "instance-norm-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = self.dims(l1)?;
        let (gamma, beta) = (slice(s2, l2, "scale")?, slice(s3, l3, "shift")?);
        if gamma.len() != c || beta.len() != c {
            candle_core::bail!(
                "instance norm of {c} channels with {} scales and {} shifts",
                gamma.len(),
                beta.len()
            );
        }
        let y = self.forward(slice(s1, l1, "instance norm")?, c, hw, Some((gamma, beta)));
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (_, c, hw) = self.dims(x.layout())?;
        let (dx, sums) = with_data(x, |xd| {
            with_data(g, |gd| {
                with_data(gamma, |gm| Ok(self.backward(xd, gd, c, hw, Some(gm))))
            })
        })?;
        let (dgamma, dbeta) = per_channel(&sums, c);
        Ok((
            wants_grad(x).then(|| tensor(dx, x.shape())).transpose()?,
            wants_grad(gamma)
                .then(|| tensor(dgamma, gamma.shape()))
                .transpose()?,
            wants_grad(beta)
                .then(|| tensor(dbeta, beta.shape()))
                .transpose()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_gradients, random};
    use super::*;
    use candle_core::D;

    /// Instance norm composed of candle's operations (the trainer's former implementation).
    fn composed(x: &Tensor, affine: Option<(&Tensor, &Tensor)>) -> Tensor {
        let (n, c, h, w) = x.dims4().unwrap();
        let flat = x.reshape((n, c, h * w)).unwrap();
        let centered = flat
            .broadcast_sub(&flat.mean_keepdim(D::Minus1).unwrap())
            .unwrap();
        let var = centered.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let y = centered
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .reshape((n, c, h, w))
            .unwrap();
        match affine {
            Some((g, b)) => y
                .broadcast_mul(&g.reshape((1, c, 1, 1)).unwrap())
                .unwrap()
                .broadcast_add(&b.reshape((1, c, 1, 1)).unwrap())
                .unwrap(),
            None => y,
        }
    }

    #[test]
    fn gradients_match_finite_differences_of_the_composed_norm() {
        let x = random(&[2, 3, 3, 4], 1);
        let x = (x.clone() + x.sqr().unwrap() * 2.0).unwrap(); // skewed, not zero-mean
        let gamma = random(&[3], 2);
        let beta = random(&[3], 3);
        check_gradients(
            &[x.clone(), gamma, beta],
            |t| instance_norm(&t[0], Some((&t[1], &t[2])), 1e-5).unwrap(),
            |t| composed(&t[0], Some((&t[1], &t[2]))),
            1e-4,
        );
        check_gradients(
            &[x],
            |t| instance_norm(&t[0], None, 1e-5).unwrap(),
            |t| composed(&t[0], None),
            1e-4,
        );
    }

    #[test]
    fn output_is_normalised_then_scaled_and_shifted() {
        let x = random(&[2, 2, 8, 8], 4)
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        let x = ((x * 5.0).unwrap() + 3.0).unwrap();
        let gamma = Tensor::new(&[2f32, 0.5], x.device()).unwrap();
        let beta = Tensor::new(&[1f32, -1.0], x.device()).unwrap();
        let y = instance_norm(&x, Some((&gamma, &beta)), 1e-5)
            .unwrap()
            .flatten_from(2)
            .unwrap();
        let mean: Vec<Vec<f32>> = y.mean(2).unwrap().to_vec2().unwrap();
        let std: Vec<Vec<f32>> = y
            .broadcast_sub(&y.mean_keepdim(2).unwrap())
            .unwrap()
            .sqr()
            .unwrap()
            .mean(2)
            .unwrap()
            .sqrt()
            .unwrap()
            .to_vec2()
            .unwrap();
        for s in 0..2 {
            for (ch, (m, sd)) in [(1f32, 2f32), (-1.0, 0.5)].iter().enumerate() {
                assert!((mean[s][ch] - m).abs() < 1e-4, "{mean:?}");
                assert!((std[s][ch] - sd).abs() < 1e-3, "{std:?}");
            }
        }
    }
}
