//! Flicker and ghosting of styled video, measured against its input (`rsstyle evaluate
//! --video`).
//!
//! For consecutive frames t−1, t of the input, a pixel is *static* when every colour channel
//! changed by less than [`STATIC_THRESHOLD`] (of 255), otherwise *moving*. Then:
//!
//! - **flicker** of a styled stream: mean |out_t − out_{t−1}| over the static pixels (and their
//!   3 channels), 0..255 — what a viewer sees as shimmer on a still wall;
//! - **input change**: the same mean of |in_t − in_{t−1}|, the input's own (noise) change there,
//!   so that flicker can be quoted as a ratio to it;
//! - **ghosting** of a stabilised stream against its per-frame counterpart: mean
//!   |stabilised_t − per-frame_t| over the moving pixels — how far the stabilised output lags
//!   behind motion, so that a mode cannot lower flicker by freezing the picture.
//!
//! Frames are packed RGB, 3 bytes a pixel, all of one size. Pure functions; nothing here knows
//! GStreamer.

/// A channel change below this (of 255) in every channel makes a pixel static.
pub const STATIC_THRESHOLD: u8 = 3;

/// A running mean of absolute channel differences.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mean {
    /// Sum of the absolute differences.
    pub sum: u64,
    /// Channel values summed.
    pub count: u64,
}

