//! The command-line program: flags, errors, exit codes, signals, the folder
//! source, and that connections leave no file descriptors behind.

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mjpeg-server");

fn assert_one_line_error(args: &[&str], want: &str) {
    let (code, _, err) = run_to_end(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: more than one line: {err}"
    );
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert!(
        err.contains(want),
        "{args:?}: {err:?} does not mention {want:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn bad_flags_and_values_get_one_line_and_exit_2() {
    assert_one_line_error(&["--bogus"], "--bogus");
    assert_one_line_error(&["--fps", "0"], "from 0.001 to 1000");
    // Values whose durations would overflow a timer are refused, not a panic.
    assert_one_line_error(&["--fps", "1e-300"], "from 0.001 to 1000");
    assert_one_line_error(&["--write-timeout", "1e300"], "too long");
    assert_one_line_error(&["--header-timeout", "1e20"], "too long");
    assert_one_line_error(
        &["--stream", "a=relay:http://127.0.0.1:1/#linger=1e300"],
        "too many seconds",
    );
    assert_one_line_error(&["--stream", "a=synthetic:x.jpg#fps=1e-300"], "from 0.001");
    assert_one_line_error(&["--listen", "nowhere"], "nowhere");
    assert_one_line_error(&["--stream", "bad name=demo"], "invalid stream name");
    assert_one_line_error(&["--stream", "../x=demo"], "invalid stream name");
    assert_one_line_error(
        &["--stream", &format!("{}=demo", "x".repeat(65))],
        "invalid stream name",
    );
    assert_one_line_error(&["--stream", "cam"], "NAME=SOURCE");
    assert_one_line_error(&["--stream", "cam=ftp:x"], "unknown source");
    assert_one_line_error(
        &[
            "--listen",
            "127.0.0.1:0",
            "--stream",
            "a=demo",
            "--stream",
            "a=demo",
        ],
        "used twice",
    );
}

#[test]
fn unusable_folders_are_refused_before_serving() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("notes.txt"), "hello").unwrap();
    std::fs::write(empty.path().join("broken.jpg"), corpus("truncated.jpg")).unwrap();
    let path = format!("cam=dir:{}", empty.path().display());
    assert_one_line_error(
        &["--listen", "127.0.0.1:0", "--stream", &path],
        "has no images",
    );
    assert_one_line_error(
        &[
            "--listen",
            "127.0.0.1:0",
            "--stream",
            "cam=dir:/no/such/folder",
        ],
        "cannot read folder /no/such/folder",
    );
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_one_line_error(&["--listen", &addr], "already in use");
}

#[test]
fn help_and_version_exit_0() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--stream",
        "--fps",
        "--resend-after",
        "--write-timeout",
        "--max-connections",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
    assert!(Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap()
        .status
        .success());
}

#[tokio::test]
async fn a_folder_plays_in_natural_order_and_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let base = corpus("jpeg_5k.jpg");
    for n in [10, 2, 1] {
        std::fs::write(
            dir.path().join(format!("img{n}.jpg")),
            tagged(&base, &n.to_string()),
        )
        .unwrap();
    }
    // Junk in the folder is skipped, not served.
    std::fs::write(dir.path().join("img5.jpg"), corpus("truncated.jpg")).unwrap();
    std::fs::write(dir.path().join("readme.txt"), "not an image").unwrap();
    let p = ServerProcess::start(&[
        "--fps",
        "40",
        "--stream",
        &format!("cam=dir:{}", dir.path().display()),
    ]);

    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    let mut tags = Vec::new();
    for _ in 0..12 {
        tags.push(c.part().await.tag().unwrap());
    }
    // One cycle 1, 2, 10 appears in that order.
    let joined = tags.join(",");
    assert!(joined.contains("1,2,10,1,2,10"), "order was {joined}");

    // A file added while running is picked up; a removed one disappears.
    std::fs::write(dir.path().join("img3.jpg"), tagged(&base, "3")).unwrap();
    std::fs::remove_file(dir.path().join("img10.jpg")).unwrap();
    let mut later = Vec::new();
    for _ in 0..40 {
        later.push(c.part().await.tag().unwrap());
    }
    let joined = later.join(",");
    assert!(joined.contains("1,2,3,1,2,3"), "after changes: {joined}");
    assert!(
        !joined.ends_with(",10") && !joined[joined.len() / 2..].contains("10"),
        "{joined}"
    );
}

