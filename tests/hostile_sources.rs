//! Sources fed on purpose with what should not hurt the server, each run
//! through the real program: an upstream whose image never ends, a huge
//! (sparse) file in a played or watched folder, FIFOs where files are
//! expected. Memory is read from /proc (the peak, `VmHWM`).

mod common;

use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Generous: CI machines are noisy; nothing here asserts a latency.
const PATIENCE: Duration = Duration::from_secs(15);

/// The peak resident memory of process `pid`, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("VmHWM in /proc/PID/status")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Polls stream `name`'s `/status` entry until `done` says yes; panics
/// with the last entry after [`PATIENCE`].
async fn wait_status(
    addr: std::net::SocketAddr,
    name: &str,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = stream_status(addr, name).await;
        if done(&s) {
            return s;
        }
        assert!(start.elapsed() < PATIENCE, "gave up waiting; status: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A sparse file of `len` bytes: takes no disk space, but a reader that
/// reads it whole gets `len` bytes of zeros.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Writes `data` to a hidden temporary name and renames it into place.
fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ---------------------------------------------------------------------------
// Frame size limits, enforced while reading

#[tokio::test]
async fn a_relayed_image_that_never_ends_is_cut_at_the_frame_limit() {
    // An upstream that answers `image/jpeg` and then sends forever (up to
    // 512 MB, so that a server without the limit fails the test rather
    // than the machine).
    const CAP: u64 = 512 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    {
        let (sent, cut) = (sent.clone(), cut.clone());
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4096];
            let _ = sock.read(&mut req).await;
            let head = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n";
            sock.write_all(head.as_bytes()).await.unwrap();
            sock.write_all(b"\xFF\xD8\xFF\xE0").await.unwrap();
            let chunk = vec![0x55u8; 64 * 1024];
            while sent.load(Ordering::Relaxed) < CAP {
                if sock.write_all(&chunk).await.is_err() {
                    cut.store(true, Ordering::Relaxed);
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        });
    }
    let p = ServerProcess::start(&[
        "--max-frame-size",
        "1M",
        "--stream",
        &format!("r=relay:http://{upstream}/snapshot#always"),
    ]);
    let start = Instant::now();
    while !cut.load(Ordering::Relaxed) && sent.load(Ordering::Relaxed) < CAP {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "upstream stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = sent.load(Ordering::Relaxed);
    assert!(
        cut.load(Ordering::Relaxed),
        "the relay read {total} bytes of one image without dropping the connection"
    );
    // The limit plus what sockets and the HTTP client buffer.
    assert!(
        total < 16 << 20,
        "{total} bytes sent before the relay gave up"
    );
    let peak = peak_rss(p.child.id());
    eprintln!(
        "relay: upstream sent {total} bytes before the cut; server peak RSS {} MB",
        peak >> 20
    );
    assert!(peak < 100 << 20, "peak RSS {} MB", peak >> 20);
    let s = wait_status(p.addr, "r", |s| s["last_error"].is_string()).await;
    let why = s["last_error"].as_str().unwrap();
    assert!(
        why.contains("1048576") && why.contains("--max-frame-size"),
        "{why}"
    );
}

#[tokio::test]
async fn a_huge_file_in_a_played_folder_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.jpg"),
        tagged(&corpus("jpeg_5k.jpg"), "a"),
    )
    .unwrap();
    sparse(&dir.path().join("big.jpg"), 1 << 30);
    let p = ServerProcess::start(&[
        "--fps",
        "20",
        "--max-frame-size",
        "1M",
        "--stream",
        &format!("cam=dir:{}", dir.path().display()),
    ]);
    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    // Several passes over the folder.
    for _ in 0..10 {
        assert_eq!(c.part().await.tag().as_deref(), Some("a"));
    }
    let peak = peak_rss(p.child.id());
    eprintln!("dir: server peak RSS {} MB", peak >> 20);
    assert!(peak < 100 << 20, "peak RSS {} MB", peak >> 20);
    let s = stream_status(p.addr, "cam").await;
    let why = s["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("big.jpg") && why.contains("1048576") && why.contains("--max-frame-size"),
        "{s}"
    );
}

#[tokio::test]
async fn a_watched_folder_honours_the_frame_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = ServerProcess::start(&[
        "--max-frame-size",
        "1M",
        "--stream",
        &format!("cam=watch:{}/", dir.path().display()),
    ]);
    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    // Larger than the limit, smaller than any fixed cap of the watcher.
    sparse(&dir.path().join("big.jpg"), 20 << 20);
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_atomic(
        &dir.path().join("b.jpg"),
        &tagged(&corpus("jpeg_5k.jpg"), "b"),
    );
    let part = c
        .part_within(PATIENCE)
        .await
        .expect("b.jpg never published");
    assert_eq!(part.tag().as_deref(), Some("b"));
    let s = wait_status(p.addr, "cam", |s| s["last_error"].is_string()).await;
    let why = s["last_error"].as_str().unwrap();
    assert!(
        why.contains("big.jpg") && why.contains("1048576") && why.contains("--max-frame-size"),
        "{why}"
    );
}

