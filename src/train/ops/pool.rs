//! 2×2 max pooling with stride 2 (an odd last row or column dropped, as PyTorch's floor mode).
//! Backward, every position equal to its window's maximum gets the window's gradient — what the
//! trainer's former reshape-and-max composition computed (PyTorch instead picks one position of
//! a tie; after a ReLU ties are windows of zeros, whose gradient the ReLU stops anyway).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, with_data};

/// Max pooling of a contiguous f32 NCHW tensor.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2)
}

struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "max-pool2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let x = slice(s, l, "max pooling")?;
        let (h2, w2) = (h / 2, w / 2);
        let mut y = vec![0f32; n * c * h2 * w2];
        if h2 * w2 > 0 {
            y.par_chunks_mut(h2 * w2)
                .zip(x.par_chunks(h * w))
                .for_each(|(yp, xp)| {
                    for (i, out) in yp.chunks_mut(w2).enumerate() {
                        let (r0, r1) = (&xp[2 * i * w..][..w], &xp[(2 * i + 1) * w..][..w]);
                        for (j, o) in out.iter_mut().enumerate() {
                            *o = r0[2 * j]
                                .max(r0[2 * j + 1])
                                .max(r1[2 * j].max(r1[2 * j + 1]));
                        }
                    }
                });
        }
        Ok((CpuStorage::F32(y), Shape::from((n, c, h2, w2))))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        let (h2, w2) = (h / 2, w / 2);
        let mut dx = vec![0f32; x.elem_count()];
        if h2 * w2 > 0 {
            with_data(x, |xd| {
                with_data(y, |yd| {
                    with_data(g, |gd| {
                        dx.par_chunks_mut(h * w)
                            .zip(xd.par_chunks(h * w))
                            .zip(yd.par_chunks(h2 * w2).zip(gd.par_chunks(h2 * w2)))
                            .for_each(|((dp, xp), (yp, gp))| {
                                for i in 0..h2 {
                                    for r in [2 * i, 2 * i + 1] {
                                        let (xr, dr) = (&xp[r * w..][..w], &mut dp[r * w..][..w]);
                                        for j in 0..w2 {
                                            let (m, gv) = (yp[i * w2 + j], gp[i * w2 + j]);
                                            for q in [2 * j, 2 * j + 1] {
                                                if xr[q] == m {
                                                    dr[q] = gv;
                                                }
                                            }
                                        }
                                    }
                                }
                            });
                        Ok(())
                    })
                })
            })?;
        }
        Ok(Some(tensor(dx, x.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_gradients, random};
    use super::*;

    #[test]
    fn gradients_match_finite_differences_of_reshape_and_max() {
        for (h, w) in [(4, 6), (5, 7)] {
            check_gradients(
                &[random(&[2, 3, h, w], h as u64)],
                |t| max_pool2(&t[0]).unwrap(),
                |t| {
                    let (n, c, h, w) = t[0].dims4().unwrap();
                    let (h2, w2) = (h / 2, w / 2);
                    t[0].narrow(2, 0, 2 * h2)
                        .unwrap()
                        .narrow(3, 0, 2 * w2)
                        .unwrap()
                        .reshape((n, c, h2, 2, w2, 2))
                        .unwrap()
                        .max(5)
                        .unwrap()
                        .max(3)
                        .unwrap()
                },
                1e-4,
            );
        }
    }
}
