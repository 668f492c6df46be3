//! Real redis-server processes on private ports for the core's integration tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisProcess {
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
    /// A config file passed first (redis-server takes one only there), e.g. a sentinel's.
    config: Option<std::path::PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisProcess {
    pub fn start(extra: &[&str]) -> Self {
        let mut p = Self {
            port: free_port(),
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            config: None,
        };
        p.spawn();
        p
    }

    /// Starts with `config` written to a file of its own (a sentinel rewrites its file).
    pub fn start_with_config(config: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let path = std::env::temp_dir().join(format!(
            "sio-redis-native-{}-{port}.conf",
            std::process::id()
        ));
        std::fs::write(&path, config).expect("write the config file");
        let mut p = Self {
            port,
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            config: Some(path),
        };
        p.spawn();
        p
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.config)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // A replica still writes the RDB of its full sync: keep it out of the worktree.
            .args([
                "--dir",
                std::env::temp_dir().to_str().expect("utf-8 temp dir"),
            ])
            .args([
                "--dbfilename",
                &format!("sio-redis-native-{}.rdb", self.port),
            ])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
        if let Some(path) = &self.config {
            let _ = std::fs::remove_file(path);
        }
    }
}
