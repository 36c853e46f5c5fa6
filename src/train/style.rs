//! Fast neural style (Johnson et al. 2016): a feed-forward net trained with a perceptual loss —
//! VGG16 content loss on one layer, Gram-matrix style loss on relu1_2 … relu4_3, and total
//! variation — with Adam; or distilled from a teacher (a trained run, or image-to-image ONNX
//! models such as Magenta's arbitrary-style network baked for a style, [`super::teacher`]).
//!
//! A run may train one net for several styles at once (conditional instance normalisation,
//! Dumoulin et al. 2017): each training image gets a random style, and the net is conditioned
//! on it. A run may also add styles to a trained run (`base`): only the new styles' instance-norm
//! scales and shifts are trained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Deserializer, Serialize};

use super::adam::Adam;
use super::data::{ImageSet, center_square, load_rgb, save_grid, to_images, to_tensor};
use super::driver::{Saved, Scalars, Schedule, Task};
use super::losses::{gram, l1, mse, psnr, scalar, ssim, to_unit, total_variation};
use super::nets::{Arch, Net, one_hot, style_param};
use super::params::Params;
use super::rng::Rng;
use super::run::LoadedCheckpoint;
use super::teacher::OnnxTeacher;
use super::vgg::{FEATURE_LAYERS, Vgg16, VggInput};

/// Everything a style run needs; stored in the run's `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StyleConfig {
    /// Folders (or files) of content images.
    pub content: Vec<PathBuf>,
    /// The style images, one per style the net learns (a single path in older runs).
    #[serde(alias = "style", deserialize_with = "one_or_many")]
    pub styles: Vec<PathBuf>,
    /// A name per style (default: the style images' file stems).
    #[serde(default)]
    pub style_labels: Vec<String>,
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
    /// Distil instead of training from the perceptual loss: a trained style run (folder), or
    /// one image-to-image ONNX model per style. The loss is the L1 distance to the teacher's
    /// output (plus `distill_perceptual` × VGG feature distance); the perceptual losses are
    /// still evaluated, to compare the two.
    #[serde(default, deserialize_with = "one_or_many")]
    pub teacher: Vec<PathBuf>,
    /// Weight of the VGG relu2_2/relu3_3 feature distance to the teacher's output (0: pixels
    /// only).
    #[serde(default)]
    pub distill_perceptual: f64,
    /// Shorter side content images are kept at (0: `size` × 1.15).
    #[serde(default)]
    pub content_size: u32,
    /// Crops are windows of `size` × U(1, `zoom`) scaled to `size` (1: no scaling).
    #[serde(default = "one")]
    pub zoom: f32,
    /// Crops whose grey standard deviation (0..255) is below this are drawn again (flat sky,
    /// lawn or wall crops, where instance norm divides by a tiny deviation).
    #[serde(default)]
    pub min_crop_std: f32,
    /// Weight of the stability loss (0: off): the output for a shifted, noised copy of a crop
    /// must equal the same shift of the output (Gupta et al. 2017, with synthetic motion).
    #[serde(default)]
    pub stability_weight: f64,
    /// A trained style run whose net this run extends by `styles`: only the new styles'
    /// instance-norm parameters are trained.
    #[serde(default)]
    pub base: Option<PathBuf>,
    /// A trained style run with the same net and styles whose weights this run starts from
    /// (fine-tuning, e.g. with a stability loss); the optimiser starts afresh.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// How VGG16's input is normalised (ImageNet statistics, or none for the recipe ablation).
    #[serde(default, skip_serializing_if = "VggInput::is_imagenet")]
    pub vgg_input: VggInput,
    pub schedule: Schedule,
}

