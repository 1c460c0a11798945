//! The messages of `/ws`, both ways (the table is in [`super`]), and why a
//! socket is closed.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::time::UNIX_EPOCH;

use super::wire;
use crate::hub::Published;

/// Bytes before the JPEG in a frame message.
pub(crate) const HEADER_LEN: usize = 20;

/// A message from the page.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Request {
    /// Start getting a stream's frames, at most `fps` a second.
    Subscribe {
        /// The stream's name; none: the server's first stream, as
        /// `/stream` is.
        #[serde(default)]
        stream: Option<String>,
        /// A cap on the rate, as `?fps=` caps a stream's.
        #[serde(default)]
        fps: Option<f64>,
        /// A variant, as `?width=`, `?height=` and `?quality=` ask for one.
        #[serde(default)]
        width: Option<u64>,
        #[serde(default)]
        height: Option<u64>,
        #[serde(default)]
        quality: Option<u64>,
    },
    /// Stop getting them.
    Unsubscribe {
        /// As it was subscribed.
        #[serde(default)]
        stream: Option<String>,
        /// As it was subscribed.
        #[serde(default)]
        width: Option<u64>,
        #[serde(default)]
        height: Option<u64>,
        #[serde(default)]
        quality: Option<u64>,
    },
}

/// The variant a subscription asks for: numbers, checked as the query
/// parameters of the same names are. A page may watch several variants of
/// one stream; each is a subscription of its own. (The requests spell the
/// fields out: serde's `flatten` cannot refuse unknown fields.)
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct VariantAsked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) width: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quality: Option<u64>,
}

/// A text message from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(crate) enum Reply<'a> {
    /// The subscription is on; frames of the stream carry `id`.
    Subscribed {
        /// As the page named it (`null` for the first stream).
        stream: Option<&'a str>,
        /// The variant, as the page asked for it.
        #[serde(flatten)]
        variant: VariantAsked,
        /// The stream's own name.
        name: &'a str,
        /// What its frame messages start with.
        id: u32,
    },
    /// The subscription was refused, as a stream request would have been.
    Error {
        /// As the page named it.
        stream: Option<&'a str>,
        /// The variant, as the page asked for it.
        #[serde(flatten)]
        variant: VariantAsked,
        /// The HTTP status of the same refusal.
        status: u16,
        /// Why, for people.
        reason: &'a str,
    },
}

impl Request {
    /// The stream and variant the request names: what a subscription is
    /// known by.
    pub(crate) fn key(&self) -> Key {
        let (stream, width, height, quality) = match self {
            Request::Subscribe {
                stream,
                width,
                height,
                quality,
                ..
            }
            | Request::Unsubscribe {
                stream,
                width,
                height,
                quality,
            } => (stream, width, height, quality),
        };
        Key {
            stream: stream.clone(),
            variant: VariantAsked {
                width: *width,
                height: *height,
                quality: *quality,
            },
        }
    }
}

/// What a subscription is known by on its socket: the stream as the page
/// named it (`None`: the first) and the variant.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) stream: Option<String>,
    pub(crate) variant: VariantAsked,
}

impl Reply<'_> {
    /// The message's JSON text.
    pub(crate) fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why the server closes a socket: a WebSocket close code (RFC 6455
/// §7.4.1) and its reason.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum Violation {
    /// Not JSON, or not one of the [`Request`]s.
    #[error("bad message: {0}")]
    BadMessage(String),
    /// A binary message: the page sends only text.
    #[error("binary messages are not accepted; send JSON text")]
    Binary,
    /// A frame that breaks RFC 6455, and the rule it breaks.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A text message that is not UTF-8.
    #[error("a text message that is not UTF-8")]
    BadUtf8,
    /// A message over the size limit.
    #[error("message over {0} bytes")]
    TooBig(usize),
    /// More subscriptions than a socket may hold.
    #[error("more than {0} subscriptions on one socket")]
    TooManySubscriptions(usize),
    /// Messages faster than any page needs to send them.
    #[error("more than {0} messages a second")]
    Flood(u32),
    /// The socket took no frame for too long: it is not reading.
    #[error("not reading")]
    Stalled,
    /// The server is stopping.
    #[error("server shutting down")]
    Shutdown,
}

impl Violation {
    /// The close code: 1001 going away, 1002 protocol error, 1003
    /// unsupported data, 1007 invalid data, 1008 policy violation, 1009
    /// message too big.
    pub(crate) fn code(&self) -> u16 {
        match self {
            Violation::Shutdown => 1001,
            Violation::Protocol(_) => 1002,
            Violation::Binary => 1003,
            Violation::BadUtf8 => 1007,
            Violation::TooBig(_) => 1009,
            Violation::BadMessage(_)
            | Violation::TooManySubscriptions(_)
            | Violation::Flood(_)
            | Violation::Stalled => 1008,
        }
    }

