//! Camera capture behind a [`FrameSource`] trait: nokhwa for real cameras, a synthetic camera
//! for tests and demos.

use anyhow::{Context, Result, bail};

/// One captured RGB frame, tightly packed.
pub struct CapturedFrame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Something that delivers camera frames. Cameras need not be `Send`: each lives on the thread
/// that opened it.
pub trait FrameSource {
    /// Width, height and frames per second of what `next_frame` returns.
    fn format(&self) -> (u32, u32, u32);
    /// Blocks until the next frame is there.
    fn next_frame(&mut self) -> Result<CapturedFrame>;
    /// A name for messages.
    fn name(&self) -> String;
}

/// A camera as the user names it: an index or (part of) its name.
pub fn open_camera(spec: &str, width: u32, height: u32, fps: u32) -> Result<Box<dyn FrameSource>> {
    if spec == "fake" {
        return Ok(Box::new(SyntheticCamera::new(width, height, fps)));
    }
    let cameras = list_cameras()?;
    let index = match spec.parse::<u32>() {
        Ok(i) => cameras.iter().find(|(n, _)| *n == i).map(|(n, _)| *n),
        Err(_) => cameras
            .iter()
            .find(|(_, name)| name.to_lowercase().contains(&spec.to_lowercase()))
            .map(|(n, _)| *n),
    };
    let Some(index) = index else {
        let found = if cameras.is_empty() {
            "no cameras were found".to_string()
        } else {
            let names: Vec<String> = cameras.iter().map(|(i, n)| format!("{i}: {n}")).collect();
            format!("the cameras found are {}", names.join(", "))
        };
        bail!(
            "camera '{spec}' is not available: {found}; use --source test (a test pattern), \
             --source FILE or --source 'GSTREAMER SOURCE DESCRIPTION' instead"
        );
    };
    Ok(Box::new(NokhwaCamera::open(index, width, height, fps)?))
}

/// The cameras nokhwa can see, as (index, human name).
pub fn list_cameras() -> Result<Vec<(u32, String)>> {
    let found = nokhwa::query(nokhwa::utils::ApiBackend::Auto).unwrap_or_default();
    Ok(found
        .iter()
        .filter_map(|c| match c.index() {
            nokhwa::utils::CameraIndex::Index(i) => Some((*i, c.human_name())),
            nokhwa::utils::CameraIndex::String(_) => None,
        })
        .collect())
}

/// A real camera through nokhwa, decoded to RGB.
struct NokhwaCamera {
    camera: nokhwa::Camera,
    name: String,
}

impl NokhwaCamera {
    fn open(index: u32, width: u32, height: u32, fps: u32) -> Result<Self> {
        use nokhwa::pixel_format::RgbFormat;
        use nokhwa::utils::{
            CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
            Resolution,
        };
        let wanted = CameraFormat::new(Resolution::new(width, height), FrameFormat::MJPEG, fps);
        let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
        let mut camera = nokhwa::Camera::new(CameraIndex::Index(index), format)
            .with_context(|| format!("cannot open camera {index}"))?;
        camera
            .open_stream()
            .with_context(|| format!("cannot start camera {index}"))?;
        let name = camera.info().human_name();
        Ok(Self { camera, name })
    }
}

impl FrameSource for NokhwaCamera {
    fn format(&self) -> (u32, u32, u32) {
        let r = self.camera.resolution();
        (r.width(), r.height(), self.camera.frame_rate())
    }

    fn next_frame(&mut self) -> Result<CapturedFrame> {
        let buffer = self.camera.frame().context("camera frame")?;
        let image = buffer
            .decode_image::<nokhwa::pixel_format::RgbFormat>()
            .context("decoding the camera frame")?;
        Ok(CapturedFrame {
            width: image.width(),
            height: image.height(),
            rgb: image.into_raw(),
        })
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A synthetic camera: a moving colour gradient at the requested format and rate.
pub struct SyntheticCamera {
    width: u32,
    height: u32,
    fps: u32,
    frame: u64,
    next_due: std::time::Instant,
}

impl SyntheticCamera {
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        Self {
            width,
            height,
            fps: fps.max(1),
            frame: 0,
            next_due: std::time::Instant::now(),
        }
    }
}

impl FrameSource for SyntheticCamera {
    fn format(&self) -> (u32, u32, u32) {
        (self.width, self.height, self.fps)
    }

    fn next_frame(&mut self) -> Result<CapturedFrame> {
        // Deliver at the camera's rate, like a real one.
        let now = std::time::Instant::now();
        if self.next_due > now {
            std::thread::sleep(self.next_due - now);
        }
        self.next_due += std::time::Duration::from_secs_f64(1.0 / self.fps as f64);
        let (w, h, t) = (
            self.width as usize,
            self.height as usize,
            self.frame as usize,
        );
        self.frame += 1;
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&[
                    ((x + t * 4) % 256) as u8,
                    ((y + t * 2) % 256) as u8,
                    ((x + y) % 256) as u8,
                ]);
            }
        }
        Ok(CapturedFrame {
            width: self.width,
            height: self.height,
            rgb,
        })
    }

    fn name(&self) -> String {
        "synthetic camera".to_string()
    }
}
