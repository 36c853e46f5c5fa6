//! The batched frame queue.
//!
//! Frames from one or more streams that use the same engine are sent to one [`Batcher`]. Its
//! worker thread forms batches of up to `batch_size` frames — fewer when `batch_timeout` has
//! passed since the batch's first frame, or when a stream asks for a [`Batcher::drain`] (EOS,
//! caps change) — runs each batch through the engine and sends every frame back on its own
//! reply channel. One worker per engine runs batches one after another, so each stream gets its
//! frames back in the order it sent them. Knows frames and engines, not GStreamer.

mod registry;
mod stats;

pub use registry::Registry;
pub use stats::{BatchStats, Recent, StatsSnapshot};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::frame::{FrameMut, FrameRef};
use crate::model::Manifest;
use crate::stylizer::{BatchItem, StyleParams, Stylizer, geometry_for};

/// A frame to style: the input to read and the output to write, owned by the caller's type.
pub trait Payload: Send + 'static {
    /// Width and height of the input frame.
    fn size(&self) -> (usize, usize);
    /// The input frame and the output frame to write.
    fn frames(&mut self) -> (FrameRef<'_>, FrameMut<'_>);
}

/// A stream's cancellation counter: bumping it cancels every job submitted before.
#[derive(Debug, Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    /// Cancels all jobs issued so far.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One frame's trip through the batcher.
pub struct Job<P> {
    pub payload: P,
    pub params: StyleParams,
    generation: Generation,
    issued: u64,
    enqueued: Instant,
    reply: Sender<Completed<P>>,
}

impl<P> Job<P> {
    fn cancelled(&self) -> bool {
        self.generation.current() != self.issued
    }
}

/// A finished frame: the payload with its output written, or why not.
pub struct Completed<P> {
    pub payload: P,
    pub result: Result<(), String>,
    /// From submission to the end of the batch's inference.
    pub latency: Duration,
    /// When the frame was submitted.
    pub submitted: Instant,
    /// The engine inference time of the frame's batch (zero when it failed).
    pub inference: Duration,
    /// A warning the frame's batch raised (e.g. an output resized to the frame), carried by
    /// the batch's first frame only.
    pub warning: Option<String>,
}

// Nearly every message is a job (a frame with its style parameters, whose style weights make
// it a few hundred bytes); boxing it would add an allocation per frame to save space in a rare
// `Drain`.
#[allow(clippy::large_enum_variant)]
enum Message<P> {
    Job(Job<P>),
    Drain,
}

/// Batch size and timeout, shared by every stream using a batcher (last set wins).
#[derive(Debug)]
struct BatchConfig {
    size: AtomicUsize,
    timeout_us: AtomicU64,
}

/// One engine, one worker thread, and the queue in front of them.
pub struct Batcher<P: Payload> {
    sender: Sender<Message<P>>,
    config: Arc<BatchConfig>,
    stats: Arc<Mutex<BatchStats>>,
    manifest: Manifest,
    device: String,
}

