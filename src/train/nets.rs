//! The nets the trainer builds — Johnson et al.'s transformer net, CycleGAN's ResNet generator and
//! the 70×70 PatchGAN discriminator — described once as a list of [`Layer`]s that both the candle
//! forward pass and the ONNX exporter walk, so the exported graph is the trained net.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{conv2d, instance_norm, leaky_relu, reflect_pad, upsample_nearest2};
use super::params::Params;
use super::rng::Rng;

/// Padding before a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    Reflect(usize),
    Zero(usize),
}

/// One layer of a net.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// k×k convolution with bias.
    Conv {
        name: String,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: Pad,
    },
    /// 4×4 transposed convolution, stride 2, padding 1: exactly doubles H and W.
    Deconv {
        name: String,
        cin: usize,
        cout: usize,
    },
    /// Instance norm, with a learnt per-channel scale and shift when `affine`.
    Norm {
        name: String,
        c: usize,
        affine: bool,
    },
    Relu,
    /// Leaky ReLU, slope 0.2.
    LeakyRelu,
    Tanh,
    /// Identity in training and in the trainer's own evaluation; `Clip` to [-1, 1] in the
    /// exported model (the output of a net without tanh, [`Output::Linear`]).
    ExportClip,
    /// Nearest-neighbour ×2 upsampling.
    Upsample2,
    /// `x + layers(x)`.
    Residual(Vec<Layer>),
}

/// Negative slope of [`Layer::LeakyRelu`].
pub const LEAKY_SLOPE: f64 = 0.2;

/// A net's architecture and size: all that is needed to rebuild it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "kebab-case")]
pub enum Arch {
    /// Johnson et al. 2016: conv 9×9 → two stride-2 convs → residual blocks → two
    /// upsample-convs → conv 9×9 → tanh; `width` channels first (32 in the paper), 2× and 4× after.
    /// With [`Output::Linear`] the last convolution's output is the image (clipped to [-1, 1]
    /// only in the exported model).
    Johnson {
        width: usize,
        blocks: usize,
        #[serde(default, skip_serializing_if = "Output::is_tanh")]
        output: Output,
    },
    /// CycleGAN's ResNet generator (Zhu et al. 2017): `ngf` 64 and 9 blocks in the paper.
    ResnetGenerator { ngf: usize, blocks: usize },
    /// The 70×70 PatchGAN discriminator with `ndf` 64 and 3 downsampling layers in the paper.
    PatchGan { ndf: usize, layers: usize },
}

/// The output activation of a [`Arch::Johnson`] net.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    /// `tanh`, as in Johnson et al. 2016 (its gradient vanishes near white and black).
    #[default]
    Tanh,
    /// None: training sees the last convolution's output as it is; the exported model clips it
    /// to [-1, 1] (`Clip`).
    Linear,
}

impl Output {
    fn is_tanh(&self) -> bool {
        *self == Output::Tanh
    }
}

/// How a net's weights start.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Init {
    /// PyTorch's default: uniform in ±1/√fan_in for weights and biases.
    Default,
    /// N(0, std) weights, zero biases, N(1, std) norm scales (the CycleGAN recipe).
    Normal(f32),
}

impl Arch {
    /// The layers of this net.
    pub fn layers(&self) -> Vec<Layer> {
        let mut b = Builder::default();
        match *self {
            Arch::Johnson {
                width: w,
                blocks,
                output,
            } => {
                let (affine, r) = (true, Pad::Reflect);
                b.conv(3, w, 9, 1, r(4)).norm(w, affine).relu();
                b.conv(w, 2 * w, 3, 2, r(1)).norm(2 * w, affine).relu();
                b.conv(2 * w, 4 * w, 3, 2, r(1)).norm(4 * w, affine).relu();
                for _ in 0..blocks {
                    b.residual(4 * w, affine);
                }
                b.push(Layer::Upsample2);
                b.conv(4 * w, 2 * w, 3, 1, r(1)).norm(2 * w, affine).relu();
                b.push(Layer::Upsample2);
                b.conv(2 * w, w, 3, 1, r(1)).norm(w, affine).relu();
                b.conv(w, 3, 9, 1, r(4)).push(match output {
                    Output::Tanh => Layer::Tanh,
                    Output::Linear => Layer::ExportClip,
                });
            }
            Arch::ResnetGenerator { ngf, blocks } => {
                let affine = false;
                b.conv(3, ngf, 7, 1, Pad::Reflect(3))
                    .norm(ngf, affine)
                    .relu();
                b.conv(ngf, 2 * ngf, 3, 2, Pad::Zero(1))
                    .norm(2 * ngf, affine)
                    .relu();
                b.conv(2 * ngf, 4 * ngf, 3, 2, Pad::Zero(1))
                    .norm(4 * ngf, affine)
                    .relu();
                for _ in 0..blocks {
                    b.residual(4 * ngf, affine);
                }
                b.deconv(4 * ngf, 2 * ngf).norm(2 * ngf, affine).relu();
                b.deconv(2 * ngf, ngf).norm(ngf, affine).relu();
                b.conv(ngf, 3, 7, 1, Pad::Reflect(3)).push(Layer::Tanh);
            }
            Arch::PatchGan { ndf, layers } => {
                b.conv(3, ndf, 4, 2, Pad::Zero(1)).push(Layer::LeakyRelu);
                let mut c = ndf;
                for i in 1..=layers {
                    let stride = if i < layers { 2 } else { 1 };
                    let next = ndf * (1 << i.min(3));
                    b.conv(c, next, 4, stride, Pad::Zero(1)).norm(next, false);
                    b.push(Layer::LeakyRelu);
                    c = next;
                }
                b.conv(c, 1, 4, 1, Pad::Zero(1));
            }
        }
        b.layers
    }

