//! Test helpers: start the real server on 127.0.0.1:0, and a strict raw
//! client that reads the stream byte by byte as a picky embedded client
//! would.

#![allow(dead_code)]

use mjpeg_server::{Hub, Server, ServerOptions, Streams};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub const BOUNDARY: &str = "mjpegserverboundary";

/// A corpus file from tests/data.
pub fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("tests/data/{name}: {e}"))
}

/// A valid JPEG that carries `tag` in a COM segment right after SOI, so a
/// test can tell frames apart.
pub fn tagged(base: &[u8], tag: &str) -> Vec<u8> {
    let len = u16::try_from(tag.len() + 2).unwrap().to_be_bytes();
    let mut out = Vec::with_capacity(base.len() + tag.len() + 4);
    out.extend_from_slice(&base[..2]);
    out.extend_from_slice(&[0xFF, 0xFE, len[0], len[1]]);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(&base[2..]);
    out
}

/// The tag of a frame made by [`tagged`].
pub fn tag_of(jpeg: &[u8]) -> Option<String> {
    if jpeg.len() < 6 || jpeg[2..4] != [0xFF, 0xFE] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    String::from_utf8(jpeg.get(6..4 + len)?.to_vec()).ok()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub streams: Streams,
    pub token: CancellationToken,
    pub done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(names: &[&str], opts: ServerOptions) -> TestServer {
        let streams = Streams::new();
        for n in names {
            streams.add(n).unwrap();
        }
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), streams.clone(), opts)
            .await
            .unwrap();
        let addr = server.local_addr();
        let token = server.shutdown_token();
        let done = Some(tokio::spawn(server.run()));
        TestServer {
            addr,
            streams,
            token,
            done,
        }
    }

    pub fn hub(&self, name: &str) -> Hub {
        self.streams.get(name).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the stream has `n` clients (the server side noticed).
    pub async fn wait_clients(&self, name: &str, n: usize) {
        let hub = self.hub(name);
        for _ in 0..500 {
            if hub.stats().clients == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "stream {name}: expected {n} clients, have {}",
            hub.stats().clients
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// A response head as read off the wire.
#[derive(Debug)]
pub struct Head {
    pub status_line: String,
    pub status: u16,
    /// Lower-cased names, values as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One part of a multipart stream.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub jpeg: Vec<u8>,
}

impl Part {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn timestamp(&self) -> f64 {
        self.get("X-Timestamp").unwrap().parse().unwrap()
    }

    pub fn tag(&self) -> Option<String> {
        tag_of(&self.jpeg)
    }
}

/// A raw HTTP/1.1 client on a plain socket.
pub struct RawClient {
    pub reader: BufReader<TcpStream>,
}

impl RawClient {
    /// Connects and sends `METHOD path` with nothing but a Host header.
    pub async fn request(addr: SocketAddr, method: &str, path: &str) -> RawClient {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        RawClient {
            reader: BufReader::new(s),
        }
    }

    /// Connects and sends `raw` as is (a request with headers of the
    /// test's choosing, or a malformed one).
    pub async fn send(addr: SocketAddr, raw: impl AsRef<[u8]>) -> RawClient {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw.as_ref()).await.unwrap();
        RawClient {
            reader: BufReader::new(s),
        }
    }

    async fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            self.reader.read_until(b'\n', &mut buf),
        )
        .await
        .expect("timed out reading a line")
        .unwrap();
        assert!(n > 0, "connection closed while reading a line");
        assert!(buf.ends_with(b"\r\n"), "line not ended by CRLF: {buf:?}");
        buf.truncate(buf.len() - 2);
        String::from_utf8(buf).unwrap()
    }

    pub async fn head(&mut self) -> Head {
        let status_line = self.line().await;
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
        }
        Head {
            status_line,
            status,
            headers,
        }
    }

    /// Reads the opening delimiter `--BOUNDARY\r\n`.
    pub async fn preamble(&mut self) {
        assert_eq!(self.line().await, format!("--{BOUNDARY}"));
    }

    /// Reads one part strictly: header lines, a blank line, exactly
    /// Content-Length bytes, then `\r\n--BOUNDARY\r\n`.
    pub async fn part(&mut self) -> Part {
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            assert!(
                line.len() < 128,
                "part header line too long for ffmpeg: {line}"
            );
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(": ").unwrap();
            headers.push((n.to_string(), v.to_string()));
        }
        let part = Part {
            headers,
            jpeg: Vec::new(),
        };
        let len: usize = part.get("Content-Length").unwrap().parse().unwrap();
        let mut jpeg = vec![0; len];
        tokio::time::timeout(Duration::from_secs(10), self.reader.read_exact(&mut jpeg))
            .await
            .expect("timed out reading a frame")
            .unwrap();
        let mut trailer = vec![0; BOUNDARY.len() + 6];
        self.reader.read_exact(&mut trailer).await.unwrap();
        assert_eq!(trailer, format!("\r\n--{BOUNDARY}\r\n").as_bytes());
        Part { jpeg, ..part }
    }

    /// Reads a part, failing if none arrives within `within`.
    pub async fn part_within(&mut self, within: Duration) -> Option<Part> {
        tokio::time::timeout(within, self.part()).await.ok()
    }

    /// Reads the rest of the connection (until the server closes it).
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.reader.read_to_end(&mut buf))
            .await
            .expect("server did not close the connection")
            .unwrap();
        buf
    }

    /// Opens a stream and checks its head and preamble.
    pub async fn stream(addr: SocketAddr, path: &str) -> RawClient {
        let mut c = RawClient::request(addr, "GET", path).await;
        let head = c.head().await;
        assert_eq!(head.status, 200, "{path}: {head:?}");
        c.preamble().await;
        c
    }
}

