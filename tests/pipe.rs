//! The `exec:` source end to end: a real command's stdout is split into
//! frames, published, and read back over real HTTP.

mod common;

use common::*;
use mjpeg_server::ingest::split::{Split, Splitter};
use mjpeg_server::source::pipe::{self, ExecOptions};
use mjpeg_server::ServerOptions;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Restart policy for tests: quick restarts, or none within a test's life.
fn restarts(after: Duration) -> ExecOptions {
    ExecOptions {
        restart_delay: after,
        max_restart_delay: after * 4,
        ..ExecOptions::default()
    }
}

/// Starts an `exec:` source for stream `name`, stopped with the server.
fn exec(srv: &TestServer, name: &str, command: String, opts: ExecOptions) -> JoinHandle<()> {
    tokio::spawn(pipe::run_exec_with(
        command,
        opts,
        srv.hub(name),
        srv.token.child_token(),
    ))
}

/// Writes `data` to `dir/name` and returns the path quoted for `sh`.
fn file(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    let path = path.to_str().unwrap();
    assert!(!path.contains('\''), "{path}");
    format!("'{path}'")
}

/// The stream's entry in `/status`.
async fn status(srv: &TestServer, name: &str) -> serde_json::Value {
    stream_status(srv.addr, name).await
}

/// Polls `/status` until `done` says yes, failing after `within`.
async fn wait_status(
    srv: &TestServer,
    name: &str,
    within: Duration,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = status(srv, name).await;
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < within,
            "gave up waiting; last status: {s}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn exec_publishes_exactly_the_good_frames_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let a = tagged(&corpus("exif_thumbnail.jpg"), "a");
    let b = tagged(&corpus("progressive.jpg"), "b");
    let (fa, fg, fb) = (
        file(dir.path(), "a.jpg", &a),
        file(dir.path(), "garbage", &corpus("garbage.jpg")),
        file(dir.path(), "b.jpg", &b),
    );
    let srv = TestServer::start(&["cam"], ServerOptions::default()).await;
    let mut client = RawClient::stream(srv.addr, "/stream/cam").await;
    srv.wait_clients("cam", 1).await;

    // The pauses let the client take each frame before the next replaces it.
    let command = format!("cat {fa}; sleep 0.3; cat {fg} {fb}; sleep 0.3");
    let _source = exec(&srv, "cam", command, restarts(Duration::from_secs(600)));

    let first = client.part_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.tag().as_deref(), Some("a"));
    assert!(first.jpeg == a, "frame a changed on the way");
    // The server re-sends the newest frame to an idle viewer now and then.
    let second = loop {
        let part = client.part_within(Duration::from_secs(10)).await.unwrap();
        if part.tag().as_deref() != Some("a") {
            break part;
        }
    };
    assert_eq!(second.tag().as_deref(), Some("b"));
    assert!(second.jpeg == b, "frame b changed on the way");
    decode(&second.jpeg);

    let s = wait_status(&srv, "cam", Duration::from_secs(10), |s| {
        s["source"]["state"] == "waiting"
    })
    .await;
    assert_eq!(s["frames_published"], 2, "{s}");
    assert_eq!(s["frames_rejected"], 1, "the garbage, once: {s}");
    let last_error = s["last_error"].as_str().unwrap();
    assert!(
        last_error.starts_with("skipped 20000 bytes of non-JPEG data"),
        "{last_error}"
    );
    assert_eq!(
        s["source"]["detail"],
        "command exited with exit code 0; restarting in 600 s"
    );
}

#[tokio::test]
async fn a_command_that_dies_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let x = file(dir.path(), "x.jpg", &corpus("jpeg_5k.jpg"));
    let srv = TestServer::start(&["cam"], ServerOptions::default()).await;
    let command = format!("cat {x}; sleep 0.2; exit 3");
    let _source = exec(&srv, "cam", command, restarts(Duration::from_millis(50)));

    let (mut running, mut waiting) = (false, false);
    let s = wait_status(&srv, "cam", Duration::from_secs(20), |s| {
        match s["source"]["state"].as_str() {
            Some("running") => running = true,
            Some("waiting") => {
                let detail = s["source"]["detail"].as_str().unwrap();
                assert!(
                    detail.starts_with("command exited with exit code 3; restarting in 0."),
                    "{detail}"
                );
                waiting = true;
            }
            other => panic!("unexpected source state {other:?}: {s}"),
        }
        running && waiting && s["frames_published"].as_u64().unwrap() >= 3
    })
    .await;
    assert_eq!(s["frames_rejected"], 0, "{s}");
}

