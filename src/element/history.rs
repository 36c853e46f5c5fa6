//! The element's per-stream temporal history (`temporal-smoothing`, see
//! [`crate::frame::temporal`]): one per element instance, so streams that share an engine never
//! share a history. The source-pad task applies it to each styled frame in stream order, so the
//! frames of a batch are stabilised one after another.

use super::payload::VideoPayload;
use crate::batch::Payload;
use crate::frame::temporal::Stabilizer;
use crate::stylizer::StyleParams;

/// What a frame was styled with: a frame styled otherwise (another model, style, strength or
/// inference scale) restarts the history, so that a change shows at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Look {
    pub params: StyleParams,
    /// Counts model switches.
    pub model: u64,
}

/// The previous input and output of one stream.
#[derive(Debug, Default)]
pub(super) struct History {
    stabilizer: Stabilizer,
    look: Option<Look>,
}

impl History {
    /// Forgets the history (flush, caps change, new stream, start): the next frame passes as
    /// styled.
    pub fn reset(&mut self) {
        self.stabilizer.reset();
    }

    /// Stabilises `payload`'s output against the previous frame with `smoothing` (0: off, and
    /// the history is dropped), then keeps it as the previous frame. A discontinuity flag on
    /// the input or a new [`Look`] restarts the history first.
    pub fn apply(&mut self, payload: &mut VideoPayload, look: Look, smoothing: f64) {
        if smoothing <= 0.0 || payload.is_discont() || self.look != Some(look) {
            self.stabilizer.reset();
        }
        self.look = Some(look);
        if smoothing > 0.0 {
            let (input, mut output) = payload.frames();
            self.stabilizer.apply(&input, &mut output, smoothing as f32);
        }
    }
}
