use super::*;
use crate::test_data::corpus;

/// Peak signal-to-noise ratio of `a` against `b`, dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// The corpus's baseline JPEGs: 4:2:0, of 320x240 to 1920x1080, one
/// with restart markers, one with a JPEG inside its Exif.
const BASELINE: [&str; 6] = [
    "jpeg_5k.jpg",
    "jpeg_50k.jpg",
    "jpeg_200k.jpg",
    "jpeg_1m.jpg",
    "restart_markers.jpg",
    "exif_thumbnail.jpg",
];

#[test]
fn planes_are_the_averages_of_the_whole_planes() {
    for name in BASELINE {
        let jpeg = corpus(name);
        // Every plane whole, as the general decoder makes it.
        let full = libjpeg_turbo_rs::decompress_raw(&jpeg).unwrap();
        for denom in [2, 4, 8] {
            let ours = decode(&jpeg, denom as u32)
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: a baseline JPEG, which it takes"));
            assert_eq!(ours.planes.len(), full.num_components);
            for (c, plane) in ours.planes.iter().enumerate() {
                let (w, h) = (full.plane_widths[c], full.plane_heights[c]);
                assert_eq!(plane.width, w / denom, "{name}");
                assert_eq!(plane.data.len(), w * h / denom / denom, "{name}");
                // Each denom×denom square of the whole plane, averaged.
                let averaged: Vec<u8> = (0..h / denom)
                    .flat_map(|y| (0..w / denom).map(move |x| (x, y)))
                    .map(|(x, y)| {
                        let sum: u32 = (0..denom * denom)
                            .map(|i| (x * denom + i % denom, y * denom + i / denom))
                            .map(|(xx, yy)| u32::from(full.planes[c][yy * w + xx]))
                            .sum();
                        ((sum + (denom * denom / 2) as u32) / (denom * denom) as u32) as u8
                    })
                    .collect();
                let db = psnr(&plane.data, &averaged);
                // Rounding at 1/8 (the average of a block is its DC
                // coefficient); the coefficients dropped, at 1/4 and
                // 1/2, whose share grows with the picture's noise.
                let floor = if denom == 8 { 50.0 } else { 35.0 };
                assert!(db > floor, "{name} at 1/{denom}, plane {c}: {db:.1} dB");
            }
        }
    }
}

#[test]
fn a_smooth_picture_is_its_average_to_a_level() {
    // Light growing across and down, without noise: the coefficients
    // dropped are nearly zero, so every pixel is the average of its
    // square, give or take rounding.
    let (w, h) = (64usize, 48usize);
    let pixels: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (20 + 2 * x + y) as u8))
        .collect();
    let jpeg = crate::frame::encode_jpeg(
        &pixels,
        w as u16,
        h as u16,
        crate::frame::Pixels::Luma,
        100,
        crate::frame::Chroma::Full,
    )
    .unwrap();
    for denom in [2usize, 4, 8] {
        let ours = decode(&jpeg, denom as u32).unwrap().unwrap();
        let plane = &ours.planes[0];
        for y in 0..h / denom {
            for x in 0..w / denom {
                let sum: usize = (0..denom * denom)
                    .map(|i| {
                        usize::from(pixels[(y * denom + i / denom) * w + x * denom + i % denom])
                    })
                    .sum();
                let want = (sum as f64 / (denom * denom) as f64).round() as i32;
                let got = i32::from(plane.data[y * plane.width + x]);
                assert!(
                    (got - want).abs() <= 1,
                    "1/{denom} at {x},{y}: {got}, not {want}"
                );
            }
        }
    }
}

#[test]
fn colour_pictures_are_what_the_general_decoder_makes() {
    // Its smaller IDCT samples where ours averages, and it interpolates
    // the chroma where ours repeats it: close, not the same (26–33 dB
    // on these; chroma read from the wrong place or channels swapped
    // fall far below).
    for name in ["jpeg_50k.jpg", "restart_markers.jpg", "exif_thumbnail.jpg"] {
        let jpeg = corpus(name);
        for denom in [2, 4, 8] {
            let ours = decode(&jpeg, denom).unwrap().unwrap().to_rgb();
            let source = Frame::from_jpeg(jpeg.clone()).unwrap();
            let theirs = crate::variant::make::decode(&source, denom).unwrap();
            assert_eq!((ours.width, ours.height), (theirs.width, theirs.height));
            let db = psnr(&ours.data, &theirs.data);
            assert!(db > 25.0, "{name} at 1/{denom}: {db:.1} dB");
        }
    }
}

