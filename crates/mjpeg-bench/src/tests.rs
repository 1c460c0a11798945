//! Unit tests of the stream parser and the helpers.

use super::*;

use crate::procfs::{cpu_from_stat, machine_busy_seconds};
use crate::report::{percentile, spread};

fn jpeg() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/jpeg_5k.jpg"
    ))
    .unwrap()
}

const HEAD: &[u8] = b"HTTP/1.0 200 OK\r\ncontent-type: multipart/x-mixed-replace; boundary=b0\r\nconnection: close\r\n\r\n--b0\r\n";

fn part(jpeg: &[u8], ts: &str) -> Vec<u8> {
    let mut p = format!(
        "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {ts}\r\n\r\n",
        jpeg.len()
    )
    .into_bytes();
    p.extend_from_slice(jpeg);
    p.extend_from_slice(b"\r\n--b0\r\n");
    p
}

fn parse(stream: &[u8], chunk: usize, verify: bool) -> Result<Vec<FrameSeen>, StreamError> {
    let mut p = StreamParser::new(verify);
    let mut seen = Vec::new();
    for c in stream.chunks(chunk) {
        p.feed(c, &mut |f| seen.push(f))?;
    }
    Ok(seen)
}

#[test]
fn valid_streams_parse_in_any_chunking() {
    let j = jpeg();
    let mut s = HEAD.to_vec();
    s.extend(part(&j, "1.5"));
    s.extend(part(&j, "2.25"));
    for chunk in [1, 2, 3, 7, 100, 4096, s.len()] {
        for verify in [false, true] {
            let seen = parse(&s, chunk, verify).unwrap();
            assert_eq!(seen.len(), 2, "chunk {chunk}");
            assert_eq!(seen[1].timestamp, Some(2.25));
            assert_eq!(seen[0].len, j.len());
        }
    }
}

#[test]
fn broken_streams_are_caught() {
    let j = jpeg();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"HTTP/1.0 503 x\r\n\r\n".to_vec(), "not 200"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n".to_vec(),
            "not multipart",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-type: multipart/x-mixed-replace; boundary=b0\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
            "Transfer-Encoding",
        ),
        ([HEAD, b"Content-Type: image/jpeg\nx"].concat(), "CRLF"),
        ([HEAD, b"Content-Type: image/png\r\n"].concat(), "not image/jpeg"),
        ([HEAD, b"Content-Type: image/jpeg\r\nX-Timestamp: 1\r\n\r\n"].concat(), "Content-Length"),
        ([HEAD, b"Content-Length: 9\r\nContent-Type: image/jpeg\r\n\r\n"].concat(), "X-Timestamp"),
        ([HEAD, &[b'x'; 200][..]].concat(), "too long"),
        ([&HEAD[..HEAD.len() - 3], b"1\r\n"].concat(), "start of the body"),
    ];
    for (stream, want) in cases {
        let err = parse(&stream, 5, false).unwrap_err().to_string();
        assert!(err.contains(want), "{err} should say {want}");
    }
    // A body cut short of its Content-Length runs into the delimiter.
    let mut short = part(&j, "1");
    let at = short.iter().position(|&b| b == 0xFF).unwrap();
    short.remove(at + 100);
    let err = parse(&[HEAD, &short].concat(), 64, false).unwrap_err();
    assert!(
        matches!(
            err,
            StreamError::NotJpeg { .. } | StreamError::BadDelimiter { .. }
        ),
        "{err}"
    );
    // Not a JPEG at all.
    let err = parse(&[HEAD, &part(b"hello world", "1")].concat(), 3, false).unwrap_err();
    assert!(matches!(err, StreamError::NotJpeg { .. }), "{err}");
    // Right first and last bytes, corrupt inside: only the full walk sees it.
    let mut corrupt = j.clone();
    corrupt[2..6].copy_from_slice(&[0xFF, 0xC4, 0xFF, 0xFF]);
    let s = [HEAD, &part(&corrupt, "1")].concat();
    assert_eq!(parse(&s, 4096, false).unwrap().len(), 1);
    assert!(matches!(parse(&s, 4096, true), Err(StreamError::Jpeg(_))));
}

#[test]
fn helpers() {
    assert_eq!(parse_rate("100K"), Ok(100_000));
    assert_eq!(parse_rate("2.5MB/s"), Ok(2_500_000));
    assert_eq!(parse_rate("512"), Ok(512));
    assert!(parse_rate("fast").is_err());
    assert!(parse_rate("0").is_err());
    assert_eq!(percentile(&[1, 2, 3, 4], 0.5), 2);
    assert_eq!(percentile(&[1, 2, 3, 4], 0.99), 4);
    assert_eq!(percentile(&[7], 0.01), 7);
    let s = spread(&[1.0, 2.0, 3.0, 10.0]);
    assert_eq!((s.min, s.median, s.max, s.mean), (1.0, 2.5, 10.0, 4.0));
    let stat = "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
    assert_eq!(cpu_from_stat(stat).unwrap(), 4.0);
    assert!(cpu_seconds(std::process::id()).is_ok());
    assert!(machine_busy_seconds().unwrap() > 0.0);
    let (rss, hwm) = memory(std::process::id()).unwrap();
    assert!(rss > 0.0 && hwm >= rss);
}
