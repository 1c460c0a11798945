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

#[tokio::test]
async fn one_stream_is_served_behind_the_apps_own_authentication() {
    let path = example("one_stream_behind_auth");
    let (mut child, addr) = run_example(&path, &["127.0.0.1:0"], None);
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    // The app's layer stands in front of the stream.
    let refused = client.get(url("/my/camera.mjpg")).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = client
        .get(url("/my/camera.mjpg?key=guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // With the key, by query (what an <img> sends) or header: the stream,
    // at the app's own path, with the server's answers.
    let mut c = RawClient::stream(addr, "/my/camera.mjpg?key=letmein").await;
    let part = tokio::time::timeout(Duration::from_secs(10), c.part())
        .await
        .expect("no frame from the mounted stream");
    assert_eq!(decode(&part.jpeg), (640, 360));
    let bearer = client
        .get(url("/my/camera.jpg"))
        .bearer_auth("letmein")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert_eq!(bearer.headers()["content-type"], "image/jpeg");
    let jpeg = bearer.bytes().await.unwrap();
    assert_eq!(decode(&jpeg), (640, 360));
    // A bad parameter gets the server's own refusal.
    let bad = client
        .get(url("/my/camera.mjpg?key=letmein&fps=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("fps"));
    stop(&mut child);
}

#[tokio::test]
async fn frames_published_from_a_plain_thread_are_served() {
    let path = example("publish_from_thread");
    let (mut child, addr) = run_example(&path, &[], Some("127.0.0.1:0"));
    let mut c = RawClient::stream(addr, "/stream/plasma").await;
    let first = c.part().await;
    assert_eq!(decode(&first.jpeg), (320, 240));
    // It moves: a later frame differs.
    let later = loop {
        let p = tokio::time::timeout(Duration::from_secs(5), c.part())
            .await
            .expect("the thread stopped publishing");
        if p.jpeg != first.jpeg {
            break p;
        }
    };
    assert_eq!(decode(&later.jpeg), (320, 240));
    stop(&mut child);
}
