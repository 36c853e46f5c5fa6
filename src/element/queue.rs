//! The element's ordered queue between the sink pad and the source-pad task: frames and
//! serialized events in stream order, with at most `max-queued` frames inside the element
//! (waiting or in inference). Events take no frame slot, so they never make a frame drop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub(super) struct OrderedQueue<T> {
    items: (Sender<T>, Receiver<T>),
    /// One token per frame inside the element.
    slots: (Sender<()>, Receiver<()>),
}

impl<T> OrderedQueue<T> {
    pub fn new(max_frames: usize) -> Self {
        Self {
            items: crossbeam_channel::unbounded(),
            slots: crossbeam_channel::bounded(max_frames.max(1)),
        }
    }

    /// Takes a frame slot if one is free.
    pub fn try_reserve_frame(&self) -> bool {
        !matches!(self.slots.0.try_send(()), Err(TrySendError::Full(())))
    }

    /// Takes a frame slot, waiting for one; gives up (false) once `flushing` is set.
    pub fn reserve_frame(&self, flushing: &AtomicBool) -> bool {
        loop {
            if flushing.load(Ordering::SeqCst) {
                return false;
            }
            if self
                .slots
                .0
                .send_timeout((), Duration::from_millis(20))
                .is_ok()
            {
                return true;
            }
        }
    }

    /// Gives back the slot of a frame that has left the element.
    pub fn release_frame(&self) {
        let _ = self.slots.1.try_recv();
    }

    pub fn push(&self, item: T) {
        // Both ends live in `self`: the send cannot fail.
        let _ = self.items.0.send(item);
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Option<T> {
        self.items.1.recv_timeout(timeout).ok()
    }

    /// Drops every queued item and frees every frame slot (flush); returns how many items.
    pub fn clear(&self) -> usize {
        let dropped = self.items.1.try_iter().count();
        while self.slots.1.try_recv().is_ok() {}
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_take_no_frame_slot() {
        let q = OrderedQueue::new(2);
        q.push("caps");
        q.push("segment");
        assert!(q.try_reserve_frame());
        assert!(q.try_reserve_frame());
        assert!(!q.try_reserve_frame());
        q.release_frame();
        assert!(q.try_reserve_frame());
        assert_eq!(q.recv_timeout(Duration::ZERO), Some("caps"));
        assert_eq!(q.clear(), 1);
        assert!(q.try_reserve_frame() && q.try_reserve_frame());
    }

    #[test]
    fn waiting_for_a_slot_ends_on_flush() {
        let q = OrderedQueue::<()>::new(1);
        assert!(q.try_reserve_frame());
        let flushing = AtomicBool::new(true);
        assert!(!q.reserve_frame(&flushing));
    }
}
