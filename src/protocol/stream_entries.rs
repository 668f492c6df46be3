//! What the streams adapter's readers hand to JS, entry by entry (PROTOCOL.md 5.5, 5.6).
//!
//! Every node reads its own entries back, and every BROADCAST entry would be decoded in JS
//! (`JSON.parse` of `data`) and encoded again by socket.io-parser. Here entries written by this
//! node's adapters are dropped before JS (ClusterAdapter#onMessage drops them by uid), and plain
//! broadcasts of namespaces that allow it go over as the text socket.io writes to clients
//! (see protocol::cluster_event), with the entry id appended when connection state recovery
//! wants it (ClusterAdapter#addOffsetIfNecessary). Everything else keeps the entry format.

use super::cluster_event::{broadcast_event_text, EventText};
use super::delivery::{
    event_wire_head, event_wire_targets, write_event_binary, write_event_text, FrameBatch,
};
use crate::codec::msgpack::{self, EventWire};
use crate::connection::stream_entry::{encode_entries, EntryView};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// Frame kind of entries in the field format (`encode_entries`).
pub const STREAM_ENTRIES: u8 = 6;
/// Frame kind of one broadcast as wire text: `nsp_len u32 LE, nsp, mode u8, opts_len u32 LE,
/// opts JSON, text` (the tail is lib/event-text.js's `readEventText` format).
pub const STREAM_EVENT_TEXT: u8 = 8;
/// Frame kind of one broadcast with binary values as socket.io's wire: `nsp_len u32 LE, nsp`,
/// then lib/event-text.js's `applyEventBinary` format.
pub const STREAM_EVENT_BINARY: u8 = 10;

#[derive(Default)]
pub struct StreamRoutes {
    /// uids of this node's adapters: their entries are not handed over.
    own_uids: HashSet<String>,
    /// Namespaces whose broadcasts go over as text → whether connection state recovery is on.
    wire_text: HashMap<String, bool>,
}

#[derive(Debug, Default)]
pub struct StreamEntryStats {
    pub skipped_own: AtomicU64,
    pub delivered_as_text: AtomicU64,
}

impl StreamRoutes {
    pub fn add_own_uid(&mut self, uid: &str) {
        self.own_uids.insert(uid.to_string());
    }

    pub fn remove_own_uid(&mut self, uid: &str) {
        self.own_uids.remove(uid);
    }

    /// `recovery`: the server has connection state recovery on (offsets go into the data).
    pub fn set_wire_text(&mut self, nsp: &str, enabled: bool, recovery: bool) {
        if enabled {
            self.wire_text.insert(nsp.to_string(), recovery);
        } else {
            self.wire_text.remove(nsp);
        }
    }

