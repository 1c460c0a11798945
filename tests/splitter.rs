//! The JPEG splitter behind `stdin`, `exec:` and relays, fed a stream built
//! to be slow to split, through the real program's standard input.

mod common;

use common::*;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// JPEG starts nested in COM segments that all end at one place, then one
/// long scan that ends in an error: every start, walked again from scratch,
/// used to walk the whole scan again.
fn nested_starts(levels: usize, len: usize) -> Vec<u8> {
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
    out.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x01, 0x42]);
    out
}

#[tokio::test]
async fn nested_jpeg_starts_on_stdin_are_split_in_linear_time() {
    let mut server = ServerProcess::start_with_stdin(&["--stream", "cam=stdin"], Stdio::piped());
    let mut stdin = server.child.stdin.take().unwrap();
    let good = corpus("jpeg_5k.jpg");
    let writer = std::thread::spawn(move || {
        stdin.write_all(&nested_starts(10_000, 4 << 20)).unwrap();
        stdin.write_all(&good).unwrap();
        stdin.flush().unwrap();
        // Keep stdin open until the test ends.
        std::thread::sleep(Duration::from_secs(60));
    });
    let started = Instant::now();
    let cam = loop {
        let status = tokio::time::timeout(Duration::from_secs(5), status_json(server.addr))
            .await
            .expect("/status did not answer within 5 s");
        let cam = status["streams"][0].clone();
        if cam["frames_published"] == 1 {
            break cam;
        }
        // Walking the same 4 MB once per nested start took minutes.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the good frame after the nested starts was not published within 30 s: {cam}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(cam["frames_rejected"].as_u64().unwrap() >= 1, "{cam}");
    let snap = get_bytes(format!("http://{}/snapshot/cam", server.addr)).await;
    assert_eq!(snap.as_ref(), corpus("jpeg_5k.jpg").as_slice());
    drop(server);
    drop(writer);
}