    /// The reason, cut to the 123 bytes a close frame can carry.
    pub(crate) fn reason(&self) -> String {
        let mut text = self.to_string();
        if text.len() > 123 {
            let mut end = 120;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
        }
        text
    }
}

/// Parses a text message from the page.
pub(crate) fn parse(text: &str) -> Result<Request, Violation> {
    serde_json::from_str(text).map_err(|e| {
        Violation::BadMessage(format!(
            "{e}; expected {{\"op\":\"subscribe\",\"stream\":NAME,\"fps\":N}} or {{\"op\":\"unsubscribe\",\"stream\":NAME}}"
        ))
    })
}

/// What goes before the JPEG of `p`'s frame message for the stream
/// numbered `id`: the WebSocket frame's header, then the message's own
/// header. The JPEG follows from the hub's buffer, so nothing of it is
/// copied.
pub(crate) fn frame_prefix(id: u32, p: &Published) -> Bytes {
    let micros = p
        .published()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut buf = BytesMut::with_capacity(wire::MAX_HEAD + HEADER_LEN);
    wire::put_head(&mut buf, wire::BINARY, HEADER_LEN + p.jpeg().len());
    buf.put_u32(id);
    buf.put_u64(p.seq());
    buf.put_u64(micros);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse(r#"{"op":"subscribe","stream":"cam","fps":5}"#).unwrap(),
            Request::Subscribe {
                stream: Some("cam".into()),
                fps: Some(5.0),
                width: None,
                height: None,
                quality: None,
            }
        );
        assert_eq!(
            parse(r#"{"op":"subscribe"}"#).unwrap(),
            Request::Subscribe {
                stream: None,
                fps: None,
                width: None,
                height: None,
                quality: None,
            }
        );
        assert_eq!(
            parse(r#"{"op":"unsubscribe","stream":"cam"}"#).unwrap(),
            Request::Unsubscribe {
                stream: Some("cam".into()),
                width: None,
                height: None,
                quality: None,
            }
        );
        assert_eq!(
            parse(r#"{"op":"subscribe","stream":"cam","width":320,"quality":60}"#).unwrap(),
            Request::Subscribe {
                stream: Some("cam".into()),
                fps: None,
                width: Some(320),
                height: None,
                quality: Some(60),
            }
        );
    }

    #[test]
    fn bad_requests_say_what_is_expected() {
        for bad in [
            "",
            "hello",
            "[]",
            r#"{"op":"dance"}"#,
            r#"{"op":"subscribe","stream":7}"#,
            r#"{"op":"subscribe","stream":"a","extra":1}"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.code(), 1008, "{bad}");
            assert!(err.reason().len() <= 123, "{bad}: {}", err.reason());
            assert!(err.reason().starts_with("bad message"), "{bad}");
        }
    }

    #[test]
    fn a_frame_message_is_the_headers_then_the_jpeg() {
        let hub = crate::Hub::new("t");
        let jpeg = bytes::Bytes::from(crate::test_data::corpus("jpeg_5k.jpg"));
        hub.publish_jpeg(jpeg.clone()).unwrap();
        let p = hub.latest().unwrap();
        let prefix = frame_prefix(7, &p);
        // A final binary frame with a 64-bit length (over 65535 bytes),
        // as a client reads it.
        let len = (HEADER_LEN + jpeg.len()) as u64;
        let (head, msg) = if len > 0xFFFF {
            (&prefix[..10], &prefix[10..])
        } else {
            (&prefix[..4], &prefix[4..])
        };
        assert_eq!(head[0], 0x82);
        let said = if len > 0xFFFF {
            assert_eq!(head[1], 127);
            u64::from_be_bytes(head[2..10].try_into().unwrap())
        } else {
            assert_eq!(head[1], 126);
            u64::from(u16::from_be_bytes([head[2], head[3]]))
        };
        assert_eq!(said, len);
        let msg = [msg, &p.jpeg()[..]].concat();
        assert_eq!(&msg[0..4], &7u32.to_be_bytes());
        assert_eq!(&msg[4..12], &1u64.to_be_bytes());
        let micros = u64::from_be_bytes(msg[12..20].try_into().unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(micros <= now && now - micros < 60_000_000, "{micros}");
        assert_eq!(&msg[HEADER_LEN..], &jpeg[..]);
    }
}
