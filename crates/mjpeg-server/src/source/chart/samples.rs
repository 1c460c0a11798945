//! Samples as they arrive: text lines and JSON parsed and checked, and
//! the error that names the field at fault.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{MAX_AHEAD, MAX_NAME, MAX_SERIES};

/// A `t` this large is not Unix seconds but most likely milliseconds
/// (it would be the year 5138).
const T_LIMIT: f64 = 1e11;

/// Why a sample was refused. The message names the field at fault, and is
/// what an HTTP client gets back with `400`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    /// A value that is not a finite number.
    #[error("field {field:?}: {value} is not a number")]
    NotANumber {
        /// The series name (or `t`).
        field: String,
        /// The value as sent, shortened.
        value: String,
    },
    /// A series name that cannot be shown.
    #[error("field {field:?}: a series name must be 1 to {MAX_NAME} characters, with no control characters or spaces, and not \"t\"")]
    BadName {
        /// The name as sent, shortened.
        field: String,
    },
    /// A timestamp that is not Unix seconds.
    #[error("field \"t\": {value} is not a time in Unix seconds{hint}")]
    BadTime {
        /// The value as sent.
        value: String,
        /// A guess at what went wrong, or empty.
        hint: &'static str,
    },
    /// A time further ahead of the server's clock than [`MAX_AHEAD`].
    #[error(
        "field \"t\": {value} is {ahead:.0} s ahead of the server's clock; a sample may be \
         at most {} s ahead (is the sender's clock right?)",
        MAX_AHEAD.as_secs()
    )]
    TooFarAhead {
        /// The value as sent.
        value: String,
        /// How far ahead it is, in seconds.
        ahead: f64,
    },
    /// More series than a chart holds.
    #[error(
        "field {field:?}: a chart shows at most {MAX_SERIES} series, and this would be one more"
    )]
    TooManySeries {
        /// The first name that did not fit.
        field: String,
    },
    /// A sample with no values.
    #[error("no values: send e.g. load=0.42 or {{\"load\": 0.42}}")]
    Empty,
    /// Text that is not `name=value` pairs.
    #[error("{token:?} is not name=value, e.g. load=0.42")]
    Syntax {
        /// The offending word, shortened.
        token: String,
    },
    /// A JSON body that does not parse or is not an object.
    #[error("bad JSON: {0}")]
    Json(String),
    /// One line of a text body, or one element of a JSON array, was bad;
    /// nothing of the body was taken.
    #[error("{place} {index}: {error}")]
    At {
        /// `line` or `item`.
        place: &'static str,
        /// 1-based.
        index: usize,
        /// What was wrong there.
        error: Box<SampleError>,
    },
}

/// A shortened copy of `s` for error messages: a client must not be able to
/// make the server echo megabytes.
pub(super) fn short(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One sample as parsed: a time and named values, checked.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    pub(super) t: Option<f64>,
    pub(super) values: Vec<(String, f64)>,
}

pub(super) fn check_name(name: &str) -> Result<(), SampleError> {
    let ok = !name.is_empty()
        && name != "t"
        && name.chars().count() <= MAX_NAME
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(SampleError::BadName { field: short(name) })
    }
}

fn check_time(t: f64, shown: &dyn fmt::Display) -> Result<f64, SampleError> {
    if t.is_finite() && (0.0..T_LIMIT).contains(&t) {
        Ok(t)
    } else {
        Err(SampleError::BadTime {
            value: short(&shown.to_string()),
            hint: if t.is_finite() && t >= T_LIMIT {
                " (milliseconds? divide by 1000)"
            } else {
                ""
            },
        })
    }
}

pub(super) fn unix_seconds(t: SystemTime) -> Result<f64, SampleError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SampleError::BadTime {
            value: "a time before 1970".into(),
            hint: "",
        })?
        .as_secs_f64();
    check_time(secs, &secs)
}

/// Parses one text line: `name=value` pairs separated by spaces, tabs or
/// commas, `t=UNIX_SECONDS` optional. `None` for a blank line or a `#`
/// comment.
pub(super) fn parse_line(line: &str) -> Result<Option<Sample>, SampleError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut sample = Sample {
        t: None,
        values: Vec::new(),
    };
    for token in line.split(|c: char| c.is_whitespace() || c == ',') {
        if token.is_empty() {
            continue;
        }
        let Some((name, raw)) = token.split_once('=') else {
            return Err(SampleError::Syntax {
                token: short(token),
            });
        };
        let parsed = raw.parse::<f64>().ok().filter(|v| v.is_finite());
        if name == "t" {
            let t = parsed.ok_or_else(|| SampleError::BadTime {
                value: format!("{:?}", short(raw)),
                hint: "",
            })?;
            sample.t = Some(check_time(t, &raw)?);
            continue;
        }
        check_name(name)?;
        let value = parsed.ok_or_else(|| SampleError::NotANumber {
            field: name.to_string(),
            value: format!("{:?}", short(raw)),
        })?;
        sample.values.push((name.to_string(), value));
    }
    if sample.values.is_empty() {
        return Err(SampleError::Empty);
    }
    Ok(Some(sample))
}

/// Parses a text body of lines; all or nothing.
pub(super) fn parse_lines(text: &str) -> Result<Vec<Sample>, SampleError> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(s)) => samples.push(s),
            Ok(None) => {}
            Err(e) => {
                return Err(SampleError::At {
                    place: "line",
                    index: i + 1,
                    error: Box::new(e),
                })
            }
        }
    }
    if samples.is_empty() {
        return Err(SampleError::Empty);
    }
    Ok(samples)
}

/// Parses a JSON body: an object of numbers (and `t`), or an array of them.
pub(super) fn parse_json(body: &[u8]) -> Result<Vec<Sample>, SampleError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| SampleError::Json(e.to_string()))?;
    match value {
        serde_json::Value::Object(map) => Ok(vec![json_sample(map)?]),
        serde_json::Value::Array(items) if !items.is_empty() => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let at = |error| SampleError::At {
                    place: "item",
                    index: i + 1,
                    error: Box::new(error),
                };
                match item {
                    serde_json::Value::Object(map) => json_sample(map).map_err(at),
                    _ => Err(at(SampleError::Json("expected an object".into()))),
                }
            })
            .collect(),
        _ => Err(SampleError::Json(
            "expected an object such as {\"load\": 0.42}, or an array of them".into(),
        )),
    }
}

fn json_sample(map: serde_json::Map<String, serde_json::Value>) -> Result<Sample, SampleError> {
    let mut sample = Sample {
        t: None,
        values: Vec::with_capacity(map.len()),
    };
    for (name, value) in map {
        let number = value.as_f64().filter(|v| v.is_finite());
        if name == "t" {
            let t = number.ok_or_else(|| SampleError::BadTime {
                value: short(&value.to_string()),
                hint: "",
            })?;
            sample.t = Some(check_time(t, &t)?);
            continue;
        }
        check_name(&name)?;
        let v = number.ok_or_else(|| SampleError::NotANumber {
            field: name.clone(),
            value: short(&value.to_string()),
        })?;
        sample.values.push((name, v));
    }
    if sample.values.is_empty() {
        return Err(SampleError::Empty);
    }
    Ok(sample)
}