/// Decodes a JPEG fully; panics if it does not decode.
pub fn decode(jpeg: &[u8]) -> (usize, usize) {
    let mut d = zune_jpeg::JpegDecoder::new(jpeg);
    let pixels = d.decode().expect("frame does not decode");
    let (w, h) = d.dimensions().unwrap();
    assert_eq!(pixels.len(), w * h * 3);
    (w, h)
}

/// Whether the external program `name` (ffmpeg, nginx, chromium) can run.
/// Outside CI a missing tool skips the test with a message; on CI (where
/// `.ci/run` installs every tool) it fails the test, so a missing install
/// step cannot pass silently.
pub fn tool_available(name: &str, install: &str) -> bool {
    let found = std::process::Command::new(name)
        .arg(if name.ends_with("nginx") {
            "-v"
        } else {
            "-version"
        })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing on CI: .ci/run should install it ({install})"
        );
        eprintln!("skipping: {name} is not installed ({install})");
    }
    found
}

/// The server program with `args`, logging at info level to a piped
/// stderr, with stdin and stdout closed: for the tests that read its log.
pub fn logged_server(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mjpeg-server"));
    cmd.args(args)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// The server program running as its own process on a free port, stopped
/// on drop (SIGTERM, then SIGKILL if it lingers).
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `mjpeg-server --listen 127.0.0.1:0 ARGS` with stdin closed.
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_with_stdin(args, std::process::Stdio::null())
    }

    /// Like [`start`](Self::start), with the given stdin (e.g. a pipe the
    /// test writes to).
    pub fn start_with_stdin(args: &[&str], stdin: std::process::Stdio) -> ServerProcess {
        use std::io::BufRead;
        let mut child = logged_server(&[&["--listen", "127.0.0.1:0"], args].concat())
            .stdin(stdin)
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            // "serving http://ADDR/" or "serving https://ADDR/".
            if let Some(rest) = line.split("serving http").nth(1) {
                let rest = rest.trim_start_matches('s').trim_start_matches("://");
                break rest.trim_end_matches('/').parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServerProcess { child, addr }
    }

    /// Open file descriptors of the process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .count()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Sends signal `sig` (`"TERM"`, `"HUP"`, …) to process `pid`; true if it
/// was delivered.
pub fn signal(pid: u32, sig: &str) -> bool {
    std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends SIGTERM and waits for the process to exit; panics (and kills it)
/// if it takes longer than `within`.
pub fn terminate_within(mut p: ServerProcess, within: Duration) -> std::process::ExitStatus {
    assert!(signal(p.child.id(), "TERM"));
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > within {
            let _ = p.child.kill();
            let _ = p.child.wait();
            panic!("the server did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a child: SIGTERM first (so that e.g. nginx's master takes its
/// workers with it), SIGKILL after a second.
pub fn stop(child: &mut std::process::Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), "TERM");
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `PUT` of `body` to `url` (a push of frames).
pub async fn put(url: String, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The server's `/status` JSON.
pub async fn status_json(addr: SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{addr}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The entry of stream `name` in the server's `/status`.
pub async fn stream_status(addr: SocketAddr, name: &str) -> serde_json::Value {
    let status = status_json(addr).await;
    status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stream {name:?} in /status: {status}"))
        .clone()
}

/// Checks that `rest` (what a stream sent after some point) is zero or more
/// whole parts: headers, exactly `Content-Length` bytes of JPEG, and the
/// boundary after it. A stream that ends this way ended at a part boundary.
pub fn assert_whole_parts(mut rest: &[u8]) {
    let trailer = format!("\r\n--{BOUNDARY}\r\n");
    while !rest.is_empty() {
        let head_end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers end");
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("Content-Length")
            .parse()
            .unwrap();
        let body = head_end + 4;
        assert!(
            rest.len() >= body + len + trailer.len(),
            "a part was cut short"
        );
        assert_eq!(
            &rest[body + len..body + len + trailer.len()],
            trailer.as_bytes()
        );
        rest = &rest[body + len + trailer.len()..];
    }
}

/// Runs the server program to completion with stdin closed: (exit code,
/// stdout, stderr). For flags and configurations that must make it exit.
pub fn run_to_end(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mjpeg-server"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The body of `GET url` (a snapshot).
pub async fn get_bytes(url: String) -> bytes::Bytes {
    reqwest::get(url).await.unwrap().bytes().await.unwrap()
}

/// A new self-signed certificate for 127.0.0.1 and localhost.
pub struct Cert {
    pub pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Cert {
    pub fn new() -> Cert {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        Cert {
            pem: ck.cert.pem(),
            key_pem: ck.key_pair.serialize_pem(),
            der: ck.cert.der().to_vec(),
        }
    }

    /// Writes it as `dir/cert.pem` and `dir/key.pem`; returns their paths.
    pub fn install(&self, dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}
