//! The sharded transport and protocol core against a real Redis 7, without Node: SSUBSCRIBE
//! routing by channel, own-message filtering by uid, room channels, SHARDNUMSUB and
//! resubscription after a Redis restart.

mod common;

use common::RedisProcess;
use socket_io_redis_native::connection::publisher::PublisherLimits;
use socket_io_redis_native::connection::ConnectionOptions;
use socket_io_redis_native::protocol::delivery::parse_frames;
use socket_io_redis_native::protocol::sharded::ShardedCore;
use socket_io_redis_native::protocol::{DeliveryKind, DeliverySink};
use socket_io_redis_native::transport::ShardedTransport;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Collector {
    frames: Mutex<Vec<(u8, u32, Vec<u8>)>>,
}

impl DeliverySink for Collector {
    fn deliver(&self, frames: Vec<u8>) {
        self.frames.lock().unwrap().extend(parse_frames(&frames));
    }
}

impl Collector {
    fn payloads(&self, kind: DeliveryKind) -> Vec<String> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.0 == kind as u8)
            .map(|f| String::from_utf8_lossy(&f.2).into_owned())
            .collect()
    }

    async fn wait_for(&self, kind: DeliveryKind, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.payloads(kind);
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct Node {
    core: ShardedCore<ShardedTransport>,
    sink: Arc<Collector>,
    ns: u32,
}

async fn node(url: &str, uid: &str) -> Node {
    let sink = Arc::new(Collector::default());
    let core = ShardedCore::new("socket.io", sink.clone());
    let options = ConnectionOptions::from_url(url).unwrap();
    let transport = ShardedTransport::start(
        &options,
        core.router(),
        PublisherLimits::default(),
        Arc::new(|_| {}),
    )
    .unwrap();
    core.attach(transport);
    let (ns, subscribed) = core.add_namespace("/", uid);
    subscribed.await.unwrap();
    Node { core, sink, ns }
}

fn message(msg_type: u8, uid: &str, body: &str) -> Vec<u8> {
    format!(r#"{{"type":{msg_type},"data":{{"packet":{{"type":2,"data":["{body}"]}}}},"uid":"{uid}","nsp":"/"}}"#)
        .into_bytes()
}

async fn wait_count(node: &Node, channel_count: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.core.server_count(node.ns).await.unwrap_or(-1) != channel_count {
        assert!(
            Instant::now() < deadline,
            "server count never reached {channel_count}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_filters_and_counts() {
    let redis = RedisProcess::start(&[]);
    let a = node(&redis.url(), "aaaaaaaaaaaaaaaa").await;
    let b = node(&redis.url(), "bbbbbbbbbbbbbbbb").await;
    assert_eq!(a.core.server_count(a.ns).await.unwrap(), 2);

    // Main channel: the other node gets it, the sender drops its own copy.
    assert!(a
        .core
        .publish(a.ns, None, message(3, "aaaaaaaaaaaaaaaa", "all")));
    let got = b.sink.wait_for(DeliveryKind::Broadcast, 1).await;
    assert!(got[0].contains("\"all\""));

    // A room channel reaches only the node that subscribed it.
    assert!(b.core.add_room(b.ns, "r1"));
    b.core.flush().await.unwrap();
    assert!(a
        .core
        .publish(a.ns, Some("r1"), message(3, "aaaaaaaaaaaaaaaa", "room")));
    assert!(a
        .core
        .publish(a.ns, Some("nobody"), message(3, "aaaaaaaaaaaaaaaa", "lost")));
    let got = b.sink.wait_for(DeliveryKind::Broadcast, 2).await;
    assert!(got[1].contains("\"room\""));

    // Responses go to the requester's channel, whatever their uid.
    assert!(b.core.publish_response(
        b.ns,
        "aaaaaaaaaaaaaaaa",
        message(11, "bbbbbbbbbbbbbbbb", "n")
    ));
    let got = a.sink.wait_for(DeliveryKind::AckResponse, 1).await;
    assert_eq!(got.len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        a.sink.payloads(DeliveryKind::Broadcast),
        Vec::<String>::new()
    );
    assert_eq!(b.sink.payloads(DeliveryKind::Broadcast).len(), 2);

    // Removing the room drops its subscription, and a namespace's removal drops the rest.
    assert!(b.core.remove_room(b.ns, "r1"));
    b.core.flush().await.unwrap();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!channels.iter().any(|c| c.ends_with("r1#")), "{channels:?}");
    // On a standalone Redis over plain TCP the shard subscriptions are read raw, in RESP2
    // (the redis crate's connections would show resp=3).
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let subscribers: Vec<&str> = clients
        .lines()
        .filter(|l| !l.contains(" ssub=0 "))
        .collect();
    assert_eq!(subscribers.len(), 2, "{clients}");
    assert!(
        subscribers.iter().all(|l| l.contains(" resp=2")),
        "{clients}"
    );
    assert!(!b.core.remove_namespace(b.ns).await.unwrap());
    wait_count(&a, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_after_a_restart() {
    let mut redis = RedisProcess::start(&[]);
    let a = node(&redis.url(), "aaaaaaaaaaaaaaaa").await;
    let b = node(&redis.url(), "bbbbbbbbbbbbbbbb").await;
    assert!(b.core.add_room(b.ns, "kept"));
    b.core.flush().await.unwrap();
    redis.restart();
    wait_count(&a, 2).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.sink.payloads(DeliveryKind::Broadcast).is_empty() {
        assert!(Instant::now() < deadline, "no message after the restart");
        a.core
            .publish(a.ns, Some("kept"), message(3, "aaaaaaaaaaaaaaaa", "again"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
