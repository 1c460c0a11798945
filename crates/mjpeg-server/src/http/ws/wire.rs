//! RFC 6455 framing, the server's side: the frames `/ws` reads and writes.
//!
//! Written here rather than taken from a WebSocket crate for two things
//! `/ws` needs that their APIs do not give together:
//! - **Writing:** a frame message's header is built once per frame and
//!   shared by every socket, which writes it and the JPEG straight from the
//!   hub's buffer with one vectored write
//!   ([`Published::ws_prefix`](crate::hub::Published)). The crates copy each
//!   message into a buffer of the socket's: a copy of every JPEG for every
//!   viewer, into a buffer that stays as large as the largest frame.
//! - **Reading:** [`Reader::next`] is cancel-safe, so one task waits for
//!   the page's next request and for the next frame at once, and never
//!   loses half a request.
//!
//! The page sends only short text, so the reading side refuses early
//! rather than buffer: a frame announcing more than its limit is refused
//! from its header, before its payload is read.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::protocol::Violation;

/// Opcodes (RFC 6455 §5.2).
pub(super) const TEXT: u8 = 0x1;
pub(super) const BINARY: u8 = 0x2;
pub(super) const CLOSE: u8 = 0x8;
pub(super) const PING: u8 = 0x9;
pub(super) const PONG: u8 = 0xA;
const CONTINUATION: u8 = 0x0;

/// Largest header of a server frame: 2 bytes, then 8 of length.
pub(super) const MAX_HEAD: usize = 10;

/// Writes the header of a final, unmasked frame of `opcode` carrying
/// `len` bytes (servers never mask, §5.1).
pub(super) fn put_head(buf: &mut impl BufMut, opcode: u8, len: usize) {
    buf.put_u8(0x80 | opcode);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        buf.put_u8(126);
        buf.put_u16(len);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
}

/// A whole frame of `opcode` with `payload`: for the few small messages
/// a socket sends besides frames (replies, pongs, the close).
pub(super) fn message(opcode: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(MAX_HEAD + payload.len());
    put_head(&mut buf, opcode, payload.len());
    buf.put_slice(payload);
    buf.freeze()
}

/// The close frame with `code` and `reason` (at most 123 bytes, §5.5).
pub(super) fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    message(CLOSE, &payload)
}

/// A message from the page.
#[derive(Debug, PartialEq)]
pub(super) enum Incoming {
    Text(String),
    /// A binary message (its bytes are not kept: the page sends none).
    Binary,
    /// A ping, with the payload its pong must echo.
    Ping(Bytes),
    Pong,
    /// The page closes, with its code if it gave one.
    Close(Option<u16>),
}

/// Why reading stopped.
#[derive(Debug, PartialEq)]
pub(super) enum ReadEnd {
    /// The connection ended or failed.
    Gone,
    /// The page broke the protocol or a limit: close, saying why.
    Broke(Violation),
}

/// Reads the page's frames, each message at most `max` bytes.
pub(super) struct Reader {
    max: usize,
    /// Bytes read and not yet parsed.
    buf: BytesMut,
    /// The opcode and the payload so far of a message sent in fragments.
    partial: Option<(u8, BytesMut)>,
}

impl Reader {
    pub(super) fn new(max: usize) -> Reader {
        Reader {
            max,
            // A request fits; the buffer grows to a frame's size only for
            // the frame that needs it.
            buf: BytesMut::with_capacity(256),
            partial: None,
        }
    }

