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
/// exits even while the Redis connections are still open. The value queued is a [`Call`].
type DeliveryCallback = ThreadsafeFunction<Call, (), DeliveryBuffer, Status, false, true>;

/// What a queued call hands to JS when it runs.
enum Call {
    /// Whatever [`Pending`] holds by then.
    TakePending,
    /// These frames (and the bytes accounted for them in the backlog).
    Frames(Vec<u8>, usize),
}

/// Frames waiting for the JS thread, merged into one buffer up to [`MERGE_LIMIT`].
#[derive(Default)]
struct Pending {
    frames: Vec<u8>,
    /// Bytes of `frames` accounted in the backlog.
    bytes: usize,
    /// A `TakePending` call is queued and has not run yet.
    scheduled: bool,
    /// A `Frames` call was queued after it: later frames must not merge into `frames`, which
    /// JS gets first (they would overtake the frames of that call).
    sealed: bool,
}

/// Merging stops at this size, so that no buffer grows to megabytes while JS is busy (copying
/// and reallocating it as it grows): later batches get their own calls, in order.
const MERGE_LIMIT: usize = 64 * 1024;

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
            .build_threadsafe_function::<Call>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |ctx| {
                let (frames, bytes) = match ctx.value {
                    Call::Frames(frames, bytes) => (frames, bytes),
                    Call::TakePending => {
                        let mut pending = taken.lock().unwrap_or_else(|e| e.into_inner());
                        pending.scheduled = false;
                        pending.sealed = false;
                        (
                            std::mem::take(&mut pending.frames),
                            std::mem::take(&mut pending.bytes),
                        )
                    }
                };
                taken_bytes.store(bytes, Ordering::Release);
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
    /// Merges `frames` into what waits for the JS thread and queues a call only when none is
    /// queued yet: the batches Tokio produces while the event loop is busy enter JS together
    /// (each entry costs microseconds: a callback scope, a Buffer, a microtask checkpoint).
    /// Past [`MERGE_LIMIT`] a batch gets its own call, in order.
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
        // The call is queued under the lock, so calls keep the order their frames got here.
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let call = if !pending.scheduled {
            pending.frames = frames;
            pending.bytes = accounted;
            pending.scheduled = true;
            Call::TakePending
        } else if !pending.sealed && pending.frames.len() + frames.len() <= MERGE_LIMIT {
            pending.frames.extend_from_slice(&frames);
            pending.bytes += accounted;
            return;
        } else {
            pending.sealed = true;
            Call::Frames(frames, accounted)
        };
        let (backlog, in_flight) = (self.backlog.clone(), self.in_flight.clone());
        let take_pending = matches!(call, Call::TakePending);
        // Non-blocking: a tokio thread never waits on the JS thread. The completion runs on the
        // JS thread once the callback returned: what it took no longer waits.
        let status = callback.call_with_return_value(
            call,
            ThreadsafeFunctionCallMode::NonBlocking,
            move |_, _| {
                backlog.release(in_flight.swap(0, Ordering::AcqRel));
                Ok(())
            },
        );
        if status != Status::Ok {
            // Closing: what this call carried is dropped and no longer accounted.
            if take_pending {
                pending.scheduled = false;
                pending.frames = Vec::new();
                self.backlog.release(std::mem::take(&mut pending.bytes));
            } else {
                self.backlog.release(accounted);
            }
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
