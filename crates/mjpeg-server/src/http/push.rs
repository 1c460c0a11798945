//! `PUT`/`POST /stream/{name}`: frames pushed by other programs, read with
//! the frame reader every source shares ([`crate::ingest`]).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::time::Duration;

use super::{no_such_stream, no_such_stream_text, not_found_text, AppState, Creds, HttpOptions};
use crate::access::Action;
use crate::convert;
use crate::created::CreateError;
use crate::frame::FrameError;
use crate::hub::{Hub, NameError, PublishError, SourceState};
use crate::ingest::split::Problem;
use crate::ingest::{Dropped, Event, FrameReader, ReadError};
use crate::multipart::reader::MultipartError;
use crate::names::option_names;
use crate::refusals::Reason;

/// `PUT`/`POST /stream/{name}`: other programs publish frames.
///
/// The body is one image of any format (`curl -T frame.png …`), JPEGs back
/// to back (`ffmpeg … -f mjpeg`), or a `multipart/x-mixed-replace` stream
/// (`ffmpeg … -f mpjpeg`). Frames are published as soon as each is complete,
/// so a long-lived upload is a live source. The reply comes when the body
/// ends: `204` if every frame was accepted, `400` with the reason for a
/// corrupt one, `413` for one over the size limit, `415` for a body that is
/// no image.
pub(super) async fn push(
    State(st): State<AppState>,
    Path(name): Path<String>,
    creds: Creds,
    headers: HeaderMap,
    body: Body,
) -> Response {
    push_to(&st, &name, creds, headers, body).await
}

/// A push to the stream `name`: [`push`], and what [`super::Mount::push`]
/// serves at a route of its own.
pub(super) async fn push_to(
    st: &AppState,
    name: &str,
    creds: Creds,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Checked by name before the stream is looked up or created, so that a
    // refused client learns nothing about which streams exist.
    if let Err(refused) = st.allow(&creds, Action::Push, name) {
        return refused;
    }
    // A stream that a push created is marked as being pushed to before it
    // is looked up, so that it cannot be forgotten in between.
    let pushing = st.created.push_begins(name);
    let (hub, _pushing) = match st.streams.get(name) {
        Some(hub) if hub.accepts_push() => (hub, pushing),
        Some(_) => {
            return (
                StatusCode::CONFLICT,
                format!("stream {name:?} has its own source and does not accept pushed frames; declare a stream with NAME=push\n"),
            )
                .into_response()
        }
        None if st.opts.allow_create => match st.created.create(&st.streams, name) {
            Ok((hub, pushing)) => {
                tracing::info!(stream = name, "created by a push");
                (hub, Some(pushing))
            }
            // Created by a concurrent push a moment ago.
            Err(CreateError::Name(NameError::Duplicate(_))) => {
                let pushing = st.created.push_begins(name);
                match st.streams.get(name) {
                    Some(hub) if hub.accepts_push() => (hub, pushing),
                    _ => return no_such_stream(st, &creds, name),
                }
            }
            Err(e @ CreateError::Full(_)) => {
                st.streams.refusals().note(
                    Reason::CreatedStreams,
                    creds.peer,
                    &format_args!("a push to {name:?}: {e}"),
                );
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
            }
            Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        },
        None => return no_such_push_target(st, &creds, name),
    };
    // `curl -d @frame.jpg` sends a form: it strips every CR and LF from
    // the file, so what arrives is a broken image whatever else it looks
    // like. Refused before a byte is read, with the flag that sends the
    // file as it is.
    if is_form(&headers) {
        let why = Refusal::Form;
        hub.reject(&why);
        tracing::warn!(stream = hub.name(), "pushed frame refused: {why}");
        return (why.status(), format!("{why}\n")).into_response();
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());

    let mut tally = Tally::default();
    let result = match FrameReader::upload(content_type, declared, st.opts.max_frame_bytes) {
        Ok(reader) => read_frames(&hub, body, reader, &st.opts, &mut tally).await,
        Err(e) => Err(Refusal::Read(e)),
    };
    if let Err(refusal) = result {
        tally.refuse(&hub, refusal);
    }
    tally.reply(&hub, st, &creds)
}

