#!/usr/bin/env python3
"""A live chart fed with numbers: no plotting library at all.

    pip install ./python
    python3 python/examples/chart_numbers.py

then open http://127.0.0.1:8080/stream/load. The server draws the chart
(only when numbers change) and every <img> of it updates.
"""

from __future__ import annotations

import math
import os
import random
import time

import mjpeg_server
from _common import arguments

args = arguments(__doc__.splitlines()[0])

with mjpeg_server.Server(listen=args.listen) as server:
    chart = server.chart("load", title="This machine", window=60, ymin=0)
    print(f"serving {chart.url}  (page: {server.url})", flush=True)
    started = time.monotonic()
    while args.seconds is None or time.monotonic() - started < args.seconds:
        t = time.monotonic() - started
        chart.add(
            load=os.getloadavg()[0],
            wave=1 + math.sin(t / 3),
            noise=random.uniform(0.5, 1.5),
        )
        time.sleep(0.2)
