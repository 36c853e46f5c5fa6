//! Named trainable tensors, saved to and loaded from safetensors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor, Var};

/// The trainable tensors of one or more nets, by name (`net.layer.weight`), all on one device.
/// What is saved or loaded is device-independent: values are moved to the device on the way in
/// and read back to the host on the way out.
pub struct Params {
    vars: BTreeMap<String, Var>,
    device: Device,
    /// Element type of the parameters (float32 for training; float64 for gradient checks).
    dtype: DType,
}

impl Default for Params {
    fn default() -> Self {
        Params::on(&Device::Cpu)
    }
}

impl Params {
    /// No parameters yet; those added will live on `device`.
    pub fn on(device: &Device) -> Self {
        Self::with_dtype(device, DType::F32)
    }

    /// No parameters yet; those added will live on `device` as `dtype`.
    pub fn with_dtype(device: &Device, dtype: DType) -> Self {
        Params {
            vars: BTreeMap::new(),
            device: device.clone(),
            dtype,
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Adds a trainable tensor (moved to the parameters' device) and returns a handle that
    /// tracks gradients.
    pub fn add(&mut self, name: &str, init: Tensor) -> candle_core::Result<Tensor> {
        let var = Var::from_tensor(&init.to_dtype(self.dtype)?.to_device(&self.device)?)?;
        let t = var.as_tensor().clone();
        let old = self.vars.insert(name.to_string(), var);
        assert!(old.is_none(), "parameter '{name}' defined twice");
        Ok(t)
    }

    /// The tensor named `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.vars.get(name).map(|v| v.as_tensor())
    }

    /// All variables whose names start with `prefix`.
    pub fn vars_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Var)> {
        self.vars
            .iter()
            .filter(move |(n, _)| n.starts_with(prefix))
            .map(|(n, v)| (n.as_str(), v))
    }

    /// Number of scalars.
    pub fn count(&self, prefix: &str) -> usize {
        self.vars_with_prefix(prefix)
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// The current values, by name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect()
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        candle_core::safetensors::save(&self.tensors(), path)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Loads every parameter from `path`; a missing name or a shape that differs is an error.
    pub fn load(&self, path: &Path) -> anyhow::Result<()> {
        let saved = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        self.assign(&saved)
            .with_context(|| format!("loading {}", path.display()))
    }

    /// Sets every parameter from `values` (on any device).
    pub fn assign(&self, values: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        for (name, var) in &self.vars {
            let Some(t) = values.get(name) else {
                bail!("parameter '{name}' is missing");
            };
            if t.dims() != var.dims() {
                bail!(
                    "parameter '{name}' has shape {:?}, the net needs {:?}",
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::adam::Adam;
    use crate::train::rng::Rng;
    use crate::train::run::{CheckpointState, RunDir};

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// A checkpoint holds host tensors: what one device saves, another loads. Trains on the GPU
    /// when the build and the machine have one.
    #[test]
    fn checkpoints_move_between_devices() {
        let dev = Device::cuda_if_available(0).unwrap();
        let cpu = Device::Cpu;
        let mut params = Params::on(&dev);
        let w = Tensor::new(&[[1f32, -2.0], [3.0, 0.5]], &cpu).unwrap();
        params.add("w", w).unwrap();
        assert!(params.get("w").unwrap().device().same_device(&dev));
        let mut adam = Adam::new(&params, "", 0.1, 0.9, 0.999).unwrap();
        let loss = params.get("w").unwrap().sqr().unwrap().sum_all().unwrap();
        adam.step(&loss.backward().unwrap()).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let state = CheckpointState {
            step: 1,
            rng: Rng::new(0),
            extra: HashMap::new(),
        };
        run.save_checkpoint(&params.tensors(), &adam.state(), &state)
            .unwrap();
        let ckpt = run.load_checkpoint().unwrap();
        assert!(ckpt.weights["w"].device().is_cpu());

        for target in [&cpu, &dev] {
            let mut back = Params::on(target);
            back.add("w", Tensor::zeros((2, 2), DType::F32, &cpu).unwrap())
                .unwrap();
            back.assign(&ckpt.weights).unwrap();
            let got = back.get("w").unwrap();
            assert!(got.device().same_device(target));
            assert_eq!(values(got), values(params.get("w").unwrap()));
            let mut resumed = Adam::new(&back, "", 0.1, 0.9, 0.999).unwrap();
            resumed.restore(&ckpt.optimizer, adam.t).unwrap();
            assert_eq!(
                values(&resumed.state()["w.m"]),
                values(&adam.state()["w.m"])
            );
            assert!(resumed.state()["w.v"].device().same_device(target));
        }
    }
}
