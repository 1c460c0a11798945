//! End-to-end behaviour of `watch:` sources over real HTTP: a watched file
//! rewritten by rename or in place, deleted and recreated, in other formats
//! and broken; a watched folder with a pattern and delete-after; polling.

mod common;

use common::*;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::hub::SourceState;
use mjpeg_server::source::watch::{self, WatchOptions};
use mjpeg_server::source::SourceOptions;
use mjpeg_server::{Hub, ServerOptions};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Generous: CI machines are noisy, and nothing here asserts a latency.
const PATIENCE: Duration = Duration::from_secs(10);

fn opts(resend_after: Option<Duration>) -> ServerOptions {
    ServerOptions {
        http: HttpOptions {
            resend_after,
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    }
}

/// A server with one stream, `cam`, fed by a watch of `path`.
async fn serve(path: &Path, wopts: WatchOptions, resend: Option<Duration>) -> TestServer {
    let srv = TestServer::start(&["cam"], opts(resend)).await;
    tokio::spawn(watch::run(
        path.to_path_buf(),
        wopts,
        SourceOptions::default(),
        srv.hub("cam"),
        srv.token.clone(),
    ));
    srv
}

/// Writes `data` to a hidden temporary file next to `path` and renames it
/// into place, as careful writers do.
fn write_atomic(path: &Path, data: &[u8]) {
    let name = path.file_name().unwrap().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Rewrites `path` in place (truncate, then small writes with pauses), as
/// careless writers do: a reader can see every prefix of `data`.
fn write_in_place(path: &Path, data: &[u8], chunk: usize, pause: Duration) {
    let mut f = std::fs::File::create(path).unwrap();
    for c in data.chunks(chunk) {
        f.write_all(c).unwrap();
        std::thread::sleep(pause);
    }
}

/// Waits until `cond` holds, failing with `what` after [`PATIENCE`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn state(hub: &Hub) -> SourceState {
    hub.stats().source
}

fn waiting_for(hub: &Hub, text: &str) -> bool {
    matches!(state(hub), SourceState::Waiting(s) if s.contains(text))
}

/// Reads parts until one tagged `tag` arrives; returns it.
async fn until_tag(c: &mut RawClient, tag: &str) -> Part {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = PATIENCE.saturating_sub(start.elapsed());
        let Some(part) = c.part_within(left).await else {
            panic!("no part tagged {tag} within {PATIENCE:?}; saw {seen:?}");
        };
        if part.tag().as_deref() == Some(tag) {
            return part;
        }
        seen.push(part.tag());
    }
}