    fn init(&self) -> Init {
        match self {
            Arch::Johnson { .. } => Init::Default,
            Arch::ResnetGenerator { .. } | Arch::PatchGan { .. } => Init::Normal(0.02),
        }
    }

    /// Side lengths must be multiples of this (generators: two stride-2 stages).
    pub fn size_multiple(&self) -> usize {
        4
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        match self {
            Arch::Johnson {
                width,
                blocks,
                output,
            } => {
                let linear = match output {
                    Output::Tanh => "",
                    Output::Linear => ", linear output",
                };
                format!("Johnson transformer net, width {width}, {blocks} residual blocks{linear}")
            }
            Arch::ResnetGenerator { ngf, blocks } => {
                format!("CycleGAN ResNet generator, ngf {ngf}, {blocks} residual blocks")
            }
            Arch::PatchGan { ndf, layers } => {
                format!("PatchGAN discriminator, ndf {ndf}, {layers} layers")
            }
        }
    }
}

#[derive(Default)]
struct Builder {
    layers: Vec<Layer>,
    count: usize,
}

impl Builder {
    fn push(&mut self, layer: Layer) -> &mut Self {
        self.layers.push(layer);
        self
    }

    fn name(&mut self) -> String {
        self.count += 1;
        format!("l{}", self.count)
    }

    fn conv(&mut self, cin: usize, cout: usize, k: usize, stride: usize, pad: Pad) -> &mut Self {
        let name = self.name();
        self.push(Layer::Conv {
            name,
            cin,
            cout,
            k,
            stride,
            pad,
        })
    }

    fn deconv(&mut self, cin: usize, cout: usize) -> &mut Self {
        let name = self.name();
        self.push(Layer::Deconv { name, cin, cout })
    }

    fn norm(&mut self, c: usize, affine: bool) -> &mut Self {
        let name = self.name();
        self.push(Layer::Norm { name, c, affine })
    }

    fn relu(&mut self) -> &mut Self {
        self.push(Layer::Relu)
    }

    fn residual(&mut self, c: usize, affine: bool) {
        let mut inner = Builder {
            layers: Vec::new(),
            count: self.count,
        };
        inner
            .conv(c, c, 3, 1, Pad::Reflect(1))
            .norm(c, affine)
            .relu();
        inner.conv(c, c, 3, 1, Pad::Reflect(1)).norm(c, affine);
        self.count = inner.count;
        self.push(Layer::Residual(inner.layers));
    }
}

/// A net whose weights live in a [`Params`] under `prefix`.
///
/// A net with several styles is conditioned by conditional instance normalisation (Dumoulin
/// et al. 2017, "A learned representation for artistic style"): each affine instance norm has
/// one scale and shift per style (`style{s}.{layer}.weight` / `.bias`, `[C]` each), and a batch
/// is normalised with the weighted sum of them given by its conditioning `[N, S]` (one-hot
/// rows pick a style; other convex weights mix styles).
pub struct Net {
    pub arch: Arch,
    pub prefix: String,
    /// Styles of a conditioned net (1: unconditioned).
    pub styles: usize,
    layers: Vec<Layer>,
    weights: std::collections::HashMap<String, Tensor>,
}

