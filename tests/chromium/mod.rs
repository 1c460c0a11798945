//! Headless Chromium driven over the DevTools protocol, for the tests
//! that need a real browser (`tests/browser.rs`, `tests/player.rs`).
//!
//! Nothing leaves 127.0.0.1: the browser gets no proxy and a host resolver
//! that maps every name to "not found". Without `/usr/bin/chromium` a test
//! is skipped on a developer machine and fails when `CI` is set.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on the whole test, so that it can never hang CI.
pub const OVERALL: Duration = Duration::from_secs(60);
/// Bound on any single step (one CDP command, one HTTP request, startup).
pub const STEP: Duration = Duration::from_secs(15);

/// Whether Chromium is here to run a browser test; without it the test is
/// skipped on a developer machine and fails under CI.
pub fn chromium_or_skip(what: &str) -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{CHROMIUM} is missing, but CI is set: the browser test must run in CI \
         (install it with `apt-get install -y chromium`)"
    );
    eprintln!(
        "skipping the {what} browser test: {CHROMIUM} not found; \
         install Debian's chromium (`apt-get install chromium`) to run it"
    );
    false
}

/// Runs a browser test within [`OVERALL`], so that it can never hang CI.
///
/// One browser test at a time: several tests look at what the page shows a
/// few hundred milliseconds after a frame is published, and two Chromiums
/// sharing two cores would measure each other rather than the server.
pub async fn bounded(what: &str, test: impl std::future::Future<Output = ()>) {
    bounded_by(what, OVERALL, test).await;
}

/// [`bounded`], for a test that is meant to take longer, within `limit`.
pub async fn bounded_by(what: &str, limit: Duration, test: impl std::future::Future<Output = ()>) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    match tokio::time::timeout(limit, test).await {
        Ok(()) => eprintln!("{what} browser test took {:.1?}", started.elapsed()),
        Err(_) => panic!("{what} browser test did not finish within {limit:?}"),
    }
}

/// A headless Chromium with a fresh profile, killed (with every process it
/// started) when dropped.
pub struct Chromium {
    child: Child,
    pub devtools_port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
    // Dropped after `drop` has killed the browser.
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub async fn launch(url: &str) -> Chromium {
        Chromium::launch_with(url, &[]).await
    }

    /// Like [`launch`](Chromium::launch), with extra flags.
    pub async fn launch_with(url: &str, extra: &[&str]) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args(extra);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-proxy-server",
            // Every host name fails to resolve: nothing can leave 127.0.0.1.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--window-size=1280,800",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so that drop can kill the renderers and
        // helpers too, not only the browser process.
        .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));

        // Chromium's stderr is read to the end by a thread (a full pipe
        // would block the browser); the DevTools line gives the port.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = devtools_port(&line) {
                    let _ = port_tx.send(port);
                }
                log.lock().unwrap().push(line);
            }
        });

        let mut chromium = Chromium {
            child,
            devtools_port: 0,
            stderr,
            _profile: profile,
        };
        let deadline = Instant::now() + STEP;
        chromium.devtools_port = loop {
            match port_rx.try_recv() {
                Ok(port) => break port,
                Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => {
                    if let Ok(Some(exit)) = chromium.child.try_wait() {
                        panic!(
                            "chromium exited ({exit}) before DevTools listened; stderr:\n{}",
                            chromium.stderr_tail()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => panic!(
                    "chromium printed no \"DevTools listening on\" line within {STEP:?}; stderr:\n{}",
                    chromium.stderr_tail()
                ),
            }
        };
        chromium
    }

    /// The browser's process id, which is also the id of the process group
    /// of every process it started (renderers, helpers).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines Chromium wrote, without its D-Bus complaints (there
    /// is no system bus in a container).
    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        let useful: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.contains(":ERROR:dbus/"))
            .collect();
        useful[useful.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        end_group(&mut self.child);
    }
}