/// `404` for a push to a stream that does not exist: as for a viewer, plus
/// how to let pushes create streams when that is off (the usual reason a
/// first push fails).
fn no_such_push_target(st: &AppState, creds: &Creds, name: &str) -> Response {
    let mut text = no_such_stream_text(st, creds, name);
    if !st.opts.allow_create {
        let names = option_names();
        text.push_str(&format!(
            "to let a push create the stream, {}, or declare it with {}\n",
            names.allow_create, names.push_stream
        ));
    }
    not_found_text(text)
}

/// Whether the body is declared a form (`application/x-www-form-urlencoded`,
/// what `curl -d` sends).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Why pushed bytes were not published.
#[derive(Debug)]
enum Refusal {
    Frame(PublishError),
    Split(Problem),
    Read(ReadError),
    Empty,
    Body(String),
    Idle(Duration),
    /// The body was sent as a form (`curl -d`), which mangles images.
    Form,
}

impl Refusal {
    /// The reason it is counted under with the server's refusals (those of
    /// a limit the operator sets), if it is one.
    fn limit(&self) -> Option<Reason> {
        match self {
            Refusal::Read(ReadError::TooLarge { .. }) => Some(Reason::FrameTooLarge),
            Refusal::Frame(PublishError::Frame(FrameError::TooManyPixels { .. })) => {
                Some(Reason::TooManyPixels)
            }
            Refusal::Idle(_) => Some(Reason::PushIdle),
            _ => None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Refusal::Frame(PublishError::Frame(FrameError::NotImage(_)))
            | Refusal::Frame(PublishError::Frame(FrameError::NotJpeg(_)))
            | Refusal::Split(Problem::Garbage { .. })
            | Refusal::Form => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Read(ReadError::TooLarge { .. })
            | Refusal::Frame(PublishError::Frame(FrameError::TooManyPixels { .. })) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Refusal::Idle(_) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Frame(e) => write!(f, "{e}"),
            Refusal::Split(Problem::Truncated { bytes }) => write!(
                f,
                "truncated JPEG: the body ended {bytes} bytes into a frame, before its end-of-image marker"
            ),
            Refusal::Split(Problem::Garbage { .. }) => {
                write!(f, "not an image: data after the last JPEG is not one")
            }
            Refusal::Split(e) => write!(f, "{e}"),
            Refusal::Read(e) => write!(f, "{e}"),
            Refusal::Empty => write!(f, "empty body: nothing to publish"),
            Refusal::Body(e) => write!(f, "reading the body failed: {e}"),
            Refusal::Form => write!(
                f,
                "the body is a form (Content-Type application/x-www-form-urlencoded), not an image: \
                 curl -d strips the file's newlines and breaks it; send it as it is with \
                 curl --data-binary @FILE or curl -T FILE"
            ),
            Refusal::Idle(idle) => write!(
                f,
                "the body sent nothing for {} s (see {})",
                idle.as_secs_f64(),
                option_names().push_idle_timeout
            ),
        }
    }
}

/// What became of the frames of one push.
#[derive(Default)]
struct Tally {
    accepted: u64,
    refused: u64,
    last: Option<Refusal>,
}

impl Tally {
    /// Counts a refusal on the hub (for `/status`) and in this push.
    fn refuse(&mut self, hub: &Hub, why: Refusal) {
        hub.reject(&why);
        self.note(hub, why);
    }

    /// Counts a refusal in this push only (the hub counted it already). A
    /// limit's refusal is logged with the server's refusals when the push
    /// is answered; any other now.
    fn note(&mut self, hub: &Hub, why: Refusal) {
        if why.limit().is_none() {
            tracing::warn!(stream = hub.name(), "pushed frame refused: {why}");
        }
        self.refused += 1;
        self.last = Some(why);
    }

