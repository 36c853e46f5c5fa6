//! Nearest-neighbour ×2 upsampling: each value fills a 2×2 block forward; backward, a value's
//! gradient is the sum over its block.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, with_data};

/// Doubles H and W of a contiguous f32 NCHW tensor.
pub fn upsample_nearest2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Upsample2)
}

struct Upsample2;

impl CustomOp1 for Upsample2 {
    fn name(&self) -> &'static str {
        "upsample-nearest2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = l.shape().dims4()?;
        let x = slice(s, l, "upsampling")?;
        let mut y = vec![0f32; 4 * x.len()];
        y.par_chunks_mut(4 * h * w)
            .zip(x.par_chunks(h * w))
            .for_each(|(yp, xp)| {
                for (rows, src) in yp.chunks_mut(4 * w).zip(xp.chunks(w)) {
                    let (top, bottom) = rows.split_at_mut(2 * w);
                    for (pair, &v) in top.chunks_mut(2).zip(src) {
                        pair[0] = v;
                        pair[1] = v;
                    }
                    bottom.copy_from_slice(top);
                }
            });
        Ok((CpuStorage::F32(y), Shape::from((n, c, 2 * h, 2 * w))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        let mut dx = vec![0f32; x.elem_count()];
        with_data(g, |g| {
            dx.par_chunks_mut(h * w)
                .zip(g.par_chunks(4 * h * w))
                .for_each(|(dp, gp)| {
                    for (dst, rows) in dp.chunks_mut(w).zip(gp.chunks(4 * w)) {
                        let (top, bottom) = rows.split_at(2 * w);
                        for ((d, t), b) in dst.iter_mut().zip(top.chunks(2)).zip(bottom.chunks(2)) {
                            *d = (t[0] + t[1]) + (b[0] + b[1]);
                        }
                    }
                });
            Ok(())
        })?;
        Ok(Some(tensor(dx, x.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_gradients, random};
    use super::*;

    #[test]
    fn gradients_match_finite_differences_of_candles_upsampling() {
        check_gradients(
            &[random(&[2, 3, 3, 5], 1)],
            |t| upsample_nearest2(&t[0]).unwrap(),
            |t| {
                let (_, _, h, w) = t[0].dims4().unwrap();
                t[0].upsample_nearest2d(2 * h, 2 * w).unwrap()
            },
            1e-4,
        );
    }
}