#[tokio::test]
async fn shutdown_kills_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let x = file(dir.path(), "x.jpg", &corpus("jpeg_5k.jpg"));
    let srv = TestServer::start(&["cam"], ServerOptions::default()).await;
    // `exec` makes the shell itself the long-running command.
    let command = format!(
        "echo $$ > '{}'; cat {x}; exec sleep 600",
        pid_file.display()
    );
    let source = exec(&srv, "cam", command, restarts(Duration::from_secs(600)));
    wait_status(&srv, "cam", Duration::from_secs(10), |s| {
        s["frames_published"] == 1
    })
    .await;
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc_dir = format!("/proc/{}", pid.trim());
    assert!(Path::new(&proc_dir).exists());

    srv.token.cancel();
    tokio::time::timeout(Duration::from_secs(5), source)
        .await
        .expect("the source did not stop at shutdown")
        .unwrap();
    // Killed and reaped: the process is gone, not a zombie.
    assert!(
        !Path::new(&proc_dir).exists(),
        "the command outlived shutdown"
    );
}

const FFMPEG_ARGS: &str =
    "-loglevel error -nostdin -f lavfi -i testsrc=size=320x240:rate=10 -frames:v 20 -f mjpeg -";

#[tokio::test]
async fn ffmpeg_mjpeg_output_yields_twenty_valid_frames() {
    if !tool_available("ffmpeg", "apt-get install ffmpeg") {
        return;
    }
    let ffmpeg = "ffmpeg";

    // The splitter on ffmpeg's output: every frame, decoded.
    let out = tokio::process::Command::new(ffmpeg)
        .args(FFMPEG_ARGS.split(' '))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut splitter = Splitter::default();
    splitter.push(&out.stdout);
    splitter.finish();
    let frames: Vec<_> = std::iter::from_fn(|| splitter.next_event())
        .map(|event| match event {
            Split::Frame(jpeg) => jpeg,
            Split::Dropped(problem) => panic!("{problem}"),
        })
        .collect();
    assert_eq!(frames.len(), 20);
    for jpeg in &frames {
        assert_eq!(decode(jpeg), (320, 240));
    }
    assert_eq!(
        frames.iter().map(|f| f.len()).sum::<usize>(),
        out.stdout.len()
    );

    // The same command as an `exec:` source, read over HTTP.
    let srv = TestServer::start(&["cam"], ServerOptions::default()).await;
    let command = format!("{ffmpeg} {FFMPEG_ARGS}");
    let _source = exec(&srv, "cam", command, restarts(Duration::from_secs(600)));
    let s = wait_status(&srv, "cam", Duration::from_secs(30), |s| {
        s["source"]["state"] == "waiting"
    })
    .await;
    assert_eq!(s["frames_published"], 20, "{s}");
    assert_eq!(s["frames_rejected"], 0, "{s}");
    let snapshot = get_bytes(srv.url("/snapshot/cam")).await;
    assert_eq!(decode(&snapshot), (320, 240));
}

/// Set in a copy of this test binary that plays the server reading stdin.
const STDIN_CHILD: &str = "MJPEG_SERVER_TEST_STDIN_CHILD";

