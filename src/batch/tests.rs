use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::engine::{Engine, EngineError, Output};
use crate::frame::PixelFormat;
use crate::model::{ChannelOrder, ElementType, Layout, SizeRule, ValueRange};

/// Identity engine that records batch sizes and can be slowed down.
struct RecordingEngine {
    manifest: Manifest,
    batches: Arc<Mutex<Vec<usize>>>,
    delay: Duration,
}

impl Engine for RecordingEngine {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn device_description(&self) -> &str {
        "test"
    }
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        _conditioning: Option<&[f32]>,
        output: Output<'_, f32>,
    ) -> Result<(), EngineError> {
        std::thread::sleep(self.delay);
        self.batches.lock().unwrap().push(shape[0]);
        let inverted: Vec<f32> = input.iter().map(|v| 255.0 - v).collect();
        output(shape, &inverted);
        Ok(())
    }
}

fn manifest() -> Manifest {
    Manifest {
        input: "input".into(),
        output: "output".into(),
        layout: Layout::Nchw,
        element_type: ElementType::F32,
        output_element_type: ElementType::F32,
        input_range: ValueRange::Byte,
        output_range: ValueRange::Byte,
        channel_order: ChannelOrder::Rgb,
        size: SizeRule::Multiple(1),
        min_size: crate::model::MinSize::ANY,
        max_batch: None,
        conditioning: None,
        description: None,
    }
}

/// An RGB frame of one grey level and its output buffer.
struct Grey {
    width: usize,
    input: Vec<u8>,
    output: Vec<u8>,
}

impl Grey {
    fn new(width: usize, level: u8) -> Self {
        Self {
            width,
            input: vec![level; width * 3],
            output: vec![0; width * 3],
        }
    }
}

impl Payload for Grey {
    fn size(&self) -> (usize, usize) {
        (self.width, 1)
    }
    fn frames(&mut self) -> (FrameRef<'_>, FrameMut<'_>) {
        let w = self.width;
        (
            FrameRef {
                data: &self.input,
                width: w,
                height: 1,
                stride: w * 3,
                format: PixelFormat::Rgb,
            },
            FrameMut {
                data: &mut self.output,
                width: w,
                height: 1,
                stride: w * 3,
                format: PixelFormat::Rgb,
            },
        )
    }
}

