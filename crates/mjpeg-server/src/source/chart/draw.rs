//! Drawing a frame, and encoding it as a JPEG.
//!
//! plotters fills the background and draws the grid, the axes, the areas
//! under series and the legend swatches into the RGB buffer. Series lines
//! and text are drawn afterwards straight into the same buffer
//! ([`super::canvas`]): lines antialiased with round joins (plotters joins
//! thick lines with unbounded miters, which shoot spikes across the chart
//! wherever noisy data turns sharply, and does not antialias them), text
//! with ab_glyph (plotters' own ab_glyph text drops each glyph's side
//! bearing, which spaces letters unevenly: "cp u"). The ticks are chosen
//! here too, so that labels and grid lines agree.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{text_width, Align, Canvas, Mask};
use super::model::Snapshot;
use super::options::{ChartOptions, Rgb, Style, Theme};
use super::ticks::{clock, fmt_latest, fmt_time, nice_ticks, time_unit, TickFormat};
use crate::frame::{encode_jpeg, Chroma, FrameError, Pixels};

/// JPEG quality: charts are thin lines and small text, which lower
/// qualities smear.
const QUALITY: u8 = 90;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// plotters failed to draw.
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    /// The JPEG encoder failed.
    #[error("encoding the chart as JPEG failed: {0}")]
    Encode(#[from] FrameError),
}

/// Colours of a theme.
struct Palette {
    background: RGBColor,
    grid: RGBColor,
    axis: RGBColor,
    text: Rgb,
    muted: Rgb,
}

fn palette(theme: Theme) -> Palette {
    match theme {
        Theme::Dark => Palette {
            background: RGBColor(0x17, 0x1a, 0x1f),
            grid: RGBColor(0x2c, 0x31, 0x39),
            axis: RGBColor(0x5c, 0x64, 0x70),
            text: [0xd6, 0xda, 0xe0],
            muted: [0x9a, 0xa1, 0xac],
        },
        Theme::Light => Palette {
            background: RGBColor(0xff, 0xff, 0xff),
            grid: RGBColor(0xe6, 0xe8, 0xeb),
            axis: RGBColor(0x9a, 0xa0, 0xa8),
            text: [0x22, 0x25, 0x2a],
            muted: [0x5b, 0x62, 0x70],
        },
    }
}

/// Draws `snap` and encodes it as a JPEG.
pub(super) fn render(o: &ChartOptions, snap: &Snapshot) -> Result<Vec<u8>, RenderError> {
    let (w, h) = (o.width, o.height);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    let layout = Layout::new(o, snap);
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, o, snap, &layout).map_err(|e| RenderError::Draw(e.to_string()))?;
        root.present()
            .map_err(|e| RenderError::Draw(e.to_string()))?;
    }
    let mut canvas = Canvas {
        rgb: &mut rgb,
        width: w as i32,
        height: h as i32,
    };
    layout.draw_lines(&mut canvas, o, snap);
    layout.draw_text(&mut canvas, o, snap);
    // Both sizes are at most 3840 (checked by the options), so they fit.
    // Colour at full resolution: a line two pixels wide keeps its series'
    // colour, which at half resolution bleeds into the background.
    Ok(encode_jpeg(
        &rgb,
        w as u16,
        h as u16,
        Pixels::Rgb,
        QUALITY,
        Chroma::Full,
    )?)
}

