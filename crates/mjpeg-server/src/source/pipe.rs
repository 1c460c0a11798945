//! `stdin` and `exec:COMMAND`: frames from a program's output.
//!
//! Encoders and camera tools that speak MJPEG on a pipe (`ffmpeg -f mjpeg -`,
//! `rpicam-vid --codec mjpeg -o -`, `gst-launch-1.0 … ! jpegenc ! fdsink`)
//! write JPEG after JPEG with no length in front and nothing in between;
//! `ffmpeg -f mpjpeg -` writes a multipart stream. [`run_reader`] publishes
//! the frames of either from any [`AsyncRead`], read with the frame reader
//! every source shares ([`crate::ingest::FrameReader`]); [`run_stdin`] and
//! [`run_exec`] are the two sources built on it.

use std::fmt;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStderr, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, SourceState};
use crate::ingest::{Event, FrameReader, DEFAULT_MAX_FRAME};

/// What [`run_reader`] did, for the caller's log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Bytes read.
    pub bytes: u64,
    /// Frames published.
    pub frames: u64,
    /// Frames and runs of bytes dropped (each also counted by
    /// [`Hub::reject`]).
    pub dropped: u64,
}

/// Warnings about one stream's data, at most one per this long, so that a
/// source that sends nothing but damaged frames does not flood the log. The
/// hub still counts every one.
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    suppressed: u64,
}

impl Warnings {
    fn warn(&mut self, stream: &str, what: &dyn fmt::Display) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        self.last = Some(now);
        match std::mem::take(&mut self.suppressed) {
            0 => tracing::warn!(stream, "{what}"),
            n => tracing::warn!(
                stream,
                "{what} (and {n} more problems since the last warning; /status counts them all)"
            ),
        }
    }

    fn flush(&mut self, stream: &str) {
        let n = std::mem::take(&mut self.suppressed);
        if n > 0 {
            tracing::warn!(
                stream,
                "{n} more problems with the stream's data were not logged; /status counts them all"
            );
        }
    }
}

/// What a piped source accepts: frames of at most `max_frame` bytes whose
/// header declares at most `max_pixels` pixels (a frame that passes on to
/// every viewer's decoder undecoded must not declare a size that would
/// make them allocate gigabytes).
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Largest frame, in bytes.
    pub max_frame: usize,
    /// Most pixels a frame may declare.
    pub max_pixels: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_frame: DEFAULT_MAX_FRAME,
            max_pixels: crate::convert::DEFAULT_MAX_PIXELS,
        }
    }
}

/// Reads a stream of concatenated JPEGs (or a multipart stream) from
/// `reader` and publishes every frame into `hub`, until the end of the
/// stream or `shutdown`.
///
/// Frames that cannot be published and bytes that were dropped are counted
/// with [`Hub::reject`] (so `/status` shows the last reason) and logged,
/// rate-limited, naming the stream. Returns what was done, or the read error
/// that stopped it; the stream keeps its last frame either way.
pub async fn run_reader<R: AsyncRead + Unpin>(
    mut reader: R,
    limits: ReadLimits,
    hub: &Hub,
    shutdown: &CancellationToken,
) -> io::Result<ReadStats> {
    let mut frames = FrameReader::stream(limits.max_frame);
    let mut stats = ReadStats::default();
    let mut warnings = Warnings::default();
    let result = loop {
        let read = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            read = frames.read_from(&mut reader) => read,
        };
        let n = match read {
            Ok(n) => n,
            // A signal arrived mid-read: nothing was lost, read again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        stats.bytes += n as u64;
        while let Some(event) = frames.next_event() {
            match event {
                Event::Frame(jpeg, _) => match hub.publish_jpeg_within(jpeg, limits.max_pixels) {
                    Ok(_) => stats.frames += 1,
                    // The hub counted it already.
                    Err(e) => {
                        stats.dropped += 1;
                        warnings.warn(hub.name(), &format_args!("frame refused: {e}"));
                    }
                },
                Event::Dropped(dropped) => {
                    stats.dropped += 1;
                    hub.reject(&dropped);
                    warnings.warn(hub.name(), &dropped);
                }
            }
        }
        if n == 0 {
            break Ok(());
        }
    };
    warnings.flush(hub.name());
    result.map(|()| stats)
}