fn one() -> f32 {
    1.0
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        None(()),
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::None(_) => Vec::new(),
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

impl StyleConfig {
    /// The style names: `style_labels`, or the style images' file stems.
    pub fn labels(&self) -> Vec<String> {
        if !self.style_labels.is_empty() {
            return self.style_labels.clone();
        }
        self.styles
            .iter()
            .map(|p| {
                p.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// Net parameters live under this prefix.
pub const NET_PREFIX: &str = "net.";

/// Where distillation targets come from.
enum Teacher {
    None,
    /// A trained net (conditioned the same way as the student when it has several styles).
    Net(Net),
    /// One ONNX model per style the run trains.
    Onnx(Vec<OnnxTeacher>),
}

/// A style run in progress.
pub struct StyleTask {
    config: StyleConfig,
    params: Params,
    net: Net,
    adam: Adam,
    vgg: Vgg16,
    /// Style Gram matrices per style this run trains, one per feature layer.
    style_grams: Vec<Vec<Tensor>>,
    content: ImageSet,
    eval: Tensor,
    teacher: Teacher,
    /// Styles of the base run (0 without one): this run trains styles `first_style..`.
    first_style: usize,
    rng: Rng,
    device: Device,
}

/// The base run's configuration and the net it trained.
pub fn load_base(path: &Path, device: &Device) -> anyhow::Result<(StyleConfig, Net)> {
    let (config, net) = super::load_generator_on(path, super::Direction::AToB, device)?;
    match config {
        super::RunConfig::Style(c) => Ok((c, net)),
        _ => anyhow::bail!("{} is not a style run", path.display()),
    }
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
        anyhow::ensure!(!config.styles.is_empty(), "a style run needs a style image");
        anyhow::ensure!(
            config.zoom >= 1.0,
            "--zoom must be at least 1, not {}",
            config.zoom
        );
        let content_size = if config.content_size > 0 {
            anyhow::ensure!(
                config.content_size >= config.size,
                "--content-size {} is smaller than the crops (--size {})",
                config.content_size,
                config.size
            );
            config.content_size
        } else {
            (config.size as f32 * 1.15).round() as u32
        };
        let content = ImageSet::load_at(&config.content, config.size, content_size)?
            .with_zoom(config.zoom)
            .with_min_std(config.min_crop_std);
        let mut rng = Rng::new(config.seed);
        let mut params = Params::on(device);

        let (base, first_style) = match &config.base {
            Some(path) => {
                let (base_config, base_net) = load_base(path, device)?;
                anyhow::ensure!(
                    base_config.arch == config.arch,
                    "the base run's net ({}) differs from --width/--blocks ({})",
                    base_config.arch.describe(),
                    config.arch.describe()
                );
                (Some(base_net), base_config.styles.len())
            }
            None => (None, 0),
        };
        let styles = first_style + config.styles.len();
        let net = Net::with_styles(config.arch, styles, NET_PREFIX, &mut params, &mut rng)?;
        if let Some(path) = &config.init {
            anyhow::ensure!(
                config.base.is_none(),
                "--init and --base exclude each other: --base adds styles to a run, --init \
                 continues all of a run's weights"
            );
            init_from_run(&params, path, &config, styles, device)?;
        }
        let adam = match &base {
            Some(base) => {
                init_from_base(&params, &net, base, first_style)?;
                // Only the new styles' scales and shifts train.
                Adam::new_filtered(&params, NET_PREFIX, config.lr, 0.9, 0.999, |name| {
                    (first_style..styles).any(|s| name.contains(&style_param(s, "")))
                })?
            }
            None => Adam::new(&params, NET_PREFIX, config.lr, 0.9, 0.999)?,
        };
        let vgg = Vgg16::load(&config.vgg, device)?.with_input(config.vgg_input)?;
        let mut style_grams = Vec::new();
        for path in &config.styles {
            let style = load_rgb(path)?;
            let style = super::data::fit_short_side(&style, config.style_size);
            let style = to_tensor(std::slice::from_ref(&style))?.to_device(device)?;
            style_grams.push(
                vgg.features(&to_unit(&style)?, FEATURE_LAYERS.len())?
                    .iter()
                    .map(gram)
                    .collect::<candle_core::Result<_>>()?,
            );
        }
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
        let teacher = Self::load_teacher(&config, styles, device)?;
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
            first_style,
            rng,
            device: device.clone(),
        })
    }

    fn load_teacher(
        config: &StyleConfig,
        styles: usize,
        device: &Device,
    ) -> anyhow::Result<Teacher> {
        let onnx = |p: &PathBuf| p.extension().is_some_and(|e| e == "onnx");
        match config.teacher.as_slice() {
            [] => Ok(Teacher::None),
            [run] if !onnx(run) => {
                anyhow::ensure!(
                    config.base.is_none(),
                    "a run that adds styles to a base run distils ONNX teachers, not a run"
                );
                let (teacher_config, net) = load_base(run, device)?;
                anyhow::ensure!(
                    net.styles == styles,
                    "teacher {} has {} styles, this run {styles}",
                    run.display(),
                    net.styles
                );
                let _ = teacher_config;
                Ok(Teacher::Net(net))
            }
            models => {
                anyhow::ensure!(
                    models.iter().all(onnx),
                    "--teacher takes one trained style run, or one .onnx model per style"
                );
                anyhow::ensure!(
                    models.len() == config.styles.len(),
                    "{} ONNX teachers for {} styles: give one per --style, in the same order",
                    models.len(),
                    config.styles.len()
                );
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                Ok(Teacher::Onnx(
                    models
                        .iter()
                        .map(|m| OnnxTeacher::load(m, cores))
                        .collect::<anyhow::Result<_>>()?,
                ))
            }
        }
    }

    /// Content, style and TV losses (weighted) of `x` → `y`, the style loss against style
    /// `style` of this run (0-based among the styles it trains).
    fn losses(
        &self,
        x: &Tensor,
        y: &Tensor,
        style: usize,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let c = &self.config;
        let fy = self.vgg.features(&to_unit(y)?, FEATURE_LAYERS.len())?;
        let fx = self.vgg.features(&to_unit(x)?, c.content_layer + 1)?;
        let content =
            (mse(&fy[c.content_layer], &fx[c.content_layer].detach())? * c.content_weight)?;
        let mut loss = Tensor::zeros((), candle_core::DType::F32, x.device())?;
        for (f, target) in fy.iter().zip(&self.style_grams[style]) {
            loss = (loss + mse(&gram(f)?, target)?)?;
        }
        let loss = (loss * c.style_weight)?;
        let tv = (total_variation(&to_unit(y)?)? * c.tv_weight)?;
        Ok((content, loss, tv))
    }

    /// The teacher's outputs for `crops`, each in its style (`styles`, indices into the net's
    /// styles), as a batch in [-1, 1].
    fn teach(
        &mut self,
        crops: &[image::RgbImage],
        x: &Tensor,
        styles: &[usize],
    ) -> anyhow::Result<Tensor> {
        Ok(match &mut self.teacher {
            Teacher::None => anyhow::bail!("no teacher"),
            Teacher::Net(net) => net
                .forward_styled(x, &one_hot(styles, net.styles, x.device())?)?
                .detach(),
            Teacher::Onnx(models) => {
                let targets = crops
                    .iter()
                    .zip(styles)
                    .map(|(c, &s)| models[s - self.first_style].style(c))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                to_tensor(&targets)?.to_device(&self.device)?
            }
        })
    }

    /// The distillation loss of `y` against `target` (both in [-1, 1]).
    fn distill_loss(&self, y: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
        let (y01, t01) = (to_unit(y)?, to_unit(target)?);
        let pixels = l1(&y01, &t01)?;
        if self.config.distill_perceptual <= 0.0 {
            return Ok(pixels);
        }
        let fy = self.vgg.features(&y01, 3)?;
        let ft = self.vgg.features(&t01, 3)?;
        let features = (mse(&fy[1], &ft[1].detach())? + mse(&fy[2], &ft[2].detach())?)?;
        pixels + (features * self.config.distill_perceptual)?
    }

    /// The stability loss of a batch `x` (conditioned on `cond`) with output `y`: the window of
    /// `x` shifted by 0–4 pixels each way, with uniform noise of up to ±3 of 255 levels, must give the same window of `y`
    /// (away from the borders, where padding makes outputs differ legitimately).
    fn stability_loss(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        cond: &Tensor,
    ) -> candle_core::Result<Tensor> {
        const SHIFT: usize = 4;
        let (_, _, h, w) = x.dims4()?;
        let (dx, dy) = (self.rng.below(SHIFT + 1), self.rng.below(SHIFT + 1));
        // Side lengths stay multiples of 4 (the net's strides).
        let window = |t: &Tensor| -> candle_core::Result<Tensor> {
            t.narrow(2, dy, h - SHIFT)?
                .narrow(3, dx, w - SHIFT)?
                .contiguous()
        };
        let noise: Vec<f32> = (0..x.elem_count())
            .map(|_| (self.rng.uniform() * 2.0 - 1.0) * (6.0 / 255.0))
            .collect();
        let noise = Tensor::from_vec(noise, x.dims(), x.device())?;
        let moved = self.net.forward_styled(&window(&(x + noise)?)?, cond)?;
        let target = window(y)?.detach();
        let m = 8.min((h - SHIFT) / 4).min((w - SHIFT) / 4);
        let inner = |t: &Tensor| -> candle_core::Result<Tensor> {
            t.narrow(2, m, h - SHIFT - 2 * m)?
                .narrow(3, m, w - SHIFT - 2 * m)
        };
        // Both in [-1, 1]: halve the difference to measure it in [0, 1] units.
        mse(&inner(&moved)?, &inner(&target)?)? * 0.25
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

    /// A random style index for each of `n` images, among the styles this run trains.
    fn draw_styles(&mut self, n: usize) -> Vec<usize> {
        let count = self.config.styles.len();
        (0..n)
            .map(|_| self.first_style + self.rng.below(count))
            .collect()
    }
}

/// Copies the base net's weights into `net` (which has more styles) and starts each new style
/// from the mean of the base's styles.
fn init_from_base(
    params: &Params,
    net: &Net,
    base: &Net,
    first_style: usize,
) -> anyhow::Result<()> {
    let mut values = HashMap::new();
    let base_weights = base_tensors(base);
    for (name, var) in params.vars_with_prefix(NET_PREFIX) {
        let local = &name[NET_PREFIX.len()..];
        let value = match base_weights.get(local) {
            Some(t) => t.clone(),
            None => {
                // `style{s}.{layer}.{weight|bias}` of a new style: the base styles' mean (a
                // single-style base stores `{layer}.{weight|bias}`).
                let (_, rest) = local
                    .split_once('.')
                    .ok_or_else(|| anyhow::anyhow!("unexpected parameter {name}"))?;
                if first_style == 1 {
                    base_weights
                        .get(rest)
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("the base has no {rest}"))?
                } else {
                    base.style_stack(rest)?.mean(0)?
                }
            }
        };
        anyhow::ensure!(
            value.dims() == var.dims(),
            "{name}: shape differs from the base"
        );
        values.insert(name.to_string(), value);
    }
    // A single-style base's norm parameters become style 0 of the conditioned net.
    if first_style == 1 {
        for (name, _) in params.vars_with_prefix(NET_PREFIX) {
            let local = &name[NET_PREFIX.len()..];
            if let Some(rest) = local.strip_prefix(&style_param(0, "")) {
                values.insert(name.to_string(), base_weights[rest].clone());
            }
        }
    }
    let _ = net;
    params.assign(&values)
}

/// Copies the weights of the trained run at `path` into `params`: the same net (width,
/// blocks) with the same number of styles, or an error naming what differs.
fn init_from_run(
    params: &Params,
    path: &Path,
    config: &StyleConfig,
    styles: usize,
    device: &Device,
) -> anyhow::Result<()> {
    let (init_config, init) = load_base(path, device)?;
    anyhow::ensure!(
        init_config.arch == config.arch,
        "--init {}: its net ({}) differs from --width/--blocks ({})",
        path.display(),
        init_config.arch.describe(),
        config.arch.describe()
    );
    anyhow::ensure!(
        init.styles == styles,
        "--init {}: it has {} style(s), this run {styles}",
        path.display(),
        init.styles
    );
    let weights = base_tensors(&init);
    let mut values = HashMap::new();
    for (name, var) in params.vars_with_prefix(NET_PREFIX) {
        let local = &name[NET_PREFIX.len()..];
        let value = weights
            .get(local)
            .ok_or_else(|| anyhow::anyhow!("--init {}: it has no {local}", path.display()))?;
        anyhow::ensure!(
            value.dims() == var.dims(),
            "{name}: shape differs from --init"
        );
        values.insert(name.to_string(), value.clone());
    }
    params.assign(&values)
}

fn base_tensors(base: &Net) -> HashMap<String, Tensor> {
    base.weights()
        .map(|(k, v)| (k.clone(), v.detach()))
        .collect()
}

impl Task for StyleTask {
    fn step(&mut self, _step: u64) -> anyhow::Result<Scalars> {
        let crops = self.content.crops(self.config.batch, &mut self.rng);
        let x = to_tensor(&crops)?.to_device(&self.device)?;
        let styles = self.draw_styles(crops.len());
        let cond = one_hot(&styles, self.net.styles, &self.device)?;
        let y = self.net.forward_styled(&x, &cond)?;
        let mut out = Scalars::new();
        let mut total = if matches!(self.teacher, Teacher::None) {
            // One style loss per image (its own style).
            let mut content = Tensor::zeros((), candle_core::DType::F32, &self.device)?;
            let mut style = content.clone();
            let mut tv = content.clone();
            for (i, &s) in styles.iter().enumerate() {
                let (c, st, t) = self.losses(
                    &x.narrow(0, i, 1)?,
                    &y.narrow(0, i, 1)?,
                    s - self.first_style,
                )?;
                content = (content + c)?;
                style = (style + st)?;
                tv = (tv + t)?;
            }
            let n = styles.len() as f64;
            let (content, style, tv) = ((content / n)?, (style / n)?, (tv / n)?);
            out.insert("loss_content".into(), scalar(&content)?);
            out.insert("loss_style".into(), scalar(&style)?);
            out.insert("loss_tv".into(), scalar(&tv)?);
            ((content + style)? + tv)?
        } else {
            let target = self.teach(&crops, &x, &styles)?;
            let loss = self.distill_loss(&y, &target)?;
            out.insert("loss_distill".into(), scalar(&loss)?);
            loss
        };
        if self.config.stability_weight > 0.0 {
            let stability = (self.stability_loss(&x, &y, &cond)? * self.config.stability_weight)?;
            out.insert("loss_stability".into(), scalar(&stability)?);
            total = (total + stability)?;
        }
        out.insert("loss".into(), scalar(&total)?);
        self.adam.step(&total.backward()?)?;
        Ok(out)
    }

    fn evaluate(&mut self) -> anyhow::Result<Scalars> {
        let x = self.eval.clone();
        let n = x.dim(0)?;
        let mut sums = Scalars::new();
        let trained = self.config.styles.len();
        for k in 0..trained {
            let s = self.first_style + k;
            let cond = one_hot(&vec![s; n], self.net.styles, &self.device)?;
            let y = self.net.forward_styled(&x, &cond)?.detach();
            let (content, style, _) = self.losses(&x, &y, k)?;
            let (x01, y01) = (to_unit(&x)?, to_unit(&y)?);
            let (inputs, outputs) = (to_images(&x)?, to_images(&y)?);
            let quality = super::quality::Quality::of_pairs(&inputs, &outputs);
            let mut add = |k: &str, v: f64| *sums.entry(k.to_string()).or_default() += v;
            add("eval_content", scalar(&content)?);
            add("eval_style", scalar(&style)?);
            add("l1_content_vs_styled", scalar(&l1(&x01, &y01)?)?);
            add("psnr_content_vs_styled", psnr(&x01, &y01)? as f64);
            add("ssim_content_vs_styled", ssim(&x01, &y01)? as f64);
            add("blob_area_pct", quality.blob_area * 100.0);
            add("edge_correlation", quality.edge_correlation);
            if !matches!(self.teacher, Teacher::None) {
                let crops = to_images(&x)?;
                let t = self.teach(&crops, &x, &vec![s; n])?;
                let t01 = to_unit(&t)?;
                add("l1_vs_teacher", scalar(&l1(&t01, &y01)?)?);
                add("psnr_vs_teacher", psnr(&t01, &y01)? as f64);
            }
        }
        for v in sums.values_mut() {
            *v /= trained as f64;
        }
        Ok(sums)
    }

    fn sample(&mut self, path: &Path) -> anyhow::Result<()> {
        let n = self.eval.dim(0)?;
        let mut rows = vec![self.eval.clone()];
        for k in 0..self.config.styles.len() {
            let cond = one_hot(
                &vec![self.first_style + k; n],
                self.net.styles,
                &self.device,
            )?;
            rows.push(self.net.forward_styled(&self.eval, &cond)?);
        }
        save_grid(&rows.iter().collect::<Vec<_>>(), path)
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
        if ckpt.optimizer.is_empty() {
            eprintln!("the checkpoint has no optimizer state: Adam continues with fresh moments");
            return Ok(());
        }
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
