//! The element's properties: declarations, defaults and the settings they fill.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::frame::Blend;
use crate::model::{ManifestPatch, ValueRange};
use crate::stylizer::{StyleMix, StyleParams};

/// The `value-range` property: the model's pixel value range, or `auto` for the manifest's.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRsStyleValueRange")]
pub enum ValueRangeChoice {
    #[default]
    #[enum_value(name = "From the model's manifest or graph", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "0 to 255 (Johnson-style fast style networks)", nick = "0-255")]
    Byte = 1,
    #[enum_value(name = "0 to 1", nick = "0-1")]
    Unit = 2,
    #[enum_value(name = "-1 to 1 (tanh generators: CycleGAN, pix2pix)", nick = "-1-1")]
    Signed = 3,
}

impl ValueRangeChoice {
    fn range(self) -> Option<ValueRange> {
        match self {
            Self::Auto => None,
            Self::Byte => Some(ValueRange::Byte),
            Self::Unit => Some(ValueRange::Unit),
            Self::Signed => Some(ValueRange::Signed),
        }
    }
}

const DEFAULT_DEVICE: &str = "cpu";
/// The default `temporal-smoothing` (docs/temporal.md measures it).
const DEFAULT_TEMPORAL_SMOOTHING: f64 = 0.8;

/// Everything the properties set.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub model: Option<String>,
    pub manifest: Option<PathBuf>,
    pub device: String,
    /// With `device=grpc://…`: the model's name and version on the inference server.
    pub server_model: Option<String>,
    pub server_model_version: Option<String>,
    pub threads: u32,
    pub engine_options: String,
    pub strength: f64,
    pub style: u32,
    /// The `style-weights` property as set.
    pub style_weights: String,
    /// `style_weights` resolved against the loaded model's styles.
    pub mix: Option<StyleMix>,
    pub preserve_color: bool,
    pub infer_every: u32,
    pub inference_scale: f64,
    pub temporal_smoothing: f64,
    pub value_range: ValueRangeChoice,
    pub size_multiple: u32,
    pub batch_size: u32,
    pub batch_timeout_ms: u32,
    pub max_queued: u32,
    pub leaky: bool,
    pub qos: bool,
    /// Processing latency to report (ms); -1: measured.
    pub latency_ms: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            manifest: None,
            device: DEFAULT_DEVICE.to_string(),
            server_model: None,
            server_model_version: None,
            threads: 0,
            engine_options: String::new(),
            strength: 1.0,
            style: 0,
            style_weights: String::new(),
            mix: None,
            preserve_color: false,
            infer_every: 1,
            inference_scale: 1.0,
            temporal_smoothing: DEFAULT_TEMPORAL_SMOOTHING,
            value_range: ValueRangeChoice::Auto,
            size_multiple: 0,
            batch_size: 1,
            batch_timeout_ms: 0,
            max_queued: 4,
            leaky: false,
            qos: true,
            latency_ms: -1,
        }
    }
}

/// The per-frame part of [`Settings`].
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameSettings {
    pub qos: bool,
    pub leaky: bool,
    pub infer_every: u32,
    pub params: StyleParams,
}

