//! Overlay text: a line drawn on every frame of a stream (`#overlay=TEXT`),
//! bottom-left on a darkened band so that it reads on light and dark
//! pictures alike, sized to the frame.
//!
//! The text may hold the frame's time, as `%Y-%m-%d %H:%M:%S` (also `%z`,
//! the offset from UTC, and `%%`), in UTC or the server's local time, and
//! the stream's name as `{stream}`. The time is the source frame's, not
//! the moment it was drawn.

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::canvas::{Canvas, Scaled};

/// Longest overlay text, in characters, before its fields are filled in.
pub const MAX_OVERLAY: usize = 120;

/// Which clock the overlay's time fields read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Clock {
    /// Coordinated universal time (the default: a server may not know its
    /// viewers' zone).
    #[default]
    Utc,
    /// The server's local time (its `TZ`, `/etc/localtime`).
    Local,
}

/// What to draw on a stream's frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Overlay {
    text: String,
    clock: Clock,
}

impl Overlay {
    /// An overlay of `text` (printable ASCII, which the built-in font
    /// draws), or why not.
    pub fn new(text: &str, clock: Clock) -> Result<Overlay, String> {
        if text.is_empty() {
            return Err("overlay: the text is empty".into());
        }
        if text.chars().count() > MAX_OVERLAY {
            return Err(format!(
                "overlay: the text is longer than {MAX_OVERLAY} characters"
            ));
        }
        if let Some(c) = text.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(format!(
                "overlay: {c:?} cannot be drawn; the overlay font has printable ASCII only"
            ));
        }
        Ok(Overlay {
            text: text.to_string(),
            clock,
        })
    }

    /// The text as drawn for `stream` at `at`.
    pub fn render(&self, stream: &str, at: SystemTime) -> String {
        let t = civil(at, self.clock);
        let mut out = String::with_capacity(self.text.len() + 16);
        let mut chars = self.text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('Y') => write!(out, "{:04}", t.year).unwrap_or(()),
                    Some('m') => write!(out, "{:02}", t.month).unwrap_or(()),
                    Some('d') => write!(out, "{:02}", t.day).unwrap_or(()),
                    Some('H') => write!(out, "{:02}", t.hour).unwrap_or(()),
                    Some('M') => write!(out, "{:02}", t.minute).unwrap_or(()),
                    Some('S') => write!(out, "{:02}", t.second).unwrap_or(()),
                    Some('z') => {
                        let sign = if t.offset_s < 0 { '-' } else { '+' };
                        let off = t.offset_s.unsigned_abs();
                        write!(out, "{sign}{:02}{:02}", off / 3600, off / 60 % 60).unwrap_or(())
                    }
                    Some('%') => out.push('%'),
                    Some(other) => {
                        out.push('%');
                        out.push(other);
                    }
                    None => out.push('%'),
                },
                '{' if starts_with(&mut chars, "stream}") => out.push_str(stream),
                c => out.push(c),
            }
        }
        out
    }

    /// Draws `text` bottom-left on `width`×`height` RGB pixels.
    pub fn draw(rgb: &mut [u8], width: u32, height: u32, text: &str) {
        // The bitmap font at a whole multiple, about a twentieth of the
        // frame's height: legible on a wall display and on a thumbnail.
        let (font, scale): (&MonoFont<'_>, i32) = if height < 200 {
            (&FONT_6X10, 1)
        } else {
            (&FONT_10X20, (height / 360).clamp(1, 8) as i32)
        };
        let glyph_w = font.character_size.width as i32 * scale;
        let glyph_h = font.character_size.height as i32 * scale;
        let pad = 2 * scale;
        let chars = text.chars().count() as i32;
        let band_w = (chars * glyph_w + 2 * pad) as u32;
        let band_h = (glyph_h + 2 * pad) as u32;
        let top = height as i32 - band_h as i32;
        let mut canvas = Canvas { rgb, width, height };
        canvas.darken(0, top, band_w, band_h, 96);
        let style = MonoTextStyle::new(font, Rgb888::new(245, 245, 245));
        let origin = Point::new(pad / scale, (top + pad) / scale);
        let _ = Text::with_baseline(text, origin, style, Baseline::Top).draw(&mut Scaled {
            canvas: &mut canvas,
            scale,
        });
    }
}

