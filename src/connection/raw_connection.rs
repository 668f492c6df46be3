//! A connection spoken in RESP2 directly over TCP (see `resp` for why), for the two hot paths:
//! a subscription (classic or sharded), whose messages are parsed in place in the read buffer
//! and handed over in batches of borrowed slices on the task that reads the socket; and the
//! publisher's pipelines of PUBLISH, written as bytes and confirmed by counting integer replies.
//! Used for plain TCP addresses; TLS and Unix sockets keep the redis crate's connections (the
//! callers pick).

use super::message::PubSubMessage;
use super::resp::{parse_frame, write_command, Item, Parsed, Push};
use super::resp_nested::{complete_value, Completeness};
use super::subscriber::Subscription;
use redis::{ConnectionAddr, ConnectionInfo, RedisError, RedisResult};
use std::io::ErrorKind::WouldBlock;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Most messages handed over in one batch; bounds the latency of the first one.
const MAX_BATCH: usize = 1024;
const READ_CHUNK: usize = 64 * 1024;

pub struct RawConnection {
    /// Shared so that another thread can write to it without waking the task that reads it
    /// (see [`Self::writer`]); all I/O goes through readiness and `try_*` calls on `&self`.
    stream: Arc<TcpStream>,
    /// Received bytes; those before `start` are consumed.
    buf: Vec<u8>,
    start: usize,
    /// Length the buffer must reach before the next frame can be complete (parser's hint).
    want: usize,
    /// The last [`Self::request`]'s replies are still in use: the buffer is not compacted.
    hold: bool,
}

/// The plain TCP address of `info`, or None when it needs TLS or a Unix socket.
pub fn plain_tcp(info: &ConnectionInfo) -> Option<(&str, u16)> {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => Some((host.as_str(), *port)),
        _ => None,
    }
}

fn io_error(e: impl std::fmt::Display) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Io,
        "subscription connection",
        e.to_string(),
    ))
}

pub(super) fn server_error(text: &[u8]) -> RedisError {
    let text = String::from_utf8_lossy(text).into_owned();
    let kind = if text.starts_with("NOAUTH") || text.starts_with("WRONGPASS") {
        redis::ErrorKind::AuthenticationFailed
    } else {
        redis::ErrorKind::Extension
    };
    RedisError::from((kind, "refused by Redis", text))
}

/// How long a pipeline on a raw connection may wait for its replies (as the command
/// connection's response timeout).
pub const PIPELINE_TIMEOUT: Duration = Duration::from_secs(10);

/// `exchange` (a write and its replies), failed as an I/O error after [`PIPELINE_TIMEOUT`].
pub async fn replied_in_time(
    exchange: impl std::future::Future<Output = RedisResult<()>>,
) -> RedisResult<()> {
    tokio::time::timeout(PIPELINE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(RedisError::from((
                redis::ErrorKind::Io,
                "no reply from Redis in time",
            )))
        })
}

/// Writes all of `bytes`, waiting for the socket to accept more whenever it is full.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> RedisResult<()> {
    while !bytes.is_empty() {
        stream.writable().await.map_err(RedisError::from)?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == WouldBlock => continue,
            Err(e) => return Err(RedisError::from(e)),
        }
    }
    Ok(())
}

