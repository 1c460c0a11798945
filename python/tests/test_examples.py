"""Every example runs as written and serves frames to a real client."""

from __future__ import annotations

import glob
import http.client
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import decode

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def first_frame(url: str) -> bytes:
    host, port, path = re.match(r"http://([^:/]+):(\d+)(/.*)", url).groups()
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        length = None
        while True:
            line = response.readline()
            assert line, "the stream ended before a frame"
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
            elif line.strip() == b"" and length is not None:
                return response.read(length)  # the part's headers are done
    finally:
        conn.close()


def run(script: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / script),
            "--listen",
            "127.0.0.1:0",
            "--seconds",
            "30",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "script, size",
    [
        ("live_matplotlib.py", (640, 360)),
        ("numpy_simulation.py", (640, 480)),
        ("chart_numbers.py", (800, 450)),
    ],
)
def test_an_example_serves_live_frames(script, size):
    process = run(script)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), (line, process.stderr.read())
        url = line.split()[1]
        image = decode(first_frame(url))
        assert image.size == size
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_camera_example():
    if not glob.glob("/dev/video*"):
        pytest.skip("no camera on this machine (/dev/video*)")
    pytest.importorskip("cv2")
    process = run("opencv_camera.py")
    try:
        line = process.stdout.readline()
        assert line.startswith("serving "), process.stderr.read()
        decode(first_frame(line.split()[1]))
    finally:
        process.terminate()
        process.wait(timeout=20)
