"""Starting, stopping, restarting, several servers, and the interpreter's
exit with a server still running."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

import mjpeg_server
from conftest import StreamReader, corpus, get, snapshot


def test_stop_and_start_again_keeps_the_streams():
    server = mjpeg_server.Server(listen=0)
    cam = server.stream("cam")
    cam.publish(corpus("jpeg_5k.jpg"))
    assert server.url is None and cam.url is None and not server.running
    server.start()
    first = server.port
    assert server.url == f"http://127.0.0.1:{first}/"
    assert snapshot(cam) == corpus("jpeg_5k.jpg")
    server.stop()
    assert not server.running and server.port is None
    # Nothing listens on the old port any more.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", first)) != 0
    server.start()
    assert snapshot(cam) == corpus("jpeg_5k.jpg")
    server.stop()
    server.stop()  # stopping twice is harmless


def test_start_twice_is_an_error(server):
    try:
        server.start()
    except RuntimeError as e:
        assert "already running" in str(e)
    else:
        raise AssertionError("a second start() did not raise")


def test_two_servers_in_one_process():
    with mjpeg_server.Server(listen=0) as a, mjpeg_server.Server(listen=0) as b:
        assert a.port != b.port
        a.stream("x").publish(corpus("jpeg_5k.jpg"))
        b.stream("x").publish(corpus("jpeg_50k.jpg"))
        assert snapshot(a.stream("x")) == corpus("jpeg_5k.jpg")
        assert snapshot(b.stream("x")) == corpus("jpeg_50k.jpg")
    assert not a.running and not b.running


def test_stop_ends_a_connected_viewer(server):
    s = server.stream("s")
    s.publish(corpus("jpeg_5k.jpg"))
    viewer = StreamReader(s)
    viewer.frame()
    started = time.monotonic()
    server.stop()
    # The viewer's stream ends rather than holding stop() for the grace.
    assert time.monotonic() - started < 4.5
    viewer.close()


def test_interpreter_exit_with_a_running_server_does_not_hang(tmp_path):
    script = textwrap.dedent(
        """
        import http.client, mjpeg_server
        server = mjpeg_server.Server(listen=0)
        server.start()
        cam = server.stream("cam")
        cam.publish(open(%r, "rb").read())
        # A viewer is connected when the program ends.
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        conn.request("GET", "/stream/cam")
        assert conn.getresponse().status == 200
        print("ok", flush=True)
        """
        % str(tmp_path / "frame.jpg")
    )
    (tmp_path / "frame.jpg").write_bytes(corpus("jpeg_5k.jpg"))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert time.monotonic() - started < 20


def test_viewers_and_wait_for_viewer(server):
    s = server.stream("s")
    s.publish(corpus("jpeg_5k.jpg"))
    assert s.viewers == 0
    assert s.wait_for_viewer(timeout=0.2) is False
    viewers = []

    def connect():
        time.sleep(0.3)
        viewers.append(StreamReader(s))

    t = threading.Thread(target=connect)
    t.start()
    assert s.wait_for_viewer(timeout=10) is True
    t.join()
    assert s.viewers == 1
    viewers[0].close()


def test_the_gil_is_released_while_encoding(server):
    """While one thread publishes large frames, another keeps running."""
    s = server.stream("big")
    frame = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), np.uint8)
    s.publish(frame)  # warm up
    stop = threading.Event()
    count = [0]

    def counter():
        while not stop.is_set():
            count[0] += 1
            if count[0] % 1000 == 0:
                time.sleep(0)  # lets the GIL go, so the main thread gets it

    # With a switch interval of a minute, the interpreter never takes the
    # GIL from the main thread: the counter can run while publish() runs
    # only if publish() let the GIL go itself.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(60)
    t = threading.Thread(target=counter)
    try:
        t.start()
        during = 0
        for _ in range(3):
            before = count[0]
            s.publish(frame)
            during += count[0] - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(interval)
    assert during > 0, "the other thread never ran while publish() encoded"


def test_context_manager_and_repr():
    with mjpeg_server.Server(listen=0) as server:
        assert server.running
        assert repr(server).startswith("<mjpeg_server.Server running at http://127.0.0.1:")
        s = server.stream("plot")
        assert s.url == f"{server.url}stream/plot"
        assert s._repr_html_() == f'<img src="{s.url}" alt="plot" style="max-width:100%">'
        status, body = get(server.url)
        assert status == 200 and b"plot" in body
    assert "not running" in repr(server)
    assert "not running" in s._repr_html_()