#[test]
fn odd_sizes_have_the_size_the_header_gives() {
    // Sizes that are not whole blocks or MCUs, grey, 4:4:4 and 4:2:0.
    for (w, h) in [(33usize, 17usize), (1, 1), (9, 40)] {
        let colour: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        for (layout, chroma) in [
            (crate::frame::Pixels::Rgb, crate::frame::Chroma::Half),
            (crate::frame::Pixels::Rgb, crate::frame::Chroma::Full),
            (crate::frame::Pixels::Luma, crate::frame::Chroma::Full),
        ] {
            let pixels = &colour[..w * h * layout.channels()];
            let jpeg =
                crate::frame::encode_jpeg(pixels, w as u16, h as u16, layout, 80, chroma).unwrap();
            for denom in [2, 4, 8] {
                let planes = decode(&jpeg, denom).unwrap().unwrap();
                assert_eq!(
                    (planes.width, planes.height),
                    (w.div_ceil(denom as usize), h.div_ceil(denom as usize))
                );
            }
            // And what the fuzz target checks: conversion and encoding.
            fuzz_decode(&jpeg);
        }
    }
}

#[test]
fn what_it_does_not_take_is_left_to_the_general_decoder() {
    assert!(decode(&corpus("progressive.jpg"), 4).unwrap().is_none());
    // Not a reduction.
    assert!(decode(&corpus("jpeg_5k.jpg"), 3).unwrap().is_none());
    // Not a JPEG at all is an error, not a guess.
    assert!(decode(&corpus("image.png"), 4).is_err());
    assert!(decode(&corpus("empty.jpg"), 4).is_err());
}

#[test]
fn data_cut_short_or_broken_is_an_error_not_a_picture() {
    // The corpus's truncated frame, and a good frame cut at points
    // through its entropy-coded data.
    assert!(decode(&corpus("truncated.jpg"), 4).is_err());
    let jpeg = corpus("jpeg_50k.jpg");
    for cut in [jpeg.len() / 3, jpeg.len() / 2, jpeg.len() - 100] {
        for denom in [2, 4, 8] {
            let Err(err) = decode(&jpeg[..cut], denom) else {
                panic!("cut at {cut} of {}, 1/{denom}: decoded", jpeg.len());
            };
            assert!(
                err.contains("ends before") || err.contains("too short"),
                "{err}"
            );
        }
    }
    // Garbage in place of the entropy-coded data: an error, or a
    // picture of the right size (garbage can be valid codes), never a
    // panic.
    let header = Header::read(&jpeg).unwrap().unwrap();
    let garbage = corpus("garbage.jpg");
    let mut broken = jpeg[..header.scan].to_vec();
    broken.extend(garbage.iter().cycle().take(jpeg.len() - header.scan - 2));
    broken.extend_from_slice(&[0xFF, 0xD9]);
    fuzz_decode(&broken);
    // A picture whose size wants more blocks than its data could hold
    // is refused before anything is allocated for it.
    let mut huge = jpeg.clone();
    let sof = huge.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let Err(err) = decode(&huge, 8) else {
        panic!("65535x65535 from 50 KB: decoded");
    };
    assert!(err.contains("too short"), "{err}");
}

#[test]
fn fuzz_findings_replay_cleanly() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/fuzz/reduced_decode"
    );
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let run = std::panic::catch_unwind(|| fuzz_decode(&data));
        assert!(run.is_ok(), "{} fails again", path.display());
    }
}

#[test]
fn colours_are_converted_as_jfif_says() {
    // Grey, and pure red, green and blue as a JFIF encoder codes them.
    for (ycbcr, rgb) in [
        ([128, 128, 128], [128, 128, 128]),
        ([76, 85, 255], [254, 0, 0]),
        ([150, 44, 21], [0, 255, 1]),
        ([29, 255, 107], [0, 0, 255]),
    ] {
        let plane = |v: u8| Plane {
            width: 2,
            data: vec![v; 4],
        };
        let planes = Planes {
            width: 2,
            height: 2,
            sampling: (1, 1),
            planes: ycbcr.into_iter().map(plane).collect(),
        };
        let got = planes.to_rgb();
        for pixel in got.data.chunks_exact(3) {
            for (g, w) in pixel.iter().zip(rgb) {
                assert!(g.abs_diff(w) <= 1, "{ycbcr:?} gave {pixel:?}, not {rgb:?}");
            }
        }
    }
}
