//! Images whose header declares far more pixels than the file could
//! hold ("decompression bombs"), and JPEGs whose frame header does: refused
//! from the header, before any pixel is decoded, with a reason naming
//! `--max-pixels`; the stream keeps its last good frame and the server's
//! memory stays bounded however many arrive at once.

mod common;

use common::*;
use std::time::Duration;

/// Bits packed least significant first, as WebP lossless writes them.
struct Bits {
    out: Vec<u8>,
    used: u32,
}

impl Bits {
    fn new() -> Bits {
        Bits {
            out: Vec::new(),
            used: 0,
        }
    }

    fn put(&mut self, value: u32, n: u32) {
        for i in 0..n {
            if self.used.is_multiple_of(8) {
                self.out.push(0);
            }
            if value >> i & 1 == 1 {
                *self.out.last_mut().unwrap() |= 1 << (self.used % 8);
            }
            self.used += 1;
        }
    }
}

/// A lossless WebP of `w`×`h` transparent pixels in a few dozen bytes:
/// every prefix code has a single symbol, so each pixel takes no bits and
/// the decoder fills the whole declared canvas.
fn webp_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut bits = Bits::new();
    bits.put(0x2f, 8); // VP8L signature
    bits.put(w - 1, 14);
    bits.put(h - 1, 14);
    bits.put(1, 1); // alpha used
    bits.put(0, 3); // version
    bits.put(0, 1); // no transform
    bits.put(0, 1); // no colour cache
    bits.put(0, 1); // no meta prefix codes
    for _ in 0..5 {
        // A simple prefix code with one 1-bit symbol: 0.
        bits.put(1, 1);
        bits.put(0, 1);
        bits.put(0, 1);
        bits.put(0, 1);
    }
    let mut vp8l = bits.out;
    if vp8l.len() % 2 == 1 {
        vp8l.push(0);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(4 + 8 + vp8l.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WEBPVP8L");
    out.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    out.extend_from_slice(&vp8l);
    out
}

/// An 8-bit RLE BMP of `w`×`h` pixels whose pixel data is only "end of
/// bitmap": a kilobyte that decodes to `w`×`h`×3 bytes.
fn bmp_bomb(w: u32, h: u32) -> Vec<u8> {
    let palette = 256 * 4;
    let data = [0u8, 1];
    let offset = 14 + 40 + palette;
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&((offset + data.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(offset as u32).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as i32).to_le_bytes());
    out.extend_from_slice(&(h as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // planes
    out.extend_from_slice(&8u16.to_le_bytes()); // bits per pixel
    out.extend_from_slice(&1u32.to_le_bytes()); // RLE8
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]); // resolution
    out.extend_from_slice(&256u32.to_le_bytes()); // colours used
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend(std::iter::repeat_n(0u8, palette));
    out.extend_from_slice(&data);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG header declaring `w`×`h` RGBA pixels, with a scrap of image data.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    // A zlib stream of a few zero bytes (stored block), then the end.
    png_chunk(
        &mut out,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0, 0, 0, 1,
        ],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// `jpeg` with the size in its frame header (SOF) replaced.
fn jpeg_declaring(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let mut pos = 2;
    loop {
        assert_eq!(out[pos], 0xFF, "marker expected at {pos}");
        let marker = out[pos + 1];
        let len = usize::from(u16::from_be_bytes([out[pos + 2], out[pos + 3]]));
        if (0xC0..=0xC2).contains(&marker) {
            out[pos + 5..pos + 7].copy_from_slice(&h.to_be_bytes());
            out[pos + 7..pos + 9].copy_from_slice(&w.to_be_bytes());
            return out;
        }
        pos += 2 + len;
    }
}

/// The process's peak resident memory (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024
}

#[tokio::test]
async fn bombs_are_refused_from_their_header_and_memory_stays_bounded() {
    let server = ServerProcess::start(&["--stream", "cam=push"]);
    let url = format!("http://{}/stream/cam", server.addr);
    let good = corpus("jpeg_5k.jpg");
    assert_eq!(put(url.clone(), good.clone()).await.status(), 204);
    let before = peak_rss_mib(server.child.id());

    let bombs = [
        ("webp", webp_bomb(11000, 11000)),
        ("bmp", bmp_bomb(11000, 11000)),
        ("png", png_bomb(15000, 15000)),
        ("webp", webp_bomb(16383, 9000)),
    ];
    for (kind, bomb) in &bombs {
        assert!(bomb.len() < 2000, "{kind} bomb of {} bytes", bomb.len());
    }
    let pushes: Vec<_> = bombs
        .into_iter()
        .map(|(kind, bomb)| {
            let url = url.clone();
            tokio::spawn(async move {
                let res = put(url, bomb).await;
                (kind, res.status().as_u16(), res.text().await.unwrap())
            })
        })
        .collect();
    let mut replies = Vec::new();
    for push in pushes {
        // Decoding a bomb took tens of seconds (minutes in a debug build);
        // refusing it takes no time.
        match tokio::time::timeout(Duration::from_secs(60), push).await {
            Ok(reply) => replies.push(reply.unwrap()),
            Err(_) => replies.push(("?", 0, "no reply within 60 s".into())),
        }
    }
    let peak = peak_rss_mib(server.child.id());
    eprintln!("peak RSS: {before} MiB before the bombs, {peak} MiB after four in parallel");
    for (kind, status, text) in &replies {
        assert_eq!(*status, 413, "{kind}: {text}");
        assert!(
            text.contains("pixels") && text.contains("--max-pixels"),
            "{kind}: {text}"
        );
    }
    assert!(
        text_has_dimensions(&replies[0].2, "11000x11000"),
        "{}",
        replies[0].2
    );
    assert!(peak < 300, "peak RSS {peak} MiB");
    // The stream still shows the last good frame.
    let snap = get_bytes(format!("http://{}/snapshot/cam", server.addr)).await;
    assert_eq!(snap.as_ref(), good.as_slice());
}

fn text_has_dimensions(text: &str, dims: &str) -> bool {
    text.contains(dims) || text.contains(&dims.replace('x', "×"))
}

#[tokio::test]
async fn a_jpeg_declaring_too_many_pixels_is_refused_and_the_last_frame_stays() {
    let server = ServerProcess::start(&["--stream", "cam=push", "--max-pixels", "1000000"]);
    let url = format!("http://{}/stream/cam", server.addr);
    let good = corpus("jpeg_5k.jpg");
    assert_eq!(put(url.clone(), good.clone()).await.status(), 204);
    for (w, h) in [(65535, 65535), (1001, 1000)] {
        let res = put(url.clone(), jpeg_declaring(&good, w, h)).await;
        assert_eq!(res.status(), 413, "{w}x{h}");
        let text = res.text().await.unwrap();
        assert!(
            text_has_dimensions(&text, &format!("{w}x{h}")) && text.contains("--max-pixels"),
            "{text}"
        );
    }
    // At the limit is fine (the walk does not decode, so the declared size
    // is all that is checked).
    let at_limit = jpeg_declaring(&good, 1000, 1000);
    assert_eq!(put(url.clone(), at_limit.clone()).await.status(), 204);
    let snap = get_bytes(format!("http://{}/snapshot/cam", server.addr)).await;
    assert_eq!(snap.as_ref(), at_limit.as_slice());
    // A multipart push and JPEGs back to back take the same path.
    let huge = jpeg_declaring(&good, 65535, 65535);
    let res = put(url.clone(), [good.clone(), huge].concat()).await;
    assert_eq!(res.status(), 413);
    let snap = get_bytes(format!("http://{}/snapshot/cam", server.addr)).await;
    assert_eq!(snap.as_ref(), good.as_slice());
    let status = status_json(server.addr).await;
    assert!(
        status["streams"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("max-pixels"),
        "{status}"
    );
}

#[test]
fn max_pixels_is_a_flag_and_a_config_key() {
    let (code, out, err) = run_to_end(&[
        "--stream",
        "cam=push",
        "--max-pixels",
        "1234",
        "--check-config",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("max-pixels = 1234"), "{out}");
    let (code, out, err) = run_to_end(&["--stream", "cam=push", "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("max-pixels = 50000000"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "max-pixels = 777\n[[stream]]\nname = \"cam\"\nsource = \"push\"\n",
    )
    .unwrap();
    let (code, out, err) = run_to_end(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("max-pixels = 777"), "{out}");
    let (code, _, err) = run_to_end(&["--stream", "cam=push", "--max-pixels", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--max-pixels"), "{err}");
}

/// Images under the pixel limit still take memory in proportion to their
/// area while they are converted: conversions take turns (one per core), so
/// a dozen at once hold no more than a couple of them do.
#[tokio::test]
async fn many_conversions_at_once_take_turns() {
    let server = ServerProcess::start(&["--stream", "cam=push"]);
    let url = format!("http://{}/stream/cam", server.addr);
    let before = peak_rss_mib(server.child.id());
    // 1200×1200 RGBA: 5.8 MB decoded, 4.3 MB more as RGB, each.
    let pushes: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { put(url, webp_bomb(1200, 1200)).await.status() })
        })
        .collect();
    for push in pushes {
        let status = tokio::time::timeout(Duration::from_secs(120), push)
            .await
            .expect("a conversion did not finish within 120 s")
            .unwrap();
        assert_eq!(status, 204);
    }
    let peak = peak_rss_mib(server.child.id());
    eprintln!("peak RSS: {before} MiB before, {peak} MiB after 12 conversions of 1.4 MP at once");
    let snap = get_bytes(format!("http://{}/snapshot/cam", server.addr)).await;
    assert_eq!(decode(&snap), (1200, 1200));
    // About 20 MiB per conversion running (measured: 35 MiB over the
    // start with 2 turns; 120 MiB when all 12 ran at once).
    let turns = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    assert!(
        peak < before + 10 + 20 * turns.min(12),
        "peak RSS {peak} MiB with {turns} turns"
    );
}

/// Piped JPEGs (stdin, exec) are never decoded either: the same limit on
/// what they declare.
#[tokio::test]
async fn a_piped_jpeg_declaring_too_many_pixels_is_refused() {
    use std::io::Write;
    let mut server = ServerProcess::start_with_stdin(
        &["--stream", "cam=stdin", "--max-pixels", "1000000"],
        std::process::Stdio::piped(),
    );
    let good = corpus("jpeg_5k.jpg");
    let huge = jpeg_declaring(&good, 65535, 65535);
    let mut stdin = server.child.stdin.take().unwrap();
    stdin.write_all(&[good.clone(), huge].concat()).unwrap();
    stdin.flush().unwrap();
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = status_json(server.addr).await;
        if status["streams"][0]["frames_rejected"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["streams"][0]["frames_published"], 1, "{status}");
    assert_eq!(status["streams"][0]["frames_rejected"], 1, "{status}");
    assert!(
        status["streams"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("max-pixels"),
        "{status}"
    );
    let snap = get_bytes(format!("http://{}/snapshot/cam", server.addr)).await;
    assert_eq!(snap.as_ref(), good.as_slice());
    drop(stdin);
}
