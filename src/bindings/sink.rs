use crate::protocol::backlog::{DeliveryBacklog, DEFAULT_MAX_PENDING_BYTES};
use crate::protocol::DeliverySink;
use napi::bindgen_prelude::Buffer;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use std::sync::{Arc, RwLock};

/// `Weak = true`: the callback does not keep the Node process alive, so a script that is done
/// exits even while the Redis connections are still open.
pub type DeliveryCallback = ThreadsafeFunction<Buffer, (), Buffer, Status, false, true>;

pub struct JsSink {
    /// None once closed: releasing the threadsafe function at shutdown (rather than when the
    /// driver object is garbage collected) leaves no open handle behind `close()`.
    callback: RwLock<Option<DeliveryCallback>>,
    /// Bytes handed to JS and not consumed yet, with a limit (see protocol::backlog).
    backlog: Arc<DeliveryBacklog>,
}

impl JsSink {
    /// Without a limit on what waits for the JS thread.
    pub fn new(callback: DeliveryCallback) -> Self {
        Self::with_limit(callback, 0)
    }

    /// `max_pending_bytes`: past it, incoming batches are dropped and counted (0: no limit).
    pub fn with_limit(callback: DeliveryCallback, max_pending_bytes: usize) -> Self {
        Self {
            callback: RwLock::new(Some(callback)),
            backlog: Arc::new(DeliveryBacklog::new(max_pending_bytes)),
        }
    }

    /// The `maxPendingDeliveryBytes` option: None for the default bound.
    pub fn with_option(callback: DeliveryCallback, max_pending_bytes: Option<u32>) -> Self {
        Self::with_limit(
            callback,
            max_pending_bytes.map_or(DEFAULT_MAX_PENDING_BYTES, |n| n as usize),
        )
    }

    pub fn backlog(&self) -> Arc<DeliveryBacklog> {
        self.backlog.clone()
    }

    /// Releases the JS callback; later deliveries are dropped. Called by the drivers' shutdown.
    pub fn close(&self) {
        let released = self.callback.write().map(|mut cb| cb.take());
        drop(released);
    }
}

impl DeliverySink for JsSink {
    fn deliver(&self, frames: Vec<u8>) {
        let callback = self.callback.read();
        let Some(callback) = callback.as_ref().ok().and_then(|cb| cb.as_ref()) else {
            return; // closed
        };
        let accounted = frames.len();
        let Some(frames) = self.backlog.admit(frames) else {
            return;
        };
        let backlog = self.backlog.clone();
        // Non-blocking: a tokio thread never waits on the JS thread. The completion runs on the
        // JS thread once the callback returned: that batch no longer waits.
        let status = callback.call_with_return_value(
            Buffer::from(frames),
            ThreadsafeFunctionCallMode::NonBlocking,
            move |_, _| {
                backlog.release(accounted);
                Ok(())
            },
        );
        if status != Status::Ok {
            self.backlog.release(accounted);
        }
    }
}
