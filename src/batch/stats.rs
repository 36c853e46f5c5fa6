//! Batch counters: batches, frames, batch fill and inference time percentiles.

use std::collections::VecDeque;
use std::time::Duration;

/// How many recent times the percentiles are taken over.
const WINDOW: usize = 512;

/// Running counters of one batcher.
#[derive(Debug, Default)]
pub struct BatchStats {
    batches: u64,
    frames: u64,
    last_batch: usize,
    /// Recent inference and conversion times per batch, ms.
    inference_ms: Recent,
    convert_ms: Recent,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSnapshot {
    pub batches: u64,
    pub frames: u64,
    /// Frames in the most recent batch.
    pub last_batch: usize,
    /// Mean frames per batch.
    pub mean_batch: f64,
    /// Engine inference time per batch, median and 99th percentile over recent batches (ms).
    pub inference_ms_p50: f64,
    pub inference_ms_p99: f64,
    /// Frame ⇄ tensor conversion time per batch, median over recent batches (ms).
    pub convert_ms_p50: f64,
}

impl BatchStats {
    pub fn record_batch(&mut self, frames: usize, infer: Duration, convert: Duration) {
        self.batches += 1;
        self.frames += frames as u64;
        self.last_batch = frames;
        self.inference_ms.push(infer.as_secs_f64() * 1e3);
        self.convert_ms.push(convert.as_secs_f64() * 1e3);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            batches: self.batches,
            frames: self.frames,
            last_batch: self.last_batch,
            mean_batch: if self.batches == 0 {
                0.0
            } else {
                self.frames as f64 / self.batches as f64
            },
            inference_ms_p50: self.inference_ms.percentile(0.5),
            inference_ms_p99: self.inference_ms.percentile(0.99),
            convert_ms_p50: self.convert_ms.percentile(0.5),
        }
    }
}

/// The most recent values (at most [`WINDOW`]), for percentiles.
#[derive(Debug, Default)]
pub struct Recent(VecDeque<f64>);

impl Recent {
    pub fn push(&mut self, value: f64) {
        if self.0.len() == WINDOW {
            self.0.pop_front();
        }
        self.0.push_back(value);
    }

    /// Nearest-rank percentile `p` (0..=1) of the values held (0 for none).
    pub fn percentile(&self, p: f64) -> f64 {
        let mut sorted: Vec<f64> = self.0.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        percentile(&sorted, p)
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_fill() {
        let mut s = BatchStats::default();
        for ms in 1..=100 {
            s.record_batch(
                if ms % 2 == 0 { 4 } else { 2 },
                Duration::from_millis(ms),
                Duration::from_millis(ms % 3),
            );
        }
        let snap = s.snapshot();
        assert_eq!((snap.batches, snap.frames, snap.last_batch), (100, 300, 4));
        assert_eq!(snap.mean_batch, 3.0);
        assert!((snap.inference_ms_p50 - 50.0).abs() < 1e-9);
        assert!((snap.inference_ms_p99 - 99.0).abs() < 1e-9);
        assert!((snap.convert_ms_p50 - 1.0).abs() < 1e-9);
        assert_eq!(BatchStats::default().snapshot().inference_ms_p99, 0.0);
    }
}
