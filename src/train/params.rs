//! Named trainable tensors, saved to and loaded from safetensors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, bail};
use candle_core::{Device, Tensor, Var};

/// The trainable tensors of one or more nets, by name (`net.layer.weight`).
#[derive(Default)]
pub struct Params {
    vars: BTreeMap<String, Var>,
}

impl Params {
    /// Adds a trainable tensor and returns a handle that tracks gradients.
    pub fn add(&mut self, name: &str, init: Tensor) -> candle_core::Result<Tensor> {
        let var = Var::from_tensor(&init)?;
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

    /// Sets every parameter from `values`.
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
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }
}