pub(super) fn properties() -> &'static [glib::ParamSpec] {
    static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
        let d = Settings::default();
        vec![
            glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb(
                    "Path of the ONNX image-to-image model (fast style, CycleGAN, ...). Changing it while \
                     playing loads the new model in the background and switches between frames; a model \
                     that fails to load is reported as a warning and the current one kept",
                )
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("manifest")
                .nick("Manifest")
                .blurb(
                    "Path of a JSON manifest describing the model (default: <model>.json beside the \
                     model if present, else the manifest embedded in the model, else what the graph says)",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("device")
                .nick("Device")
                .blurb(
                    "Inference device: cpu, cuda, cuda:N, tensorrt, tensorrt:N (TensorRT with CUDA for \
                     the rest; engines cached, see engine-options trt-cache), auto (CUDA if usable, \
                     else CPU with a warning), or grpc://HOST:PORT (an inference server speaking \
                     KServe v2 / Open Inference Protocol, e.g. Triton; see server-model)",
                )
                .default_value(Some(DEFAULT_DEVICE))
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("server-model")
                .nick("Server model")
                .blurb(
                    "With device=grpc://...: the model's name on the inference server (default: the \
                     model file's name without .onnx; without a model file the manifest comes from \
                     the server)",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("server-model-version")
                .nick("Server model version")
                .blurb("With device=grpc://...: the model version on the server (default: the server's choice)")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("threads")
                .nick("Threads")
                .blurb("CPU inference threads (0: the CPUs this process may use, by affinity mask and cgroup CPU quota)")
                .maximum(1024)
                .default_value(d.threads)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("engine-options")
                .nick("Engine options")
                .blurb(
                    "Inference engine settings, comma-separated KEY=VALUE: frame-io=auto|float|bytes \
                     (bytes: the model graph converts uint8 frames on the device; auto: bytes on CUDA), \
                     cuda-nhwc=true|false (channels-last convolutions), cuda-tf32=true|false, \
                     cuda-search=exhaustive|heuristic (cuDNN algorithm choice), cuda-graph=true|false \
                     (replay the model as a CUDA graph: one frame size, no conditioning input), \
                     profile=PATH (record ONNX Runtime's per-node profile), \
                     graph-rewrite=auto|true|false (rewrite upsample and image-out convolutions \
                     into faster equivalents; auto: on the CPU only); on an inference server: \
                     max-in-flight=N (requests a batch is split into, sent at once; 4), \
                     timeout=MS (deadline of a batch's requests, re-sends included; 10000), \
                     retries=N (re-sends of a request that cannot reach the server; 8)",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecDouble::builder("strength")
                .nick("Strength")
                .blurb("Blend of styled and original frame: 1 = fully styled, 0 = original")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(d.strength)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("style")
                .nick("Style")
                .blurb("Style index for conditioned multi-style models (see 'rsstyle inspect MODEL')")
                .default_value(d.style)
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("style-weights")
                .nick("Style weights")
                .blurb(
                    "Mix the styles of a conditioned multi-style model: one weight per style \
                     ('0.5,0,0.5') or STYLE:WEIGHT pairs by label or index ('starry-night:0.7,2:0.3'); \
                     weights are scaled to sum 1. Empty: the 'style' property picks one style. Invalid \
                     weights set while playing are refused with a warning",
                )
                .mutable_playing()
                .build(),
            glib::ParamSpecBoolean::builder("preserve-color")
                .nick("Preserve colour")
                .blurb("Keep the input's colours and take only the brightness from the style")
                .default_value(d.preserve_color)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("infer-every")
                .nick("Infer every")
                .blurb("Run the network on every Nth frame and repeat its result in between (timestamps kept)")
                .minimum(1)
                .maximum(1000)
                .default_value(d.infer_every)
                .mutable_playing()
                .build(),
            glib::ParamSpecDouble::builder("inference-scale")
                .nick("Inference scale")
                .blurb("Run the network on the frame scaled by this factor and scale the result back up (never below the model's minimum input size)")
                .minimum(0.05)
                .maximum(1.0)
                .default_value(d.inference_scale)
                .mutable_playing()
                .build(),
            glib::ParamSpecDouble::builder("temporal-smoothing")
                .nick("Temporal smoothing")
                .blurb(
                    "Against flicker: where the input did not change since the previous frame, keep \
                     this share of the previous output (an average over frames); where it moved, take \
                     the new output (0: off, every frame styled on its own)",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(d.temporal_smoothing)
                .mutable_playing()
                .build(),
            glib::ParamSpecEnum::builder::<ValueRangeChoice>("value-range")
                .nick("Value range")
                .blurb("Pixel value range the model works in, overriding its manifest")
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("size-multiple")
                .nick("Size multiple")
                .blurb(
                    "Pad frames (by reflection) to a multiple of this size before inference, \
                     overriding the manifest (0: from the manifest)",
                )
                .maximum(4096)
                .default_value(d.size_multiple)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("batch-size")
                .nick("Batch size")
                .blurb("Most frames inferred together (elements sharing a model share its batches)")
                .minimum(1)
                .maximum(256)
                .default_value(d.batch_size)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("batch-timeout")
                .nick("Batch timeout")
                .blurb("Milliseconds a batch waits for more frames after its first before it runs anyway")
                .maximum(60_000)
                .default_value(d.batch_timeout_ms)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("max-queued")
                .nick("Max queued")
                .blurb(
                    "Most frames inside the element, waiting or in inference (at least twice batch-size); \
                     beyond it upstream blocks, or with leaky=true new frames are dropped",
                )
                .minimum(1)
                .maximum(10_000)
                .default_value(d.max_queued)
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("leaky")
                .nick("Leaky")
                .blurb("Drop new frames when the queue is full instead of blocking upstream (live sources)")
                .default_value(d.leaky)
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("qos")
                .nick("QoS")
                .blurb("Drop frames before inference that downstream QoS events say would arrive late")
                .default_value(d.qos)
                .mutable_playing()
                .build(),
            glib::ParamSpecInt64::builder("latency")
                .nick("Latency")
                .blurb("Processing latency to report in milliseconds, added to batch-timeout (-1: measured)")
                .minimum(-1)
                .maximum(600_000)
                .default_value(d.latency_ms)
                .mutable_ready()
                .build(),
            glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                .nick("Statistics")
                .blurb(
                    "frames-in, frames-out, dropped-qos, dropped-leaky, batches, batch-frames, last-batch, \
                     mean-batch, inference-ms-p50, inference-ms-p99, convert-ms-p50, frame-ms-p50 (time \
                     a frame spends in the element), overhead-ms-p50 (that time less its batch's \
                     inference), latency-ms",
                )
                .read_only()
                .build(),
        ]
    });
    PROPERTIES.as_ref()
}

impl Settings {
    pub fn set(&mut self, name: &str, value: &glib::Value) {
        let path = |v: &glib::Value| v.get::<Option<String>>().expect("type checked");
        match name {
            "model" => self.model = path(value),
            "manifest" => self.manifest = path(value).map(PathBuf::from),
            "device" => self.device = path(value).unwrap_or_else(|| DEFAULT_DEVICE.to_string()),
            "server-model" => self.server_model = path(value).filter(|s| !s.is_empty()),
            "server-model-version" => {
                self.server_model_version = path(value).filter(|s| !s.is_empty())
            }
            "threads" => self.threads = value.get().expect("type checked"),
            "engine-options" => self.engine_options = path(value).unwrap_or_default(),
            "strength" => self.strength = value.get().expect("type checked"),
            "style" => self.style = value.get().expect("type checked"),
            "style-weights" => self.style_weights = path(value).unwrap_or_default(),
            "preserve-color" => self.preserve_color = value.get().expect("type checked"),
            "infer-every" => self.infer_every = value.get().expect("type checked"),
            "inference-scale" => self.inference_scale = value.get().expect("type checked"),
            "temporal-smoothing" => self.temporal_smoothing = value.get().expect("type checked"),
            "value-range" => self.value_range = value.get().expect("type checked"),
            "size-multiple" => self.size_multiple = value.get().expect("type checked"),
            "batch-size" => self.batch_size = value.get().expect("type checked"),
            "batch-timeout" => self.batch_timeout_ms = value.get().expect("type checked"),
            "max-queued" => self.max_queued = value.get().expect("type checked"),
            "leaky" => self.leaky = value.get().expect("type checked"),
            "qos" => self.qos = value.get().expect("type checked"),
            "latency" => self.latency_ms = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    pub fn get(&self, name: &str) -> glib::Value {
        match name {
            "model" => self.model.to_value(),
            "manifest" => self
                .manifest
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "device" => self.device.to_value(),
            "server-model" => self.server_model.to_value(),
            "server-model-version" => self.server_model_version.to_value(),
            "threads" => self.threads.to_value(),
            "engine-options" => self.engine_options.to_value(),
            "strength" => self.strength.to_value(),
            "style" => self.style.to_value(),
            "style-weights" => self.style_weights.to_value(),
            "preserve-color" => self.preserve_color.to_value(),
            "infer-every" => self.infer_every.to_value(),
            "inference-scale" => self.inference_scale.to_value(),
            "temporal-smoothing" => self.temporal_smoothing.to_value(),
            "value-range" => self.value_range.to_value(),
            "size-multiple" => self.size_multiple.to_value(),
            "batch-size" => self.batch_size.to_value(),
            "batch-timeout" => self.batch_timeout_ms.to_value(),
            "max-queued" => self.max_queued.to_value(),
            "leaky" => self.leaky.to_value(),
            "qos" => self.qos.to_value(),
            "latency" => self.latency_ms.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    /// Manifest overrides from `value-range` and `size-multiple`.
    pub fn overrides(&self) -> ManifestPatch {
        ManifestPatch {
            range: self.value_range.range(),
            size_multiple: (self.size_multiple > 0).then_some(self.size_multiple as usize),
            ..Default::default()
        }
    }

    pub fn style_params(&self) -> StyleParams {
        StyleParams {
            style: self.style as usize,
            mix: self.mix,
            inference_scale: self.inference_scale as f32,
            blend: Blend {
                strength: self.strength as f32,
                preserve_color: self.preserve_color,
            },
        }
    }

    /// What the streaming thread needs per frame, copied without allocating.
    pub fn frame_settings(&self) -> FrameSettings {
        FrameSettings {
            qos: self.qos,
            leaky: self.leaky,
            infer_every: self.infer_every,
            params: self.style_params(),
        }
    }

    /// Resolves `style_weights` against `manifest` into `mix` (none when empty).
    pub fn resolve_style_weights(
        &mut self,
        manifest: &crate::model::Manifest,
    ) -> Result<(), String> {
        self.mix = if self.style_weights.trim().is_empty() {
            None
        } else {
            Some(
                StyleMix::parse(&self.style_weights, manifest)
                    .map_err(|e| format!("style-weights '{}': {e}", self.style_weights))?,
            )
        };
        Ok(())
    }

    pub fn batch_timeout(&self) -> Duration {
        Duration::from_millis(self.batch_timeout_ms as u64)
    }
}
