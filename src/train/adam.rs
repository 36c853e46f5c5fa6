//! Adam (Kingma & Ba) with its moments kept as tensors that can be saved and restored: candle's
//! own optimiser keeps them private, and a resumed run must continue exactly.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

use super::params::Params;

/// Adam over the parameters under one prefix.
pub struct Adam {
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken.
    pub t: u64,
    slots: Vec<Slot>,
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

impl Adam {
    pub fn new(params: &Params, prefix: &str, lr: f64, beta1: f64, beta2: f64) -> Result<Self> {
        Self::new_filtered(params, prefix, lr, beta1, beta2, |_| true)
    }

    /// Adam over the parameters under `prefix` whose names `keep` accepts; the others stay.
    pub fn new_filtered(
        params: &Params,
        prefix: &str,
        lr: f64,
        beta1: f64,
        beta2: f64,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let slots = params
            .vars_with_prefix(prefix)
            .filter(|(name, _)| keep(name))
            .map(|(name, var)| {
                Ok(Slot {
                    name: name.to_string(),
                    var: var.clone(),
                    m: var.zeros_like()?,
                    v: var.zeros_like()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Adam {
            lr,
            beta1,
            beta2,
            eps: 1e-8,
            t: 0,
            slots,
        })
    }

    /// One update from the gradients in `grads`; parameters without a gradient stay.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            s.m = ((&s.m * b1)? + (g * (1.0 - b1))?)?;
            s.v = ((&s.v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&s.m / c1)? / ((&s.v / c2)?.sqrt()? + self.eps)?)?;
            s.var.set(&(s.var.as_tensor() - (update * self.lr)?)?)?;
        }
        Ok(())
    }

    /// The moments, as `NAME.m` / `NAME.v`.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for s in &self.slots {
            out.insert(format!("{}.m", s.name), s.m.clone());
            out.insert(format!("{}.v", s.name), s.v.clone());
        }
        out
    }

    /// Restores moments saved by [`Adam::state`] (on any device) and the step count.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, t: u64) -> anyhow::Result<()> {
        for s in &mut self.slots {
            for (suffix, slot) in [("m", &mut s.m), ("v", &mut s.v)] {
                let key = format!("{}.{suffix}", s.name);
                let saved = state
                    .get(&key)
                    .ok_or_else(|| anyhow::anyhow!("optimizer state has no '{key}'"))?;
                anyhow::ensure!(
                    saved.dims() == slot.dims(),
                    "optimizer state '{key}' has the wrong shape"
                );
                *slot = saved.to_device(s.var.device())?;
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        let mut params = Params::default();
        let w = params
            .add("w", Tensor::new(&[1f32, -2.0, 3.0], &Device::Cpu).unwrap())
            .unwrap();
        let mut adam = Adam::new(&params, "", 0.1, 0.9, 0.999).unwrap();
        // d/dw of sum(w²) = 2w: the first bias-corrected step is lr·sign(g).
        let grads = w.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        adam.step(&grads).unwrap();
        let after: Vec<f32> = params.get("w").unwrap().to_vec1().unwrap();
        for (a, e) in after.iter().zip([0.9f32, -1.9, 2.9]) {
            assert!((a - e).abs() < 1e-5, "{after:?}");
        }
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut params = Params::default();
        let w = params
            .add("w", Tensor::new(&[5f32, -3.0], &Device::Cpu).unwrap())
            .unwrap();
        let mut adam = Adam::new(&params, "", 0.1, 0.9, 0.999).unwrap();
        for _ in 0..500 {
            let grads = (&w - 1.0)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            adam.step(&grads).unwrap();
        }
        let after: Vec<f32> = params.get("w").unwrap().to_vec1().unwrap();
        assert!(after.iter().all(|v| (v - 1.0).abs() < 1e-2), "{after:?}");
    }
}
