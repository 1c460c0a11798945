//! Samples over HTTP: a chart is its stream's data input, which
//! `POST /stream/{name}/data` feeds.

use std::any::Any;

use super::{Chart, SampleError};
use crate::hub::DataInput;

impl DataInput for Chart {
    /// JSON (by `Content-Type`, or a body starting with `{` or `[`) or
    /// text lines; an error names the bad field.
    fn take(&self, content_type: Option<&str>, body: &[u8]) -> Result<(), String> {
        let is_json = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("json"))
            || matches!(
                body.iter().find(|b| !b.is_ascii_whitespace()),
                Some(b'{' | b'[')
            );
        let result = if is_json {
            self.push_json(body)
        } else {
            match std::str::from_utf8(body) {
                Ok(text) => self.push_text(text),
                Err(_) => Err(SampleError::Syntax {
                    token: "(bytes that are not UTF-8)".into(),
                }),
            }
        };
        result.map(|_| ()).map_err(|e| e.to_string())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
