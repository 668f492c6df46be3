//! The classic protocol core against a real Redis, without Node: routing, own-message
//! filtering, request correlation and resubscription after a restart.

mod common;

use common::RedisProcess;
use socket_io_redis_native::connection::publisher::PublisherLimits;
use socket_io_redis_native::connection::ConnectionOptions;
use socket_io_redis_native::protocol::classic::{ClassicCore, ClassicSettings};
use socket_io_redis_native::protocol::delivery::parse_frames;
use socket_io_redis_native::protocol::{DeliveryKind, DeliverySink};
use socket_io_redis_native::transport::PubSubTransport;
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
    fn of_kind(&self, kind: DeliveryKind) -> Vec<(u32, Vec<u8>)> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.0 == kind as u8)
            .map(|f| (f.1, f.2.clone()))
            .collect()
    }

    async fn wait_for(&self, kind: DeliveryKind, count: usize) -> Vec<(u32, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.of_kind(kind);
            if got.len() >= count || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct Node {
    core: Arc<ClassicCore<PubSubTransport>>,
    sink: Arc<Collector>,
    ns: u32,
}

async fn node(url: &str) -> Node {
    let sink = Arc::new(Collector::default());
    let core = Arc::new(ClassicCore::new(
        ClassicSettings::new("socket.io", false, true),
        sink.clone(),
    ));
    let transport = PubSubTransport::start(
        &ConnectionOptions::from_url(url).unwrap(),
        core.router(),
        PublisherLimits::default(),
        Arc::new(|line| eprintln!("publisher: {line}")),
    )
    .unwrap();
    core.attach(transport);
    let ns = core.add_namespace("/");
    core.subscribe_namespace(ns).await.unwrap();
    Node { core, sink, ns }
}

/// notepack.encode([uid, {type:2, data:["hi"], nsp:"/"}, {rooms, except:[], flags:{}}])
fn envelope(uid: &str, rooms: &[&str]) -> Vec<u8> {
    let mut out = vec![0x93];
    push_str(&mut out, uid);
    out.push(0x83);
    push_str(&mut out, "type");
    out.push(2);
    push_str(&mut out, "data");
    out.push(0x91);
    push_str(&mut out, "hi");
    push_str(&mut out, "nsp");
    push_str(&mut out, "/");
    out.push(0x83);
    push_str(&mut out, "rooms");
    out.push(0x90 + rooms.len() as u8);
    for r in rooms {
        push_str(&mut out, r);
    }
    push_str(&mut out, "except");
    out.push(0x90);
    push_str(&mut out, "flags");
    out.push(0x80);
    out
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    assert!(s.len() < 32);
    out.push(0xa0 + s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_are_routed_filtered_and_resubscribed_after_restart() {
    let mut redis = RedisProcess::start(&[]);
    let a = node(&redis.url()).await;
    let b = node(&redis.url()).await;
    assert_eq!(a.core.server_count(a.ns).await.unwrap(), 2);

    b.core.add_room(b.ns, "room1");
    let uid_a = a.core.settings().uid.clone();
    assert!(a.core.broadcast(a.ns, None, envelope(&uid_a, &[])));
    assert!(a
        .core
        .broadcast(a.ns, Some("room1"), envelope(&uid_a, &["room1"])));
    assert!(a
        .core
        .broadcast(a.ns, Some("nobody"), envelope(&uid_a, &["nobody"])));
    assert!(a.core.broadcast(a.ns, None, envelope(&uid_a, &["x", "y"])));
    a.core.flush(); // broadcasts are queued until flushed (once per JS event-loop turn)
    let got = b.sink.wait_for(DeliveryKind::Broadcast, 2).await;
    assert_eq!(got.len(), 2, "to all + to room1; not to a room b lacks");
    // a drops its own broadcasts, b skipped the two for rooms it does not have.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(a.sink.of_kind(DeliveryKind::Broadcast).is_empty());
    let skipped = b
        .core
        .router()
        .stats()
        .skipped_no_local_room
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(skipped, 2);

    // Garbage on the broadcast channel is skipped and reported, nothing else breaks.
    assert!(a.core.broadcast(a.ns, None, vec![0xc1, 0xff, 0x00]));
    a.core.flush();
    let logs = b.sink.wait_for(DeliveryKind::Log, 1).await;
    assert!(String::from_utf8_lossy(&logs[0].1).contains("malformed"));

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        a.core.broadcast(a.ns, None, envelope(&uid_a, &[]));
        a.core.flush();
        if b.sink.of_kind(DeliveryKind::Broadcast).len() > 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no broadcast after restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        b.core.server_count(b.ns).await.unwrap(),
        2,
        "one subscription each, again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_collect_answers_and_time_out() {
    let redis = RedisProcess::start(&[]);
    let a = node(&redis.url()).await;
    let b = node(&redis.url()).await;

    // b answers whatever fetch request it sees, as the JS layer does.
    let b_core = b.core.clone();
    let b_sink = b.sink.clone();
    let ns = b.ns;
    let answerer = tokio::spawn(async move {
        let reqs = b_sink.wait_for(DeliveryKind::Request, 1).await;
        let req: serde_json::Value = serde_json::from_slice(&reqs[0].1).unwrap();
        let answer = serde_json::json!({"requestId": req["requestId"], "sockets": []});
        b_core.publish_response(ns, None, answer.to_string().into_bytes(), false);
    });
    let request = br#"{"uid":"me","requestId":"abc123","type":5,"opts":{"rooms":[],"except":[]}}"#;
    let outcome = a
        .core
        .request(a.ns, "abc123", request.to_vec(), Duration::from_secs(5))
        .await
        .unwrap();
    answerer.await.unwrap();
    assert_eq!(outcome.expected, 1);
    assert!(!outcome.timed_out);
    assert_eq!(outcome.responses.len(), 1);
    // The requester never sees its own request.
    assert!(a.sink.of_kind(DeliveryKind::Request).is_empty());

    // Nobody answers this one: partial result after the timeout.
    let request = br#"{"uid":"me","requestId":"zzz999","type":1}"#;
    let started = Instant::now();
    let outcome = a
        .core
        .request(a.ns, "zzz999", request.to_vec(), Duration::from_millis(300))
        .await
        .unwrap();
    assert!(outcome.timed_out);
    assert!(outcome.responses.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(a.core.registry().pending_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_redis_is_down_and_works_once_it_is_up() {
    let mut redis = RedisProcess::start(&[]);
    let url = redis.url();
    redis.kill();
    let a = node(&url).await; // subscription recorded, not confirmed
    assert!(a.core.server_count(a.ns).await.is_err());
    redis.restart();
    let b = node(&url).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.core.server_count(b.ns).await.unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "a never subscribed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
