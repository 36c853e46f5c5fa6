//! VGG16 (ImageNet weights, frozen) up to relu4_3: the feature extractor of the perceptual loss.
//! Weights come from `scripts/fetch-vgg16.sh` as safetensors (`conv1_1.weight` … OIHW).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{Device, Result, Tensor};

use super::layers::{FrozenKernel, bias_relu, max_pool2};

/// The layers whose activations the losses use, in depth order.
pub const FEATURE_LAYERS: [&str; 4] = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"];

const BLOCKS: [&[&str]; 4] = [
    &["conv1_1", "conv1_2"],
    &["conv2_1", "conv2_2"],
    &["conv3_1", "conv3_2", "conv3_3"],
    &["conv4_1", "conv4_2", "conv4_3"],
];

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// How images are normalised before VGG16's first layer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum VggInput {
    /// RGB in [0, 1] minus ImageNet's mean, divided by its standard deviation (per channel):
    /// what the torchvision weights were trained on.
    #[default]
    Imagenet,
    /// RGB in [0, 1] as it is: a common mistake, kept to measure what it does to training.
    Unit,
}

impl VggInput {
    pub fn is_imagenet(&self) -> bool {
        *self == VggInput::Imagenet
    }
}

/// Where `scripts/fetch-vgg16.sh` puts the weights, relative to the project root.
pub const DEFAULT_WEIGHTS: &str = ".deps/vgg16/vgg16.safetensors";

/// The default weights file: `RSSTYLE_VGG16` if set, else [`DEFAULT_WEIGHTS`] under the
/// current directory or the crate's directory.
pub fn default_weights() -> PathBuf {
    if let Some(p) = std::env::var_os("RSSTYLE_VGG16") {
        return PathBuf::from(p);
    }
    let here = PathBuf::from(DEFAULT_WEIGHTS);
    if here.exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS)
}

/// VGG16's first ten convolutions.
pub struct Vgg16 {
    /// Kernels and biases, block by block.
    convs: Vec<Vec<(FrozenKernel, Tensor)>>,
    mean: Tensor,
    std: Tensor,
}

impl Vgg16 {
    /// Loads the weights onto `device`; a missing file or tensor says how to get them.
    pub fn load(path: &Path, device: &Device) -> anyhow::Result<Self> {
        if !path.exists() {
            bail!(
                "VGG16 weights not found at {}: run scripts/fetch-vgg16.sh (or pass --vgg / set RSSTYLE_VGG16)",
                path.display()
            );
        }
        let mut tensors = candle_core::safetensors::load(path, device)
            .with_context(|| format!("reading VGG16 weights {}", path.display()))?;
        let mut take = |name: String| {
            tensors
                .remove(&name)
                .with_context(|| format!("{} has no tensor '{name}'", path.display()))
        };
        let mut convs = Vec::new();
        for block in BLOCKS {
            let mut layers = Vec::new();
            for conv in block {
                let w = take(format!("{conv}.weight"))?;
                let b = take(format!("{conv}.bias"))?;
                layers.push((FrozenKernel::new(w)?, b));
            }
            convs.push(layers);
        }
        Ok(Vgg16 {
            convs,
            mean: Tensor::new(&MEAN, device)?.reshape((1, 3, 1, 1))?,
            std: Tensor::new(&STD, device)?.reshape((1, 3, 1, 1))?,
        })
    }

    /// This network with its input normalised as `input` says.
    pub fn with_input(mut self, input: VggInput) -> Result<Self> {
        if input == VggInput::Unit {
            self.mean = self.mean.zeros_like()?;
            self.std = self.std.ones_like()?;
        }
        Ok(self)
    }

    /// Activations relu1_2 … relu4_3 of an RGB batch in [0, 1], stopping after the first
    /// `depth` of them (1..=4).
    pub fn features(&self, x01: &Tensor, depth: usize) -> Result<Vec<Tensor>> {
        let mut x = x01.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let mut out = Vec::with_capacity(depth);
        for (i, block) in self.convs.iter().take(depth).enumerate() {
            if i > 0 {
                x = max_pool2(&x)?;
            }
            for (w, b) in block {
                x = bias_relu(&w.conv2d(&x, 1, 1)?, b)?;
            }
            out.push(x.clone());
        }
        Ok(out)
    }
}