#[tokio::test]
async fn a_file_replaced_by_rename_reaches_a_viewer_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.jpg");
    let srv = serve(&file, WatchOptions::default(), None).await;
    let hub = srv.hub("cam");
    wait_for("the waiting state", || {
        waiting_for(&hub, "does not exist yet")
    })
    .await;

    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    let base = corpus("jpeg_5k.jpg");
    for i in 0..5 {
        let version = tagged(&base, &format!("rename-{i}"));
        write_atomic(&file, &version);
        let part = until_tag(&mut c, &format!("rename-{i}")).await;
        assert_eq!(part.jpeg, version);
    }
    let stats = hub.stats();
    assert_eq!(stats.frames_published, 5);
    assert_eq!(stats.frames_rejected, 0);
    assert_eq!(stats.source, SourceState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rewritten_in_place_never_shows_half_a_frame() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.jpg");
    let srv = serve(&file, WatchOptions::default(), None).await;
    let hub = srv.hub("cam");
    wait_for("the waiting state", || {
        waiting_for(&hub, "does not exist yet")
    })
    .await;

    // Tags of one length: every version has the same size, so only the
    // content tells a half-written file from a whole one.
    let base = corpus("jpeg_50k.jpg");
    let versions: Vec<Vec<u8>> = (0..8)
        .map(|i| tagged(&base, &format!("in-place-{i:02}")))
        .collect();
    let by_tag: HashMap<String, Vec<u8>> = versions
        .iter()
        .map(|v| (tag_of(v).unwrap(), v.clone()))
        .collect();
    let last = tag_of(versions.last().unwrap()).unwrap();

    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    let writer = {
        let file = file.clone();
        let versions = versions.clone();
        tokio::task::spawn_blocking(move || {
            for v in &versions {
                write_in_place(&file, v, 1024, Duration::from_millis(1));
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let mut received = 0;
    loop {
        let part = c
            .part_within(PATIENCE)
            .await
            .expect("the final version did not arrive");
        decode(&part.jpeg);
        let tag = part
            .tag()
            .expect("a frame without a tag: not a whole version");
        assert_eq!(
            Some(&part.jpeg),
            by_tag.get(&tag),
            "frame tagged {tag} differs from that version"
        );
        received += 1;
        if tag == last {
            break;
        }
    }
    writer.await.unwrap();
    let stats = hub.stats();
    assert!(received >= 1);
    // Each whole version is published at most once, and no half-written
    // one was refused as bad.
    assert!(stats.frames_published <= versions.len() as u64, "{stats:?}");
    assert_eq!(stats.frames_rejected, 0, "{stats:?}");
}

#[tokio::test]
async fn a_deleted_file_keeps_its_last_frame_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.jpg");
    let srv = serve(
        &file,
        WatchOptions::default(),
        Some(Duration::from_millis(300)),
    )
    .await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_5k.jpg");
    let first = tagged(&base, "before");
    write_atomic(&file, &first);

    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    until_tag(&mut c, "before").await;
    std::fs::remove_file(&file).unwrap();
    wait_for("the removed state", || waiting_for(&hub, "was removed")).await;

    // The viewer is re-sent the last frame, and a snapshot still has it.
    let again = c.part_within(PATIENCE).await.expect("no idle re-send");
    assert_eq!(again.jpeg, first);
    let snap = reqwest::get(srv.url("/snapshot/cam")).await.unwrap();
    assert_eq!(snap.status(), 200);
    assert_eq!(snap.bytes().await.unwrap().as_ref(), first.as_slice());

    let second = tagged(&base, "after");
    std::fs::write(&file, &second).unwrap();
    let part = until_tag(&mut c, "after").await;
    assert_eq!(part.jpeg, second);
    wait_for("the running state", || state(&hub) == SourceState::Running).await;
    assert_eq!(hub.stats().frames_rejected, 0);
}

#[tokio::test]
async fn other_formats_arrive_as_jpeg_of_the_same_size() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.png");
    let srv = serve(&file, WatchOptions::default(), None).await;
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;

    for (name, size) in [("image.png", (320, 240)), ("image.gif", (160, 120))] {
        std::fs::write(&file, corpus(name)).unwrap();
        let part = c.part_within(PATIENCE).await.expect("no frame");
        assert_eq!(part.get("Content-Type"), Some("image/jpeg"));
        assert_eq!(&part.jpeg[..2], &[0xFF, 0xD8], "{name}");
        assert_eq!(decode(&part.jpeg), size, "{name}");
    }
    assert_eq!(srv.hub("cam").stats().frames_rejected, 0);
}

#[tokio::test]
async fn a_folder_publishes_arrivals_in_order_and_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let wopts = WatchOptions {
        pattern: Some("*.jpg".into()),
        delete_after: true,
        poll: None,
    };
    let srv = serve(&spool, wopts, None).await;
    let hub = srv.hub("cam");
    wait_for("the waiting state", || {
        waiting_for(&hub, "matching \"*.jpg\"")
    })
    .await;
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;

    // Names in the reverse of arrival order: the order seen must be the
    // order of arrival, not of names.
    let base = corpus("jpeg_5k.jpg");
    let names = ["zeta.jpg", "mid.jpg", "alpha.jpg"];
    for (i, name) in names.iter().enumerate() {
        let tmp = spool.join(format!(".tmp{i}"));
        std::fs::write(&tmp, tagged(&base, &format!("arrival-{i}"))).unwrap();
        std::fs::rename(&tmp, spool.join(name)).unwrap();
        // Files the pattern or the name rule out, arriving in between.
        std::fs::write(spool.join(format!("skip{i}.png")), corpus("image.png")).unwrap();
        std::fs::write(spool.join(format!(".hidden{i}.jpg")), &base).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut order = Vec::new();
    loop {
        let part = c.part_within(PATIENCE).await.expect("no frame");
        let tag = part.tag().expect("untagged frame");
        if order.last() != Some(&tag) {
            order.push(tag.clone());
        }
        if tag == "arrival-2" {
            break;
        }
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "frames out of arrival order");

    // A writer's temporary files, renamed to their final name: once each.
    for (tmp, name, tag) in [
        (".tmp123", "img5.jpg", "renamed-hidden"),
        ("upload.jpg.part", "img6.jpg", "renamed-part"),
    ] {
        std::fs::write(spool.join(tmp), tagged(&base, tag)).unwrap();
        std::fs::rename(spool.join(tmp), spool.join(name)).unwrap();
        until_tag(&mut c, tag).await;
    }

    wait_for("all arrivals deleted", || {
        names
            .iter()
            .chain(&["img5.jpg", "img6.jpg"])
            .all(|n| !spool.join(n).exists())
    })
    .await;
    let stats = hub.stats();
    assert_eq!(stats.frames_published, 5, "{stats:?}");
    assert_eq!(stats.frames_rejected, 0, "{stats:?}");
    assert_eq!(stats.source, SourceState::Running);
    for i in 0..3 {
        assert!(spool.join(format!("skip{i}.png")).exists());
        assert!(spool.join(format!(".hidden{i}.jpg")).exists());
    }
}

#[tokio::test]
async fn a_folder_shows_its_newest_image_at_start_and_keeps_files() {
    let dir = tempfile::tempdir().unwrap();
    let base = corpus("jpeg_5k.jpg");
    std::fs::write(dir.path().join("old.jpg"), tagged(&base, "old")).unwrap();
    // A minute older, whatever the file system's time resolution.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("old.jpg"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(dir.path().join("new.jpg"), tagged(&base, "new")).unwrap();

    let srv = serve(dir.path(), WatchOptions::default(), None).await;
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    let part = c.part_within(PATIENCE).await.expect("no frame at start");
    assert_eq!(part.tag().as_deref(), Some("new"));
    std::fs::write(dir.path().join("later.jpg"), tagged(&base, "later")).unwrap();
    until_tag(&mut c, "later").await;
    assert!(
        dir.path().join("later.jpg").exists(),
        "deleted without delete_after"
    );
    assert_eq!(srv.hub("cam").stats().frames_published, 2);
}

#[tokio::test]
async fn a_bad_file_is_refused_once_and_the_last_good_frame_stays() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.jpg");
    let srv = serve(
        &file,
        WatchOptions::default(),
        Some(Duration::from_millis(300)),
    )
    .await;
    let hub = srv.hub("cam");
    let good = tagged(&corpus("jpeg_5k.jpg"), "good");
    std::fs::write(&file, &good).unwrap();
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    until_tag(&mut c, "good").await;

    std::fs::write(&file, corpus("truncated.jpg")).unwrap();
    wait_for("the truncated file to be refused", || {
        hub.stats().frames_rejected == 1
    })
    .await;
    let err = hub.stats().last_error.unwrap();
    assert!(
        err.contains("graph.jpg") && err.contains("truncated"),
        "{err}"
    );
    assert!(waiting_for(&hub, "not a usable image"), "{:?}", state(&hub));
    // Viewers keep the last good frame.
    let part = c.part_within(PATIENCE).await.expect("no re-send");
    assert_eq!(part.jpeg, good);
    assert_eq!(hub.latest().unwrap().jpeg().as_ref(), good.as_slice());

    std::fs::write(&file, corpus("garbage.jpg")).unwrap();
    wait_for("the garbage file to be refused", || {
        hub.stats().frames_rejected == 2
    })
    .await;
    let err = hub.stats().last_error.unwrap();
    assert!(
        err.contains("graph.jpg") && err.contains("not an image"),
        "{err}"
    );

    // The same bad bytes again are not reported again.
    std::fs::write(&file, corpus("garbage.jpg")).unwrap();
    tokio::time::sleep(watch::CLOSE_SETTLE * 3).await;
    assert_eq!(hub.stats().frames_rejected, 2);
    assert_eq!(hub.stats().frames_published, 1);

    let fixed = tagged(&corpus("jpeg_5k.jpg"), "fixed");
    std::fs::write(&file, &fixed).unwrap();
    until_tag(&mut c, "fixed").await;
    wait_for("the running state", || state(&hub) == SourceState::Running).await;
}

#[tokio::test]
async fn a_bad_file_in_a_folder_is_refused_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let wopts = WatchOptions {
        delete_after: true,
        ..WatchOptions::default()
    };
    let srv = serve(dir.path(), wopts, None).await;
    let hub = srv.hub("cam");
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    let base = corpus("jpeg_5k.jpg");
    std::fs::write(dir.path().join("1.jpg"), tagged(&base, "one")).unwrap();
    until_tag(&mut c, "one").await;
    std::fs::write(dir.path().join("2.jpg"), corpus("truncated.jpg")).unwrap();
    std::fs::write(dir.path().join("3.jpg"), tagged(&base, "three")).unwrap();
    until_tag(&mut c, "three").await;

    let stats = hub.stats();
    assert_eq!(stats.frames_rejected, 1, "{stats:?}");
    assert!(stats.last_error.unwrap().contains("2.jpg"));
    assert!(dir.path().join("2.jpg").exists(), "a bad file was deleted");
    wait_for("published files deleted", || {
        !dir.path().join("1.jpg").exists() && !dir.path().join("3.jpg").exists()
    })
    .await;
}

