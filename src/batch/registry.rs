//! Sharing batchers: streams that use the same model on the same device share one loaded
//! engine and one batcher, so their frames can fill batches together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{Batcher, Payload};

/// Batchers by key (model, device and settings that change the engine).
pub struct Registry<P: Payload> {
    batchers: Mutex<HashMap<String, Weak<Batcher<P>>>>,
    /// Held while a batcher is being created, so two streams asking at once load one engine.
    loading: Mutex<()>,
}

impl<P: Payload> Default for Registry<P> {
    fn default() -> Self {
        Self {
            batchers: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
        }
    }
}

impl<P: Payload> Registry<P> {
    /// The live batcher for `key`, or a new one made by `create` (which may take long: it loads
    /// the model) and remembered for the next caller. Returns whether it was shared.
    pub fn get_or_create<E>(
        &self,
        key: &str,
        create: impl FnOnce() -> Result<Batcher<P>, E>,
    ) -> Result<(Arc<Batcher<P>>, bool), E> {
        let _loading = self.loading.lock().unwrap();
        if let Some(existing) = self
            .batchers
            .lock()
            .unwrap()
            .get(key)
            .and_then(Weak::upgrade)
        {
            return Ok((existing, true));
        }
        let batcher = Arc::new(create()?);
        let mut map = self.batchers.lock().unwrap();
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(key.to_string(), Arc::downgrade(&batcher));
        Ok((batcher, false))
    }
}