    async fn publish(&mut self, hub: &Hub, data: Bytes, opts: &HttpOptions) {
        let frame = match convert::to_frame(data, &opts.convert).await {
            Ok(frame) => frame,
            Err(e) => return self.refuse(hub, Refusal::Frame(e.into())),
        };
        match hub.publish(frame) {
            Ok(_) => {
                self.accepted += 1;
                hub.set_source_state(SourceState::Running);
            }
            Err(e) => self.note(hub, Refusal::Frame(e)),
        }
    }

    /// The answer to the push; one whose last refusal was a limit's is
    /// counted with the server's refusals.
    fn reply(self, hub: &Hub, st: &AppState, creds: &Creds) -> Response {
        if let Some(reason) = self.last.as_ref().and_then(Refusal::limit) {
            let why = self
                .last
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            st.streams.refusals().note(
                reason,
                creds.peer,
                &format_args!("a push to {:?}: {why}", hub.name()),
            );
        }
        match self.last {
            None if self.accepted > 0 => StatusCode::NO_CONTENT.into_response(),
            None => {
                let why = Refusal::Empty;
                hub.reject(&why);
                (why.status(), format!("{why}\n")).into_response()
            }
            Some(why) if self.accepted == 0 && self.refused == 1 => {
                (why.status(), format!("{why}\n")).into_response()
            }
            Some(why) => (
                why.status(),
                format!(
                    "accepted {} frames, refused {}; the last refused: {why}\n",
                    self.accepted, self.refused
                ),
            )
                .into_response(),
        }
    }
}

/// Publishes the frames of `body` as `reader` finds them, whatever its
/// framing ([`FrameReader`]): one image when the body ends; JPEGs back to
/// back and multipart parts as each one completes.
///
/// A corrupt JPEG in a stream of them ends the push with the reason (a
/// sender of raw JPEGs has no way to resync that a multipart sender has);
/// a refused part of a multipart stream is counted and the push goes on.
async fn read_frames(
    hub: &Hub,
    mut body: Body,
    mut reader: FrameReader,
    opts: &HttpOptions,
    tally: &mut Tally,
) -> Result<(), Refusal> {
    let mut ended = false;
    loop {
        while let Some(event) = reader.next_event() {
            match event {
                Event::Frame(data, _) => tally.publish(hub, data, opts).await,
                Event::Dropped(Dropped::Split(Problem::TooLarge { limit })) => {
                    return Err(Refusal::Read(ReadError::TooLarge { limit }))
                }
                Event::Dropped(Dropped::Split(problem)) => return Err(Refusal::Split(problem)),
                Event::Dropped(Dropped::Part(MultipartError::TooLarge { limit })) => {
                    tally.refuse(hub, Refusal::Read(ReadError::TooLarge { limit }))
                }
                Event::Dropped(Dropped::Part(e)) => tally.refuse(hub, Refusal::Body(e.to_string())),
            }
        }
        if ended {
            return Ok(());
        }
        match next_chunk(&mut body, opts.push_idle_timeout).await? {
            Some(data) => reader.push(&data).map_err(Refusal::Read)?,
            // What is left (one image, a JPEG cut short) comes out now.
            None => {
                reader.finish();
                ended = true;
            }
        }
    }
}

/// The next bytes of a push body; `None` at its end. A sender that sends
/// nothing for `idle` is refused, so that one that died without closing
/// does not hold its connection (and the stream's "pushing" state) forever.
async fn next_chunk(body: &mut Body, idle: Option<Duration>) -> Result<Option<Bytes>, Refusal> {
    loop {
        let frame = match idle {
            Some(idle) => tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| Refusal::Idle(idle))?,
            None => body.frame().await,
        };
        let Some(frame) = frame else {
            return Ok(None);
        };
        let frame = frame.map_err(|e| Refusal::Body(e.to_string()))?;
        // Trailers carry no image data.
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
}