#[tokio::test]
async fn sigterm_closes_viewers_and_exits_0() {
    let mut p = ServerProcess::start(&[]);
    let mut c = RawClient::stream(p.addr, "/stream/demo").await;
    let part = c.part().await;
    assert_eq!(decode(&part.jpeg), (640, 360));
    assert!(signal(p.child.id(), "TERM"));
    // The stream ends at a part boundary (a frame already on its way may
    // still arrive whole).
    assert_whole_parts(&c.rest().await);
    let status = tokio::task::spawn_blocking(move || {
        let s = p.child.wait().unwrap();
        std::mem::forget(p);
        s
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn disconnects_mid_frame_leak_no_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.jpg"), corpus("jpeg_1m.jpg")).unwrap();
    let p = ServerProcess::start(&[
        "--fps",
        "30",
        "--stream",
        &format!("cam=dir:{}", dir.path().display()),
    ]);
    // Warm up: one full client, so lazily opened fds exist before counting.
    {
        let mut c = RawClient::stream(p.addr, "/stream/cam").await;
        c.part().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The folder source opens its file 30 times a second, and an HTTP
    // request holds a socket for a moment after its answer: count the
    // fewest descriptors seen over a short while, so only what stays open
    // counts.
    let settled_fds = || async {
        let mut fewest = usize::MAX;
        for _ in 0..40 {
            fewest = fewest.min(p.fds());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fewest
    };
    let before = settled_fds().await;
    for i in 0..100 {
        let mut c = RawClient::stream(p.addr, "/stream/cam").await;
        let mut buf = vec![0u8; 1000 + i * 5000];
        tokio::io::AsyncReadExt::read_exact(&mut c.reader, &mut buf)
            .await
            .unwrap();
    }
    let mut clients = u64::MAX;
    for _ in 0..200 {
        clients = status_json(p.addr).await["streams"][0]["clients"]
            .as_u64()
            .unwrap();
        if clients == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(clients, 0, "viewers still counted after they left");
    let mut after = usize::MAX;
    for _ in 0..25 {
        after = settled_fds().await;
        if after <= before {
            break;
        }
    }
    assert!(after <= before, "fds: {before} before, {after} after");
}

#[tokio::test]
async fn no_flags_serves_the_demo_on_port_8080() {
    if std::net::TcpListener::bind("127.0.0.1:8080").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "port 8080 is taken on the CI machine"
        );
        eprintln!("skipping: something else listens on 127.0.0.1:8080");
        return;
    }
    let mut child = Command::new(BIN)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let mut page = None;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get("http://127.0.0.1:8080/").await {
            page = Some(r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = page.expect("nothing on 127.0.0.1:8080");
    assert!(
        page.contains(r#"<mjpeg-stream src="/stream/demo""#),
        "{page}"
    );
    let mut c = RawClient::stream(addr, "/stream").await;
    let a = c.part().await;
    let b = c.part().await;
    assert_ne!(a.jpeg, b.jpeg, "the demo does not move");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn every_source_kind_starts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let frame = dir.path().join("frame.jpg");
    std::fs::write(&frame, tagged(&corpus("jpeg_5k.jpg"), "file")).unwrap();
    let p = ServerProcess::start(&[
        "--stream",
        &format!("w=watch:{}", frame.display()),
        "--stream",
        &format!("e=exec:cat {}", frame.display()),
        "--stream",
        "p=push",
        "--stream",
        &format!("d=dir:{}", dir.path().display()),
    ]);
    for name in ["w", "e", "d"] {
        let mut c = RawClient::stream(p.addr, &format!("/stream/{name}")).await;
        assert_eq!(c.part().await.tag().as_deref(), Some("file"), "{name}");
    }
    let http = reqwest::Client::new();
    let res = http
        .put(format!("http://{}/stream/p", p.addr))
        .body(corpus("image.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let status: serde_json::Value = http
        .get(format!("http://{}/status", p.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<&str> = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 4);
    assert_eq!(states[2], "running", "push after a frame: {status}");
}

#[test]
fn sigterm_stops_the_server_even_with_stderr_gone() {
    use std::io::{BufRead, BufReader};
    // Logging into a closed pipe once turned the shutdown signal into a
    // panic of the signal task, and the server ran on.
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while !lines.next().unwrap().unwrap().contains("serving http://") {}
    drop(lines);
    std::thread::sleep(Duration::from_millis(200));
    assert!(signal(child.id(), "TERM"));
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the server ignored SIGTERM with its stderr closed");
}

/// A child process that is stopped when dropped, so that a failing test
/// leaves no server behind.
struct Running(std::process::Child);

impl std::ops::Deref for Running {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// Starts the program with exactly `args` (no `--listen` added) and
/// RUST_LOG=info; returns it and a channel of its stderr lines.
fn spawn_logged(args: &[&str]) -> (Running, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = logged_server(args).spawn().unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Running(child), rx)
}

/// Lines from `rx` until one contains `want` (returned), or panics after
/// `within` with what came.
fn wait_line(rx: &std::sync::mpsc::Receiver<String>, want: &str, within: Duration) -> String {
    let until = std::time::Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(want) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!(
        "no line with {want:?} within {within:?}; got:\n{}",
        seen.join("\n")
    );
}

/// The addresses of every "serving http://ADDR/" line until the program
/// has logged them all (the stream URL lines that follow each one end
/// with the last stream's name).
fn serving_addrs(rx: &std::sync::mpsc::Receiver<String>) -> Vec<SocketAddr> {
    serving_addrs_and_log(rx).0
}

/// [`serving_addrs`], and the other lines read meanwhile.
fn serving_addrs_and_log(rx: &std::sync::mpsc::Receiver<String>) -> (Vec<SocketAddr>, Vec<String>) {
    let mut addrs = Vec::new();
    let mut others = Vec::new();
    while addrs.is_empty() {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("not serving; got:\n{}", others.join("\n")));
        match line.contains("serving http://") {
            true => addrs.push(line),
            false => others.push(line),
        }
    }
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        if line.contains("serving http://") {
            addrs.push(line);
        } else {
            others.push(line);
        }
    }
    let addrs = addrs
        .iter()
        .map(|l| {
            let rest = l.split("serving http://").nth(1).unwrap();
            rest.trim_end_matches('/').parse().unwrap()
        })
        .collect();
    (addrs, others)
}

#[tokio::test]
async fn a_port_alone_and_a_host_name_are_listen_addresses() {
    // A port alone is loopback, as the default is.
    for args in [&["--listen", "0"][..], &["--port", "0"]] {
        let (mut child, rx) = spawn_logged(args);
        let addrs = serving_addrs(&rx);
        assert_eq!(addrs.len(), 1, "{args:?}: {addrs:?}");
        assert_eq!(addrs[0].ip().to_string(), "127.0.0.1", "{args:?}");
        let page = reqwest::get(format!("http://{}/", addrs[0]))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("/stream/demo"), "{args:?}: {page}");
        stop(&mut child);
    }
    // A name is resolved and every address it names is listened on.
    let (mut child, rx) = spawn_logged(&["--listen", "localhost:0"]);
    let addrs = serving_addrs(&rx);
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs("localhost:0")
        .unwrap()
        .collect();
    assert!(!addrs.is_empty());
    assert!(addrs.len() <= resolved.len(), "{addrs:?} {resolved:?}");
    for addr in &addrs {
        assert!(addr.ip().is_loopback(), "{addr}");
        let res = reqwest::get(format!("http://{addr}/status")).await.unwrap();
        assert_eq!(res.status(), 200, "{addr}");
    }
    stop(&mut child);
    // The same in the config file.
    let dir = tempfile::tempdir().unwrap();
    for listen in ["0", "\"0\"", "\"localhost:0\"", "[\"0\"]"] {
        let file = dir.path().join("c.toml");
        std::fs::write(&file, format!("listen = {listen}\n")).unwrap();
        let (mut child, rx) = spawn_logged(&["--config", file.to_str().unwrap()]);
        let addrs = serving_addrs(&rx);
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback()),
            "{listen}: {addrs:?}"
        );
        let res = reqwest::get(format!("http://{}/status", addrs[0]))
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{listen}");
        stop(&mut child);
    }
}

#[test]
fn listen_mistakes_are_named() {
    assert_one_line_error(&["--port", "0", "--listen", "127.0.0.1:0"], "--port");
    assert_one_line_error(&["--port", "70000"], "70000");
    assert_one_line_error(&["--listen", "localhost"], "localhost");
    assert_one_line_error(&["--listen", "local host:80"], "local host:80");
    assert_one_line_error(&["--listen", "::1:80"], "[::1]:8080");
    // A name that does not resolve stops the server before it serves
    // (.invalid never resolves: RFC 6761).
    let (code, _, err) = run_to_end(&["--listen", "nowhere.invalid:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nowhere.invalid:0") && err.contains("does not resolve"),
        "{err}"
    );
}

#[test]
fn an_exec_command_not_on_path_is_named_at_start_and_retried() {
    let (mut child, rx) = spawn_logged(&[
        "--listen",
        "127.0.0.1:0",
        "--stream",
        "cam=exec:no-such-camera-tool -t 0 --codec mjpeg -o -",
    ]);
    let line = wait_line(&rx, "not found on PATH", Duration::from_secs(10));
    assert!(line.contains("\"no-such-camera-tool\""), "{line}");
    assert!(line.contains("WARN"), "{line}");
    // It keeps trying: the command is started again.
    wait_line(&rx, "restarting in", Duration::from_secs(10));
    wait_line(&rx, "restarting in", Duration::from_secs(10));
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    stop(&mut child);
}

#[tokio::test]
async fn a_relay_never_prints_its_password_and_says_why_it_fails() {
    // A port with nothing listening: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let source = format!("cam=relay:http://admin:secret@127.0.0.1:{port}/stream#always");
    let (code, out, err) = run_to_end(&["--check-config", "--stream", &source]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("secret"), "{out}");
    assert!(out.contains("http://admin:***@127.0.0.1"), "{out}");

    let (mut child, rx) = spawn_logged(&["--listen", "127.0.0.1:0", "--stream", &source]);
    let (addrs, mut lines) = serving_addrs_and_log(&rx);
    let addr = addrs[0];
    // Back-off 0.5, 1, 2 s: four attempts fail within 4 s.
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let status = status_json(addr).await;
    stop(&mut child);
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
    }
    let log = lines.join("\n");
    assert!(!log.contains("secret"), "{log}");
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains("WARN")).collect();
    assert!(!warnings.is_empty(), "{log}");
    assert!(warnings[0].contains("admin:***@127.0.0.1"), "{log}");
    assert!(
        warnings[0].to_lowercase().contains("connection refused"),
        "{log}"
    );
    // The same failure again and again is one warning until a minute has
    // passed, not one per attempt.
    assert_eq!(warnings.len(), 1, "{log}");
    let text = status.to_string();
    assert!(!text.contains("secret"), "{text}");
    let last = status["streams"][0]["last_error"].as_str().unwrap_or("");
    assert!(
        last.to_lowercase().contains("connection refused"),
        "{status}"
    );
    assert!(
        status["streams"][0]["upstream_reconnects"]
            .as_u64()
            .unwrap()
            >= 2,
        "{status}"
    );
}

#[test]
fn trusted_proxies_come_from_the_flag_or_the_file() {
    assert_one_line_error(&["--trusted-proxy", "10.0.0.0/33"], "10.0.0.0/33");
    let (code, out, err) = run_to_end(&["--check-config", "--trusted-proxy", "127.0.0.1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("trusted-proxy = [\"127.0.0.1/32\"]"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "trusted-proxy = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
    let (code, out, err) = run_to_end(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("trusted-proxy = [\"10.0.0.0/8\", \"::1/128\"]"),
        "{out}"
    );
    std::fs::write(&file, "trusted-proxy = \"nowhere\"\n").unwrap();
    let (code, _, err) = run_to_end(&["--check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("trusted-proxy") && err.contains("nowhere"),
        "{err}"
    );
}
