//! CycleGAN (Zhu et al. 2017), the paper's recipe: two ResNet generators and two 70×70 PatchGAN
//! discriminators, least-squares GAN loss, cycle loss λ = 10, identity loss 0.5·λ, a 50-image
//! history pool per discriminator, Adam (lr 2e-4, β1 0.5) held constant and then decayed
//! linearly to 0, N(0, 0.02) initialisation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::data::{ImageSet, save_grid};
use super::driver::{Saved, Scalars, Schedule, Task};
use super::losses::{l1, psnr, scalar, ssim, to_unit};
use super::nets::{Arch, Net};
use super::params::Params;
use super::rng::Rng;
use super::run::LoadedCheckpoint;

/// Everything a CycleGAN run needs; stored in the run's `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CycleConfig {
    /// Images of domain A (folders or files).
    pub a: Vec<PathBuf>,
    /// Images of domain B.
    pub b: Vec<PathBuf>,
    pub generator: Arch,
    pub discriminator: Arch,
    /// Side of the square training crops.
    pub size: u32,
    pub batch: usize,
    pub lr: f64,
    pub beta1: f64,
    /// λ of the cycle loss; the identity loss weighs `identity · λ`.
    pub lambda_cycle: f64,
    pub identity: f64,
    /// Images kept by each discriminator's history pool.
    pub pool_size: usize,
    /// The learning rate decays linearly to 0 from this step to the last.
    pub decay_from: u64,
    pub seed: u64,
    pub schedule: Schedule,
}

/// A history of generated images (Shrivastava et al. 2017): once full, each query returns the
/// new image or, half the time, a stored one that the new image replaces.
pub struct ImagePool {
    size: usize,
    images: Vec<Tensor>,
}

impl ImagePool {
    pub fn new(size: usize) -> Self {
        ImagePool {
            size,
            images: Vec::new(),
        }
    }

