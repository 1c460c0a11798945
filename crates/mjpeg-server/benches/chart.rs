//! Render + encode speed of the `chart` source: an 800×450 chart of 4
//! series × 600 samples, drawn and encoded as JPEG on one thread, which is
//! the work of one chart frame on the blocking pool. The goal is at least
//! 60 frames a second on one core.
//!
//! Run with `cargo bench --bench chart`. Every round changes the data a
//! little, as a live chart's does, so nothing can be cached between
//! frames. Both styles and both themes are measured; the last frame of each
//! case is written to `target/chart-bench-STYLE-THEME.png` for a look.
//!
//! Plain `std::time` rather than a benchmark crate: one number per case is
//! all this needs, and it keeps the dependency list short.

use mjpeg_server::source::chart::{Chart, ChartOptions, Style, Theme};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

const SERIES: [&str; 4] = ["cpu", "load", "temp", "net"];
const POINTS: usize = 600;
const MEASURE: Duration = Duration::from_secs(3);

/// A chart holding 4 × 600 samples, 0.1 s apart (the default 60 s window),
/// the first at `start`.
fn chart(style: Style, theme: Theme, start: SystemTime) -> Chart {
    let chart = Chart::new(ChartOptions {
        title: Some("bench: 4 series × 600 points".into()),
        style,
        theme,
        ..ChartOptions::default()
    });
    for i in 0..POINTS {
        push(&chart, start, i);
    }
    chart
}

/// Sample `i`: four wiggly curves on different scales, one of them noisy
/// (sharp turns at every sample are the hard case for line joins).
fn push(chart: &Chart, start: SystemTime, i: usize) {
    let x = i as f64 * 0.1;
    let values = [
        50.0 + 30.0 * (x * 0.3).sin() + 5.0 * (x * 2.1).sin(),
        20.0 + 10.0 * (x * 0.11).cos(),
        60.0 + 8.0 * (x * 0.05).sin() + (x * 3.0).sin(),
        40.0 + 25.0 * ((x * 0.7).sin() * (x * 0.13).cos()) + noise(i),
    ];
    let pairs: Vec<(&str, f64)> = SERIES.iter().copied().zip(values).collect();
    chart
        .push_sample(Some(start + Duration::from_secs_f64(x)), &pairs)
        .expect("bench samples are valid");
}

/// Deterministic noise in -4..4: a hash of `i`.
fn noise(i: usize) -> f64 {
    let h = (i as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((h >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 8.0
}

fn main() {
    let start = SystemTime::now() - Duration::from_secs(60);
    for (style, theme) in [
        (Style::Line, Theme::Dark),
        (Style::Line, Theme::Light),
        (Style::Area, Theme::Dark),
    ] {
        let chart = chart(style, theme, start);
        // Warm up: the font is registered and parsed on first use.
        let mut jpeg = chart.render_jpeg().expect("renders");
        let mut frames = 0usize;
        let mut next = POINTS;
        let began = Instant::now();
        while began.elapsed() < MEASURE {
            push(&chart, start, next);
            next += 1;
            jpeg = black_box(chart.render_jpeg().expect("renders"));
            frames += 1;
        }
        let secs = began.elapsed().as_secs_f64();
        println!(
            "chart 800x450, 4 series x {POINTS} points, {style:?}/{theme:?}: \
             {:.1} frames/s ({:.2} ms per frame, {} KiB JPEG)",
            frames as f64 / secs,
            secs * 1000.0 / frames as f64,
            jpeg.len() / 1024
        );
        let name = format!("target/chart-bench-{style:?}-{theme:?}.png").to_lowercase();
        save_png(&jpeg, &Path::new(env!("CARGO_MANIFEST_DIR")).join(name));
    }
}

/// Writes `jpeg` as a PNG, which more image viewers show than a JPEG.
fn save_png(jpeg: &[u8], path: &Path) {
    let mut decoder = zune_jpeg::JpegDecoder::new(jpeg);
    let pixels = decoder.decode().expect("the chart decodes");
    let (w, h) = decoder.dimensions().expect("decoded");
    let picture = image::RgbImage::from_raw(w as u32, h as u32, pixels).expect("RGB pixels");
    match picture.save(path) {
        Ok(()) => println!("  last frame: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
