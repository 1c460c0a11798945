#!/usr/bin/env python3
"""A matplotlib figure, redrawn 5 times a second and shown live in a page.

    pip install ./python matplotlib
    python3 python/examples/live_matplotlib.py

then open http://127.0.0.1:8080/ (every stream, live) or put
<img src="http://127.0.0.1:8080/stream/plot"> in a page of your own.

The figure is drawn only while someone watches: `plot.viewers` says how
many do, and drawing a figure costs far more than serving it.
"""

from __future__ import annotations

import math
import time

import matplotlib

matplotlib.use("Agg")  # draw into memory: no window, no display needed
import matplotlib.pyplot as plt  # noqa: E402

import mjpeg_server  # noqa: E402
from _common import arguments  # noqa: E402

args = arguments(__doc__.splitlines()[0])
fig, ax = plt.subplots(figsize=(8, 4.5), dpi=80)
(line,) = ax.plot([], [], lw=2)
ax.set_xlim(0, 10)
ax.set_ylim(-1.2, 1.2)
ax.set_xlabel("seconds")
ax.grid(True, alpha=0.3)
xs = [i / 20 for i in range(201)]

with mjpeg_server.Server(listen=args.listen) as server:
    plot = server.stream("plot")
    print(f"serving {plot.url}  (page: {server.url})", flush=True)
    started = time.monotonic()
    drawn = False
    while args.seconds is None or time.monotonic() - started < args.seconds:
        if plot.viewers or not drawn:  # draw once, then only for viewers
            t = time.monotonic() - started
            line.set_data(xs, [math.sin(2 * math.pi * (x / 4 - t / 3)) for x in xs])
            ax.set_title(f"t = {t:5.1f} s, {plot.viewers} watching")
            plot.publish(fig)
            drawn = True
        time.sleep(0.2)
