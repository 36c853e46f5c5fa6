//! The packed 8-bit pixel formats the element accepts.

use std::fmt;

/// A packed 8-bit RGB-family pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgba,
    Bgra,
    Rgbx,
    Bgrx,
}

impl PixelFormat {
    /// Every supported format.
    pub const ALL: [PixelFormat; 6] = [
        Self::Rgb,
        Self::Bgr,
        Self::Rgba,
        Self::Bgra,
        Self::Rgbx,
        Self::Bgrx,
    ];

    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb | Self::Bgr => 3,
            _ => 4,
        }
    }

    /// Byte offsets of R, G and B within a pixel.
    pub fn rgb_offsets(self) -> [usize; 3] {
        match self {
            Self::Rgb | Self::Rgba | Self::Rgbx => [0, 1, 2],
            Self::Bgr | Self::Bgra | Self::Bgrx => [2, 1, 0],
        }
    }

    /// Byte offset of the fourth byte (alpha or padding), which is carried over from the input.
    pub fn alpha_offset(self) -> Option<usize> {
        (self.bytes_per_pixel() == 4).then_some(3)
    }

    /// The GStreamer format name (`RGB`, `BGRx`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rgb => "RGB",
            Self::Bgr => "BGR",
            Self::Rgba => "RGBA",
            Self::Bgra => "BGRA",
            Self::Rgbx => "RGBx",
            Self::Bgrx => "BGRx",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