// ---------------------------------------------------------------------------
// FIFOs where files are expected

#[tokio::test]
async fn a_fifo_in_a_watched_folder_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = ServerProcess::start(&["--stream", &format!("cam=watch:{}/", dir.path().display())]);
    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    mkfifo(&dir.path().join("pipe.jpg"));
    // The FIFO is refused, not opened for a read that would wait for a
    // writer (the source would then never report anything again). The
    // refusal is awaited before the next file is written: on a loaded
    // machine, a file written during the FIFO's settle time was once taken
    // first, and the FIFO was then never reported.
    let s = wait_status(p.addr, "cam", |s| s["last_error"].is_string()).await;
    let why = s["last_error"].as_str().unwrap();
    assert!(
        why.contains("pipe.jpg") && why.contains("not a regular file"),
        "{why}"
    );
    // And the source goes on.
    write_atomic(
        &dir.path().join("a.jpg"),
        &tagged(&corpus("jpeg_5k.jpg"), "after the fifo"),
    );
    let part = c
        .part_within(PATIENCE)
        .await
        .expect("the image after the FIFO was never published");
    assert_eq!(part.tag().as_deref(), Some("after the fifo"));
    let status = terminate_within(p, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_fifo_in_a_watched_folder_before_the_start_is_reported_too() {
    // Made before the watch begins, it has no event: the first look at the
    // folder reports it. (A race of the test above once made it so, and
    // the FIFO then went unreported.)
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("early.jpg"));
    let p = ServerProcess::start(&["--stream", &format!("cam=watch:{}/", dir.path().display())]);
    let s = wait_status(p.addr, "cam", |s| s["last_error"].is_string()).await;
    let why = s["last_error"].as_str().unwrap();
    assert!(
        why.contains("early.jpg") && why.contains("not a regular file (a FIFO)"),
        "{why}"
    );
    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    write_atomic(
        &dir.path().join("a.jpg"),
        &tagged(&corpus("jpeg_5k.jpg"), "after the early fifo"),
    );
    let part = c
        .part_within(PATIENCE)
        .await
        .expect("the image after the FIFO was never published");
    assert_eq!(part.tag().as_deref(), Some("after the early fifo"));
    let s = stream_status(p.addr, "cam").await;
    assert_eq!(s["frames_rejected"], 1, "the FIFO reported once: {s}");
}

#[tokio::test]
async fn a_watched_fifo_blocks_neither_the_source_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("graph.jpg");
    mkfifo(&fifo);
    let p = ServerProcess::start(&["--stream", &format!("cam=watch:{}", fifo.display())]);
    let s = wait_status(p.addr, "cam", |s| {
        s["source"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not a regular file"))
    })
    .await;
    assert_eq!(s["source"]["state"], "waiting", "{s}");
    // Replaced by a real image: published.
    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    write_atomic(&fifo, &tagged(&corpus("jpeg_5k.jpg"), "file"));
    let part = c.part_within(PATIENCE).await.expect("never published");
    assert_eq!(part.tag().as_deref(), Some("file"));
    // And back to a FIFO: shutdown does not wait for a writer.
    std::fs::remove_file(&fifo).unwrap();
    mkfifo(&fifo);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = terminate_within(p, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_fifo_in_a_played_folder_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("0.jpg"));
    std::fs::write(
        dir.path().join("1.jpg"),
        tagged(&corpus("jpeg_5k.jpg"), "one"),
    )
    .unwrap();
    mkfifo(&dir.path().join("2.jpg"));
    let p = ServerProcess::start(&[
        "--fps",
        "20",
        "--stream",
        &format!("cam=dir:{}", dir.path().display()),
    ]);
    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    for _ in 0..5 {
        assert_eq!(c.part().await.tag().as_deref(), Some("one"));
    }
    let status = terminate_within(p, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

/// A file over the limit that is in the watched folder already when the
/// source starts is reported too: no event brings a file seen at start
/// back, so a silent skip there was never reported at all.
#[tokio::test]
async fn an_oversize_file_present_at_start_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    sparse(&dir.path().join("big.jpg"), 20 << 20);
    let p = ServerProcess::start(&[
        "--max-frame-size",
        "1M",
        "--stream",
        &format!("cam=watch:{}/", dir.path().display()),
    ]);
    let s = wait_status(p.addr, "cam", |s| s["last_error"].is_string()).await;
    let why = s["last_error"].as_str().unwrap();
    assert!(
        why.contains("big.jpg") && why.contains("1048576") && why.contains("--max-frame-size"),
        "{why}"
    );
}
