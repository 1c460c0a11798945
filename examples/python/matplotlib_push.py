#!/usr/bin/env python3
"""Push a live matplotlib figure to mjpeg-server, once a second.

    mjpeg-server --stream graphs=push
    python3 examples/python/matplotlib_push.py [URL]

then open http://127.0.0.1:8080/ or embed
<img src="http://127.0.0.1:8080/stream/graphs">.

Each second the figure is redrawn, saved as a PNG into memory (no file on
disk) and PUT to the push stream; the server converts it to JPEG and every
viewer's picture changes. Needs `pip install matplotlib requests`.

If all you have is numbers, you need no plotting at all: see
send_numbers.py and the `chart` source.
"""

import io
import math
import random
import sys
import time

import matplotlib

matplotlib.use("Agg")  # draw into memory: no window, no display needed
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import requests  # noqa: E402

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/stream/graphs"


def main():
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    start = time.time()
    xs, ys = [], []
    while True:
        t = time.time() - start
        xs.append(t)
        ys.append(math.sin(t / 5) + random.gauss(0, 0.1))
        xs, ys = xs[-120:], ys[-120:]  # the last two minutes

        ax.clear()
        ax.plot(xs, ys, color="tab:blue")
        ax.set_xlabel("seconds")
        ax.set_title("A live matplotlib figure")
        ax.grid(alpha=0.3)

        png = io.BytesIO()
        fig.savefig(png, format="png")
        # The three lines that publish it:
        try:
            r = requests.put(URL, data=png.getvalue(), timeout=5)
            r.raise_for_status()
        except requests.RequestException as e:
            # The server may be restarting: say so and keep going.
            print(f"push failed: {e}", file=sys.stderr)
        time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
