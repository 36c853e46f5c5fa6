//! The `rsstyle` element: the sink pad queues frames for the batcher and returns; the source
//! pad's task pushes results, and serialized events, in input order.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crossbeam_channel::Receiver;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::history::{History, Look};
use super::payload::VideoPayload;
use super::queue::OrderedQueue;
use super::settings::Settings;
use crate::batch::{Batcher, Completed, Generation, Recent, Registry};
use crate::engine::{self, EngineOptions};
use crate::frame::PixelFormat;
use crate::stylizer::Stylizer;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsstyle",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer"),
    )
});

/// Engines and batchers shared by every `rsstyle` in the process.
static BATCHERS: LazyLock<Registry<VideoPayload>> = LazyLock::new(Registry::default);

/// The GStreamer error domain of a failed model load.
#[derive(Debug, Clone, Copy)]
enum Failure {
    NotFound,
    OpenRead,
    Failed,
    Settings,
}

impl Failure {
    fn message(self, text: &str) -> gst::ErrorMessage {
        match self {
            Failure::NotFound => gst::error_msg!(gst::ResourceError::NotFound, ("{}", text)),
            Failure::OpenRead => gst::error_msg!(gst::ResourceError::OpenRead, ("{}", text)),
            Failure::Failed => gst::error_msg!(gst::ResourceError::Failed, ("{}", text)),
            Failure::Settings => gst::error_msg!(gst::ResourceError::Settings, ("{}", text)),
        }
    }
}

/// What travels from the sink pad to the source pad's task, in stream order.
// A frame's `Look` holds its style weights (a few hundred bytes): moved once per frame, cheaper
// than a box.
#[allow(clippy::large_enum_variant)]
enum Item {
    /// A frame in the batcher; its result arrives on the channel.
    Frame(Receiver<Completed<VideoPayload>>, Look),
    /// A frame not run through the network (`infer-every`): the last result is pushed again
    /// with this buffer's timing.
    Reuse(gst::Buffer),
    /// A serialized event.
    Event(gst::Event),
}

/// Per-stream state, from caps and segment.
#[derive(Default)]
struct StreamState {
    info: Option<gst_video::VideoInfo>,
    pool: Option<gst::BufferPool>,
    segment: gst::FormattedSegment<gst::ClockTime>,
    batcher: Option<Arc<Batcher<VideoPayload>>>,
    /// Frames seen since the last caps (for `infer-every`).
    frame_index: u64,
    /// Whether a frame went to the network since the last caps.
    inferred: bool,
    /// Model switches so far (a switch restarts the temporal history).
    model_serial: u64,
    /// Frames whose running time is before this are dropped (QoS).
    earliest: Option<gst::ClockTime>,
    proportion: f64,
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    dropped_qos: AtomicU64,
    dropped_leaky: AtomicU64,
    /// Items queued and not yet handled by the source task.
    pending: AtomicUsize,
    /// Recent frames' time in the element (submission to push) and that time less their
    /// batch's inference, ms.
    frame_ms: Mutex<(Recent, Recent)>,
}

pub struct RsStyle {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<StreamState>,
    queue: Mutex<Option<Arc<OrderedQueue<Item>>>>,
    flushing: AtomicBool,
    generation: Generation,
    last_flow: Mutex<Result<gst::FlowSuccess, gst::FlowError>>,
    /// The last pushed result, for `infer-every` (source task only).
    last_output: Mutex<Option<gst::Buffer>>,
    /// The previous frame, for `temporal-smoothing` (source task only).
    history: Mutex<History>,
    counters: Counters,
    /// The processing latency reported in latency queries (ns).
    reported_latency_ns: AtomicU64,
    /// Model switches in progress, so a later one supersedes an earlier one.
    switch_serial: AtomicU64,
}

impl RsStyle {
    fn settings(&self) -> Settings {
        self.settings.lock().unwrap().clone()
    }

