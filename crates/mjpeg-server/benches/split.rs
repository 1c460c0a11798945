//! Throughput of the stream splitter (`ingest::split::Splitter`), the part of
//! the `stdin` and `exec:` sources that looks at every byte.
//!
//! Run with `cargo bench --bench split`. A stream of one corpus frame
//! repeated is fed in 64 KiB pieces (what one read of a Linux pipe returns),
//! and every frame is taken out as it completes; the newest frame is kept
//! alive, as the hub keeps it, so the buffer cannot simply be reused. The
//! second figure adds `Frame::from_jpeg`, the check `Hub::publish_jpeg` does
//! on each frame.
//!
//! Plain `std::time` rather than a benchmark crate: one number per case is
//! all this needs, and it keeps the dependency list short.

use mjpeg_server::ingest::split::{Split, Splitter, DEFAULT_MAX_FRAME};
use mjpeg_server::Frame;
use std::hint::black_box;
use std::time::{Duration, Instant};

const CHUNK: usize = 64 * 1024;
const ROUNDS: usize = 5;

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
}

/// Splits `stream` once; returns the number of frames.
fn split(stream: &[u8], check: bool) -> usize {
    let mut splitter = Splitter::new(DEFAULT_MAX_FRAME);
    let mut frames = 0;
    let mut newest = None;
    for chunk in stream.chunks(CHUNK) {
        splitter.push(chunk);
        while let Some(event) = splitter.next_event() {
            match event {
                Split::Frame(jpeg) => {
                    frames += 1;
                    if check {
                        newest = Some(Frame::from_jpeg(jpeg).expect("frame checks").jpeg().clone());
                    } else {
                        newest = Some(jpeg);
                    }
                }
                Split::Dropped(problem) => panic!("{problem}"),
            }
        }
    }
    splitter.finish();
    assert!(splitter.next_event().is_none());
    black_box(newest);
    frames
}

/// The best time of a few rounds: the least disturbed by other work on the
/// machine.
fn best(stream: &[u8], copies: usize, check: bool) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let frames = split(black_box(stream), check);
            let took = start.elapsed();
            assert_eq!(frames, copies);
            took
        })
        .min()
        .unwrap_or_default()
}

fn rate(bytes: usize, took: Duration) -> String {
    let per_s = bytes as f64 / took.as_secs_f64();
    if per_s >= 1e9 {
        format!("{:.2} GB/s", per_s / 1e9)
    } else {
        format!("{:.0} MB/s", per_s / 1e6)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!(
        "splitter throughput, {} KiB reads, best of {ROUNDS}",
        CHUNK / 1024
    );
    for (name, copies) in [
        ("jpeg_5k.jpg", 20_000),
        ("jpeg_200k.jpg", 500),
        ("jpeg_1m.jpg", 100),
    ] {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let frame = corpus(name);
        let stream = frame.repeat(copies);
        let split_only = best(&stream, copies, false);
        let checked = best(&stream, copies, true);
        println!(
            "{name:>14} x{copies:<6} ({:>5.1} MB): split {:>10} ({:>7.0} frames/s)   split + Frame::from_jpeg {:>10}",
            stream.len() as f64 / 1e6,
            rate(stream.len(), split_only),
            copies as f64 / split_only.as_secs_f64(),
            rate(stream.len(), checked),
        );
    }
}
