#!/usr/bin/env python3
"""Client side of bench/soak.sh: churns connections against a running
mjpeg-server, checks every byte it receives, and watches the server's file
descriptors and memory. Python 3.11 standard library only.

Subcommands (soak.sh calls them; they are not meant to be typed by hand):

  frames DIR              print the files of DIR that are complete JPEGs
  convertible DIR         print the PNG and GIF files of DIR
  cam DIR SECONDS FPS     the exec: source: write DIR's JPEGs to stdout, exit
  run ...                 warm up, baseline, churn, settle; write results JSON
  report RESULTS ...      print the summary table; exit 1 on failure
"""

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"  # the soak never talks to any other address
PORT = None  # set by `run`

# Connections the churn may hold at once, on top of the slow readers, the
# pusher and the odd /status poll: together they stay at about 150.
CHURN_CONNECTIONS = 136
SLOW_READERS = 10

# Generous on purpose: every stream re-sends its newest frame at least once a
# second, so a client that gets nothing for this long has met a stuck server,
# not a busy machine.
CYCLE_TIMEOUT = 20.0

# The pusher's pace: a push stream sees uploads a few times a second in real
# use, and a bad one now and then must not disturb the good ones.
PUSH_EVERY = 0.25
BAD_PUSH_EVERY = 3.0


# ---------------------------------------------------------------- JPEG check


def jpeg_problem(b):
    """Why `b` is not exactly one complete JPEG, or None if it is.

    Walks the marker segments by their lengths up to each SOS, then the
    entropy-coded data (FF 00 stuffing, RST0-7, FF fill) to the next marker,
    as T.81 and src/jpeg.rs do. Unlike the server's walk, nothing may follow
    the EOI: a frame on the wire must end at its last byte.
    """
    n = len(b)
    if n == 0:
        return "empty"
    if n < 2 or b[0] != 0xFF or b[1] != 0xD8:
        return "does not start with FF D8 (first bytes %s)" % b[:8].hex(" ")
    pos = 2
    seen_sof = seen_sos = False
    while True:
        if pos >= n:
            return "truncated: no marker at byte %d (size %d)" % (pos, n)
        if b[pos] != 0xFF:
            return "expected a marker at byte %d, found %02X" % (pos, b[pos])
        while pos + 1 < n and b[pos + 1] == 0xFF:
            pos += 1
        if pos + 1 >= n:
            return "truncated inside a marker at byte %d" % pos
        marker = b[pos + 1]
        at = pos
        pos += 2
        if marker == 0xD9:
            if not (seen_sof and seen_sos):
                return "EOI at byte %d before any frame header and scan" % at
            if pos != n:
                return "EOI at byte %d but %d bytes follow it" % (at, n - pos)
            return None
        if marker == 0xD8:
            return "second SOI at byte %d" % at
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0x00:
            return "FF 00 where a marker belongs, at byte %d" % at
        if pos + 2 > n:
            return "truncated in the length of FF %02X at byte %d" % (marker, at)
        seg_len = (b[pos] << 8) | b[pos + 1]
        if seg_len < 2:
            return "segment FF %02X at byte %d has length %d" % (marker, at, seg_len)
        if pos + seg_len > n:
            return "segment FF %02X at byte %d runs past the end" % (marker, at)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if seg_len < 8:
                return "frame header FF %02X at byte %d too short" % (marker, at)
            seen_sof = True
        pos += seg_len
        if marker == 0xDA:
            if not seen_sof:
                return "scan at byte %d before any frame header" % at
            seen_sos = True
            while True:
                ff = b.find(b"\xff", pos)
                if ff < 0:
                    return "truncated in entropy-coded data (no EOI)"
                code = ff + 1
                while code < n and b[code] == 0xFF:
                    code += 1
                if code >= n:
                    return "truncated in entropy-coded data (ends in FF)"
                c = b[code]
                if c == 0x00 or 0xD0 <= c <= 0xD7:
                    pos = code + 1
                    continue
                pos = code - 1
                break


class FrameChecker:
    """Caches verdicts by content: the same frame reaches many clients, and
    the same bytes always get the same verdict."""

    def __init__(self, cam_hashes):
        self.cache = {}
        self.cam_hashes = cam_hashes

    def check(self, stream, data, boundary=None):
        digest = hashlib.blake2b(data, digest_size=16).digest()
        problem = self.cache.get(digest, False)
        if problem is False:
            problem = jpeg_problem(data)
            if len(self.cache) > 20000:
                self.cache.clear()
            self.cache[digest] = problem
        if problem is None and stream == "cam" and digest not in self.cam_hashes:
            # An exec source passes JPEGs through untouched: any other bytes
            # were damaged on the way.
            problem = "%d bytes that are not any of the files the source wrote" % len(data)
        if problem is None and boundary is not None and boundary in data:
            problem = "the frame contains the boundary string"
        return problem, digest


def file_digest(data):
    return hashlib.blake2b(data, digest_size=16).digest()


# ---------------------------------------------------------------- multipart


