"""The command line every example shares: where to listen, how long to run."""

from __future__ import annotations

import argparse


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        help="address to serve on (default 127.0.0.1:8080; port 0 picks a free one)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    return parser.parse_args()
