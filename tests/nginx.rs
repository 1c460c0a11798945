//! Scale-out as `deploy/nginx.conf` describes it: one origin, two edge
//! relays, Debian's nginx in front, all on 127.0.0.1.

mod common;

use common::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process stopped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// Starts the server binary on a free port and returns it with its address.
fn server(args: &[&str]) -> (ServerProcess, SocketAddr) {
    let mut all = vec!["--resend-after", "0.3"];
    all.extend_from_slice(args);
    let p = ServerProcess::start(&all);
    let addr = p.addr;
    (p, addr)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nginx() -> Option<&'static str> {
    let path = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nginx");
    tool_available(path, "apt-get install nginx").then_some(path)
}

async fn status_clients(addr: SocketAddr) -> u64 {
    status_json(addr).await["streams"][0]["clients"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn viewers_through_nginx_get_the_origins_frames_and_survive_an_edge() {
    let Some(nginx) = nginx() else { return };
    let (_origin, origin) = server(&["--stream", "cam=push"]);
    let upstream = format!("cam=relay:http://{origin}/stream/cam#always");
    // As the README's recipe: the edges believe nginx's X-Forwarded-For.
    let edge = ["--trusted-proxy", "127.0.0.1", "--stream", &upstream];
    let (edge1_proc, edge1) = server(&edge);
    let (_edge2_proc, edge2) = server(&edge);

    // The shipped configuration, pointed at this test's ports and run
    // unprivileged from a scratch folder.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"))
        .unwrap()
        .replace("127.0.0.1:8081", &edge1.to_string())
        .replace("127.0.0.1:8082", &edge2.to_string())
        .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
        .replace("worker_processes auto;", "worker_processes 1;")
        .replace("worker_connections 16384;", "worker_connections 256;");
    let p = dir.path().display();
    let conf = format!(
        "pid {p}/nginx.pid;\nerror_log {p}/error.log;\n{}",
        conf.replace(
            "http {",
            &format!(
                "http {{\n    access_log off;\n    client_body_temp_path {p}/body;\n    proxy_temp_path {p}/proxy;\n    fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;"
            )
        )
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let _nginx = Proc(
        Command::new(nginx)
            .arg("-c")
            .arg(&conf_path)
            .args(["-p", &p.to_string(), "-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Publish a frame at the origin; a direct viewer sees its timestamp.
    let http = reqwest::Client::new();
    let frame = tagged(&corpus("jpeg_50k.jpg"), "from-origin");
    let res = http
        .put(format!("http://{origin}/stream/cam"))
        .body(frame.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let mut direct = RawClient::stream(origin, "/stream/cam").await;
    let at_origin = direct.part().await;

    // Wait for nginx to listen.
    let mut viewer = None;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(front).await.is_ok() {
            viewer = Some(RawClient::request(front, "GET", "/stream/cam").await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut viewer = viewer.expect("nginx did not start");
    let head = viewer.head().await;
    assert_eq!(head.status, 200);
    assert!(head
        .get("content-type")
        .unwrap()
        .starts_with("multipart/x-mixed-replace"));
    assert_eq!(
        head.get("transfer-encoding"),
        None,
        "nginx re-chunked the stream"
    );
    viewer.preamble().await;
    let through = viewer.part().await;
    assert_eq!(through.jpeg, frame);
    decode(&through.jpeg);
    assert_eq!(through.get("X-Timestamp"), at_origin.get("X-Timestamp"));

    // Stop one edge: new viewers go to the other one and still get frames.
    drop(edge1_proc);
    let before = status_clients(edge2).await;
    let mut late = Vec::new();
    for _ in 0..4 {
        let mut v = RawClient::stream(front, "/stream/cam").await;
        assert_eq!(v.part().await.tag().as_deref(), Some("from-origin"));
        late.push(v);
    }
    assert!(status_clients(edge2).await >= before + 4);
}
