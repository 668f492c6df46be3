//! The publisher's direct writes against a real Redis: a flush from a thread outside the
//! runtime (as the JS thread is) writes the batch itself when the sender is idle, and the
//! sender reads the replies. Order, counts, partial writes and a dead connection.

mod common;

use common::RedisProcess;
use futures_util::StreamExt;
use socket_io_redis_native::connection::publisher::{PublisherLimits, PublisherStats};
use socket_io_redis_native::connection::{CommandConnection, ConnectionOptions};
use socket_io_redis_native::connection::{PublishBundle, PublishKind, Publisher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

async fn publisher(url: &str) -> Arc<Publisher> {
    let conn = CommandConnection::new(&ConnectionOptions::from_url(url).unwrap()).unwrap();
    Arc::new(Publisher::spawn(
        conn,
        PublisherLimits::default(),
        Arc::new(|line| eprintln!("publisher: {line}")),
    ))
}

async fn subscriber(url: &str, channel: &str) -> redis::aio::PubSub {
    let client = redis::Client::open(url).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(channel).await.unwrap();
    pubsub
}

/// Publishes from a plain thread (no Tokio context), as the JS thread does.
async fn publish_from_thread(p: &Arc<Publisher>, channel: &str, payload: Vec<u8>) -> bool {
    let (p, channel) = (p.clone(), channel.to_string());
    tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || p.publish(PublishKind::Publish, channel, payload))
            .join()
            .unwrap()
    })
    .await
    .unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn published(stats: &PublisherStats) -> u64 {
    stats.published.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_publisher_lets_the_calling_thread_write_in_order() {
    let redis = RedisProcess::start(&[]);
    let p = publisher(&redis.url()).await;
    let mut sub = subscriber(&redis.url(), "direct").await;
    // The first publish connects (the sender writes it); the later ones find it idle.
    assert!(publish_from_thread(&p, "direct", b"0".to_vec()).await);
    wait_until("the first publish", || published(p.stats()) == 1).await;
    for i in 1..50u32 {
        assert!(publish_from_thread(&p, "direct", i.to_string().into_bytes()).await);
        if i % 5 == 0 {
            // Let the sender go idle again now and then.
            let want = u64::from(i) + 1;
            wait_until("replies", || published(p.stats()) == want).await;
        }
    }
    let mut messages = sub.on_message();
    for i in 0..50u32 {
        let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("message in time")
            .unwrap();
        assert_eq!(msg.get_payload_bytes(), i.to_string().as_bytes());
    }
    wait_until("all confirmed", || published(p.stats()) == 50).await;
    let direct = p.stats().direct_writes.load(Ordering::Relaxed);
    assert!(direct >= 9, "only {direct} direct writes");
    assert_eq!(p.stats().failed.load(Ordering::Relaxed), 0);
    assert_eq!(p.stats().buffered_bytes.load(Ordering::Relaxed), 0);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_publish_written_directly_returns_the_listener_count() {
    let redis = RedisProcess::start(&[]);
    let p = publisher(&redis.url()).await;
    let _a = subscriber(&redis.url(), "counted").await;
    let _b = subscriber(&redis.url(), "counted").await;
    assert!(publish_from_thread(&p, "warmup", b"x".to_vec()).await);
    wait_until("the connection", || published(p.stats()) == 1).await;
    let before = p.stats().direct_writes.load(Ordering::Relaxed);
    let p2 = p.clone();
    // Queued (and written) on a plain thread; awaited here.
    let count = std::thread::spawn(move || {
        p2.queue_counted(PublishKind::Publish, "counted".into(), b"?".to_vec())
    })
    .join()
    .unwrap();
    assert_eq!(count.await.unwrap(), 2);
    assert_eq!(p.stats().direct_writes.load(Ordering::Relaxed), before + 1);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_socket_buffer_is_finished_by_the_sender() {
    let redis = RedisProcess::start(&[]);
    let p = publisher(&redis.url()).await;
    let mut sub = subscriber(&redis.url(), "big").await;
    assert!(publish_from_thread(&p, "big", b"small".to_vec()).await);
    wait_until("the connection", || published(p.stats()) == 1).await;
    // Far more than a loopback socket takes at once: try_write writes part of it.
    let big: Vec<u8> = (0..24 << 20).map(|i| (i % 251) as u8).collect();
    assert!(publish_from_thread(&p, "big", big.clone()).await);
    let mut messages = sub.on_message();
    let first = messages.next().await.unwrap();
    assert_eq!(first.get_payload_bytes(), b"small");
    let second = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("big message in time")
        .unwrap();
    assert!(
        second.get_payload_bytes() == big.as_slice(),
        "payload intact"
    );
    assert!(p.stats().direct_writes.load(Ordering::Relaxed) >= 1);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_write_on_a_dead_connection_is_retried_on_a_new_one() {
    let mut redis = RedisProcess::start(&[]);
    let p = publisher(&redis.url()).await;
    assert!(publish_from_thread(&p, "x", b"before".to_vec()).await);
    wait_until("the connection", || published(p.stats()) == 1).await;
    // The idle connection dies with the server; the next flush writes into it directly.
    redis.restart();
    let mut sub = subscriber(&redis.url(), "after").await;
    assert!(publish_from_thread(&p, "after", b"after".to_vec()).await);
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.on_message().next())
        .await
        .expect("delivered after the restart")
        .unwrap();
    assert_eq!(msg.get_payload_bytes(), b"after");
    wait_until("confirmed", || published(p.stats()) == 2).await;
    assert!(p.stats().retries.load(Ordering::Relaxed) >= 1);
    assert_eq!(p.stats().failed.load(Ordering::Relaxed), 0);
    p.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_alone_publishes_nothing() {
    let redis = RedisProcess::start(&[]);
    let p = publisher(&redis.url()).await;
    let mut sub = subscriber(&redis.url(), "counted-only").await;
    assert!(publish_from_thread(&p, "warmup", b"x".to_vec()).await);
    wait_until("the connection", || published(p.stats()) == 1).await;
    let p2 = p.clone();
    let count =
        std::thread::spawn(move || p2.queue_count(PublishKind::Publish, "counted-only".into()))
            .join()
            .unwrap();
    assert_eq!(count.await.unwrap(), 1);
    assert_eq!(published(p.stats()), 1, "a count is not a message");
    // Nothing reached the subscriber: the next message it gets is the one published now.
    assert!(publish_from_thread(&p, "counted-only", b"after".to_vec()).await);
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.on_message().next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.get_payload_bytes(), b"after");
    p.shutdown();
}

/// A bundle's messages arrive in order, byte for byte, on the raw writer (plain TCP) and on the
/// crate's connection (a Unix socket), and the counters count its messages, not the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_publishes_each_message_in_order_on_both_writers() {
    let socket = std::env::temp_dir().join(format!("sio-bundle-{}.sock", std::process::id()));
    let socket = socket.to_str().unwrap().to_string();
    let redis = RedisProcess::start(&["--unixsocket", &socket, "--unixsocketperm", "700"]);
    for url in [redis.url(), format!("redis+unix://{socket}")] {
        let p = publisher(&url).await;
        let mut sub = subscriber(&redis.url(), "bundle#").await;
        sub.subscribe("bundle#room-é#").await.unwrap();
        let sent: Vec<(Vec<&[u8]>, Vec<u8>)> = vec![
            (vec![b"bundle#"], b"first".to_vec()),
            (
                vec![b"bundle#", "room-é".as_bytes(), b"#"],
                vec![0, 13, 10, 255],
            ),
            (
                vec![b"bundle#"],
                (0..70_000).map(|i| (i % 251) as u8).collect(),
            ),
        ];
        let mut bundle = PublishBundle::default();
        for (channel, payload) in &sent {
            bundle
                .push(channel, |out| {
                    out.extend_from_slice(payload);
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        // A failing writer appends nothing.
        assert!(bundle
            .push(&[b"bundle#"], |out| {
                out.extend_from_slice(b"partial");
                Err(())
            })
            .is_err());
        assert_eq!(bundle.len(), 3);
        let p2 = p.clone();
        let queued = std::thread::spawn(move || {
            let queued = p2.publish_deferred_bundle(bundle);
            p2.flush();
            queued
        })
        .join()
        .unwrap();
        assert_eq!(queued, 3);
        let mut messages = sub.on_message();
        for (channel, payload) in &sent {
            let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
                .await
                .expect("message in time")
                .unwrap();
            assert_eq!(msg.get_channel_name().as_bytes(), channel.concat(), "{url}");
            assert!(msg.get_payload_bytes() == payload.as_slice(), "{url}");
        }
        wait_until("all confirmed", || published(p.stats()) == 3).await;
        let bytes: usize = sent.iter().map(|(_, payload)| payload.len()).sum();
        assert_eq!(
            p.stats().published_bytes.load(Ordering::Relaxed),
            bytes as u64
        );
        assert_eq!(p.stats().buffered_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(p.stats().failed.load(Ordering::Relaxed), 0);
        p.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_what_was_queued_before_even_while_busy() {
    let redis = RedisProcess::start(&[]);
    let p = publisher(&redis.url()).await;
    let mut sub = subscriber(&redis.url(), "last").await;
    assert!(publish_from_thread(&p, "last", b"first".to_vec()).await);
    wait_until("the connection", || published(p.stats()) == 1).await;
    // 40 messages of 1 MiB: the sender is still busy with them when shutdown comes.
    let (q, payload) = (p.clone(), vec![7u8; 1 << 20]);
    let queued = tokio::task::spawn_blocking(move || {
        let queued = (0..40)
            .filter(|_| q.publish(PublishKind::Publish, "last".into(), payload.clone()))
            .count();
        q.shutdown();
        let refused = !q.publish(PublishKind::Publish, "last".into(), b"after".to_vec());
        (queued, refused)
    })
    .await
    .unwrap();
    assert_eq!(queued, (40, true));
    let mut messages = sub.on_message();
    for n in 0..41 {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("message {n} in time"))
            .unwrap();
        assert_eq!(
            m.get_payload_bytes().len(),
            if n == 0 { 5 } else { 1 << 20 }
        );
    }
}