/// Runs `stdin_source_in_a_child` in a copy of this test binary, with
/// `stdin` as its standard input, and checks that it passed.
fn stdin_child(mode: &str, stdin: Stdio) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stdin_source_in_a_child", "--nocapture"])
        .env(STDIN_CHILD, mode)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn assert_child_passed(mut child: std::process::Child) {
    // A child stuck at shutdown (a blocking stdin read that holds the
    // runtime) fails the test instead of hanging it.
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child's half of the stdin tests; does nothing in a normal run.
#[tokio::test]
async fn stdin_source_in_a_child() {
    use mjpeg_server::hub::SourceState;
    use mjpeg_server::Hub;
    use tokio_util::sync::CancellationToken;

    let Ok(mode) = std::env::var(STDIN_CHILD) else {
        return;
    };
    let hub = Hub::new("cam");
    let token = CancellationToken::new();
    let source = tokio::spawn(pipe::run_stdin(
        pipe::ReadLimits::default(),
        hub.clone(),
        token.clone(),
    ));
    match mode.as_str() {
        // stdin ends: every frame is published, then the source waits.
        "eof" => {
            tokio::time::timeout(Duration::from_secs(20), source)
                .await
                .expect("run_stdin did not return at the end of stdin")
                .unwrap();
            let s = hub.stats();
            assert_eq!((s.frames_published, s.frames_rejected), (2, 1), "{s:?}");
            assert_eq!(s.source, SourceState::Waiting("stdin closed".into()));
        }
        // stdin stays open: shutdown must not wait for the writer.
        "shutdown" => {
            let start = Instant::now();
            while hub.stats().frames_published == 0 {
                assert!(start.elapsed() < Duration::from_secs(20), "no frame");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(hub.stats().source, SourceState::Running);
            token.cancel();
            tokio::time::timeout(Duration::from_secs(5), source)
                .await
                .expect("run_stdin did not stop at shutdown")
                .unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn stdin_source_reads_a_pipe_until_it_closes() {
    let stream = [
        corpus("jpeg_5k.jpg"),
        b"junk".to_vec(),
        corpus("exif_thumbnail.jpg"),
    ]
    .concat();
    let mut child = stdin_child("eof", Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    // Written in pieces with pauses, as a camera would.
    for piece in stream.chunks(7000) {
        std::io::Write::write_all(&mut stdin, piece).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(stdin);
    assert_child_passed(child);
}

#[test]
fn stdin_source_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.mjpeg");
    let stream = [
        corpus("progressive.jpg"),
        b"junk".to_vec(),
        corpus("restart_markers.jpg"),
    ]
    .concat();
    std::fs::write(&path, stream).unwrap();
    let child = stdin_child("eof", std::fs::File::open(&path).unwrap().into());
    assert_child_passed(child);
}

#[test]
fn stdin_source_stops_at_shutdown_while_the_writer_is_quiet() {
    let mut child = stdin_child("shutdown", Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, &corpus("jpeg_5k.jpg")).unwrap();
    // `stdin` stays open until the child is done.
    assert_child_passed(child);
    drop(stdin);
}

// The command's whole process group, through the real program: children
// are found in /proc by a unique `sleep` argument.

/// Pids of live processes whose command line is `sleep ARG`.
fn sleepers(arg: &str) -> Vec<u32> {
    let want = format!("sleep\0{arg}\0");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // A zombie has an empty command line: it is dead already.
        if cmdline.ends_with(want.as_bytes()) && cmdline.starts_with(b"sleep\0") {
            found.push(pid);
        }
    }
    found
}

/// A number no other test or process uses as a `sleep` argument.
fn unique_seconds(salt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}{:05}{}",
        7_000 + salt,
        std::process::id() % 100_000,
        nanos % 1000
    )
}

/// Kills, by pid, processes a failed test left behind.
fn reap(pids: &[u32]) {
    for pid in pids {
        signal(*pid, "KILL");
    }
}

#[tokio::test]
async fn sigterm_ends_every_process_of_an_exec_command() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = dir.path().join("x.jpg");
    std::fs::write(&jpeg, tagged(&corpus("jpeg_5k.jpg"), "x")).unwrap();
    let (bg, fg, piped) = (unique_seconds(1), unique_seconds(2), unique_seconds(3));
    let command = format!(
        "sleep {bg} & cat '{}'; sleep {piped} | sleep {fg}",
        jpeg.display()
    );
    let p = ServerProcess::start(&["--stream", &format!("cam=exec:{command}")]);
    let mut c = RawClient::stream(p.addr, "/stream/cam").await;
    assert_eq!(c.part().await.tag().as_deref(), Some("x"));
    let all = || [&bg, &fg, &piped].map(|a| sleepers(a)).concat();
    let start = Instant::now();
    while all().len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the sleeps never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = terminate_within(p, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    // Processes signalled a moment ago may take a moment to go.
    let start = Instant::now();
    let left = loop {
        let left = all();
        if left.is_empty() || start.elapsed() > Duration::from_secs(3) {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    reap(&left);
    assert!(left.is_empty(), "processes outlived the server: {left:?}");
}

#[tokio::test]
async fn a_command_whose_shell_exits_is_restarted_though_a_child_holds_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = dir.path().join("x.jpg");
    std::fs::write(&jpeg, tagged(&corpus("jpeg_5k.jpg"), "x")).unwrap();
    let runs = dir.path().join("runs");
    let bg = unique_seconds(4);
    // Counts its runs in a file, writes a frame, leaves a child that holds
    // stdout open, and exits.
    let command = format!(
        "echo run >> '{runs}'; cat '{jpeg}'; sleep {bg} &",
        runs = runs.display(),
        jpeg = jpeg.display()
    );
    let p = ServerProcess::start(&["--stream", &format!("cam=exec:{command}")]);
    let count = || {
        std::fs::read_to_string(&runs)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let start = Instant::now();
    while count() < 3 {
        if start.elapsed() > Duration::from_secs(15) {
            reap(&sleepers(&bg));
            panic!(
                "ran {} times: not restarted after the shell exited",
                count()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each run's child went with its run.
    let alive = sleepers(&bg);
    assert!(
        alive.len() <= 1,
        "children of earlier runs live on: {alive:?}"
    );
    let s = status_json(p.addr).await;
    assert!(
        s["streams"][0]["frames_published"].as_u64().unwrap() >= 1,
        "{s}"
    );
    drop(p);
    let start = Instant::now();
    while !sleepers(&bg).is_empty() && start.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = sleepers(&bg);
    reap(&left);
    assert!(left.is_empty(), "processes outlived the server: {left:?}");
}
