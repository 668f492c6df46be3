//! The commands of one call into the stream writer, written once as the RESP bytes that go to
//! the socket.
//!
//! Why: a `redis::Cmd` per XADD copied every field into the command, then again into RESP
//! when the pipeline was packed, and its reply travelled through a oneshot channel and a
//! `join_all` of its own; in `perf` of a streams sender that per-entry machinery was over a
//! third of the Tokio workers' time. A batch is packed on the JS thread straight from the
//! frames JS wrote, queued with one channel send and answered once.

use super::resp::{write_command, write_len};
use super::resp_nested::Cursor;
use super::slot::key_slot;
use redis::Cmd;

/// Commands as RESP arrays of bulk strings, back to back, with where each ends and, on a
/// cluster, the slot of its key (a pipeline may only hold keys of one slot).
#[derive(Debug, Default)]
pub struct CommandBatch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    slots: Vec<Option<u16>>,
    cluster: bool,
}

impl CommandBatch {
    /// `cluster`: the commands go to a Redis Cluster (their key slots are recorded).
    pub fn new(cluster: bool, bytes_hint: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes_hint),
            cluster,
            ..Self::default()
        }
    }

    /// `XADD stream MAXLEN ~ max_len * field value ...`, as the official adapter writes entries.
    pub fn push_xadd<'f>(
        &mut self,
        stream: &str,
        max_len: u32,
        fields: impl ExactSizeIterator<Item = &'f [u8]>,
    ) -> Result<(), &'static str> {
        if !fields.len().is_multiple_of(2) {
            return Err("xadd needs field/value pairs");
        }
        let mut digits = itoa::Buffer::new();
        write_len(&mut self.bytes, b'*', 6 + fields.len());
        for arg in [
            b"XADD".as_slice(),
            stream.as_bytes(),
            b"MAXLEN",
            b"~",
            digits.format(max_len).as_bytes(),
            b"*",
        ] {
            write_bulk(&mut self.bytes, arg);
        }
        for field in fields {
            write_bulk(&mut self.bytes, field);
        }
        self.end_command(stream);
        Ok(())
    }

    /// Any command whose key is `key`.
    pub fn push_command(&mut self, key: &str, args: &[&[u8]]) {
        write_command(&mut self.bytes, args);
        self.end_command(key);
    }

    fn end_command(&mut self, key: &str) {
        self.ends.push(self.bytes.len());
        self.slots
            .push(self.cluster.then(|| key_slot(key.as_bytes())));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The RESP bytes of command `i`.
    pub fn command(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    pub fn slot(&self, i: usize) -> Option<u16> {
        self.slots[i]
    }

    /// Command `i` as the redis crate's `Cmd`, for connections the crate drives (cluster, TLS).
    pub fn cmd(&self, i: usize) -> Cmd {
        let mut c = Cursor::new(self.command(i));
        let mut cmd = Cmd::new();
        // Written by this type: an array of bulk strings, so neither can fail.
        let count = c.array("command").ok().flatten().unwrap_or(0);
        for _ in 0..count {
            if let Ok(arg) = c.bulk("argument") {
                cmd.arg(arg);
            }
        }
        cmd
    }
}

fn write_bulk(out: &mut Vec<u8>, arg: &[u8]) {
    write_len(out, b'$', arg.len());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xadd_bytes_are_what_the_redis_crate_packs() {
        let fields: [&[u8]; 4] = [b"uid", b"abc", b"data", "{\"é\":1}".as_bytes()];
        let mut batch = CommandBatch::new(false, 0);
        batch
            .push_xadd("socket.io", 10_000, fields.iter().copied())
            .unwrap();
        batch.push_command("sio:session:x", &[b"SET", b"sio:session:x", b"v"]);
        let mut expected = redis::cmd("XADD");
        expected
            .arg("socket.io")
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000u32)
            .arg("*");
        for f in fields {
            expected.arg(f);
        }
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.command(0), expected.get_packed_command().as_slice());
        assert_eq!(
            batch.command(1),
            redis::cmd("SET")
                .arg("sio:session:x")
                .arg("v")
                .get_packed_command()
                .as_slice()
        );
        assert_eq!(
            batch.cmd(0).get_packed_command(),
            expected.get_packed_command()
        );
        assert_eq!(batch.slot(0), None);
    }

    #[test]
    fn records_key_slots_on_a_cluster_and_refuses_odd_fields() {
        let mut batch = CommandBatch::new(true, 0);
        batch
            .push_xadd("socket.io-1", 5, [b"a".as_slice(), b"b"].into_iter())
            .unwrap();
        assert_eq!(batch.slot(0), Some(key_slot(b"socket.io-1")));
        assert!(batch
            .push_xadd("s", 5, [b"a".as_slice()].into_iter())
            .is_err());
        assert_eq!(batch.len(), 1, "nothing of a refused command is kept");
    }
}
