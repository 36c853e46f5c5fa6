use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::BaseTransformMode;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use crate::engine::{Device, Engine, EngineOptions, OrtEngine};
use crate::frame::{Blend, FrameMut, FrameRef, PixelFormat};
use crate::model::{ManifestPatch, Model, ValueRange};
use crate::stylizer::{StyleParams, Stylizer};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsstyle",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer"),
    )
});

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
const DEFAULT_STRENGTH: f64 = 1.0;

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    manifest: Option<PathBuf>,
    device: String,
    threads: u32,
    strength: f64,
    style: u32,
    value_range: ValueRangeChoice,
    size_multiple: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            manifest: None,
            device: DEFAULT_DEVICE.to_string(),
            threads: 0,
            strength: DEFAULT_STRENGTH,
            style: 0,
            value_range: ValueRangeChoice::Auto,
            size_multiple: 0,
        }
    }
}

impl Settings {
    fn overrides(&self) -> ManifestPatch {
        ManifestPatch {
            range: self.value_range.range(),
            size_multiple: (self.size_multiple > 0).then_some(self.size_multiple as usize),
            ..Default::default()
        }
    }
}

#[derive(Default)]
pub struct RsStyle {
    settings: Mutex<Settings>,
    stylizer: Mutex<Option<Stylizer>>,
    /// Styles the loaded model offers (0 while none is loaded).
    style_count: AtomicUsize,
}

#[glib::object_subclass]
impl ObjectSubclass for RsStyle {
    const NAME: &'static str = "GstRsStyle";
    type Type = super::RsStyle;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for RsStyle {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Path of the ONNX image-to-image model (fast style, CycleGAN, ...)")
                    .mutable_ready()
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
                    .blurb("Inference device: cpu, cuda, cuda:N, or auto (CUDA if usable, else CPU with a warning)")
                    .default_value(Some(DEFAULT_DEVICE))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("CPU inference threads (0: one per core)")
                    .maximum(1024)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("strength")
                    .nick("Strength")
                    .blurb("Blend of styled and original frame: 1 = fully styled, 0 = original")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_STRENGTH)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("style")
                    .nick("Style")
                    .blurb("Style index for conditioned multi-style models (see 'rsstyle inspect MODEL')")
                    .default_value(0)
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
                    .default_value(0)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => {
                settings.model = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .map(PathBuf::from)
            }
            "manifest" => {
                settings.manifest = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .map(PathBuf::from)
            }
            "device" => {
                settings.device = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_else(|| DEFAULT_DEVICE.to_string())
            }
            "threads" => settings.threads = value.get().expect("type checked"),
            "strength" => settings.strength = value.get().expect("type checked"),
            "style" => {
                let style: u32 = value.get().expect("type checked");
                let count = self.style_count.load(Ordering::Relaxed);
                if count > 0 && style as usize >= count {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "style {style} is out of range (model has {count}); keeping {}",
                        settings.style
                    );
                    drop(settings);
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
                settings.style = style;
            }
            "value-range" => settings.value_range = value.get().expect("type checked"),
            "size-multiple" => settings.size_multiple = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => settings
                .model
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "manifest" => settings
                .manifest
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "device" => settings.device.to_value(),
            "threads" => settings.threads.to_value(),
            "strength" => settings.strength.to_value(),
            "style" => settings.style.to_value(),
            "value-range" => settings.value_range.to_value(),
            "size-multiple" => settings.size_multiple.to_value(),
            other => unreachable!("unknown property {other}"),
        }
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
                .format_list(PixelFormat::ALL.map(video_format))
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
}

fn video_format(f: PixelFormat) -> gst_video::VideoFormat {
    match f {
        PixelFormat::Rgb => gst_video::VideoFormat::Rgb,
        PixelFormat::Bgr => gst_video::VideoFormat::Bgr,
        PixelFormat::Rgba => gst_video::VideoFormat::Rgba,
        PixelFormat::Bgra => gst_video::VideoFormat::Bgra,
        PixelFormat::Rgbx => gst_video::VideoFormat::Rgbx,
        PixelFormat::Bgrx => gst_video::VideoFormat::Bgrx,
    }
}

fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    PixelFormat::ALL.into_iter().find(|p| video_format(*p) == f)
}

impl RsStyle {
    /// Loads the model and builds the engine from the current settings.
    fn load(&self, settings: &Settings) -> Result<Stylizer, gst::ErrorMessage> {
        let path = settings.model.clone().ok_or_else(|| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("no model set: set the 'model' property to an ONNX file")
            )
        })?;
        let device: Device = settings
            .device
            .parse()
            .map_err(|e: String| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        let model = Model::load(&path, settings.manifest.as_deref(), &settings.overrides())
            .map_err(|e| {
                let kind = match e {
                    crate::model::ModelError::Missing { .. } => gst::ResourceError::NotFound,
                    crate::model::ModelError::Unreadable { .. } => gst::ResourceError::OpenRead,
                    _ => gst::ResourceError::Failed,
                };
                gst::error_msg!(kind, ("{}", e))
            })?;
        let params = StyleParams {
            style: settings.style as usize,
            ..Default::default()
        };
        Stylizer::check_params(&model.manifest, &params).map_err(|e| {
            gst::error_msg!(gst::LibraryError::Settings, ("{}: {}", path.display(), e))
        })?;
        gst::info!(
            CAT,
            imp = self,
            "model {} ({})",
            path.display(),
            model.sources.join(" + ")
        );
        gst::debug!(CAT, imp = self, "manifest:\n{}", model.manifest.describe());

        let options = EngineOptions {
            device,
            threads: settings.threads as usize,
        };
        let (engine, notes) = OrtEngine::load(&model, &options).map_err(|e| {
            let kind = match e {
                crate::engine::EngineError::Device(_) => gst::LibraryError::Settings,
                _ => gst::LibraryError::Init,
            };
            gst::error_msg!(kind, ("{}", e))
        })?;
        for warning in notes.warnings {
            gst::warning!(CAT, imp = self, "{warning}");
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{}", warning));
        }
        gst::info!(
            CAT,
            imp = self,
            "running on {}",
            engine.device_description()
        );
        self.style_count
            .store(model.manifest.style_count(), Ordering::Relaxed);
        Ok(Stylizer::new(Box::new(engine)))
    }
}

impl BaseTransformImpl for RsStyle {
    const MODE: BaseTransformMode = BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let stylizer = self.load(&settings)?;
        *self.stylizer.lock().unwrap() = Some(stylizer);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.stylizer.lock().unwrap() = None;
        self.style_count.store(0, Ordering::Relaxed);
        Ok(())
    }
}

impl VideoFilterImpl for RsStyle {
    fn transform_frame(
        &self,
        inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
        outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let params = {
            let s = self.settings.lock().unwrap();
            StyleParams {
                style: s.style as usize,
                blend: Blend {
                    strength: s.strength as f32,
                    preserve_color: false,
                },
                ..Default::default()
            }
        };
        let format = pixel_format(inframe.format()).ok_or(gst::FlowError::NotNegotiated)?;
        let input = FrameRef {
            data: inframe.plane_data(0).map_err(|_| gst::FlowError::Error)?,
            width: inframe.width() as usize,
            height: inframe.height() as usize,
            stride: inframe.plane_stride()[0] as usize,
            format,
        };
        let (width, height, stride) = (
            outframe.width() as usize,
            outframe.height() as usize,
            outframe.plane_stride()[0] as usize,
        );
        let output = FrameMut {
            data: outframe
                .plane_data_mut(0)
                .map_err(|_| gst::FlowError::Error)?,
            width,
            height,
            stride,
            format,
        };

        let mut guard = self.stylizer.lock().unwrap();
        let stylizer = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        stylizer.process(input, output, &params).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Failed, ("{}", e));
            gst::FlowError::Error
        })?;
        Ok(gst::FlowSuccess::Ok)
    }
}