/// Where everything goes: computed once per frame, used by the plotters
/// part and the text part alike.
struct Layout {
    /// Sizes scale with the picture, so that a 1920×1080 chart is as
    /// readable as an 800×450 one.
    scale: f32,
    label_px: f32,
    title_px: f32,
    pad: f32,
    /// The plot's pixel rectangle: left, top, right, bottom.
    plot: (i32, i32, i32, i32),
    /// x axis: from, to (in `unit`s before the newest sample), ticks.
    x: (f64, f64, Vec<f64>),
    unit: (f64, &'static str),
    /// y axis: from, to, ticks, and how its labels are written.
    y: (f64, f64, Vec<f64>),
    y_format: TickFormat,
    /// Legend entries (series index, text, left x) per row, top row first.
    legend: Vec<Vec<(usize, String, f32)>>,
    legend_top: f32,
    row_h: f32,
}

impl Layout {
    fn new(o: &ChartOptions, snap: &Snapshot) -> Layout {
        let (w, h) = (o.width as f32, o.height as f32);
        let scale = (h / 450.0).clamp(0.6, 2.5);
        let label_px = (13.0 * scale).round();
        let title_px = (18.0 * scale).round();
        let pad = (10.0 * scale).round();
        let header_h = (title_px * 1.7).round();

        // Legend: "■ name  latest" entries, wrapped into rows.
        let swatch = 14.0 * scale;
        let row_h = (label_px * 1.6).round();
        let mut legend: Vec<Vec<(usize, String, f32)>> = Vec::new();
        let mut x = w; // forces a first row
        for (i, s) in snap.series.iter().enumerate() {
            let latest = s
                .points
                .last()
                .map_or(String::new(), |&(_, v)| fmt_latest(v));
            let text = format!("{}  {latest}", s.name);
            let width = swatch + 6.0 + text_width(&text, label_px) + 2.0 * pad;
            if x + width > w - pad && !legend.last().is_some_and(|r| r.is_empty()) {
                legend.push(Vec::new());
                x = pad + 6.0 * scale;
            }
            if let Some(row) = legend.last_mut() {
                row.push((i, text, x));
            }
            x += width;
        }
        let legend_h = if legend.is_empty() {
            pad / 2.0
        } else {
            legend.len() as f32 * row_h + pad / 2.0
        };
        let legend_top = h - legend_h;

        // Axes.
        let window = o.window.as_secs_f64();
        let unit = time_unit(window);
        let x_span = window / unit.0;
        let (y0, y1) = y_range(o, snap);
        let x_label_h = (label_px * 1.9).round();
        let top = header_h;
        let bottom = legend_top - x_label_h;
        let max_y_ticks = (((bottom - top) / (45.0 * scale)) as usize).clamp(2, 10);
        let y_ticks = nice_ticks(y0, y1, max_y_ticks);
        let y_format = TickFormat::new(y0.abs().max(y1.abs()), y_ticks.1);
        let widest = y_ticks
            .0
            .iter()
            .map(|&v| text_width(&y_format.fmt(v), label_px))
            .fold(0.0, f32::max);
        let left = pad + widest + 8.0 * scale;
        // Room for half of the rightmost x label ("0s").
        let right = w - pad - label_px;
        let max_x_ticks = (((right - left) / (90.0 * scale)) as usize).clamp(2, 12);
        let x_ticks = nice_ticks(-x_span, 0.0, max_x_ticks);
        Layout {
            scale,
            label_px,
            title_px,
            pad,
            plot: (
                left as i32,
                top as i32,
                right as i32,
                (bottom as i32).max(top as i32 + 10),
            ),
            x: (-x_span, 0.0, x_ticks.0),
            unit,
            y: (y0, y1, y_ticks.0),
            y_format,
            legend,
            legend_top,
            row_h,
        }
    }

    /// Pixel of chart point `(x, y)`, as plotters maps it (see `draw`).
    fn to_px(&self, x: f64, y: f64) -> (f32, f32) {
        let (l, t, r, b) = self.plot;
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        (
            l as f32 + (fx * f64::from(r - l - 1)) as f32,
            b as f32 - 1.0 - (fy * f64::from(b - t - 1)) as f32,
        )
    }

    /// The series' lines, over the grid and areas, clipped to the plot.
    fn draw_lines(&self, canvas: &mut Canvas, o: &ChartOptions, snap: &Snapshot) {
        let mut mask = Mask::new(self.plot);
        let radius = self.scale.max(0.6);
        let (y0, y1) = (self.y.0, self.y.1);
        let mut pixels = Vec::new();
        for s in &snap.series {
            pixels.clear();
            // Values outside a fixed y range are drawn at its edge rather
            // than over the labels.
            pixels.extend(
                s.points
                    .iter()
                    .map(|&(t, v)| self.to_px(t / self.unit.0, v.clamp(y0, y1))),
            );
            // One sample draws no line: show it as a dot.
            let radius = if pixels.len() == 1 {
                radius * 2.5
            } else {
                radius
            };
            mask.polyline(&pixels, radius);
            mask.paint(canvas, o.color(s.slot));
        }
    }

