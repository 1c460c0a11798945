//! The examples run as their doc comments say, on the address they are
//! given: an argument or `MJPEG_LISTEN`, not a fixed port 8080 that may be
//! taken.

mod common;

use common::*;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Builds the examples (cargo does not for `cargo test --test examples`)
/// and returns the path of `name`.
fn example(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --example {name}");
    // target/debug/deps/examples-HASH -> target/debug/examples/NAME
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// Runs an example and returns it with the address it serves on: the last
/// `http://ADDR/` of its first line (the relay names its upstream first).
fn run_example(
    path: &PathBuf,
    args: &[&str],
    listen_env: Option<&str>,
) -> (std::process::Child, SocketAddr) {
    let mut cmd = Command::new(path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match listen_env {
        Some(v) => cmd.env("MJPEG_LISTEN", v),
        None => cmd.env_remove("MJPEG_LISTEN"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the example printed nothing").unwrap();
    let rest = line.rsplit("http://").next().expect(&line);
    let addr = rest.split('/').next().unwrap().parse().expect(&line);
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[tokio::test]
async fn publish_frames_listens_where_it_is_told() {
    let path = example("publish_frames");
    for (args, env) in [(&["127.0.0.1:0"][..], None), (&[][..], Some("0"))] {
        let (mut child, addr) = run_example(&path, args, env);
        assert!(addr.ip().is_loopback() && addr.port() != 8080, "{addr}");
        let mut c = RawClient::stream(addr, "/stream/cam").await;
        assert!(!c.part().await.jpeg.is_empty());
        stop(&mut child);
    }
}

#[tokio::test]
async fn the_relay_example_listens_where_it_is_told() {
    let origin = ServerProcess::start(&[]);
    let upstream = format!("http://{}/stream/demo", origin.addr);
    let path = example("relay");
    for (args, env) in [
        (vec![upstream.as_str(), "127.0.0.1:0"], None),
        (vec![upstream.as_str()], Some("127.0.0.1:0")),
    ] {
        let (mut child, addr) = run_example(&path, &args, env);
        assert_ne!(addr.port(), 8080);
        let mut c = RawClient::stream(addr, "/stream/cam").await;
        let part = tokio::time::timeout(Duration::from_secs(10), c.part())
            .await
            .expect("no frame from the relay");
        assert!(!part.jpeg.is_empty());
        stop(&mut child);
    }
}
