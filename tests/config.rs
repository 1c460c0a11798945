//! The config file: streams and settings from TOML, flags over it,
//! `--check-config`, errors that name file, line and key, and listening on
//! several addresses at once.

mod common;

use common::*;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stream_names(status: &serde_json::Value) -> Vec<String> {
    status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_config_file_with_two_streams_serves_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "streams.toml",
        r#"
fps = 20

[[stream]]
name = "cam"
source = "demo"

[[stream]]
name = "graphs"
source = "push"
"#,
    );
    let server = ServerProcess::start(&["--config", path.to_str().unwrap()]);
    let status = status_json(server.addr).await;
    assert_eq!(stream_names(&status), ["cam", "graphs"]);
    // The demo stream really streams.
    let mut client = RawClient::stream(server.addr, "/stream/cam").await;
    let part = client.part().await;
    assert!(!part.jpeg.is_empty());
}

#[tokio::test]
async fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The file's address is taken: the server only starts if --listen (which
    // ServerProcess passes) wins over it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = write_config(
        dir.path(),
        "streams.toml",
        &format!(
            r#"
listen = "{}"
fps = 2
jpeg-quality = 50

[[stream]]
name = "a"
source = "demo"

[[stream]]
name = "b"
source = "demo"
"#,
            taken.local_addr().unwrap()
        ),
    );
    let path = path.to_str().unwrap();
    let server =
        ServerProcess::start(&["--config", path, "--stream", "b=push", "--stream", "c=push"]);
    assert_eq!(
        stream_names(&status_json(server.addr).await),
        ["a", "b", "c"]
    );
    drop(server);

    let (code, out, err) = run_to_end(&[
        "--config",
        path,
        "--fps",
        "7",
        "--stream",
        "b=push",
        "--listen",
        "127.0.0.1:9",
        "--check-config",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fps = 7.0\n"), "{out}");
    assert!(out.contains("jpeg-quality = 50\n"), "{out}");
    assert!(out.contains("listen = [\"127.0.0.1:9\"]\n"), "{out}");
    assert!(
        out.contains("name = \"b\"\nsource = \"push\"\n"),
        "the flag's stream replaces the file's: {out}"
    );
    assert!(out.contains("name = \"a\"\nsource = \"demo\"\n"), "{out}");
}

#[test]
fn check_config_prints_the_effective_config_which_is_itself_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "streams.toml",
        r#"
# Comments are fine.
listen = ["127.0.0.1:8123", "[::1]:8123"]
max-frame-size = "2M"
resend-after = 0
allow-create = true
max-width = 640

[[stream]]
name = "plot"
source = "watch:./graph.png#poll=1"

[[stream]]
name = "cpu"
source = "chart#title=CPU: load#window=120"
"#,
    );
    let (code, out, err) = run_to_end(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "listen = [\"127.0.0.1:8123\", \"[::1]:8123\"]\n",
        "fps = 10.0\n",
        "resend-after = 0.0\n",
        "write-timeout = 10.0\n",
        "max-connections = 4096\n",
        "allow-create = true\n",
        "max-frame-size = 2097152\n",
        "jpeg-quality = 85\n",
        "max-width = 640\n",
        "[[stream]]\nname = \"plot\"\nsource = \"watch:./graph.png#poll=1\"\n",
        "[[stream]]\nname = \"cpu\"\nsource = \"chart#title=CPU: load#window=120\"\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(!out.contains("max-height"), "{out}");
    // What it prints reads back as the same configuration.
    let again = write_config(dir.path(), "effective.toml", &out);
    let (code, out2, err) = run_to_end(&["--config", again.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, out2);
    // Without a file it prints the defaults and the demo stream.
    let (code, out, _) = run_to_end(&["--check-config"]);
    assert_eq!(code, 0);
    assert!(out.contains("listen = [\"127.0.0.1:8080\"]\n"), "{out}");
    assert!(
        out.contains("name = \"demo\"\nsource = \"demo\"\n"),
        "{out}"
    );
}

#[test]
fn bad_files_exit_2_with_one_line_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        ("fps = 5\nfsp = 3\n", ":2:", &["key `fsp`", "unknown field"]),
        ("fps = \"fast\"\n", ":1:", &["key `fps`", "expected a number"]),
        ("fps = 0\n", ":1:", &["key `fps`", "not a frame rate from 0.001 to 1000"]),
        ("fps = 1e-300\n", ":1:", &["key `fps`", "not a frame rate"]),
        ("write-timeout = 1e300\n", ":1:", &["key `write-timeout`", "too long"]),
        ("max-connections = 1.5\n", ":1:", &["key `max-connections`"]),
        ("jpeg-quality = 101\n", ":1:", &["key `jpeg-quality`"]),
        ("max-frame-size = \"12X\"\n", ":1:", &["key `max-frame-size`", "not a size"]),
        ("allow-create = \"yes\"\n", ":1:", &["key `allow-create`"]),
        ("listen = [\"nowhere\"]\n", ":1:", &["key `listen`", "nowhere"]),
        (
            "\n[[stream]]\nname = \"bad name\"\nsource = \"demo\"\n",
            ":3:",
            &["key `stream.name`", "invalid stream name"],
        ),
        (
            "[[stream]]\nname = \"../x\"\nsource = \"demo\"\n",
            ":2:",
            &["key `stream.name`", "invalid stream name"],
        ),
        (
            "[[stream]]\nname = \"x\"\nsource = \"ftp:x\"\n",
            ":3:",
            &["key `stream.source`", "unknown source"],
        ),
        (
            "[[stream]]\nname = \"x\"\nsource = \"watch:\"\n",
            ":3:",
            &["key `stream.source`"],
        ),
        (
            "[[stream]]\nname = \"x\"\nsource = \"demo\"\ncolour = \"red\"\n",
            ":4:",
            &["key `stream.colour`"],
        ),
        (
            "[[stream]]\nname = \"x\"\nsource = \"demo\"\n[[stream]]\nname = \"x\"\nsource = \"push\"\n",
            ":5:",
            &["key `stream.name`", "used twice"],
        ),
        ("fps = [\n", ":1:", &["expected"]),
        ("max-header-size = 100\n", ":1:", &["key `max-header-size`", "from 1K to 1M"]),
        ("max-connections-per-address = -1\n", ":1:", &["key `max-connections-per-address`"]),
        ("header-timeout = 0\n", ":1:", &["key `header-timeout`", "not a positive number"]),
        ("allow-origin = [\"https://a.example/x\"]\n", ":1:", &["key `allow-origin`", "not an origin"]),
        ("[tls]\ncert = \"c.pem\"\n", ":1:", &["key `tls`", "missing field `key`"]),
        ("[auth]\nrealm = \"x\"\npublic = []\n", ":3:", &["key `auth.public`", "unknown field"]),
        (
            "[auth]\npublic-watch = [\"cam[\"]\n",
            ":2:",
            &["key `auth.public-watch`", "cam["],
        ),
        (
            "[[auth.user]]\nname = \"a:b\"\npassword = \"pw\"\n",
            ":1:",
            &["key `auth.user`", "without ':'"],
        ),
        (
            "\n[[auth.token]]\ntoken = \"short\"\n",
            ":2:",
            &["key `auth.token`", "at least 8 characters"],
        ),
        (
            "[[auth.token]]\ntoken = \"long-enough-token\"\nwatch = \"*\"\n",
            ":3:",
            &["key `auth.token.watch`"],
        ),
    ];
    for (text, line, wants) in cases {
        let path = write_config(dir.path(), "bad.toml", text);
        let path = path.to_str().unwrap();
        for args in [
            &["--config", path, "--check-config"][..],
            &["--config", path, "--listen", "127.0.0.1:0"][..],
        ] {
            let (code, out, err) = run_to_end(args);
            assert_eq!(code, 2, "{text:?}: {err}");
            assert!(out.is_empty(), "{text:?}: {out}");
            assert_eq!(err.trim_end().lines().count(), 1, "{text:?}: {err}");
            assert!(
                err.starts_with(&format!("error: {path}{line}")),
                "{text:?}: {err:?} does not start with the file and line {line}"
            );
            for want in *wants {
                assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
            }
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let (code, _, err) = run_to_end(&["--config", "/no/such/file.toml", "--check-config"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: cannot read config file /no/such/file.toml:"),
        "{err}"
    );
    // Sources are checked as when serving.
    let path = write_config(
        dir.path(),
        "nofolder.toml",
        "[[stream]]\nname = \"cam\"\nsource = \"dir:/no/such/folder\"\n",
    );
    let (code, _, err) = run_to_end(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read folder /no/such/folder"), "{err}");
}

#[tokio::test]
async fn auth_limits_and_tls_come_from_the_file_and_secrets_are_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let ck = Cert::new();
    let (cert, key) = ck.install(dir.path());
    let text = format!(
        r#"
max-clients-per-stream = 1
max-connections-per-address = 50
max-header-size = "4K"
header-timeout = 3
push-idle-timeout = 0
allow-origin = ["https://dash.example.com"]

[tls]
cert = "{}"
key = "{}"

[auth]
realm = "home"
public-watch = ["lobby"]

[[auth.user]]
name = "ann"
password = "pass word 1"
push = []

[[auth.token]]
token = "feed-token-123"
watch = []
push = ["cam"]

[[stream]]
name = "cam"
source = "push"

[[stream]]
name = "lobby"
source = "demo"
"#,
        cert.display(),
        key.display()
    );
    let path = write_config(dir.path(), "secure.toml", &text);
    let (code, out, err) = run_to_end(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "max-clients-per-stream = 1\n",
        "max-connections-per-address = 50\n",
        "max-header-size = 4096\n",
        "header-timeout = 3.0\n",
        "push-idle-timeout = 0.0\n",
        "allow-origin = [\"https://dash.example.com\"]\n",
        "[auth]\nrealm = \"home\"\npublic-watch = [\"lobby\"]\n",
        "[[auth.user]]\nname = \"ann\"\npassword = \"(hidden)\"\n",
        "token = \"(hidden)\"\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(
        !out.contains("pass word 1") && !out.contains("feed-token-123"),
        "{out}"
    );

    let server = ServerProcess::start(&["--config", path.to_str().unwrap()]);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = |p: &str| format!("https://{}{p}", server.addr);
    let frame = corpus("jpeg_5k.jpg");
    // The token may push to cam but not watch it; ann may watch, not push.
    let push = client.put(url("/stream/cam")).body(frame.clone());
    assert_eq!(push.send().await.unwrap().status(), 401);
    let res = client
        .put(url("/stream/cam"))
        .bearer_auth("feed-token-123")
        .body(frame.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = client
        .put(url("/stream/cam"))
        .basic_auth("ann", Some("pass word 1"))
        .body(frame.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = client
        .get(url("/snapshot/cam"))
        .basic_auth("ann", Some("pass word 1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), frame);
    let res = client
        .get(url("/snapshot/cam?token=feed-token-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = client.get(url("/snapshot/cam")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("realm=\"home\""));
    // One viewer per stream: the second gets 503.
    let first = client
        .get(url("/stream/cam"))
        .basic_auth("ann", Some("pass word 1"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = client
        .get(url("/stream/cam"))
        .basic_auth("ann", Some("pass word 1"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    drop(first);
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mjpeg-server.toml");
    let (code, out, err) = run_to_end(&["--config", example, "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[[stream]]"), "{out}");
}

/// Starts the server with `args` and returns it (stopped on drop, even if
/// the test fails) with every TCP address it says it serves on.
fn start_multi(args: &[&str], count: usize) -> (ServerProcess, Vec<SocketAddr>) {
    let mut child = logged_server(args).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addrs = Vec::new();
    while addrs.len() < count {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("serving http://").nth(1) {
            addrs.push(rest.trim_end_matches('/').parse().unwrap());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let addr = addrs[0];
    (ServerProcess { child, addr }, addrs)
}

#[tokio::test]
async fn listens_on_ipv4_and_ipv6_at_once() {
    let ipv6 = match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping the IPv6 part: cannot bind [::1]:0 here ({e})");
            false
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = if ipv6 {
        r#"listen = ["127.0.0.1:0", "[::1]:0"]"#
    } else {
        r#"listen = ["127.0.0.1:0", "127.0.0.1:0"]"#
    };
    let path = write_config(
        dir.path(),
        "streams.toml",
        &format!("{listen}\n[[stream]]\nname = \"cam\"\nsource = \"demo\"\n"),
    );
    let (child, addrs) = start_multi(&["--config", path.to_str().unwrap()], 2);
    assert!(addrs[0].is_ipv4(), "{addrs:?}");
    assert_eq!(addrs[1].is_ipv6(), ipv6, "{addrs:?}");
    for addr in &addrs {
        assert_eq!(stream_names(&status_json(*addr).await), ["cam"]);
        let mut client = RawClient::stream(*addr, "/stream/cam").await;
        assert!(!client.part().await.jpeg.is_empty());
    }
    // Repeated --listen flags do the same, and replace the file's list.
    drop(child);
    let (mut child, addrs) = start_multi(
        &[
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
        ],
        2,
    );
    assert!(addrs.iter().all(|a| a.is_ipv4()) && addrs[0] != addrs[1]);
    for addr in &addrs {
        assert_eq!(stream_names(&status_json(*addr).await), ["cam"]);
    }
    stop(&mut child.child);
    assert_eq!(child.child.wait().unwrap().code(), Some(0));
}

/// Sends `GET path` over a Unix socket and returns what comes back within
/// `limit` bytes (or until the server closes).
#[cfg(unix)]
async fn unix_get(socket: &Path, path: &str, limit: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < limit {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("timed out reading from the Unix socket")
            .unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(unix)]
#[tokio::test]
async fn serves_on_a_unix_socket_too() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mjpeg.sock");
    // A stale socket file from a server that is gone is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let path = write_config(
        dir.path(),
        "streams.toml",
        &format!(
            "listen = [\"unix:{}\", \"127.0.0.1:0\"]\n[[stream]]\nname = \"cam\"\nsource = \"demo\"\n",
            socket.display()
        ),
    );
    let (code, out, err) = run_to_end(&["--config", path.to_str().unwrap(), "--check-config"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("\"unix:{}\"", socket.display())),
        "{out}"
    );

    let (mut child, addrs) = start_multi(&["--config", path.to_str().unwrap()], 1);
    let status = unix_get(&socket, "/status", usize::MAX).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(status.contains("\"name\":\"cam\""), "{status}");
    // The direct stream path works over it too.
    let stream = unix_get(&socket, "/stream/cam", 2000).await;
    assert!(stream.starts_with("HTTP/1."), "{stream}");
    assert!(stream.lines().next().unwrap().contains(" 200 "), "{stream}");
    let lower = stream.to_ascii_lowercase();
    assert!(lower.contains("multipart/x-mixed-replace"), "{stream}");
    assert!(lower.contains("content-type: image/jpeg"), "{stream}");
    // TCP still answers alongside.
    assert_eq!(stream_names(&status_json(addrs[0]).await), ["cam"]);
    // A second server cannot take the socket while the first serves on it.
    let (code, _, err) = run_to_end(&["--listen", &format!("unix:{}", socket.display())]);
    assert_eq!(code, 2);
    assert!(err.contains("already in use"), "{err}");
    stop(&mut child.child);
    assert!(!socket.exists(), "the socket file is removed on shutdown");
}
