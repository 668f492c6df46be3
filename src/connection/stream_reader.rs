//! Stream readers for the streams adapter: one task per stream, each on its own connection
//! (a blocking XREAD would stall every other command multiplexed on a shared one).
//!
//! Unlike @socket.io/redis-streams-adapter, the reader backs off between failed attempts
//! instead of spinning, and resolves its starting offset to a concrete entry id before the
//! first XREAD, so entries added between two `XREAD ... $` calls are never skipped. The offset
//! survives errors and reconnections: entries written while Redis was unreachable (from other
//! nodes' retried XADDs) are read once it is back, unless trimmed by `MAXLEN ~`; such a loss is
//! detected (after each reconnection, and after each full batch, when the reader may lag),
//! counted and reported, never silent (see stream_loss). For that, entries are read in a
//! MULTI together with `XINFO STREAM` (the stream's counters at the same instant); a blocking
//! `XREAD COUNT 1` only waits for new entries when the reader has caught up.

use super::config::{ConnectionOptions, Topology};
use super::sentinel::resolve_master;
use super::stream_loss::{parse_stream_info, HistoryPosition, StreamInfo, Verdict};
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One stream entry: its id and its field/value pairs, as returned by XREAD/XRANGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamEntry {
    pub fn has_field(&self, name: &[u8]) -> bool {
        self.fields.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

/// Compact encoding of entries for JS: per entry a u32 LE count of strings (1 + 2 per field),
/// then each string as u32 LE length + bytes (id first, then field, value, ...).
pub fn encode_entries(entries: &[StreamEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    for e in entries {
        out.extend_from_slice(&((1 + 2 * e.fields.len()) as u32).to_le_bytes());
        put(&mut out, e.id.as_bytes());
        for (k, v) in &e.fields {
            put(&mut out, k);
            put(&mut out, v);
        }
    }
    out
}

/// Parses the entries of an XRANGE reply (`[[id, [f, v, ...]], ...]`).
pub fn parse_entries(value: &Value) -> RedisResult<Vec<StreamEntry>> {
    let items = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(unexpected("stream entries", other)),
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            return Err(unexpected("stream entry", item));
        };
        if pair.len() != 2 {
            return Err(unexpected("stream entry", item));
        }
        let id = String::from_redis_value_ref(&pair[0])?;
        let flat: Vec<Vec<u8>> = match &pair[1] {
            Value::Nil => Vec::new(),
            v => Vec::<Vec<u8>>::from_redis_value_ref(v)?,
        };
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            fields.push((k, v));
        }
        entries.push(StreamEntry { id, fields });
    }
    Ok(entries)
}

/// Parses an XREAD reply for a single stream (RESP2 array or RESP3 map).
pub fn parse_xread(value: &Value) -> RedisResult<Vec<StreamEntry>> {
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.first() {
            None => Ok(Vec::new()),
            Some(Value::Array(pair)) if pair.len() == 2 => parse_entries(&pair[1]),
            Some(other) => Err(unexpected("XREAD stream", other)),
        },
        Value::Map(streams) => match streams.first() {
            None => Ok(Vec::new()),
            Some((_, entries)) => parse_entries(entries),
        },
        other => Err(unexpected("XREAD reply", other)),
    }
}

fn unexpected(what: &str, value: &Value) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{what}: {value:?}"),
    ))
}

/// A connection used by nothing but one reader.
enum ReaderConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ReaderConn {
    async fn open(
        options: &ConnectionOptions,
        block: Duration,
        attempt: usize,
    ) -> RedisResult<Self> {
        // The response timeout must outlast the server-side BLOCK.
        let response_timeout = block + Duration::from_secs(10);
        let infos = || {
            options.connection_infos().map_err(|e| {
                RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "options",
                    e.to_string(),
                ))
            })
        };
        match options.topology {
            Topology::Cluster => {
                let client = ClusterClient::builder(infos()?)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(response_timeout)
                    .build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
            Topology::Standalone | Topology::Sentinel => {
                let info = if options.topology == Topology::Sentinel {
                    resolve_master(options).await?
                } else {
                    let all = infos()?;
                    all[attempt % all.len()].clone()
                };
                let client = redis::Client::open(info)?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(response_timeout));
                Ok(Self::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
        }
    }

    async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }

    async fn pipeline(&mut self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(c) => pipe.query_async(c).await,
            Self::Cluster(c) => pipe.query_async(c).await,
        }
    }
}