    /// Frames `entries` of stream `index` in their order: runs of ordinary entries as one
    /// STREAM_ENTRIES frame each, broadcasts as STREAM_EVENT_TEXT frames in between.
    pub fn frame(
        &self,
        entries: &[EntryView<'_>],
        index: u32,
        stats: &StreamEntryStats,
        batch: &mut FrameBatch,
    ) {
        let mut run: Vec<EntryView<'_>> = Vec::new();
        for entry in entries {
            let field = |name: &[u8]| entry.field(name);
            // Entries without `nsp` are skipped as by the official reader.
            let Some(nsp) = field(b"nsp").filter(|n| !n.is_empty()) else {
                continue;
            };
            let uid = field(b"uid").and_then(|u| std::str::from_utf8(u).ok());
            if uid.is_some_and(|u| self.own_uids.contains(u)) {
                stats.skipped_own.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Some((kind, payload)) =
                self.event_wire(entry, nsp, field(b"type"), field(b"data"))
            {
                flush_run(&mut run, index, batch);
                batch.push_raw(kind, index, &payload);
                stats.delivered_as_text.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            run.push(*entry);
        }
        flush_run(&mut run, index, batch);
    }

    /// The frame kind and payload of a broadcast entry that goes over as socket.io's wire:
    /// STREAM_EVENT_TEXT for a plain one, STREAM_EVENT_BINARY for one with binary values
    /// (base64 MessagePack data); None for every other entry.
    fn event_wire(
        &self,
        entry: &EntryView<'_>,
        nsp: &[u8],
        msg_type: Option<&[u8]>,
        data: Option<&[u8]>,
    ) -> Option<(u8, Vec<u8>)> {
        if msg_type != Some(b"3") {
            return None;
        }
        let nsp = std::str::from_utf8(nsp).ok()?;
        let &recovery = self.wire_text.get(nsp)?;
        let data = std::str::from_utf8(data?).ok()?;
        if !data.starts_with('{') {
            // With recovery the entry id would go into the data: left to JS.
            return (!recovery)
                .then(|| encode_binary_event(nsp, data))
                .flatten();
        }
        let event = broadcast_event_text(data)?;
        let with_offset = recovery && !is_volatile(event.opts)?;
        let text = encode_event_text(nsp, &event, with_offset.then_some(entry.id));
        Some((STREAM_EVENT_TEXT, text))
    }
}

/// The wire of a broadcast whose data is base64 MessagePack (what the official adapter writes
/// when the packet holds binary values: `{packet, opts}` by @msgpack/msgpack, which decodes
/// `bin` to Uint8Arrays that socket.io sends as attachments, as it does Buffers). None when
/// the data is not strict base64 or not such a broadcast: JS then decodes it (Node's base64
/// decoder is lenient).
fn encode_binary_event(nsp: &str, data: &str) -> Option<(u8, Vec<u8>)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    let env = msgpack::read_cluster_broadcast("", &bytes).ok()?;
    let wire = env.event_wire(nsp)?;
    let mut opts = String::new();
    let targets = event_wire_targets(&env, &mut opts)?;
    let mut out = Vec::with_capacity(64 + nsp.len() + bytes.len() * 2);
    out.extend_from_slice(&(nsp.len() as u32).to_le_bytes());
    out.extend_from_slice(nsp.as_bytes());
    match wire {
        EventWire::Text(text) => {
            write_event_text(&mut out, targets, &[text.as_bytes()]);
            Some((STREAM_EVENT_TEXT, out))
        }
        EventWire::Binary { text, attachments } => {
            write_event_binary(&mut out, targets, &text, &attachments);
            Some((STREAM_EVENT_BINARY, out))
        }
    }
}

fn flush_run(run: &mut Vec<EntryView<'_>>, index: u32, batch: &mut FrameBatch) {
    if !run.is_empty() {
        batch.push_raw(STREAM_ENTRIES, index, &encode_entries(run));
        run.clear();
    }
}

/// Whether `opts.flags.volatile` is set (to anything: JS tests `!== undefined`); None when the
/// options cannot be read.
fn is_volatile(opts: Option<&str>) -> Option<bool> {
    #[derive(Deserialize)]
    struct Flags {
        #[serde(default, deserialize_with = "super::cluster_event::present")]
        volatile: bool,
    }
    #[derive(Deserialize)]
    struct Opts {
        #[serde(default)]
        flags: Option<Flags>,
    }
    let Some(opts) = opts else {
        return Some(false); // no targets, no flags
    };
    let opts: Opts = serde_json::from_str(opts).ok()?;
    Some(opts.flags.is_some_and(|f| f.volatile))
}

fn encode_event_text(nsp: &str, event: &EventText<'_>, offset: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + nsp.len() * 2 + event.data.len());
    out.extend_from_slice(&(nsp.len() as u32).to_le_bytes());
    out.extend_from_slice(nsp.as_bytes());
    let [two, prefix, comma] = event_wire_head(nsp);
    let args = event.data.as_bytes();
    match offset {
        // packet.data.push(offset): the entry id (digits and a dash) as the last argument.
        Some(id) => {
            let separator: &[u8] = if args == b"[]" { b"" } else { b"," };
            let text = [
                two,
                prefix,
                comma,
                &args[..args.len() - 1],
                separator,
                b"\"",
                id.as_bytes(),
                b"\"]",
            ];
            write_event_text(&mut out, event.opts.into(), &text);
        }
        None => write_event_text(&mut out, event.opts.into(), &[two, prefix, comma, args]),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::stream_entry::{EntryBatch, StreamEntry};
    use crate::protocol::delivery::{parse_event_text, parse_frames, EventTargets};

    fn frame(
        routes: &StreamRoutes,
        entries: &[StreamEntry],
        index: u32,
        stats: &StreamEntryStats,
        batch: &mut FrameBatch,
    ) {
        routes.frame(
            &EntryBatch::from_owned(entries).views(),
            index,
            stats,
            batch,
        );
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> StreamEntry {
        StreamEntry {
            id: id.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    const ALL: &str =
        r#"{"packet":{"type":2,"data":["ev",1]},"opts":{"rooms":[],"except":[],"flags":{}}}"#;

    fn text_of(payload: &[u8]) -> (String, u8, String) {
        let n = u32::from_le_bytes(payload[..4].try_into().unwrap()) as usize;
        let nsp = String::from_utf8(payload[4..4 + n].to_vec()).unwrap();
        let (mode, _, text) = parse_event_text(&payload[4 + n..]).unwrap();
        (nsp, mode, String::from_utf8(text.to_vec()).unwrap())
    }

    #[test]
    fn keeps_order_drops_own_entries_and_sends_broadcasts_as_text() {
        let mut routes = StreamRoutes::default();
        routes.add_own_uid("me");
        routes.set_wire_text("/", true, false);
        let entries = [
            entry(
                "1-0",
                &[("uid", "a"), ("nsp", "/"), ("type", "4"), ("data", "{}")],
            ),
            entry(
                "2-0",
                &[("uid", "a"), ("nsp", "/"), ("type", "3"), ("data", ALL)],
            ),
            entry(
                "3-0",
                &[("uid", "me"), ("nsp", "/"), ("type", "3"), ("data", ALL)],
            ),
            entry(
                "4-0",
                &[("uid", "a"), ("nsp", "/chat"), ("type", "3"), ("data", ALL)],
            ),
            entry("5-0", &[("uid", "a"), ("type", "3"), ("data", ALL)]),
        ];
        let stats = StreamEntryStats::default();
        let mut batch = FrameBatch::default();
        frame(&routes, &entries, 2, &stats, &mut batch);
        let frames = parse_frames(batch.bytes());
        let kinds: Vec<u8> = frames.iter().map(|f| f.0).collect();
        assert_eq!(kinds, [STREAM_ENTRIES, STREAM_EVENT_TEXT, STREAM_ENTRIES]);
        assert!(frames.iter().all(|f| f.1 == 2));
        assert_eq!(
            text_of(&frames[1].2),
            ("/".into(), 0, r#"2["ev",1]"#.into())
        );
        assert_eq!(stats.skipped_own.load(Ordering::Relaxed), 1);
        assert_eq!(stats.delivered_as_text.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn appends_the_entry_id_when_recovery_wants_it() {
        let mut routes = StreamRoutes::default();
        routes.set_wire_text("/chat", true, true);
        let volatile = r#"{"packet":{"type":2,"data":[]},"opts":{"rooms":["r"],"except":[],"flags":{"volatile":true}}}"#;
        let empty = r#"{"packet":{"type":2,"data":[]},"opts":{"rooms":[],"except":[]}}"#;
        let entries = [
            entry(
                "7-1",
                &[("uid", "a"), ("nsp", "/chat"), ("type", "3"), ("data", ALL)],
            ),
            entry(
                "7-2",
                &[
                    ("uid", "a"),
                    ("nsp", "/chat"),
                    ("type", "3"),
                    ("data", empty),
                ],
            ),
            entry(
                "7-3",
                &[
                    ("uid", "a"),
                    ("nsp", "/chat"),
                    ("type", "3"),
                    ("data", volatile),
                ],
            ),
        ];
        let mut batch = FrameBatch::default();
        frame(
            &routes,
            &entries,
            0,
            &StreamEntryStats::default(),
            &mut batch,
        );
        let texts: Vec<_> = parse_frames(batch.bytes())
            .iter()
            .map(|f| text_of(&f.2).2)
            .collect();
        assert_eq!(
            texts,
            [
                r#"2/chat,["ev",1,"7-1"]"#,
                r#"2/chat,["7-2"]"#,
                r#"2/chat,[]"#, // volatile: no offset
            ]
        );
    }

    #[test]
    fn binary_broadcasts_go_as_wire_without_recovery_only() {
        use base64::Engine as _;
        // {packet, opts} with a bin, as @msgpack/msgpack writes it, in base64.
        let mut data = Vec::new();
        msgpack::json_to_msgpack_with_attachments(
            r#"{"packet":{"type":2,"data":["ev",{"_placeholder":true,"num":0}]},"opts":{"rooms":["r"],"except":[],"flags":{}}}"#,
            &[b"\x01\x02\x03"],
            &mut data,
        )
        .unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(&data);
        let entries = [
            entry(
                "1-0",
                &[("uid", "a"), ("nsp", "/"), ("type", "3"), ("data", &data)],
            ),
            // Not strict base64: JS decodes it (Node's decoder is lenient).
            entry(
                "2-0",
                &[("uid", "a"), ("nsp", "/"), ("type", "3"), ("data", "!!")],
            ),
        ];
        for (recovery, kinds) in [
            (false, vec![STREAM_EVENT_BINARY, STREAM_ENTRIES]),
            (true, vec![STREAM_ENTRIES]),
        ] {
            let mut routes = StreamRoutes::default();
            routes.set_wire_text("/", true, recovery);
            let stats = StreamEntryStats::default();
            let mut batch = FrameBatch::default();
            frame(&routes, &entries, 0, &stats, &mut batch);
            let frames = parse_frames(batch.bytes());
            assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), kinds);
            if recovery {
                continue;
            }
            let mut want = Vec::new();
            want.extend_from_slice(&1u32.to_le_bytes());
            want.push(b'/');
            write_event_binary(
                &mut want,
                EventTargets::Room("r"),
                r#"51-["ev",{"_placeholder":true,"num":0}]"#,
                &[b"\x01\x02\x03"],
            );
            assert_eq!(frames[0].2, want);
        }
    }
}
