//! Unit tests of the splitter.

use super::*;

use crate::test_data::corpus;
use std::time::Duration;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn split(stream: &[u8], max_frame: usize) -> Vec<Split> {
    split_in_pieces(stream, max_frame, &mut || 64 * 1024)
}

fn frames(events: &[Split]) -> Vec<&Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            Split::Frame(f) => Some(f),
            Split::Dropped(_) => None,
        })
        .collect()
}

fn problems(events: &[Split]) -> Vec<&Problem> {
    events
        .iter()
        .filter_map(|e| match e {
            Split::Dropped(p) => Some(p),
            Split::Frame(_) => None,
        })
        .collect()
}

#[test]
fn every_corpus_trap_comes_out_whole_and_byte_identical() {
    let names = [
        "exif_thumbnail.jpg",
        "progressive.jpg",
        "restart_markers.jpg",
        "jpeg_5k.jpg",
        "exif_thumbnail.jpg",
        "jpeg_200k.jpg",
    ];
    let files: Vec<Vec<u8>> = names.iter().map(|n| corpus(n)).collect();
    let stream = files.concat();
    let events = split(&stream, DEFAULT_MAX_FRAME);
    assert!(problems(&events).is_empty(), "{events:?}");
    let got = frames(&events);
    assert_eq!(got.len(), files.len(), "{events:?}");
    for ((name, want), got) in names.iter().zip(&files).zip(got) {
        assert!(got[..] == want[..], "{name} came out changed");
    }
}

#[test]
fn garbage_and_html_between_frames_are_skipped_and_reported() {
    let (a, b, c) = (
        corpus("jpeg_5k.jpg"),
        corpus("exif_thumbnail.jpg"),
        corpus("progressive.jpg"),
    );
    let html = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>\n";
    let garbage = corpus("garbage.jpg");
    let stream = cat(&[b"Starting camera\n", &a, &garbage, &b, html, &c, html]);
    let events = split(&stream, DEFAULT_MAX_FRAME);
    let got = frames(&events);
    assert_eq!(got.len(), 3, "{events:?}");
    assert!(got[0][..] == a[..] && got[1][..] == b[..] && got[2][..] == c[..]);
    let p = problems(&events);
    assert_eq!(p.len(), 4, "{events:?}");
    assert_eq!(
        *p[0],
        Problem::Garbage {
            bytes: 16,
            head: b"Starting camera\n".to_vec()
        }
    );
    assert!(matches!(p[1], Problem::Garbage { bytes: 20_000, .. }));
    assert_eq!(
        p[2].to_string(),
        format!(
            "skipped {} bytes of non-JPEG data between frames, starting with \"<!DOCTYPE html><html><body>502 B\"",
            html.len()
        )
    );
    assert_eq!(
        p[3], p[2],
        "garbage at the end of the stream is reported too"
    );
}

#[test]
fn padding_between_frames_is_skipped_silently() {
    let a = corpus("jpeg_5k.jpg");
    let stream = cat(&[&a, b"\r\n", &a, &[0; 100], &a, &[0xFF; 3], &a, b"\n"]);
    let events = split(&stream, DEFAULT_MAX_FRAME);
    assert_eq!(frames(&events).len(), 4, "{events:?}");
    assert!(problems(&events).is_empty(), "{events:?}");
}

#[test]
fn a_truncated_frame_followed_by_a_good_one_yields_only_the_good_one() {
    let truncated = corpus("truncated.jpg");
    let good = corpus("jpeg_50k.jpg");
    let events = split(&cat(&[&truncated, &good]), DEFAULT_MAX_FRAME);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0],
        Split::Dropped(Problem::Corrupt(JpegError::UnexpectedSoi {
            at: truncated.len()
        }))
    );
    assert!(
        problems(&events)[0]
            .to_string()
            .starts_with("dropped an incomplete frame"),
        "{events:?}"
    );
    assert_eq!(events[1], Split::Frame(good.into()));
}

#[test]
fn a_damaged_frame_is_reported_and_the_next_one_found() {
    let a = corpus("jpeg_5k.jpg");
    let mut bad = corpus("jpeg_50k.jpg");
    // A first segment length of 1: the walk fails in the headers.
    bad[4..6].copy_from_slice(&[0, 1]);
    let events = split(&cat(&[&a, &bad, &a]), DEFAULT_MAX_FRAME);
    // The rest of the damaged frame is not reported a second time.
    assert_eq!(
        events,
        [
            Split::Frame(a.clone().into()),
            Split::Dropped(Problem::Corrupt(JpegError::BadSegment {
                at: 2,
                marker: bad[3]
            })),
            Split::Frame(a.into()),
        ]
    );
}