/// The `stdin` source: publishes the frames piped into the server's standard
/// input (`ffmpeg … -f mjpeg - | mjpeg-server --stream cam=stdin`).
///
/// When stdin ends, the stream keeps its last frame, its source state says
/// `waiting: stdin closed`, and the server keeps running.
pub async fn run_stdin(limits: ReadLimits, hub: Hub, shutdown: CancellationToken) {
    hub.set_source_state(SourceState::Running);
    let result = read_stdin(limits, &hub, &shutdown).await;
    if shutdown.is_cancelled() {
        return;
    }
    match result {
        Ok(stats) => {
            tracing::info!(
                stream = hub.name(),
                frames = stats.frames,
                bytes = stats.bytes,
                "stdin closed; the stream keeps its last frame"
            );
            hub.set_source_state(SourceState::Waiting("stdin closed".into()));
        }
        Err(e) => {
            let text = format!("cannot read stdin: {e}");
            tracing::error!(stream = hub.name(), "{text}");
            hub.set_source_state(SourceState::Failed(text));
        }
    }
}

async fn read_stdin(
    limits: ReadLimits,
    hub: &Hub,
    shutdown: &CancellationToken,
) -> io::Result<ReadStats> {
    // A pipe (the usual case) is read asynchronously, so shutdown never
    // waits for the writer. Anything else (a file, a terminal) is read as a
    // file, one blocking-pool read at a time.
    #[cfg(unix)]
    if let Some(pipe) = stdin_pipe() {
        return run_reader(pipe, limits, hub, shutdown).await;
    }
    run_reader(stdin_file()?, limits, hub, shutdown).await
}

/// Standard input as an asynchronous pipe, if it is a pipe or FIFO. This
/// makes the pipe non-blocking, which only this process reads from. Shared
/// with the chart source's `chart:stdin`; only one stream may read stdin.
#[cfg(unix)]
pub(crate) fn stdin_pipe() -> Option<tokio::net::unix::pipe::Receiver> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()
}

/// Standard input as a file (a copy of its descriptor, so that dropping it
/// leaves the process's stdin open).
pub(crate) fn stdin_file() -> io::Result<tokio::fs::File> {
    #[cfg(unix)]
    let owned = std::os::fd::AsFd::as_fd(&std::io::stdin()).try_clone_to_owned();
    #[cfg(windows)]
    let owned = std::os::windows::io::AsHandle::as_handle(&std::io::stdin()).try_clone_to_owned();
    let owned = owned.map_err(|e| io::Error::new(e.kind(), format!("cannot open stdin: {e}")))?;
    Ok(tokio::fs::File::from_std(std::fs::File::from(owned)))
}

/// How an `exec:` source runs and restarts its command.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// What frames are accepted.
    pub limits: ReadLimits,
    /// Wait before restarting a command that exited; doubled after each
    /// exit that follows a short run.
    pub restart_delay: Duration,
    /// The longest wait between restarts.
    pub max_restart_delay: Duration,
    /// A run at least this long counts as healthy: the next restart waits
    /// only `restart_delay` again.
    pub healthy_after: Duration,
}

impl Default for ExecOptions {
    /// 16 MiB frames; restarts after 0.5 s, doubling to 30 s, back to 0.5 s
    /// after a run of 10 s.
    fn default() -> Self {
        ExecOptions {
            limits: ReadLimits::default(),
            restart_delay: Duration::from_millis(500),
            max_restart_delay: Duration::from_secs(30),
            healthy_after: Duration::from_secs(10),
        }
    }
}

/// The `exec:COMMAND` source with the default restart policy: see
/// [`run_exec_with`].
pub async fn run_exec(command: String, limits: ReadLimits, hub: Hub, shutdown: CancellationToken) {
    let opts = ExecOptions {
        limits,
        ..ExecOptions::default()
    };
    run_exec_with(command, opts, hub, shutdown).await;
}