    /// Loads (or shares) the batcher for the model and engine settings in `settings`. The error
    /// comes with its text, for warnings.
    fn load_batcher(
        &self,
        settings: &Settings,
    ) -> Result<Arc<Batcher<VideoPayload>>, (gst::ErrorMessage, String)> {
        self.try_load_batcher(settings)
            .map_err(|(domain, text)| (domain.message(&text), text))
    }

    fn try_load_batcher(
        &self,
        settings: &Settings,
    ) -> Result<Arc<Batcher<VideoPayload>>, (Failure, String)> {
        let device: engine::Device = settings
            .device
            .parse()
            .map_err(|e| (Failure::Settings, e))?;
        // On an inference server the model file is optional (see engine::remote).
        let model = match (&settings.model, &device) {
            (Some(model), _) => model.clone(),
            (None, engine::Device::Server(_)) => String::new(),
            (None, _) => {
                return Err((
                    Failure::NotFound,
                    "no model set: set the 'model' property to an ONNX file".to_string(),
                ));
            }
        };
        let mut options = EngineOptions {
            device,
            threads: settings.threads as usize,
            ..EngineOptions::default()
        };
        options
            .apply(&settings.engine_options)
            .map_err(|e| (Failure::Settings, e))?;
        options.remote.model = settings.server_model.clone().unwrap_or_default();
        options.remote.version = settings.server_model_version.clone().unwrap_or_default();
        let overrides = settings.overrides();
        let key = format!(
            "{}|{:?}|{}|{}|{:?}|{}",
            std::fs::canonicalize(&model).map_or(model.clone(), |p| p.display().to_string()),
            settings.manifest,
            options.device,
            settings.threads,
            (options.frame_io, options.cuda, &options.remote),
            overrides.to_json()
        );
        let (batcher, shared) = BATCHERS.get_or_create(&key, || {
            let (engine, notes) = engine::open(
                &model,
                settings.manifest.as_deref(),
                &overrides,
                &options,
            )
            .map_err(|e| {
                use crate::model::ModelError;
                let kind = match &e {
                    engine::OpenError::Model(ModelError::Missing { .. }) => Failure::NotFound,
                    engine::OpenError::Model(ModelError::Unreadable { .. }) => Failure::OpenRead,
                    engine::OpenError::Engine(engine::EngineError::Device(_)) => Failure::Settings,
                    _ => Failure::Failed,
                };
                (kind, e.to_string())
            })?;
            for warning in notes.warnings {
                gst::warning!(CAT, imp = self, "{warning}");
                gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", warning));
            }
            Ok(Batcher::new(
                Stylizer::new(engine),
                settings.batch_size as usize,
                settings.batch_timeout(),
            ))
        })?;
        batcher.configure(settings.batch_size as usize, settings.batch_timeout());
        let model = if model.is_empty() {
            settings.device.clone() // a model on an inference server, named by the device
        } else {
            model
        };
        // Style weights name the styles of this model: resolved for it, kept with the settings.
        let mut resolved = settings.clone();
        resolved
            .resolve_style_weights(batcher.manifest())
            .map_err(|e| (Failure::Settings, format!("{model}: {e}")))?;
        Stylizer::check_params(batcher.manifest(), &resolved.style_params())
            .map_err(|e| (Failure::Settings, format!("{model}: {e}")))?;
        {
            let mut current = self.settings.lock().unwrap();
            if current.style_weights == resolved.style_weights {
                current.mix = resolved.mix;
            }
        }
        gst::info!(
            CAT,
            imp = self,
            "model {model}, running on {}{}",
            batcher.device_description(),
            if shared { " (shared engine)" } else { "" }
        );
        gst::debug!(
            CAT,
            imp = self,
            "manifest:\n{}",
            batcher.manifest().describe()
        );
        Ok(batcher)
    }