impl RawConnection {
    /// Connects and authenticates. `info` must be a plain TCP address (see [`plain_tcp`]).
    pub async fn connect(info: &ConnectionInfo, timeout: Duration) -> RedisResult<Self> {
        let (host, port) = plain_tcp(info).ok_or_else(|| io_error("not a plain TCP address"))?;
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "connection timed out")))?
            .map_err(RedisError::from)?;
        stream.set_nodelay(true).map_err(RedisError::from)?;
        let mut conn = Self {
            stream: Arc::new(stream),
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            want: 0,
            hold: false,
        };
        let settings = info.redis_settings();
        let mut cmd = Vec::new();
        if let Some(password) = settings.password() {
            match settings.username() {
                Some(user) => {
                    write_command(&mut cmd, &[b"AUTH", user.as_bytes(), password.as_bytes()])
                }
                None => write_command(&mut cmd, &[b"AUTH", password.as_bytes()]),
            }
        }
        // Pub/sub ignores databases, but stream readers read keys.
        if settings.db() != 0 {
            write_command(&mut cmd, &[b"SELECT", settings.db().to_string().as_bytes()]);
        }
        let count = usize::from(settings.password().is_some()) + usize::from(settings.db() != 0);
        if count > 0 {
            tokio::time::timeout(timeout, conn.pipeline(&cmd, count))
                .await
                .map_err(|_| {
                    RedisError::from((redis::ErrorKind::Io, "AUTH or SELECT timed out"))
                })??;
        }
        Ok(conn)
    }

    /// Sends `commands` (RESP, `count` of them) in one write and waits for their replies,
    /// which must not be pushes (a connection that never subscribed). The first error reply,
    /// if any, is returned once all replies are in, so the connection stays in step.
    pub async fn pipeline(&mut self, commands: &[u8], count: usize) -> RedisResult<()> {
        self.pipeline_with(commands, count, |_, _| {}).await
    }

    /// [`Self::pipeline`], showing each reply (its index and items) to `on_reply`.
    pub async fn pipeline_with(
        &mut self,
        commands: &[u8],
        count: usize,
        on_reply: impl FnMut(usize, &[Item<'_>]) + Send,
    ) -> RedisResult<()> {
        write_all(&self.stream, commands).await?;
        self.read_replies(count, on_reply).await
    }

    /// The socket, for writing from another thread (`try_write`) while this connection's
    /// owner reads the replies with [`Self::read_replies`]; writes must not interleave, which
    /// the caller ensures.
    pub fn writer(&self) -> Arc<TcpStream> {
        self.stream.clone()
    }

    /// Writes `bytes` (the rest of commands another thread began writing).
    pub async fn write(&self, bytes: &[u8]) -> RedisResult<()> {
        write_all(&self.stream, bytes).await
    }

    /// Waits for `count` replies of commands already written (see [`Self::pipeline_with`]).
    pub async fn read_replies(
        &mut self,
        count: usize,
        mut on_reply: impl FnMut(usize, &[Item<'_>]) + Send,
    ) -> RedisResult<()> {
        let mut first_error = None;
        let mut left = count;
        while left > 0 {
            match parse_frame(&self.buf[self.start..]).map_err(io_error)? {
                Parsed::Frame(frame, used) => {
                    if let (Push::Error(text), None) = (frame.as_push(), &first_error) {
                        first_error = Some(server_error(text));
                    }
                    on_reply(count - left, frame.items());
                    self.start += used;
                    left -= 1;
                }
                Parsed::Incomplete(need) => {
                    self.want = need;
                    self.read_some().await?;
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// (P)SUBSCRIBEs or (P)UNSUBSCRIBEs `subs` (patterns first, as the official adapter) and
    /// waits for Redis to confirm each one. Messages arriving meanwhile go to `deliver`.
    pub async fn apply(
        &mut self,
        subs: &[Subscription],
        subscribe: bool,
        deliver: &(dyn Fn(&[PubSubMessage<'_>]) + Sync),
    ) -> RedisResult<()> {
        let patterns: Vec<&[u8]> = subs
            .iter()
            .filter_map(|s| match s {
                Subscription::Pattern(p) => Some(p.as_bytes()),
                _ => None,
            })
            .collect();
        let channels: Vec<&[u8]> = subs
            .iter()
            .filter_map(|s| match s {
                Subscription::Channel(c) => Some(c.as_bytes()),
                _ => None,
            })
            .collect();
        let mut cmd = Vec::new();
        let (p_verb, c_verb): (&[u8], &[u8]) = if subscribe {
            (b"PSUBSCRIBE", b"SUBSCRIBE")
        } else {
            (b"PUNSUBSCRIBE", b"UNSUBSCRIBE")
        };
        for (verb, names) in [(p_verb, &patterns), (c_verb, &channels)] {
            if !names.is_empty() {
                let mut args = vec![verb];
                args.extend(names.iter().copied());
                write_command(&mut cmd, &args);
            }
        }
        let kinds: [&[u8]; 2] = if subscribe {
            [b"psubscribe", b"subscribe"]
        } else {
            [b"punsubscribe", b"unsubscribe"]
        };
        let expected = patterns.len() + channels.len();
        self.send_confirmed(&cmd, expected, &kinds, deliver, |_| {})
            .await
    }

    /// SSUBSCRIBEs or SUNSUBSCRIBEs shard `channels` and waits for Redis to confirm each one.
    /// Messages arriving meanwhile go to `deliver`, and the channels that Redis unsubscribed on
    /// its own meanwhile (a `sunsubscribe` it sends when a slot moves) to `dropped`.
    ///
    /// One command per channel, all in one write: a server with cluster mode on refuses a
    /// multi-channel SSUBSCRIBE across slots, and one reply per command keeps errors in step.
    /// (A `sunsubscribe` Redis sends on its own while we wait for SUNSUBSCRIBE confirmations
    /// would pass for one of them; only a cluster-mode server sends those, and this connection
    /// serves standalone ones.)
    pub async fn apply_sharded(
        &mut self,
        channels: &[String],
        subscribe: bool,
        deliver: &(dyn Fn(&[PubSubMessage<'_>]) + Sync),
        mut dropped: impl FnMut(&[u8]) + Send,
    ) -> RedisResult<()> {
        let (verb, kind): (&[u8], &[u8]) = if subscribe {
            (b"SSUBSCRIBE", b"ssubscribe")
        } else {
            (b"SUNSUBSCRIBE", b"sunsubscribe")
        };
        let mut cmd = Vec::new();
        for channel in channels {
            write_command(&mut cmd, &[verb, channel.as_bytes()]);
        }
        self.send_confirmed(&cmd, channels.len(), &[kind], deliver, |push| {
            if let Push::Confirmation {
                kind: b"sunsubscribe",
                name,
            } = push
            {
                dropped(name);
            }
        })
        .await
    }

    /// Writes `commands` and waits for `expected` confirmations of one of `kinds` (one per
    /// channel or pattern), delivering the messages that arrive meanwhile and showing any other
    /// push to `other`. An error reply ends the wait: Redis refused a whole command, the count
    /// no longer holds, and the caller drops the connection.
    async fn send_confirmed(
        &mut self,
        commands: &[u8],
        expected: usize,
        kinds: &[&[u8]],
        deliver: &(dyn Fn(&[PubSubMessage<'_>]) + Sync),
        mut other: impl FnMut(Push<'_>) + Send,
    ) -> RedisResult<()> {
        if commands.is_empty() {
            return Ok(());
        }
        write_all(&self.stream, commands).await?;
        let mut confirmations = expected;
        while confirmations > 0 {
            let mut failure = None;
            self.drain(deliver, |push| match push {
                Push::Confirmation { kind, .. } if kinds.contains(&kind) => {
                    confirmations = confirmations.saturating_sub(1)
                }
                Push::Error(text) => failure = Some(server_error(text)),
                push => other(push),
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            if confirmations > 0 {
                self.read_some().await?;
            }
        }
        Ok(())
    }

    /// Sends `commands` (RESP) in one write and waits until `replies` whole replies, nested
    /// arrays included, are buffered. Returns their byte range for [`Self::held`], which stays
    /// valid (the buffer is not compacted) until [`Self::release`]: readers parse entries in
    /// place and hand them on without copying them out.
    pub async fn request(&mut self, commands: &[u8], replies: usize) -> RedisResult<Range<usize>> {
        write_all(&self.stream, commands).await?;
        // Offsets from `start`, which compaction keeps in place.
        let mut end = 0;
        for _ in 0..replies {
            loop {
                match complete_value(&self.buf[self.start..], end).map_err(io_error)? {
                    Completeness::Complete(after) => {
                        end = after;
                        break;
                    }
                    Completeness::Incomplete(need) => {
                        self.want = need;
                        self.read_some().await?;
                    }
                }
            }
        }
        let range = self.start..self.start + end;
        self.start = range.end;
        self.hold = true;
        Ok(range)
    }

    /// Bytes of replies returned by [`Self::request`] since the last [`Self::release`].
    pub fn held(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// The held replies are no longer needed: their space may be reused.
    pub fn release(&mut self) {
        self.hold = false;
    }

    /// Waits for more bytes. Cancel-safe: nothing read is lost if the future is dropped.
    pub async fn read_some(&mut self) -> RedisResult<()> {
        if !self.hold
            && self.start > 0
            && (self.start == self.buf.len() || self.start >= self.buf.len() / 2)
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let spare = (self.start + self.want).saturating_sub(self.buf.len());
        self.buf.reserve(spare.max(READ_CHUNK));
        loop {
            self.stream.readable().await.map_err(RedisError::from)?;
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(0) => return Err(io_error("connection closed")),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == WouldBlock => continue,
                Err(e) => return Err(RedisError::from(e)),
            }
        }
    }

    /// Hands every complete message in the buffer to `deliver` (in batches), and every other
    /// push (confirmations, errors) to `other`.
    pub fn drain(
        &mut self,
        deliver: &(dyn Fn(&[PubSubMessage<'_>]) + Sync),
        mut other: impl FnMut(Push<'_>),
    ) -> RedisResult<()> {
        loop {
            let mut batch: Vec<PubSubMessage<'_>> = Vec::new();
            let mut pos = self.start;
            let mut result = Ok(());
            while batch.len() < MAX_BATCH {
                match parse_frame(&self.buf[pos..]) {
                    Ok(Parsed::Frame(frame, used)) => {
                        pos += used;
                        match frame.as_push() {
                            Push::Message { channel, payload } => batch.push(PubSubMessage {
                                channel,
                                pattern: None,
                                payload,
                            }),
                            Push::PMessage {
                                pattern,
                                channel,
                                payload,
                            } => batch.push(PubSubMessage {
                                channel,
                                pattern: Some(pattern),
                                payload,
                            }),
                            push => other(push),
                        }
                    }
                    Ok(Parsed::Incomplete(need)) => {
                        self.want = need;
                        break;
                    }
                    Err(e) => {
                        result = Err(io_error(e));
                        break;
                    }
                }
            }
            let full = batch.len() == MAX_BATCH;
            if !batch.is_empty() {
                deliver(&batch);
            }
            self.start = pos;
            result?;
            if !full {
                return Ok(());
            }
        }
    }
}
