//! What a request for a stream is, decided in one place.
//!
//! Two paths serve a stream: the axum handlers of [`crate::http`], and the
//! standalone server's direct socket path ([`crate::viewer::write_stream`]),
//! which answers a plain `GET` of a stream without an HTTP library. Both
//! turn a request into a [`StreamRequest`] (which stream, at what rate, in
//! which layout) or a [`Refusal`] (why not) with [`decide`], and both write
//! the same response headers ([`STREAM_HEADERS`]). [`direct`] is the direct
//! path's side: it parses a raw request head and says yes only to what the
//! handlers would serve the same way; anything else goes to the handlers,
//! which turn the refusal into a response.
//!
//! | URL | stream |
//! | --- | --- |
//! | `/stream` | the first |
//! | `/stream/{name}` | by name |
//! | `/?action=stream`, `/?action=stream_N` | the first, the N-th (mjpg-streamer) |
//!
//! with `?fps=N` (at most N frames a second), `?width=`, `?height=` and
//! `?quality=` (a variant: [`crate::variant`]), `?advance_headers=1` or `0`
//! (the [`Layout`]; by default browsers' image loads get advanced headers)
//! and `?token=` (credentials for an `<img>`).

use bytes::Bytes;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use crate::access::{Access, Action, Denied, Presented};
use crate::hub::{Hub, Streams, Subscriber, VariantError};
use crate::multipart::{self, Layout};
use crate::variant::VariantSpec;

/// Query parameters the routes understand; others are ignored.
#[derive(Deserialize, Default)]
pub(crate) struct Params {
    /// mjpg-streamer's `action=stream`, `stream_N`, `snapshot`, `snapshot_N`.
    pub(crate) action: Option<String>,
    /// Per-viewer frame-rate cap.
    pub(crate) fps: Option<String>,
    /// Credentials for clients that cannot send headers (`<img src>`).
    pub(crate) token: Option<String>,
    /// `1` or `0`: advanced part headers or plain parts, whoever asks
    /// ([`parse_layout`]).
    pub(crate) advance_headers: Option<String>,
    /// A variant's largest width, height and its JPEG quality
    /// ([`variant_of`]).
    pub(crate) width: Option<String>,
    pub(crate) height: Option<String>,
    pub(crate) quality: Option<String>,
}

/// Which stream a URL names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    /// `/stream`: the first stream.
    First,
    /// `/stream/{name}`.
    Named(&'a str),
    /// `/?action=stream[_N]`: the action as given.
    Action(&'a str),
}

/// What a request asks for, in the terms both paths share.
pub(crate) struct Asked<'a> {
    /// The stream the URL names.
    pub(crate) which: Which<'a>,
    /// The query.
    pub(crate) params: &'a Params,
    /// Its credentials: `Authorization` and `?token=`.
    pub(crate) presented: Presented<'a>,
    /// Its `Sec-Fetch-Dest` header, for [`parse_layout`].
    pub(crate) sec_fetch_dest: Option<&'a [u8]>,
}

/// A stream request that may be served.
#[derive(Debug)]
pub(crate) struct StreamRequest {
    /// The stream.
    pub(crate) hub: Hub,
    /// Least time between frames (`?fps`).
    pub(crate) min_interval: Option<Duration>,
    /// How the parts are laid out ([`parse_layout`]).
    pub(crate) layout: Layout,
}

/// Why a stream request is not served. [`crate::http`] turns each into its
/// response; the text ends with a newline.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// `404` with this text.
    NotFound(String),
    /// `404` for an unknown stream name, from a client that could watch a
    /// stream of that name: the answer lists the streams it may watch.
    NoSuchStream(String),
    /// `401` or `403`.
    Denied(Denied),
    /// `400`: a parameter that makes no sense, and why.
    BadParameter(String),
    /// `503`: the stream has as many variants as it may.
    Variant(VariantError),
    /// `503`: the stream has as many viewers as it may.
    Full {
        /// The stream.
        name: String,
        /// Its limit.
        limit: usize,
    },
}

