"""Bad input raises the documented exception, and the stream keeps its
previous frame."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import mjpeg_server
from conftest import corpus, snapshot


@pytest.fixture
def stream(server):
    s = server.stream("s")
    s.publish(corpus("jpeg_5k.jpg"))
    return s


def still_serves_the_good_frame(s):
    assert snapshot(s) == corpus("jpeg_5k.jpg")


@pytest.mark.parametrize("obj", [object(), 42, "a string", None, [1, 2, 3], {"a": 1}])
def test_unsupported_objects_raise_type_error(stream, obj):
    with pytest.raises(TypeError, match="cannot publish a"):
        stream.publish(obj)
    still_serves_the_good_frame(stream)


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((10, 10, 3), np.float64), "uint8"),
        (np.zeros((10, 10, 3), np.uint16), "uint8"),
        (np.zeros((10, 10, 5), np.uint8), r"shape \(10, 10, 5\)"),
        (np.zeros((2, 10, 10, 3), np.uint8), r"shape \(2, 10, 10, 3\)"),
        (np.zeros((0, 10, 3), np.uint8), r"shape \(0, 10, 3\)"),
        (np.zeros((70000, 1, 3), np.uint8), "65535"),
    ],
)
def test_wrong_arrays_raise_value_error_naming_the_problem(stream, array, words):
    with pytest.raises(ValueError, match=words):
        stream.publish(array)
    still_serves_the_good_frame(stream)


@pytest.mark.parametrize("name", ["truncated.jpg", "garbage.jpg", "empty.jpg"])
def test_corrupt_images_raise_value_error_with_the_reason(stream, name):
    with pytest.raises(ValueError, match="not a usable image: .+"):
        stream.publish(corpus(name))
    still_serves_the_good_frame(stream)


def test_html_saved_as_an_image_is_named(stream):
    with pytest.raises(ValueError, match="HTML"):
        stream.publish(b"<html><body>404</body></html>")
    still_serves_the_good_frame(stream)


@pytest.mark.parametrize("quality", [0, 101, -5])
def test_bad_quality(stream, quality):
    with pytest.raises(ValueError, match="quality"):
        stream.publish(np.zeros((8, 8, 3), np.uint8), quality=quality)
    still_serves_the_good_frame(stream)


def test_a_port_in_use_raises_os_error_naming_the_address():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        server = mjpeg_server.Server(listen=f"127.0.0.1:{port}")
        with pytest.raises(OSError, match=f"127.0.0.1:{port}.*already in use"):
            server.start()
        assert not server.running
    finally:
        taken.close()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"listen": "nonsense"}, "listen"),
        ({"listen": 3.5}, "listen"),
        ({"fps": 0}, "fps"),
        ({"quality": 0}, "quality"),
        ({"max_frame_size": 10}, "max_frame_size"),
        ({"users": {"a:b": "pw"}}, "users"),
        ({"tokens": [""]}, "tokens"),
        ({"tls_cert": "/nonexistent.pem"}, "tls_cert"),
        ({"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}, "nonexistent"),
        ({"write_timeout": -1}, "write_timeout"),
    ],
)
def test_bad_options_name_the_argument(kwargs, words):
    with pytest.raises((ValueError, OverflowError), match=words):
        mjpeg_server.Server(**kwargs)


def test_an_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="colour"):
        mjpeg_server.Server(colour="red")


def test_bad_sources_and_names(server, tmp_path):
    with pytest.raises(ValueError, match="unknown source"):
        server.stream("a", source="nothing:here")
    with pytest.raises(ValueError, match="no images"):
        server.stream("b", source=f"dir:{tmp_path}")
    with pytest.raises(ValueError, match="stream"):
        server.stream("bad name/with slash")
    server.stream("c")
    with pytest.raises(ValueError, match="exists already"):
        server.stream("c", source="demo")


def test_chart_errors(server):
    with pytest.raises(ValueError, match="window"):
        server.chart("c1", window=-3)
    with pytest.raises(ValueError, match="theme"):
        server.chart("c2", theme="purple")
    cpu = server.chart("cpu")
    with pytest.raises(ValueError):
        cpu.add()
    with pytest.raises(ValueError, match="load"):
        cpu.add(load=float("nan"))
    with pytest.raises(ValueError, match="load"):
        cpu.add(load="high")
    with pytest.raises(RuntimeError, match="draws its own frames"):
        cpu.publish(np.zeros((8, 8, 3), np.uint8))
    assert cpu.counts == (0, 0)
