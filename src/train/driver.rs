//! The loop every training task shares: steps with a progress bar and ETA, the JSONL log,
//! evaluations, sample grids and plots, periodic checkpoints, `--resume`, and Ctrl-C, which
//! writes a checkpoint before returning.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::run::{CheckpointState, LoadedCheckpoint, RunDir};

/// Scalars logged at a step, by name.
pub type Scalars = BTreeMap<String, f64>;

/// What a task saves in a checkpoint: weights, optimiser tensors, counters.
pub type Saved = (
    HashMap<String, Tensor>,
    HashMap<String, Tensor>,
    HashMap<String, u64>,
);

/// How often the loop logs, evaluates and checkpoints.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Schedule {
    /// Total steps of the run.
    pub steps: u64,
    /// Log the losses (averaged since the last log) every this many steps.
    pub log_every: u64,
    /// Evaluate, write a sample grid and redraw the plots every this many steps.
    pub sample_every: u64,
    /// Write a checkpoint every this many steps.
    pub checkpoint_every: u64,
}

/// What a training task supplies to the loop.
pub trait Task {
    /// One optimisation step; returns the losses.
    fn step(&mut self, step: u64) -> anyhow::Result<Scalars>;
    /// Metrics on the fixed evaluation images.
    fn evaluate(&mut self) -> anyhow::Result<Scalars>;
    /// Writes a grid of inputs and outputs.
    fn sample(&mut self, path: &Path) -> anyhow::Result<()>;
    /// Weights, optimiser tensors and counters to save.
    fn checkpoint(&self) -> Saved;
    /// Restores what [`Task::checkpoint`] saved.
    fn restore(&mut self, checkpoint: &LoadedCheckpoint) -> anyhow::Result<()>;
    /// The task's random state.
    fn rng(&mut self) -> &mut Rng;
}

/// Checkpoint counter holding the run's training time in milliseconds.
const ELAPSED_KEY: &str = "elapsed_ms";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All steps done.
    Finished,
    /// Stopped by the flag (Ctrl-C) after this step, with a checkpoint written.
    Interrupted(u64),
}

/// Runs `task` from the run's checkpoint (when `resume`) or from step 0 to `schedule.steps`.
pub fn drive(
    run: &RunDir,
    task: &mut dyn Task,
    schedule: &Schedule,
    resume: bool,
    stop: &Arc<AtomicBool>,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    let mut start = 0;
    // Training time of earlier sessions of this run, so `elapsed_s` spans resumes.
    let mut earlier_ms = 0;
    if resume {
        let ckpt = run.load_checkpoint()?;
        task.restore(&ckpt)?;
        *task.rng() = ckpt.state.rng;
        start = ckpt.state.step;
        earlier_ms = ckpt.state.extra.get(ELAPSED_KEY).copied().unwrap_or(0);
        run.truncate_log(start)?;
        if !quiet {
            eprintln!("resuming {} at step {start}", run.root.display());
        }
    }
    let session = std::time::Instant::now();
    let elapsed_ms = || earlier_ms + session.elapsed().as_millis() as u64;
    let save = |task: &mut dyn Task, step: u64| -> anyhow::Result<()> {
        let (weights, optimizer, mut extra) = task.checkpoint();
        extra.insert(ELAPSED_KEY.to_string(), elapsed_ms());
        let state = CheckpointState {
            step,
            rng: *task.rng(),
            extra,
        };
        run.save_checkpoint(&weights, &optimizer, &state)
    };
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(schedule.steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
            .expect("a valid template"),
    );
    bar.set_position(start);
    bar.reset_eta();
    let mut sums = Scalars::new();
    let mut count = 0u32;
    for step in start + 1..=schedule.steps {
        if stop.load(Ordering::Relaxed) {
            save(task, step - 1)?;
            bar.abandon();
            return Ok(Outcome::Interrupted(step - 1));
        }
        let losses = task.step(step)?;
        for (k, v) in &losses {
            anyhow::ensure!(
                v.is_finite(),
                "{k} is {v} at step {step}: training diverged (try a lower learning rate)"
            );
            *sums.entry(k.clone()).or_default() += v;
        }
        count += 1;
        let last = step == schedule.steps;
        let mut record = Scalars::new();
        if step % schedule.log_every == 0 || last {
            for (k, v) in std::mem::take(&mut sums) {
                record.insert(k, v / count as f64);
            }
            count = 0;
            bar.set_message(summary(&record));
        }
        let sample = step % schedule.sample_every == 0 || last;
        if sample {
            record.extend(task.evaluate()?);
            task.sample(&run.sample_path(step))?;
        }
        if !record.is_empty() {
            let mut json = serde_json::Map::new();
            json.insert("step".into(), step.into());
            json.insert("elapsed_s".into(), (elapsed_ms() as f64 / 1e3).into());
            for (k, v) in record {
                json.insert(k, v.into());
            }
            run.log(&serde_json::Value::Object(json))?;
        }
        if sample && let Err(e) = super::plots::plot_run(run) {
            bar.println(format!("warning: plots not drawn: {e:#}"));
        }
        if step % schedule.checkpoint_every == 0 || last {
            save(task, step)?;
        }
        bar.inc(1);
    }
    bar.finish();
    Ok(Outcome::Finished)
}

fn summary(record: &Scalars) -> String {
    record
        .iter()
        .filter(|(k, _)| k.starts_with("loss"))
        .map(|(k, v)| format!("{} {v:.4}", k.trim_start_matches("loss_")))
        .collect::<Vec<_>>()
        .join("  ")
}
