use socket_io_redis_native::codec::msgpack;
use socket_io_redis_native::protocol::broadcast_batch;
use std::time::Instant;

#[test]
#[ignore]
fn probe_sender_path() {
    let data = format!("[\"m\",1795373718447,\"{}\"]", "x".repeat(100));
    let n = 1_000_000;
    let mut batch = String::new();
    for _ in 0..50 {
        batch.push_str(&format!("1\u{1}\u{1}\u{1}{data}\0"));
    }
    for _ in 0..3 {
        let t = Instant::now();
        let mut total = 0;
        for _ in 0..n {
            let mut out = Vec::with_capacity(200);
            msgpack::json_to_msgpack(std::hint::black_box(&data), &mut out).unwrap();
            total += out.len();
        }
        let a = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n / 50 {
            for r in broadcast_batch::records(std::hint::black_box(&batch)) {
                total += r.unwrap().data_json.len();
            }
        }
        let b = t.elapsed().as_nanos() as f64 / n as f64;
        println!("transcode {a:.0} ns, record parse {b:.0} ns ({total})");
    }
}
