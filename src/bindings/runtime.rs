//! The Tokio runtime the bindings run on: napi-rs's default (one worker per core), except that
//! on Linux the workers are SCHED_BATCH.
//!
//! Why: every burst of broadcasts wakes a worker from the JS thread (the publisher's flush),
//! and every delivery wakes the JS thread from a worker. On a busy machine a freshly woken
//! worker preempted the event loop right at the wake-up: a CPU profile of a sending node
//! showed a fifth of the event loop's time inside the flush call. SCHED_BATCH threads get
//! their CPU share as before but do not preempt on wake-up, so the event loop, which is the
//! application's own critical path, keeps running until it yields.

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
