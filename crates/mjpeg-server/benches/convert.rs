//! How long converting a frame costs: a 1280×720 image decoded from PNG and
//! encoded as JPEG, as `push`, `watch:` and `dir:` do for non-JPEG images.
//!
//! `cargo bench --bench convert`

use bytes::Bytes;
use mjpeg_server::convert::{to_frame_blocking, ConvertOptions};
use mjpeg_server::frame::{encode_jpeg, Chroma, Pixels};
use std::time::Instant;

fn main() {
    // A 1280×720 test picture as PNG, made from the corpus JPEG.
    let jpeg = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/jpeg_200k.jpg"
    ))
    .unwrap();
    // The image crate is built without its JPEG codec (the server never
    // decodes JPEG); zune-jpeg, used by the tests, does it here.
    let rgb = zune_jpeg::JpegDecoder::new(&jpeg).decode().unwrap();
    let img = image::RgbImage::from_raw(1280, 720, rgb).unwrap();
    assert_eq!(img.dimensions(), (1280, 720));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let png = Bytes::from(png);
    let opts = ConvertOptions::default();

    let rounds = 30;
    let time = |f: &dyn Fn()| {
        f();
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..rounds {
                f();
            }
            best = best.min(start.elapsed().as_secs_f64() / rounds as f64);
        }
        best * 1e3
    };
    let convert = time(&|| {
        to_frame_blocking(png.clone(), &opts).unwrap();
    });
    let encode = time(&|| {
        encode_jpeg(
            img.as_raw(),
            1280,
            720,
            Pixels::Rgb,
            opts.quality,
            Chroma::Half,
        )
        .unwrap();
    });
    println!("1280x720, quality {}: PNG ({} KB) -> JPEG {convert:.1} ms per frame; JPEG encode alone {encode:.1} ms", opts.quality, png.len() / 1024);
}
