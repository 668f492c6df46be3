//! The command connection through Redis Sentinel against real processes (a master, a replica
//! and a sentinel): after a failover it must reach the new master, not reconnect to the old
//! address, which by then is a replica (where PUBLISH reaches nobody and writes are refused).

mod common;

use common::RedisProcess;
use socket_io_redis_native::connection::{CommandConnection, ConnectionOptions};
use std::time::{Duration, Instant};

fn cmd_on(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_connection()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn)
}

fn text(value: redis::Value) -> String {
    match value {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::SimpleString(s) => s,
        redis::Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn master_port_per_sentinel(sentinel: u16) -> Option<u16> {
    let addr: (String, u16) = redis::FromRedisValue::from_redis_value(
        cmd_on(
            sentinel,
            &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        )
        .ok()?,
    )
    .ok()?;
    Some(addr.1)
}

/// `INFO server` of whatever node the connection reaches → its `tcp_port`.
async fn reached_port(conn: &CommandConnection) -> redis::RedisResult<u16> {
    let info: String = conn.query(redis::cmd("INFO").arg("server")).await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("tcp_port:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_connection_follows_a_sentinel_failover() {
    let repl = [
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ];
    let master = RedisProcess::start(&repl);
    let master_port = master.port.to_string();
    let mut replica_args = repl.to_vec();
    replica_args.extend(["--replicaof", "127.0.0.1", &master_port]);
    let replica = RedisProcess::start(&replica_args);
    let sentinel = RedisProcess::start_with_config(
        &format!(
            "sentinel resolve-hostnames no\n\
             sentinel monitor mymaster 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds mymaster 1000\n\
             sentinel failover-timeout mymaster 5000\n",
            master.port
        ),
        &["--sentinel"],
    );
    let opts = ConnectionOptions::from_json(&format!(
        r#"{{"topology":"sentinel","nodes":[{{"host":"127.0.0.1","port":{}}}],"sentinelMaster":"mymaster"}}"#,
        sentinel.port
    ))
    .unwrap();
    let conn = CommandConnection::new(&opts).unwrap();
    assert_eq!(reached_port(&conn).await.unwrap(), master.port);

    // SENTINEL FAILOVER is refused until the sentinel has seen the replica in sync.
    wait_until(
        "SENTINEL FAILOVER accepted",
        Duration::from_secs(20),
        || {
            cmd_on(sentinel.port, &["SENTINEL", "FAILOVER", "mymaster"])
                .map(text)
                .is_ok_and(|t| t == "OK")
        },
    );
    wait_until(
        "the sentinel to name the replica",
        Duration::from_secs(20),
        || master_port_per_sentinel(sentinel.port) == Some(replica.port),
    );
    // The old master turns replica (and the sentinel kills its clients) a few seconds later.
    wait_until(
        "the old master to be a replica",
        Duration::from_secs(30),
        || {
            cmd_on(master.port, &["ROLE"])
                .ok()
                .and_then(|v| match v {
                    redis::Value::Array(items) => items.into_iter().next().map(text),
                    _ => None,
                })
                .is_some_and(|role| role == "slave")
        },
    );

    // Errors on the way are fine (the killed connection); within a bound, commands reach the
    // new master and writes succeed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reached = reached_port(&conn).await;
        let written: redis::RedisResult<()> = conn
            .query(redis::cmd("SET").arg("sentinel-probe").arg("1"))
            .await;
        if reached.as_ref().is_ok_and(|p| *p == replica.port) && written.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still not on the new master: reached {reached:?}, SET {written:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        text(cmd_on(replica.port, &["GET", "sentinel-probe"]).unwrap()),
        "1"
    );
}