/// Tells a reader to hold its next XREAD (see [`ReaderSettings::hold_while`]).
pub type HoldPredicate = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
pub struct ReaderSettings {
    pub stream: String,
    pub read_count: u32,
    pub block_ms: u32,
    /// While this answers true (the JS thread is behind), no new XREAD is issued: entries stay
    /// in the stream instead of piling up in memory, and nothing is lost (unlike pub/sub, the
    /// stream keeps them; only maxLen trimming can, and that is reported as a loss).
    pub hold_while: Option<HoldPredicate>,
}

/// How often a held reader checks whether it may read again.
const HOLD_CHECK: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
pub struct ReaderStats {
    pub entries: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
    /// Times entries past our offset were found trimmed before we read them.
    pub losses: AtomicU64,
    /// How many entries those losses were (where Redis ≥ 7.0 can tell).
    pub lost_entries: AtomicU64,
    /// Times the reader held its reads because JS was behind.
    pub holds: AtomicU64,
}

/// Entries of a stream trimmed before this reader read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    pub stream: String,
    /// The last entry the reader had read.
    pub after: String,
    /// The stream's first entry when the loss was found ("" when it is empty).
    pub first_available: String,
    /// How many entries were lost; `None` before Redis 7.0 (then it may also be a false alarm
    /// when the trim stopped right after `after`).
    pub lost: Option<u64>,
}

/// Receives each non-empty XREAD reply at once (one JS hand-over per reply).
pub type EntriesHandler = Arc<dyn Fn(&[StreamEntry]) + Send + Sync>;
pub type LossHandler = Arc<dyn Fn(&Loss) + Send + Sync>;
pub type ReaderReport = Arc<dyn Fn(String) + Send + Sync>;

pub struct StreamReader {
    task: JoinHandle<()>,
    stop: Arc<AtomicBool>,
    pub stats: Arc<ReaderStats>,
}

impl StreamReader {
    /// Must run inside a tokio runtime.
    pub fn spawn(
        options: ConnectionOptions,
        settings: ReaderSettings,
        on_entries: EntriesHandler,
        on_loss: LossHandler,
        report: ReaderReport,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ReaderStats::default());
        let task = tokio::spawn(run(
            options,
            settings,
            on_entries,
            on_loss,
            report,
            stop.clone(),
            stats.clone(),
        ));
        Self { task, stop, stats }
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // The XREAD in flight is not worth waiting for: nothing it returns would be used.
        self.task.abort();
    }
}

fn no_such_key(e: &RedisError) -> bool {
    e.to_string().contains("no such key")
}

