//! Reflection padding of H and W (ONNX `Pad` mode `reflect`, PyTorch `ReflectionPad2d`): a copy
//! forward; backward, each padded position's gradient goes back to the position it mirrors.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, tensor, with_data};

/// Pads a contiguous f32 NCHW tensor by `p` on each side; `p` must be smaller than H and W.
pub fn reflect_pad(x: &Tensor, p: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ReflectPad { p })
}

/// The source index of padded index `i` (in `0..n + 2p`) in a side of length `n`.
pub fn reflect(i: usize, n: usize, p: usize) -> usize {
    let i = i as isize - p as isize;
    let n = n as isize;
    (if i < 0 {
        -i
    } else if i >= n {
        2 * (n - 1) - i
    } else {
        i
    }) as usize
}

struct ReflectPad {
    p: usize,
}

impl ReflectPad {
    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (n, c, h, w) = l.shape().dims4()?;
        if self.p >= h || self.p >= w {
            candle_core::bail!(
                "reflection padding of {} needs sides longer than {0}, got {h}×{w}",
                self.p
            );
        }
        Ok((n, c, h, w))
    }
}

impl CustomOp1 for ReflectPad {
    fn name(&self) -> &'static str {
        "reflect-pad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = self.dims(l)?;
        let x = slice(s, l, "reflection padding")?;
        let p = self.p;
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let mut y = vec![0f32; n * c * hp * wp];
        y.par_chunks_mut(hp * wp)
            .zip(x.par_chunks(h * w))
            .for_each(|(yp, xp)| {
                for (i, row) in yp.chunks_mut(wp).enumerate() {
                    let src = &xp[reflect(i, h, p) * w..][..w];
                    row[p..p + w].copy_from_slice(src);
                    for j in 0..p {
                        row[p - 1 - j] = src[j + 1];
                        row[p + w + j] = src[w - 2 - j];
                    }
                }
            });
        Ok((CpuStorage::F32(y), Shape::from((n, c, hp, wp))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = self.dims(x.layout())?;
        let p = self.p;
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let mut dx = vec![0f32; x.elem_count()];
        with_data(g, |g| {
            dx.par_chunks_mut(h * w)
                .zip(g.par_chunks(hp * wp))
                .for_each(|(dp, gp)| {
                    for (i, row) in gp.chunks(wp).enumerate() {
                        let dst = &mut dp[reflect(i, h, p) * w..][..w];
                        for (d, &v) in dst.iter_mut().zip(&row[p..p + w]) {
                            *d += v;
                        }
                        for j in 0..p {
                            dst[j + 1] += row[p - 1 - j];
                            dst[w - 2 - j] += row[p + w + j];
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

    /// Reflection padding as two index selections (the trainer's former implementation).
    fn composed(x: &Tensor, p: usize) -> Tensor {
        let (_, _, h, w) = x.dims4().unwrap();
        let idx = |n: usize| {
            let v: Vec<u32> = (0..n + 2 * p).map(|i| reflect(i, n, p) as u32).collect();
            Tensor::new(v, x.device()).unwrap()
        };
        x.index_select(&idx(h), 2)
            .unwrap()
            .index_select(&idx(w), 3)
            .unwrap()
    }

    #[test]
    fn gradients_match_finite_differences_of_index_selection() {
        for (p, h, w) in [(1, 3, 4), (2, 4, 3), (4, 5, 6)] {
            check_gradients(
                &[random(&[2, 2, h, w], p as u64)],
                |t| reflect_pad(&t[0], p).unwrap(),
                |t| composed(&t[0], p),
                1e-4,
            );
        }
    }

    #[test]
    fn too_much_padding_is_an_error() {
        let x = random(&[1, 1, 3, 5], 1)
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        let err = reflect_pad(&x, 3).unwrap_err().to_string();
        assert!(err.contains("longer than 3, got 3×5"), "{err}");
    }
}