/// Decides what `asked` gets: the stream and how to send it, or why not.
///
/// The order is part of the contract: an unknown name is refused as a
/// known one would be before it is reported unknown, so that which names
/// exist cannot be probed without the right to watch them; credentials are
/// checked before parameters.
pub(crate) fn decide(
    streams: &Streams,
    access: &Access,
    max_variants: usize,
    asked: &Asked<'_>,
) -> Result<StreamRequest, Refusal> {
    let hub = match asked.which {
        Which::First => streams
            .nth(0)
            .ok_or_else(|| Refusal::NotFound("this server has no streams\n".into()))?,
        Which::Action(action) => action_index(action, "stream")
            .flatten()
            .and_then(|n| streams.nth(n))
            .ok_or_else(|| Refusal::NotFound(format!("no stream for action={action}\n")))?,
        Which::Named(name) => match streams.get(name) {
            Some(hub) => hub,
            None => {
                access
                    .check(&asked.presented, Action::Watch, name)
                    .map_err(Refusal::Denied)?;
                return Err(Refusal::NoSuchStream(name.to_string()));
            }
        },
    };
    access
        .check(&asked.presented, Action::Watch, hub.name())
        .map_err(Refusal::Denied)?;
    let min_interval = parse_fps(asked.params).map_err(Refusal::BadParameter)?;
    let layout = parse_layout(asked.params, asked.sec_fetch_dest).map_err(Refusal::BadParameter)?;
    // A variant's viewers watch the variant's own hub: the viewer path
    // below is the same for both.
    let hub = match variant_of(&hub, asked.params).map_err(Refusal::BadParameter)? {
        Some(spec) => hub.variant(spec, max_variants).map_err(Refusal::Variant)?,
        None => hub,
    };
    Ok(StreamRequest {
        hub,
        min_interval,
        layout,
    })
}

impl StreamRequest {
    /// Takes a viewer's place in the stream for the client at `peer`, unless
    /// it already has `limit` viewers.
    pub(crate) fn subscribe(
        &self,
        peer: Option<SocketAddr>,
        limit: Option<usize>,
    ) -> Result<Subscriber, Refusal> {
        self.hub
            .try_subscribe_from(peer, limit)
            .ok_or_else(|| Refusal::Full {
                name: self.hub.name().to_string(),
                limit: limit.unwrap_or_default(),
            })
    }
}

/// Which stream an mjpg-streamer `action` names: `Some(Some(n))` for
/// `PREFIX` (n = 0) or `PREFIX_n`, `Some(None)` for `PREFIX_` followed by
/// something that is no number, `None` if the action is another one.
pub(crate) fn action_index(action: &str, prefix: &str) -> Option<Option<usize>> {
    let rest = action.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some(Some(0))
    } else {
        Some(rest.strip_prefix('_').and_then(|n| n.parse().ok()))
    }
}

/// The variant of `hub` that a viewer with query `p` watches: the one that
/// `?width=`, `?height=` and `?quality=` ask for, drawn on if the stream
/// has an overlay (then even without them); `None` for the source's own
/// frames; or why a value is no good.
pub(crate) fn variant_of(hub: &Hub, p: &Params) -> Result<Option<VariantSpec>, String> {
    let asked = VariantSpec::from_query(
        p.width.as_deref(),
        p.height.as_deref(),
        p.quality.as_deref(),
    )?;
    Ok(match (asked, hub.overlay().is_some()) {
        (asked, true) => Some(VariantSpec {
            overlay: true,
            ..asked.unwrap_or_default()
        }),
        (asked, false) => asked,
    })
}

/// The per-viewer frame interval from `?fps=N`, or why `N` is no good.
pub(crate) fn parse_fps(p: &Params) -> Result<Option<Duration>, String> {
    let Some(raw) = p.fps.as_deref() else {
        return Ok(None);
    };
    // Bounded so that 1/N is a duration a timer can hold (a tiny N would
    // overflow it) and more than zero (a huge one would round to nothing).
    match raw.parse::<f64>() {
        Ok(fps) if (0.001..=1000.0).contains(&fps) => Ok(Some(Duration::from_secs_f64(1.0 / fps))),
        _ => Err(format!(
            "fps={raw:?} is not a number of frames per second from 0.001 to 1000\n"
        )),
    }
}

/// How a viewer's parts are laid out: [`Layout::Advanced`] for a browser's
/// image load (`Sec-Fetch-Dest: image`), [`Layout::Plain`] for every other
/// client; `?advance_headers=1` or `=0` forces either. An `Err` says what is
/// wrong with the parameter.
///
/// Only browsers, because the advanced header block cannot carry the next
/// frame's `Content-Length` (nor its `X-Timestamp`): ffmpeg, OpenCV and
/// embedded clients need it, and none of them sends `Sec-Fetch-Dest`.
/// Browsers find parts by the boundary, and Chrome needs the next part's
/// headers to draw a frame (crbug 527446).
pub(crate) fn parse_layout(p: &Params, sec_fetch_dest: Option<&[u8]>) -> Result<Layout, String> {
    match p.advance_headers.as_deref() {
        Some("1") => Ok(Layout::Advanced),
        Some("0") => Ok(Layout::Plain),
        Some(raw) => Err(format!(
            "advance_headers={raw:?} is not 0 or 1 (1: send each part's headers right after the \
             previous frame, for browsers; 0: plain parts with Content-Length)\n"
        )),
        None => Ok(match sec_fetch_dest.map(<[u8]>::trim_ascii) {
            Some(dest) if dest.eq_ignore_ascii_case(b"image") => Layout::Advanced,
            _ => Layout::Plain,
        }),
    }
}

