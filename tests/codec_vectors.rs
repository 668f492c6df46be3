//! Byte-exact checks of the codec against the shared wire vectors
//! (`__test__/vectors/*.json`, falling back to `../shared/vectors/*.json`).

use std::path::PathBuf;

use serde_json::Value;
use socket_io_redis_native::codec::msgpack::{
    json_to_msgpack, msgpack_to_json, read_broadcast_envelope, read_message_header, read_value,
    validate, Limits, RoomRef, ValueRef, Writer,
};

fn load(file: &str) -> Vec<Value> {
    let candidates = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("__test__/vectors")
            .join(file),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/vectors")
            .join(file),
    ];
    for path in &candidates {
        if let Ok(text) = std::fs::read_to_string(path) {
            println!("using {}", path.display());
            return serde_json::from_str::<Vec<Value>>(&text).expect("vector file is a JSON array");
        }
    }
    panic!("vector file {file} not found in {candidates:?}");
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn unbase64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 char {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= u32::from(val(c)) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    out
}

/// A fully decoded value, with JS semantics (every number is a double).
#[derive(Debug, Clone, PartialEq)]
enum Tree {
    Nil,
    Bool(bool),
    Num(f64),
    Str(String),
    Bin(Vec<u8>),
    Arr(Vec<Tree>),
    Map(Vec<(String, Tree)>),
    Ext(i8, Vec<u8>),
}

impl Tree {
    fn get(&self, key: &str) -> Option<&Tree> {
        match self {
            Tree::Map(m) => m.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            Tree::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn to_tree(v: ValueRef<'_>) -> Tree {
    match v {
        ValueRef::Nil => Tree::Nil,
        ValueRef::Bool(b) => Tree::Bool(b),
        ValueRef::Str(s) => Tree::Str(s.to_owned()),
        ValueRef::InvalidStr(b) => Tree::Str(String::from_utf8_lossy(b).into_owned()),
        ValueRef::Bin(b) => Tree::Bin(b.to_vec()),
        ValueRef::Array(a) => Tree::Arr(a.iter().map(to_tree).collect()),
        ValueRef::Map(m) => Tree::Map(
            m.iter()
                .map(|(k, v)| {
                    let key = match to_tree(k) {
                        Tree::Str(s) => s,
                        Tree::Num(n) => format!("{n}"),
                        other => format!("{other:?}"),
                    };
                    (key, to_tree(v))
                })
                .collect(),
        ),
        ValueRef::Ext(t, d) => Tree::Ext(t, d.to_vec()),
        num => Tree::Num(num.as_f64().expect("numeric")),
    }
}

fn json_to_tree(v: &Value) -> Tree {
    match v {
        Value::Null => Tree::Nil,
        Value::Bool(b) => Tree::Bool(*b),
        Value::Number(n) => Tree::Num(n.as_f64().expect("f64")),
        Value::String(s) => Tree::Str(s.clone()),
        Value::Array(a) => Tree::Arr(a.iter().map(json_to_tree).collect()),
        Value::Object(o) => Tree::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_tree(v)))
                .collect(),
        ),
    }
}

/// What `notepack.encode` writes for the decoded value.
fn encode_tree(t: &Tree, w: &mut Writer) {
    match t {
        Tree::Nil => w.write_nil(),
        Tree::Bool(b) => w.write_bool(*b),
        Tree::Num(n) => w.write_f64_as_js_number(*n),
        Tree::Str(s) => w.write_str(s),
        Tree::Bin(b) => w.write_bin(b),
        Tree::Arr(a) => {
            w.write_array_len(a.len());
            a.iter().for_each(|x| encode_tree(x, w));
        }
        Tree::Map(m) => {
            w.write_map_len(m.len());
            for (k, v) in m {
                w.write_str(k);
                encode_tree(v, w);
            }
        }
        Tree::Ext(ty, d) => w.write_ext(*ty, d),
    }
}

