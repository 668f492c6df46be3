//! The Tokio runtime the bindings run on: napi-rs's default (one worker per core), except that
//! on Linux the workers are SCHED_BATCH.
//!
//! Why: every burst of broadcasts wakes a worker from the JS thread (the publisher's flush),
//! and every delivery wakes the JS thread from a worker. On a busy machine a freshly woken
//! worker preempted the event loop right at the wake-up: a CPU profile of a sending node
//! showed a fifth of the event loop's time inside the flush call. SCHED_BATCH threads get
//! their CPU share as before but do not preempt on wake-up, so the event loop, which is the
//! application's own critical path, keeps running until it yields.

use std::future::Future;
use std::task::{Context, Poll};

#[napi_derive::module_init]
fn init_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(lower_wakeup_priority)
        .build();
    // Without a custom runtime napi-rs creates its default one: nothing is lost on failure.
    if let Ok(runtime) = runtime {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}

#[cfg(target_os = "linux")]
fn lower_wakeup_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // Applies to the calling thread only (pid 0); failure leaves the default policy.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_wakeup_priority() {}

/// Polls `future` once on the calling (JS) thread, inside the runtime's context, and returns
/// what is left of it for the runtime to drive. What the future does before its first await
/// (registering a request, queueing its publish, which an idle publisher then writes to the
/// socket right away: see `Publisher::flush`) happens during the JS call instead of after a
/// Tokio worker wakes up to start the task: one thread wake-up less on a request's path.
///
/// Sound for any future: the runtime polls the rest at least once after this (a spawned task
/// starts with a poll), so whatever the first poll's no-op waker missed is seen then.
pub fn started<F>(future: F) -> impl Future<Output = F::Output> + Send + 'static
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut future = Box::pin(future);
    let waker = futures_util::task::noop_waker();
    let first = napi::bindgen_prelude::within_runtime_if_available(|| {
        future.as_mut().poll(&mut Context::from_waker(&waker))
    });
    async move {
        match first {
            Poll::Ready(output) => output,
            Poll::Pending => future.await,
        }
    }
}
