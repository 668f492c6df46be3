//! The least a request/response round trip through Redis pub/sub costs on this machine: the
//! exchange of bench/raw-request.js (one process PUBLISHes a request, each answering process
//! PUBLISHes an answer back at once, the round trip ends when every answer is in) with no
//! JavaScript, no event loop and no async runtime: blocking sockets, hand-written RESP, every
//! process waiting in `read` on its subscriber socket. No adapter can be faster, since every
//! adapter also runs Socket.IO's JavaScript on both ends.
//!
//! Standard library only, compiled by bench/native-floor.js with `rustc -O` (no crate graph).
//! Usage: native-floor ask PORT ANSWERERS WARMUP_MS DURATION_MS   (prints one JSON line)
//!        native-floor answer PORT                                 (started by `ask`)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REQUESTS: &str = "bench-native-request";
const ANSWERS: &str = "bench-native-answer";

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis-server");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One RESP2 reply, flattened: the bulk strings of an array (or the one simple value).
fn read_reply(reader: &mut BufReader<TcpStream>) -> Vec<Vec<u8>> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).expect("read reply");
    assert!(line.len() >= 3, "connection closed");
    let body = &line[1..line.len() - 2];
    let number = || -> i64 { std::str::from_utf8(body).unwrap().parse().unwrap() };
    match line[0] {
        b'*' => (0..number()).flat_map(|_| read_reply(reader)).collect(),
        b'$' => {
            let mut bulk = vec![0; number() as usize + 2];
            reader.read_exact(&mut bulk).expect("read bulk");
            bulk.truncate(bulk.len() - 2);
            vec![bulk]
        }
        b'-' => panic!("redis error: {}", String::from_utf8_lossy(body)),
        _ => vec![body.to_vec()],
    }
}

/// A subscriber connection, and a publishing one whose replies a thread reads and drops (as an
/// event loop would read them later), so that a PUBLISH never waits for its own reply.
fn connections(port: u16, channel: &str) -> (BufReader<TcpStream>, TcpStream) {
    let mut sub = connect(port);
    sub.write_all(&command(&[b"SUBSCRIBE", channel.as_bytes()]))
        .unwrap();
    let mut sub = BufReader::new(sub);
    read_reply(&mut sub);
    let publisher = connect(port);
    let mut replies = BufReader::new(publisher.try_clone().unwrap());
    std::thread::spawn(move || loop {
        let mut line = Vec::new();
        if replies.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return;
        }
    });
    (sub, publisher)
}

fn answer(port: u16) {
    let (mut sub, mut publisher) = connections(port, REQUESTS);
    println!("ready");
    loop {
        let message = read_reply(&mut sub);
        if message.len() == 3 && message[0] == b"message" {
            publisher
                .write_all(&command(&[b"PUBLISH", ANSWERS.as_bytes(), &message[2]]))
                .unwrap();
        }
    }
}

fn spawn_answerer(port: u16) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["answer", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn an answering process");
    let mut ready = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    child
}

fn ask(port: u16, answerers: usize, warmup: Duration, duration: Duration) {
    let mut children: Vec<Child> = (0..answerers).map(|_| spawn_answerer(port)).collect();
    let (mut sub, mut publisher) = connections(port, ANSWERS);
    let mut round_trip = |id: &[u8]| {
        publisher
            .write_all(&command(&[b"PUBLISH", REQUESTS.as_bytes(), id]))
            .unwrap();
        let mut left = answerers;
        while left > 0 {
            let message = read_reply(&mut sub);
            if message.len() == 3 && message[2] == id {
                left -= 1;
            }
        }
    };
    let mut next_id = 0u64;
    let start = Instant::now();
    while start.elapsed() < warmup {
        next_id += 1;
        round_trip(next_id.to_string().as_bytes());
    }
    let mut latencies_us = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        next_id += 1;
        let t0 = Instant::now();
        round_trip(next_id.to_string().as_bytes());
        latencies_us.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed().as_secs_f64();
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    latencies_us.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize] / 1000.0;
    println!(
        "{{\"ops\":{},\"opsRate\":{:.1},\"p50\":{:.4},\"p99\":{:.4}}}",
        latencies_us.len(),
        latencies_us.len() as f64 / elapsed,
        at(0.5),
        at(0.99)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> u64 { args[i].parse().expect("a number") };
    match args.get(1).map(String::as_str) {
        Some("answer") => answer(arg(2) as u16),
        Some("ask") => ask(
            arg(2) as u16,
            arg(3) as usize,
            Duration::from_millis(arg(4)),
            Duration::from_millis(arg(5)),
        ),
        _ => panic!("usage: native-floor ask PORT ANSWERERS WARMUP_MS DURATION_MS"),
    }
}
