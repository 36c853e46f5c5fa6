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
pub mod params;
pub mod plots;
pub mod rng;
pub mod run;
pub mod style;
pub mod vgg;

use std::path::Path;

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

/// Loads the generator of the run at `path` (a run folder or its checkpoint) from its latest
/// checkpoint.
pub fn load_generator(path: &Path, direction: Direction) -> anyhow::Result<(RunConfig, nets::Net)> {
    let run = run::find_run(path)?;
    let config: RunConfig = run.read_config()?;
    let ckpt = run.load_checkpoint()?;
    let mut params = params::Params::default();
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
    let net = nets::Net::new(arch, prefix, &mut params, &mut rng)?;
    let weights = ckpt
        .weights
        .into_iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    params.assign(&weights)?;
    Ok((config, net))
}