/// The headers that keep every cache and proxy from storing a response
/// that changes all the time: streams, snapshots, `/status`, `/metrics`.
pub(crate) const NO_CACHE_HEADERS: [(&str, &str); 3] = [
    (
        "cache-control",
        "no-store, no-cache, must-revalidate, max-age=0",
    ),
    ("pragma", "no-cache"),
    ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
];

/// The headers of a stream response, in order, on both paths. HTTP/1
/// responses also carry `Connection: close` after the content type: the
/// stream ends when the connection does.
pub(crate) const STREAM_HEADERS: [(&str, &str); 5] = [
    ("content-type", multipart::CONTENT_TYPE),
    // nginx: pass each part on as it comes instead of buffering the body.
    ("x-accel-buffering", "no"),
    NO_CACHE_HEADERS[0],
    NO_CACHE_HEADERS[1],
    NO_CACHE_HEADERS[2],
];

/// The response head the direct path writes: what hyper writes for the
/// handlers' stream response to an HTTP/1 request (answered as HTTP/1.0,
/// see [`crate::http`]), built once from [`STREAM_HEADERS`].
pub(crate) fn direct_head() -> Bytes {
    static HEAD: LazyLock<Bytes> = LazyLock::new(|| {
        let mut head = String::from("HTTP/1.0 200 OK\r\n");
        for (i, (name, value)) in STREAM_HEADERS.iter().enumerate() {
            head.push_str(&format!("{name}: {value}\r\n"));
            if i == 0 {
                head.push_str("connection: close\r\n");
            }
        }
        head.push_str("\r\n");
        Bytes::from(head)
    });
    HEAD.clone()
}

/// If a raw request head is a plain `GET` of a stream that [`decide`] lets
/// this client watch, that stream request. Anything else (another URL or
/// method, a refusal, an unusual header) is `None`, to be answered by the
/// HTTP handlers, which say what is wrong: this path only ever says yes.
pub(crate) fn direct(
    streams: &Streams,
    access: &Access,
    max_variants: usize,
    head: &[u8],
) -> Option<StreamRequest> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if !req.parse(head).ok()?.is_complete() || req.method? != "GET" {
        return None;
    }
    // A GET with a body, one asking to switch protocols, or a CORS request
    // (`Origin`: the routes add the CORS headers) is left to hyper.
    let mut authorization = None;
    let mut sec_fetch_dest = None;
    for h in req.headers.iter() {
        let name = h.name;
        if ["content-length", "transfer-encoding", "upgrade", "origin"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return None;
        }
        if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(h.value);
        }
        // The first one, as `HeaderMap::get` takes it on the axum path.
        if name.eq_ignore_ascii_case("sec-fetch-dest") && sec_fetch_dest.is_none() {
            sec_fetch_dest = Some(h.value);
        }
    }
    let target = req.path?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let params: Params = match query {
        Some(q) => serde_urlencoded::from_str(q).ok()?,
        None => Params::default(),
    };
    let which = match path {
        "/stream" => Which::First,
        "/" => {
            let action = params.action.as_deref()?;
            action_index(action, "stream")?;
            Which::Action(action)
        }
        _ => Which::Named(path.strip_prefix("/stream/")?),
    };
    let asked = Asked {
        which,
        params: &params,
        presented: Presented {
            authorization,
            token: params.token.as_deref(),
        },
        sec_fetch_dest,
    };
    decide(streams, access, max_variants, &asked).ok()
}

