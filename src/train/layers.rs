//! Layers candle lacks or runs slowly: convolution, reflection padding, instance normalisation,
//! nearest ×2 upsampling, bias + ReLU, a 2×2 max pool whose gradient is right, and leaky ReLU.
//! On the CPU in f32 all but the last are the kernels of [`super::ops`]; elsewhere they are
//! composed of candle's differentiable primitives.

use candle_core::{D, Device, Result, Tensor};

use super::ops;

/// Pads H and W by `p` on each side by mirroring without repeating the edge (ONNX `Pad` mode
/// `reflect`, PyTorch `ReflectionPad2d`). Needs `p` smaller than both sides.
pub fn reflect_pad(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    if ops::applies(x) {
        return ops::pad::reflect_pad(x, p);
    }
    let (_, _, h, w) = x.dims4()?;
    let x = x.index_select(&reflect_index(h, p, x.device())?, 2)?;
    x.index_select(&reflect_index(w, p, x.device())?, 3)
}

fn reflect_index(n: usize, p: usize, device: &Device) -> Result<Tensor> {
    if p >= n {
        candle_core::bail!("reflection padding of {p} needs a side longer than {p}, got {n}");
    }
    let n = n as i64;
    let idx: Vec<u32> = (-(p as i64)..n + p as i64)
        .map(|i| {
            let r = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            r as u32
        })
        .collect();
    Tensor::new(idx, device)
}

/// Epsilon of every instance norm, as PyTorch's and ONNX's default.
pub const NORM_EPS: f64 = 1e-5;

/// Instance normalisation over H×W per sample and channel (biased variance), then the optional
/// per-channel scale and shift (each of shape `(C,)`).
pub fn instance_norm(x: &Tensor, affine: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
    if ops::applies(x) && affine.is_none_or(|(g, b)| ops::applies(g) && ops::applies(b)) {
        return ops::norm::instance_norm(x, affine, NORM_EPS);
    }
    let (n, c, h, w) = x.dims4()?;
    let flat = x.reshape((n, c, h * w))?;
    let centered = flat.broadcast_sub(&flat.mean_keepdim(D::Minus1)?)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centered
        .broadcast_div(&(var + NORM_EPS)?.sqrt()?)?
        .reshape((n, c, h, w))?;
    match affine {
        Some((gamma, beta)) => y
            .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
            .broadcast_add(&beta.reshape((1, c, 1, 1))?),
        None => Ok(y),
    }
}

/// Leaky ReLU with negative slope `alpha` (< 1).
pub fn leaky_relu(x: &Tensor, alpha: f64) -> Result<Tensor> {
    x.maximum(&(x * alpha)?)
}

/// 2×2 max pooling with stride 2 (an odd last row or column is dropped, as PyTorch's floor
/// mode does), as reshapes and max reductions: candle's own `max_pool2d` returns gradients of the
/// wrong size.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    if ops::applies(x) {
        return ops::pool::max_pool2(x);
    }
    let (n, c, h, w) = x.dims4()?;
    let (h2, w2) = (h / 2, w / 2);
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.narrow(2, 0, 2 * h2)?.narrow(3, 0, 2 * w2)?
    } else {
        x.clone()
    };
    x.reshape((n, c, h2, 2, w2, 2))?.max(5)?.max(3)
}

/// 2-D convolution (groups 1, dilation 1, zero padding) of an NCHW batch with kernel
/// `(O, C, k, k)`.
///
/// On the CPU in f32 this is [`ops::conv`]: tiled matrix products on all cores, gradients only
/// for inputs that need one (candle's CPU convolution gathers its im2col matrix element by
/// element and computes the kernel gradient as a convolution with the whole output gradient as
/// "kernel"). Other devices use candle's `conv2d`.
pub fn conv2d(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    if ops::applies(x) && ops::applies(w) {
        ops::conv::conv2d(x, w, padding, stride)
    } else {
        x.conv2d(w, padding, stride, 1, 1)
    }
}

/// A convolution kernel that never changes (a loss network's frozen weights, no gradient),
/// with what [`ops::conv`] can compute from it once rather than on every call
/// ([`ops::conv::Prepared`]: its Winograd transforms).
pub struct FrozenKernel {
    w: Tensor,
    prepared: Option<std::sync::Arc<ops::conv::Prepared>>,
}

impl FrozenKernel {
    /// Prepares kernel `w` `(O, C, k, k)` (on the CPU in f32; other kernels are kept as they
    /// are).
    pub fn new(w: Tensor) -> Result<Self> {
        let w = w.detach();
        let prepared = if ops::applies(&w) {
            Some(ops::conv::prepare(&w.contiguous()?)?)
        } else {
            None
        };
        Ok(FrozenKernel { w, prepared })
    }