#[tokio::test]
async fn polling_sees_files_and_folders_without_events() {
    let dir = tempfile::tempdir().unwrap();
    let poll = WatchOptions {
        poll: Some(Duration::from_millis(50)),
        ..WatchOptions::default()
    };
    let file = dir.path().join("graph.jpg");
    let srv = serve(&file, poll.clone(), None).await;
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    let base = corpus("jpeg_5k.jpg");
    for i in 0..3 {
        // In place and by rename: both are seen by size, time or inode.
        let v = tagged(&base, &format!("poll-{i}"));
        if i % 2 == 0 {
            write_atomic(&file, &v);
        } else {
            std::fs::write(&file, &v).unwrap();
        }
        assert_eq!(until_tag(&mut c, &format!("poll-{i}")).await.jpeg, v);
    }

    let folder = dir.path().join("in");
    std::fs::create_dir(&folder).unwrap();
    let srv = serve(&folder, poll, None).await;
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    for i in 0..3 {
        std::fs::write(
            folder.join(format!("{i}.jpg")),
            tagged(&base, &format!("f-{i}")),
        )
        .unwrap();
        until_tag(&mut c, &format!("f-{i}")).await;
    }
    assert_eq!(srv.hub("cam").stats().frames_rejected, 0);
}

#[tokio::test]
async fn a_folder_that_appears_later_is_watched_then() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("later/");
    let srv = serve(&folder, WatchOptions::default(), None).await;
    let hub = srv.hub("cam");
    wait_for("the missing state", || waiting_for(&hub, "does not exist")).await;
    std::fs::create_dir(&folder).unwrap();
    wait_for("the folder to be watched", || {
        waiting_for(&hub, "waiting for images")
    })
    .await;
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    write_atomic(&folder.join("a.jpg"), &tagged(&corpus("jpeg_5k.jpg"), "a"));
    until_tag(&mut c, "a").await;
}