/// Name of style `s`'s parameter `name` of a conditioned net (e.g. `style2.l4.weight`).
pub fn style_param(s: usize, name: &str) -> String {
    format!("style{s}.{name}")
}

impl Net {
    /// Creates the net's parameters in `params` (on its device) under `prefix` (e.g. `"net."`),
    /// initialised from `rng` as the architecture's recipe says.
    pub fn new(arch: Arch, prefix: &str, params: &mut Params, rng: &mut Rng) -> Result<Self> {
        Self::with_styles(arch, 1, prefix, params, rng)
    }

    /// [`Net::new`] with `styles` sets of instance-norm scales and shifts (conditional instance
    /// normalisation) when `styles` > 1.
    pub fn with_styles(
        arch: Arch,
        styles: usize,
        prefix: &str,
        params: &mut Params,
        rng: &mut Rng,
    ) -> Result<Self> {
        if styles == 0 {
            candle_core::bail!("a net needs at least one style");
        }
        let layers = arch.layers();
        let mut weights = std::collections::HashMap::new();
        let init = arch.init();
        let device = params.device().clone();
        let mut add = |name: String, dims: &[usize], values: Vec<f32>| -> Result<()> {
            let t = Tensor::from_vec(values, dims, &device)?;
            let full = format!("{prefix}{name}");
            weights.insert(name, params.add(&full, t)?);
            Ok(())
        };
        let mut stack: Vec<&Layer> = layers.iter().rev().collect();
        while let Some(layer) = stack.pop() {
            match layer {
                Layer::Conv {
                    name, cin, cout, ..
                }
                | Layer::Deconv { name, cin, cout } => {
                    let (dims, k) = match layer {
                        Layer::Conv { k, .. } => ([*cout, *cin, *k, *k], *k),
                        _ => ([*cin, *cout, 4, 4], 4),
                    };
                    // PyTorch's fan-in for a transposed conv is dims[1]·k·k as well.
                    let fan_in = (dims[1] * k * k) as f32;
                    let n = dims.iter().product();
                    let (w, b): (Vec<f32>, Vec<f32>) = match init {
                        Init::Default => {
                            let bound = 1.0 / fan_in.sqrt();
                            let mut u = || bound * (2.0 * rng.uniform() - 1.0);
                            (
                                (0..n).map(|_| u()).collect(),
                                (0..*cout).map(|_| u()).collect(),
                            )
                        }
                        Init::Normal(std) => (
                            (0..n).map(|_| rng.normal(0.0, std)).collect(),
                            vec![0.0; *cout],
                        ),
                    };
                    add(format!("{name}.weight"), &dims, w)?;
                    add(format!("{name}.bias"), &[*cout], b)?;
                }
                Layer::Norm {
                    name,
                    c,
                    affine: true,
                } => {
                    for s in 0..styles {
                        let gamma = match init {
                            Init::Default => vec![1.0; *c],
                            Init::Normal(std) => (0..*c).map(|_| rng.normal(1.0, std)).collect(),
                        };
                        let (w, b) = if styles == 1 {
                            (format!("{name}.weight"), format!("{name}.bias"))
                        } else {
                            (
                                style_param(s, &format!("{name}.weight")),
                                style_param(s, &format!("{name}.bias")),
                            )
                        };
                        add(w, &[*c], gamma)?;
                        add(b, &[*c], vec![0.0; *c])?;
                    }
                }
                Layer::Residual(inner) => stack.extend(inner.iter().rev()),
                _ => {}
            }
        }
        Ok(Net {
            arch,
            prefix: prefix.to_string(),
            styles,
            layers,
            weights,
        })
    }

    /// The net's layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Every parameter, by name without the prefix.
    pub fn weights(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.weights.iter()
    }

    /// The parameter `name` (without the prefix), e.g. `l1.weight`.
    pub fn weight(&self, name: &str) -> &Tensor {
        &self.weights[name]
    }

