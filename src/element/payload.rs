//! A frame on its way through the batcher: the mapped input buffer and the mapped output
//! buffer it is styled into.

use gst_video::prelude::*;

use crate::batch::Payload;
use crate::frame::{FrameMut, FrameRef, PixelFormat};

pub(super) fn video_format(f: PixelFormat) -> gst_video::VideoFormat {
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

/// Gives `out` the timestamps, offsets and flags of `input`.
pub(super) fn copy_timing(input: &gst::BufferRef, out: &mut gst::BufferRef) {
    out.set_pts(input.pts());
    out.set_dts(input.dts());
    out.set_duration(input.duration());
    out.set_offset(input.offset());
    out.set_offset_end(input.offset_end());
    out.set_flags(input.flags() - gst::BufferFlags::TAG_MEMORY);
}

/// Input and output frames, mapped for the whole trip.
pub struct VideoPayload {
    input: gst_video::VideoFrame<gst_video::video_frame::Readable>,
    output: gst_video::VideoFrame<gst_video::video_frame::Writable>,
    format: PixelFormat,
}

impl VideoPayload {
    /// Maps `input` and an output buffer from `pool` that carries the input's timing.
    pub fn new(
        input: gst::Buffer,
        info: &gst_video::VideoInfo,
        pool: &gst::BufferPool,
    ) -> Result<Self, String> {
        let format = pixel_format(info.format())
            .ok_or_else(|| format!("unsupported format {}", info.format()))?;
        let mut output = pool
            .acquire_buffer(None)
            .map_err(|e| format!("no output buffer: {e:?}"))?;
        copy_timing(
            &input,
            output.get_mut().expect("a fresh pool buffer is writable"),
        );
        let input = gst_video::VideoFrame::from_buffer_readable(input, info)
            .map_err(|_| "cannot map the input frame (size does not match the caps)".to_string())?;
        let output = gst_video::VideoFrame::from_buffer_writable(output, info)
            .map_err(|_| "cannot map the output frame".to_string())?;
        Ok(Self {
            input,
            output,
            format,
        })
    }

    /// Whether the input buffer starts after a discontinuity (seek, lost data).
    pub fn is_discont(&self) -> bool {
        self.input
            .buffer()
            .flags()
            .contains(gst::BufferFlags::DISCONT)
    }

    /// The styled output buffer.
    pub fn into_output(self) -> gst::Buffer {
        self.output.into_buffer()
    }
}

impl Payload for VideoPayload {
    fn size(&self) -> (usize, usize) {
        (self.input.width() as usize, self.input.height() as usize)
    }

    fn frames(&mut self) -> (FrameRef<'_>, FrameMut<'_>) {
        let (width, height) = self.size();
        let input = FrameRef {
            data: self
                .input
                .plane_data(0)
                .expect("plane 0 of a packed format"),
            width,
            height,
            stride: self.input.plane_stride()[0] as usize,
            format: self.format,
        };
        let stride = self.output.plane_stride()[0] as usize;
        let output = FrameMut {
            data: self
                .output
                .plane_data_mut(0)
                .expect("plane 0 of a packed format"),
            width,
            height,
            stride,
            format: self.format,
        };
        (input, output)
    }
}
