#!/usr/bin/env python3
"""Camera frames from OpenCV, served as MJPEG.

    pip install ./python opencv-python-headless
    python3 python/examples/opencv_camera.py [--camera 0]

then open http://127.0.0.1:8080/stream/camera. OpenCV's frames are BGR:
`publish(frame, bgr=True)` says so. Exits with status 2 when there is no
camera to open.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2

import mjpeg_server

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--listen", default="127.0.0.1:8080")
parser.add_argument("--camera", default="0", help="device number, file or URL for cv2.VideoCapture")
parser.add_argument("--seconds", type=float, default=None)
args = parser.parse_args()

capture = cv2.VideoCapture(int(args.camera) if args.camera.isdigit() else args.camera)
if not capture.isOpened():
    print(f"cannot open camera {args.camera}", file=sys.stderr)
    sys.exit(2)

with mjpeg_server.Server(listen=args.listen) as server:
    camera = server.stream("camera")
    print(f"serving {camera.url}  (page: {server.url})", flush=True)
    started = time.monotonic()
    while args.seconds is None or time.monotonic() - started < args.seconds:
        ok, frame = capture.read()  # blocks until the camera's next frame
        if not ok:
            print("the camera stopped", file=sys.stderr)
            break
        camera.publish(frame, bgr=True)
capture.release()