    /// The next message. Cancel-safe: bytes read before a cancellation
    /// stay in the buffer for the next call.
    pub(super) async fn next<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
    ) -> Result<Incoming, ReadEnd> {
        loop {
            match self.parse()? {
                Parsed::Message(m) => return Ok(m),
                Parsed::Fragment => continue,
                Parsed::Need(n) => {
                    self.buf.reserve(n.saturating_sub(self.buf.len()).max(256));
                    match io.read_buf(&mut self.buf).await {
                        Ok(0) | Err(_) => return Err(ReadEnd::Gone),
                        Ok(_) => {}
                    }
                }
            }
        }
    }

    /// Takes one frame off the buffer, if it is all there.
    fn parse(&mut self) -> Result<Parsed, ReadEnd> {
        let broke = |why: &'static str| Err(ReadEnd::Broke(Violation::Protocol(why)));
        let b = &self.buf[..];
        if b.len() < 2 {
            return Ok(Parsed::Need(2));
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
        let (masked, len7) = (b[1] & 0x80 != 0, b[1] & 0x7F);
        if rsv != 0 {
            return broke("reserved bits set, but no extension was agreed");
        }
        if !masked {
            return broke("a client's frames must be masked");
        }
        let control = opcode & 0x08 != 0;
        if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
            return broke("unknown opcode");
        }
        if control && (!fin || len7 > 125) {
            return broke("a control frame must be whole and at most 125 bytes");
        }
        let (ext, len) = match len7 {
            126 if b.len() >= 4 => (2, u64::from(u16::from_be_bytes([b[2], b[3]]))),
            127 if b.len() >= 10 => (8, u64::from_be_bytes(b[2..10].try_into().unwrap())),
            126 => return Ok(Parsed::Need(4)),
            127 => return Ok(Parsed::Need(10)),
            n => (0, u64::from(n)),
        };
        // Refused from its header: the payload is never read.
        let so_far = self.partial.as_ref().map_or(0, |(_, p)| p.len() as u64);
        if !control && so_far.saturating_add(len) > self.max as u64 {
            return Err(ReadEnd::Broke(Violation::TooBig(self.max)));
        }
        let len = len as usize; // at most `max` (or 125) now
        let start = 2 + ext + 4;
        if b.len() < start + len {
            return Ok(Parsed::Need(start + len));
        }
        let mask: [u8; 4] = b[2 + ext..start].try_into().unwrap();
        self.buf.advance(start);
        let mut payload = self.buf.split_to(len);
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
        // Control frames may come between a message's fragments (§5.4).
        if control {
            return control_message(opcode, payload);
        }
        let (opcode, payload) = match (opcode, self.partial.take()) {
            (CONTINUATION, None) => {
                return broke("a continuation frame with no message to continue")
            }
            (CONTINUATION, Some((first, mut so_far))) => {
                so_far.unsplit(payload);
                (first, so_far)
            }
            (_, Some(_)) => return broke("a new message inside a fragmented one"),
            (_, None) => (opcode, payload),
        };
        if !fin {
            self.partial = Some((opcode, payload));
            return Ok(Parsed::Fragment);
        }
        Ok(Parsed::Message(match opcode {
            TEXT => match String::from_utf8(payload.to_vec()) {
                Ok(text) => Incoming::Text(text),
                Err(_) => return Err(ReadEnd::Broke(Violation::BadUtf8)),
            },
            _ => Incoming::Binary,
        }))
    }
}

fn control_message(opcode: u8, payload: BytesMut) -> Result<Parsed, ReadEnd> {
    Ok(Parsed::Message(match opcode {
        PING => Incoming::Ping(payload.freeze()),
        PONG => Incoming::Pong,
        _ => match payload.len() {
            0 => Incoming::Close(None),
            1 => {
                return Err(ReadEnd::Broke(Violation::Protocol(
                    "a close frame's code takes two bytes",
                )))
            }
            _ => match u16::from_be_bytes([payload[0], payload[1]]) {
                // The codes a close frame may carry (§7.4): the defined
                // ones but those only an endpoint's API reports, and the
                // ranges for libraries and applications.
                code @ (1000..=1003 | 1007..=1014 | 3000..=4999) => Incoming::Close(Some(code)),
                _ => {
                    return Err(ReadEnd::Broke(Violation::Protocol(
                        "a close code that may not be sent",
                    )))
                }
            },
        },
    }))
}