/// Publish latency: from the moment just before a writer's last step (the
/// rename, or the last write before closing) to the moment the new frame
/// became the hub's newest (the hub's own publish time, so that the thread
/// that notices it late does not count). Printed, not asserted: run with
/// `cargo test --release --test watch -- --ignored --nocapture latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; prints figures"]
async fn latency() {
    let dir = tempfile::tempdir().unwrap();
    let base = corpus("jpeg_50k.jpg");
    let png = corpus("image.png");
    let cases: [(&str, &str, Writer, bool); 4] = [
        ("JPEG 50 KB, temp + rename", "a.jpg", rename_timed, false),
        (
            "JPEG 50 KB, in place, one write",
            "b.jpg",
            once_timed,
            false,
        ),
        (
            "JPEG 50 KB, in place, 1 KB writes",
            "c.jpg",
            chunked_timed,
            false,
        ),
        ("PNG 320x240, temp + rename", "d.png", rename_timed, true),
    ];
    for (what, name, write, is_png) in cases {
        let file: PathBuf = dir.path().join(name);
        let hub = Hub::new("lat");
        let token = tokio_util::sync::CancellationToken::new();
        tokio::spawn(watch::run(
            file.clone(),
            WatchOptions::default(),
            SourceOptions::default(),
            hub.clone(),
            token.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut times = Vec::new();
        for trial in 0..21 {
            let data = if is_png {
                // Different bytes of the same picture each time.
                png_with_text(&png, &format!("trial {trial}"))
            } else {
                tagged(&base, &format!("trial-{trial:02}"))
            };
            let before = hub.latest().map_or(0, |p| p.seq());
            let file = file.clone();
            let hub = hub.clone();
            let dt = tokio::task::spawn_blocking(move || {
                let start = write(&file, &data);
                loop {
                    if let Some(p) = hub.latest().filter(|p| p.seq() != before) {
                        let published = Instant::now() - p.age();
                        return published.saturating_duration_since(start);
                    }
                    assert!(start.elapsed() < PATIENCE, "frame never published");
                    std::thread::yield_now();
                }
            })
            .await
            .unwrap();
            // The first trial includes warming up (page cache, thread pool).
            if trial > 0 {
                times.push(dt);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        token.cancel();
        times.sort();
        println!(
            "{what}: median {:.2} ms, max {:.2} ms over {} trials",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            times.len()
        );
    }
}

/// Writes a file and returns the instant just before its last step.
type Writer = fn(&Path, &[u8]) -> Instant;

fn rename_timed(path: &Path, data: &[u8]) -> Instant {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    let start = Instant::now();
    std::fs::rename(&tmp, path).unwrap();
    start
}

fn once_timed(path: &Path, data: &[u8]) -> Instant {
    let start = Instant::now();
    std::fs::write(path, data).unwrap();
    start
}

fn chunked_timed(path: &Path, data: &[u8]) -> Instant {
    let mut f = std::fs::File::create(path).unwrap();
    let (head, tail) = data.split_at(data.len() - 1024);
    for c in head.chunks(1024) {
        f.write_all(c).unwrap();
    }
    let start = Instant::now();
    f.write_all(tail).unwrap();
    drop(f);
    start
}

/// `png` with a `tEXt` chunk inserted after IHDR, so that every trial writes
/// different bytes of the same picture.
fn png_with_text(png: &[u8], text: &str) -> Vec<u8> {
    let mut chunk = Vec::new();
    let body = [b"tEXtComment\0".as_slice(), text.as_bytes()].concat();
    chunk.extend_from_slice(&u32::try_from(body.len() - 4).unwrap().to_be_bytes());
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    // Signature (8) + IHDR (4 length + 4 type + 13 data + 4 CRC).
    let at = 8 + 25;
    [&png[..at], &chunk, &png[at..]].concat()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test]
async fn a_file_whose_folder_is_deleted_and_recreated_is_watched_again() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("plots");
    std::fs::create_dir(&folder).unwrap();
    let file = folder.join("graph.jpg");
    let srv = serve(&file, WatchOptions::default(), None).await;
    let hub = srv.hub("cam");
    let base = corpus("jpeg_5k.jpg");
    let mut c = RawClient::stream(srv.addr, "/stream/cam").await;
    write_atomic(&file, &tagged(&base, "first"));
    until_tag(&mut c, "first").await;

    std::fs::remove_dir_all(&folder).unwrap();
    wait_for("the missing-folder state", || {
        waiting_for(&hub, "does not exist")
    })
    .await;
    std::fs::create_dir(&folder).unwrap();
    write_atomic(&file, &tagged(&base, "second"));
    until_tag(&mut c, "second").await;
    assert_eq!(hub.latest().unwrap().seq(), 2);
}
