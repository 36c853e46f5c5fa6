//! `relu(x + b)` with a per-channel bias `b`, in one pass each way: VGG16's layers after each
//! convolution. As candle's ReLU, the slope at exactly 0 is 1 (`∂x = g` where `x + b ≥ 0`).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, wants_grad, with_data};

/// `relu(x + b)` of a contiguous f32 NCHW `x` and bias `b` of shape `(C,)`.
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&b.contiguous()?, BiasRelu)
}

struct BiasRelu;

fn dims(x: &Layout, b: &Layout) -> Result<(usize, usize)> {
    let (_, c, h, w) = x.shape().dims4()?;
    if b.shape().elem_count() != c {
        candle_core::bail!("bias of {} values for {c} channels", b.shape().elem_count());
    }
    Ok((c, h * w))
}

impl CustomOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "bias-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (c, hw) = dims(l1, l2)?;
        let (x, b) = (slice(s1, l1, "bias-relu")?, slice(s2, l2, "bias")?);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(i, (yp, xp))| {
                let bias = b[i % c];
                for (o, &v) in yp.iter_mut().zip(xp) {
                    *o = (v + bias).max(0.0);
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (c, hw) = dims(x.layout(), b.layout())?;
        let mut dx = vec![0f32; x.elem_count()];
        let sums: Vec<f64> = with_data(x, |xd| {
            with_data(b, |bd| {
                with_data(g, |gd| {
                    Ok(dx
                        .par_chunks_mut(hw)
                        .zip(xd.par_chunks(hw).zip(gd.par_chunks(hw)))
                        .enumerate()
                        .map(|(i, (dp, (xp, gp)))| {
                            let bias = bd[i % c];
                            let mut sum = 0f64;
                            for ((d, &v), &gv) in dp.iter_mut().zip(xp).zip(gp) {
                                *d = if v + bias >= 0.0 { gv } else { 0.0 };
                                sum += *d as f64;
                            }
                            sum
                        })
                        .collect())
                })
            })
        })?;
        let db = if wants_grad(b) {
            let mut db = vec![0f32; c];
            for (i, s) in sums.iter().enumerate() {
                db[i % c] += *s as f32;
            }
            Some(tensor(db, b.shape())?)
        } else {
            None
        };
        Ok((
            wants_grad(x).then(|| tensor(dx, x.shape())).transpose()?,
            db,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_gradients, random};
    use super::*;

    #[test]
    fn gradients_match_finite_differences_of_add_then_relu() {
        check_gradients(
            &[random(&[2, 3, 4, 5], 1), random(&[3], 2)],
            |t| bias_relu(&t[0], &t[1]).unwrap(),
            |t| {
                t[0].broadcast_add(&t[1].reshape((1, 3, 1, 1)).unwrap())
                    .unwrap()
                    .relu()
                    .unwrap()
            },
            1e-4,
        );
    }
}
