//! The nets the trainer builds — Johnson et al.'s transformer net, CycleGAN's ResNet generator and
//! the 70×70 PatchGAN discriminator — described once as a list of [`Layer`]s that both the candle
//! forward pass and the ONNX exporter walk, so the exported graph is the trained net.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{conv2d, instance_norm, leaky_relu, reflect_pad};
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
    Johnson { width: usize, blocks: usize },
    /// CycleGAN's ResNet generator (Zhu et al. 2017): `ngf` 64 and 9 blocks in the paper.
    ResnetGenerator { ngf: usize, blocks: usize },
    /// The 70×70 PatchGAN discriminator with `ndf` 64 and 3 downsampling layers in the paper.
    PatchGan { ndf: usize, layers: usize },
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
            Arch::Johnson { width: w, blocks } => {
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
                b.conv(w, 3, 9, 1, r(4)).push(Layer::Tanh);
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
            Arch::Johnson { width, blocks } => {
                format!("Johnson transformer net, width {width}, {blocks} residual blocks")
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
pub struct Net {
    pub arch: Arch,
    pub prefix: String,
    layers: Vec<Layer>,
    weights: std::collections::HashMap<String, Tensor>,
}

impl Net {
    /// Creates the net's parameters in `params` (on its device) under `prefix` (e.g. `"net."`),
    /// initialised from `rng` as the architecture's recipe says.
    pub fn new(arch: Arch, prefix: &str, params: &mut Params, rng: &mut Rng) -> Result<Self> {
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
                    let gamma = match init {
                        Init::Default => vec![1.0; *c],
                        Init::Normal(std) => (0..*c).map(|_| rng.normal(1.0, std)).collect(),
                    };
                    add(format!("{name}.weight"), &[*c], gamma)?;
                    add(format!("{name}.bias"), &[*c], vec![0.0; *c])?;
                }
                Layer::Residual(inner) => stack.extend(inner.iter().rev()),
                _ => {}
            }
        }
        Ok(Net {
            arch,
            prefix: prefix.to_string(),
            layers,
            weights,
        })
    }

    /// The net's layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The parameter `name` (without the prefix), e.g. `l1.weight`.
    pub fn weight(&self, name: &str) -> &Tensor {
        &self.weights[name]
    }

    /// Runs the net on an NCHW batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(&self.layers, x.clone())
    }

    fn run(&self, layers: &[Layer], mut x: Tensor) -> Result<Tensor> {
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
                Layer::Norm { name, affine, .. } => {
                    let affine = affine.then(|| {
                        (
                            self.weight(&format!("{name}.weight")),
                            self.weight(&format!("{name}.bias")),
                        )
                    });
                    instance_norm(&x, affine)?
                }
                Layer::Relu => x.relu()?,
                Layer::LeakyRelu => leaky_relu(&x, LEAKY_SLOPE)?,
                Layer::Tanh => x.tanh()?,
                Layer::Upsample2 => {
                    let (_, _, h, w) = x.dims4()?;
                    x.upsample_nearest2d(2 * h, 2 * w)?
                }
                Layer::Residual(inner) => (self.run(inner, x.clone())? + x)?,
            };
        }
        Ok(x)
    }
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
                blocks: 5
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
}
