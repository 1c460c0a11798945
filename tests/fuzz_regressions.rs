//! Every input kept in `tests/data/fuzz/TARGET/` (what a fuzz run found,
//! and hand-made seeds of each parser's edges) runs through its target's
//! checks again: a crash that was fixed stays fixed.
//!
//! To keep a new finding: copy it from `fuzz/artifacts/TARGET/` into
//! `tests/data/fuzz/TARGET/`.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let run = std::panic::catch_unwind(|| check(&data));
        assert!(run.is_ok(), "{} fails again", path.display());
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

#[test]
fn split() {
    replay("split", mjpeg_server::fuzz::split);
}

#[test]
fn multipart() {
    replay("multipart", mjpeg_server::fuzz::multipart);
}

#[test]
fn request() {
    replay("request", mjpeg_server::fuzz::request);
}

#[test]
fn config() {
    replay("config", mjpeg_server_cli::config::fuzz_config);
}

#[test]
fn reduced_decode() {
    replay("reduced_decode", mjpeg_server::fuzz::reduced_decode);
}
