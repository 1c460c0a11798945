//! `--websocket`: a viewer of the player's WebSocket (`/ws`) instead of the
//! multipart stream. One connection, one subscription; every frame is one
//! binary message, a 20-byte header (stream id, sequence number,
//! publication time in µs) and the JPEG.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{unix_now, Outcome, Viewer};

/// Where the socket is and what to subscribe to.
#[derive(Debug, Clone)]
pub(crate) struct WsTarget {
    /// `ws://HOST:PORT/ws`, with the stream URL's `?token=` if it had one.
    pub(crate) url: String,
    /// The stream's name; `None`: the server's first (`/stream`).
    pub(crate) stream: Option<String>,
}

/// Bytes before the JPEG in a frame message.
const HEADER: usize = 20;

impl Viewer<'_> {
    /// The handshake and the subscription on `stream`, then every message
    /// until stopped.
    pub(super) async fn websocket(
        &mut self,
        stream: TcpStream,
        target: &WsTarget,
    ) -> Result<(), Outcome> {
        let (mut socket, _) = tokio_tungstenite::client_async(target.url.as_str(), stream)
            .await
            .map_err(|e| Outcome::Refused(format!("WebSocket handshake: {e}")))?;
        let subscribe = match &target.stream {
            Some(name) => serde_json::json!({ "op": "subscribe", "stream": name }),
            None => serde_json::json!({ "op": "subscribe" }),
        };
        socket
            .send(Message::text(subscribe.to_string()))
            .await
            .map_err(|e| Outcome::Refused(format!("sending the subscription: {e}")))?;
        let stop = self.shared.stop.clone();
        let mut last_seq = 0;
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                m = socket.next() => m,
            };
            let n = match msg {
                None => return Err(Outcome::Closed("closed by the server".into())),
                Some(Err(e)) => return Err(Outcome::Closed(format!("read: {e}"))),
                Some(Ok(Message::Close(frame))) => {
                    return Err(Outcome::Closed(match frame {
                        Some(f) => format!("closed by the server: {} {}", f.code, f.reason),
                        None => "closed by the server".into(),
                    }))
                }
                Some(Ok(Message::Text(text))) => {
                    self.reply(&text)?;
                    text.len()
                }
                Some(Ok(Message::Binary(frame))) => {
                    self.frame_message(&frame, &mut last_seq)?;
                    frame.len()
                }
                Some(Ok(_)) => 0,
            };
            if self.pace(n).await {
                return Ok(());
            }
        }
    }

    /// The server's answer to the subscription.
    fn reply(&mut self, text: &str) -> Result<(), Outcome> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Outcome::Invalid(format!("a text message that is not JSON: {e}")))?;
        match v["op"].as_str() {
            Some("subscribed") => {
                self.r.connected = true;
                // The next client may connect once this one is answered.
                self.permit.take();
                Ok(())
            }
            Some("error") => Err(Outcome::Refused(format!(
                "subscription refused: {} {}",
                v["status"], v["reason"]
            ))),
            _ => Err(Outcome::Invalid(format!("an unknown message: {text}"))),
        }
    }

    /// Checks and counts one frame message.
    fn frame_message(&mut self, msg: &[u8], last_seq: &mut u64) -> Result<(), Outcome> {
        if msg.len() <= HEADER {
            return Err(Outcome::Invalid(format!(
                "a frame message of {} bytes, no JPEG after the header",
                msg.len()
            )));
        }
        let seq = u64::from_be_bytes(msg[4..12].try_into().unwrap_or_default());
        let micros = u64::from_be_bytes(msg[12..20].try_into().unwrap_or_default());
        let jpeg = &msg[HEADER..];
        if self.shared.verify {
            mjpeg_server::jpeg::validate(jpeg)
                .map_err(|e| Outcome::Invalid(format!("frame {seq}: {e}")))?;
        } else if !(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9])) {
            return Err(Outcome::Invalid(format!(
                "frame {seq} does not start with SOI and end with EOI"
            )));
        }
        self.ready.done();
        if self.shared.in_window(Instant::now()) {
            self.r.bytes += msg.len() as u64;
            if seq == *last_seq {
                self.r.repeats += 1;
            } else {
                self.r.frames += 1;
                let lat = unix_now() - micros as f64 / 1e6;
                self.r
                    .latency_us
                    .push((lat.max(0.0) * 1e6).min(u32::MAX as f64) as u32);
            }
        }
        *last_seq = seq;
        Ok(())
    }
}
