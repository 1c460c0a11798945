//! What a variant costs per source frame: a 1280×720 JPEG made into
//! 320×180 and 640×360 variants, with each step's time (decode, reduced in
//! the DCT domain where it can be; resize; encode).
//!
//! `cargo bench --bench variant`

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
        "1280x720 source ({} KB), median of 60 frames, one core:",
        source.len() / 1024
    );
    for (name, spec, overlay) in cases {
        let mut runs: Vec<Steps> = (0..60)
            .map(|_| make_timed(&source, &spec, overlay).unwrap().1)
            .collect();
        runs.sort_by_key(total);
        let m = runs[runs.len() / 2];
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  {name:44} {:6.2} ms = decode {:5.2} + resize/draw {:5.2} + encode {:5.2}",
            ms(total(&m)),
            ms(m.decode),
            ms(m.resize),
            ms(m.encode)
        );
    }
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