/// The fuzz target's checks (`fuzz/fuzz_targets/request.rs`): an arbitrary
/// request head, parsed and authorized as the direct path does it, never
/// panics; a stream it resolves to exists, with a frame interval above
/// zero; and credentials never let through what an open server would not.
#[doc(hidden)]
pub fn fuzz_request(data: &[u8]) {
    use crate::access::{Grant, Patterns};
    // Built once: building the rules per input made the fuzzer fifty times
    // slower.
    static FIXTURE: LazyLock<(Streams, Access, Access)> = LazyLock::new(|| {
        let streams = Streams::new();
        for name in ["cam", "b-2"] {
            streams.add(name).expect("valid names");
        }
        let mut guarded = Access::new(
            "fuzz",
            Grant {
                watch: Patterns::new(&["b-*"]).expect("valid pattern"),
                push: Patterns::default(),
            },
        );
        guarded
            .add_user("u", "p", Grant::everything())
            .expect("valid user");
        guarded
            .add_token("token-123", Grant::watch_only())
            .expect("valid token");
        (streams, Access::default(), guarded)
    });
    let (streams, open, guarded) = &*FIXTURE;
    // No variants (a variant's worker needs a runtime): a request for one
    // is refused as over the limit.
    let direct = |streams, access, data| direct(streams, access, 0, data);
    if let Some(direct) = direct(streams, open, data) {
        assert!(streams.get(direct.hub.name()).is_some());
        assert!(direct.min_interval.is_none_or(|i| i > Duration::ZERO));
    }
    // Whatever the guarded server lets through, the open one does too.
    if let Some(guarded) = direct(streams, guarded, data) {
        let open = direct(streams, open, data).expect("the open server lets it through");
        // Credentials do not change how the parts are laid out.
        assert_eq!(open.layout, guarded.layout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams() -> Streams {
        let streams = Streams::new();
        for name in ["cam", "yard"] {
            streams.add(name).unwrap();
        }
        streams
    }

    #[test]
    fn every_stream_url_names_its_stream() {
        let streams = streams();
        let open = Access::default();
        for (head, name) in [
            ("GET /stream HTTP/1.1\r\n\r\n", "cam"),
            ("GET /stream/yard HTTP/1.1\r\n\r\n", "yard"),
            ("GET /?action=stream HTTP/1.1\r\n\r\n", "cam"),
            ("GET /?action=stream_1 HTTP/1.1\r\n\r\n", "yard"),
        ] {
            let req = direct(&streams, &open, 8, head.as_bytes()).expect(head);
            assert_eq!(req.hub.name(), name, "{head}");
        }
    }

    #[test]
    fn the_direct_path_leaves_every_refusal_to_the_handlers() {
        let streams = streams();
        let open = Access::default();
        for head in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET /?action=snapshot HTTP/1.1\r\n\r\n",
            "GET /?action=stream_9 HTTP/1.1\r\n\r\n",
            "GET /stream/nope HTTP/1.1\r\n\r\n",
            "GET /stream?fps=0 HTTP/1.1\r\n\r\n",
            "GET /stream?advance_headers=2 HTTP/1.1\r\n\r\n",
            "POST /stream HTTP/1.1\r\n\r\n",
            "GET /stream HTTP/1.1\r\nOrigin: http://a\r\n\r\n",
        ] {
            assert!(
                direct(&streams, &open, 8, head.as_bytes()).is_none(),
                "{head}"
            );
        }
    }

    #[test]
    fn refusals_say_why_in_the_contract_order() {
        let streams = streams();
        // Nothing public, and one user: credentials are needed.
        let mut guarded = Access::new(
            "t",
            crate::access::Grant {
                watch: crate::access::Patterns::default(),
                push: crate::access::Patterns::default(),
            },
        );
        guarded
            .add_user("u", "p", crate::access::Grant::everything())
            .unwrap();
        let params = Params {
            fps: Some("0".into()),
            ..Params::default()
        };
        let asked = |which| Asked {
            which,
            params: &params,
            presented: Presented::default(),
            sec_fetch_dest: None,
        };
        // Credentials before parameters, and before telling that a name is
        // unknown.
        for which in [Which::Named("cam"), Which::Named("nope"), Which::First] {
            assert_eq!(
                decide(&streams, &guarded, 8, &asked(which)).unwrap_err(),
                Refusal::Denied(Denied::Missing)
            );
        }
        let open = Access::default();
        assert!(matches!(
            decide(&streams, &open, 8, &asked(Which::Named("cam"))).unwrap_err(),
            Refusal::BadParameter(why) if why.contains("fps=\"0\"")
        ));
        assert_eq!(
            decide(&streams, &open, 8, &asked(Which::Named("nope"))).unwrap_err(),
            Refusal::NoSuchStream("nope".into())
        );
        assert_eq!(
            decide(&streams, &open, 8, &asked(Which::Action("stream_x"))).unwrap_err(),
            Refusal::NotFound("no stream for action=stream_x\n".into())
        );
    }

    #[test]
    fn the_direct_head_names_the_multipart_boundary() {
        let head = direct_head();
        let text = std::str::from_utf8(&head).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\ncontent-type: multipart/x-mixed-replace"));
        assert!(text.contains(multipart::BOUNDARY));
        assert!(text.contains("\r\nconnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
