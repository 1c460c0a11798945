"""Fixtures and real-HTTP helpers for the tests of the Python module.

Every test starts a real server on 127.0.0.1 port 0 in this process and
talks to it over TCP with the standard library's HTTP client.
"""

from __future__ import annotations

import base64
import http.client
import io
import pathlib
import urllib.request
from typing import Iterator, List, Optional, Tuple

import pytest
from PIL import Image

import mjpeg_server

# The project's test images (tests/data at the repository root).
DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"


def corpus(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def server() -> Iterator[mjpeg_server.Server]:
    s = mjpeg_server.Server(listen="127.0.0.1:0")
    s.start()
    yield s
    s.stop()


def get(url: str, auth: Optional[Tuple[str, str]] = None) -> Tuple[int, bytes]:
    """Status and body of a GET, errors included."""
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def snapshot(stream: mjpeg_server.Stream) -> bytes:
    status, body = get(stream.snapshot_url)
    assert status == 200, (status, body[:200])
    return body


def decode(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    image.load()
    return image


def centre(image: Image.Image) -> Tuple[int, ...]:
    return image.convert("RGB").getpixel((image.width // 2, image.height // 2))


def near(pixel: Tuple[int, ...], want: Tuple[int, int, int], slack: int = 12) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, want))


class StreamReader:
    """A viewer of /stream/NAME: reads the multipart body part by part."""

    def __init__(self, stream: mjpeg_server.Stream) -> None:
        port = int(stream.url.split(":")[2].split("/")[0])
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request("GET", f"/stream/{stream.name}")
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        ctype = self.response.getheader("Content-Type")
        assert ctype.startswith("multipart/x-mixed-replace"), ctype

    def frame(self) -> bytes:
        """The next part's JPEG."""
        body = self.response
        headers: List[str] = []
        while True:
            line = body.readline().decode("latin-1").strip()
            if not line and headers:
                break
            if line and not line.startswith("--"):
                headers.append(line)
        length = next(
            int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length")
        )
        return body.read(length)

    def close(self) -> None:
        self.conn.close()