/// What the buffer held.
enum Parsed {
    Message(Incoming),
    /// A fragment of a message, kept.
    Fragment,
    /// Not a whole frame yet: at least this many bytes are needed.
    Need(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's frame: masked, as browsers send them.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    /// Everything `bytes` holds, fed `chunk` bytes at a time.
    async fn read_all(bytes: &[u8], chunk: usize) -> Vec<Result<Incoming, ReadEnd>> {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let bytes = bytes.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in bytes.chunks(chunk) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut reader = Reader::new(4096);
        let mut out = Vec::new();
        loop {
            let r = reader.next(&mut server).await;
            let end = r.is_err();
            out.push(r);
            if end {
                break;
            }
        }
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn messages_are_read_whole_however_they_arrive() {
        let long = "x".repeat(300); // a 16-bit length
        let mut wire = client_frame(true, TEXT, b"{\"op\":\"subscribe\"}");
        wire.extend(client_frame(true, PING, b"hi"));
        wire.extend(client_frame(false, TEXT, b"frag"));
        wire.extend(client_frame(true, PONG, b"")); // between fragments
        wire.extend(client_frame(false, CONTINUATION, b"men"));
        wire.extend(client_frame(true, CONTINUATION, b"ted"));
        wire.extend(client_frame(true, TEXT, long.as_bytes()));
        wire.extend(client_frame(true, BINARY, &[1, 2, 3]));
        wire.extend(client_frame(true, CLOSE, &1000u16.to_be_bytes()));
        for chunk in [1, 3, 7, wire.len()] {
            let got = read_all(&wire, chunk).await;
            assert_eq!(
                got,
                vec![
                    Ok(Incoming::Text("{\"op\":\"subscribe\"}".into())),
                    Ok(Incoming::Ping(Bytes::from_static(b"hi"))),
                    Ok(Incoming::Pong),
                    Ok(Incoming::Text("fragmented".into())),
                    Ok(Incoming::Text(long.clone())),
                    Ok(Incoming::Binary),
                    Ok(Incoming::Close(Some(1000))),
                    Err(ReadEnd::Gone),
                ],
                "in pieces of {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn broken_frames_are_refused_with_the_rule_they_break() {
        let mut unmasked = client_frame(true, TEXT, b"hi");
        unmasked[1] &= 0x7F;
        let mut rsv = client_frame(true, TEXT, b"hi");
        rsv[0] |= 0x40;
        let mut big_ping = client_frame(true, PING, &[0; 126]);
        big_ping[0] &= 0x7F; // and not final
        let mut two_starts = client_frame(false, TEXT, b"a");
        two_starts.extend(client_frame(true, TEXT, b"b"));
        let cases: Vec<(&str, Vec<u8>, Violation)> = vec![
            (
                "unmasked",
                unmasked,
                Violation::Protocol("a client's frames must be masked"),
            ),
            (
                "reserved bits",
                rsv,
                Violation::Protocol("reserved bits set, but no extension was agreed"),
            ),
            (
                "opcode 3",
                client_frame(true, 3, b""),
                Violation::Protocol("unknown opcode"),
            ),
            (
                "a long control frame",
                big_ping,
                Violation::Protocol("a control frame must be whole and at most 125 bytes"),
            ),
            (
                "a stray continuation",
                client_frame(true, CONTINUATION, b"x"),
                Violation::Protocol("a continuation frame with no message to continue"),
            ),
            (
                "a message in a message",
                two_starts,
                Violation::Protocol("a new message inside a fragmented one"),
            ),
            (
                "bad UTF-8",
                client_frame(true, TEXT, &[0xff, 0xfe]),
                Violation::BadUtf8,
            ),
            (
                "a one-byte close",
                client_frame(true, CLOSE, &[3]),
                Violation::Protocol("a close frame's code takes two bytes"),
            ),
            (
                "close code 1005",
                client_frame(true, CLOSE, &1005u16.to_be_bytes()),
                Violation::Protocol("a close code that may not be sent"),
            ),
            (
                "over the limit",
                client_frame(true, TEXT, &[b'x'; 4097]),
                Violation::TooBig(4096),
            ),
            (
                "over the limit in fragments",
                [
                    client_frame(false, TEXT, &[b'x'; 4000]),
                    client_frame(true, CONTINUATION, &[b'x'; 97]),
                ]
                .concat(),
                Violation::TooBig(4096),
            ),
        ];
        for (what, wire, why) in cases {
            let got = read_all(&wire, wire.len()).await;
            assert_eq!(got.last(), Some(&Err(ReadEnd::Broke(why))), "{what}");
        }
    }

    #[tokio::test]
    async fn a_huge_frame_is_refused_from_its_header() {
        // Only the header is sent: the refusal cannot have waited for the
        // payload.
        let mut head = vec![0x82, 0x80 | 127];
        head.extend_from_slice(&(1u64 << 40).to_be_bytes());
        head.extend_from_slice(&[1, 2, 3, 4]);
        let (mut client, mut server) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut client, &head)
            .await
            .unwrap();
        let got = Reader::new(4096).next(&mut server).await;
        assert_eq!(got, Err(ReadEnd::Broke(Violation::TooBig(4096))));
    }

    #[test]
    fn heads_use_the_shortest_length() {
        let head = |len| {
            let mut b = Vec::new();
            put_head(&mut b, BINARY, len);
            b
        };
        assert_eq!(head(125), [0x82, 125]);
        assert_eq!(head(126), [0x82, 126, 0, 126]);
        assert_eq!(head(65535), [0x82, 126, 0xff, 0xff]);
        assert_eq!(head(65536), [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            &close(1001, "bye")[..],
            [0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']
        );
    }
}