    /// Runs the net on an NCHW batch (a conditioned net: in its first style).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.styles > 1 {
            let n = x.dim(0)?;
            return self.forward_styled(x, &one_hot(&vec![0; n], self.styles, x.device())?);
        }
        self.run(&self.layers, x.clone(), None)
    }

    /// Runs a conditioned net on an NCHW batch with style weights `styles` (`[N, S]`, a row per
    /// image); an unconditioned net ignores them.
    pub fn forward_styled(&self, x: &Tensor, styles: &Tensor) -> Result<Tensor> {
        if self.styles == 1 {
            return self.run(&self.layers, x.clone(), None);
        }
        let (n, s) = styles.dims2()?;
        if n != x.dim(0)? || s != self.styles {
            candle_core::bail!(
                "style weights of shape [{n}, {s}] for a batch of {} images and {} styles",
                x.dim(0)?,
                self.styles
            );
        }
        self.run(&self.layers, x.clone(), Some(styles))
    }

    /// The per-style scales or shifts of a conditioned net's norm parameter `name`
    /// (`l4.weight`), stacked into `[S, C]`.
    pub fn style_stack(&self, name: &str) -> Result<Tensor> {
        let rows: Vec<&Tensor> = (0..self.styles)
            .map(|s| self.weight(&style_param(s, name)))
            .collect();
        Tensor::stack(&rows, 0)
    }

    fn run(&self, layers: &[Layer], mut x: Tensor, styles: Option<&Tensor>) -> Result<Tensor> {
        for layer in layers {
            x = match layer {
                Layer::Conv {
                    name, stride, pad, ..
                } => {
                    let (x, zero) = match *pad {
                        Pad::Reflect(p) => (reflect_pad(&x, p)?, 0),
                        Pad::Zero(p) => (x, p),
                    };
                    let y = conv2d(&x, self.weight(&format!("{name}.weight")), zero, *stride)?;
                    add_bias(&y, self.weight(&format!("{name}.bias")))?
                }
                Layer::Deconv { name, .. } => {
                    let y =
                        x.conv_transpose2d(self.weight(&format!("{name}.weight")), 1, 0, 2, 1)?;
                    add_bias(&y, self.weight(&format!("{name}.bias")))?
                }
                Layer::Norm { name, affine, c } => match styles {
                    Some(w) if *affine => {
                        // Conditional instance norm: per-sample scale and shift, [N, C, 1, 1].
                        let n = x.dim(0)?;
                        let per_sample = |p: &str| -> Result<Tensor> {
                            w.matmul(&self.style_stack(&format!("{name}.{p}"))?)?
                                .reshape((n, *c, 1, 1))
                        };
                        instance_norm(&x, None)?
                            .broadcast_mul(&per_sample("weight")?)?
                            .broadcast_add(&per_sample("bias")?)?
                    }
                    _ => {
                        let affine = affine.then(|| {
                            (
                                self.weight(&format!("{name}.weight")),
                                self.weight(&format!("{name}.bias")),
                            )
                        });
                        instance_norm(&x, affine)?
                    }
                },
                Layer::Relu => x.relu()?,
                Layer::LeakyRelu => leaky_relu(&x, LEAKY_SLOPE)?,
                Layer::Tanh => x.tanh()?,
                Layer::ExportClip => x,
                Layer::Upsample2 => upsample_nearest2(&x)?,
                Layer::Residual(inner) => (self.run(inner, x.clone(), styles)? + x)?,
            };
        }
        Ok(x)
    }
}

/// One-hot style weights `[N, S]` for style indices `styles`.
pub fn one_hot(styles: &[usize], count: usize, device: &candle_core::Device) -> Result<Tensor> {
    let mut w = vec![0f32; styles.len() * count];
    for (i, &s) in styles.iter().enumerate() {
        if s >= count {
            candle_core::bail!("style {s} of a net with {count} styles");
        }
        w[i * count + s] = 1.0;
    }
    Tensor::from_vec(w, (styles.len(), count), device)
}

