//! Unit tests of the multipart reader.

use super::*;

#[test]
fn fuzz_checks_hold_on_samples() {
    let mut ours = crate::multipart::PREAMBLE.to_vec();
    ours.extend_from_slice(b"Content-Length: 3\r\n\r\nabc\r\n--mjpegserverboundary\r\n");
    for sample in [
        &b""[..],
        b"--bnd\r\n\r\nx\r\n--bnd--\r\n",
        b"junk\n----bnd\nContent-Length: 2\n\nxy\n--bnd\n\nz",
        b"--bnd\r\nContent-Length: 99999\r\n\r\n",
        b"--bnd\r\nno colon here\r\n\r\n--bnd\r\n",
        &ours,
    ] {
        fuzz_read(sample);
    }
}

fn read_all(
    reader: &mut PartReader,
    data: &[u8],
    chunk: usize,
) -> Vec<Result<Part, MultipartError>> {
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        reader.push(piece);
        loop {
            match reader.next_part() {
                Ok(Some(p)) => out.push(Ok(p)),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
    }
    out
}

fn bodies(parts: &[Result<Part, MultipartError>]) -> Vec<Vec<u8>> {
    parts
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .map(|p| p.body.to_vec())
        .collect()
}

#[test]
fn boundaries_from_content_types() {
    let b = boundary_from_content_type;
    assert_eq!(
        b("multipart/x-mixed-replace; boundary=frame").as_deref(),
        Some("frame")
    );
    assert_eq!(
        b("multipart/x-mixed-replace;boundary=\"--x y\"").as_deref(),
        Some("--x y")
    );
    assert_eq!(
        b("Multipart/X-Mixed-Replace; charset=x; BOUNDARY=ffmpeg").as_deref(),
        Some("ffmpeg")
    );
    assert_eq!(b("image/jpeg"), None);
    assert_eq!(b("multipart/x-mixed-replace"), None);
}

#[test]
fn our_own_format_round_trips_in_any_chunking() {
    let mut wire = crate::multipart::PREAMBLE.to_vec();
    let frames: Vec<Vec<u8>> = vec![
        b"\xff\xd8one\xff\xd9".to_vec(),
        b"\xff\xd8two--x\r\n\xff\xd9".to_vec(),
    ];
    for f in &frames {
        wire.extend_from_slice(&crate::multipart::part_header(
            f.len(),
            std::time::SystemTime::now(),
        ));
        wire.extend_from_slice(f);
        wire.extend_from_slice(crate::multipart::TRAILER);
    }
    for chunk in [1, 2, 7, 64, 10_000] {
        let mut r = PartReader::new(crate::multipart::BOUNDARY, 1 << 20);
        let parts = read_all(&mut r, &wire, chunk);
        assert_eq!(bodies(&parts), frames, "chunk {chunk}");
        assert_eq!(
            parts[0].as_ref().unwrap().header("content-type"),
            Some("image/jpeg")
        );
    }
}

#[test]
fn tolerant_of_what_other_writers_do() {
    // Junk before the first boundary, LF-only lines, no Content-Length,
    // a boundary parameter with the dashes included, and a closing
    // delimiter.
    let wire = b"garbage\r\nmore\n--myb\nContent-Type: image/jpeg\n\nAAAA\n--myb\nContent-Type: image/jpeg\n\nBB\r\nB\n--myb--\n";
    let mut r = PartReader::new("--myb", 1000);
    let parts = read_all(&mut r, wire, 3);
    assert_eq!(bodies(&parts), [b"AAAA".to_vec(), b"BB\r\nB".to_vec()]);
    // The same boundary parameter, with the dashes written twice.
    let doubled = String::from_utf8_lossy(wire).replace("--myb", "----myb");
    let mut r = PartReader::new("--myb", 1000);
    let parts = read_all(&mut r, doubled.as_bytes(), 3);
    assert_eq!(bodies(&parts), [b"AAAA".to_vec(), b"BB\r\nB".to_vec()]);
    assert!(r.is_done());
    // ffmpeg's mpjpeg muxer: boundary "ffmpeg", CRLF, Content-length.
    let wire = b"--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: 3\r\n\r\nxyz\r\n--ffmpeg\r\nContent-type: image/jpeg\r\nContent-length: 2\r\n\r\nqq\r\n";
    let mut r = PartReader::new("ffmpeg", 1000);
    assert_eq!(
        bodies(&read_all(&mut r, wire, 5)),
        [b"xyz".to_vec(), b"qq".to_vec()]
    );
}

#[test]
fn a_boundary_string_inside_a_line_is_not_a_delimiter() {
    let wire = b"--b\r\n\r\nx--b y\r\n--b\r\n\r\nz\r\n--b\r\n";
    let mut r = PartReader::new("b", 1000);
    assert_eq!(
        bodies(&read_all(&mut r, wire, 1)),
        [b"x--b y".to_vec(), b"z".to_vec()]
    );
}

#[test]
fn oversize_parts_are_refused_and_memory_stays_bounded() {
    let mut wire = b"--b\r\n\r\n".to_vec();
    wire.extend(std::iter::repeat_n(b'x', 10_000));
    wire.extend_from_slice(
        b"\r\n--b\r\nContent-Length: 1\r\n\r\ny\r\n--b\r\nContent-Length: 5000\r\n\r\n",
    );
    let mut r = PartReader::new("b", 1000);
    let mut max_buffered = 0;
    let mut out = Vec::new();
    for piece in wire.chunks(100) {
        r.push(piece);
        loop {
            match r.next_part() {
                Ok(Some(p)) => out.push(Ok(p)),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
        max_buffered = max_buffered.max(r.buffered());
    }
    assert!(max_buffered < 1200, "buffered {max_buffered}");
    assert!(matches!(
        out[0],
        Err(MultipartError::TooLarge { limit: 1000 })
    ));
    assert_eq!(bodies(&out), [b"y".to_vec()]);
    assert!(matches!(
        out.last(),
        Some(Err(MultipartError::TooLarge { .. }))
    ));
}

/// Runs `f` on another thread and fails if it takes longer than
/// `limit`: a guard against a parser that hangs (a quadratic one takes
/// hours on these inputs), not a speed measurement.
fn within<T: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the reader did not finish in time: is its work growing faster than its input?")
}

/// Feeds `data` in pieces of `chunk` bytes and returns the parts, the
/// errors and the reader's work count.
fn read_counting(boundary: &str, max: usize, data: &[u8], chunk: usize) -> (usize, usize, u64) {
    let mut r = PartReader::new(boundary, max);
    let (mut parts, mut errors) = (0, 0);
    for piece in data.chunks(chunk.max(1)) {
        r.push(piece);
        loop {
            match r.next_part() {
                Ok(Some(_)) => parts += 1,
                Ok(None) => break,
                Err(_) => errors += 1,
            }
        }
    }
    (parts, errors, r.work())
}

#[test]
fn delimiters_among_endless_header_lines_are_read_in_linear_work() {
    // Each delimiter line among the lines of a header block refused for
    // having no end starts a new block; each new block's search for its
    // end used to look at the whole header limit again (found by the
    // fuzzer: a 1.3 MB body took 7 s).
    let mut wire = b"--bnd\r\n".to_vec();
    for _ in 0..100_000 {
        wire.extend_from_slice(b"--bnd\r\nX: 1\r\n");
    }
    for chunk in [usize::MAX, 8192, 100] {
        let mut r = PartReader::new("--bnd", 16 << 20);
        let out = read_all(&mut r, &wire, chunk);
        assert!(out.iter().all(|p| p.is_err()), "chunk {chunk}");
        assert!(
            r.work() <= 4 * wire.len() as u64 + 16 * wire.len().div_ceil(chunk) as u64,
            "chunk {chunk}: {} bytes looked at for {}",
            r.work(),
            wire.len()
        );
    }
}

#[test]
fn adversarial_bodies_are_read_in_linear_work() {
    const SIZE: usize = 10 << 20;
    let dashes = [b"x".to_vec(), vec![b'-'; SIZE]].concat();
    // Lines of growing runs of dashes: every line start is a candidate.
    let mut lines = Vec::with_capacity(SIZE + 4096);
    let mut n = 1;
    while lines.len() < SIZE {
        lines.extend(std::iter::repeat_n(b'-', n % 4000));
        lines.push(b'\n');
        n += 7;
    }
    // A body that never ends, as one part without Content-Length.
    let endless = [b"--b\r\n\r\n".to_vec(), vec![b'-'; SIZE]].concat();
    for (name, boundary, data) in [
        ("dashes", "-", dashes),
        ("dash lines", "-", lines.clone()),
        ("dash lines, boundary --", "--", lines),
        ("endless part", "b", endless),
    ] {
        let data = std::sync::Arc::new(data);
        for chunk in [usize::MAX, 8192, 100] {
            let d = data.clone();
            let b = boundary.to_string();
            let (_, _, work) = within(std::time::Duration::from_secs(20), move || {
                read_counting(&b, 16 << 20, &d, chunk)
            });
            let len = data.len() as u64;
            assert!(
                work <= 4 * len + 64 * (len / chunk.min(data.len()) as u64 + 1),
                "{name}, chunk {chunk}: {work} bytes looked at for {len} bytes of input"
            );
        }
    }
}

#[test]
fn a_part_is_rescanned_never_when_it_arrives_in_small_pieces() {
    // A 16 MiB part without Content-Length in 8 KiB pushes: the search
    // for its end goes on where it stopped instead of starting over.
    let mut wire = b"--b\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
    wire.extend(b"0123456789abcde\n".repeat((16 << 20) / 16 - 4));
    wire.extend_from_slice(b"\r\n--b\r\n");
    let len = wire.len() as u64;
    let (parts, errors, work) = within(std::time::Duration::from_secs(20), move || {
        read_counting("b", 16 << 20, &wire, 8192)
    });
    assert_eq!((parts, errors), (1, 0));
    assert!(work <= 3 * len, "{work} bytes looked at for {len}");
}

#[test]
fn empty_and_all_dash_boundaries_work_without_panicking() {
    for boundary in ["", "-", "--", "---"] {
        for chunk in [1, 3, 100] {
            let mut r = PartReader::new(boundary, 1000);
            let _ = read_all(&mut r, b"--\r\n\r\nabc", chunk);
            let _ = read_all(&mut r, b"\r\n--\r\n\r\n\n----\n", chunk);
        }
    }
    // A boundary of dashes is a boundary like any other: "--" plus it.
    let wire = b"---\r\n\r\nab\r\n---\r\n\r\ncd\r\n-----\r\n";
    for chunk in [1, 2, 100] {
        let mut r = PartReader::new("-", 1000);
        assert_eq!(
            bodies(&read_all(&mut r, wire, chunk)),
            [b"ab".to_vec(), b"cd".to_vec()]
        );
        assert!(r.is_done());
    }
}

#[test]
fn no_part_over_the_limit_even_when_read_whole() {
    // Read whole, the end of an oversize part was found and the part
    // handed out anyway; read in pieces it was refused.
    let mut wire = b"--b\r\n\r\n".to_vec();
    wire.extend(std::iter::repeat_n(b'x', 1500));
    wire.extend_from_slice(b"\r\n--b\r\n\r\nsmall\r\n--b--\r\n");
    for chunk in [usize::MAX, 100, 1] {
        let mut r = PartReader::new("b", 1000);
        let out = read_all(&mut r, &wire, chunk);
        assert!(
            matches!(out[0], Err(MultipartError::TooLarge { limit: 1000 })),
            "chunk {chunk}: {out:?}"
        );
        assert_eq!(bodies(&out), [b"small".to_vec()], "chunk {chunk}");
    }
}

#[test]
fn header_blocks_are_bounded() {
    // 200 KB of header lines without an end: refused as soon as the
    // block is over the header limit, not buffered up to the part limit.
    let mut wire = b"--b\r\n".to_vec();
    wire.extend(b"X-A: 1\r\n".repeat(200_000 / 8));
    wire.extend_from_slice(b"\r\nbody\r\n--b\r\n\r\nnext\r\n--b\r\n");
    for chunk in [usize::MAX, 1000] {
        let mut r = PartReader::new("b", 1 << 20);
        let mut max_buffered = 0;
        let mut out = Vec::new();
        for piece in wire.chunks(chunk.min(wire.len())) {
            r.push(piece);
            loop {
                match r.next_part() {
                    Ok(Some(p)) => out.push(Ok(p)),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e)),
                }
            }
            max_buffered = max_buffered.max(r.buffered());
        }
        assert!(
            matches!(&out[0], Err(MultipartError::BadHeader(why)) if why.contains("longer than")),
            "{out:?}"
        );
        assert_eq!(bodies(&out), [b"next".to_vec()]);
        if chunk == 1000 {
            assert!(
                max_buffered < MAX_HEADER_BLOCK + 2000,
                "buffered {max_buffered}"
            );
        }
    }
}

#[test]
fn random_bodies_hold_the_fuzz_checks() {
    // Bodies assembled from the pieces the format is made of, so that
    // random ones reach every state: the same checks as the fuzz target.
    const PIECES: &[&[u8]] = &[
        b"--bnd",
        b"----bnd",
        b"--bnd--",
        b"\r\n",
        b"\n",
        b"-",
        b"--",
        b"bnd",
        b"x",
        b"Content-Length: 3",
        b"Content-Length: 99999",
        b":",
        b"\r",
        b"abc",
    ];
    let mut rng = crate::xorshift::XorShift::new(0x2545_F491_4F6C_DD1D);
    for _ in 0..2000 {
        let mut body = Vec::new();
        for _ in 0..rng.below(200) {
            let r = rng.next();
            let piece = PIECES[(r % PIECES.len() as u64) as usize];
            let times = if r >> 40 & 0xF == 0 { 300 } else { 1 };
            for _ in 0..times {
                body.extend_from_slice(piece);
            }
        }
        fuzz_read(&body);
    }
}