    /// Images to show the discriminator in place of the batch `fake`.
    pub fn query(&mut self, fake: &Tensor, rng: &mut Rng) -> candle_core::Result<Tensor> {
        if self.size == 0 {
            return Ok(fake.clone());
        }
        let mut out = Vec::new();
        for i in 0..fake.dim(0)? {
            let img = fake.narrow(0, i, 1)?.detach();
            if self.images.len() < self.size {
                self.images.push(img.clone());
                out.push(img);
            } else if rng.uniform() < 0.5 {
                let j = rng.below(self.size);
                out.push(std::mem::replace(&mut self.images[j], img));
            } else {
                out.push(img);
            }
        }
        Tensor::cat(&out, 0)
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// Learning-rate factor at `step`: 1 until `decay_from`, then linearly down to 0 after `steps`.
pub fn lr_factor(step: u64, decay_from: u64, steps: u64) -> f64 {
    if step <= decay_from || steps <= decay_from {
        return 1.0;
    }
    1.0 - (step - decay_from) as f64 / (steps - decay_from + 1) as f64
}

/// A CycleGAN run in progress.
pub struct CycleTask {
    config: CycleConfig,
    params: Params,
    g_ab: Net,
    g_ba: Net,
    d_a: Net,
    d_b: Net,
    opt_g: Adam,
    opt_d: Adam,
    pool_a: ImagePool,
    pool_b: ImagePool,
    set_a: ImageSet,
    set_b: ImageSet,
    eval_a: Tensor,
    eval_b: Tensor,
    rng: Rng,
    device: Device,
}

/// Parameter prefixes: generators A→B and B→A, discriminators of A and B.
pub const G_AB: &str = "g_ab.";
pub const G_BA: &str = "g_ba.";

fn lsgan(pred: &Tensor, real: bool) -> candle_core::Result<Tensor> {
    let target = if real { 1.0 } else { 0.0 };
    (pred - target)?.sqr()?.mean_all()
}

/// Fraction of patches the discriminator calls right (real > 0.5, fake < 0.5).
fn accuracy(pred: &Tensor, real: bool) -> candle_core::Result<f64> {
    let right = if real { pred.gt(0.5)? } else { pred.lt(0.5)? };
    Ok(right.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()? as f64)
}

impl CycleTask {
    /// Sets up a run that trains on `device`.
    pub fn new(config: CycleConfig, device: &Device) -> anyhow::Result<Self> {
        anyhow::ensure!(
            matches!(config.generator, Arch::ResnetGenerator { .. }),
            "the generator must be a ResNet generator"
        );
        anyhow::ensure!(
            matches!(config.discriminator, Arch::PatchGan { .. }),
            "the discriminator must be a PatchGAN"
        );
        super::data::check_crop_size(config.size)?;
        anyhow::ensure!(config.batch > 0, "--batch must be at least 1");
        let mut rng = Rng::new(config.seed);
        let mut params = Params::on(device);
        let g_ab = Net::new(config.generator, G_AB, &mut params, &mut rng)?;
        let g_ba = Net::new(config.generator, G_BA, &mut params, &mut rng)?;
        let d_a = Net::new(config.discriminator, "d_a.", &mut params, &mut rng)?;
        let d_b = Net::new(config.discriminator, "d_b.", &mut params, &mut rng)?;
        let opt_g = Adam::new(&params, "g_", config.lr, config.beta1, 0.999)?;
        let opt_d = Adam::new(&params, "d_", config.lr, config.beta1, 0.999)?;
        let set_a = ImageSet::load(&config.a, config.size)?;
        let set_b = ImageSet::load(&config.b, config.size)?;
        let eval_a = set_a.fixed(3)?.to_device(device)?;
        let eval_b = set_b.fixed(3)?.to_device(device)?;
        Ok(CycleTask {
            pool_a: ImagePool::new(config.pool_size),
            pool_b: ImagePool::new(config.pool_size),
            config,
            params,
            g_ab,
            g_ba,
            d_a,
            d_b,
            opt_g,
            opt_d,
            set_a,
            set_b,
            eval_a,
            eval_b,
            rng,
            device: device.clone(),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }
}

impl Task for CycleTask {
    fn step(&mut self, step: u64) -> anyhow::Result<Scalars> {
        let c = &self.config;
        let lr = c.lr * lr_factor(step, c.decay_from, c.schedule.steps);
        self.opt_g.lr = lr;
        self.opt_d.lr = lr;
        let a = self
            .set_a
            .batch(c.batch, &mut self.rng)?
            .to_device(&self.device)?;
        let b = self
            .set_b
            .batch(c.batch, &mut self.rng)?
            .to_device(&self.device)?;

        // Generators: fool the discriminators, reconstruct through the cycle, keep the other
        // domain's images as they are.
        let fake_b = self.g_ab.forward(&a)?;
        let fake_a = self.g_ba.forward(&b)?;
        let rec_a = self.g_ba.forward(&fake_b)?;
        let rec_b = self.g_ab.forward(&fake_a)?;
        let gan = (lsgan(&self.d_b.forward(&fake_b)?, true)?
            + lsgan(&self.d_a.forward(&fake_a)?, true)?)?;
        let cycle = ((l1(&rec_a, &a)? + l1(&rec_b, &b)?)? * c.lambda_cycle)?;
        let mut loss_g = (&gan + &cycle)?;
        let mut idt = Tensor::zeros((), DType::F32, a.device())?;
        if c.identity > 0.0 {
            let idt_b = self.g_ab.forward(&b)?;
            let idt_a = self.g_ba.forward(&a)?;
            idt = ((l1(&idt_b, &b)? + l1(&idt_a, &a)?)? * (c.identity * c.lambda_cycle))?;
            loss_g = (loss_g + &idt)?;
        }
        let grads = loss_g.backward()?;
        self.opt_g.step(&grads)?;

        // Discriminators: real vs generated (from the history pools).
        let (fake_a, fake_b) = (fake_a.detach(), fake_b.detach());
        let pooled_b = self.pool_b.query(&fake_b, &mut self.rng)?;
        let pooled_a = self.pool_a.query(&fake_a, &mut self.rng)?;
        let real_b = self.d_b.forward(&b)?;
        let real_a = self.d_a.forward(&a)?;
        let loss_d_b =
            ((lsgan(&real_b, true)? + lsgan(&self.d_b.forward(&pooled_b)?, false)?)? * 0.5)?;
        let loss_d_a =
            ((lsgan(&real_a, true)? + lsgan(&self.d_a.forward(&pooled_a)?, false)?)? * 0.5)?;
        let loss_d = (&loss_d_a + &loss_d_b)?;
        let grads = loss_d.backward()?;
        self.opt_d.step(&grads)?;

        Ok(Scalars::from([
            ("loss_g_gan".into(), scalar(&gan)?),
            ("loss_g_cycle".into(), scalar(&cycle)?),
            ("loss_g_identity".into(), scalar(&idt)?),
            ("loss_d_a".into(), scalar(&loss_d_a)?),
            ("loss_d_b".into(), scalar(&loss_d_b)?),
            ("lr".into(), lr),
        ]))
    }

    fn evaluate(&mut self) -> anyhow::Result<Scalars> {
        let (a, b) = (&self.eval_a, &self.eval_b);
        let fake_b = self.g_ab.forward(a)?.detach();
        let fake_a = self.g_ba.forward(b)?.detach();
        let cyc_a = to_unit(&self.g_ba.forward(&fake_b)?.detach())?;
        let cyc_b = to_unit(&self.g_ab.forward(&fake_a)?.detach())?;
        let (a01, b01) = (to_unit(a)?, to_unit(b)?);
        Ok(Scalars::from([
            ("l1_a_vs_cycle".into(), scalar(&l1(&a01, &cyc_a)?)?),
            ("l1_b_vs_cycle".into(), scalar(&l1(&b01, &cyc_b)?)?),
            ("psnr_a_vs_cycle".into(), psnr(&a01, &cyc_a)? as f64),
            ("psnr_b_vs_cycle".into(), psnr(&b01, &cyc_b)? as f64),
            ("ssim_a_vs_cycle".into(), ssim(&a01, &cyc_a)? as f64),
            ("ssim_b_vs_cycle".into(), ssim(&b01, &cyc_b)? as f64),
            (
                "d_a_acc_real".into(),
                accuracy(&self.d_a.forward(a)?, true)?,
            ),
            (
                "d_a_acc_fake".into(),
                accuracy(&self.d_a.forward(&fake_a)?, false)?,
            ),
            (
                "d_b_acc_real".into(),
                accuracy(&self.d_b.forward(b)?, true)?,
            ),
            (
                "d_b_acc_fake".into(),
                accuracy(&self.d_b.forward(&fake_b)?, false)?,
            ),
        ]))
    }

    fn sample(&mut self, path: &Path) -> anyhow::Result<()> {
        let (a, b) = (&self.eval_a, &self.eval_b);
        let fake_b = self.g_ab.forward(a)?;
        let fake_a = self.g_ba.forward(b)?;
        let cyc_a = self.g_ba.forward(&fake_b)?;
        let cyc_b = self.g_ab.forward(&fake_a)?;
        save_grid(&[a, &fake_b, &cyc_a, b, &fake_a, &cyc_b], path)
    }

    fn checkpoint(&self) -> Saved {
        let mut optim = HashMap::new();
        for (k, v) in self.opt_g.state() {
            optim.insert(format!("opt_g.{k}"), v);
        }
        for (k, v) in self.opt_d.state() {
            optim.insert(format!("opt_d.{k}"), v);
        }
        for (name, pool) in [("a", &self.pool_a), ("b", &self.pool_b)] {
            for (i, img) in pool.images.iter().enumerate() {
                optim.insert(format!("pool_{name}.{i}"), img.clone());
            }
        }
        let extra = HashMap::from([
            ("opt_g_t".to_string(), self.opt_g.t),
            ("opt_d_t".to_string(), self.opt_d.t),
            ("pool_a".to_string(), self.pool_a.len() as u64),
            ("pool_b".to_string(), self.pool_b.len() as u64),
        ]);
        (self.params.tensors(), optim, extra)
    }

    fn restore(&mut self, ckpt: &LoadedCheckpoint) -> anyhow::Result<()> {
        self.params.assign(&ckpt.weights)?;
        let part = |prefix: &str| -> HashMap<String, Tensor> {
            ckpt.optimizer
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
                .collect()
        };
        let extra = |k: &str| ckpt.state.extra.get(k).copied().unwrap_or(0);
        self.opt_g.restore(&part("opt_g."), extra("opt_g_t"))?;
        self.opt_d.restore(&part("opt_d."), extra("opt_d_t"))?;
        for (name, pool) in [("a", &mut self.pool_a), ("b", &mut self.pool_b)] {
            pool.images = (0..extra(&format!("pool_{name}")))
                .map(|i| {
                    let img = ckpt
                        .optimizer
                        .get(&format!("pool_{name}.{i}"))
                        .ok_or_else(|| anyhow::anyhow!("checkpoint lacks pool image {name}.{i}"))?;
                    Ok(img.to_device(&self.device)?)
                })
                .collect::<anyhow::Result<_>>()?;
        }
        Ok(())
    }

    fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_is_constant_then_decays_linearly_to_zero() {
        assert_eq!(lr_factor(1, 100, 200), 1.0);
        assert_eq!(lr_factor(100, 100, 200), 1.0);
        assert!((lr_factor(150, 100, 200) - (1.0 - 50.0 / 101.0)).abs() < 1e-12);
        assert!(lr_factor(200, 100, 200) > 0.0 && lr_factor(200, 100, 200) < 0.01);
    }

    #[test]
    fn pool_fills_then_swaps_about_half_the_time() {
        let dev = candle_core::Device::Cpu;
        let mut pool = ImagePool::new(50);
        let mut rng = Rng::new(5);
        for i in 0..50 {
            let img = Tensor::full(i as f32, (1, 1, 1, 1), &dev).unwrap();
            let got = pool.query(&img, &mut rng).unwrap();
            assert_eq!(
                got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                vec![i as f32]
            );
        }
        assert_eq!(pool.len(), 50);
        let mut old = 0;
        for i in 50..1050 {
            let img = Tensor::full(i as f32, (1, 1, 1, 1), &dev).unwrap();
            let got = pool
                .query(&img, &mut rng)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[0];
            if got != i as f32 {
                assert!(got < i as f32, "a stored image comes from the past");
                old += 1;
            }
        }
        assert!((420..=580).contains(&old), "{old} of 1000 from the pool");
        assert_eq!(pool.len(), 50);
    }
}
