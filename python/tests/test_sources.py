"""The server's own sources, auth and push, started from Python."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request

import pytest

import mjpeg_server
from conftest import DATA, corpus, decode, get, snapshot


def wait_for_frame(stream, timeout=10.0):
    deadline = time.monotonic() + timeout
    while stream.frames == 0:
        assert time.monotonic() < deadline, f"no frame on {stream.name}"
        time.sleep(0.02)


def test_a_folder_source(server, tmp_path):
    for name in ("jpeg_5k.jpg", "jpeg_50k.jpg"):
        shutil.copy(DATA / name, tmp_path / name)
    cam = server.stream("cam", source=f"dir:{tmp_path}")
    wait_for_frame(cam)
    assert snapshot(cam) in (corpus("jpeg_5k.jpg"), corpus("jpeg_50k.jpg"))


def test_a_source_made_before_start_starts_with_the_server(tmp_path):
    shutil.copy(DATA / "jpeg_5k.jpg", tmp_path / "a.jpg")
    server = mjpeg_server.Server(listen=0)
    cam = server.stream("cam", source=f"dir:{tmp_path}")
    assert cam.frames == 0
    with server:
        wait_for_frame(cam)
        assert snapshot(cam) == corpus("jpeg_5k.jpg")


def test_a_push_stream(server):
    s = server.stream("pushed", source="push")
    request = urllib.request.Request(
        f"{server.url}stream/pushed",
        data=corpus("jpeg_50k.jpg"),
        headers={"Content-Type": "image/jpeg"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 204)
    assert snapshot(s) == corpus("jpeg_50k.jpg")


def test_a_chart_draws_the_numbers_added(server):
    cpu = server.chart("cpu", title="CPU", window=120, size=(400, 200), theme="light")
    wait_for_frame(cpu)  # the empty chart
    first = cpu.frames
    for i in range(10):
        cpu.add(t=time.time() - 10 + i, load=0.1 * i, temp=60 + i)
    assert cpu.counts == (2, 20)
    deadline = time.monotonic() + 10
    while cpu.frames == first:
        assert time.monotonic() < deadline, "the chart was not redrawn"
        time.sleep(0.02)
    assert decode(snapshot(cpu)).size == (400, 200)
    assert cpu.add_lines("load=0.5 temp=70\nload=0.6\n") == 2
    # Numbers can be posted over HTTP too, as to a chart of the CLI.
    request = urllib.request.Request(
        f"{server.url}stream/cpu/data",
        data=json.dumps({"load": 0.7}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 204)
    assert cpu.counts == (2, 24)


def test_users_tokens_and_public_streams():
    with mjpeg_server.Server(
        listen=0, users={"ann": "secret"}, tokens=["t0ken-t0ken-t0ken"], public=["open"]
    ) as server:
        closed = server.stream("closed")
        closed.publish(corpus("jpeg_5k.jpg"))
        server.stream("open").publish(corpus("jpeg_5k.jpg"))
        assert get(closed.snapshot_url)[0] == 401
        assert get(closed.snapshot_url, auth=("ann", "wrong"))[0] == 401
        assert get(closed.snapshot_url, auth=("ann", "secret")) == (200, corpus("jpeg_5k.jpg"))
        assert get(closed.snapshot_url + "?token=t0ken-t0ken-t0ken")[0] == 200
        assert get(f"{server.url}snapshot/open")[0] == 200
        assert server.options["auth"] is True


def test_https_with_a_certificate(tmp_path):
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
        check=True,
        capture_output=True,
    )
    with mjpeg_server.Server(listen=0, tls_cert=str(cert), tls_key=str(key)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        s = server.stream("s")
        s.publish(corpus("jpeg_5k.jpg"))
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(s.snapshot_url, context=context, timeout=10) as r:
            assert r.read() == corpus("jpeg_5k.jpg")


def test_status_lists_python_streams(server):
    server.stream("plot").publish(corpus("jpeg_5k.jpg"))
    status, body = get(f"{server.url}status")
    assert status == 200
    names = [s["name"] for s in json.loads(body)["streams"]]
    assert names == ["plot"]


def test_variants_and_overlays_from_python(server):
    import numpy as np

    plain = server.stream("plain")
    grey = np.full((360, 640, 3), 128, np.uint8)
    plain.publish(grey)
    # Any stream's URL takes ?width=, ?height=, ?quality=.
    status, body = get(plain.snapshot_url + "?width=160")
    assert status == 200 and decode(body).size == (160, 90)
    status, body = get(plain.snapshot_url + "?width=0")
    assert status == 400 and body.startswith(b"width=")

    # An overlay is drawn on every frame: bottom-left changes, the top does not.
    stamped = server.stream("stamped", overlay="{stream} %H:%M:%S")
    stamped.publish(grey)
    image = decode(snapshot(stamped)).convert("RGB")
    assert image.size == (640, 360)
    assert image.getpixel((320, 20)) == image.getpixel((600, 20))
    assert abs(image.getpixel((320, 20))[0] - 128) < 8
    band = [image.getpixel((x, 350))[0] for x in range(0, 100)]
    assert min(band) < 70, "no darkened band bottom-left"
    with pytest.raises(ValueError, match="ASCII"):
        server.stream("bad", overlay="café")
    with pytest.raises(ValueError, match="overlay_time"):
        server.stream("bad2", overlay="x", overlay_time="mars")
