//! Unit tests: hostile input, envelope/header extraction, transcoding, properties.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_json(buf: &[u8]) -> Result<String, DecodeError> {
    let mut s = String::new();
    msgpack_to_json(buf, &Limits::default(), &mut s).map(|()| s)
}

fn mp(json: &str) -> Vec<u8> {
    let mut out = Vec::new();
    json_to_msgpack(json, &mut out).unwrap();
    out
}

/// Runs every entry point on `buf`; they may fail but must not panic.
fn exercise(buf: &[u8]) {
    let limits = Limits::default();
    let _ = read_value(buf);
    let _ = skip_value(buf, &limits);
    let _ = validate(buf, &limits);
    let _ = read_broadcast_envelope(buf);
    let _ = read_message_header(buf, true);
    let _ = read_cluster_broadcast("u", buf);
    let _ = peek_message_type(buf);
    let _ = decoded_json(buf, &limits);
    let _ = to_json(buf);
    if let Ok((v, _)) = read_value(buf) {
        walk(v);
    }
}

fn walk(v: ValueRef<'_>) {
    match v {
        ValueRef::Array(a) => a.iter().for_each(walk),
        ValueRef::Map(m) => m.iter().for_each(|(k, v)| {
            walk(k);
            walk(v)
        }),
        _ => {}
    }
}

const ENVELOPE: &str = "93a64d7771724d7083a47479706502a46461746193a568656c6c6f81a16101c403010203\
                        a36e7370a12f83a5726f6f6d7391a5726f6f6d31a665786365707491a178a5666c61677380";

#[test]
fn reads_scalars_and_containers() {
    let f = hex("cb3ff8000000000000");
    let (v, n) = read_value(&f).unwrap();
    assert_eq!((v, n), (ValueRef::F64(1.5), 9));
    assert_eq!(read_value(&hex("d0df")).unwrap().0, ValueRef::Int(-33));
    assert_eq!(
        read_value(&hex("cf0020000000000001")).unwrap().0.as_f64(),
        Some(9007199254740992.0)
    );
    assert_eq!(
        read_value(&hex("ca3fc00000")).unwrap().0.as_f64(),
        Some(1.5)
    );
    assert_eq!(read_value(&hex("a2c3a9")).unwrap().0, ValueRef::Str("é"));
    assert_eq!(
        read_value(&hex("a1ff")).unwrap().0,
        ValueRef::InvalidStr(&[0xff])
    );
    assert_eq!(
        read_value(&hex("d40501")).unwrap().0,
        ValueRef::Ext(5, &[1])
    );
    assert_eq!(
        read_value(&hex("c7020001ff")).unwrap().0,
        ValueRef::Ext(0, &[1, 0xff])
    );
    let nested = hex("81a16181a1629301a178c0 c3");
    let (v, n) = read_value(&nested).unwrap();
    assert_eq!(n, 11);
    let b = v
        .as_map()
        .unwrap()
        .get("a")
        .unwrap()
        .as_map()
        .unwrap()
        .get("b")
        .unwrap();
    let items: Vec<_> = b.as_array().unwrap().iter().collect();
    assert_eq!(
        items,
        [ValueRef::UInt(1), ValueRef::Str("x"), ValueRef::Nil]
    );
    assert_eq!(b.as_array().unwrap().get(1), Some(ValueRef::Str("x")));
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let buf = hex(ENVELOPE);
    for cut in 0..buf.len() {
        let p = &buf[..cut];
        assert_eq!(
            skip_value(p, &Limits::default()),
            Err(DecodeError::Truncated),
            "cut {cut}"
        );
        assert!(
            read_value(p).is_err() && read_broadcast_envelope(p).is_err() && to_json(p).is_err()
        );
    }
}

