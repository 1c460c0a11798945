#!/usr/bin/env python3
"""Send numbers to a chart stream: mjpeg-server draws the graph.

    mjpeg-server --stream 'cpu=chart#title=This machine#window=120'
    python3 examples/python/send_numbers.py [URL]

then open http://127.0.0.1:8080/ or embed
<img src="http://127.0.0.1:8080/stream/cpu">.

Every half second this posts one sample, {"load": ..., "wave": ...}, to
/stream/cpu/data. Each name becomes a series with its own colour and
legend entry. Only the standard library is used; with requests it is
`requests.post(URL, json=sample)`.

The same samples can be sent as text lines (`load=0.42 wave=0.1`), e.g.
from a shell:

    curl -d 'load=0.42 wave=0.1' http://127.0.0.1:8080/stream/cpu/data
"""

import json
import math
import os
import sys
import time
import urllib.error
import urllib.request

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/stream/cpu/data"


def send(sample):
    """POSTs one sample as JSON; the server answers 204, or 400 naming a bad field."""
    body = json.dumps(sample).encode()
    req = urllib.request.Request(
        URL, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=5):
        pass


def main():
    start = time.time()
    while True:
        t = time.time()
        sample = {
            # The 1-minute load average, where the OS has one.
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
            "wave": math.sin((t - start) / 4),
            # Optional: the sample's own time, in Unix seconds (default: now).
            "t": t,
        }
        try:
            send(sample)
        except urllib.error.HTTPError as e:
            print(f"refused ({e.code}): {e.read().decode().strip()}", file=sys.stderr)
        except OSError as e:
            print(f"cannot reach the server: {e}", file=sys.stderr)
        time.sleep(0.5)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
