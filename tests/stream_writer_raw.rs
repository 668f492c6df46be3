//! The stream writer on its own raw connection (standalone Redis over TCP): order, entry ids,
//! a refused entry among accepted ones, and entries queued while Redis is down.

mod common;

use common::RedisProcess;
use redis::Value;
use socket_io_redis_native::connection::stream_writer::StreamWriter;
use socket_io_redis_native::connection::{CommandConnection, ConnectionOptions};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

fn writer(url: &str) -> StreamWriter {
    let conn = CommandConnection::new(&ConnectionOptions::from_url(url).unwrap()).unwrap();
    assert!(conn.raw_target().is_some(), "standalone TCP: the raw path");
    StreamWriter::spawn(
        conn,
        Duration::from_secs(10),
        Arc::new(|line| eprintln!("writer: {line}")),
    )
}

/// One batch of XADDs, entry `n` of stream `streams[i]` with field `n = <n>`.
fn xadds(
    w: &StreamWriter,
    streams: &[&str],
    first: u32,
) -> socket_io_redis_native::connection::command_batch::CommandBatch {
    let mut batch = w.batch(0);
    for (i, stream) in streams.iter().enumerate() {
        let n = (first + i as u32).to_string();
        batch
            .push_xadd(stream, 1000, [b"n".as_slice(), n.as_bytes()].into_iter())
            .unwrap();
    }
    batch
}

async fn xadd(w: &StreamWriter, stream: &str, n: u32) -> redis::RedisResult<Value> {
    let replies = w.queue_batch(xadds(w, &[stream], n)).await;
    replies.into_iter().next().unwrap()
}

fn id_of(v: Value) -> (u64, u64) {
    let Value::BulkString(bytes) = v else {
        panic!("not an entry id: {v:?}")
    };
    let text = String::from_utf8(bytes).unwrap();
    let (ms, seq) = text.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

async fn cli(url: &str, args: &[&str]) -> Value {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_are_written_in_order_and_refusals_answered_in_place() {
    let redis = RedisProcess::start(&[]);
    let w = writer(&redis.url());
    cli(&redis.url(), &["SET", "not-a-stream", "x"]).await;
    // Two batches (the second one detached) then a third one, all queued before any is sent.
    let streams: Vec<&str> = (0..200u32)
        .map(|n| if n == 100 { "not-a-stream" } else { "s" })
        .collect();
    let first = w.queue_batch(xadds(&w, &streams[..150], 0));
    assert!(w.queue_detached(xadds(&w, &["s", "not-a-stream"], 1000)));
    let second = w.queue_batch(xadds(&w, &streams[150..], 150));
    let (first, second) = futures_util::join!(first, second);
    let outcomes: Vec<_> = first.into_iter().chain(second).collect();
    assert_eq!(outcomes.len(), 200);
    let mut last = (0, 0);
    for (n, outcome) in outcomes.into_iter().enumerate() {
        if n == 100 {
            let e = outcome.expect_err("XADD to a string key is refused");
            assert!(e.to_string().contains("WRONGTYPE"), "{e}");
            continue;
        }
        let id = id_of(outcome.unwrap());
        assert!(id > last, "ids increase in call order");
        last = id;
    }
    assert_eq!(cli(&redis.url(), &["XLEN", "s"]).await, Value::Int(200));
    assert_eq!(w.stats.written.load(Ordering::Relaxed), 200);
    assert_eq!(w.stats.failed.load(Ordering::Relaxed), 2);
    // The detached entry sits between the two batches' entries in the stream.
    let Value::Array(entries) = cli(&redis.url(), &["XRANGE", "s", "-", "+"]).await else {
        panic!("XRANGE reply")
    };
    let n_of = |entry: &Value| -> String {
        let Value::Array(pair) = entry else { panic!() };
        let Value::Array(fields) = &pair[1] else {
            panic!()
        };
        redis::from_redis_value(fields[1].clone()).unwrap()
    };
    assert_eq!(n_of(&entries[148]), "149");
    assert_eq!(n_of(&entries[149]), "1000");
    assert_eq!(n_of(&entries[150]), "150");
    w.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_queued_while_redis_is_down_are_written_when_it_is_back() {
    let mut redis = RedisProcess::start(&[]);
    let w = writer(&redis.url());
    id_of(xadd(&w, "s", 0).await.unwrap());
    redis.kill();
    let pending: Vec<_> = (1..=3).map(|n| xadd(&w, "s", n)).collect();
    assert!(w.queue_detached(xadds(&w, &["s"], 4)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.restart();
    let outcomes = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(pending),
    )
    .await
    .expect("written once Redis is back");
    for outcome in outcomes {
        id_of(outcome.unwrap());
    }
    // A fresh server (nothing persisted): exactly the four entries, the detached one last.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cli(&redis.url(), &["XLEN", "s"]).await, Value::Int(4));
    assert!(w.stats.retries.load(Ordering::Relaxed) >= 1);
    w.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_what_was_queued_before_and_refuses_the_rest() {
    let redis = RedisProcess::start(&[]);
    let w = writer(&redis.url());
    let streams = vec!["s"; 50];
    assert!(w.queue_detached(xadds(&w, &streams, 0)));
    let awaited = w.queue_batch(xadds(&w, &["s"], 50));
    w.shutdown();
    assert!(
        !w.queue_detached(xadds(&w, &["s"], 51)),
        "refused once shut down"
    );
    let refused = w.queue_batch(xadds(&w, &["s"], 52)).await;
    assert!(refused[0].is_err());
    id_of(awaited.await.into_iter().next().unwrap().unwrap());
    assert_eq!(cli(&redis.url(), &["XLEN", "s"]).await, Value::Int(51));
}