class StreamParser:
    """Strict parser for one multipart/x-mixed-replace response, fed bytes
    as they arrive. Stops (and says so) on the first deviation."""

    HEAD_LIMIT = 16384
    PART_HEAD_LIMIT = 2048

    def __init__(self, stream, checker, stats, stop_after_parts=None, stop_in_part=None):
        self.stream = stream
        self.checker = checker
        self.stats = stats
        self.buf = bytearray()
        self.state = "head"
        self.boundary = None
        self.delim = None
        self.part_len = 0
        self.parts = 0
        self.error = None
        self.done = False  # the client got what it came for
        self.stop_after_parts = stop_after_parts
        self.stop_in_part = stop_in_part  # (part index, fraction of its body)
        self.stop_offset = None
        self.stopped_mid_part = False
        self.ended = False  # close delimiter seen

    def fail(self, why):
        if self.error is None:
            self.error = why
        self.done = True

    def in_body(self):
        return self.state == "body" and len(self.buf) > 0

    def feed(self, data):
        if self.done:
            return
        self.buf += data
        while not self.done:
            if not self.step():
                break

    def step(self):
        buf = self.buf
        if self.state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.HEAD_LIMIT:
                    self.fail("response head longer than %d bytes" % self.HEAD_LIMIT)
                return False
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            lines = head.split("\r\n")
            if not re.fullmatch(r"HTTP/1\.[01] 200 .*", lines[0]):
                self.fail("status line %r" % lines[0])
                return False
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    self.fail("bad header line %r" % line)
                    return False
                headers[name.strip().lower()] = value.strip()
            if "transfer-encoding" in headers:
                self.fail("transfer-encoding %r on a stream" % headers["transfer-encoding"])
                return False
            m = re.fullmatch(
                r'multipart/x-mixed-replace\s*;\s*boundary=(?:"([^"]+)"|([^\s;"]+))',
                headers.get("content-type", ""),
                re.I,
            )
            if not m:
                self.fail("content-type %r" % headers.get("content-type"))
                return False
            self.boundary = (m.group(1) or m.group(2)).encode("latin-1")
            self.delim = b"--" + self.boundary
            self.state = "first"
            return True
        if self.state in ("first", "delim"):
            want = self.delim if self.state == "first" else b"\r\n" + self.delim
            if len(buf) < len(want) + 2:
                if not want.startswith(bytes(buf[: len(want)])):
                    self.fail("expected %r, got %r" % (want, bytes(buf[:40])))
                return False
            if not buf.startswith(want):
                self.fail("expected %r, got %r" % (want, bytes(buf[: len(want) + 8])))
                return False
            tail = bytes(buf[len(want) : len(want) + 2])
            del buf[: len(want) + 2]
            if tail == b"--":
                self.ended = True
                self.state = "end"
                return True
            if tail != b"\r\n":
                self.fail("boundary line followed by %r" % tail)
                return False
            self.state = "part_head"
            return True
        if self.state == "part_head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.PART_HEAD_LIMIT:
                    self.fail("part headers longer than %d bytes" % self.PART_HEAD_LIMIT)
                return False
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            headers = {}
            for line in lines:
                name, sep, value = line.partition(":")
                if not sep:
                    self.fail("bad part header %r" % line)
                    return False
                headers[name.strip().lower()] = value.strip()
            if headers.get("content-type", "").lower() != "image/jpeg":
                self.fail("part content-type %r" % headers.get("content-type"))
                return False
            length = headers.get("content-length", "")
            if not length.isdigit():
                self.fail("part content-length %r" % length)
                return False
            self.part_len = int(length)
            self.state = "body"
            if self.stop_in_part and self.stop_in_part[0] == self.parts and self.part_len > 1:
                self.stop_offset = max(1, min(self.part_len - 1, int(self.part_len * self.stop_in_part[1])))
            else:
                self.stop_offset = None
            return True
        if self.state == "body":
            if self.stop_offset is not None and len(buf) >= self.stop_offset:
                # Leave with part of the frame unread, as a browser tab does.
                del buf[self.stop_offset :]
                self.stopped_mid_part = True
                self.done = True
                return False
            if len(buf) < self.part_len:
                return False
            body = bytes(buf[: self.part_len])
            del buf[: self.part_len]
            problem, _ = self.checker.check(self.stream, body, self.delim)
            if problem:
                self.fail("invalid frame: %s" % problem)
                return False
            self.parts += 1
            self.stats.frame(self.stream)
            self.state = "delim"
            if self.stop_after_parts is not None and self.parts >= self.stop_after_parts:
                self.done = True
            return True
        if self.state == "end":
            if buf:
                self.fail("%d bytes after the close delimiter" % len(buf))
            return False
        raise AssertionError(self.state)


# ---------------------------------------------------------------- plumbing


class Stats:
    def __init__(self):
        self.c = {}
        self.frames_by_stream = {}
        self.failures = []
        self.failure_count = 0
        self.open = 0
        self.peak_open = 0

    def add(self, key, n=1):
        self.c[key] = self.c.get(key, 0) + n

    def frame(self, stream):
        self.add("frames_validated")
        self.frames_by_stream[stream] = self.frames_by_stream.get(stream, 0) + 1

    def fail(self, what):
        self.failure_count += 1
        if len(self.failures) < 50:
            self.failures.append(what)
        if self.failure_count <= 20:
            print("FAILURE: %s" % what, file=sys.stderr, flush=True)


