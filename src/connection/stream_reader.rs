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
use super::raw_connection::plain_tcp;
use super::sentinel::resolve_master;
use super::stream_entry::{
    parse_entries, parse_xread, unexpected, xread_batch, EntryBatch, EntryView, StreamEntry,
};
use super::stream_loss::{parse_stream_info, HistoryPosition, StreamInfo, Verdict};
use super::stream_raw::RawReader;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisResult, Value};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A connection used by nothing but one reader: plain TCP to one server is read in place
/// (stream_raw); TLS, Unix sockets and Redis Cluster go through the redis crate.
enum ReaderConn {
    Raw(RawReader),
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
                if plain_tcp(&info).is_some() {
                    let reader = RawReader::open(&info, CONNECT_TIMEOUT, response_timeout).await?;
                    return Ok(Self::Raw(reader));
                }
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

    /// The redis crate's connection; None for the raw one (the callers take that path first).
    fn crate_conn(&mut self) -> Option<CrateConn<'_>> {
        match self {
            Self::Raw(_) => None,
            Self::Single(c) => Some(CrateConn::Single(c)),
            Self::Cluster(c) => Some(CrateConn::Cluster(c)),
        }
    }
}

enum CrateConn<'a> {
    Single(&'a mut MultiplexedConnection),
    Cluster(&'a mut ClusterConnection),
}

impl CrateConn<'_> {
    async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Self::Single(c) => cmd.query_async(*c).await,
            Self::Cluster(c) => cmd.query_async(*c).await,
        }
    }

    async fn pipeline(&mut self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(c) => pipe.query_async(*c).await,
            Self::Cluster(c) => pipe.query_async(*c).await,
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
pub type EntriesHandler = Arc<dyn Fn(&[EntryView<'_>]) + Send + Sync>;
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
    let Some(mut conn) = conn.crate_conn() else {
        let ReaderConn::Raw(raw) = conn else {
            unreachable!()
        };
        return raw.stream_info(stream).await;
    };
    let mut cmd = redis::cmd("XINFO");
    cmd.arg("STREAM").arg(stream);
    match conn.query(&cmd).await {
        Ok(value) => parse_stream_info(&value).map(Some),
        Err(e) if no_such_key(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Entries of one read: owned (crate path) or still in the raw connection's buffer.
enum Fetched {
    Owned(Vec<StreamEntry>),
    /// Byte range of an XREAD reply, valid until the raw connection's next command.
    Held(Range<usize>),
}

/// Up to `read_count` entries after `offset`, with the stream's counters taken at the same
/// instant (MULTI: XINFO STREAM, non-blocking XREAD), so a gap before them is told exactly.
async fn read_with_info(
    conn: &mut ReaderConn,
    settings: &ReaderSettings,
    offset: &str,
) -> RedisResult<(Option<StreamInfo>, Fetched)> {
    let Some(mut conn) = conn.crate_conn() else {
        let ReaderConn::Raw(raw) = conn else {
            unreachable!()
        };
        let (info, range) = raw
            .read_with_info(&settings.stream, settings.read_count, offset)
            .await?;
        return Ok((info, Fetched::Held(range)));
    };
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
    Ok((info, Fetched::Owned(parse_xread(entries)?)))
}

/// `XREAD COUNT 1 BLOCK`: whether an entry came after `offset` within the block time.
async fn wait_for_entry(
    conn: &mut ReaderConn,
    settings: &ReaderSettings,
    offset: &str,
) -> RedisResult<bool> {
    let Some(mut conn) = conn.crate_conn() else {
        let ReaderConn::Raw(raw) = conn else {
            unreachable!()
        };
        return raw.wait(&settings.stream, offset, settings.block_ms).await;
    };
    let mut wait = redis::cmd("XREAD");
    wait.arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(settings.block_ms)
        .arg("STREAMS")
        .arg(&settings.stream)
        .arg(offset);
    Ok(!parse_xread(&conn.query(&wait).await?)?.is_empty())
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Ids of `XRANGE stream start end [COUNT 1]`.
async fn xrange_ids(
    conn: &mut ReaderConn,
    stream: &str,
    (start, end): (&str, &str),
    first_only: bool,
) -> RedisResult<Vec<String>> {
    let Some(mut conn) = conn.crate_conn() else {
        let ReaderConn::Raw(raw) = conn else {
            unreachable!()
        };
        return raw.xrange_ids(stream, start, end, first_only).await;
    };
    let mut cmd = redis::cmd("XRANGE");
    cmd.arg(stream).arg(start).arg(end);
    if first_only {
        cmd.arg("COUNT").arg(1);
    }
    let entries = parse_entries(&conn.query(&cmd).await?)?;
    Ok(entries.into_iter().map(|e| e.id).collect())
}

/// Redis < 7.0 only (no `entries-added`): `Some(first entry id)` when the offset entry is gone
/// and the stream now starts after it. It reports a loss that did not happen when the trim
/// stopped exactly after `offset`.
async fn trimmed_past_by_ids(conn: &mut ReaderConn, stream: &str, offset: &str) -> Option<String> {
    let exists = xrange_ids(conn, stream, (offset, offset), false).await;
    if !exists.ok()?.is_empty() {
        return None;
    }
    let first = xrange_ids(conn, stream, ("-", "+"), true).await;
    let first_id = first.ok()?.into_iter().next()?;
    (parse_id(&first_id)? > parse_id(offset)?).then_some(first_id)
}

/// One read of new entries, and the loss found before them, if any.
struct Read {
    loss: Option<Loss>,
    entries: Fetched,
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
    if !more_waiting && !wait_for_entry(conn, settings, offset).await? {
        return Ok(None);
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
        // On the raw path these commands leave the XREAD reply held in the buffer.
        Verdict::Unknown if reconnected => trimmed_past_by_ids(conn, &settings.stream, offset)
            .await
            .map(|first| loss(first, None)),
        Verdict::Unknown => None,
    };
    Ok(Some(Read { loss, entries }))
}

/// The entries of a read as views: over the owned entries, or parsed in place in the raw
/// connection's buffer.
fn batch_of<'a>(fetched: &'a Fetched, conn: Option<&'a ReaderConn>) -> RedisResult<EntryBatch<'a>> {
    match (fetched, conn) {
        (Fetched::Owned(entries), _) => Ok(EntryBatch::from_owned(entries)),
        (Fetched::Held(range), Some(ReaderConn::Raw(raw))) => xread_batch(raw.held(range.clone()))
            .map_err(|e| {
                RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "unexpected XREAD reply",
                    e.0,
                ))
            }),
        (Fetched::Held(_), _) => unreachable!("held replies come from a raw connection"),
    }
}

/// Where a reader is: the last entry read, its history position, whether to read again
/// without waiting.
struct Progress {
    offset: Option<String>,
    position: HistoryPosition,
    /// The last read brought entries (or the connection was replaced): read again without
    /// waiting.
    more_waiting: bool,
    reconnected: bool,
}

/// Reports a loss, then hands the entries on and moves past them.
fn deliver(
    read: Read,
    conn: Option<&ReaderConn>,
    settings: &ReaderSettings,
    progress: &mut Progress,
    handlers: (&EntriesHandler, &LossHandler, &ReaderReport),
    stats: &ReaderStats,
) -> RedisResult<()> {
    let (on_entries, on_loss, report) = handlers;
    if let Some(loss) = read.loss {
        stats.losses.fetch_add(1, Ordering::Relaxed);
        stats
            .lost_entries
            .fetch_add(loss.lost.unwrap_or(0), Ordering::Relaxed);
        let count = loss.lost.map_or("some".to_string(), |n| n.to_string());
        report(format!(
            "stream {}: {count} entries after {} were trimmed (the stream now starts at {}) \
             before this node read them; raise maxLen",
            settings.stream, loss.after, loss.first_available
        ));
        on_loss(&loss);
    }
    let batch = batch_of(&read.entries, conn)?;
    // Read again at once while reads bring entries: under load the next ones are there
    // already, and waiting first (a blocking XREAD COUNT 1, then the read) took two round
    // trips per batch instead of one. An empty read means caught up: then wait.
    progress.more_waiting = !batch.is_empty();
    if let Some(last) = batch.last_id() {
        progress.offset = Some(last.to_string());
        progress.position.advance(batch.len());
        stats
            .entries
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        on_entries(&batch.views());
    }
    Ok(())
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
    let mut progress = Progress {
        offset: None,
        position: HistoryPosition::at_end(None),
        more_waiting: false,
        reconnected: false,
    };
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
            let p = &mut progress;
            let Some(from) = p.offset.as_deref() else {
                // Start at the end, as "$", but at a concrete id and history position.
                let info = stream_info(c, &settings.stream).await?;
                p.position = HistoryPosition::at_end(info.as_ref());
                p.offset = Some(info.map_or_else(|| "0-0".to_string(), |i| i.last_generated_id));
                return Ok(None);
            };
            read_next(
                c,
                &settings,
                from,
                &mut p.position,
                p.more_waiting,
                p.reconnected,
            )
            .await
        }
        .await;
        let outcome = result.and_then(|read| {
            backoff = MIN_BACKOFF;
            progress.reconnected = false;
            progress.more_waiting = false;
            let Some(read) = read else {
                return Ok(());
            };
            let handlers = (&on_entries, &on_loss, &report);
            deliver(
                read,
                conn.as_ref(),
                &settings,
                &mut progress,
                handlers,
                &stats,
            )
        });
        if let Err(e) = outcome {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            report(format!(
                "stream {}: read failed ({e}), retrying in {} ms",
                settings.stream,
                backoff.as_millis()
            ));
            // A broken connection is replaced; the offset is kept, and what follows it is
            // read (and checked) as soon as the new connection is up.
            conn = None;
            progress.more_waiting = true;
            progress.reconnected = true;
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
