//! The `rsstyle` GStreamer element: raw RGB-family video in, styled video of the same format
//! and size out, inferred off the streaming thread in batches.

use gst::glib;
use gst::prelude::*;

mod history;
mod imp;
mod payload;
mod queue;
mod settings;

pub use settings::ValueRangeChoice;

glib::wrapper! {
    /// The `rsstyle` element.
    pub struct RsStyle(ObjectSubclass<imp::RsStyle>) @extends gst::Element, gst::Object;
}

/// Registers the element with `plugin` (or statically, with `None`).
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(plugin, "rsstyle", gst::Rank::NONE, RsStyle::static_type())
}