/// `XINFO STREAM`, or `None` when the stream does not exist.
async fn stream_info(conn: &mut ReaderConn, stream: &str) -> RedisResult<Option<StreamInfo>> {
    let mut cmd = redis::cmd("XINFO");
    cmd.arg("STREAM").arg(stream);
    match conn.query(&cmd).await {
        Ok(value) => parse_stream_info(&value).map(Some),
        Err(e) if no_such_key(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Up to `read_count` entries after `offset`, with the stream's counters taken at the same
/// instant (MULTI: XINFO STREAM, non-blocking XREAD), so a gap before them is told exactly.
async fn read_with_info(
    conn: &mut ReaderConn,
    settings: &ReaderSettings,
    offset: &str,
) -> RedisResult<(Option<StreamInfo>, Vec<StreamEntry>)> {
    let mut pipe = redis::pipe();
    pipe.atomic().ignore_errors();
    pipe.cmd("XINFO").arg("STREAM").arg(&settings.stream);
    pipe.cmd("XREAD")
        .arg("COUNT")
        .arg(settings.read_count)
        .arg("STREAMS")
        .arg(&settings.stream)
        .arg(offset);
    let replies = conn.pipeline(&pipe).await?;
    let [info, entries] = replies.as_slice() else {
        return Err(unexpected(
            "MULTI XINFO/XREAD reply",
            &Value::Array(replies),
        ));
    };
    let info = match info {
        Value::ServerError(e) => {
            let e = RedisError::from(e.clone());
            if !no_such_key(&e) {
                return Err(e);
            }
            None
        }
        value => Some(parse_stream_info(value)?),
    };
    Ok((info, parse_xread(entries)?))
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Redis < 7.0 only (no `entries-added`): `Some(first entry id)` when the offset entry is gone
/// and the stream now starts after it. It reports a loss that did not happen when the trim
/// stopped exactly after `offset`.
async fn trimmed_past_by_ids(conn: &mut ReaderConn, stream: &str, offset: &str) -> Option<String> {
    let mut exists = redis::cmd("XRANGE");
    exists.arg(stream).arg(offset).arg(offset);
    if !parse_entries(&conn.query(&exists).await.ok()?)
        .ok()?
        .is_empty()
    {
        return None;
    }
    let mut first = redis::cmd("XRANGE");
    first.arg(stream).arg("-").arg("+").arg("COUNT").arg(1);
    let first_id = parse_entries(&conn.query(&first).await.ok()?)
        .ok()?
        .into_iter()
        .next()?
        .id;
    (parse_id(&first_id)? > parse_id(offset)?).then_some(first_id)
}

/// One read of new entries, and the loss found before them, if any.
struct Read {
    loss: Option<Loss>,
    entries: Vec<StreamEntry>,
}

/// Waits (unless `more_waiting`) for entries after `offset`, then reads them with the loss
/// check. `Ok(None)`: the wait timed out.
async fn read_next(
    conn: &mut ReaderConn,
    settings: &ReaderSettings,
    offset: &str,
    position: &mut HistoryPosition,
    more_waiting: bool,
    reconnected: bool,
) -> RedisResult<Option<Read>> {
    if !more_waiting {
        let mut wait = redis::cmd("XREAD");
        wait.arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(settings.block_ms)
            .arg("STREAMS")
            .arg(&settings.stream)
            .arg(offset);
        if parse_xread(&conn.query(&wait).await?)?.is_empty() {
            return Ok(None);
        }
    }
    let (info, entries) = read_with_info(conn, settings, offset).await?;
    let loss = |first_available: String, lost| Loss {
        stream: settings.stream.clone(),
        after: offset.to_string(),
        first_available,
        lost,
    };
    let loss = match position.check(info.as_ref()) {
        Verdict::Intact => None,
        Verdict::Lost(n) => Some(loss(
            info.and_then(|i| i.first_entry_id).unwrap_or_default(),
            Some(n),
        )),
        // Without the counters, compare ids, only after a reconnection (as before 7.0 there
        // is nothing cheaper, and a connected reader rarely falls maxLen entries behind).
        Verdict::Unknown if reconnected => trimmed_past_by_ids(conn, &settings.stream, offset)
            .await
            .map(|first| loss(first, None)),
        Verdict::Unknown => None,
    };
    Ok(Some(Read { loss, entries }))
}

async fn run(
    options: ConnectionOptions,
    settings: ReaderSettings,
    on_entries: EntriesHandler,
    on_loss: LossHandler,
    report: ReaderReport,
    stop: Arc<AtomicBool>,
    stats: Arc<ReaderStats>,
) {
    let block = Duration::from_millis(settings.block_ms as u64);
    let mut offset: Option<String> = None;
    let mut position = HistoryPosition::at_end(None);
    // The last read was full (or the connection was replaced): read again without waiting.
    let mut more_waiting = false;
    let mut reconnected = false;
    let mut conn: Option<ReaderConn> = None;
    let mut backoff = MIN_BACKOFF;
    let mut attempt = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if let Some(hold) = settings.hold_while.as_ref().filter(|hold| hold()) {
            stats.holds.fetch_add(1, Ordering::Relaxed);
            while hold() && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(HOLD_CHECK).await;
            }
            continue;
        }
        let result = async {
            if conn.is_none() {
                conn = Some(ReaderConn::open(&options, block, attempt).await?);
                if attempt > 0 {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
            let c = conn.as_mut().expect("connected above");
            let Some(from) = offset.as_deref() else {
                // Start at the end, as "$", but at a concrete id and history position.
                let info = stream_info(c, &settings.stream).await?;
                position = HistoryPosition::at_end(info.as_ref());
                offset = Some(info.map_or_else(|| "0-0".to_string(), |i| i.last_generated_id));
                return Ok(None);
            };
            read_next(c, &settings, from, &mut position, more_waiting, reconnected).await
        }
        .await;
        match result {
            Ok(read) => {
                backoff = MIN_BACKOFF;
                reconnected = false;
                more_waiting = false;
                let Some(Read { loss, entries }) = read else {
                    continue;
                };
                if let Some(loss) = loss {
                    stats.losses.fetch_add(1, Ordering::Relaxed);
                    stats
                        .lost_entries
                        .fetch_add(loss.lost.unwrap_or(0), Ordering::Relaxed);
                    let count = loss.lost.map_or("some".to_string(), |n| n.to_string());
                    report(format!(
                        "stream {}: {count} entries after {} were trimmed (the stream now starts \
                         at {}) before this node read them; raise maxLen",
                        settings.stream, loss.after, loss.first_available
                    ));
                    on_loss(&loss);
                }
                more_waiting = entries.len() >= settings.read_count as usize;
                if let Some(last) = entries.last() {
                    offset = Some(last.id.clone());
                    position.advance(entries.len());
                    stats
                        .entries
                        .fetch_add(entries.len() as u64, Ordering::Relaxed);
                    on_entries(&entries);
                }
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                report(format!(
                    "stream {}: read failed ({e}), retrying in {} ms",
                    settings.stream,
                    backoff.as_millis()
                ));
                // A broken connection is replaced; the offset is kept, and what follows it is
                // read (and checked) as soon as the new connection is up.
                conn = None;
                more_waiting = true;
                reconnected = true;
                attempt += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_resp2_and_resp3_xread_replies() {
        let entries = Value::Array(vec![Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("uid"), bulk("a"), bulk("nsp"), bulk("/")]),
        ])]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("s"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("s"), entries)]);
        let expected = vec![StreamEntry {
            id: "1-0".into(),
            fields: vec![
                (b"uid".to_vec(), b"a".to_vec()),
                (b"nsp".to_vec(), b"/".to_vec()),
            ],
        }];
        assert_eq!(parse_xread(&resp2).unwrap(), expected);
        assert_eq!(parse_xread(&resp3).unwrap(), expected);
        assert!(parse_xread(&Value::Nil).unwrap().is_empty());
        assert!(expected[0].has_field(b"nsp"));
    }

    #[test]
    fn encodes_entries_compactly() {
        let e = StreamEntry {
            id: "1-2".into(),
            fields: vec![(b"k".to_vec(), b"vv".to_vec())],
        };
        let out = encode_entries(&[e]);
        assert_eq!(
            out,
            [
                &3u32.to_le_bytes()[..],
                &3u32.to_le_bytes(),
                b"1-2",
                &1u32.to_le_bytes(),
                b"k",
                &2u32.to_le_bytes(),
                b"vv"
            ]
            .concat()
        );
    }
}
