//! What a variant costs per source frame: a 1280×720 JPEG made into
//! 320×180 and 640×360 variants, with each step's time (decode, reduced in
//! the DCT domain where it can be; resize; encode); first for the corpus's
//! 191 KB frame of noise (the worst case), with the general decoder's
//! reduced decode of it for comparison, then for quieter pictures of the
//! same size.
//!
//! `cargo bench --bench variant`

use libjpeg_turbo_rs::{PixelFormat, ScalingFactor, StreamingDecoder};
use mjpeg_server::frame::{encode_jpeg, Chroma, Pixels};
use mjpeg_server::variant::{make_timed, Steps, VariantSpec};
use mjpeg_server::Frame;
use std::time::Duration;

fn main() {
    let jpeg = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/jpeg_200k.jpg"
    ))
    .unwrap();
    let source = Frame::from_jpeg(jpeg).unwrap();
    assert_eq!((source.width(), source.height()), (1280, 720));
    let cases: [(&str, VariantSpec, Option<&str>); 5] = [
        ("320x180 (width=320)", spec(Some(320), None), None),
        ("640x360 (width=640)", spec(Some(640), None), None),
        ("640x360, quality 60", spec(Some(640), Some(60)), None),
        (
            "400x225 (width=400: 1/2 decode + resize)",
            spec(Some(400), None),
            None,
        ),
        (
            "1280x720 with an overlay",
            VariantSpec {
                overlay: true,
                ..VariantSpec::default()
            },
            Some("cam 2026-11-30 12:34:56"),
        ),
    ];
    println!(
        "tests/data/jpeg_200k.jpg: 1280x720, {} KB (noise of +-14 on every pixel: the worst case), median of 60 frames, one core:",
        source.len() / 1024
    );
    for (name, spec, overlay) in cases {
        report(&source, name, &spec, overlay);
    }
    // What the reduced decode saves: the general decoder's reduced decode
    // (to RGB) of the same frame, which variants used before.
    for denom in [4, 2] {
        let mut runs: Vec<Duration> = (0..60)
            .map(|_| {
                let started = std::time::Instant::now();
                let mut decoder = StreamingDecoder::new(source.jpeg()).unwrap();
                decoder.set_output_format(PixelFormat::Rgb);
                decoder.set_scale(ScalingFactor::try_new(1, denom).unwrap());
                std::hint::black_box(decoder.decode().unwrap());
                started.elapsed()
            })
            .collect();
        runs.sort();
        println!(
            "  the general decoder's 1/{denom} decode, for comparison   {:6.2} ms",
            runs[30].as_secs_f64() * 1e3
        );
    }
    // The time goes into reading the entropy-coded data, so it follows the
    // frame's size in bytes: the same two variants of quieter 1280x720
    // pictures (a lit scene with sensor noise of +-A), at quality 85.
    for noise in [2u8, 4, 6, 8] {
        let source = scene(noise);
        println!(
            "a scene with noise +-{noise}: 1280x720, {} KB",
            source.len() / 1024
        );
        for (name, spec, overlay) in &cases[..2] {
            report(&source, name, spec, *overlay);
        }
    }
}

/// Prints the median step times of making `spec` of `source` 60 times,
/// and the fastest time: the machine's other work shows in the median.
fn report(source: &Frame, name: &str, spec: &VariantSpec, overlay: Option<&str>) {
    let mut runs: Vec<Steps> = (0..60)
        .map(|_| make_timed(source, spec, overlay).unwrap().1)
        .collect();
    runs.sort_by_key(total);
    let m = runs[runs.len() / 2];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {name:44} {:6.2} ms = decode {:5.2} + resize/draw {:5.2} + encode {:5.2}  (fastest {:5.2})",
        ms(total(&m)),
        ms(m.decode),
        ms(m.resize),
        ms(m.encode),
        ms(total(&runs[0]))
    );
}

/// A 1280x720 picture as a camera might see a room: smooth light, a few
/// edges, and sensor noise of +-`noise` on every pixel; JPEG quality 85.
fn scene(noise: u8) -> Frame {
    let (w, h) = (1280usize, 720usize);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            // Light from the top left, a window, a table's edge.
            let light = 200.0 - 0.08 * x as f64 - 0.1 * y as f64;
            let window = (800..1100).contains(&x) && (100..350).contains(&y);
            let table = y > 520;
            let base = [
                if window {
                    235.0
                } else if table {
                    light * 0.7
                } else {
                    light
                },
                if window {
                    240.0
                } else if table {
                    light * 0.5
                } else {
                    light * 0.95
                },
                if window {
                    250.0
                } else if table {
                    light * 0.3
                } else {
                    light * 0.9
                },
            ];
            for b in base {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let n = (state % (2 * u64::from(noise) + 1)) as f64 - f64::from(noise);
                pixels.push((b + n).clamp(0.0, 255.0) as u8);
            }
        }
    }
    let jpeg = encode_jpeg(&pixels, w as u16, h as u16, Pixels::Rgb, 85, Chroma::Half).unwrap();
    Frame::from_jpeg(jpeg).unwrap()
}

fn spec(width: Option<u32>, quality: Option<u8>) -> VariantSpec {
    VariantSpec {
        width,
        quality,
        ..VariantSpec::default()
    }
}

fn total(s: &Steps) -> Duration {
    s.decode + s.resize + s.encode
}