/// The `exec:COMMAND` source: runs `sh -c COMMAND` and publishes the JPEGs it
/// writes to stdout, until `shutdown`.
///
/// Its stdin is empty; each line it writes to stderr is logged. When it
/// exits, for whatever reason, it is started again after a delay that
/// doubles while it keeps failing quickly (see [`ExecOptions`]), so a camera
/// that comes back is picked up without hammering one that does not. The
/// command runs in a process group of its own: when the shell exits, at
/// shutdown, and before a restart, the whole group is ended (SIGTERM, then
/// SIGKILL after 2 s), pipelines and background children included.
///
/// The command line is not shown in `/status` or in warnings, since it may
/// carry a camera's password in a URL; it is logged at debug level.
pub async fn run_exec_with(
    command: String,
    opts: ExecOptions,
    hub: Hub,
    shutdown: CancellationToken,
) {
    tracing::debug!(stream = hub.name(), command, "exec source");
    if let Some(program) = missing_program(&command, std::env::var_os("PATH").as_deref()) {
        // Only the program's name: the rest of the line may carry a
        // password. Still started: it may be installed or mounted later.
        tracing::warn!(
            stream = hub.name(),
            "exec: command {program:?} not found on PATH; is it installed? \
             (trying anyway, and again with back-off while it fails)"
        );
    }
    let mut delay = opts.restart_delay;
    loop {
        let started = Instant::now();
        let ended = run_command(&command, &hub, opts.limits, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        if started.elapsed() >= opts.healthy_after {
            delay = opts.restart_delay;
        }
        let why = match &ended {
            Ok(status) => format!("command exited with {}", describe_exit(*status)),
            Err(e) => e.to_string(),
        };
        let text = format!("{why}; restarting in {}", seconds(delay));
        if matches!(&ended, Ok(status) if status.success()) {
            tracing::info!(stream = hub.name(), "{text}");
        } else {
            tracing::warn!(stream = hub.name(), "{text}");
        }
        hub.set_source_state(SourceState::Waiting(text));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = delay
            .checked_mul(2)
            .unwrap_or(Duration::MAX)
            .min(opts.max_restart_delay);
    }
}

/// The program that `sh -c command` would run first, if it can be told
/// and is neither a shell builtin or keyword nor an executable file on
/// `path` (or, for a name with a `/`, at that path). `None` when it is
/// found or when the line is too much shell to tell (quotes, expansions,
/// subshells).
fn missing_program(command: &str, path: Option<&std::ffi::OsStr>) -> Option<String> {
    // Leading `VAR=value` assignments set the environment of the program
    // that follows.
    let word = command
        .split_whitespace()
        .find(|w| !w.contains('=') || w.starts_with('='))?;
    if word.contains([
        '\'', '"', '$', '`', '(', ')', '{', '}', '<', '>', '|', '&', ';', '\\', '*', '?', '~',
    ]) {
        return None;
    }
    const SHELL: &[&str] = &[
        "exec", "if", "while", "until", "for", "case", "!", "[", ".", ":", "cd", "echo", "eval",
        "printf", "read", "set", "test", "trap", "true", "false", "ulimit", "umask", "wait",
        "command", "export", "unset", "shift", "times", "type", "alias", "kill", "pwd", "sleep",
    ];
    if SHELL.contains(&word) {
        return None;
    }
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| {
            #[cfg(unix)]
            let executable = {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o111 != 0
            };
            #[cfg(not(unix))]
            let executable = true;
            m.is_file() && executable
        })
    };
    let found = if word.contains('/') {
        runnable(std::path::Path::new(word))
    } else {
        // sh's own default when PATH is unset.
        let path = path.unwrap_or(std::ffi::OsStr::new("/usr/local/bin:/usr/bin:/bin"));
        std::env::split_paths(path).any(|dir| runnable(&dir.join(word)))
    };
    (!found).then(|| word.to_string())
}

/// How long the processes of a command get to exit after SIGTERM (at
/// shutdown, or when the command ends and leaves some behind) before they
/// are sent SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What ended the first phase of a run.
enum Ended {
    Shutdown,
    /// The command's stdout reached its end (or could not be read).
    Output(io::Result<ReadStats>),
    /// The shell exited; its stdout may still be held open by a child.
    Exited(io::Result<ExitStatus>),
}

