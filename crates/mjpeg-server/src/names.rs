//! How messages name the options a user can change.
//!
//! A refusal that a user can lift says which option lifts it: "over the
//! frame size limit of 1048576 bytes (`max_frame` of SourceOptions)". The
//! library speaks of its own API by default; a program that offers the
//! options under other names (a command line's flags, a Python module's
//! keyword arguments) says so once, at start, with [`set_option_names`],
//! and every message then uses its names: the text is the program's, not
//! the library's.

use std::sync::OnceLock;

/// The names of the options that messages mention; see the
/// [module documentation](crate::set_option_names).
#[derive(Debug, Clone)]
pub struct OptionNames {
    /// The largest frame ([`SourceOptions::max_frame`](crate::source::SourceOptions::max_frame),
    /// [`HttpOptions::max_frame_bytes`](crate::http::HttpOptions::max_frame_bytes)).
    pub max_frame: &'static str,
    /// The most pixels an image may declare
    /// ([`ConvertOptions::max_pixels`](crate::convert::ConvertOptions::max_pixels)).
    pub max_pixels: &'static str,
    /// How long a push may send nothing
    /// ([`HttpOptions::push_idle_timeout`](crate::http::HttpOptions::push_idle_timeout)).
    pub push_idle_timeout: &'static str,
    /// What lets a push create a stream, as an instruction
    /// ([`HttpOptions::allow_create`](crate::http::HttpOptions::allow_create)).
    pub allow_create: &'static str,
    /// How to declare a stream `NAME` that takes pushes.
    pub push_stream: &'static str,
    /// How to declare a stream `NAME` that is a chart.
    pub chart_stream: &'static str,
    /// What picks the address to listen on.
    pub listen: &'static str,
    /// The most variants a stream may have at a time
    /// ([`HttpOptions::max_variants`](crate::http::HttpOptions::max_variants)).
    pub max_variants: &'static str,
    /// What lets pages of another origin (`ORIGIN`) use the server's
    /// WebSocket ([`HttpOptions::allow_origins`](crate::http::HttpOptions::allow_origins)).
    pub allow_origin: &'static str,
}

impl OptionNames {
    /// The library's own names: its options structs and methods.
    pub const API: OptionNames = OptionNames {
        max_frame: "max_frame of SourceOptions, max_frame_bytes of HttpOptions",
        max_pixels: "max_pixels of ConvertOptions",
        push_idle_timeout: "push_idle_timeout of HttpOptions",
        allow_create: "set allow_create of HttpOptions",
        push_stream: "a hub that accepts pushes (Hub::set_accepts_push) named NAME",
        chart_stream: "SourceSpec::Chart for NAME",
        listen: "another address",
        max_variants: "max_variants of HttpOptions",
        allow_origin: "ORIGIN in allow_origins of HttpOptions",
    };
}

static NAMES: OnceLock<OptionNames> = OnceLock::new();

/// Makes every message name the options as `names` does, for the rest of
/// the process. Only the first call counts (a process has one set of
/// names); it returns whether this one did.
pub fn set_option_names(names: OptionNames) -> bool {
    NAMES.set(names).is_ok()
}

/// The names messages use now.
pub(crate) fn option_names() -> &'static OptionNames {
    NAMES.get().unwrap_or(&OptionNames::API)
}
