use super::errors::to_napi;
use crate::connection::publisher::PublisherLimits;
use crate::connection::stream_writer::xadd_command;
use crate::connection::{CommandConnection, ConnectionOptions, PublishKind, Publisher};
use napi::bindgen_prelude::{within_runtime_if_available, Buffer, PromiseRaw};
use napi::{Env, Result};
use napi_derive::napi;
use std::sync::{Arc, Mutex};

/// Publish-only access to Redis for the emitter: no subscription, so a plain script that only
/// emits exits as soon as its work is done.
#[napi]
pub struct NativePublisher {
    commands: CommandConnection,
    publisher: Publisher,
    problems: Arc<Mutex<Vec<String>>>,
}

fn kind(sharded: bool) -> PublishKind {
    if sharded {
        PublishKind::SPublish
    } else {
        PublishKind::Publish
    }
}

#[napi]
impl NativePublisher {
    /// `connection`: JSON connection settings read from the user's client.
    #[napi(constructor)]
    pub fn new(connection: String) -> Result<Self> {
        let options = ConnectionOptions::from_json(&connection).map_err(to_napi)?;
        // ConnectionManager::new_lazy_with_config needs a tokio reactor in the current context.
        let commands =
            within_runtime_if_available(|| CommandConnection::new(&options)).map_err(to_napi)?;
        let problems = Arc::new(Mutex::new(Vec::new()));
        let sink = problems.clone();
        let publisher = within_runtime_if_available(|| {
            Publisher::spawn(
                commands.clone(),
                PublisherLimits::default(),
                Arc::new(move |line| {
                    let mut lines = sink.lock().unwrap();
                    if lines.len() < 100 {
                        lines.push(line);
                    }
                }),
            )
        });
        Ok(Self {
            commands,
            publisher,
            problems,
        })
    }

    /// Resolves once Redis accepted the message; rejects with the Redis error. The message is
    /// queued before this returns, so successive calls reach Redis in call order.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn publish<'env>(
        &self,
        env: &'env Env,
        channel: String,
        payload: Buffer,
        sharded: bool,
    ) -> Result<PromiseRaw<'env, ()>> {
        let confirmed = self
            .publisher
            .queue_confirmed(kind(sharded), channel, payload.to_vec());
        env.spawn_future(async move { confirmed.await.map_err(to_napi) })
    }

    /// `PUBSUB NUMSUB|SHARDNUMSUB channel`, summed over a cluster.
    #[napi]
    pub async fn count_listeners(&self, channel: String, sharded: bool) -> Result<i64> {
        self.commands
            .num_sub(&channel, sharded)
            .await
            .map_err(to_napi)
    }

    /// `XADD stream MAXLEN ~ maxLen * field value ...`; resolves with the entry id.
    #[napi]
    pub async fn xadd(&self, stream: String, max_len: u32, fields: Vec<String>) -> Result<String> {
        let cmd = xadd_command(&stream, max_len, &fields).map_err(to_napi)?;
        self.commands.query(&cmd).await.map_err(to_napi)
    }

    /// Problems reported by the background publisher since the last call (for `debug`).
    #[napi]
    pub fn take_problems(&self) -> Vec<String> {
        std::mem::take(&mut *self.problems.lock().unwrap())
    }

    #[napi]
    pub fn close(&self) {
        self.publisher.shutdown();
    }
}