#[test]
fn huge_declared_lengths_fail_fast() {
    let start = Instant::now();
    for h in [
        "ddffffffff",
        "dfffffffff",
        "c6ffffffff",
        "dbffffffff",
        "c9ffffffff01",
        "dc ffff",
    ] {
        let buf = hex(h);
        let err = validate(&buf, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge | DecodeError::Truncated),
            "{h}: {err:?}"
        );
        assert_eq!(
            skip_value(&buf, &Limits::UNLIMITED),
            Err(DecodeError::Truncated),
            "{h}"
        );
        exercise(&buf);
    }
    assert_eq!(
        validate(&hex("ddffffffff"), &Limits::default()),
        Err(DecodeError::TooLarge)
    );
    let small = Limits {
        max_depth: 8,
        max_len: 3,
    };
    assert_eq!(
        validate(&hex("9401020304"), &small),
        Err(DecodeError::TooLarge)
    );
    assert_eq!(
        validate(&hex("a4 61626364"), &small),
        Err(DecodeError::TooLarge)
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn deep_nesting_is_too_deep_without_recursion() {
    let mut buf = vec![0x91u8; 100_000];
    buf.push(0xc0);
    let limits = Limits::default();
    assert_eq!(skip_value(&buf, &limits), Err(DecodeError::TooDeep));
    assert_eq!(validate(&buf, &limits), Err(DecodeError::TooDeep));
    assert_eq!(read_value(&buf).unwrap_err(), DecodeError::TooDeep);
    assert_eq!(to_json(&buf), Err(DecodeError::TooDeep));
    assert_eq!(
        read_broadcast_envelope(&buf).unwrap_err(),
        DecodeError::TooDeep
    );
    // Without a depth bound it still works, iteratively.
    assert_eq!(validate(&buf, &Limits::UNLIMITED), Ok(()));
    let mut s = String::new();
    msgpack_to_json(&buf, &Limits::UNLIMITED, &mut s).unwrap();
    assert_eq!(s.len(), 200_004);
    // Exactly max_depth levels pass, one more fails.
    let lim = Limits {
        max_depth: 3,
        max_len: 10,
    };
    assert_eq!(validate(&hex("919191c0"), &lim), Ok(()));
    assert_eq!(
        validate(&hex("91919191c0"), &lim),
        Err(DecodeError::TooDeep)
    );
    // JSON side.
    let json = "[".repeat(100_000);
    let mut out = vec![1, 2];
    let err = json_to_msgpack(&json, &mut out).unwrap_err();
    assert!(
        matches!(err, TranscodeError::TooDeep { offset: 512 }),
        "{err:?}"
    );
    assert_eq!(out, [1, 2], "output restored on error");
}

#[test]
fn invalid_marker_and_trailing_bytes() {
    assert_eq!(
        validate(&[0xc1], &Limits::default()),
        Err(DecodeError::InvalidMarker(0xc1))
    );
    assert_eq!(
        read_value(&hex("92 01 c1")).unwrap_err(),
        DecodeError::InvalidMarker(0xc1)
    );
    assert_eq!(
        validate(&[], &Limits::default()),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        validate(&hex("c0c0"), &Limits::default()),
        Err(DecodeError::TrailingBytes(1))
    );
    assert_eq!(read_value(&hex("c0c0")).unwrap(), (ValueRef::Nil, 1));
    let mut env = hex(ENVELOPE);
    env.push(0);
    assert_eq!(
        read_broadcast_envelope(&env).unwrap_err(),
        DecodeError::TrailingBytes(1)
    );
    assert_eq!(to_json(&hex("0000")), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn broadcast_envelope_fields() {
    let buf = hex(ENVELOPE);
    let env = read_broadcast_envelope(&buf).unwrap();
    assert_eq!(env.uid, "MwqrMp");
    assert_eq!(env.packet_nsp, Some("/"));
    assert_eq!(env.rooms, [RoomRef::Str("room1")]);
    assert_eq!(env.except, [RoomRef::Str("x")]);
    assert!(!env.has_packet_id);
    assert_eq!(env.flags, Some(&[0x80u8][..]));
    assert_eq!(
        to_json(env.packet).unwrap(),
        r#"{"type":2,"data":["hello",{"a":1},{"type":"Buffer","data":[1,2,3]}],"nsp":"/"}"#
    );

    // Numeric rooms, packet id, missing nsp/except/flags, nil rooms, extra elements.
    let mut w = Writer::new();
    w.write_array_len(4);
    w.write_str("emitter");
    w.write_raw(&mp(r#"{"type":2,"data":["e"],"id":3}"#));
    w.write_map_len(1);
    w.write_str("rooms");
    w.write_array_len(5);
    w.write_f64_as_js_number(123.0);
    w.write_f64(1.5);
    w.write_f64(1e21);
    w.write_f64(-0.0);
    w.write_str("123");
    w.write_nil();
    let buf = w.into_inner();
    let env = read_broadcast_envelope(&buf).unwrap();
    assert_eq!(env.packet_nsp, None);
    assert!(env.has_packet_id && env.except.is_empty() && env.flags.is_none());
    let names: Vec<_> = env
        .rooms
        .iter()
        .map(|r| r.to_js_string().into_owned())
        .collect();
    assert_eq!(names, ["123", "1.5", "1e+21", "0", "123"]);
    assert_eq!(env.rooms[0], RoomRef::Num(123.0));
    assert_eq!(env.rooms[4].as_str(), Some("123"));
    let nil_rooms = hex("93 a1 75 80 81 a5726f6f6d73 c0");
    let env = read_broadcast_envelope(&nil_rooms).unwrap();
    assert!(env.rooms.is_empty());

    for (bad, want) in [
        (
            "92 a175 80",
            DecodeError::UnexpectedType("envelope [uid, packet, opts]"),
        ),
        ("81 a175 80", DecodeError::UnexpectedType("envelope array")),
        ("93 01 80 80", DecodeError::UnexpectedType("uid str")),
        ("93 a1ff 80 80", DecodeError::InvalidUtf8),
        ("93 a175 90 80", DecodeError::UnexpectedType("packet map")),
        ("93 a175 80 90", DecodeError::UnexpectedType("opts map")),
        (
            "93 a175 81 a36e7370 01 80",
            DecodeError::UnexpectedType("packet.nsp str"),
        ),
        (
            "93 a175 80 81 a5726f6f6d73 a178",
            DecodeError::UnexpectedType("rooms array"),
        ),
        (
            "93 a175 80 81 a5726f6f6d73 91 c3",
            DecodeError::UnexpectedType("room (str or number)"),
        ),
    ] {
        assert_eq!(
            read_broadcast_envelope(&hex(bad)).unwrap_err(),
            want,
            "{bad}"
        );
    }
}

#[test]
fn cluster_broadcasts_read_as_envelopes() {
    // {type: 3, data: {packet, opts}, uid, nsp} with a Buffer, as the official sharded adapter
    // publishes an emit with binary values.
    let mut msg = Vec::new();
    json_to_msgpack_with_attachments(
        r#"{"type":3,"data":{"packet":{"type":2,"data":["ev",{"_placeholder":true,"num":0}]},"opts":{"rooms":["r"],"except":[],"flags":{}}},"uid":"u1","nsp":"/"}"#,
        &[b"\x01\x02"],
        &mut msg,
    )
    .unwrap();
    let data = read_message_header(&msg, true).unwrap().data.unwrap();
    let env = read_cluster_broadcast("u1", data).unwrap();
    assert_eq!(
        (env.uid, env.packet_nsp, env.rooms.len(), env.except.len()),
        ("u1", None, 1, 0)
    );
    assert_eq!(env.flags, Some(&[0x80u8][..]));
    match env.event_wire("/").unwrap() {
        EventWire::Binary { text, attachments } => {
            assert_eq!(text, r#"51-["ev",{"_placeholder":true,"num":0}]"#);
            assert_eq!(attachments, vec![&b"\x01\x02"[..]]);
        }
        other => panic!("{other:?}"),
    }
    // A broadcast with acks (JS answers those), and data that is not {packet, opts}.
    for data in [
        r#"{"packet":{"type":2,"data":["a"]},"opts":{},"requestId":"x"}"#,
        r#"{"packet":{"type":2,"data":["a"]}}"#,
        r#"{"packet":1,"opts":{}}"#,
        r#"[1,2]"#,
    ] {
        assert!(read_cluster_broadcast("u", &mp(data)).is_err(), "{data}");
    }
}

#[test]
fn decoded_json_is_what_a_js_decoder_would_give_or_none() {
    let limits = Limits::default();
    // Plain values: the JSON text of the same value (one pass, or the general path for deep
    // nesting and maps with many keys).
    let deep = format!("{}1{}", "[".repeat(20), "]".repeat(20));
    let many_keys = format!(
        "{{{}}}",
        (0..40)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for json in [
        r#"{"type":8,"data":{"requestId":"a","sockets":[{"id":"x","handshake":{"headers":{"host":"h"},"issued":1796019520829,"secure":false},"rooms":["x","r"],"data":{"n":-1.5,"u":"é😀\"\n"}}]},"uid":"u","nsp":"/"}"#,
        deep.as_str(),
        many_keys.as_str(),
        "[null,true,0,4294967296,-2147483649]",
    ] {
        assert_eq!(
            decoded_json(&mp(json), &limits).as_deref(),
            Some(json),
            "{json}"
        );
    }
    // What JSON would show differently from a decoder: binary, a Date (timestamp ext),
    // undefined (fixext 0), -0 (float64 and float32), a __proto__ key (a decoder's assignment
    // sets the prototype), integer-like keys (reordered), duplicates, invalid UTF-8.
    let mut bin = Vec::new();
    json_to_msgpack_with_attachments(r#"[{"_placeholder":true,"num":0}]"#, &[b"x"], &mut bin)
        .unwrap();
    for buf in [
        bin,
        hex("91d6ff00000000"),
        hex("81a161d40000"),
        hex("91cb8000000000000000"),
        hex("91ca80000000"),
        mp(r#"{"__proto__":{"a":1}}"#),
        mp(r#"{"1":1}"#),
        hex("82a16101a16102"),
        hex("91a2c328"),
    ] {
        assert_eq!(decoded_json(&buf, &limits), None, "{buf:02x?}");
    }
}

#[test]
fn message_types_are_peeked_without_a_whole_read() {
    assert_eq!(peek_message_type(&mp(r#"{"type":8,"data":{}}"#)), Some(8));
    assert_eq!(
        peek_message_type(&mp(r#"{"data":[1,{"a":2}],"type":-3}"#)),
        Some(-3)
    );
    for buf in [
        mp(r#"{"data":1}"#),
        mp(r#"{"type":"8"}"#),
        mp("[8]"),
        hex("8101"),         // a key that is not a str
        hex("82a474797065"), // cut after the key
    ] {
        assert_eq!(peek_message_type(&buf), None, "{buf:02x?}");
    }
}

#[test]
fn message_headers() {
    let classic = mp(r#"{"uid":"MwqrMp","requestId":"QjuY-P","type":7,"packet":{"type":2}}"#);
    let h = read_message_header(&classic, true).unwrap();
    assert_eq!(
        (h.msg_type, h.uid, h.request_id, h.nsp, h.data),
        (Some(7), Some("MwqrMp"), Some("QjuY-P"), None, None)
    );
    let cluster =
        mp(r#"{"type":12,"data":{"requestId":"a8b8","packet":1},"uid":"4cbe","nsp":"/"}"#);
    let h = read_message_header(&cluster, true).unwrap();
    assert_eq!(
        (h.msg_type, h.uid, h.request_id, h.nsp),
        (Some(12), Some("4cbe"), Some("a8b8"), Some("/"))
    );
    assert_eq!(
        to_json(h.data.unwrap()).unwrap(),
        r#"{"requestId":"a8b8","packet":1}"#
    );
    // Top-level requestId wins; odd types become None; last duplicate wins.
    let odd = mp(
        r#"{"type":1.5,"requestId":"top","data":{"requestId":"in"},"uid":1,"nsp":"/a","nsp":"/b"}"#,
    );
    let h = read_message_header(&odd, true).unwrap();
    assert_eq!(
        (h.msg_type, h.uid, h.request_id, h.nsp),
        (None, None, Some("top"), Some("/b"))
    );
    assert_eq!(
        read_message_header(&hex("cb4000000000000000"), true).unwrap_err(),
        DecodeError::UnexpectedType("message map")
    );
    assert_eq!(
        read_message_header(&hex("81a474797065cb4008000000000000"), true)
            .unwrap()
            .msg_type,
        Some(3)
    );
}

#[test]
fn json_to_msgpack_rules() {
    let cases: &[(&str, &str)] = &[
        ("0", "00"),
        ("-0", "00"),
        ("-0.0", "00"),
        ("1.0", "01"),
        ("1e2", "64"),
        ("1.5", "cb3ff8000000000000"),
        ("9007199254740993", "cf0020000000000000"),
        ("18446744073709551616", "cf0000000000000000"),
        ("-2147483649", "d3ffffffff7fffffff"),
        ("1e400", "cb7ff0000000000000"),
        (" [ true , false , null ] ", "93c3c2c0"),
        ("{}", "80"),
        ("[]", "90"),
        (r#"{"b":1,"2":1}"#, "82a16201a13201"),
        (r#""\u00e9\ud83d\ude00\n\/""#, "a8c3a9f09f98800a2f"),
        (r#""\ud800""#, "a3efbfbd"),
        (r#""\udc00\ud800x""#, "a7efbfbdefbfbd78"),
        (r#""a\"b""#, "a3612262"),
    ];
    for (json, want) in cases {
        assert_eq!(mp(json), hex(want), "{json}");
    }
    // Header growth: 16 elements -> dc, 70000 -> dd, nested big containers.
    let arr16 = format!("[{}]", vec!["1"; 16].join(","));
    assert_eq!(&mp(&arr16)[..3], [0xdc, 0, 16]);
    let big = format!(
        "[{}]",
        vec!["[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"; 70_000].join(",")
    );
    let out = mp(&big);
    assert_eq!(&out[..8], [0xdd, 0, 1, 0x11, 0x70, 0xdc, 0, 17]);
    assert_eq!(validate(&out, &Limits::default()), Ok(()));
    assert_eq!(to_json(&out).unwrap(), big);
    let obj = format!(
        "{{{}}}",
        (0..20)
            .map(|i| format!("\"k{i}\":{{}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let out = mp(&obj);
    assert_eq!(&out[..3], [0xde, 0, 20]);
    assert_eq!(to_json(&out).unwrap(), obj);

    for bad in [
        "",
        " ",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "[1,]",
        "{\"a\"}",
        "{\"a\":1,}",
        "[1 2]",
        "\"\x01\"",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "tru",
        "nul",
        "[1]]",
        "1 2",
        "{1:2}",
        "[",
        "{\"a\":",
    ] {
        let mut out = vec![9];
        assert!(
            json_to_msgpack(bad, &mut out).is_err(),
            "{bad:?} should fail"
        );
        assert_eq!(out, [9]);
    }
}

#[test]
fn msgpack_to_json_rules() {
    let cases: &[(&str, &str)] = &[
        ("82 a161 d40000 a162 01", r#"{"b":1}"#),
        ("92 d40000 01", "[null,1]"),
        ("c403010203", r#"{"type":"Buffer","data":[1,2,3]}"#),
        ("d6ff65920080", r#""2024-01-01T00:00:00.000Z""#),
        (
            "c70cff3b8b87c0ffffffffffffffff",
            r#""1969-12-31T23:59:59.999Z""#,
        ),
        ("d70000000000000005dc", r#""1970-01-01T00:00:01.500Z""#),
        ("c7020001ff", "{}"),
        ("d40501", r#"[5,{"type":"Buffer","data":[1]}]"#),
        (
            "84 01 02 c0 03 c3 04 cb3ff8000000000000 05",
            r#"{"1":2,"null":3,"true":4,"1.5":5}"#,
        ),
        ("cb7ff8000000000000", "null"),
        ("ca3fc00000", "1.5"),
        ("a1ff", "\"\u{fffd}\""),
        ("a30a225c", r#""\n\"\\""#),
        ("d3ffe0000000000000", "-9007199254740992"),
        ("cb44b52d02c7e14af6", "1e+23"),
    ];
    for (mpk, want) in cases {
        assert_eq!(to_json(&hex(mpk)).unwrap(), *want, "{mpk}");
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    const SAFE: i64 = 1 << 53;
    let leaf = prop_oneof![
        (-SAFE..=SAFE).prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    leaf.prop_recursive(6, 64, 20, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..20).prop_map(serde_json::Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..20)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..256)) {
        exercise(&buf);
    }

    #[test]
    fn mutated_envelopes_never_panic(pos in 0usize..70, byte in any::<u8>(), cut in 0usize..80) {
        let mut buf = hex(ENVELOPE);
        let pos = pos % buf.len();
        buf[pos] = byte;
        buf.truncate(cut.max(1));
        exercise(&buf);
    }

    #[test]
    fn random_text_never_panics(s in any::<String>(), t in "[\\[\\]{}:,\"\\\\u0-9a-fe.+ -]{0,64}") {
        let mut out = Vec::new();
        let _ = json_to_msgpack(&s, &mut out);
        if json_to_msgpack(&t, &mut out).is_ok() {
            prop_assert_eq!(validate(&out, &Limits::default()), Ok(()));
        }
    }

    #[test]
    fn json_round_trip_is_identity(v in json_value()) {
        let text = serde_json::to_string(&v).unwrap();
        let bytes = mp(&text);
        prop_assert_eq!(validate(&bytes, &Limits::default()), Ok(()));
        prop_assert_eq!(to_json(&bytes).unwrap(), text);
    }

    #[test]
    fn numbers_match_the_js_writer(x in any::<f64>()) {
        let mut text = String::new();
        crate::codec::json::write_json_number(x, &mut text);
        let mut w = Writer::new();
        w.write_f64_as_js_number(if x.is_finite() { x } else { f64::NAN });
        if x.is_finite() {
            prop_assert_eq!(text.parse::<f64>().unwrap(), x + 0.0);
            prop_assert_eq!(mp(&text), w.into_inner());
        } else {
            prop_assert_eq!(text, "null");
        }
    }
}

#[test]
fn peek_envelope_uid_reads_only_the_sender() {
    let mut w = Writer::new();
    w.write_array_len(3);
    w.write_str("abc123");
    w.write_map_len(0);
    w.write_map_len(0);
    let env = w.into_inner();
    assert_eq!(peek_envelope_uid(&env), Some("abc123"));
    // Only the head is read: a damaged tail still yields the uid (the message is dropped as
    // our own either way), while anything that is not `[str, ...]` yields None.
    assert_eq!(peek_envelope_uid(&env[..env.len() - 1]), Some("abc123"));
    assert_eq!(peek_envelope_uid(&env[..4]), None);
    assert_eq!(peek_envelope_uid(b"\x92\xa1a\x80"), None);
    assert_eq!(peek_envelope_uid(b"\x93\x01\x80\x80"), None);
    assert_eq!(peek_envelope_uid(b""), None);
}

#[test]
fn placeholders_become_the_bin_of_their_attachment() {
    let small = [1u8, 2, 3];
    let big = vec![7u8; 300];
    let json = r#"["ev",{"_placeholder":true,"num":1},{"a":[{"_placeholder":true,"num":0}],"b":"{\"_placeholder\":true,\"num\":0}"}]"#;
    let mut out = Vec::new();
    json_to_msgpack_with_attachments(json, &[&small, &big], &mut out).unwrap();
    let mut w = Writer::new();
    w.write_array_len(3);
    w.write_str("ev");
    w.write_bin(&big); // c5: notepack's bin16 for 300 bytes
    w.write_map_len(2);
    w.write_str("a");
    w.write_array_len(1);
    w.write_bin(&small);
    w.write_str("b");
    // A string that spells a placeholder stays a string.
    w.write_str(r#"{"_placeholder":true,"num":0}"#);
    assert_eq!(out, w.into_inner());
    // Without attachments a placeholder is an ordinary object; a missing one is an error.
    let mut plain = Vec::new();
    json_to_msgpack(r#"{"_placeholder":true,"num":0}"#, &mut plain).unwrap();
    assert_eq!(plain[0], 0x82);
    let mut bad = Vec::new();
    let missing =
        json_to_msgpack_with_attachments(r#"[{"_placeholder":true,"num":2}]"#, &[&small], &mut bad);
    assert!(missing.is_err());
    assert!(bad.is_empty());
}
