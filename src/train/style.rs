//! Fast neural style (Johnson et al. 2016): a feed-forward net trained with a perceptual loss —
//! VGG16 content loss on one layer, Gram-matrix style loss on relu1_2 … relu4_3, and total
//! variation — with Adam.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::data::{ImageSet, center_square, load_rgb, save_grid, to_tensor};
use super::driver::{Saved, Scalars, Schedule, Task};
use super::losses::{gram, l1, mse, psnr, scalar, ssim, to_unit, total_variation};
use super::nets::{Arch, Net};
use super::params::Params;
use super::rng::Rng;
use super::run::LoadedCheckpoint;
use super::vgg::{FEATURE_LAYERS, Vgg16};

/// Everything a style run needs; stored in the run's `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StyleConfig {
    /// Folders (or files) of content images.
    pub content: Vec<PathBuf>,
    /// The style image.
    pub style: PathBuf,
    /// Held-out images for evaluation and sample grids (default: the first content images).
    #[serde(default)]
    pub eval: Vec<PathBuf>,
    /// The net to train (a Johnson net).
    pub arch: Arch,
    /// Side of the square training crops.
    pub size: u32,
    /// Shorter side the style image is scaled to.
    pub style_size: u32,
    pub batch: usize,
    pub lr: f64,
    pub content_weight: f64,
    pub style_weight: f64,
    pub tv_weight: f64,
    /// Index into relu1_2, relu2_2, relu3_3, relu4_3 of the content layer (1: relu2_2).
    pub content_layer: usize,
    pub seed: u64,
    /// VGG16 weights (safetensors).
    pub vgg: PathBuf,
    /// Distil this trained style run's net instead of training from the perceptual loss: the
    /// loss is the mean squared difference to the teacher's output (the perceptual losses are
    /// still evaluated, to compare the two).
    #[serde(default)]
    pub teacher: Option<PathBuf>,
    pub schedule: Schedule,
}

/// Net parameters live under this prefix.
pub const NET_PREFIX: &str = "net.";

/// A style run in progress.
pub struct StyleTask {
    config: StyleConfig,
    params: Params,
    net: Net,
    adam: Adam,
    vgg: Vgg16,
    style_grams: Vec<Tensor>,
    content: ImageSet,
    eval: Tensor,
    teacher: Option<Net>,
    rng: Rng,
    device: Device,
}

