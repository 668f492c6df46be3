use crate::protocol::DeliverySink;
use napi::bindgen_prelude::Buffer;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

/// `Weak = true`: the callback does not keep the Node process alive, so a script that is done
/// exits even while the Redis connections are still open.
pub type DeliveryCallback = ThreadsafeFunction<Buffer, (), Buffer, Status, false, true>;

pub struct JsSink {
    callback: DeliveryCallback,
}

impl JsSink {
    pub fn new(callback: DeliveryCallback) -> Self {
        Self { callback }
    }
}

impl DeliverySink for JsSink {
    fn deliver(&self, frames: Vec<u8>) {
        // Non-blocking: a tokio thread never waits on the JS thread.
        self.callback.call(
            Buffer::from(frames),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    }
}
