"""Every kind of input arrives as the JPEG it should be, over real HTTP."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from conftest import StreamReader, centre, corpus, decode, near, snapshot  # noqa: E402

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def red_rgb(height: int = 48, width: int = 64) -> np.ndarray:
    a = np.zeros((height, width, 3), np.uint8)
    a[..., 0] = 255
    return a


def test_a_red_array_arrives_red(server):
    plot = server.stream("plot")
    seq = plot.publish(red_rgb())
    assert seq == 1 and plot.frames == 1
    image = decode(snapshot(plot))
    assert image.size == (64, 48)
    assert near(centre(image), RED)


def test_rgba_grey_and_bgr_arrays(server):
    s = server.stream("s")
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[..., 3] = 255
    s.publish(rgba)
    image = decode(snapshot(s))
    assert image.size == (40, 30) and near(centre(image), BLUE)

    grey = np.full((20, 10), 200, np.uint8)
    s.publish(grey)
    image = decode(snapshot(s))
    assert image.size == (10, 20) and image.mode == "L"
    assert abs(image.getpixel((5, 10)) - 200) <= 3

    # OpenCV's order: this array is blue in BGR.
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 0] = 255
    s.publish(bgr, bgr=True)
    assert near(centre(decode(snapshot(s))), BLUE)


def test_arrays_in_any_memory_order(server):
    s = server.stream("s")
    base = np.zeros((64, 80, 3), np.uint8)
    base[:, :40] = RED  # left half red, right half blue
    base[:, 40:] = BLUE
    # Every other column: a strided view, 40 wide, still red then blue.
    s.publish(base[:, ::2])
    image = decode(snapshot(s)).convert("RGB")
    assert image.size == (40, 64)
    assert near(image.getpixel((5, 32)), RED) and near(image.getpixel((35, 32)), BLUE)
    # Transposed: 64 wide and 80 high, red on top.
    s.publish(base.transpose(1, 0, 2))
    image = decode(snapshot(s)).convert("RGB")
    assert image.size == (64, 80)
    assert near(image.getpixel((32, 5)), RED) and near(image.getpixel((32, 75)), BLUE)
    # Fortran order.
    s.publish(np.asfortranarray(red_rgb(20, 30)))
    image = decode(snapshot(s))
    assert image.size == (30, 20) and near(centre(image), RED)


def test_jpeg_bytes_pass_through_untouched(server):
    s = server.stream("cam")
    jpeg = corpus("jpeg_50k.jpg")
    s.publish(jpeg)
    assert snapshot(s) == jpeg
    assert s.latest == jpeg
    # The same bytes as bytearray, memoryview, a uint8 array, and the
    # (N, 1) array that cv2.imencode returns.
    for form in (
        bytearray(jpeg),
        memoryview(jpeg),
        np.frombuffer(jpeg, np.uint8),
        np.frombuffer(jpeg, np.uint8).reshape(-1, 1),
    ):
        s.publish(red_rgb())
        s.publish(form)
        assert snapshot(s) == jpeg, type(form)


def test_other_formats_are_converted(server):
    s = server.stream("s")
    png = corpus("image.png")
    s.publish(png)
    want = Image.open(io.BytesIO(png))
    got = decode(snapshot(s))
    assert got.size == want.size
    s.publish(corpus("image.gif"))
    assert decode(snapshot(s)).size == Image.open(io.BytesIO(corpus("image.gif"))).size


def test_pillow_images(server):
    s = server.stream("s")
    s.publish(Image.new("RGB", (50, 40), RED))
    image = decode(snapshot(s))
    assert image.size == (50, 40) and near(centre(image), RED)
    # A palette image is converted to RGB first.
    s.publish(Image.new("RGB", (30, 20), BLUE).convert("P"))
    image = decode(snapshot(s))
    assert image.size == (30, 20) and near(centre(image), BLUE)
    s.publish(Image.new("L", (8, 8), 100))
    assert decode(snapshot(s)).mode == "L"


def test_a_matplotlib_figure_is_drawn_without_savefig(server):
    s = server.stream("plot")
    fig = plt.figure(figsize=(4, 3), dpi=50, facecolor="red")
    try:
        s.publish(fig)
    finally:
        plt.close(fig)
    image = decode(snapshot(s))
    assert image.size == (200, 150)
    assert near(centre(image), RED)


def test_a_viewer_gets_each_new_frame(server):
    s = server.stream("live")
    s.publish(red_rgb())
    viewer = StreamReader(s)
    try:
        assert near(centre(decode(viewer.frame())), RED)
        assert s.viewers == 1
        blue = np.zeros((48, 64, 3), np.uint8)
        blue[..., 2] = 255
        s.publish(blue)
        assert near(centre(decode(viewer.frame())), BLUE)
    finally:
        viewer.close()


def test_quality_changes_the_encoding(server):
    s = server.stream("q")
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (120, 160, 3), np.uint8)
    s.publish(noise, quality=20)
    small = len(snapshot(s))
    s.publish(noise, quality=95)
    large = len(snapshot(s))
    assert small < large