    /// Loads `settings`' model in the background and switches to it between frames; a failed
    /// load keeps the current model and posts a warning.
    fn switch_model(&self, settings: Settings) {
        let serial = self.switch_serial.fetch_add(1, Ordering::SeqCst) + 1;
        let element = self.obj().clone();
        std::thread::spawn(move || {
            let imp = element.imp();
            let model = settings.model.clone().unwrap_or_default();
            let loaded = imp.load_batcher(&settings);
            if imp.switch_serial.load(Ordering::SeqCst) != serial {
                return; // a newer switch was asked for
            }
            match loaded {
                Ok(batcher) => {
                    {
                        let mut state = imp.state.lock().unwrap();
                        if state.batcher.is_none() {
                            return; // stopped meanwhile
                        }
                        state.batcher = Some(batcher);
                        state.model_serial += 1;
                    }
                    gst::info!(CAT, obj = element, "switched to model {model}");
                    let s = gst::Structure::builder("rsstyle-model-loaded")
                        .field("model", &model)
                        .build();
                    let _ = element
                        .post_message(gst::message::Element::builder(s).src(&element).build());
                }
                Err((_, reason)) => {
                    let text = format!(
                        "could not switch to model '{model}', keeping the current one: {reason}"
                    );
                    gst::warning!(CAT, obj = element, "{text}");
                    gst::element_warning!(element, gst::ResourceError::Failed, ("{}", text));
                }
            }
        });
    }

