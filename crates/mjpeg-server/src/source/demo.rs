//! `demo`: a moving test picture with the current time, drawn and encoded by
//! the server itself.
//!
//! It is what `mjpeg-server` with no flags shows, so a new user sees a live
//! stream before pointing the server at anything: a sweeping hand, a
//! bouncing ball, and a clock that makes it obvious the picture is live and
//! how late it arrives.

use embedded_graphics::mono_font::ascii::FONT_10X20;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle};
use embedded_graphics::text::{Alignment, Text};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::canvas::{Canvas, Scaled};
use crate::frame::{encode_jpeg, Chroma, Frame, FrameError, Pixels};
use crate::hub::Hub;

/// Width of the demo picture.
pub const WIDTH: u32 = 640;
/// Height of the demo picture.
pub const HEIGHT: u32 = 360;

/// With nobody watching, the picture is redrawn only this often, so that a
/// snapshot still shows the time while an idle server uses next to no CPU.
const IDLE_REFRESH: Duration = Duration::from_secs(1);

/// Publishes a demo frame every `interval` until `shutdown`, or once a
/// second while the stream has no viewers.
///
/// Drawing and JPEG encoding take milliseconds of CPU, so they run on the
/// blocking pool, never on the async workers that serve clients.
pub async fn run(interval: Duration, hub: Hub, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let viewers = hub.watch_clients();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let idle = *viewers.borrow() == 0;
        if idle && hub.latest().is_some_and(|p| p.age() < IDLE_REFRESH) {
            continue;
        }
        n += 1;
        let now = SystemTime::now();
        let jpeg = match tokio::task::spawn_blocking(move || render(n, now)).await {
            Ok(Ok(jpeg)) => jpeg,
            Ok(Err(e)) => {
                tracing::error!("demo frame could not be encoded: {e}");
                continue;
            }
            Err(e) => {
                tracing::error!("demo renderer failed: {e}");
                continue;
            }
        };
        match Frame::from_jpeg(jpeg) {
            Ok(frame) => {
                if let Err(e) = hub.publish(frame) {
                    tracing::error!("demo frame refused: {e}");
                }
            }
            Err(e) => tracing::error!("demo encoder produced a bad JPEG: {e}"),
        }
    }
}

/// Draws demo frame `n` for wall-clock time `now` and encodes it as JPEG.
pub fn render(n: u64, now: SystemTime) -> Result<Vec<u8>, FrameError> {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let t = since_epoch.as_secs_f64();
    let mut rgb = vec![0; (WIDTH * HEIGHT * 3) as usize];
    let mut canvas = Canvas {
        rgb: &mut rgb,
        width: WIDTH,
        height: HEIGHT,
    };

    // Background: a vertical gradient whose hue drifts with time.
    let phase = (t / 20.0).fract();
    for y in 0..HEIGHT {
        let v = y as f64 / HEIGHT as f64;
        let c = hue(phase + v * 0.15, 0.35 - 0.2 * v);
        for x in 0..WIDTH {
            canvas.set(x as i32, y as i32, c);
        }
    }

    // A hand that sweeps once every 4 seconds around the centre.
    let (cx, cy) = (WIDTH as i32 / 2, HEIGHT as i32 / 2 + 30);
    let angle = (t / 4.0).fract() * std::f64::consts::TAU;
    let r = 120.0;
    let tip = Point::new(cx + (angle.sin() * r) as i32, cy - (angle.cos() * r) as i32);
    let white = Rgb888::new(240, 240, 240);
    let _ = Circle::with_center(Point::new(cx, cy), 2 * r as u32)
        .into_styled(PrimitiveStyle::with_stroke(Rgb888::new(90, 90, 90), 2))
        .draw(&mut canvas);
    let _ = Line::new(Point::new(cx, cy), tip)
        .into_styled(PrimitiveStyle::with_stroke(white, 4))
        .draw(&mut canvas);

    // A ball bouncing along a Lissajous path.
    let bx = WIDTH as f64 / 2.0 + (t * 1.3).sin() * (WIDTH as f64 / 2.0 - 40.0);
    let by = HEIGHT as f64 / 2.0 + (t * 1.7).cos() * (HEIGHT as f64 / 2.0 - 40.0);
    let _ = Circle::with_center(Point::new(bx as i32, by as i32), 36)
        .into_styled(PrimitiveStyle::with_fill(Rgb888::new(255, 170, 40)))
        .draw(&mut canvas);

    // The clock, in UTC: the server knows no time zone without extra data.
    let secs = since_epoch.as_secs();
    let clock = format!(
        "{:02}:{:02}:{:02}.{}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        since_epoch.subsec_millis() / 100
    );
    let big = MonoTextStyle::new(&FONT_10X20, white);
    let _ = Text::with_alignment(
        &clock,
        Point::new(WIDTH as i32 / 6, 24),
        big,
        Alignment::Center,
    )
    .draw(&mut Scaled {
        canvas: &mut canvas,
        scale: 3,
    });
    let small = MonoTextStyle::new(&FONT_10X20, Rgb888::new(200, 200, 200));
    let _ = Text::new(
        "mjpeg-server demo",
        Point::new(12, HEIGHT as i32 - 14),
        small,
    )
    .draw(&mut canvas);
    let label = format!("UTC  frame {n}");
    let _ = Text::with_alignment(
        &label,
        Point::new(WIDTH as i32 - 12, HEIGHT as i32 - 14),
        small,
        Alignment::Right,
    )
    .draw(&mut canvas);

    encode_jpeg(
        &rgb,
        WIDTH as u16,
        HEIGHT as u16,
        Pixels::Rgb,
        80,
        Chroma::Half,
    )
}

/// A colour of hue `h` (0–1, wrapping) and lightness `l`, fully saturated.
fn hue(h: f64, l: f64) -> Rgb888 {
    let h = h.rem_euclid(1.0) * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let s = |v: f64| ((0.15 + v * 0.85) * l * 255.0).clamp(0.0, 255.0) as u8;
    Rgb888::new(s(r), s(g), s(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_valid_jpeg_that_changes_with_time() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = render(1, t).unwrap();
        let b = render(2, t + Duration::from_millis(500)).unwrap();
        let fa = Frame::from_jpeg(a.clone()).unwrap();
        assert_eq!(
            (u32::from(fa.width()), u32::from(fa.height())),
            (WIDTH, HEIGHT)
        );
        assert_ne!(a, b);
        let pixels = zune_jpeg::JpegDecoder::new(&a).decode().unwrap();
        assert_eq!(pixels.len(), (WIDTH * HEIGHT * 3) as usize);
    }
}