#[test]
fn a_stream_that_ends_mid_frame_emits_nothing_partial() {
    let a = corpus("jpeg_5k.jpg");
    let b = corpus("restart_markers.jpg");
    for cut in [1, 2, 3, 100, b.len() / 2, b.len() - 1] {
        let events = split(&cat(&[&a, &b[..cut]]), DEFAULT_MAX_FRAME);
        assert_eq!(events[0], Split::Frame(a.clone().into()), "cut {cut}");
        match cut {
            // Not yet a JPEG start: two stray bytes, `FF D8`, which are
            // padding-like only in part.
            1 | 2 => assert!(
                events.len() == 1 || matches!(events[1], Split::Dropped(Problem::Garbage { .. })),
                "cut {cut}: {events:?}"
            ),
            _ => assert_eq!(
                events[1..],
                [Split::Dropped(Problem::Truncated { bytes: cut })],
                "cut {cut}"
            ),
        }
    }
}

#[test]
fn the_result_does_not_depend_on_the_chunking() {
    let stream = cat(&[
        b"banner\n",
        &corpus("exif_thumbnail.jpg"),
        &corpus("truncated.jpg"),
        &corpus("progressive.jpg"),
        &corpus("garbage.jpg"),
        &corpus("restart_markers.jpg"),
        &[0xFF; 10],
        &corpus("jpeg_5k.jpg"),
        &corpus("jpeg_50k.jpg")[..1000],
    ]);
    for max_frame in [DEFAULT_MAX_FRAME, 40_000, 5_000] {
        let whole = split_in_pieces(&stream, max_frame, &mut || usize::MAX);
        // Frames of 45, 59, 37 and 5 KB; the limits drop some.
        let fit = match max_frame {
            40_000 => 2,
            5_000 => 1,
            _ => 4,
        };
        assert_eq!(frames(&whole).len(), fit, "{whole:?}");
        let bytewise = split_in_pieces(&stream, max_frame, &mut || 1);
        assert_eq!(whole, bytewise, "byte by byte, limit {max_frame}");
        let mut rng = crate::xorshift::XorShift::new(0x2545_F491_4F6C_DD1D);
        let mut random = || rng.below(70_000) + 1;
        for round in 0..20 {
            let chunked = split_in_pieces(&stream, max_frame, &mut random);
            assert_eq!(whole, chunked, "round {round}, limit {max_frame}");
        }
    }
}

#[test]
fn an_oversized_frame_is_dropped_and_the_buffer_stays_bounded() {
    let small = corpus("jpeg_5k.jpg");
    let big = corpus("jpeg_50k.jpg");
    let stream = cat(&[&small, &big, &small, &big]);
    let events = split_in_pieces(&stream, 10_000, &mut || 4096);
    assert_eq!(
        events,
        [
            Split::Frame(small.clone().into()),
            Split::Dropped(Problem::TooLarge { limit: 10_000 }),
            Split::Frame(small.into()),
            Split::Dropped(Problem::TooLarge { limit: 10_000 }),
        ]
    );
    // A stream that starts a JPEG and never ends it is dropped once,
    // and not held (`split_in_pieces` checks the buffer's size).
    let mut endless = big[..5000].to_vec();
    endless.extend_from_slice(&vec![0x55; 1_000_000]);
    let events = split_in_pieces(&endless, 10_000, &mut || 4096);
    assert_eq!(
        events,
        [Split::Dropped(Problem::TooLarge { limit: 10_000 })]
    );
    // Endless non-JPEG data is reported every `max_frame` bytes.
    let events = split_in_pieces(&vec![b'x'; 100_000], 10_000, &mut || 4096);
    assert_eq!(events.len(), 10, "{events:?}");
    assert!(events
        .iter()
        .all(|e| matches!(e, Split::Dropped(Problem::Garbage { bytes: 10_000, .. }))));
}

#[test]
fn a_frame_of_exactly_the_limit_passes() {
    let a = corpus("jpeg_5k.jpg");
    let events = split_in_pieces(&cat(&[&a, &a]), a.len(), &mut || 1000);
    assert_eq!(frames(&events).len(), 2, "{events:?}");
    let events = split_in_pieces(&a, a.len() - 1, &mut || 1000);
    assert_eq!(
        events,
        [Split::Dropped(Problem::TooLarge { limit: a.len() - 1 })]
    );
}

#[test]
fn fuzz_findings_replay_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/fuzz/split");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let run = std::panic::catch_unwind(|| fuzz_split(&data));
        assert!(run.is_ok(), "{} fails again", path.display());
    }
    // And the corpus itself, under a small and the default limit.
    for name in ["exif_thumbnail.jpg", "truncated.jpg", "progressive.jpg"] {
        for limit in [0, 200] {
            fuzz_split(&cat(&[&[limit, 7], &corpus(name)[..]]));
        }
    }
}

