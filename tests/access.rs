//! Access control and CORS over real sockets: Basic users, bearer tokens
//! (header and `?token=`), watch and push permissions per stream, the
//! refusals (401 with a challenge, 403), and hostile names in URLs.

mod common;

use base64::Engine;
use common::*;
use mjpeg_server::access::{Access, Grant, Patterns};
use mjpeg_server::http::HttpOptions;
use mjpeg_server::ServerOptions;
use std::sync::Arc;
use std::time::Duration;

const PUSH_TOKEN: &str = "push-0123456789";
const WATCH_TOKEN: &str = "watch-0123456789";

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// alice may do everything; bob may watch `cam-*` only; one token may only
/// push, one only watch; anyone may watch `lobby`.
fn rules() -> Access {
    let mut a = Access::new(
        "test cams",
        Grant {
            watch: Patterns::new(&["lobby"]).unwrap(),
            push: Patterns::default(),
        },
    );
    a.add_user("alice", "correct horse", Grant::everything())
        .unwrap();
    a.add_user(
        "bob",
        "battery staple",
        Grant {
            watch: Patterns::new(&["cam-*"]).unwrap(),
            push: Patterns::default(),
        },
    )
    .unwrap();
    a.add_token(PUSH_TOKEN, Grant::push_only()).unwrap();
    a.add_token(WATCH_TOKEN, Grant::watch_only()).unwrap();
    a
}

