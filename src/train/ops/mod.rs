//! CPU kernels of the trainer's layers as candle custom ops with hand-written backward passes:
//! convolution ([`conv`]), instance normalisation ([`norm`]), reflection padding ([`pad`]),
//! nearest ×2 upsampling ([`upsample`]), 2×2 max pooling ([`pool`]) and bias + ReLU ([`act`]).
//!
//! Candle composes these from generic operations that run on one core, allocate a tensor per
//! step and (for the convolution) compute gradients nobody asked for; a training step of the
//! Johnson net with its VGG16 loss spent most of its time there (docs/trainer-speed.md). Each
//! kernel here works on contiguous f32 NCHW data, splits its work over the cores with rayon and
//! computes only the gradients of inputs that need one. [`super::layers`] calls them for f32
//! tensors on the CPU; other devices keep candle's own operations.

pub mod act;
pub mod conv;
pub mod direct;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod upsample;
pub mod winograd;

use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Storage, Tensor};

/// Whether the fast CPU kernels apply to `t`.
pub fn applies(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The contiguous f32 data of a custom op's CPU input.
fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what}: input must be contiguous");
    };
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// Runs `f` on the contiguous f32 data of a CPU tensor (copied first only if not contiguous).
fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(s) = &*storage else {
        candle_core::bail!("expected a CPU tensor");
    };
    f(slice(s, layout, "tensor")?)
}

/// A CPU tensor that owns `data`.
fn tensor<S: Into<Shape>>(data: Vec<f32>, shape: S) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Whether a gradient flows into `t` (a variable or computed from one).
fn wants_grad(t: &Tensor) -> bool {
    t.track_op()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Gradient checks shared by the ops' tests.

    use candle_core::{DType, Device, Tensor, Var};

    /// Random f64 values in [-1, 1) from a fixed seed, as a tensor of `dims`.
    pub fn random(dims: &[usize], seed: u64) -> Tensor {
        let mut rng = crate::train::rng::Rng::new(seed);
        let n = dims.iter().product();
        let v: Vec<f64> = (0..n).map(|_| 2.0 * rng.uniform() as f64 - 1.0).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    /// Checks the gradient of `sum(f(inputs) · weights)` with respect to each input, computed by
    /// backpropagation through `f` in f32, against central finite differences of the same sum
    /// computed in f64 by `reference` (an independent implementation of `f`, e.g. candle's own
    /// composed operations). Also checks `f`'s output against `reference`'s.
    pub fn check_gradients(
        inputs: &[Tensor],
        f: impl Fn(&[Tensor]) -> Tensor,
        reference: impl Fn(&[Tensor]) -> Tensor,
        tol: f64,
    ) {
        let out64 = reference(inputs);
        let weights = random(out64.dims(), 7);
        let loss = |xs: &[Tensor]| -> f64 {
            (reference(xs) * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_dtype(DType::F32).unwrap()).unwrap())
            .collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&tensors);
        let diff = (out.to_dtype(DType::F64).unwrap() - &out64)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff < tol, "output differs from the reference by {diff}");
        let grads = (out * weights.to_dtype(DType::F32).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let h = 1e-6;
        for (i, v) in vars.iter().enumerate() {
            let g: Vec<f32> = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("input {i} has no gradient"))
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let x: Vec<f64> = inputs[i].flatten_all().unwrap().to_vec1().unwrap();
            for (j, gj) in g.iter().enumerate() {
                let shifted = |d: f64| {
                    let mut y = x.clone();
                    y[j] += d;
                    let mut xs = inputs.to_vec();
                    xs[i] = Tensor::from_vec(y, inputs[i].dims(), &Device::Cpu).unwrap();
                    loss(&xs)
                };
                let numeric = (shifted(h) - shifted(-h)) / (2.0 * h);
                let err = (*gj as f64 - numeric).abs();
                assert!(
                    err < tol * (1.0 + numeric.abs()),
                    "input {i}, element {j}: gradient {gj} vs finite difference {numeric}"
                );
            }
        }
    }
}