    /// Sets `style-weights`: resolved against the loaded model, if any (invalid weights are
    /// refused with a warning and the current ones kept); otherwise when the model loads.
    fn set_style_weights(&self, spec: Option<String>) {
        let spec = spec.unwrap_or_default();
        let manifest = self
            .state
            .lock()
            .unwrap()
            .batcher
            .as_ref()
            .map(|b| b.manifest().clone());
        let mut settings = self.settings.lock().unwrap();
        let mut candidate = settings.clone();
        candidate.style_weights = spec;
        if let Some(manifest) = manifest {
            if let Err(e) = candidate.resolve_style_weights(&manifest) {
                drop(settings);
                gst::warning!(CAT, imp = self, "{e}");
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("{}; keeping the current style", e)
                );
                return;
            }
        } else {
            candidate.mix = None;
        }
        settings.style_weights = candidate.style_weights;
        settings.mix = candidate.mix;
    }

    fn queue(&self) -> Option<Arc<OrderedQueue<Item>>> {
        self.queue.lock().unwrap().clone()
    }

    /// Drops everything queued (flush): frames in the batcher are cancelled by the generation.
    fn clear_queue(&self) {
        if let Some(q) = self.queue() {
            let dropped = q.clear();
            self.counters.pending.fetch_sub(dropped, Ordering::SeqCst);
        }
    }

    /// Queues `item` behind everything before it.
    fn enqueue(&self, item: Item) -> Result<(), gst::FlowError> {
        let q = self.queue().ok_or(gst::FlowError::Flushing)?;
        if self.flushing.load(Ordering::SeqCst) {
            return Err(gst::FlowError::Flushing);
        }
        self.counters.pending.fetch_add(1, Ordering::SeqCst);
        q.push(item);
        Ok(())
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        if self.flushing.load(Ordering::SeqCst) {
            return Err(gst::FlowError::Flushing);
        }
        let last = *self.last_flow.lock().unwrap();
        last?;
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let settings = self.settings.lock().unwrap().frame_settings();

        let mut state = self.state.lock().unwrap();
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let batcher = state.batcher.clone().ok_or(gst::FlowError::Flushing)?;
        if settings.qos && self.too_late(&state, &buffer) {
            drop(state);
            self.post_qos_drop(&buffer);
            return Ok(gst::FlowSuccess::Ok);
        }
        let queue = self.queue().ok_or(gst::FlowError::Flushing)?;
        if settings.leaky {
            if !queue.try_reserve_frame() {
                self.counters.dropped_leaky.fetch_add(1, Ordering::Relaxed);
                gst::log!(CAT, imp = self, "queue full, dropping {:?}", buffer.pts());
                return Ok(gst::FlowSuccess::Ok);
            }
        } else {
            // Wait for room without holding the stream state.
            drop(state);
            if !queue.reserve_frame(&self.flushing) {
                return Err(gst::FlowError::Flushing);
            }
            state = self.state.lock().unwrap();
        }
        let index = state.frame_index;
        state.frame_index += 1;
        let reuse = settings.infer_every > 1
            && !index.is_multiple_of(settings.infer_every as u64)
            && state.inferred;
        let item = if reuse {
            Item::Reuse(buffer)
        } else {
            let pool = state.pool.clone().ok_or(gst::FlowError::NotNegotiated)?;
            state.inferred = true;
            let look = Look {
                params: settings.params,
                model: state.model_serial,
            };
            drop(state);
            let payload = VideoPayload::new(buffer, &info, &pool).map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                gst::FlowError::Error
            })?;
            Item::Frame(
                batcher.submit(payload, settings.params, &self.generation),
                look,
            )
        };
        self.enqueue(item)?;
        *self.last_flow.lock().unwrap()
    }

    /// Whether `buffer` would reach the sink after the time QoS events said it must.
    fn too_late(&self, state: &StreamState, buffer: &gst::BufferRef) -> bool {
        let (Some(earliest), Some(pts)) = (state.earliest, buffer.pts()) else {
            return false;
        };
        state
            .segment
            .to_running_time(pts)
            .is_some_and(|rt| rt < earliest)
    }

    fn post_qos_drop(&self, buffer: &gst::BufferRef) {
        let dropped = self.counters.dropped_qos.fetch_add(1, Ordering::Relaxed) + 1;
        let processed = self.counters.frames_out.load(Ordering::Relaxed);
        let (running_time, stream_time, jitter, proportion) = {
            let state = self.state.lock().unwrap();
            let pts = buffer.pts();
            let rt = pts.and_then(|p| state.segment.to_running_time(p));
            let st = pts.and_then(|p| state.segment.to_stream_time(p));
            let jitter = match (rt, state.earliest) {
                (Some(rt), Some(e)) => e.nseconds() as i64 - rt.nseconds() as i64,
                _ => 0,
            };
            (rt, st, jitter, state.proportion)
        };
        gst::debug!(
            CAT,
            imp = self,
            "QoS: dropping frame at {:?}, {jitter} ns late",
            buffer.pts()
        );
        let msg = gst::message::Qos::builder(false)
            .running_time(running_time)
            .stream_time(stream_time)
            .timestamp(buffer.pts())
            .duration(buffer.duration())
            .values(jitter, proportion, 1_000_000)
            .stats(
                gst::format::Buffers::from_u64(processed),
                gst::format::Buffers::from_u64(dropped),
            )
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "event {event:?}");
        match event.view() {
            EventView::FlushStart(_) => {
                self.flushing.store(true, Ordering::SeqCst);
                self.generation.bump();
                self.clear_queue();
                let ok = self.srcpad.push_event(event);
                let _ = self.srcpad.pause_task();
                self.clear_queue();
                ok
            }
            EventView::FlushStop(_) => {
                self.clear_queue();
                {
                    let mut state = self.state.lock().unwrap();
                    state.earliest = None;
                    state.segment = gst::FormattedSegment::new();
                }
                *self.last_flow.lock().unwrap() = Ok(gst::FlowSuccess::Ok);
                self.history.lock().unwrap().reset();
                self.flushing.store(false, Ordering::SeqCst);
                let ok = self.srcpad.push_event(event);
                self.start_task() && ok
            }
            EventView::Caps(c) => {
                let info = match gst_video::VideoInfo::from_caps(c.caps()) {
                    Ok(info)
                        if PixelFormat::ALL
                            .iter()
                            .any(|f| f.name() == info.format().to_str()) =>
                    {
                        info
                    }
                    _ => {
                        gst::element_imp_error!(
                            self,
                            gst::CoreError::Negotiation,
                            ("unsupported caps {}", c.caps())
                        );
                        return false;
                    }
                };
                let pool = match make_pool(c.caps(), &info) {
                    Ok(pool) => pool,
                    Err(e) => {
                        gst::element_imp_error!(self, gst::ResourceError::Failed, ("{}", e));
                        return false;
                    }
                };
                let batcher = {
                    let mut state = self.state.lock().unwrap();
                    if let Some(old) = state.pool.replace(pool) {
                        let _ = old.set_active(false);
                    }
                    state.info = Some(info);
                    state.frame_index = 0;
                    state.inferred = false;
                    state.batcher.clone()
                };
                // Frames of the old size go now rather than wait for company.
                if let Some(b) = batcher {
                    b.drain();
                }
                self.enqueue(Item::Event(event)).is_ok()
            }
            EventView::Segment(s) => {
                if let Ok(segment) = s.segment().clone().downcast::<gst::ClockTime>() {
                    self.state.lock().unwrap().segment = segment;
                }
                self.enqueue(Item::Event(event)).is_ok()
            }
            EventView::Eos(_) => {
                if let Some(b) = self.state.lock().unwrap().batcher.clone() {
                    b.drain();
                }
                self.enqueue(Item::Event(event)).is_ok()
            }
            _ if event.is_serialized() => self.enqueue(Item::Event(event)).is_ok(),
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    fn sink_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            // Output buffers come from our own pool: nothing to propose upstream beyond defaults.
            gst::QueryViewMut::Allocation(_) => false,
            gst::QueryViewMut::Drain(_) => {
                self.wait_until_drained();
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// Blocks until every queued item has been pushed (drain query).
    fn wait_until_drained(&self) {
        if let Some(b) = self.state.lock().unwrap().batcher.clone() {
            b.drain();
        }
        while self.counters.pending.load(Ordering::SeqCst) > 0
            && !self.flushing.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        if let gst::EventView::Qos(q) = event.view() {
            let (_, proportion, diff, timestamp) = q.get();
            let mut state = self.state.lock().unwrap();
            state.proportion = proportion;
            state.earliest = timestamp.map(|t| {
                if diff >= 0 {
                    t + gst::ClockTime::from_nseconds(diff as u64)
                } else {
                    t.saturating_sub(gst::ClockTime::from_nseconds(diff.unsigned_abs()))
                }
            });
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        match query.view_mut() {
            gst::QueryViewMut::Latency(q) => {
                let mut upstream = gst::query::Latency::new();
                if !self.sinkpad.peer_query(&mut upstream) {
                    return false;
                }
                let (live, min, max) = upstream.result();
                let ours = self.processing_latency();
                self.reported_latency_ns
                    .store(ours.nseconds(), Ordering::SeqCst);
                gst::debug!(
                    CAT,
                    imp = self,
                    "latency: upstream {min} / {max:?}, ours {ours}"
                );
                q.set(live, min + ours, max.map(|m| m + ours));
                true
            }
            _ => gst::Pad::query_default(pad, Some(&*self.obj()), query),
        }
    }

    /// Batch timeout plus the processing time: the `latency` property, or as measured.
    fn processing_latency(&self) -> gst::ClockTime {
        let settings = self.settings();
        let processing = match settings.latency_ms {
            ms if ms >= 0 => gst::ClockTime::from_mseconds(ms as u64),
            _ => gst::ClockTime::from_nseconds(self.reported_latency_ns.load(Ordering::SeqCst))
                .saturating_sub(gst::ClockTime::from_nseconds(
                    settings.batch_timeout().as_nanos() as u64,
                )),
        };
        gst::ClockTime::from_nseconds(settings.batch_timeout().as_nanos() as u64) + processing
    }

    /// Raises the reported latency (and asks the pipeline to redistribute it) when frames take
    /// longer than reported.
    fn note_latency(&self, measured: Duration) {
        if self.settings.lock().unwrap().latency_ms >= 0 {
            return;
        }
        let measured = measured.as_nanos() as u64;
        let reported = self.reported_latency_ns.load(Ordering::SeqCst);
        if measured > reported {
            // Leave headroom so a slowly creeping latency does not post a message per frame.
            let raised = measured + measured / 4;
            self.reported_latency_ns.store(raised, Ordering::SeqCst);
            gst::info!(
                CAT,
                imp = self,
                "processing takes {} ms, reporting {} ms",
                measured / 1_000_000,
                raised / 1_000_000
            );
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    fn start_task(&self) -> bool {
        let imp = self.ref_counted();
        self.srcpad.start_task(move || imp.src_loop()).is_ok()
    }

    fn src_loop(&self) {
        let Some(queue) = self.queue() else {
            let _ = self.srcpad.pause_task();
            return;
        };
        let Some(item) = queue.recv_timeout(Duration::from_millis(50)) else {
            return;
        };
        let is_frame = !matches!(item, Item::Event(_));
        self.handle_item(item);
        if is_frame {
            queue.release_frame();
        }
        self.counters.pending.fetch_sub(1, Ordering::SeqCst);
    }

    fn handle_item(&self, item: Item) {
        match item {
            Item::Frame(reply, look) => match reply.recv() {
                Ok(Completed {
                    mut payload,
                    result: Ok(()),
                    latency,
                    submitted,
                    inference,
                    warning,
                }) => {
                    if let Some(text) = warning {
                        gst::warning!(CAT, imp = self, "{text}");
                        gst::element_imp_warning!(self, gst::StreamError::Format, ("{}", text));
                    }
                    self.note_latency(latency);
                    let inside = submitted.elapsed();
                    let mut frame_ms = self.counters.frame_ms.lock().unwrap();
                    frame_ms.0.push(inside.as_secs_f64() * 1e3);
                    frame_ms
                        .1
                        .push(inside.saturating_sub(inference).as_secs_f64() * 1e3);
                    drop(frame_ms);
                    let smoothing = self.settings.lock().unwrap().temporal_smoothing;
                    self.history
                        .lock()
                        .unwrap()
                        .apply(&mut payload, look, smoothing);
                    let buffer = payload.into_output();
                    *self.last_output.lock().unwrap() = Some(buffer.clone());
                    self.push(buffer);
                }
                Ok(Completed { result: Err(e), .. }) => {
                    gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
                    *self.last_flow.lock().unwrap() = Err(gst::FlowError::Error);
                    let _ = self.srcpad.pause_task();
                }
                // Cancelled by a flush.
                Err(_) => {}
            },
            Item::Reuse(input) => {
                let last = self.last_output.lock().unwrap().clone();
                if let Some(last) = last {
                    let mut out = last.copy();
                    super::payload::copy_timing(&input, out.make_mut());
                    self.push(out);
                }
            }
            Item::Event(event) => {
                match event.view() {
                    gst::EventView::Caps(_) => {
                        *self.last_output.lock().unwrap() = None;
                        self.history.lock().unwrap().reset();
                    }
                    gst::EventView::StreamStart(_) => self.history.lock().unwrap().reset(),
                    _ => {}
                }
                self.srcpad.push_event(event);
            }
        }
    }

    fn push(&self, buffer: gst::Buffer) {
        // Counted before the push: downstream may read `stats` as soon as it holds the buffer.
        self.counters.frames_out.fetch_add(1, Ordering::Relaxed);
        let result = self.srcpad.push(buffer);
        match result {
            Ok(_) => {}
            Err(gst::FlowError::Flushing) | Err(gst::FlowError::Eos) => {
                let _ = self.srcpad.pause_task();
            }
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Internal data stream error."),
                    ["streaming stopped, reason {e:?}"]
                );
                let _ = self.srcpad.pause_task();
            }
        }
        *self.last_flow.lock().unwrap() = result;
    }

    fn stats(&self) -> gst::Structure {
        let batch = self
            .state
            .lock()
            .unwrap()
            .batcher
            .as_ref()
            .map(|b| b.stats())
            .unwrap_or_default();
        let c = &self.counters;
        let frame_ms = c.frame_ms.lock().unwrap();
        gst::Structure::builder("rsstyle-stats")
            .field("frames-in", c.frames_in.load(Ordering::Relaxed))
            .field("frames-out", c.frames_out.load(Ordering::Relaxed))
            .field("dropped-qos", c.dropped_qos.load(Ordering::Relaxed))
            .field("dropped-leaky", c.dropped_leaky.load(Ordering::Relaxed))
            .field("batches", batch.batches)
            .field("batch-frames", batch.frames)
            .field("last-batch", batch.last_batch as u64)
            .field("mean-batch", batch.mean_batch)
            .field("inference-ms-p50", batch.inference_ms_p50)
            .field("inference-ms-p99", batch.inference_ms_p99)
            .field("convert-ms-p50", batch.convert_ms_p50)
            .field("frame-ms-p50", frame_ms.0.percentile(0.5))
            .field("overhead-ms-p50", frame_ms.1.percentile(0.5))
            .field(
                "latency-ms",
                self.processing_latency().nseconds() as f64 / 1e6,
            )
            .build()
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings();
        let batcher = self.load_batcher(&settings).map_err(|(msg, _)| msg)?;
        *self.state.lock().unwrap() = StreamState {
            batcher: Some(batcher),
            proportion: 1.0,
            ..Default::default()
        };
        // Room for two batches: the next one fills while one is in inference. With room for
        // one, a batch's slots free one by one as its frames leave and the next batches form
        // partial (batch-size 4 ran batches of 2.35 frames on average), and on a GPU each
        // new batch shape costs new page-locked buffers and a new convolution search.
        let slots = settings.max_queued.max(2 * settings.batch_size) as usize;
        *self.queue.lock().unwrap() = Some(Arc::new(OrderedQueue::new(slots)));
        *self.last_flow.lock().unwrap() = Ok(gst::FlowSuccess::Ok);
        *self.last_output.lock().unwrap() = None;
        self.history.lock().unwrap().reset();
        self.counters.pending.store(0, Ordering::SeqCst);
        *self.counters.frame_ms.lock().unwrap() = Default::default();
        self.reported_latency_ns.store(0, Ordering::SeqCst);
        Ok(())
    }

    fn stop(&self) {
        self.switch_serial.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state.lock().unwrap();
        if let Some(pool) = state.pool.take() {
            let _ = pool.set_active(false);
        }
        *state = StreamState::default();
        *self.queue.lock().unwrap() = None;
        *self.last_output.lock().unwrap() = None;
    }
}

fn make_pool(caps: &gst::CapsRef, info: &gst_video::VideoInfo) -> Result<gst::BufferPool, String> {
    let pool = gst_video::VideoBufferPool::new();
    let mut config = pool.config();
    config.set_params(Some(&caps.to_owned()), info.size() as u32, 2, 0);
    pool.set_config(config)
        .map_err(|e| format!("buffer pool configuration failed: {e}"))?;
    pool.set_active(true)
        .map_err(|e| format!("buffer pool activation failed: {e}"))?;
    Ok(pool.upcast())
}

#[glib::object_subclass]
impl ObjectSubclass for RsStyle {
    const NAME: &'static str = "GstRsStyle";
    type Type = super::RsStyle;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|pad, parent, buffer| {
                RsStyle::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
                .inspect_err(|e| gst::log!(CAT, obj = pad, "chain: {e:?}"))
            })
            .event_function(|pad, parent, event| {
                RsStyle::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                RsStyle::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            })
            .activatemode_function(|_pad, parent, _mode, active| {
                RsStyle::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "panic activating sink pad")),
                    |imp| {
                        if !active {
                            imp.flushing.store(true, Ordering::SeqCst);
                            imp.generation.bump();
                        }
                        Ok(())
                    },
                )
            })
            .flags(gst::PadFlags::PROXY_CAPS)
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").unwrap())
            .event_function(|pad, parent, event| {
                RsStyle::catch_panic_pad_function(parent, || false, |imp| imp.src_event(pad, event))
            })
            .query_function(|pad, parent, query| {
                RsStyle::catch_panic_pad_function(parent, || false, |imp| imp.src_query(pad, query))
            })
            .activatemode_function(|_pad, parent, _mode, active| {
                RsStyle::catch_panic_pad_function(
                    parent,
                    || Err(gst::loggable_error!(CAT, "panic activating src pad")),
                    |imp| {
                        if active {
                            imp.flushing.store(false, Ordering::SeqCst);
                            if !imp.start_task() {
                                return Err(gst::loggable_error!(
                                    CAT,
                                    "cannot start the output task"
                                ));
                            }
                        } else {
                            imp.flushing.store(true, Ordering::SeqCst);
                            imp.generation.bump();
                            imp.clear_queue();
                            let _ = imp.srcpad.stop_task();
                        }
                        Ok(())
                    },
                )
            })
            .flags(gst::PadFlags::PROXY_CAPS)
            .build();
        Self {
            sinkpad,
            srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(StreamState::default()),
            queue: Mutex::new(None),
            flushing: AtomicBool::new(true),
            generation: Generation::default(),
            last_flow: Mutex::new(Ok(gst::FlowSuccess::Ok)),
            last_output: Mutex::new(None),
            history: Mutex::new(History::default()),
            counters: Counters::default(),
            reported_latency_ns: AtomicU64::new(0),
            switch_serial: AtomicU64::new(0),
        }
    }
}