/// JPEG starts nested in COM segments that all end at one place,
/// followed by one long scan that ends in an error: each start, walked
/// again from scratch, used to walk the whole scan again (10 000 starts
/// in 1 MB took 30 s).
pub(crate) fn nested_starts(levels: usize, len: usize) -> Vec<u8> {
    let end = 6 * levels + 16;
    let mut out = Vec::with_capacity(len);
    for i in 0..levels {
        let seg_len = u16::try_from(end - (6 * i + 4)).unwrap();
        out.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xFE]);
        out.extend_from_slice(&seg_len.to_be_bytes());
    }
    out.resize(end, 0);
    out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02]);
    out.resize(len - 5, 0x11);
    // DHT with a bad length ends the walk with an error.
    out.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x01, 0x42]);
    out
}

/// Runs `f` on another thread and fails if it takes longer than
/// `limit`: a guard against a splitter that hangs, not a measurement.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the splitter did not finish in time: is its work growing faster than its input?")
}

#[test]
fn adversarial_streams_are_split_in_linear_work() {
    let max = 1 << 20;
    // A frame just under the limit, SOI and a scan, in small reads.
    let mut near_limit = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
    near_limit.resize(max - 2, 0x11);
    near_limit.extend_from_slice(&[0xFF, 0xD9]);
    // FF D8 FF over and over inside COM segments.
    let mut soi_in_com = vec![0xFF, 0xD8, 0xFF, 0xFE, 0xFF, 0xFF];
    while soi_in_com.len() < 4 << 20 {
        soi_in_com.extend_from_slice(&[0xFF, 0xD8, 0xFF]);
    }
    for (name, data, max) in [
        ("near the limit", near_limit, max),
        ("fill bytes", vec![0xFF; 4 << 20], max),
        ("starts in comments", soi_in_com, max),
        ("nested starts", nested_starts(10_000, max), max),
        // Took minutes: 10 000 walks of 4 MB.
        (
            "nested starts, 4 MB",
            nested_starts(10_000, 4 << 20),
            DEFAULT_MAX_FRAME,
        ),
    ] {
        for chunk in [usize::MAX, 65536, 1024] {
            let data = std::sync::Arc::new(data.clone());
            let d = data.clone();
            let work = within(Duration::from_secs(30), move || {
                let mut s = Splitter::new(max);
                for piece in d.chunks(chunk.min(d.len())) {
                    s.push(piece);
                    while s.next_event().is_some() {}
                }
                s.finish();
                while s.next_event().is_some() {}
                s.work()
            });
            let len = data.len() as u64;
            assert!(
                work <= WORK_PER_BYTE * len + 64 * (len / chunk.min(data.len()) as u64 + 1),
                "{name}, chunk {chunk}: {work} bytes looked at for {len}"
            );
        }
    }
}

#[test]
fn a_frame_cut_short_inside_a_segment_still_lets_the_next_one_through() {
    // The first frame breaks off inside its EXIF segment and the next
    // frame's bytes become that segment's: the walk fails further on,
    // and the next frame is found again inside the dropped one.
    let good = corpus("jpeg_50k.jpg");
    let exif = corpus("exif_thumbnail.jpg");
    let stream = cat(&[&exif[..300], &good, &good]);
    for chunk in [usize::MAX, 1000, 7] {
        let events = split_in_pieces(&stream, DEFAULT_MAX_FRAME, &mut || chunk);
        let got: Vec<&Bytes> = frames(&events);
        assert!(got.len() >= 2, "chunk {chunk}: {events:?}");
        assert_eq!(got[got.len() - 1].as_ref(), good.as_slice());
        assert_eq!(got[got.len() - 2].as_ref(), good.as_slice());
    }
}

#[test]
fn random_streams_hold_the_fuzz_checks() {
    // Streams assembled from the pieces JPEGs are made of (starts, ends,
    // segments, scans, fill, broken lengths), so that random ones reach
    // the walk's every state: the same checks as the fuzz target.
    const PIECES: &[&[u8]] = &[
        b"\xFF\xD8\xFF",
        b"\xFF\xD9",
        b"\xFF\xFE\x00\x06",
        b"\xFF\xFE\x00\x40",
        b"\xFF\xC0\x00\x0B\x08\x00\x10\x00\x10\x01\x01\x11\x00",
        b"\xFF\xDA\x00\x02",
        b"\xFF\xC4\x00\x01",
        b"\xFF\x00",
        b"\xFF",
        b"\xD0",
        b"\x11\x22\x33",
        b"\x00",
    ];
    let mut rng = crate::xorshift::XorShift::new(0x9E37_79B9_7F4A_7C15);
    for round in 0..2000u32 {
        let mut stream = vec![(round % 256) as u8, (round / 7 % 256) as u8];
        for _ in 0..rng.below(300) {
            stream.extend_from_slice(PIECES[rng.below(PIECES.len())]);
        }
        fuzz_split(&stream);
    }
}
