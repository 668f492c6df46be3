use crate::protocol::backlog::{DeliveryBacklog, DEFAULT_MAX_PENDING_BYTES};
use crate::protocol::DeliverySink;
use napi::bindgen_prelude::{Buffer, Function, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Result, Status};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What the driver constructors take from JS: `(batch: Buffer) => void`.
pub type DeliveryFunction<'a> = Function<'a, Buffer, ()>;

/// `Weak = true`: the callback does not keep the Node process alive, so a script that is done
/// exits even while the Redis connections are still open. The value queued is `()`: the frames
/// are taken from [`Pending`] when the call runs on the JS thread (see [`JsSink::deliver`]).
type DeliveryCallback = ThreadsafeFunction<(), (), DeliveryBuffer, Status, false, true>;

/// Frames waiting for the JS thread, merged into one buffer.
#[derive(Default)]
struct Pending {
    frames: Vec<u8>,
    /// Bytes of `frames` accounted in the backlog.
    bytes: usize,
    /// A call is queued and has not taken the frames yet.
    scheduled: bool,
}

pub struct JsSink {
    /// None once closed: releasing the threadsafe function at shutdown (rather than when the
    /// driver object is garbage collected) leaves no open handle behind `close()`.
    callback: RwLock<Option<DeliveryCallback>>,
    /// Bytes handed to JS and not consumed yet, with a limit (see protocol::backlog).
    backlog: Arc<DeliveryBacklog>,
    pending: Arc<Mutex<Pending>>,
    /// Bytes taken by the call running on the JS thread, released once it returned (calls run
    /// one after the other there, each completion right after its call).
    in_flight: Arc<AtomicUsize>,
}

impl JsSink {
    /// Without a limit on what waits for the JS thread.
    pub fn new(function: &DeliveryFunction<'_>) -> Result<Self> {
        Self::with_limit(function, 0)
    }

    /// `max_pending_bytes`: past it, incoming batches are dropped and counted (0: no limit).
    pub fn with_limit(function: &DeliveryFunction<'_>, max_pending_bytes: usize) -> Result<Self> {
        let backlog = Arc::new(DeliveryBacklog::new(max_pending_bytes));
        let pending = Arc::new(Mutex::new(Pending::default()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (taken, taken_bytes) = (pending.clone(), in_flight.clone());
        let callback = function
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |_| {
                let mut pending = taken.lock().unwrap_or_else(|e| e.into_inner());
                pending.scheduled = false;
                let frames = std::mem::take(&mut pending.frames);
                taken_bytes.store(std::mem::take(&mut pending.bytes), Ordering::Release);
                Ok(DeliveryBuffer(frames))
            })?;
        Ok(Self {
            callback: RwLock::new(Some(callback)),
            backlog,
            pending,
            in_flight,
        })
    }

    /// The `maxPendingDeliveryBytes` option: None for the default bound.
    pub fn with_option(
        function: &DeliveryFunction<'_>,
        max_pending_bytes: Option<u32>,
    ) -> Result<Self> {
        Self::with_limit(
            function,
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
    /// Merges `frames` into what waits for the JS thread and queues one call only when none is
    /// queued yet: however many batches Tokio produces while the event loop is busy, JS is
    /// entered once for all of them (each entry costs microseconds: a callback scope, a Buffer,
    /// a microtask checkpoint).
    fn deliver(&self, frames: Vec<u8>) {
        let callback = self.callback.read();
        let Some(callback) = callback.as_ref().ok().and_then(|cb| cb.as_ref()) else {
            return; // closed
        };
        // Accounted before admit(): what it returns may start with a log frame it added.
        let accounted = frames.len();
        let Some(frames) = self.backlog.admit(frames) else {
            return;
        };
        let schedule = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.bytes += accounted;
            if pending.frames.is_empty() {
                pending.frames = frames;
            } else {
                pending.frames.extend_from_slice(&frames);
            }
            !std::mem::replace(&mut pending.scheduled, true)
        };
        if !schedule {
            return;
        }
        let (backlog, in_flight) = (self.backlog.clone(), self.in_flight.clone());
        // Non-blocking: a tokio thread never waits on the JS thread. The completion runs on the
        // JS thread once the callback returned: what it took no longer waits.
        let status = callback.call_with_return_value(
            (),
            ThreadsafeFunctionCallMode::NonBlocking,
            move |_, _| {
                backlog.release(in_flight.swap(0, Ordering::AcqRel));
                Ok(())
            },
        );
        if status != Status::Ok {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.scheduled = false;
            pending.frames = Vec::new();
            self.backlog.release(std::mem::take(&mut pending.bytes));
        }
    }
}

/// A delivery as a JS Buffer. Small batches are copied into a V8-owned buffer: an external
/// buffer needs a finalizer that the garbage collector runs for each one, which costs more than
/// copying a few kilobytes. Large ones are handed over without a copy.
pub struct DeliveryBuffer(Vec<u8>);

const COPY_BELOW: usize = 64 * 1024;

impl ToNapiValue for DeliveryBuffer {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        if val.0.len() >= COPY_BELOW {
            return unsafe { Buffer::to_napi_value(env, Buffer::from(val.0)) };
        }
        let mut out = std::ptr::null_mut();
        let status = unsafe {
            sys::napi_create_buffer_copy(
                env,
                val.0.len(),
                val.0.as_ptr().cast(),
                std::ptr::null_mut(),
                &mut out,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::GenericFailure,
                "could not create a delivery buffer",
            ));
        }
        Ok(out)
    }
}