impl<P: Payload> Batcher<P> {
    /// Starts a worker thread that owns `stylizer`.
    pub fn new(stylizer: Stylizer, batch_size: usize, batch_timeout: Duration) -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let config = Arc::new(BatchConfig {
            size: AtomicUsize::new(batch_size.max(1)),
            timeout_us: AtomicU64::new(batch_timeout.as_micros() as u64),
        });
        let stats = Arc::new(Mutex::new(BatchStats::default()));
        let manifest = stylizer.manifest().clone();
        let device = stylizer.engine().device_description().to_string();
        let worker = Worker {
            stylizer,
            receiver,
            config: config.clone(),
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("rsstyle-infer".into())
            .spawn(move || worker.run())
            .expect("spawning the inference thread");
        Self {
            sender,
            config,
            stats,
            manifest,
            device,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn device_description(&self) -> &str {
        &self.device
    }

    /// Sets the batch size (≥ 1) and timeout for every stream using this batcher.
    pub fn configure(&self, batch_size: usize, batch_timeout: Duration) {
        self.config.size.store(batch_size.max(1), Ordering::Relaxed);
        self.config
            .timeout_us
            .store(batch_timeout.as_micros() as u64, Ordering::Relaxed);
    }

    /// Queues a frame; its result arrives on the returned channel. Jobs issued before a
    /// [`Generation::bump`] of `generation` are skipped.
    pub fn submit(
        &self,
        payload: P,
        params: StyleParams,
        generation: &Generation,
    ) -> Receiver<Completed<P>> {
        let (reply, result) = crossbeam_channel::bounded(1);
        let job = Job {
            payload,
            params,
            issued: generation.current(),
            generation: generation.clone(),
            enqueued: Instant::now(),
            reply,
        };
        // The worker lives as long as the sender; a send cannot fail while `self` exists.
        let _ = self.sender.send(Message::Job(job));
        result
    }

    /// Runs the batch being formed now instead of waiting for more frames.
    pub fn drain(&self) {
        let _ = self.sender.send(Message::Drain);
    }

    /// Counters since the batcher started.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.lock().unwrap().snapshot()
    }
}

struct Worker<P: Payload> {
    stylizer: Stylizer,
    receiver: Receiver<Message<P>>,
    config: Arc<BatchConfig>,
    stats: Arc<Mutex<BatchStats>>,
}

/// Frames batch together when they need the same tensor geometry and conditioning.
fn batch_key<P: Payload>(manifest: &Manifest, job: &Job<P>) -> (usize, usize, usize, usize, usize) {
    let (w, h) = job.payload.size();
    let g = geometry_for(manifest, w, h, &job.params);
    (
        g.frame_width,
        g.frame_height,
        g.tensor_width,
        g.tensor_height,
        job.params.style,
    )
}

impl<P: Payload> Worker<P> {
    fn run(mut self) {
        let mut carried: Option<Job<P>> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match self.receiver.recv() {
                    Ok(Message::Job(job)) => job,
                    Ok(Message::Drain) => continue,
                    Err(_) => return,
                },
            };
            if first.cancelled() {
                continue;
            }
            let max = self
                .config
                .size
                .load(Ordering::Relaxed)
                .min(self.stylizer.manifest().max_batch.unwrap_or(usize::MAX))
                .max(1);
            let deadline = first.enqueued
                + Duration::from_micros(self.config.timeout_us.load(Ordering::Relaxed));
            let key = batch_key(self.stylizer.manifest(), &first);
            let mut batch = vec![first];
            while batch.len() < max {
                match self.receiver.recv_deadline(deadline) {
                    Ok(Message::Job(job)) if job.cancelled() => {}
                    Ok(Message::Job(job)) if batch_key(self.stylizer.manifest(), &job) == key => {
                        batch.push(job)
                    }
                    Ok(Message::Job(job)) => {
                        carried = Some(job);
                        break;
                    }
                    Ok(Message::Drain)
                    | Err(RecvTimeoutError::Timeout)
                    | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            self.run_batch(batch);
        }
    }

    fn run_batch(&mut self, mut batch: Vec<Job<P>>) {
        let result = {
            let mut items: Vec<BatchItem> = batch
                .iter_mut()
                .map(|job| {
                    let params = job.params;
                    let (input, output) = job.payload.frames();
                    BatchItem {
                        input,
                        output,
                        params,
                    }
                })
                .collect();
            // A panicking engine fails this batch, not the thread: later batches still run.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.stylizer.process_batch(&mut items)
            }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown panic");
                Err(crate::engine::EngineError::Inference(format!(
                    "the engine panicked: {what}"
                )))
            })
            .map_err(|e| e.to_string())
        };
        let finished = Instant::now();
        let mut warning = self.stylizer.take_warning();
        let inference = result.as_ref().map_or(Duration::ZERO, |t| t.infer);
        if let Ok(timing) = &result {
            self.stats
                .lock()
                .unwrap()
                .record_batch(batch.len(), timing.infer, timing.convert);
        }
        let result = result.map(|_| ());
        for job in batch {
            let _ = job.reply.send(Completed {
                payload: job.payload,
                result: result.clone(),
                latency: finished - job.enqueued,
                submitted: job.enqueued,
                inference,
                warning: warning.take(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
