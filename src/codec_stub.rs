// TEMPORARY until the codec lands.
pub mod msgpack {
    use std::borrow::Cow;
    #[derive(Debug)]
    pub struct DecodeError;
    impl std::fmt::Display for DecodeError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stub")
        }
    }
    pub enum RoomRef<'a> {
        Str(&'a str),
    }
    impl RoomRef<'_> {
        pub fn to_js_string(&self) -> Cow<'_, str> {
            match self {
                RoomRef::Str(s) => Cow::Borrowed(s),
            }
        }
    }
    pub struct BroadcastEnvelope<'a> {
        pub uid: &'a str,
        pub packet_nsp: Option<&'a str>,
        pub rooms: Vec<RoomRef<'a>>,
    }
    pub fn read_broadcast_envelope(_b: &[u8]) -> Result<BroadcastEnvelope<'_>, DecodeError> {
        Err(DecodeError)
    }
    pub struct MessageHeader<'a> {
        pub msg_type: Option<i64>,
        pub uid: Option<&'a str>,
        pub request_id: Option<&'a str>,
        pub nsp: Option<&'a str>,
    }
    pub fn read_message_header(_b: &[u8]) -> Result<MessageHeader<'_>, DecodeError> {
        Err(DecodeError)
    }
}