    /// The text: title, time of the newest sample, tick labels, legend.
    fn draw_text(&self, canvas: &mut Canvas, o: &ChartOptions, snap: &Snapshot) {
        let p = palette(o.theme);
        let header_mid = self.pad / 2.0 + self.title_px * 0.6;
        if let Some(title) = &o.title {
            canvas.text(
                title,
                self.title_px,
                (self.pad, header_mid),
                Align::Left,
                p.text,
            );
        }
        let stamp = match snap.newest {
            Some(t) if t > 946_684_800.0 => clock(t),
            Some(_) => String::new(),
            None => "waiting for data".into(),
        };
        canvas.text(
            &stamp,
            self.label_px,
            (o.width as f32 - self.pad, header_mid),
            Align::Right,
            p.muted,
        );
        let (l, _, _, b) = self.plot;
        for &v in &self.y.2 {
            let (_, y) = self.to_px(self.x.0, v);
            let text = self.y_format.fmt(v);
            let at = (l as f32 - 6.0 * self.scale, y);
            canvas.text(&text, self.label_px, at, Align::Right, p.muted);
        }
        for &v in &self.x.2 {
            let (x, _) = self.to_px(v, self.y.0);
            let text = fmt_time(v, self.unit.1);
            let at = (x, b as f32 + 5.0 * self.scale + self.label_px * 0.55);
            canvas.text(&text, self.label_px, at, Align::Center, p.muted);
        }
        let swatch = 14.0 * self.scale;
        for (r, row) in self.legend.iter().enumerate() {
            let mid = self.legend_top + (r as f32 + 0.5) * self.row_h;
            for (_, text, x) in row {
                let at = (x + swatch + 6.0, mid);
                canvas.text(text, self.label_px, at, Align::Left, p.text);
            }
        }
    }
}

/// The shapes: grid, axes, areas, legend swatches.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    o: &ChartOptions,
    snap: &Snapshot,
    layout: &Layout,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let p = palette(o.theme);
    root.fill(&p.background)?;
    let (w, h) = (o.width as i32, o.height as i32);
    let (l, t, r, b) = layout.plot;
    let area = root.margin(t, h - b, l, w - r);
    let (x0, x1, ref x_ticks) = layout.x;
    let (y0, y1, ref y_ticks) = layout.y;
    let mut chart = ChartBuilder::on(&area).build_cartesian_2d(x0..x1, y0..y1)?;
    let plot = chart.plotting_area();
    for &y in y_ticks {
        plot.draw(&PathElement::new(vec![(x0, y), (x1, y)], p.grid))?;
    }
    for &x in x_ticks {
        plot.draw(&PathElement::new(vec![(x, y0), (x, y1)], p.grid))?;
    }

    let scale = layout.scale;
    if o.style == Style::Area {
        // The areas only; their lines are drawn with the others, later.
        let base = if (y0..=y1).contains(&0.0) { 0.0 } else { y0 };
        let unit = layout.unit.0;
        for s in &snap.series {
            let c = rgb(o.color(s.slot));
            let points = s.points.iter().map(|&(t, v)| (t / unit, v.clamp(y0, y1)));
            chart.draw_series(AreaSeries::new(points, base, c.mix(0.18).filled()))?;
        }
    }

    // Axis lines and tick marks, over the grid and the areas' edges.
    let tick = (4.0 * scale).round() as i32;
    root.draw(&PathElement::new(
        vec![(l, t), (l, b - 1), (r - 1, b - 1)],
        p.axis,
    ))?;
    for &y in y_ticks {
        let (_, py) = layout.to_px(x0, y);
        root.draw(&PathElement::new(
            vec![(l - tick, py as i32), (l, py as i32)],
            p.axis,
        ))?;
    }
    for &x in x_ticks {
        let (px, _) = layout.to_px(x, y0);
        root.draw(&PathElement::new(
            vec![(px as i32, b - 1), (px as i32, b - 1 + tick)],
            p.axis,
        ))?;
    }

    // Legend swatches; their text comes later.
    let swatch = (14.0 * scale) as i32;
    for (row_index, row) in layout.legend.iter().enumerate() {
        let mid = (layout.legend_top + (row_index as f32 + 0.5) * layout.row_h) as i32;
        for &(i, _, x) in row {
            let c = rgb(o.color(snap.series[i].slot));
            let x = x as i32;
            root.draw(&Rectangle::new(
                [(x, mid - swatch / 4), (x + swatch, mid + swatch / 4)],
                c.filled(),
            ))?;
        }
    }
    Ok(())
}

fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// The y axis range: fixed ends as given, the others fitted to the data
/// with a margin, never empty.
fn y_range(o: &ChartOptions, snap: &Snapshot) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (_, v) in snap.series.iter().flat_map(|s| &s.points) {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let span = hi - lo;
    let margin = if span > 0.0 {
        span * 0.08
    } else {
        (hi.abs() * 0.1).max(0.5)
    };
    let mut y0 = o.y_min.unwrap_or(lo - margin);
    let mut y1 = o.y_max.unwrap_or(hi + margin);
    // Values that never go below zero read better from a zero baseline
    // when it is close.
    if o.y_min.is_none() && lo >= 0.0 && y0 < 0.0 {
        y0 = 0.0;
    }
    if y1 <= y0 {
        // One end fixed beyond all the data: open up the other.
        if o.y_max.is_some() {
            y0 = y1 - span.max(1.0);
        } else {
            y1 = y0 + span.max(1.0);
        }
    }
    (y0, y1)
}
