//! Samples over HTTP: the handler of `POST /stream/{name}/data`.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Chart, SampleError};
use crate::hub::Hub;

/// `POST /stream/{name}/data` for `hub`: JSON (by `Content-Type`, or a body
/// starting with `{` or `[`) or text lines. `204` when taken, `400` naming
/// the bad field, `409` when the stream is not a chart.
pub fn post_data(hub: &Hub, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(chart) = Chart::of(hub) else {
        return (
            StatusCode::CONFLICT,
            format!(
                "stream {:?} is not a chart; declare it with {} to post numbers to it\n",
                hub.name(),
                crate::names::option_names()
                    .chart_stream
                    .replace("NAME", hub.name())
            ),
        )
            .into_response();
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"))
        || matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        );
    let result = if is_json {
        chart.push_json(body)
    } else {
        match std::str::from_utf8(body) {
            Ok(text) => chart.push_text(text),
            Err(_) => Err(SampleError::Syntax {
                token: "(bytes that are not UTF-8)".into(),
            }),
        }
    };
    match result {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