impl StyleTask {
    /// Sets up a run that trains on `device`.
    pub fn new(config: StyleConfig, device: &Device) -> anyhow::Result<Self> {
        anyhow::ensure!(
            matches!(config.arch, Arch::Johnson { .. }),
            "style training uses a Johnson net, not {}",
            config.arch.describe()
        );
        super::data::check_crop_size(config.size)?;
        anyhow::ensure!(
            config.content_layer < FEATURE_LAYERS.len(),
            "content layer index {} is not one of 0..=3",
            config.content_layer
        );
        anyhow::ensure!(config.batch > 0, "--batch must be at least 1");
        let content = ImageSet::load(&config.content, config.size)?;
        let mut rng = Rng::new(config.seed);
        let mut params = Params::on(device);
        let net = Net::new(config.arch, NET_PREFIX, &mut params, &mut rng)?;
        let adam = Adam::new(&params, NET_PREFIX, config.lr, 0.9, 0.999)?;
        let vgg = Vgg16::load(&config.vgg, device)?;
        let style = load_rgb(&config.style)?;
        let style = super::data::fit_short_side(&style, config.style_size);
        let style = to_tensor(std::slice::from_ref(&style))?.to_device(device)?;
        let style_grams = vgg
            .features(&to_unit(&style)?, FEATURE_LAYERS.len())?
            .iter()
            .map(gram)
            .collect::<candle_core::Result<_>>()?;
        let eval = if config.eval.is_empty() {
            content.fixed(4)?
        } else {
            let files = super::data::image_files(&config.eval)?;
            let imgs = files
                .iter()
                .take(4)
                .map(|f| load_rgb(f).map(|i| center_square(&i, config.size)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            to_tensor(&imgs)?
        }
        .to_device(device)?;
        let teacher = match &config.teacher {
            Some(path) => {
                let (teacher_config, net) =
                    super::load_generator_on(path, super::Direction::AToB, device)?;
                anyhow::ensure!(
                    matches!(teacher_config, super::RunConfig::Style(_)),
                    "teacher {} is not a style run",
                    path.display()
                );
                Some(net)
            }
            None => None,
        };
        Ok(StyleTask {
            config,
            params,
            net,
            adam,
            vgg,
            style_grams,
            content,
            eval,
            teacher,
            rng,
            device: device.clone(),
        })
    }

    /// Content, style and TV losses (weighted) of `x` → `y`.
    fn losses(&self, x: &Tensor, y: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let c = &self.config;
        let fy = self.vgg.features(&to_unit(y)?, FEATURE_LAYERS.len())?;
        let fx = self.vgg.features(&to_unit(x)?, c.content_layer + 1)?;
        let content =
            (mse(&fy[c.content_layer], &fx[c.content_layer].detach())? * c.content_weight)?;
        let mut style = Tensor::zeros((), candle_core::DType::F32, x.device())?;
        for (f, target) in fy.iter().zip(&self.style_grams) {
            style = (style + mse(&gram(f)?, target)?)?;
        }
        let style = (style * c.style_weight)?;
        let tv = (total_variation(&to_unit(y)?)? * c.tv_weight)?;
        Ok((content, style, tv))
    }

    /// The trained net.
    pub fn net(&self) -> &Net {
        &self.net
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn content_images(&self) -> usize {
        self.content.len()
    }
}

impl Task for StyleTask {
    fn step(&mut self, _step: u64) -> anyhow::Result<Scalars> {
        let x = self
            .content
            .batch(self.config.batch, &mut self.rng)?
            .to_device(&self.device)?;
        let y = self.net.forward(&x)?;
        if let Some(teacher) = &self.teacher {
            let target = teacher.forward(&x)?.detach();
            let loss = mse(&to_unit(&y)?, &to_unit(&target)?)?;
            self.adam.step(&loss.backward()?)?;
            return Ok(Scalars::from([("loss_distill".into(), scalar(&loss)?)]));
        }
        let (content, style, tv) = self.losses(&x, &y)?;
        let total = ((&content + &style)? + &tv)?;
        let grads = total.backward()?;
        self.adam.step(&grads)?;
        Ok(Scalars::from([
            ("loss".into(), scalar(&total)?),
            ("loss_content".into(), scalar(&content)?),
            ("loss_style".into(), scalar(&style)?),
            ("loss_tv".into(), scalar(&tv)?),
        ]))
    }

    fn evaluate(&mut self) -> anyhow::Result<Scalars> {
        let x = &self.eval;
        let y = self.net.forward(x)?.detach();
        let (content, style, _) = self.losses(x, &y)?;
        let (x01, y01) = (to_unit(x)?, to_unit(&y)?);
        let mut metrics = Scalars::from([
            ("eval_content".into(), scalar(&content)?),
            ("eval_style".into(), scalar(&style)?),
            ("l1_content_vs_styled".into(), scalar(&l1(&x01, &y01)?)?),
            ("psnr_content_vs_styled".into(), psnr(&x01, &y01)? as f64),
            ("ssim_content_vs_styled".into(), ssim(&x01, &y01)? as f64),
        ]);
        if let Some(teacher) = &self.teacher {
            let t01 = to_unit(&teacher.forward(x)?.detach())?;
            metrics.insert("l1_vs_teacher".into(), scalar(&l1(&t01, &y01)?)?);
            metrics.insert("psnr_vs_teacher".into(), psnr(&t01, &y01)? as f64);
        }
        Ok(metrics)
    }

    fn sample(&mut self, path: &Path) -> anyhow::Result<()> {
        let y = self.net.forward(&self.eval)?;
        save_grid(&[&self.eval, &y], path)
    }

    fn checkpoint(&self) -> Saved {
        (
            self.params.tensors(),
            self.adam.state(),
            HashMap::from([("adam_t".to_string(), self.adam.t)]),
        )
    }

    fn restore(&mut self, ckpt: &LoadedCheckpoint) -> anyhow::Result<()> {
        self.params.assign(&ckpt.weights)?;
        let t = ckpt
            .state
            .extra
            .get("adam_t")
            .copied()
            .unwrap_or(ckpt.state.step);
        self.adam.restore(&ckpt.optimizer, t)
    }

    fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}