fn add_bias(y: &Tensor, bias: &Tensor) -> Result<Tensor> {
    y.broadcast_add(&bias.reshape((1, bias.elem_count(), 1, 1))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn params_of(arch: Arch) -> usize {
        let mut params = Params::default();
        Net::new(arch, "n.", &mut params, &mut Rng::new(0)).unwrap();
        params.count("n.")
    }

    #[test]
    fn parameter_counts_match_the_reference_implementations() {
        // pytorch/examples fast_neural_style TransformerNet.
        assert_eq!(
            params_of(Arch::Johnson {
                width: 32,
                blocks: 5,
                output: Output::Tanh,
            }),
            1_679_235
        );
        // CycleGAN's ResnetGenerator, ngf 64, 9 blocks, has 11,378,179 with 3×3 transposed convs;
        // the 4×4 ones here have 16 instead of 9 weights per channel pair.
        let resnet = params_of(Arch::ResnetGenerator { ngf: 64, blocks: 9 });
        assert_eq!(resnet, 11_378_179 + 7 * (256 * 128 + 128 * 64));
        // PatchGAN n_layers 3: 2,764,737 in the CycleGAN repository.
        assert_eq!(params_of(Arch::PatchGan { ndf: 64, layers: 3 }), 2_764_737);
    }

    #[test]
    fn generators_keep_the_size_and_patchgan_gives_patches() {
        let mut params = Params::default();
        let mut rng = Rng::new(1);
        let x = Tensor::zeros((2, 3, 32, 48), candle_core::DType::F32, &Device::Cpu).unwrap();
        for (prefix, arch) in [
            (
                "j.",
                Arch::Johnson {
                    width: 4,
                    blocks: 1,
                    output: Output::Tanh,
                },
            ),
            ("r.", Arch::ResnetGenerator { ngf: 4, blocks: 1 }),
        ] {
            let y = Net::new(arch, prefix, &mut params, &mut rng)
                .unwrap()
                .forward(&x)
                .unwrap();
            assert_eq!(y.dims(), &[2, 3, 32, 48]);
        }
        let d = Net::new(
            Arch::PatchGan { ndf: 4, layers: 3 },
            "d.",
            &mut params,
            &mut rng,
        )
        .unwrap();
        let x = Tensor::zeros((1, 3, 256, 256), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(d.forward(&x).unwrap().dims(), &[1, 1, 30, 30]);
    }

    /// The gradient of a conditioned net's loss with respect to its per-style norm parameters
    /// matches central finite differences (in float64), and styles a batch does not use get
    /// none.
    #[test]
    fn conditional_instance_norm_gradients_match_finite_differences() {
        use candle_core::DType;
        let arch = Arch::Johnson {
            width: 2,
            blocks: 1,
            output: Output::Tanh,
        };
        let mut params = Params::with_dtype(&Device::Cpu, DType::F64);
        let mut rng = Rng::new(3);
        let net = Net::with_styles(arch, 3, "n.", &mut params, &mut rng).unwrap();
        let x: Vec<f64> = (0..2 * 3 * 12 * 12)
            .map(|_| rng.uniform() as f64 * 2.0 - 1.0)
            .collect();
        let x = Tensor::from_vec(x, (2, 3, 12, 12), &Device::Cpu).unwrap();
        // Image 0 mixes styles 0 and 1; image 1 uses style 1; style 2 is unused.
        let w = Tensor::new(&[[0.3f64, 0.7, 0.0], [0.0, 1.0, 0.0]], &Device::Cpu).unwrap();
        let target = Tensor::randn(0f64, 0.5, (2, 3, 12, 12), &Device::Cpu).unwrap();
        let loss = |net: &Net| -> Tensor {
            net.forward_styled(&x, &w)
                .unwrap()
                .sub(&target)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
        };
        let grads = loss(&net).backward().unwrap();
        // Fresh copies: a variable cannot be set from a tensor sharing its storage.
        let set = |name: &str, values: &[f64]| {
            let mut all: std::collections::HashMap<String, Tensor> = params
                .tensors()
                .into_iter()
                .map(|(k, t)| (k, t.copy().unwrap()))
                .collect();
            all.insert(name.to_string(), Tensor::new(values, &Device::Cpu).unwrap());
            params.assign(&all).unwrap();
        };
        let mut checked = 0;
        for (style, name) in [
            (0, "l2.weight"),
            (1, "l2.bias"),
            (1, "l8.weight"),
            (0, "l14.bias"),
        ] {
            let full = format!("n.{}", style_param(style, name));
            let var = params.get(&full).unwrap().clone();
            let g: Vec<f64> = grads.get(&var).unwrap().to_vec1().unwrap();
            let base: Vec<f64> = var.to_vec1().unwrap();
            for i in [0, base.len() - 1] {
                let eps = 1e-5;
                let at = |delta: f64| -> f64 {
                    let mut v = base.clone();
                    v[i] += delta;
                    set(&full, &v);
                    let l = loss(&net).to_scalar::<f64>().unwrap();
                    set(&full, &base);
                    l
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                assert!(
                    (numeric - g[i]).abs() <= 1e-6 + 1e-4 * numeric.abs(),
                    "{full}[{i}]: analytic {} vs numeric {numeric}",
                    g[i]
                );
                assert!(g[i].abs() > 1e-8, "{full}[{i}] has no gradient");
                checked += 1;
            }
        }
        assert_eq!(checked, 8);
        let unused = params
            .get(&format!("n.{}", style_param(2, "l2.weight")))
            .unwrap();
        let g: Vec<f64> = grads.get(unused).unwrap().to_vec1().unwrap();
        assert!(g.iter().all(|&v| v == 0.0), "{g:?}");
    }
}
