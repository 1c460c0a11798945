#!/usr/bin/env python3
"""NumPy frames from a simulation: heat spreading on a plate, 30 frames a
second, 640×480, coloured and published as arrays.

    pip install ./python numpy
    python3 python/examples/numpy_simulation.py

then open http://127.0.0.1:8080/stream/heat.
"""

from __future__ import annotations

import time

import numpy as np

import mjpeg_server
from _common import arguments

args = arguments(__doc__.splitlines()[0])
H, W = 480, 640
rng = np.random.default_rng()
heat = np.zeros((H, W), np.float32)


def colour(field: np.ndarray) -> np.ndarray:
    """Blue (cold) to red (hot), as an H×W×3 uint8 array."""
    v = np.clip(field, 0.0, 1.0)
    rgb = np.empty(field.shape + (3,), np.uint8)
    rgb[..., 0] = (255 * v).astype(np.uint8)
    rgb[..., 1] = (255 * 4 * v * (1 - v)).astype(np.uint8)
    rgb[..., 2] = (255 * (1 - v)).astype(np.uint8)
    return rgb


with mjpeg_server.Server(listen=args.listen) as server:
    stream = server.stream("heat")
    print(f"serving {stream.url}  (page: {server.url})", flush=True)
    started = time.monotonic()
    frame_time = 1 / 30
    next_frame = started
    while args.seconds is None or time.monotonic() - started < args.seconds:
        # A few hot spots appear; heat spreads to the four neighbours.
        for _ in range(3):
            y, x = rng.integers(10, H - 10), rng.integers(10, W - 10)
            heat[y - 5 : y + 5, x - 5 : x + 5] = 1.0
        heat[1:-1, 1:-1] += 0.2 * (
            heat[:-2, 1:-1]
            + heat[2:, 1:-1]
            + heat[1:-1, :-2]
            + heat[1:-1, 2:]
            - 4 * heat[1:-1, 1:-1]
        )
        heat *= 0.995
        stream.publish(colour(heat))  # encoded once in Rust, GIL released
        next_frame += frame_time
        time.sleep(max(0.0, next_frame - time.monotonic()))