impl ObjectImpl for RsStyle {
    fn properties() -> &'static [glib::ParamSpec] {
        super::settings::properties()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "style-weights" {
            self.set_style_weights(value.get::<Option<String>>().expect("type checked"));
            return;
        }
        if pspec.name() == "style" {
            let style: u32 = value.get().expect("type checked");
            // Styles of the loaded conditioned model, if one is loaded.
            let styles = self
                .state
                .lock()
                .unwrap()
                .batcher
                .as_ref()
                .filter(|b| b.manifest().conditioning.is_some())
                .map(|b| b.manifest().style_count());
            if let Some(count) = styles.filter(|&count| style as usize >= count) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "style {style} is out of range (model has {count})"
                );
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    (
                        "style {} is out of range: the model has {} styles; keeping the current one",
                        style,
                        count
                    )
                );
                return;
            }
        }
        let switch = {
            let mut settings = self.settings.lock().unwrap();
            let before = settings.model.clone();
            settings.set(pspec.name(), value);
            let running = self.state.lock().unwrap().batcher.clone();
            if let Some(b) = &running {
                b.configure(settings.batch_size as usize, settings.batch_timeout());
            }
            (pspec.name() == "model" && settings.model != before && running.is_some())
                .then(|| settings.clone())
        };
        if let Some(settings) = switch {
            self.switch_model(settings);
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        self.settings.lock().unwrap().get(pspec.name())
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for RsStyle {}

impl ElementImpl for RsStyle {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Neural style transfer",
                "Filter/Effect/Video",
                "Restyles video with an ONNX image-to-image network (fast neural style, CycleGAN)",
                "rsstyle developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(PixelFormat::ALL.map(super::payload::video_format))
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused
            && let Err(e) = self.start()
        {
            self.post_error_message(e);
            return Err(gst::StateChangeError);
        }
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            self.stop();
        }
        Ok(result)
    }
}