/// Evaluates the few JS expression shapes that denote a single number or Date.
fn eval_js_scalar(js: &str, w: &mut Writer) -> bool {
    let js = js.trim();
    if let Some(inner) = js
        .strip_prefix("new Date(")
        .and_then(|s| s.strip_suffix(')'))
    {
        return match inner.parse::<f64>() {
            Ok(ms) => {
                w.write_timestamp_ms(ms);
                true
            }
            Err(_) => false,
        };
    }
    let num = |s: &str| -> Option<f64> {
        match s {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => {
                if let Some((b, e)) = s.split_once(" ** ") {
                    return Some(b.parse::<f64>().ok()?.powf(e.parse::<f64>().ok()?));
                }
                s.parse::<f64>().ok()
            }
        }
    };
    let v = match js.strip_prefix("-(").and_then(|s| s.strip_suffix(')')) {
        Some(inner) => num(inner).map(|x| -x),
        None => num(js),
    };
    match v {
        Some(v) => {
            w.write_f64_as_js_number(v);
            true
        }
        None => false,
    }
}

fn js_json(buf: &[u8]) -> String {
    let mut s = String::new();
    msgpack_to_json(buf, &Limits::default(), &mut s).expect("msgpack_to_json");
    s
}

fn room_tree(r: &RoomRef<'_>) -> Tree {
    match r {
        RoomRef::Str(s) => Tree::Str((*s).to_owned()),
        RoomRef::Num(n) => Tree::Num(*n),
    }
}

fn rooms_tree(t: Option<&Tree>) -> Vec<Tree> {
    match t {
        Some(Tree::Arr(a)) => a.clone(),
        _ => Vec::new(),
    }
}