/// Takes the stream options `#overlay=TEXT` and `#overlay-time=utc|local`
/// out of a SOURCE as written (`dir:./img#overlay=%H:%M:%S`): the source
/// without them, and the overlay they describe. Any source may carry them,
/// `exec:` too (a shell comment at the end of a command does nothing);
/// the text cannot hold `#`.
pub fn split_overlay(source: &str) -> Result<(String, Option<Overlay>), String> {
    let mut text = None;
    let mut clock = None;
    let mut kept = Vec::new();
    for (i, piece) in source.split('#').enumerate() {
        match piece.split_once('=') {
            Some(("overlay", t)) if i > 0 => text = Some(t),
            Some(("overlay-time", c)) if i > 0 => {
                clock = Some(match c {
                    "utc" => Clock::Utc,
                    "local" => Clock::Local,
                    other => {
                        return Err(format!("overlay-time={other}: use utc or local"));
                    }
                })
            }
            _ => kept.push(piece),
        }
    }
    let overlay = match (text, clock) {
        (Some(t), clock) => Some(Overlay::new(t, clock.unwrap_or_default())?),
        (None, Some(_)) => return Err("overlay-time without overlay=TEXT".into()),
        (None, None) => None,
    };
    Ok((kept.join("#"), overlay))
}

/// Consumes `want` from `chars` if it comes next.
fn starts_with(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, want: &str) -> bool {
    let ahead: String = chars.clone().take(want.len()).collect();
    if ahead == want {
        for _ in 0..want.len() {
            chars.next();
        }
        true
    } else {
        false
    }
}

/// A time broken into fields.
#[derive(Debug, PartialEq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Seconds east of UTC.
    offset_s: i64,
}

fn civil(at: SystemTime, clock: Clock) -> Civil {
    let secs = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let offset_s = match clock {
        Clock::Utc => 0,
        Clock::Local => local_offset(secs),
    };
    let local = secs + offset_s;
    let (days, rem) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        offset_s,
    }
}

/// The local zone's offset from UTC at `secs`, from the C library (which
/// reads `TZ` and the zone database); 0 where it has none.
#[cfg(unix)]
fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(not(unix))]
fn local_offset(_secs: i64) -> i64 {
    0
}

/// Year, month (1–12) and day (1–31) of a count of days since 1970-01-01
/// in the proleptic Gregorian calendar (Howard Hinnant's algorithm; std has
/// no calendar and this is all the overlay needs of one).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fields_are_filled_in() {
        let at = UNIX_EPOCH + Duration::from_secs(1_764_547_199); // 2025-11-30 23:59:59 UTC
        let o = Overlay::new("{stream} %Y-%m-%d %H:%M:%S%z 100%% %q", Clock::Utc).unwrap();
        assert_eq!(o.render("cam", at), "cam 2025-11-30 23:59:59+0000 100% %q");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        let o = Overlay::new("{nope}", Clock::Utc).unwrap();
        assert_eq!(o.render("cam", at), "{nope}");
    }

    #[test]
    fn overlay_options_come_off_any_source() {
        let (rest, o) =
            split_overlay("dir:./img#overlay=%H:%M {stream}#overlay-time=local").unwrap();
        assert_eq!(rest, "dir:./img");
        assert_eq!(
            o,
            Some(Overlay::new("%H:%M {stream}", Clock::Local).unwrap())
        );
        let (rest, o) = split_overlay("relay:http://cam/video#always#overlay=x").unwrap();
        assert_eq!(
            (rest.as_str(), o.is_some()),
            ("relay:http://cam/video#always", true)
        );
        assert_eq!(split_overlay("demo").unwrap(), ("demo".to_string(), None));
        assert!(split_overlay("demo#overlay-time=mars#overlay=x")
            .unwrap_err()
            .contains("utc or local"));
        assert!(split_overlay("demo#overlay-time=utc")
            .unwrap_err()
            .contains("without"));
        assert!(split_overlay("demo#overlay=")
            .unwrap_err()
            .contains("empty"));
    }

    #[test]
    fn bad_text_is_refused_with_the_reason() {
        assert!(Overlay::new("", Clock::Utc).unwrap_err().contains("empty"));
        assert!(Overlay::new("é", Clock::Utc).unwrap_err().contains("ASCII"));
        assert!(Overlay::new(&"x".repeat(200), Clock::Utc)
            .unwrap_err()
            .contains("longer"));
    }

    #[test]
    fn text_is_drawn_bottom_left_and_nowhere_else() {
        let (w, h) = (640u32, 360u32);
        let grey = vec![128u8; (w * h * 3) as usize];
        let mut drawn = grey.clone();
        Overlay::draw(&mut drawn, w, h, "12:34:56");
        let changed = |x0: u32, y0: u32, x1: u32, y1: u32| {
            (y0..y1).any(|y| {
                (x0..x1).any(|x| {
                    let i = ((y * w + x) * 3) as usize;
                    drawn[i..i + 3] != grey[i..i + 3]
                })
            })
        };
        assert!(changed(0, h - 30, 120, h), "nothing drawn bottom-left");
        assert!(!changed(0, 0, w, h - 40), "drawn above the band");
        assert!(!changed(200, 0, w, h), "drawn right of the text");
        // White text on the darkened band.
        let bright = drawn.chunks(3).filter(|p| p[0] > 200).count();
        let dark = drawn.chunks(3).filter(|p| p[0] < 60).count();
        assert!(
            bright > 50 && dark > 500,
            "{bright} bright, {dark} dark pixels"
        );
    }
}
