//! The trainer, on candle: fast neural style ([`style`]) and CycleGAN ([`cyclegan`]) with
//! shared layers, nets, losses, run management and ONNX export.
//!
//! A run lives in a folder ([`run`]); [`driver::drive`] steps a [`driver::Task`] with logging,
//! samples, plots and checkpoints; [`export`] turns a checkpoint's generator into an ONNX model
//! that the element runs.

pub mod adam;
pub mod cyclegan;
pub mod data;
pub mod driver;
pub mod export;
pub mod layers;
pub mod losses;
pub mod nets;
pub mod ops;
pub mod params;
pub mod plots;
pub mod quality;
pub mod rng;
pub mod run;
pub mod style;
pub mod teacher;
pub mod vgg;

use std::path::Path;

use anyhow::bail;
use candle_core::Device;
use serde::{Deserialize, Serialize};

/// A run's configuration as stored in `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum RunConfig {
    Style(style::StyleConfig),
    Cyclegan(cyclegan::CycleConfig),
}

/// Which generator of a run to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    AToB,
    BToA,
}

/// The device named by `--device`: `cpu`, `cuda` (the first GPU) or `cuda:N`. Runs do not
/// store it: checkpoints are device-independent, so a run may resume on another device.
pub fn device(spec: &str) -> anyhow::Result<Device> {
    let ordinal = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match spec.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => bail!("--device must be cpu, cuda or cuda:N, not '{spec}'"),
        },
    };
    if !cfg!(feature = "cuda") {
        bail!(
            "--device {spec}: this rsstyle was built without CUDA support; rebuild with --features cuda"
        );
    }
    Device::new_cuda(ordinal).map_err(|e| anyhow::anyhow!("--device {spec}: {e}"))
}

/// Loads the generator of the run at `path` (a run folder or its checkpoint) from its latest
/// checkpoint, on the CPU.
pub fn load_generator(path: &Path, direction: Direction) -> anyhow::Result<(RunConfig, nets::Net)> {
    load_generator_on(path, direction, &Device::Cpu)
}

/// [`load_generator`] onto `device`.
pub fn load_generator_on(
    path: &Path,
    direction: Direction,
    device: &Device,
) -> anyhow::Result<(RunConfig, nets::Net)> {
    let run = run::find_run(path)?;
    let config: RunConfig = run.read_config()?;
    let ckpt = run.load_checkpoint()?;
    let mut params = params::Params::on(device);
    let mut rng = rng::Rng::new(0);
    let (arch, prefix) = match &config {
        RunConfig::Style(c) => (c.arch, style::NET_PREFIX),
        RunConfig::Cyclegan(c) => (
            c.generator,
            match direction {
                Direction::AToB => cyclegan::G_AB,
                Direction::BToA => cyclegan::G_BA,
            },
        ),
    };
    let styles = match &config {
        RunConfig::Style(c) => match &c.base {
            Some(base) => style::load_base(base, &Device::Cpu)?.1.styles + c.styles.len(),
            None => c.styles.len(),
        },
        RunConfig::Cyclegan(_) => 1,
    };
    let net = nets::Net::with_styles(arch, styles, prefix, &mut params, &mut rng)?;
    let weights = ckpt
        .weights
        .into_iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    params.assign(&weights)?;
    Ok((config, net))
}