async fn guarded_server(allow_origins: &[&str]) -> TestServer {
    let opts = ServerOptions {
        http: HttpOptions {
            access: Arc::new(rules()),
            allow_create: true,
            allow_origins: allow_origins.iter().map(|o| o.parse().unwrap()).collect(),
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = TestServer::start(&["cam-1", "garden", "lobby"], opts).await;
    for name in ["cam-1", "garden", "lobby"] {
        server
            .hub(name)
            .publish_jpeg(tagged(&corpus("jpeg_5k.jpg"), name))
            .unwrap();
    }
    server
}

/// `GET path` with extra header lines; the response head.
async fn get(server: &TestServer, path: &str, headers: &str) -> (Head, RawClient) {
    let mut c = RawClient::send(
        server.addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"),
    )
    .await;
    let head = c.head().await;
    (head, c)
}

#[tokio::test]
async fn missing_credentials_get_401_with_a_challenge_everywhere() {
    let server = guarded_server(&[]).await;
    for path in [
        "/stream/cam-1",
        "/stream",
        "/?action=stream",
        "/?action=snapshot_1",
        "/snapshot/garden",
        "/",
        "/status",
        "/metrics",
    ] {
        let (head, mut c) = get(&server, path, "").await;
        assert_eq!(head.status, 401, "{path}: {head:?}");
        let challenges: Vec<_> = head
            .headers
            .iter()
            .filter(|(n, _)| n == "www-authenticate")
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(
            challenges.contains(&"Basic realm=\"test cams\", charset=\"UTF-8\""),
            "{path}: {challenges:?}"
        );
        assert!(challenges.iter().any(|c| c.starts_with("Bearer ")));
        let body = String::from_utf8(c.rest().await).unwrap();
        assert!(body.contains("credentials needed"), "{path}: {body}");
    }
    // Nothing was watched on the way.
    assert_eq!(server.hub("cam-1").stats().clients, 0);
    // The public stream needs nothing, on the direct path and as a snapshot.
    let mut c = RawClient::stream(server.addr, "/stream/lobby").await;
    assert_eq!(c.part().await.tag().as_deref(), Some("lobby"));
    let res = reqwest::get(server.url("/snapshot/lobby")).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn wrong_passwords_and_tokens_get_401_right_ones_stream() {
    let server = guarded_server(&[]).await;
    let wrong = [
        format!("Authorization: {}\r\n", basic("alice:correct hors")),
        format!("Authorization: {}\r\n", basic("alice:correct horse ")),
        format!("Authorization: {}\r\n", basic("mallory:correct horse")),
        format!("Authorization: {}\r\n", basic("alice")),
        "Authorization: Basic not-base64!\r\n".to_string(),
        "Authorization: Bearer push-012345678\r\n".to_string(),
        "Authorization: Digest username=\"alice\"\r\n".to_string(),
    ];
    for h in &wrong {
        let (head, mut c) = get(&server, "/stream/cam-1", h).await;
        assert_eq!(head.status, 401, "{h}");
        assert!(head.get("www-authenticate").is_some());
        let body = String::from_utf8(c.rest().await).unwrap();
        assert!(body.contains("wrong user, password or token"), "{body}");
    }
    // A wrong token in the URL, and a user's password used as a token.
    for path in [
        "/stream/cam-1?token=nope-nope-nope",
        "/stream/cam-1?token=correct%20horse",
    ] {
        let (head, _) = get(&server, path, "").await;
        assert_eq!(head.status, 401, "{path}");
    }

    // The right ones: Basic, Bearer, and ?token= (what an <img> can send).
    let alice = format!("Authorization: {}\r\n", basic("alice:correct horse"));
    let bearer = format!("Authorization: Bearer {WATCH_TOKEN}\r\n");
    for (path, h) in [
        ("/stream/cam-1".to_string(), alice.as_str()),
        ("/stream/cam-1".to_string(), bearer.as_str()),
        (format!("/stream/cam-1?token={WATCH_TOKEN}&fps=5"), ""),
        (format!("/?action=stream&token={WATCH_TOKEN}"), ""),
    ] {
        let (head, mut c) = get(&server, &path, h).await;
        assert_eq!(head.status, 200, "{path} {h}");
        assert!(head
            .get("content-type")
            .unwrap()
            .starts_with("multipart/x-mixed-replace"));
        c.preamble().await;
        assert_eq!(c.part().await.tag().as_deref(), Some("cam-1"));
    }
    let res = reqwest::Client::new()
        .get(server.url("/status"))
        .bearer_auth(WATCH_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn watch_and_push_are_separate_permissions_per_stream() {
    let server = guarded_server(&[]).await;
    let client = reqwest::Client::new();
    let frame = tagged(&corpus("jpeg_5k.jpg"), "pushed");
    let push = |token: Option<&str>, name: &str| {
        let mut req = client
            .put(server.url(&format!("/stream/{name}")))
            .body(frame.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    // The watch token may not push; nobody may push anonymously, not even
    // to the public stream; the push token may, and the frame arrives.
    assert_eq!(
        push(Some(WATCH_TOKEN), "cam-1").await.unwrap().status(),
        403
    );
    assert_eq!(push(None, "lobby").await.unwrap().status(), 401);
    assert_eq!(push(Some(PUSH_TOKEN), "lobby").await.unwrap().status(), 409);
    server.hub("cam-1").set_accepts_push(true);
    assert_eq!(push(Some(PUSH_TOKEN), "cam-1").await.unwrap().status(), 204);
    assert_eq!(
        server.hub("cam-1").latest().unwrap().jpeg().as_ref(),
        &frame[..]
    );
    // A refused push creates no stream, even with --allow-create.
    assert_eq!(
        push(Some(WATCH_TOKEN), "new-one").await.unwrap().status(),
        403
    );
    assert!(server.streams.get("new-one").is_none());
    assert_eq!(
        push(Some(PUSH_TOKEN), "new-one").await.unwrap().status(),
        204
    );
    assert!(server.streams.get("new-one").is_some());
    // Chart data is a push too.
    let res = client
        .post(server.url("/stream/cam-1/data"))
        .bearer_auth(WATCH_TOKEN)
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // The push token may not watch.
    let (head, _) = get(
        &server,
        "/stream/cam-1",
        &format!("Authorization: Bearer {PUSH_TOKEN}\r\n"),
    )
    .await;
    assert_eq!(head.status, 403);

    // bob may watch cam-* and nothing else, and his index shows only those
    // (and the public lobby).
    let bob = format!("Authorization: {}\r\n", basic("bob:battery staple"));
    let (head, _) = get(&server, "/stream/cam-1", &bob).await;
    assert_eq!(head.status, 200);
    let (head, mut c) = get(&server, "/stream/garden", &bob).await;
    assert_eq!(head.status, 403);
    assert!(head.get("www-authenticate").is_none());
    assert!(String::from_utf8(c.rest().await)
        .unwrap()
        .contains("do not allow"));
    let (head, mut c) = get(&server, "/", &bob).await;
    assert_eq!(head.status, 200);
    let page = String::from_utf8(c.rest().await).unwrap();
    assert!(page.contains(r#"src="/stream/cam-1""#), "{page}");
    assert!(page.contains(r#"src="/stream/lobby""#));
    assert!(!page.contains("garden"));
    // An unknown name bob could watch: 404, listing only what he may see.
    // One he could not watch gets the refusal an existing one would, and
    // an anonymous client too: which names exist cannot be probed.
    let (head, mut c) = get(&server, "/stream/cam-9", &bob).await;
    assert_eq!(head.status, 404);
    let text = String::from_utf8(c.rest().await).unwrap();
    assert!(text.contains("cam-1") && !text.contains("garden"), "{text}");
    let (head, _) = get(&server, "/snapshot/nope", &bob).await;
    assert_eq!(head.status, 403);
    let (head, _) = get(&server, "/stream/nope", "").await;
    assert_eq!(head.status, 401);
}

#[tokio::test]
async fn an_index_opened_with_a_token_passes_it_to_its_images() {
    let server = guarded_server(&[]).await;
    let (head, mut c) = get(&server, &format!("/?token={WATCH_TOKEN}"), "").await;
    assert_eq!(head.status, 200);
    let page = String::from_utf8(c.rest().await).unwrap();
    let src = format!(r#"src="/stream/garden?token={WATCH_TOKEN}""#);
    assert!(page.contains(&src), "{page}");
    // And that URL streams.
    let (head, _) = get(&server, &format!("/stream/garden?token={WATCH_TOKEN}"), "").await;
    assert_eq!(head.status, 200);
    // Anonymous visitors see the index of what is public.
    let (head, mut c) = get(&server, "/", "").await;
    assert_eq!(head.status, 401, "only lobby is public, the page is not");
    drop(c.rest().await);
}

#[tokio::test]
async fn cors_is_off_by_default_and_answers_preflight_when_on() {
    let origin = "https://dash.example.com";
    let open = TestServer::start(&["cam"], ServerOptions::default()).await;
    open.hub("cam").publish_jpeg(corpus("jpeg_5k.jpg")).unwrap();
    let res = reqwest::Client::new()
        .get(open.url("/snapshot/cam"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let server = guarded_server(&[origin]).await;
    let client = reqwest::Client::new();
    // Preflight: no credentials (browsers send none), still answered.
    let res = client
        .request(reqwest::Method::OPTIONS, server.url("/stream/cam-1"))
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("PUT") && methods.contains("GET"),
        "{methods}"
    );
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");

    // The stream itself, with an Origin: the header is on it (and on a
    // refusal, so that the page can read the 401).
    let (head, mut c) = get(
        &server,
        &format!("/stream/cam-1?token={WATCH_TOKEN}"),
        &format!("Origin: {origin}\r\n"),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get("access-control-allow-origin"), Some(origin));
    c.preamble().await;
    assert_eq!(c.part().await.tag().as_deref(), Some("cam-1"));
    let (head, _) = get(&server, "/stream/cam-1", &format!("Origin: {origin}\r\n")).await;
    assert_eq!(head.status, 401);
    assert_eq!(head.get("access-control-allow-origin"), Some(origin));
    // Another origin gets no permission.
    let (head, _) = get(
        &server,
        "/snapshot/lobby",
        "Origin: https://evil.example\r\n",
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get("access-control-allow-origin"), None);
}

#[tokio::test]
async fn hostile_names_are_refused_and_never_echoed_raw() {
    let opts = ServerOptions {
        http: HttpOptions {
            allow_create: true,
            ..HttpOptions::default()
        },
        ..ServerOptions::default()
    };
    let server = TestServer::start(&["cam"], opts).await;
    let jpeg = corpus("jpeg_5k.jpg");
    // Path traversal, encoded or not, in every route that takes a name.
    // Sent raw: an HTTP client library would resolve the dots itself.
    for path in [
        "/stream/..%2F..%2Fetc%2Fpasswd",
        "/stream/%2e%2e",
        "/stream/../status",
        "/snapshot/..%2fstatus",
        "/stream/cam%2F..%2F..%2Fstatus",
    ] {
        let (head, _) = get_raw(&server, path).await;
        assert_eq!(head.status, 404, "{path}");
        let (head, _) = put_raw(&server, path, &jpeg).await;
        assert!([400, 404, 405].contains(&head.status), "{path}: {head:?}");
    }
    // Header injection: an encoded CRLF in a name.
    let evil = "/stream/a%0D%0ASet-Cookie:%20pwned=1";
    let (head, mut c) = get_raw(&server, evil).await;
    assert_eq!(head.status, 404);
    assert!(head.get("set-cookie").is_none(), "{head:?}");
    let body = String::from_utf8(c.rest().await).unwrap();
    assert!(!body.contains("\r\nSet-Cookie"), "{body:?}");
    assert!(
        body.contains(r#"\r\nSet-Cookie"#),
        "escaped in the text: {body:?}"
    );
    let (head, _) = put_raw(&server, evil, &jpeg).await;
    assert_eq!(head.status, 400);
    assert!(head.get("set-cookie").is_none());
    // A raw CRLF or space in the request target is no request at all.
    let mut c = RawClient::send(
        server.addr,
        "GET /stream/a\rSet-Cookie: x HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let head = c.head().await;
    assert_eq!(head.status, 400);
    // Nothing was created by any of it.
    let names: Vec<String> = server
        .streams
        .all()
        .iter()
        .map(|h| h.name().to_string())
        .collect();
    assert_eq!(names, ["cam"]);
}

async fn put_raw(server: &TestServer, path: &str, body: &[u8]) -> (Head, RawClient) {
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let mut c = RawClient::send(server.addr, req).await;
    let head = c.head().await;
    (head, c)
}

async fn get_raw(server: &TestServer, path: &str) -> (Head, RawClient) {
    let mut c = RawClient::send(
        server.addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let head = c.head().await;
    (head, c)
}

#[tokio::test]
async fn command_line_users_tokens_and_public_watch() {
    let server = ServerProcess::start(&[
        "--stream",
        "cam=push",
        "--user",
        "admin:s3cret pass",
        "--push-token",
        PUSH_TOKEN,
        "--public-watch",
    ]);
    let url = |p: &str| format!("http://{}{p}", server.addr);
    let client = reqwest::Client::new();
    let frame = corpus("jpeg_5k.jpg");
    assert_eq!(
        client
            .put(url("/stream/cam"))
            .body(frame.clone())
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .put(url("/stream/cam"))
            .bearer_auth(PUSH_TOKEN)
            .body(frame.clone())
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    // Anyone may watch; /status needs credentials.
    let res = client.get(url("/snapshot/cam")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), frame);
    assert_eq!(
        client.get(url("/status")).send().await.unwrap().status(),
        401
    );
    let res = client
        .get(url("/status"))
        .basic_auth("admin", Some("s3cret pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn bad_credentials_on_the_command_line_are_refused_by_name() {
    for (args, expected) in [
        (vec!["--user", "nopassword"], "NAME:PASSWORD"),
        (vec!["--user", "a:"], "needs a password"),
        (vec!["--token", "short"], "at least 8 characters"),
        (
            vec!["--allow-origin", "https://x.example/path"],
            "not an origin",
        ),
        (vec!["--tls-cert", "c.pem"], "--tls-key"),
        (vec!["--max-header-size", "10"], "from 1K to 1M"),
    ] {
        let (code, _, err) = run_to_end(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
