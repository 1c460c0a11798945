//! Headless Firefox for the browser tests, driven over WebDriver BiDi:
//! shared by the test files that include it (with `mod chromium;` beside
//! it, whose process helpers it uses). Where Firefox is not installed
//! (CI among them), [`firefox_or_skip`] says so and the test is skipped.

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

use super::chromium::{end_group, STEP};

/// Whether Firefox is here to run `what`; says so when it is not.
pub fn firefox_or_skip(what: &str) -> bool {
    if Path::new(FIREFOX).exists() {
        return true;
    }
    eprintln!("skipping {what}: {FIREFOX} not found (apt-get install firefox-esr)");
    false
}

/// A Firefox tab on `url`, loaded.
pub async fn open(url: &str) -> (Firefox, Bidi) {
    let firefox = Firefox::launch().await;
    let mut bidi = Bidi::connect(firefox.port).await;
    let context = bidi.context.clone();
    bidi.call(
        "browsingContext.navigate",
        json!({ "context": context, "url": url, "wait": "complete" }),
    )
    .await;
    (firefox, bidi)
}

pub const FIREFOX: &str = "/usr/bin/firefox-esr";

/// A headless Firefox with a fresh profile that can reach nothing but
/// 127.0.0.1, killed (with every process it started) when dropped.
pub struct Firefox {
    child: Child,
    pub port: u16,
    stderr: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Firefox {
    pub async fn launch() -> Firefox {
        let profile = tempfile::tempdir().unwrap();
        // No DNS at all: every host name fails, so nothing can leave
        // 127.0.0.1 (the pages here use the IP address). And none of the
        // background services that would try.
        std::fs::write(
            profile.path().join("user.js"),
            r#"user_pref("network.dns.disabled", true);
user_pref("network.trr.mode", 5);
user_pref("network.proxy.type", 0);
user_pref("app.update.disabledForTesting", true);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("remote.prefs.recommended", true);
"#,
        )
        .unwrap();
        // A free port for the remote agent.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(FIREFOX)
            .args(["--headless", "--no-remote", "--profile"])
            .arg(profile.path())
            .args(["--remote-debugging-port", &port.to_string()])
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FIREFOX}: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains("WebDriver BiDi listening on ws://") {
                    let _ = ready_tx.send(());
                }
                log.lock().unwrap().push(line);
            }
        });
        let firefox = Firefox {
            child,
            port,
            stderr,
            _profile: profile,
        };
        let deadline = Instant::now() + STEP;
        while ready_rx.try_recv().is_err() {
            assert!(
                Instant::now() < deadline,
                "firefox did not start its remote agent within {STEP:?}; stderr:\n{}",
                firefox.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        firefox
    }

    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        end_group(&mut self.child);
    }
}

/// A minimal WebDriver BiDi client (Firefox's remote protocol): one
/// session, its first tab, one command at a time.
pub struct Bidi {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// The tab's browsing context id.
    pub context: String,
}

impl Bidi {
    pub async fn connect(port: u16) -> Bidi {
        let url = format!("ws://127.0.0.1:{port}/session");
        let (ws, _) = match tokio::time::timeout(STEP, tokio_tungstenite::connect_async(&url)).await
        {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => panic!("{url}: {e}"),
            Err(_) => panic!("{url}: no WebSocket handshake within {STEP:?}"),
        };
        let mut bidi = Bidi {
            ws,
            next_id: 1,
            context: String::new(),
        };
        bidi.call("session.new", json!({ "capabilities": {} }))
            .await;
        let tree = bidi.call("browsingContext.getTree", json!({})).await;
        bidi.context = tree["contexts"][0]["context"]
            .as_str()
            .expect("a browsing context")
            .to_string();
        bidi
    }

    /// Sends a command and returns its `result`; panics on an error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params });
        let roundtrip = async {
            self.ws
                .send(Message::text(msg.to_string()))
                .await
                .map_err(|e| e.to_string())?;
            loop {
                let text = match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the browser closed the connection".to_string()),
                };
                let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                if v["id"].as_u64() == Some(id) {
                    return match v["type"].as_str() {
                        Some("success") => Ok(v["result"].clone()),
                        _ => Err(format!("{v}")),
                    };
                }
            }
        };
        match tokio::time::timeout(STEP, roundtrip).await {
            Ok(res) => res.unwrap_or_else(|e| panic!("{method}: {e}")),
            Err(_) => panic!("{method}: no answer within {STEP:?}"),
        }
    }

    /// Evaluates `expr` in the tab and returns its value (promises
    /// awaited), passed through JSON.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let context = self.context.clone();
        let res = self
            .call(
                "script.evaluate",
                json!({
                    "expression": format!("(async () => JSON.stringify(await ({expr})))()"),
                    "target": { "context": context },
                    "awaitPromise": true,
                }),
            )
            .await;
        match res["type"].as_str() {
            Some("success") => match res["result"]["value"].as_str() {
                Some(json) => serde_json::from_str(json).unwrap(),
                None => Value::Null,
            },
            _ => panic!("the page threw: {res}"),
        }
    }
}
