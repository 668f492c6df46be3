//! A received pub/sub message, borrowed from wherever it was read (the raw connection's buffer,
//! or a `redis::Msg` on the connections that still go through the redis crate).

use redis::Msg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PubSubMessage<'a> {
    pub channel: &'a [u8],
    /// The pattern that matched, for messages received through PSUBSCRIBE.
    pub pattern: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl<'a> PubSubMessage<'a> {
    /// The channel as text; None when it is not UTF-8 (never the case for socket.io channels).
    pub fn channel_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.channel).ok()
    }

    pub fn pattern_str(&self) -> Option<&'a str> {
        self.pattern.and_then(|p| std::str::from_utf8(p).ok())
    }
}

/// A `redis::Msg` with its pattern extracted once, so it can lend a [`PubSubMessage`].
pub struct CrateMessage {
    msg: Msg,
    pattern: Option<Vec<u8>>,
}

impl From<Msg> for CrateMessage {
    fn from(msg: Msg) -> Self {
        let pattern = if msg.from_pattern() {
            msg.get_pattern::<Vec<u8>>().ok()
        } else {
            None
        };
        Self { msg, pattern }
    }
}

impl CrateMessage {
    pub fn view(&self) -> PubSubMessage<'_> {
        PubSubMessage {
            channel: self.msg.get_channel_name().as_bytes(),
            pattern: self.pattern.as_deref(),
            payload: self.msg.get_payload_bytes(),
        }
    }
}