fn check_envelope(name: &str, channel: &str, bytes: &[u8], tree: &Tree) {
    let env = read_broadcast_envelope(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let Tree::Arr(parts) = tree else {
        panic!("{name}: not an array")
    };
    assert_eq!(Some(env.uid), parts[0].str(), "{name}: uid");
    assert_eq!(
        env.packet_nsp,
        parts[1].get("nsp").and_then(Tree::str),
        "{name}: nsp"
    );
    assert_eq!(
        env.has_packet_id,
        parts[1].get("id").is_some(),
        "{name}: id"
    );
    let rooms: Vec<Tree> = env.rooms.iter().map(room_tree).collect();
    let except: Vec<Tree> = env.except.iter().map(room_tree).collect();
    assert_eq!(rooms, rooms_tree(parts[2].get("rooms")), "{name}: rooms");
    assert_eq!(except, rooms_tree(parts[2].get("except")), "{name}: except");
    assert_eq!(
        to_tree(read_value(env.packet).unwrap().0),
        parts[1],
        "{name}: packet raw"
    );
    assert_eq!(
        to_tree(read_value(env.opts).unwrap().0),
        parts[2],
        "{name}: opts raw"
    );
    let flags = env.flags.map(|f| to_tree(read_value(f).unwrap().0));
    assert_eq!(flags.as_ref(), parts[2].get("flags"), "{name}: flags raw");
    // The channel rule of PROTOCOL.md 2.3, with String(room) for the single room.
    let mut want = format!("socket.io#{}#", env.packet_nsp.unwrap_or("/"));
    if env.rooms.len() == 1 {
        want.push_str(&env.rooms[0].to_js_string());
        want.push('#');
    }
    assert_eq!(channel, want, "{name}: channel");
}

fn check_header(name: &str, bytes: &[u8], tree: &Tree) {
    let h = read_message_header(bytes, true).unwrap_or_else(|e| panic!("{name}: {e}"));
    let num = |t: Option<&Tree>| match t {
        Some(Tree::Num(n)) => Some(*n as i64),
        _ => None,
    };
    let data = tree.get("data");
    let req = tree
        .get("requestId")
        .or_else(|| data.and_then(|d| d.get("requestId")))
        .and_then(Tree::str);
    assert_eq!(h.msg_type, num(tree.get("type")), "{name}: type");
    assert!(h.msg_type.is_some(), "{name}: has a type");
    assert_eq!(h.uid, tree.get("uid").and_then(Tree::str), "{name}: uid");
    assert_eq!(h.nsp, tree.get("nsp").and_then(Tree::str), "{name}: nsp");
    assert_eq!(h.request_id, req, "{name}: requestId");
    let data_raw = h.data.map(|d| to_tree(read_value(d).unwrap().0));
    assert_eq!(data_raw.as_ref(), data, "{name}: data raw");
}

#[test]
fn notepack_vectors() {
    let vectors = load("notepack.json");
    let (mut roundtrip, mut scalar, mut from_json, mut json_codec, mut decode_only) =
        (0, 0, 0, 0, 0);
    let (mut envelopes, mut headers, mut json_headers) = (0, 0, 0);
    let mut skipped: Vec<String> = Vec::new();
    for v in &vectors {
        let name = v["name"].as_str().expect("name");
        let codec = v["codec"].as_str().expect("codec");
        let hex = v["hex"].as_str().expect("hex");
        let bytes = unhex(hex);
        let js = v["js"].as_str().unwrap_or("");
        match codec {
            "notepack" => {
                validate(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
                let tree = to_tree(read_value(&bytes).unwrap().0);
                let mut w = Writer::new();
                encode_tree(&tree, &mut w);
                let canonical = w.as_slice() == bytes.as_slice();
                if canonical {
                    roundtrip += 1;
                } else {
                    skipped.push(format!(
                        "{name}: decode->encode differs (non-canonical notepack bytes)"
                    ));
                }
                let mut w = Writer::new();
                if eval_js_scalar(js, &mut w) {
                    assert_eq!(hex, to_hex(w.as_slice()), "{name}: JS scalar path");
                    scalar += 1;
                } else {
                    assert!(canonical, "{name}: neither path reproduces {hex}");
                }
                if serde_json::from_str::<Value>(js).is_ok() {
                    let mut out = Vec::new();
                    json_to_msgpack(js, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(hex, to_hex(&out), "{name}: json_to_msgpack");
                    from_json += 1;
                } else {
                    println!("json path skipped for {name:?}: js is not JSON ({js:.40})");
                }
                if let Some(channel) = v["channel"].as_str() {
                    if v["command"] == "PUBLISH"
                        && channel.starts_with("socket.io#")
                        && matches!(tree, Tree::Arr(_))
                    {
                        check_envelope(name, channel, &bytes, &tree);
                        envelopes += 1;
                    } else if matches!(tree, Tree::Map(_)) {
                        check_header(name, &bytes, &tree);
                        headers += 1;
                    }
                }
            }
            "json" => {
                let text = String::from_utf8(bytes).expect("utf-8 JSON");
                let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
                let mut mp = Vec::new();
                json_to_msgpack(&text, &mut mp).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    to_tree(read_value(&mp).unwrap().0),
                    json_to_tree(&parsed),
                    "{name}"
                );
                assert_eq!(js_json(&mp), text, "{name}: JSON -> msgpack -> JSON");
                json_codec += 1;
                if parsed.get("type").is_some() {
                    check_header(name, &mp, &json_to_tree(&parsed));
                    json_headers += 1;
                }
            }
            "notepack-decode" => {
                validate(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
                let want = match v["decodesTo"].as_str().unwrap_or("") {
                    "1.5" => "1.5",
                    "undefined" => "null",
                    "new Date(1500)" => "\"1970-01-01T00:00:01.500Z\"",
                    "new Uint8Array([1, 255]).buffer" => "{}",
                    "[5, Buffer.from([1])]" => "[5,{\"type\":\"Buffer\",\"data\":[1]}]",
                    "({\"1\": 2})" => "{\"1\":2}",
                    "9007199254740992" => "9007199254740992",
                    other => panic!("{name}: unknown decodesTo {other}"),
                };
                assert_eq!(js_json(&bytes), want, "{name}: JSON.stringify(decode(hex))");
                decode_only += 1;
            }
            other => panic!("{name}: unknown codec {other}"),
        }
    }
    for s in &skipped {
        println!("skipped: {s}");
    }
    println!(
        "{} vectors: notepack decode->encode {roundtrip}, JS scalar eval {scalar}, json_to_msgpack(js) {from_json}, \
         codec=json round trips {json_codec}, notepack-decode {decode_only}, envelopes {envelopes}, \
         msgpack headers {headers}, JSON headers {json_headers}",
        vectors.len()
    );
    assert_eq!(roundtrip + skipped.len(), 91);
    assert!(
        skipped.len() <= 2,
        "only the 2^64 and 1e300 vectors are non-canonical"
    );
    assert!(scalar >= 30 && from_json >= 20 && envelopes >= 10 && headers >= 8);
    assert_eq!((json_codec, decode_only), (40, 7));
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn streams_vectors() {
    let vectors = load("streams.json");
    let (mut publishes, mut b64, mut json) = (0, 0, 0);
    for v in &vectors {
        let name = v["name"].as_str().expect("name");
        if let Some(hex) = v["hex"].as_str() {
            let bytes = unhex(hex);
            let tree = to_tree(read_value(&bytes).unwrap().0);
            check_header(name, &bytes, &tree);
            let mut w = Writer::new();
            encode_tree(&tree, &mut w);
            assert_eq!(
                to_hex(w.as_slice()),
                hex,
                "{name}: same bytes as notepack here"
            );
            publishes += 1;
        }
        let data = v["fields"]["data"].as_str().or(v["value"].as_str());
        let codec = v["dataCodec"].as_str().or(v["valueCodec"].as_str());
        match (data, codec) {
            (Some(d), Some("base64(@msgpack/msgpack)")) => {
                let bytes = unbase64(d);
                validate(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
                let text = js_json(&bytes);
                serde_json::from_str::<Value>(&text)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
                b64 += 1;
            }
            (Some(d), Some("JSON")) => {
                let mut mp = Vec::new();
                json_to_msgpack(d, &mut mp).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(js_json(&mp), d, "{name}");
                json += 1;
            }
            _ => {}
        }
    }
    println!("streams: msgpack publishes {publishes}, base64 msgpack data {b64}, JSON data {json}");
    assert!(publishes >= 8 && b64 >= 2 && json >= 4);
}

#[test]
fn every_prefix_of_every_vector_is_rejected() {
    let mut checked = 0usize;
    let mut all = load("notepack.json");
    all.extend(load("streams.json"));
    for v in &all {
        let name = v["name"].as_str().unwrap_or("?");
        let Some(hex) = v["hex"].as_str() else {
            continue;
        };
        let bytes = unhex(hex);
        if v["codec"] == "json" {
            let text = String::from_utf8(bytes).expect("utf-8");
            for cut in (0..text.len()).filter(|&c| text.is_char_boundary(c)) {
                let mut out = Vec::new();
                assert!(
                    json_to_msgpack(&text[..cut], &mut out).is_err(),
                    "{name}: JSON prefix {cut}"
                );
                assert!(out.is_empty());
                checked += 1;
            }
            continue;
        }
        for cut in 0..bytes.len() {
            let p = &bytes[..cut];
            assert_eq!(
                validate(p, &Limits::default()),
                Err(socket_io_redis_native::codec::msgpack::DecodeError::Truncated),
                "{name}: prefix {cut}"
            );
            assert!(read_value(p).is_err(), "{name}: read_value prefix {cut}");
            assert!(
                read_broadcast_envelope(p).is_err(),
                "{name}: envelope prefix {cut}"
            );
            assert!(
                read_message_header(p, true).is_err(),
                "{name}: header prefix {cut}"
            );
            let mut s = String::new();
            assert!(msgpack_to_json(p, &Limits::default(), &mut s).is_err() && s.is_empty());
            checked += 1;
        }
    }
    println!("rejected {checked} truncated inputs");
    assert!(checked > 5000);
}