fn batcher(
    size: usize,
    timeout: Duration,
    delay: Duration,
) -> (Batcher<Grey>, Arc<Mutex<Vec<usize>>>) {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let engine = RecordingEngine {
        manifest: manifest(),
        batches: batches.clone(),
        delay,
    };
    (
        Batcher::new(Stylizer::new(Box::new(engine)), size, timeout),
        batches,
    )
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn ten_frames_in_batches_of_four_come_back_in_order() {
    let (b, batches) = batcher(4, LONG, Duration::ZERO);
    let generation = Generation::default();
    let replies: Vec<_> = (0..10u8)
        .map(|i| b.submit(Grey::new(2, i * 10), StyleParams::default(), &generation))
        .collect();
    b.drain();
    for (i, r) in replies.into_iter().enumerate() {
        let done = r.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(done.result, Ok(()));
        assert_eq!(done.payload.output, vec![255 - i as u8 * 10; 6]);
    }
    assert_eq!(*batches.lock().unwrap(), [4, 4, 2]);
    let stats = b.stats();
    assert_eq!((stats.batches, stats.frames), (3, 10));
}

#[test]
fn a_partial_batch_goes_when_the_timeout_passes() {
    let (b, batches) = batcher(8, Duration::from_millis(30), Duration::ZERO);
    let generation = Generation::default();
    let reply = b.submit(Grey::new(1, 5), StyleParams::default(), &generation);
    let done = reply.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(done.payload.output, vec![250; 3]);
    assert!(
        done.latency >= Duration::from_millis(30),
        "{:?}",
        done.latency
    );
    assert_eq!(*batches.lock().unwrap(), [1]);
}

#[test]
fn different_frame_sizes_do_not_share_a_batch() {
    let (b, batches) = batcher(4, LONG, Duration::ZERO);
    let generation = Generation::default();
    let replies: Vec<_> = [2, 2, 3, 3, 3]
        .into_iter()
        .map(|w| b.submit(Grey::new(w, 1), StyleParams::default(), &generation))
        .collect();
    b.drain();
    for r in replies {
        assert_eq!(
            r.recv_timeout(Duration::from_secs(10)).unwrap().result,
            Ok(())
        );
    }
    assert_eq!(*batches.lock().unwrap(), [2, 3]);
}

#[test]
fn bumping_the_generation_cancels_queued_frames() {
    let (b, batches) = batcher(1, Duration::ZERO, Duration::from_millis(50));
    let generation = Generation::default();
    let replies: Vec<_> = (0..5)
        .map(|_| b.submit(Grey::new(1, 0), StyleParams::default(), &generation))
        .collect();
    std::thread::sleep(Duration::from_millis(10));
    generation.bump();
    let after = b.submit(Grey::new(1, 7), StyleParams::default(), &generation);
    assert_eq!(
        after
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .payload
            .output,
        vec![248; 3]
    );
    let completed = replies
        .into_iter()
        .filter(|r| r.recv_timeout(Duration::from_secs(1)).is_ok())
        .count();
    // At most the frame already in inference when the generation moved finishes; the others
    // never reach the engine.
    assert!(completed <= 1, "{completed} cancelled frames completed");
    assert_eq!(batches.lock().unwrap().len(), completed + 1);
}

/// An engine that answers every batch with a tensor of half the input's width (`channels`
/// channels), the input's first half.
struct HalfWidthEngine {
    manifest: Manifest,
    channels: usize,
}

impl Engine for HalfWidthEngine {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn device_description(&self) -> &str {
        "test"
    }
    fn infer(
        &mut self,
        input: &[f32],
        shape: [usize; 4],
        _conditioning: Option<&[f32]>,
        output: Output<'_, f32>,
    ) -> Result<(), EngineError> {
        let [n, _, h, w] = shape;
        let half: Vec<f32> = input
            .chunks_exact(w)
            .flat_map(|row| row[..w / 2].iter().copied())
            .collect();
        output(
            [n, self.channels, h, w / 2],
            &half[..n * self.channels * h * w / 2],
        );
        Ok(())
    }
}

fn half_width_batcher(channels: usize) -> Batcher<Grey> {
    let engine = HalfWidthEngine {
        manifest: manifest(),
        channels,
    };
    Batcher::new(Stylizer::new(Box::new(engine)), 1, Duration::ZERO)
}

#[test]
fn an_output_of_another_size_is_resized_to_the_frame_with_one_warning() {
    let b = half_width_batcher(3);
    let run = |level: u8| {
        b.submit(
            Grey::new(4, level),
            StyleParams::default(),
            &Generation::default(),
        )
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
    };
    let first = run(9);
    assert_eq!(first.result, Ok(()));
    // A uniform 2-pixel output stretched over 4 pixels: the same level everywhere.
    assert_eq!(first.payload.output, vec![9; 12]);
    assert_eq!(
        first.warning.as_deref(),
        Some("the model returned 2x1 images for 4x1 input; resizing its output to the frame")
    );
    let second = run(70);
    assert_eq!(second.payload.output, vec![70; 12]);
    assert_eq!(second.warning, None, "the same sizes are reported once");
}

#[test]
fn an_output_that_is_no_image_batch_fails_and_leaves_the_frame_untouched() {
    let b = half_width_batcher(1);
    let reply = b.submit(
        Grey::new(4, 9),
        StyleParams::default(),
        &Generation::default(),
    );
    let done = reply.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        done.result,
        Err(
            "inference failed: model output has shape [1, 1, 1, 2] for input [1, 3, 1, 4]: \
             rsstyle needs a batch of 1 images of 3 channels"
                .to_string()
        )
    );
    assert_eq!(done.payload.output, vec![0; 12]);
}