class Conn:
    """A raw non-blocking TCP socket driven by the event loop: no stream
    buffering in between, so the client reads exactly what it chooses to."""

    def __init__(self, stats, rcvbuf=None):
        self.stats = stats
        self.rcvbuf = rcvbuf
        self.sock = None

    async def __aenter__(self):
        loop = asyncio.get_running_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        if self.rcvbuf:
            # A small window makes a slow reader slow on the wire as well,
            # not only in the client's own buffer.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        self.stats.open += 1
        self.stats.peak_open = max(self.stats.peak_open, self.stats.open)
        try:
            await loop.sock_connect(self.sock, (HOST, PORT))
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.stats.open -= 1

    async def send(self, data):
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def recv(self, n=65536):
        data = await asyncio.get_running_loop().sock_recv(self.sock, n)
        self.stats.add("bytes_read", len(data))
        return data


def request(method, path, extra=b"", body=b""):
    head = "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: mjpeg-soak\r\nConnection: close\r\n" % (
        method,
        path,
        HOST,
        PORT,
    )
    return head.encode() + extra + b"\r\n" + body


async def read_all(conn, limit=64 << 20):
    chunks = []
    total = 0
    while True:
        data = await conn.recv()
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
        if total > limit:
            raise ValueError("response over %d bytes" % limit)


