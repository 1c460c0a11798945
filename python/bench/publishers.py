"""One publisher of 640×480 NumPy frames at 30 fps, served by one of three
MJPEG servers in this process, for bench.py to load:

    python publishers.py {mjpeg_server,mjpeg_streamer,flask} PORT

- ``mjpeg_server``: this package; each frame encoded once (in Rust, GIL
  released) and shared by every viewer.
- ``mjpeg_streamer``: PyPI ``mjpeg-streamer`` (aiohttp; each viewer's
  handler resizes and encodes the newest array with OpenCV on its own
  clock).
- ``flask``: the common Flask pattern; a thread encodes each frame once
  with OpenCV, and each viewer's generator (one thread per viewer, in
  Werkzeug's threaded server) waits on a condition for the next one.

All three publish the same precomputed frames on the same clock, so that
the difference is the serving.
"""

from __future__ import annotations

import pathlib
import sys
import threading
import time
from typing import Callable, Iterator

import numpy as np
from PIL import Image

QUALITY = 85
FPS = 30
DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"


def frames() -> list[np.ndarray]:
    """A second of 640×480 RGB frames: a photo panning sideways (about
    50 KB each as JPEG at quality 85). Made up front, so that making them
    costs the same nothing in every publisher."""
    photo = np.asarray(Image.open(DATA / "jpeg_50k.jpg").convert("RGB"))
    assert photo.shape == (480, 640, 3), photo.shape
    return [np.ascontiguousarray(np.roll(photo, 8 * i, axis=1)) for i in range(FPS)]


def paced(frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames in a loop, one every 1/FPS seconds."""
    period = 1 / FPS
    deadline = time.monotonic()
    i = 0
    while True:
        yield frames[i % len(frames)]
        i += 1
        deadline += period
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            deadline = time.monotonic()  # late: do not try to catch up


def run_mjpeg_server(port: int, publish_forever: Callable[[Callable], None]) -> None:
    import mjpeg_server

    # Every benchmark viewer comes from 127.0.0.1: lift the per-address cap.
    server = mjpeg_server.Server(listen=f"127.0.0.1:{port}", max_connections_per_address=0)
    server.start()
    stream = server.stream("b")
    publish_forever(lambda frame: stream.publish(frame, QUALITY))


def run_mjpeg_streamer(port: int, publish_forever: Callable[[Callable], None]) -> None:
    from mjpeg_streamer import MjpegServer, Stream

    stream = Stream("b", size=(640, 480), quality=QUALITY, fps=FPS)
    server = MjpegServer("127.0.0.1", port)
    server.add_stream(stream)
    server.start()
    # OpenCV's arrays are BGR.
    publish_forever(lambda frame: stream.set_frame(frame[:, :, ::-1]))


def run_flask(port: int, publish_forever: Callable[[Callable], None]) -> None:
    import cv2
    from flask import Flask, Response

    app = Flask(__name__)
    latest: list[bytes] = [b""]
    changed = threading.Condition()

    def publish(frame: np.ndarray) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        assert ok
        with changed:
            latest[0] = jpeg.tobytes()
            changed.notify_all()

    @app.route("/b")
    def video() -> Response:
        def parts() -> Iterator[bytes]:
            while True:
                with changed:
                    changed.wait()
                    jpeg = latest[0]
                head = f"Content-Length: {len(jpeg)}\r\nX-Timestamp: {time.time():.6f}\r\n\r\n"
                yield b"--frame\r\nContent-Type: image/jpeg\r\n" + head.encode() + jpeg + b"\r\n"

        return Response(parts(), mimetype="multipart/x-mixed-replace; boundary=frame")

    threading.Thread(target=lambda: publish_forever(publish), daemon=True).start()
    app.run(host="127.0.0.1", port=port, threaded=True)


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    made = frames()

    def publish_forever(publish: Callable) -> None:
        for frame in paced(made):
            publish(frame)

    {"mjpeg_server": run_mjpeg_server, "mjpeg_streamer": run_mjpeg_streamer, "flask": run_flask}[
        kind
    ](port, publish_forever)


if __name__ == "__main__":
    main()