/// Kills a browser started as the leader of its own process group
/// (`process_group(0)`), with every process it started, and reaps it.
pub fn end_group(child: &mut Child) {
    // The group id is the browser's pid.
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The port in "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…".
pub fn devtools_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("DevTools listening on ws://")?;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// The WebSocket URL of the tab that shows `url`.
pub async fn page_websocket_url(http: &reqwest::Client, devtools_port: u16, url: &str) -> String {
    let list_url = format!("http://127.0.0.1:{devtools_port}/json/list");
    let deadline = Instant::now() + STEP;
    loop {
        let targets: Value = match http.get(&list_url).send().await {
            Ok(res) => serde_json::from_str(&res.text().await.unwrap()).unwrap(),
            Err(e) => panic!("{list_url}: {e}"),
        };
        let page = targets.as_array().and_then(|ts| {
            ts.iter()
                .find(|t| t["type"] == "page" && t["url"].as_str() == Some(url))
        });
        if let Some(ws) = page.and_then(|p| p["webSocketDebuggerUrl"].as_str()) {
            assert!(
                ws.starts_with("ws://127.0.0.1:"),
                "DevTools is not on loopback: {ws}"
            );
            return ws.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no page showing {url} in {list_url}: {targets}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A minimal CDP client: one command at a time; events are kept.
pub struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    pub events: Vec<Value>,
}

impl Cdp {
    pub async fn connect(url: &str) -> Cdp {
        let (ws, _) = match tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url)).await
        {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => panic!("{url}: {e}"),
            Err(_) => panic!("{url}: no WebSocket handshake within {STEP:?}"),
        };
        Cdp {
            ws,
            next_id: 1,
            events: Vec::new(),
        }
    }

    /// Sends a command and returns its `result`; panics on a CDP error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params });
        match tokio::time::timeout(STEP, self.roundtrip(id, msg)).await {
            Ok(res) => res.unwrap_or_else(|e| panic!("{method}: {e}")),
            Err(_) => panic!("{method}: no answer within {STEP:?}"),
        }
    }

    pub async fn roundtrip(&mut self, id: u64, msg: Value) -> Result<Value, String> {
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let text = match self.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("DevTools closed the connection".into()),
            };
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    return Err(format!("CDP error {err}"));
                }
                return Ok(v["result"].clone());
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Evaluates `expr` in the page and returns its value (promises awaited).
    pub async fn eval(&mut self, expr: &str) -> Value {
        let res = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        if let Some(ex) = res.get("exceptionDetails") {
            panic!("the page threw: {ex}");
        }
        res["result"]["value"].clone()
    }
}

/// Standard base64 (as CDP sends screenshots), without a dependency.
pub fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: byte {c:#04x}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Chromium showing `url`, and a DevTools session on its tab with the
/// runtime's events on.
pub async fn open(url: &str) -> (Chromium, Cdp) {
    open_with(url, &[]).await
}

/// Like [`open`], with extra flags for Chromium.
pub async fn open_with(url: &str, extra: &[&str]) -> (Chromium, Cdp) {
    let chromium = Chromium::launch_with(url, extra).await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .build()
        .unwrap();
    let ws_url = page_websocket_url(&http, chromium.devtools_port, url).await;
    let mut cdp = Cdp::connect(&ws_url).await;
    cdp.call("Runtime.enable", json!({})).await;
    (chromium, cdp)
}

/// What the page threw or logged, from the events `cdp` kept.
pub fn page_noise(cdp: &Cdp) -> Vec<&Value> {
    cdp.events
        .iter()
        .filter(|e| {
            matches!(
                e["method"].as_str(),
                Some("Runtime.exceptionThrown" | "Runtime.consoleAPICalled")
            )
        })
        .collect()
}

/// Waits until the tab shows `url`, loaded (it may still be on its
/// first, blank document).
pub async fn wait_loaded(cdp: &mut Cdp, url: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let state = cdp
            .eval("[location.href, document.readyState].join(' ')")
            .await;
        if state.as_str() == Some(&format!("{url} complete")) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not load: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
