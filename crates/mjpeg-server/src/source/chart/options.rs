//! What a chart looks like: its options (as set by a `chart` spec's
//! `#key=value`), its colours, and the spec itself.

use std::fmt;
use std::time::Duration;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Series colours when none are given: Tableau 10, legible on light and
/// dark backgrounds alike.
pub const PALETTE: [Rgb; 10] = [
    [0x4e, 0x9b, 0xe8],
    [0xf2, 0x8e, 0x2b],
    [0x59, 0xc3, 0x6a],
    [0xe4, 0x57, 0x56],
    [0xb0, 0x7a, 0xa1],
    [0xed, 0xc9, 0x48],
    [0x76, 0xb7, 0xb2],
    [0xff, 0x9d, 0xa7],
    [0x9c, 0x75, 0x5f],
    [0xba, 0xb0, 0xac],
];

/// Light or dark background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    /// Dark grey background, light text: matches the index page.
    #[default]
    Dark,
    /// White background, dark text.
    Light,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// A line through the samples.
    #[default]
    Line,
    /// A line with the area under it lightly filled.
    Area,
}

/// What a chart looks like and how often it may be redrawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartOptions {
    /// Shown above the chart; none by default.
    pub title: Option<String>,
    /// How much time the x axis spans, ending at the newest sample.
    pub window: Duration,
    /// Fixed bottom of the y axis; fitted to the data when `None`.
    pub y_min: Option<f64>,
    /// Fixed top of the y axis; fitted to the data when `None`.
    pub y_max: Option<f64>,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Light or dark.
    pub theme: Theme,
    /// Line or area.
    pub style: Style,
    /// Series colours in the order series first appear; [`PALETTE`] when
    /// empty. Reused in a cycle when there are more series than colours.
    pub colors: Vec<Rgb>,
    /// Most frames drawn per second, however fast samples arrive.
    pub max_fps: f64,
}

impl Default for ChartOptions {
    /// 800×450, the last 60 s, y fitted to the data, dark, lines, at most
    /// 10 frames a second.
    fn default() -> Self {
        ChartOptions {
            title: None,
            window: Duration::from_secs(60),
            y_min: None,
            y_max: None,
            width: 800,
            height: 450,
            theme: Theme::Dark,
            style: Style::Line,
            colors: Vec::new(),
            max_fps: 10.0,
        }
    }
}

impl ChartOptions {
    /// Applies one `#key=value` option of a `chart` spec: `title=TEXT`,
    /// `window=SECONDS`, `ymin=N`, `ymax=N`, `size=WxH`, `theme=dark|light`,
    /// `style=line|area`, `colors=RRGGBB,RRGGBB,…`, `fps=N`. The error says
    /// what is wrong in words meant for the command line.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        let Some(v) = value else {
            return Err(format!("option {key:?} needs a value ({key}=…)"));
        };
        let number = |what: &str| -> Result<f64, String> {
            match v.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err(format!("{key}={v}: not {what}")),
            }
        };
        match key {
            "title" => self.title = (!v.is_empty()).then(|| v.to_string()),
            "window" => {
                let s = number("a number of seconds")?;
                if !(0.1..=7.0 * 86400.0).contains(&s) {
                    return Err(format!("{key}={v}: use 0.1 to 604800 seconds"));
                }
                self.window = Duration::from_secs_f64(s);
            }
            "ymin" => self.y_min = Some(number("a number")?),
            "ymax" => self.y_max = Some(number("a number")?),
            "size" => {
                let parsed = v
                    .split_once(['x', 'X'])
                    .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
                match parsed {
                    Some((w, h)) if (160..=3840).contains(&w) && (90..=2160).contains(&h) => {
                        self.width = w;
                        self.height = h;
                    }
                    _ => {
                        return Err(format!(
                            "{key}={v}: use WIDTHxHEIGHT, 160x90 to 3840x2160, e.g. 800x450"
                        ))
                    }
                }
            }
            "theme" => {
                self.theme = match v {
                    "dark" => Theme::Dark,
                    "light" => Theme::Light,
                    _ => return Err(format!("{key}={v}: use dark or light")),
                }
            }
            "style" => {
                self.style = match v {
                    "line" => Style::Line,
                    "area" => Style::Area,
                    _ => return Err(format!("{key}={v}: use line or area")),
                }
            }
            "colors" | "colours" => {
                self.colors = v
                    .split(',')
                    .map(|c| parse_color(c.trim()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        format!("{key}={v}: use hex colours separated by commas, e.g. ff0000,00aa00")
                    })?;
            }
            "fps" => {
                let fps = number("a number of frames per second")?;
                if !(0.1..=120.0).contains(&fps) {
                    return Err(format!("{key}={v}: use 0.1 to 120 frames per second"));
                }
                self.max_fps = fps;
            }
            _ => {
                return Err(format!(
                    "unknown option {key:?} for chart: use title=, window=, ymin=, ymax=, size=, theme=, style=, colors=, fps="
                ))
            }
        }
        Ok(())
    }

    /// Checks options that are fine alone but not together.
    pub fn validate(&self) -> Result<(), String> {
        if let (Some(lo), Some(hi)) = (self.y_min, self.y_max) {
            if lo >= hi {
                return Err(format!("ymin={lo} must be below ymax={hi}"));
            }
        }
        Ok(())
    }

    pub(super) fn color(&self, slot: usize) -> Rgb {
        if self.colors.is_empty() {
            PALETTE[slot % PALETTE.len()]
        } else {
            self.colors[slot % self.colors.len()]
        }
    }
}

/// `RRGGBB` (or `RGB`) hex, with or without a leading `#`.
fn parse_color(s: &str) -> Option<Rgb> {
    let s = s.strip_prefix('#').unwrap_or(s);
    let hex = |i: usize, n: usize| u8::from_str_radix(s.get(i..i + n)?, 16).ok();
    match s.len() {
        6 => Some([hex(0, 2)?, hex(2, 2)?, hex(4, 2)?]),
        3 => Some([hex(0, 1)? * 17, hex(1, 1)? * 17, hex(2, 1)? * 17]),
        _ => None,
    }
}

/// What `chart` or `chart:stdin` on the command line asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChartSpec {
    /// Also read samples from standard input (`chart:stdin`). HTTP and the
    /// Rust API always work.
    pub stdin: bool,
    /// Looks and pace.
    pub options: ChartOptions,
}

impl fmt::Display for ChartSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.stdin { "chart:stdin" } else { "chart" })
    }
}
