//! Unit tests of the watch source.

use super::*;

use bytes::Bytes;
use std::ffi::OsStr;

use super::checker::{looks_complete, Checker, Verdict};
use crate::convert::ConvertOptions;
use crate::test_data::corpus;

#[test]
fn targets_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(Target::of(d), Target::Folder(d.to_path_buf()));
    let missing = d.join("spool/");
    assert_eq!(Target::of(&missing), Target::Folder(missing.clone()));
    assert_eq!(
        Target::of(&d.join("graph.png")),
        Target::File {
            dir: d.to_path_buf(),
            name: "graph.png".into()
        }
    );
    assert_eq!(
        Target::of(Path::new("graph.png")),
        Target::File {
            dir: ".".into(),
            name: "graph.png".into()
        }
    );
    assert_eq!(Target::of(Path::new("/")), Target::Folder("/".into()));
    assert_eq!(Target::of(Path::new("a/..")), Target::Folder("a/..".into()));
}

#[test]
fn patterns_match_names_ignoring_case() {
    let m = compile_pattern("*.{jpg,png}").unwrap();
    assert!(m.is_match("IMG_1.JPG"));
    assert!(m.is_match("graph.png"));
    assert!(!m.is_match("notes.txt"));
    let err = compile_pattern("*.{jpg").unwrap_err();
    assert!(err.contains("\"*.{jpg\""), "{err}");
    assert!(compile_pattern("sub/*.jpg").unwrap_err().contains("'/'"));
}

#[test]
fn hidden_and_temporary_names_are_not_wanted() {
    let w = FolderWorker::new(
        ".".into(),
        None,
        false,
        None,
        SourceOptions::default(),
        Hub::new("t"),
    );
    for name in [".tmp123", "img.jpg.part", "x.tmp", "a.jpg~", ".img.jpg"] {
        assert!(!w.wanted(OsStr::new(name)), "{name}");
    }
    assert!(w.wanted(OsStr::new("img5.png")));
}

#[test]
fn partial_images_do_not_look_complete() {
    for name in ["image.png", "image.gif"] {
        let data = corpus(name);
        assert!(looks_complete(&data), "{name}");
        for cut in [0, 10, data.len() / 2, data.len() - 1] {
            assert!(!looks_complete(&data[..cut]), "{name} cut at {cut}");
        }
    }
    assert!(looks_complete(b"garbage"));
    assert!(!looks_complete(b""));
    assert!(!looks_complete(b"BM\xff\xff\x00\x00"));
    assert!(!looks_complete(b"RIFF\xff\x00\x00\x00WEBP"));
}

#[tokio::test]
async fn incomplete_bytes_are_retried_then_refused() {
    let mut c = Checker::default();
    let opts = ConvertOptions::default();
    let jpeg = Bytes::from(corpus("jpeg_5k.jpg"));
    let half = jpeg.slice(..jpeg.len() / 2);
    assert!(matches!(
        c.check(half.clone(), false, &opts).await,
        Verdict::Retry
    ));
    // The rest arrives: published at once.
    assert!(matches!(
        c.check(jpeg.clone(), false, &opts).await,
        Verdict::Frame(_)
    ));
    // Half a file that the writer closed and left alone is bad.
    assert!(matches!(
        c.check(half.clone(), true, &opts).await,
        Verdict::Retry
    ));
    tokio::time::sleep(CLOSE_SETTLE).await;
    match c.check(half, false, &opts).await {
        Verdict::Bad(reason) => assert!(reason.starts_with("truncated JPEG"), "{reason}"),
        _ => panic!("expected a bad verdict"),
    }
}

#[tokio::test]
async fn check_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WatchOptions::default();
    check(&dir.path().join("not-yet.png"), &opts).await.unwrap();
    check(dir.path(), &opts).await.unwrap();
    let err = check(&dir.path().join("missing/graph.png"), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot read folder"), "{err}");
    let err = check(&dir.path().join("missing/"), &opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot read folder"), "{err}");
    let bad = WatchOptions {
        pattern: Some("*.{jpg".into()),
        ..WatchOptions::default()
    };
    let err = check(dir.path(), &bad).await.unwrap_err().to_string();
    assert!(err.contains("pattern \"*.{jpg\""), "{err}");
}
