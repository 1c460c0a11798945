//! Drawing straight into the RGB buffer, for what plotters does not draw
//! well (see [`super::draw`]): text with ab_glyph, and antialiased lines
//! with round joins.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use std::sync::OnceLock;

use super::options::Rgb;

/// DejaVu Sans, parsed once. `None` only if the embedded font were
/// broken, in which case charts are drawn without text rather than not at
/// all.
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(dejavu::sans::regular()).ok())
        .as_ref()
}

/// Width of `text` at `px` pixels per em.
pub(super) fn text_width(text: &str, px: f32) -> f32 {
    let Some(font) = font() else { return 0.0 };
    let font = font.as_scaled(PxScale::from(px));
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            width += font.kern(p, id);
        }
        width += font.h_advance(id);
        prev = Some(id);
    }
    width
}

#[derive(Clone, Copy)]
pub(super) enum Align {
    Left,
    Center,
    Right,
}

/// An RGB buffer to draw text into.
pub(super) struct Canvas<'a> {
    pub(super) rgb: &'a mut [u8],
    pub(super) width: i32,
    pub(super) height: i32,
}

impl Canvas<'_> {
    /// Draws `text` with its digits' vertical middle at `y`, aligned to `x`.
    pub(super) fn text(
        &mut self,
        text: &str,
        px: f32,
        (x, y): (f32, f32),
        align: Align,
        color: Rgb,
    ) {
        let Some(font) = font() else { return };
        let scale = PxScale::from(px);
        let scaled = font.as_scaled(scale);
        let x = match align {
            Align::Left => x,
            Align::Center => x - text_width(text, px) / 2.0,
            Align::Right => x - text_width(text, px),
        };
        // Digits and capitals are about 0.73 em tall in DejaVu Sans.
        let baseline = (y + 0.365 * px).round();
        let mut caret = x.round();
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            caret += scaled.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue; // A space.
            };
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i32, bounds.min.y as i32);
            outline.draw(|gx, gy, coverage| {
                self.blend(left + gx as i32, top + gy as i32, color, coverage);
            });
        }
    }

    fn blend(&mut self, x: i32, y: i32, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= self.width || y >= self.height {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        // Integer blending in 1/256ths: this runs for every pixel of every
        // line and glyph, and f32 rounding is a libm call on baseline x86-64.
        let a = (alpha.clamp(0.0, 1.0) * 256.0) as i32;
        for (dst, src) in self.rgb[i..i + 3].iter_mut().zip(color) {
            let d = i32::from(*dst);
            *dst = (d + (((i32::from(src) - d) * a) >> 8)) as u8;
        }
    }
}

/// Coverage of one antialiased polyline over the plot rectangle, so that
/// where its segments overlap (at every joint) a pixel is painted once, at
/// the larger coverage, rather than twice.
pub(super) struct Mask {
    /// The plot rectangle: left, top, right, bottom (exclusive).
    clip: (i32, i32, i32, i32),
    coverage: Vec<f32>,
    /// Per row, the touched columns (`start > end` when none), so that
    /// painting and clearing visit only those.
    touched: Vec<(i32, i32)>,
}

impl Mask {
    pub(super) fn new(clip: (i32, i32, i32, i32)) -> Mask {
        let (l, t, r, b) = clip;
        let (w, h) = ((r - l).max(0) as usize, (b - t).max(0) as usize);
        Mask {
            clip,
            coverage: vec![0.0; w * h],
            touched: vec![(i32::MAX, i32::MIN); h],
        }
    }

    /// Adds a line of half-width `radius` through `points` (pixel
    /// coordinates), with round ends and joins: the union of one capsule
    /// per segment (a disc for a single point).
    pub(super) fn polyline(&mut self, points: &[(f32, f32)], radius: f32) {
        match points {
            [] => {}
            [p] => self.capsule(*p, *p, radius),
            _ => {
                for pair in points.windows(2) {
                    self.capsule(pair[0], pair[1], radius);
                }
            }
        }
    }

    /// The pixels within `radius` (plus half a pixel of antialiasing) of
    /// the segment `a`–`b`.
    fn capsule(&mut self, a: (f32, f32), b: (f32, f32), radius: f32) {
        let (l, t, r, bottom) = self.clip;
        let reach = radius + 1.0;
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let y_from = ((a.1.min(b.1) - reach).floor() as i32).max(t);
        let y_to = ((a.1.max(b.1) + reach).ceil() as i32).min(bottom - 1);
        let x_min = ((a.0.min(b.0) - reach).floor() as i32).max(l);
        let x_max = ((a.0.max(b.0) + reach).ceil() as i32).min(r - 1);
        if y_from > y_to || x_min > x_max {
            return;
        }
        let len = len2.sqrt();
        // The segment's unit normal. In one row, the pixels near the line
        // lie in a band whose width depends on the slope; only those are
        // looked at, so a steep segment costs its length, not its bounding
        // box.
        let (nx, ny) = if len > 1e-6 {
            (-dy / len, dx / len)
        } else {
            (0.0, 0.0)
        };
        let width = (r - l) as usize;
        for y in y_from..=y_to {
            let cy = y as f32 + 0.5;
            let (mut from, mut to) = (x_min, x_max);
            if nx.abs() > 1e-3 {
                // |nx (x - ax) + ny (cy - ay)| <= reach
                let c = ny * (cy - a.1);
                let x1 = a.0 + (-reach - c) / nx;
                let x2 = a.0 + (reach - c) / nx;
                from = from.max(x1.min(x2).floor() as i32);
                to = to.min(x1.max(x2).ceil() as i32);
            }
            if from > to {
                continue;
            }
            let row = (y - t) as usize;
            let py = cy - a.1;
            for x in from..=to {
                let px = x as f32 + 0.5 - a.0;
                // Distance from the pixel centre to the segment.
                let k = if len2 > 0.0 {
                    ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (px - k * dx, py - k * dy);
                let cover = (radius + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
                if cover > 0.0 {
                    let cell = &mut self.coverage[row * width + (x - l) as usize];
                    if cover > *cell {
                        *cell = cover;
                    }
                    let span = &mut self.touched[row];
                    span.0 = span.0.min(x);
                    span.1 = span.1.max(x);
                }
            }
        }
    }

    /// Paints the line in `color` and clears the mask for the next one.
    pub(super) fn paint(&mut self, canvas: &mut Canvas, color: Rgb) {
        let (l, t, r, _) = self.clip;
        let width = (r - l) as usize;
        for (row, span) in self.touched.iter_mut().enumerate() {
            for x in span.0..=span.1 {
                let cell = &mut self.coverage[row * width + (x - l) as usize];
                canvas.blend(x, t + row as i32, color, *cell);
                *cell = 0.0;
            }
            *span = (i32::MAX, i32::MIN);
        }
    }
}
