//! A training run's folder: its configuration, checkpoints (weights, optimiser moments, step,
//! random state), the JSONL log, sample grids and plots.
//!
//! ```text
//! RUN/run.json                  task and configuration (what `--resume` and `export` read)
//! RUN/checkpoint/               weights.safetensors, optimizer.safetensors, state.json
//! RUN/log.jsonl                 one JSON object per logged step (with `elapsed_s`, training
//!                               time so far, across resumes)
//! RUN/samples/step-NNNNNN.png   input / output grids
//! RUN/plots/losses.png, metrics.png
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use serde::{Serialize, de::DeserializeOwned};

/// Paths inside a run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

/// What a checkpoint holds besides tensors.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CheckpointState {
    pub step: u64,
    pub rng: super::rng::Rng,
    /// Extra counters of the task (optimizer steps, pool sizes).
    #[serde(default)]
    pub extra: HashMap<String, u64>,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        RunDir {
            root: root.to_path_buf(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("run.json")
    }

    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }

    pub fn sample_path(&self, step: u64) -> PathBuf {
        self.root
            .join("samples")
            .join(format!("step-{step:06}.png"))
    }

    pub fn plots_dir(&self) -> PathBuf {
        self.root.join("plots")
    }

    /// Creates a new run folder; one that already holds a run is refused (use `--resume`).
    pub fn create<C: Serialize>(root: &Path, config: &C) -> anyhow::Result<Self> {
        let run = RunDir::new(root);
        if run.config_path().exists() {
            bail!(
                "{} already holds a training run: pass --resume to continue it, or choose another --out",
                root.display()
            );
        }
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        std::fs::write(run.config_path(), serde_json::to_vec_pretty(config)?)?;
        Ok(run)
    }

    /// Reads the configuration of an existing run.
    pub fn read_config<C: DeserializeOwned>(&self) -> anyhow::Result<C> {
        let path = self.config_path();
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "{} is not a training run (no run.json)",
                self.root.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))
    }

    /// Writes a checkpoint atomically: a new folder, then a rename over the old one.
    pub fn save_checkpoint(
        &self,
        weights: &HashMap<String, Tensor>,
        optimizer: &HashMap<String, Tensor>,
        state: &CheckpointState,
    ) -> anyhow::Result<()> {
        let tmp = self.root.join("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        candle_core::safetensors::save(weights, tmp.join("weights.safetensors"))?;
        candle_core::safetensors::save(optimizer, tmp.join("optimizer.safetensors"))?;
        std::fs::write(tmp.join("state.json"), serde_json::to_vec_pretty(state)?)?;
        let dir = self.checkpoint_dir();
        let old = self.root.join("checkpoint.old");
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&dir, &old)?;
        }
        std::fs::rename(&tmp, &dir)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Reads the checkpoint: weights, optimizer moments, state. Tensors are read to the host
    /// (whatever device wrote them); the task moves them to its own.
    pub fn load_checkpoint(&self) -> anyhow::Result<LoadedCheckpoint> {
        let dir = self.checkpoint_dir();
        if !dir.join("state.json").exists() {
            bail!("{} has no checkpoint yet", self.root.display());
        }
        let load = |name: &str| {
            let p = dir.join(name);
            candle_core::safetensors::load(&p, &Device::Cpu)
                .with_context(|| format!("reading {}", p.display()))
        };
        // A checkpoint may travel without its optimizer moments (they are twice the weights'
        // size): the run then continues with fresh ones.
        let optimizer = if dir.join("optimizer.safetensors").exists() {
            load("optimizer.safetensors")?
        } else {
            HashMap::new()
        };
        Ok(LoadedCheckpoint {
            weights: load("weights.safetensors")?,
            optimizer,
            state: serde_json::from_slice(&std::fs::read(dir.join("state.json"))?)?,
        })
    }

    /// Appends one record to the log.
    pub fn log(&self, record: &serde_json::Value) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        writeln!(f, "{record}")?;
        Ok(())
    }

    /// The log's records, skipping those after `step` (a resumed run rewrites them).
    pub fn read_log(&self) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let text = match std::fs::read_to_string(self.log_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.as_object().cloned())
            .collect())
    }

    /// Drops log records after `step`, so a resumed run's log has each step once.
    pub fn truncate_log(&self, step: u64) -> anyhow::Result<()> {
        let kept: Vec<String> = self
            .read_log()?
            .into_iter()
            .filter(|r| {
                r.get("step")
                    .and_then(|s| s.as_u64())
                    .is_some_and(|s| s <= step)
            })
            .map(|r| serde_json::Value::Object(r).to_string())
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(self.log_path(), text)?;
        Ok(())
    }
}

/// A checkpoint as read back.
pub struct LoadedCheckpoint {
    pub weights: HashMap<String, Tensor>,
    /// Empty when the checkpoint has no `optimizer.safetensors`.
    pub optimizer: HashMap<String, Tensor>,
    pub state: CheckpointState,
}

/// Finds the run folder from a path naming the run, its `checkpoint/` or a file in it.
pub fn find_run(path: &Path) -> anyhow::Result<RunDir> {
    for candidate in path.ancestors().take(3) {
        if candidate.join("run.json").exists() {
            return Ok(RunDir::new(candidate));
        }
    }
    bail!(
        "{} is not a training run or checkpoint (no run.json found)",
        path.display()
    )
}
