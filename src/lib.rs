//! rsstyle: real-time neural style transfer for GStreamer.
//!
//! The path of a frame: [`element`] (GStreamer glue) → [`frame`] (frame ⇄ tensor) →
//! [`engine`] (ONNX Runtime) described by a [`model`] manifest, and back. [`onnx`] writes ONNX
//! models (tests and the exporter); [`train`] trains the models on candle.

use gst::glib;

pub mod batch;
pub mod cpu;
pub mod element;
pub mod engine;
pub mod frame;
pub mod install;
pub mod model;
pub mod onnx;
pub mod stylizer;
pub mod train;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    element::register(Some(plugin))
}

gst::plugin_define!(
    rsstyle,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // GStreamer's name for the MIT licence; the crate is MIT OR Apache-2.0.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