    /// [`conv2d`] of `x` with this kernel.
    pub fn conv2d(&self, x: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
        match &self.prepared {
            Some(p) if ops::applies(x) => {
                ops::conv::conv2d_prepared(x, &self.w, p, padding, stride)
            }
            _ => conv2d(x, &self.w, padding, stride),
        }
    }
}

/// `relu(x + b)` of an NCHW batch and a per-channel bias `b` of shape `(C,)`.
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    if ops::applies(x) && ops::applies(b) {
        ops::act::bias_relu(x, b)
    } else {
        x.broadcast_add(&b.reshape((1, (), 1, 1))?)?.relu()
    }
}

/// Nearest-neighbour ×2 upsampling of H and W.
pub fn upsample_nearest2(x: &Tensor) -> Result<Tensor> {
    if ops::applies(x) {
        ops::upsample::upsample_nearest2(x)
    } else {
        let (_, _, h, w) = x.dims4()?;
        x.upsample_nearest2d(2 * h, 2 * w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_mirrors_without_the_edge() {
        let x = Tensor::new(&[[[[1f32, 2., 3.]]]], &Device::Cpu).unwrap();
        let x = x.broadcast_as((1, 1, 3, 3)).unwrap().contiguous().unwrap();
        let y = reflect_pad(&x, 2).unwrap();
        assert_eq!(y.dims(), &[1, 1, 7, 7]);
        let row: Vec<f32> = y
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(row, vec![3., 2., 1., 2., 3., 2., 1.]);
        assert!(reflect_pad(&x, 3).is_err());
    }

    #[test]
    fn instance_norm_gives_zero_mean_unit_variance_per_channel() {
        let x = Tensor::arange(0f32, 32., &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 4, 4))
            .unwrap()
            .sqr()
            .unwrap();
        let y = instance_norm(&x, None).unwrap().flatten_from(2).unwrap();
        let mean: Vec<Vec<f32>> = y.mean(2).unwrap().to_vec2().unwrap();
        let var: Vec<Vec<f32>> = y.sqr().unwrap().mean(2).unwrap().to_vec2().unwrap();
        for c in 0..2 {
            assert!(mean[0][c].abs() < 1e-5);
            assert!((var[0][c] - 1.0).abs() < 1e-3);
        }
    }

    #[test]
    fn max_pool_gradient_goes_to_the_maximum_only() {
        let v = candle_core::Var::new(&[[[[1f32, 5.], [2., 3.]]]], &Device::Cpu).unwrap();
        let y = max_pool2(v.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![5.]);
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(&v)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(g, vec![0., 1., 0., 0.]);
        let odd = Tensor::arange(0f32, 15., &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 3, 5))
            .unwrap();
        let y: Vec<f32> = max_pool2(&odd)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(y, vec![6., 8.]);
    }

    #[test]
    fn unfold_conv_matches_candle_conv_and_its_gradients() {
        let dev = Device::Cpu;
        for (k, p, s, h) in [
            (3, 1, 1, 12),
            (9, 4, 1, 16),
            (3, 0, 1, 9),
            (3, 1, 2, 12),
            (4, 1, 2, 13),
            (4, 1, 1, 10),
        ] {
            // Candle's own backward (the reference) fails for strided convs whose H and W need
            // different output paddings, so strided cases are square.
            let wd = if s == 1 { h + 3 } else { h };
            let x = candle_core::Var::from_tensor(
                &Tensor::randn(0f32, 1., (2, 3, h, wd), &dev).unwrap(),
            )
            .unwrap();
            let w = candle_core::Var::from_tensor(
                &Tensor::randn(0f32, 0.2, (5, 3, k, k), &dev).unwrap(),
            )
            .unwrap();
            let target = Tensor::randn(
                0f32,
                1.,
                x.as_tensor().conv2d(&w, p, s, 1, 1).unwrap().dims(),
                &dev,
            )
            .unwrap();
            let run = |fast: bool| {
                let y = if fast {
                    conv2d(&x, &w, p, s)
                } else {
                    x.conv2d(&w, p, s, 1, 1)
                }
                .unwrap();
                let loss = (y.clone() * &target).unwrap().sum_all().unwrap();
                let g = loss.backward().unwrap();
                (y, g.get(&x).unwrap().clone(), g.get(&w).unwrap().clone())
            };
            let (a, b) = (run(true), run(false));
            for (name, u, v) in [
                ("output", &a.0, &b.0),
                ("input grad", &a.1, &b.1),
                ("kernel grad", &a.2, &b.2),
            ] {
                let diff = (u - v)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-3, "k {k} p {p} s {s}: {name} differs by {diff}");
            }
        }
    }
}
