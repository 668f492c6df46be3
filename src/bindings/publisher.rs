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

    /// Many publishes in one call (the emitter batches the writes of one JS tick): `frames` is
    /// `sharded: u8, channel_len: u32 LE, channel, payload_len: u32 LE, payload`, repeated.
    /// Resolves with one entry per message, in order: `null` once Redis accepted it, else the
    /// error text. All are queued before this returns, so call order is kept.
    #[napi(ts_return_type = "Promise<Array<string | null>>")]
    pub fn publish_batch<'env>(
        &self,
        env: &'env Env,
        frames: Buffer,
    ) -> Result<PromiseRaw<'env, Vec<Option<String>>>> {
        let messages = parse_publish_frames(&frames).map_err(to_napi)?;
        let confirmations: Vec<_> = messages
            .into_iter()
            .map(|(sharded, channel, payload)| {
                self.publisher
                    .queue_confirmed(kind(sharded), channel, payload.to_vec())
            })
            .collect();
        env.spawn_future(async move {
            let results = futures_util::future::join_all(confirmations).await;
            Ok(results
                .into_iter()
                .map(|r| r.err().map(|e| e.to_string()))
                .collect())
        })
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

/// One message of a publish batch: sharded, channel, payload.
type BatchedPublish<'a> = (bool, String, &'a [u8]);

/// Splits the frames of [`NativePublisher::publish_batch`].
fn parse_publish_frames(mut buf: &[u8]) -> std::result::Result<Vec<BatchedPublish<'_>>, String> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
        if buf.len() < n {
            return Err("truncated publish batch".into());
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Ok(head)
    }
    fn len(buf: &mut &[u8]) -> std::result::Result<usize, String> {
        let bytes = take(buf, 4)?;
        Ok(u32::from_le_bytes(bytes.try_into().unwrap()) as usize)
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let sharded = take(&mut buf, 1)?[0] != 0;
        let n = len(&mut buf)?;
        let channel = std::str::from_utf8(take(&mut buf, n)?)
            .map_err(|_| "publish batch: channel is not UTF-8".to_string())?
            .to_string();
        let n = len(&mut buf)?;
        out.push((sharded, channel, take(&mut buf, n)?));
    }
    Ok(out)
}