/// Runs the command once: until it exits, or until `shutdown` (then it is
/// stopped and the result does not matter).
///
/// The command runs in a process group of its own, and every way out of a
/// run ends the whole group (SIGTERM, then SIGKILL after [`STOP_GRACE`]):
/// killing `sh` alone would leave a pipeline's other processes and
/// anything it started in the background running, still holding the
/// stdout pipe. For the same reason the shell's exit is noticed by waiting
/// for it, not only by the end of its output, which a background child
/// can hold off for ever.
async fn run_command(
    command: &str,
    hub: &Hub,
    limits: ReadLimits,
    shutdown: &CancellationToken,
) -> io::Result<ExitStatus> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // If this function is left some other way (a panic, the task being
        // aborted or dropped with the runtime), the group guard below kills
        // the group and this kills and reaps the shell.
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the command with sh: {e}")))?;
    let mut group = Group::of(&child);
    hub.set_source_state(SourceState::Running);
    tracing::info!(stream = hub.name(), pid = child.id(), "command started");
    let stderr = child
        .stderr
        .take()
        .map(|err| AbortOnDrop(tokio::spawn(log_stderr(err, hub.name().to_owned()))));

    let stdout = child.stdout.take();
    let reading = async move {
        match stdout {
            Some(stdout) => run_reader(stdout, limits, hub, shutdown).await,
            None => Ok(ReadStats::default()),
        }
    };
    tokio::pin!(reading);
    let ended = tokio::select! {
        biased;
        _ = shutdown.cancelled() => Ended::Shutdown,
        read = &mut reading => Ended::Output(read),
        status = child.wait() => Ended::Exited(status),
    };
    let status = match ended {
        Ended::Shutdown => {
            group.stop(&mut child).await;
            return Err(io::Error::new(io::ErrorKind::Interrupted, "shutting down"));
        }
        Ended::Output(read) => {
            match read {
                Ok(stats) => tracing::debug!(
                    stream = hub.name(),
                    frames = stats.frames,
                    bytes = stats.bytes,
                    "command's output ended"
                ),
                Err(e) => {
                    // A read error on a pipe is not something waiting
                    // fixes: restart.
                    tracing::warn!(
                        stream = hub.name(),
                        "cannot read the command's output: {e}; stopping it"
                    );
                    group.stop(&mut child).await;
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    group.stop(&mut child).await;
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "shutting down"));
                }
                status = child.wait() => status,
            }
        }
        Ended::Exited(status) => {
            // What is still in the pipe is read while the rest of the
            // group is stopped; a child that holds the pipe goes with it.
            let drain = tokio::time::timeout(STOP_GRACE * 2, &mut reading);
            let (_, drained) = tokio::join!(group.stop(&mut child), drain);
            if drained.is_err() {
                tracing::warn!(
                    stream = hub.name(),
                    "the command's output is still held open by a process outside its \
                     process group; no longer reading it"
                );
            }
            status
        }
    };
    // Whatever the command left running goes with this run.
    group.stop(&mut child).await;
    let status = status
        .map_err(|e| io::Error::new(e.kind(), format!("cannot wait for the command: {e}")))?;
    // The last lines on stderr usually say why it exited: let them reach
    // the log before the exit does, but do not wait for a process that
    // keeps stderr open.
    if let Some(mut task) = stderr {
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut task.0).await;
    }
    Ok(status)
}

/// The process group of a running command (see [`run_command`]). Dropped
/// before [`stop`](Group::stop) finished, it sends the group SIGKILL, so
/// that not even a server that exits mid-run leaves the command's
/// processes behind.
struct Group {
    /// The group's id (the shell's pid), until the group is stopped.
    #[cfg(unix)]
    pgid: Option<libc::pid_t>,
}

impl Group {
    fn of(child: &tokio::process::Child) -> Group {
        #[cfg(not(unix))]
        let _ = child;
        Group {
            #[cfg(unix)]
            pgid: child
                .id()
                .and_then(|pid| libc::pid_t::try_from(pid).ok())
                .filter(|&pid| pid > 0),
        }
    }

    /// Sends `signal` to every process of the group; false if none is left.
    #[cfg(unix)]
    fn signal(&self, signal: libc::c_int) -> bool {
        match self.pgid {
            // SAFETY: kill(2) with a negative pid signals a process group;
            // it touches no memory of this process.
            Some(pgid) => unsafe { libc::kill(-pgid, signal) == 0 },
            None => false,
        }
    }

    /// Ends the group: SIGTERM, a grace of [`STOP_GRACE`] to exit, then
    /// SIGKILL; the shell is reaped either way. Does nothing the second
    /// time.
    async fn stop(&mut self, child: &mut tokio::process::Child) {
        #[cfg(unix)]
        if self.signal(libc::SIGTERM) {
            let deadline = tokio::time::Instant::now() + STOP_GRACE;
            // The shell is this process's child: reap it, or it would keep
            // the group alive as a zombie. The others, orphaned, are reaped
            // by init.
            let _ = tokio::time::timeout_at(deadline, child.wait()).await;
            while self.signal(0) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.signal(libc::SIGKILL);
        }
        #[cfg(unix)]
        {
            self.pgid = None;
        }
        // Kills and reaps the shell if it is still there (without a group,
        // all there is to kill); an error only says it is gone already.
        let _ = child.kill().await;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        self.signal(libc::SIGKILL);
    }
}