def parse_response(raw):
    """(status, headers, body) of a whole Connection: close response."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise ValueError("no end of response head in %r" % raw[:80])
    lines = raw[:end].decode("latin-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.[01] (\d{3}) ?.*", lines[0])
    if not m:
        raise ValueError("status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = raw[end + 4 :]
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    elif "content-length" in headers and int(headers["content-length"]) != len(body):
        raise ValueError("content-length %s but %d bytes of body" % (headers["content-length"], len(body)))
    return int(m.group(1)), headers, body


def dechunk(body):
    out = bytearray()
    pos = 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            return bytes(out)
        out += body[pos : pos + size]
        pos += size + 2


async def http_get(stats, path):
    async with Conn(stats) as conn:
        await conn.send(request("GET", path))
        return parse_response(await read_all(conn))


# ---------------------------------------------------------------- /proc


def children(pid):
    kids = set()
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.update(int(k) for k in f.read().split())
    except FileNotFoundError:
        pass
    return kids


def fd_targets(pid):
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            pass
    return out


def fd_state(pid):
    """(all fds, fds without the live exec command's, kinds of the latter).

    While the cam command runs, the server holds its stdout and stderr pipes
    and a pidfd; between runs it holds none. Those three come and go with the
    source, so they are left out of the comparison; a pipe or pidfd kept
    after its command is gone still counts, and so does everything else.
    """
    for _ in range(50):
        kids = children(pid)
        fds = fd_targets(pid)
        kid_pipes = set()
        for kid in kids:
            # Only its stdout and stderr: a descriptor the server itself
            # inherited and passed on is the server's, and stays counted.
            for fd in (1, 2):
                try:
                    target = os.readlink("/proc/%d/fd/%d" % (kid, fd))
                except (FileNotFoundError, PermissionError):
                    continue
                if target.startswith("pipe:"):
                    kid_pipes.add(target)
        if children(pid) != kids:
            continue
        steady = {}
        for fd, target in fds.items():
            if target in kid_pipes:
                continue
            if target == "anon_inode:[pidfd]":
                try:
                    with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                        m = re.search(r"^Pid:\s*(-?\d+)", f.read(), re.M)
                    if m and int(m.group(1)) in kids:
                        continue
                except FileNotFoundError:
                    continue
            steady[fd] = target
        kinds = {}
        for target in steady.values():
            kind = re.sub(r"\[.*", "", target) if not target.startswith("/") else target
            kinds[kind] = kinds.get(kind, 0) + 1
        return len(fds), len(steady), kinds
    raise RuntimeError("the server's children kept changing while its fds were read")


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def heap_in_use(pid, log):
    """Bytes the server has allocated and not freed, by glibc's count: gdb
    makes it call malloc_stats(), which prints to its stderr (the log).

    RSS alone cannot tell a leak from memory the allocator keeps for reuse;
    this can. None when gdb is missing or may not attach."""
    if not shutil.which("gdb"):
        return None
    start = os.path.getsize(log)
    try:
        subprocess.run(
            ["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for _ in range(20):
        time.sleep(0.1)
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
        found = re.findall(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*\d+\s*in use bytes\s*=\s*(\d+)", text)
        if found:
            return int(found[-1])
    return None


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# ---------------------------------------------------------------- the soak


STREAM_PATHS = {
    "/stream/demo": "demo",
    "/stream/cam": "cam",
    "/stream/in": "in",
    "/?action=stream": "demo",  # the first stream
    "/?action=stream_1": "cam",
}
SNAPSHOT_PATHS = {
    "/snapshot/demo": "demo",
    "/snapshot/cam": "cam",
    "/snapshot/in": "in",
    "/?action=snapshot": "demo",
}
# (weight, kind, path)
MIX = [
    (26, "stream", "/stream/demo"),
    (18, "stream", "/stream/cam"),
    (16, "stream", "/stream/in"),
    (6, "stream", "/?action=stream"),
    (2, "stream", "/?action=stream_1"),
    (6, "snapshot", "/snapshot/demo"),
    (3, "snapshot", "/snapshot/cam"),
    (3, "snapshot", "/snapshot/in"),
    (2, "snapshot", "/?action=snapshot"),
    (6, "status", "/status"),
    (2, "metrics", "/metrics"),
    (1, "abort", "/stream/demo"),
]
MIX_KINDS = [(kind, path) for weight, kind, path in MIX for _ in range(weight)]


class Soak:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.frames = {}
        for name in sorted(os.listdir(args.frames)):
            with open(os.path.join(args.frames, name), "rb") as f:
                self.frames[name] = f.read()
        self.push_images = {}
        for name in sorted(os.listdir(args.push_images or args.frames)):
            with open(os.path.join(args.push_images or args.frames, name), "rb") as f:
                self.push_images[name] = f.read()
        cam_hashes = {file_digest(d) for d in self.frames.values()}
        self.checker = FrameChecker(cam_hashes)
        self.rss_samples = []
        self.schedule_end = None

    # -- one churn cycle

    async def cycle(self, rng, kind, path):
        st = self.stats
        st.add("cycles")
        st.add("cycle_" + kind)
        if kind == "stream":
            await self.stream_cycle(rng, path)
        elif kind == "snapshot":
            await self.snapshot_cycle(path)
        elif kind in ("status", "metrics"):
            status, headers, body = await http_get(st, path)
            if status != 200:
                st.fail("%s answered %d" % (path, status))
            elif kind == "status":
                doc = json.loads(body)
                if not isinstance(doc.get("streams"), list):
                    st.fail("/status without a streams list")
            elif b"mjpeg_frames_in_total" not in body:
                st.fail("/metrics without mjpeg_frames_in_total")
        elif kind == "abort":
            # Half a request line, then gone: the server must not keep the
            # connection.
            async with Conn(st) as conn:
                await conn.send(request("GET", path)[: rng.randint(0, 20)])
            st.add("aborted_requests")

    async def stream_cycle(self, rng, path):
        st = self.stats
        stream = STREAM_PATHS[path]
        roll = rng.random()
        if roll < 0.6:
            parser = StreamParser(stream, self.checker, st, stop_after_parts=rng.randint(1, 5))
            mode = "parts"
        elif roll < 0.9:
            whole = rng.randint(0, 2)
            parser = StreamParser(stream, self.checker, st, stop_in_part=(whole, rng.random()))
            mode = "mid"
        else:
            parser = None
            mode = "early"
        async with Conn(st) as conn:
            await conn.send(request("GET", path))
            if mode == "early":
                # Leave before the first frame, some without reading a byte.
                if rng.random() < 0.5:
                    await conn.recv(rng.randint(1, 200))
                st.add("early_disconnects")
                return
            while not parser.done:
                data = await conn.recv()
                if not data:
                    parser.fail("connection closed by the server after %d parts" % parser.parts)
                    break
                parser.feed(data)
        if parser.error:
            st.fail("%s (stream %s): %s" % (path, stream, parser.error))
        elif parser.stopped_mid_part:
            st.add("mid_frame_disconnects")
        else:
            st.add("whole_part_disconnects")

    async def snapshot_cycle(self, path):
        st = self.stats
        stream = SNAPSHOT_PATHS[path]
        status, headers, body = await http_get(st, path)
        if status != 200:
            st.fail("%s answered %d" % (path, status))
            return
        if headers.get("content-type", "").lower() != "image/jpeg":
            st.fail("%s content-type %r" % (path, headers.get("content-type")))
            return
        if "content-length" not in headers:
            st.fail("%s without content-length" % path)
            return
        problem, _ = self.checker.check(stream, body)
        if problem:
            st.fail("%s (stream %s): invalid snapshot: %s" % (path, stream, problem))
            return
        st.add("snapshots_validated")
        st.frame(stream)

    async def guarded(self, coro_fn, what):
        st = self.stats
        try:
            async with asyncio.timeout(CYCLE_TIMEOUT):
                await coro_fn()
        except TimeoutError:
            st.fail("%s: nothing for %.0f s" % (what, CYCLE_TIMEOUT))
        except Exception as e:  # a broken answer of any kind is a finding
            st.fail("%s: %s: %s" % (what, type(e).__name__, e))

    async def churn(self, deadline):
        st = self.stats
        args = self.args
        rng = random.Random(args.seed)
        interval = args.seconds / args.cycles
        slots = asyncio.Semaphore(CHURN_CONNECTIONS)
        tasks = set()
        start = time.monotonic()
        # Every cycle is due before the deadline; the grace only absorbs
        # timer overshoot, so that a client that cannot keep up stops on time.
        cutoff = deadline + 0.5
        for i in range(args.cycles):
            due = start + i * interval
            now = time.monotonic()
            if now >= cutoff:
                break
            if due > now:
                await asyncio.sleep(due - now)
            await slots.acquire()
            if time.monotonic() >= cutoff:
                slots.release()
                break
            sub_rng = random.Random(rng.random())

            async def one(r=sub_rng):
                kind, path = r.choice(MIX_KINDS)
                try:
                    await self.guarded(lambda: self.cycle(r, kind, path), "%s %s" % (kind, path))
                finally:
                    slots.release()

            t = asyncio.create_task(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        self.schedule_end = time.monotonic()
        if tasks:
            await asyncio.wait(tasks)

    async def slow_reader(self, rng, deadline):
        st = self.stats
        while time.monotonic() < deadline - 5:
            path = rng.choice(["/stream/demo", "/stream/cam", "/stream/in", "/?action=stream"])
            stream = STREAM_PATHS[path]
            rate = rng.randint(2, 6) * 1024
            length = min(rng.uniform(15, 45), deadline - time.monotonic())
            parser = StreamParser(stream, self.checker, st)
            st.add("slow_sessions")
            ended_by_server = False
            try:
                async with Conn(st, rcvbuf=4096) as conn:
                    await conn.send(request("GET", path))
                    until = time.monotonic() + length
                    while time.monotonic() < until and not parser.done:
                        await asyncio.sleep(0.25)
                        async with asyncio.timeout(CYCLE_TIMEOUT):
                            data = await conn.recv(rate // 4)
                        if not data:
                            ended_by_server = True
                            break
                        parser.feed(data)
            except TimeoutError:
                st.fail("slow reader on %s: nothing for %.0f s" % (path, CYCLE_TIMEOUT))
                continue
            except OSError as e:
                st.fail("slow reader on %s: %s" % (path, e))
                await asyncio.sleep(1)  # a server that is gone refuses at once
                continue
            if parser.error:
                st.fail("slow reader on %s (stream %s): %s" % (path, stream, parser.error))
            elif ended_by_server:
                # A viewer that keeps reading must not be dropped: the write
                # timeout is for viewers that read nothing at all.
                st.fail(
                    "slow reader on %s (%d B/s) dropped by the server after %d parts%s"
                    % (path, rate, parser.parts, " mid-frame" if parser.in_body() else "")
                )
            st.add("slow_frames", parser.parts)

    async def pusher(self, rng, deadline):
        st = self.stats
        goods = list(self.push_images.items())
        jpegs = [d for d in self.frames.values() if len(d) <= 256 * 1024]
        next_bad = time.monotonic() + BAD_PUSH_EVERY
        bad_kinds = ["garbage", "truncated", "empty"]
        n_bad = 0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_bad:
                next_bad += BAD_PUSH_EVERY
                kind = bad_kinds[n_bad % len(bad_kinds)]
                n_bad += 1
                if kind == "garbage":
                    # Never a known image signature: a NUL first byte.
                    body = b"\x00" + rng.randbytes(rng.randint(100, 30000))
                    want = 415
                elif kind == "truncated":
                    whole = rng.choice(jpegs)
                    body = whole[: rng.randint(len(whole) // 10, len(whole) * 9 // 10)]
                    want = 400
                else:
                    body = b""
                    want = 400
                await self.push(body, want, "bad_" + kind)
            else:
                name, body = rng.choice(goods)
                await self.push(body, 204, "good")
            await asyncio.sleep(PUSH_EVERY)

    async def push(self, body, want, what):
        st = self.stats
        st.add("pushes_" + what)
        try:
            async with asyncio.timeout(CYCLE_TIMEOUT):
                async with Conn(st) as conn:
                    extra = b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n" % len(body)
                    await conn.send(request("PUT", "/stream/in", extra, body))
                    status, _, text = parse_response(await read_all(conn))
        except (TimeoutError, OSError, ValueError) as e:
            st.fail("push (%s): %s: %s" % (what, type(e).__name__, e))
            return
        if status == want:
            st.add("pushes_as_expected_" + ("ok" if want == 204 else "refused"))
            st.add("push_status_%d" % status)
        else:
            st.fail(
                "push (%s, %d bytes) answered %d, expected %d: %r"
                % (what, len(body), status, want, text[:200])
            )

    async def read_stream_for(self, path, seconds):
        """One well-behaved viewer for a while (the warm-up)."""
        st = self.stats
        parser = StreamParser(STREAM_PATHS[path], self.checker, st)
        async with Conn(st) as conn:
            await conn.send(request("GET", path))
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                try:
                    async with asyncio.timeout(max(0.01, until - time.monotonic())):
                        data = await conn.recv()
                except TimeoutError:
                    break
                if not data:
                    parser.fail("closed by the server")
                    break
                parser.feed(data)
                if parser.done:
                    break
        if parser.error:
            st.fail("warm-up %s: %s" % (path, parser.error))
        return parser.parts

    async def server_counts(self):
        status, _, body = await http_get(self.stats, "/status")
        if status != 200:
            raise RuntimeError("/status answered %d" % status)
        return json.loads(body)

    async def measure_steady(self, pid):
        """fd state once it holds still: the same count three times in a row."""
        last = None
        same = 0
        for _ in range(40):
            now = fd_state(pid)
            if last is not None and now[1] == last[1]:
                same += 1
                if same >= 2:
                    return now
            else:
                same = 0
            last = now
            await asyncio.sleep(0.25)
        return last

    async def run(self):
        args = self.args
        st = self.stats
        pid = args.pid
        results = {"seconds": args.seconds, "cycles_target": args.cycles}

        # Wait for the server to answer, and for every stream to have a frame.
        t0 = time.monotonic()
        while True:
            if not os.path.exists("/proc/%d" % pid):
                raise SystemExit("the server exited during start-up")
            try:
                doc = await self.server_counts()
            except (OSError, RuntimeError, ValueError):
                doc = None
            if doc is not None:
                if all(s.get("bytes") for s in doc["streams"]):
                    break
                if any(s["name"] == "in" and not s.get("bytes") for s in doc["streams"]):
                    await self.push(next(iter(self.push_images.values())), 204, "good")
            if time.monotonic() - t0 > 30:
                raise SystemExit("the server did not serve a frame on every stream within 30 s")
            await asyncio.sleep(0.2)

        # Warm-up: one viewer at a time, so every path the churn takes has
        # run once before the baseline is read.
        print("warm-up: one viewer at a time on demo, cam, in", flush=True)
        for path in ("/stream/demo", "/stream/cam", "/stream/in"):
            await self.read_stream_for(path, 1.5)
        await http_get(st, "/snapshot/demo")
        await http_get(st, "/metrics")
        await asyncio.sleep(1.5)
        if not alive(pid):
            # Something else answered on the port (SOAK_PORT in use).
            raise SystemExit("the server exited during the warm-up")
        fd_before = await self.measure_steady(pid)
        rss_before = rss_kib(pid)
        results["fd_before"] = fd_before
        results["rss_before_kib"] = rss_before
        results["heap_before"] = heap_in_use(pid, args.log)
        print(
            "baseline: %d fds (%d with the cam command's pipes), VmRSS %.1f MiB"
            % (fd_before[1], fd_before[0], rss_before / 1024),
            flush=True,
        )

        # The churn.
        start = time.monotonic()
        deadline = start + args.seconds
        rng = random.Random(args.seed ^ 0x5EED)
        workers = [asyncio.create_task(self.pusher(random.Random(rng.random()), deadline))]
        for _ in range(SLOW_READERS):
            workers.append(asyncio.create_task(self.slow_reader(random.Random(rng.random()), deadline)))
        workers.append(asyncio.create_task(self.progress(pid, start, deadline)))
        await self.churn(deadline)
        await asyncio.gather(*workers)
        results["churn_seconds"] = self.schedule_end - start
        results["elapsed_seconds"] = time.monotonic() - start
        results["peak_connections"] = st.peak_open

        # Every client is closed now: give the server time to notice, then
        # compare against the baseline.
        if st.open:
            st.fail("%d client connections still open at the end" % st.open)
        settle_start = time.monotonic()
        fd_after = rss_after = clients_left = None
        status, metrics = {"streams": []}, b""
        if not alive(pid):
            st.fail("the server process died during the soak")
        else:
            while time.monotonic() - settle_start < 30:
                await asyncio.sleep(1)
                try:
                    doc = await self.server_counts()
                    clients_left = sum(s["clients"] for s in doc["streams"])
                except (OSError, RuntimeError, ValueError) as e:
                    st.fail("/status after the churn: %s" % e)
                    break
                # Long enough for the server to close the /status connection.
                await asyncio.sleep(0.3)
                fd_after = fd_state(pid)
                if clients_left == 0 and fd_after[1] == fd_before[1]:
                    break
            rss_after = rss_kib(pid)
            results["heap_after"] = heap_in_use(pid, args.log)
            if clients_left:
                st.fail("/status still lists %d viewers after the churn" % clients_left)
            try:
                status = await self.server_counts()
                _, _, metrics = await http_get(st, "/metrics")
            except (OSError, RuntimeError, ValueError) as e:
                st.fail("/status or /metrics at the end: %s" % e)
        results["settle_seconds"] = time.monotonic() - settle_start
        results["fd_after"] = fd_after
        results["rss_after_kib"] = rss_after
        results["clients_left"] = clients_left
        results["status"] = status
        results["metrics"] = metrics.decode("utf-8", "replace")
        results["counters"] = st.c
        results["frames_by_stream"] = st.frames_by_stream
        results["failures"] = st.failures
        results["failure_count"] = st.failure_count
        results["rss_samples"] = self.rss_samples
        return results

    async def progress(self, pid, start, deadline):
        """A line every tenth of the run: memory that keeps climbing shows
        here long before the end."""
        step = max(5.0, self.args.seconds / 10)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(step, left))
            elapsed = time.monotonic() - start
            try:
                if not alive(pid):
                    raise FileNotFoundError
                fds = fd_state(pid)
                rss = rss_kib(pid)
            except (FileNotFoundError, ProcessLookupError):
                self.stats.fail("the server process is gone (t=%.0f s)" % elapsed)
                return
            c = self.stats.c
            self.rss_samples.append((round(elapsed), rss, fds[1]))
            print(
                "t=%4.0fs cycles=%d (%.0f/s) open=%d frames=%d failures=%d fds=%d rss=%.1fMiB"
                % (
                    elapsed,
                    c.get("cycles", 0),
                    c.get("cycles", 0) / max(elapsed, 1e-9),
                    self.stats.open,
                    c.get("frames_validated", 0),
                    self.stats.failure_count,
                    fds[1],
                    rss / 1024,
                ),
                flush=True,
            )


# ---------------------------------------------------------------- commands


def cmd_frames(args):
    """Prints the files of DIR that are whole JPEGs, after making sure the
    check itself tells good from bad on what it is given."""
    good = []
    for name in sorted(os.listdir(args.dir)):
        path = os.path.join(args.dir, name)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        problem = jpeg_problem(data)
        if problem is None:
            good.append(path)
            # Every cut of a good JPEG must be refused, or the check is blind
            # to exactly what the soak looks for.
            for cut in range(0, len(data), max(1, len(data) // 50)):
                if jpeg_problem(data[:cut]) is None:
                    sys.exit("self-check failed: %s cut at %d passes" % (path, cut))
            if jpeg_problem(data + b"\x00") is None:
                sys.exit("self-check failed: %s with a trailing byte passes" % path)
        else:
            print("not used as a frame: %s: %s" % (name, problem), file=sys.stderr)
    if not good:
        sys.exit("no valid JPEG in %s" % args.dir)
    print("\n".join(good))


def cmd_convertible(args):
    """Prints the PNG and GIF files of DIR (by content): pushed, the server
    converts them, which puts its encoder in the soak too."""
    for name in sorted(os.listdir(args.dir)):
        path = os.path.join(args.dir, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                head = f.read(8)
            if head == b"\x89PNG\r\n\x1a\n" or head[:6] in (b"GIF87a", b"GIF89a"):
                print(path)


def cmd_cam(args):
    """The exec: source. Runs just past the server's 10 s "healthy run"
    mark, so that its restart back-off stays at 0.5 s instead of doubling
    towards 30 s as it does after short runs."""
    files = []
    for name in sorted(os.listdir(args.dir)):
        with open(os.path.join(args.dir, name), "rb") as f:
            files.append(f.read())
    out = sys.stdout.buffer
    end = time.monotonic() + args.seconds
    i = random.randrange(len(files))
    try:
        while time.monotonic() < end:
            out.write(files[i % len(files)])
            out.flush()
            i += 1
            time.sleep(1 / args.fps)
    except BrokenPipeError:
        pass


def cmd_run(args):
    global PORT
    PORT = args.port
    soak = Soak(args)
    try:
        results = asyncio.run(soak.run())
    except KeyboardInterrupt:
        raise SystemExit(130)
    with open(args.results, "w") as f:
        json.dump(results, f)


def mib(kib):
    return "-" if kib is None else "%.1f MiB" % (kib / 1024)


def metric_values(text):
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r'(mjpeg_\w+)\{stream="([^"]*)"\} (\S+)', line)
        if m:
            out.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
    return out


def cmd_report(args):
    with open(args.results) as f:
        r = json.load(f)
    c = r["counters"]
    # The server-side verdicts go first: one of them explains a flood of
    # client failures better than the flood does.
    failures = []
    failure_count = r["failure_count"]
    verdicts = []

    with open(args.log, errors="replace") as f:
        log = f.read().splitlines()
    restarts = sum("command exited" in line for line in log)
    starts = sum("command started" in line for line in log)
    panics = [line for line in log if "panicked" in line]
    unexpected = [
        line
        for line in log
        if re.search(r"\b(WARN|ERROR)\b", line)
        and "pushed frame refused" not in line
    ]
    access_lines = sum("mjpeg_server::access" in line and "client left" in line for line in log)

    # Server side, from its own counters.
    print()
    print("server counters at the end (/status; /metrics agrees where marked =):")
    metrics = metric_values(r["metrics"])
    print(
        "  %-6s %10s %10s %12s %9s %9s %8s %8s  %s"
        % ("stream", "frames in", "frames out", "bytes out", "skipped", "rejected", "src err", "viewers", "last error")
    )
    for s in r["status"]["streams"]:
        m = metrics.get(s["name"], {})
        same = (
            m.get("mjpeg_frames_in_total") == s["frames_published"]
            and m.get("mjpeg_frames_rejected_total") == s["frames_rejected"]
            and m.get("mjpeg_source_errors_total") == s["source_errors"]
        )
        print(
            "  %-6s %10d %10d %12d %9d %9d %8d %8d  %s%s"
            % (
                s["name"],
                s["frames_published"],
                s["frames_sent"],
                s["bytes_sent"],
                s["frames_skipped"],
                s["frames_rejected"],
                s["source_errors"],
                s["clients"],
                s.get("last_error") or "-",
                "  =" if same else "  (/metrics differs: %s)" % m,
            )
        )
    print("  cam command: started %d times, exited %d times (source restarts)" % (starts, restarts))

    fd_before, fd_after = r["fd_before"], r["fd_after"]
    if args.died_early:
        failure_count += 1
        failures.append("the server died during the soak (exit status %d)" % args.server_exit)
    elif args.server_exit != 0:
        failure_count += 1
        failures.append("the server exited with %d on SIGTERM (expected 0)" % args.server_exit)
    if panics:
        failure_count += 1
        failures.append("the server log has a panic: %s" % panics[0])
    fd_ok = fd_after is not None and fd_after[1] == fd_before[1]
    if fd_after is not None and not fd_ok:
        failure_count += 1
        failures.append(
            "%d fds after the churn, %d before; by kind before: %s; after: %s"
            % (fd_after[1], fd_before[1], fd_before[2], fd_after[2])
        )
    rss_before, rss_after = r["rss_before_kib"], r["rss_after_kib"]
    rss_limit = rss_before + args.rss_slack_mib * 1024
    rss_ok = rss_after is not None and rss_after <= rss_limit
    if rss_after is not None and not rss_ok:
        failure_count += 1
        failures.append("VmRSS %s after the churn, over the limit of %s" % (mib(rss_after), mib(rss_limit)))
    # The heap: what the server still holds, whatever the allocator keeps
    # mapped. Frames of different sizes may be current at the two moments
    # (the cam plays a 1 MB JPEG among others, each stream holds its newest
    # frame and its splitter buffers), hence the slack.
    heap_before, heap_after = r.get("heap_before"), r.get("heap_after")
    heap_slack = 4 << 20
    heap_ok = heap_before is None or heap_after is None or heap_after <= heap_before + heap_slack
    if not heap_ok:
        failure_count += 1
        failures.append(
            "heap in use %s after the churn, %s before: more than 4 MiB stayed allocated"
            % (mib(heap_after / 1024), mib(heap_before / 1024))
        )
    if (fd_after is None or rss_after is None) and not args.died_early:
        failure_count += 1
        failures.append("no fd count or VmRSS after the churn")
    if restarts == 0:
        failure_count += 1
        failures.append("the cam command was never restarted: the soak did not exercise source restarts")
    failures += r["failures"]

    pushes_good = c.get("pushes_good", 0)
    pushes_bad = sum(v for k, v in c.items() if k.startswith("pushes_bad_"))
    churn = r["churn_seconds"]
    cycles = c.get("cycles", 0)
    ok = failure_count == 0
    rows = [
        (
            "duration",
            "%.1f s of churn (+%.1f s for the last clients to finish)" % (churn, r["elapsed_seconds"] - churn),
        ),
        ("cycles done", "%d of %d" % (cycles, r["cycles_target"])),
        ("cycles/s", "%.1f" % (cycles / churn if churn else 0)),
        ("peak connections", "%d" % r["peak_connections"]),
        (
            "frames validated",
            "%d (%s; %d of them snapshots)"
            % (
                c.get("frames_validated", 0),
                ", ".join("%s %d" % kv for kv in sorted(r["frames_by_stream"].items())),
                c.get("snapshots_validated", 0),
            ),
        ),
        ("bytes read", "%.1f MiB" % (c.get("bytes_read", 0) / 1048576)),
        ("mid-frame disconnects", "%d" % c.get("mid_frame_disconnects", 0)),
        ("after 1-5 whole parts", "%d" % c.get("whole_part_disconnects", 0)),
        ("before the first frame", "%d (+ %d half-sent requests)" % (c.get("early_disconnects", 0), c.get("aborted_requests", 0))),
        ("slow-reader sessions", "%d (%d frames)" % (c.get("slow_sessions", 0), c.get("slow_frames", 0))),
        ("pushes ok (204)", "%d of %d good" % (c.get("pushes_as_expected_ok", 0), pushes_good)),
        (
            "pushes refused as expected",
            "%d of %d bad (400: %d, 415: %d)"
            % (c.get("pushes_as_expected_refused", 0), pushes_bad, c.get("push_status_400", 0), c.get("push_status_415", 0)),
        ),
        ("source restarts seen", "%d" % restarts),
        ("viewers in the access log", "%d" % access_lines),
        (
            "fd before/after",
            "%d / %s%s (with the cam command's pipes: %d / %s)"
            % (
                fd_before[1],
                "-" if fd_after is None else fd_after[1],
                "" if fd_ok or fd_after is None else "  LEAK?",
                fd_before[0],
                "-" if fd_after is None else fd_after[0],
            ),
        ),
        (
            "RSS before/after",
            "%s / %s (limit: before + %d MiB = %s)%s"
            % (
                mib(rss_before),
                mib(rss_after),
                args.rss_slack_mib,
                mib(rss_limit),
                "" if rss_ok or rss_after is None else "  OVER",
            ),
        ),
        (
            "heap in use before/after",
            "-  (needs gdb)"
            if heap_before is None or heap_after is None
            else "%s / %s (limit: before + 4 MiB)%s"
            % (mib(heap_before / 1024), mib(heap_after / 1024), "" if heap_ok else "  LEAK?"),
        ),
        ("RSS during the run", ", ".join("%ds %s" % (t, mib(k)) for t, k, _ in r["rss_samples"]) or "-"),
        ("unexpected log warnings", "%d" % len(unexpected)),
        (
            "server exit on SIGTERM",
            "%d%s" % (args.server_exit, " (died before the SIGTERM)" if args.died_early else ""),
        ),
        ("failures", "%d" % failure_count),
        ("result", "PASS" if ok else "FAIL"),
    ]
    print()
    print("soak summary")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print("  %-*s  %s" % (width, k, v))
    if unexpected:
        print("\nunexpected warnings in the server log (first 10):")
        for line in unexpected[:10]:
            print("  " + line)
    if failures:
        print("\nfailures (first %d of %d):" % (min(len(failures), 50), failure_count))
        for line in failures[:50]:
            print("  " + line)
    sys.exit(0 if ok else 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("frames")
    f.add_argument("dir")
    v = sub.add_parser("convertible")
    v.add_argument("dir")
    c = sub.add_parser("cam")
    c.add_argument("dir")
    c.add_argument("seconds", type=float)
    c.add_argument("fps", type=float)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--cycles", type=int, required=True)
    r.add_argument("--frames", required=True, help="folder of the JPEGs the cam command plays")
    r.add_argument("--push-images", help="folder of images to push (default: --frames)")
    r.add_argument("--results", required=True)
    r.add_argument("--seed", type=int, default=int(time.time()))
    r.add_argument("--log", required=True, help="the server's stderr, for malloc_stats()")
    s = sub.add_parser("report")
    s.add_argument("results")
    s.add_argument("--log", required=True)
    s.add_argument("--server-exit", type=int, required=True)
    s.add_argument("--died-early", action="store_true", help="the server was gone before the SIGTERM")
    s.add_argument("--rss-slack-mib", type=int, required=True)
    args = p.parse_args()
    {"frames": cmd_frames, "convertible": cmd_convertible, "cam": cmd_cam, "run": cmd_run, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