impl Mean {
    /// The mean (0..255); NaN when nothing was added.
    pub fn value(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

/// `mask[p]`: whether pixel `p` is static between RGB frames `prev` and `cur`.
pub fn static_mask(prev: &[u8], cur: &[u8], mask: &mut Vec<bool>) {
    assert_eq!(prev.len(), cur.len(), "frames of different sizes");
    mask.clear();
    mask.extend(
        prev.chunks_exact(3)
            .zip(cur.chunks_exact(3))
            .map(|(p, c)| (0..3).all(|i| p[i].abs_diff(c[i]) < STATIC_THRESHOLD)),
    );
}

/// Adds |a − b| of every channel of the pixels whose `mask` equals `on` to `mean`.
pub fn add_masked_difference(a: &[u8], b: &[u8], mask: &[bool], on: bool, mean: &mut Mean) {
    assert_eq!(a.len(), b.len(), "frames of different sizes");
    assert_eq!(a.len(), 3 * mask.len(), "mask of another size");
    for ((p, q), _) in a
        .chunks_exact(3)
        .zip(b.chunks_exact(3))
        .zip(mask)
        .filter(|(_, m)| **m == on)
    {
        mean.sum += (0..3).map(|i| p[i].abs_diff(q[i]) as u64).sum::<u64>();
        mean.count += 3;
    }
}

/// Flicker and ghosting of several styled versions of one input video, frame by frame.
#[derive(Debug, Clone)]
pub struct TemporalMeter {
    /// For each stream, the per-frame stream its ghosting is measured against, if any.
    references: Vec<Option<usize>>,
    previous: Option<(Vec<u8>, Vec<Vec<u8>>)>,
    mask: Vec<bool>,
    /// The input's own change on static pixels.
    pub input_change: Mean,
    /// Per stream: its change on static pixels.
    pub flicker: Vec<Mean>,
    /// Per stream: its difference from its reference on moving pixels.
    pub ghosting: Vec<Mean>,
    /// Static and moving pixels counted over all frame pairs.
    pub static_pixels: u64,
    pub moving_pixels: u64,
    /// Frames added.
    pub frames: u64,
}

impl TemporalMeter {
    /// A meter for streams whose ghosting references are `references` (`references[i]`: the
    /// per-frame stream that stream i is a stabilised version of).
    pub fn new(references: Vec<Option<usize>>) -> Self {
        let n = references.len();
        assert!(
            references.iter().flatten().all(|&r| r < n),
            "a reference out of range"
        );
        Self {
            references,
            previous: None,
            mask: Vec::new(),
            input_change: Mean::default(),
            flicker: vec![Mean::default(); n],
            ghosting: vec![Mean::default(); n],
            static_pixels: 0,
            moving_pixels: 0,
            frames: 0,
        }
    }

    /// Adds the next frame: the input and every stream's output, RGB, all of one size.
    pub fn add(&mut self, input: &[u8], outputs: &[&[u8]]) {
        assert_eq!(outputs.len(), self.references.len(), "one output a stream");
        self.frames += 1;
        if let Some((prev_input, prev_outputs)) = &self.previous {
            static_mask(prev_input, input, &mut self.mask);
            let statics = self.mask.iter().filter(|m| **m).count() as u64;
            self.static_pixels += statics;
            self.moving_pixels += self.mask.len() as u64 - statics;
            add_masked_difference(input, prev_input, &self.mask, true, &mut self.input_change);
            for (i, (out, prev)) in outputs.iter().zip(prev_outputs).enumerate() {
                add_masked_difference(out, prev, &self.mask, true, &mut self.flicker[i]);
                if let Some(r) = self.references[i] {
                    add_masked_difference(
                        out,
                        outputs[r],
                        &self.mask,
                        false,
                        &mut self.ghosting[i],
                    );
                }
            }
        }
        match &mut self.previous {
            Some((prev_input, prev_outputs)) => {
                prev_input.copy_from_slice(input);
                for (p, o) in prev_outputs.iter_mut().zip(outputs) {
                    p.copy_from_slice(o);
                }
            }
            None => {
                self.previous = Some((input.to_vec(), outputs.iter().map(|o| o.to_vec()).collect()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pixel_is_static_when_every_channel_changed_by_less_than_3() {
        let prev = [10, 10, 10, 10, 10, 10, 10, 10, 10, 200, 0, 0];
        let cur = [12, 8, 12, 13, 10, 10, 10, 10, 7, 200, 0, 0];
        let mut mask = Vec::new();
        static_mask(&prev, &cur, &mut mask);
        assert_eq!(mask, [true, false, false, true]);
    }

    #[test]
    fn masked_differences_average_over_channels_of_the_chosen_pixels() {
        let a = [0, 0, 0, 10, 20, 30, 5, 5, 5];
        let b = [1, 2, 3, 0, 0, 0, 5, 5, 5];
        let mask = [true, false, true];
        let mut on = Mean::default();
        add_masked_difference(&a, &b, &mask, true, &mut on);
        assert_eq!(on, Mean { sum: 6, count: 6 });
        assert_eq!(on.value(), 1.0);
        let mut off = Mean::default();
        add_masked_difference(&a, &b, &mask, false, &mut off);
        assert_eq!(off.value(), 20.0);
        assert!(Mean::default().value().is_nan());
    }

    #[test]
    fn flicker_ratio_and_ghosting_of_two_streams() {
        // Two pixels: pixel 0 static (input 100 → 101), pixel 1 moving (0 → 50).
        // Stream 0 (per frame) flickers by 12 on pixel 0; stream 1 (stabilised) by 2 and lags
        // 5 behind stream 0 on the moving pixel.
        let mut meter = TemporalMeter::new(vec![None, Some(0)]);
        let in0 = [100, 100, 100, 0, 0, 0];
        let in1 = [101, 101, 101, 50, 50, 50];
        meter.add(&in0, &[&[50, 50, 50, 0, 0, 0], &[50, 50, 50, 0, 0, 0]]);
        assert_eq!(meter.static_pixels + meter.moving_pixels, 0);
        meter.add(
            &in1,
            &[&[62, 62, 62, 90, 90, 90], &[52, 52, 52, 85, 85, 85]],
        );
        assert_eq!((meter.static_pixels, meter.moving_pixels), (1, 1));
        assert_eq!(meter.input_change.value(), 1.0);
        assert_eq!(meter.flicker[0].value(), 12.0);
        assert_eq!(meter.flicker[1].value(), 2.0);
        assert!(meter.ghosting[0].value().is_nan());
        assert_eq!(meter.ghosting[1].value(), 5.0);
        // The next pair compares with frame 1, not frame 0.
        meter.add(
            &in1,
            &[&[62, 62, 62, 90, 90, 90], &[52, 52, 52, 85, 85, 85]],
        );
        assert_eq!(meter.static_pixels, 3);
        assert_eq!(meter.flicker[0], Mean { sum: 36, count: 9 });
        assert_eq!(meter.frames, 3);
    }
}