/// Aborts a task when dropped, so the stderr logger of a command never
/// outlives the command's run.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Longest stderr line logged whole; progress bars without line breaks
/// must not grow a line without bound.
const MAX_LINE: usize = 1000;

/// Logs each line the command writes to stderr (lines end at `\n` or `\r`,
/// which progress output uses).
async fn log_stderr(mut stderr: ChildStderr, stream: String) {
    let mut line = Vec::with_capacity(256);
    let mut long = false;
    let mut chunk = vec![0; 4096];
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' || b == b'\r' {
                log_line(&stream, &line, long);
                line.clear();
                long = false;
            } else if line.len() < MAX_LINE {
                line.push(b);
            } else {
                long = true;
            }
        }
    }
    log_line(&stream, &line, long);
}

fn log_line(stream: &str, line: &[u8], long: bool) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if !text.is_empty() {
        let more = if long { " …" } else { "" };
        tracing::info!(stream, "command: {text}{more}");
    }
}

fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("signal {signal}");
        }
    }
    status.to_string()
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::corpus;

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn missing_program_names_the_first_word_only_when_it_can_tell() {
        let path = Some(std::ffi::OsStr::new("/usr/bin:/bin"));
        assert_eq!(missing_program("cat x.jpg", path), None);
        assert_eq!(missing_program("  FOO=1 BAR=2 cat x.jpg", path), None);
        assert_eq!(missing_program("exec cat x.jpg", path), None);
        assert_eq!(missing_program("/bin/sh -c true", path), None);
        assert_eq!(
            missing_program("rpicam-vid-nonexistent -t 0 -o -", path).as_deref(),
            Some("rpicam-vid-nonexistent")
        );
        assert_eq!(
            missing_program("A=b ./no/such/tool", path).as_deref(),
            Some("./no/such/tool")
        );
        // On a PATH without it, cat is missing too.
        assert_eq!(
            missing_program("cat x", Some(std::ffi::OsStr::new("/nonexistent"))).as_deref(),
            Some("cat")
        );
        // Too much shell to tell: no guess.
        for line in [
            "$CAM -o -",
            "\"my tool\" x",
            "(cd /; x)",
            "{ x; }",
            "",
            "   ",
        ] {
            assert_eq!(missing_program(line, path), None, "{line}");
        }
    }

    #[tokio::test]
    async fn run_reader_publishes_frames_and_counts_problems() {
        let hub = Hub::new("t");
        let a = corpus("jpeg_5k.jpg");
        let stream = cat(&[&a, b"junk", &a, &corpus("truncated.jpg")]);
        let token = CancellationToken::new();
        let stats = run_reader(&stream[..], ReadLimits::default(), &hub, &token)
            .await
            .unwrap();
        assert_eq!(
            stats,
            ReadStats {
                bytes: stream.len() as u64,
                frames: 2,
                dropped: 2
            }
        );
        let hs = hub.stats();
        assert_eq!((hs.frames_published, hs.frames_rejected), (2, 2));
        assert!(
            hs.last_error
                .as_deref()
                .unwrap()
                .contains("ended in the middle of a frame"),
            "{:?}",
            hs.last_error
        );
        assert!(hub.latest().unwrap().jpeg()[..] == a[..]);
    }

    #[tokio::test]
    async fn run_reader_stops_at_shutdown_while_waiting_for_data() {
        let hub = Hub::new("t");
        let (mut tx, rx) = tokio::io::duplex(1024);
        let token = CancellationToken::new();
        let reader = {
            let (hub, token) = (hub.clone(), token.clone());
            tokio::spawn(async move { run_reader(rx, ReadLimits::default(), &hub, &token).await })
        };
        tokio::io::AsyncWriteExt::write_all(&mut tx, &corpus("jpeg_5k.jpg"))
            .await
            .unwrap();
        for _ in 0..500 {
            if hub.stats().frames_published == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(hub.stats().frames_published, 1);
        token.cancel();
        let stats = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("run_reader did not stop")
            .unwrap()
            .unwrap();
        assert_eq!(stats.frames, 1);
    }
}
